"""Reader contribution: blot image files as napari image layers, one per channel.

Reads what :func:`blotquant.io.read_image` reads (TIFF, PNG, JPEG, GIF and
Bio-Rad ``.scn``). Each layer names its file and channel in
``metadata["blotquant"]`` so the lane review can save its review beside the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from blotquant.errors import BlotQuantError

SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jpe", ".gif", ".scn")
# Colormaps of channels shown together (two-colour fluorescence and the like).
_CHANNEL_COLORMAPS = ("green", "magenta", "cyan", "yellow")
_NAMED_COLORMAPS = {"red": "red", "green": "green", "blue": "blue"}


def napari_get_reader(path):
    """Return :func:`read_blot` when every path is a blot image file, else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(isinstance(p, (str, Path)) and Path(p).suffix.lower() in SUFFIXES for p in paths):
        return None
    return read_blot


def read_blot(path):
    """Layer data tuples of one or more blot image files, or None when one cannot be read.

    Never raises: a file blotquant cannot read gives a warning (shown by
    napari as a notification) and None, so napari can try another reader.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for one in paths:
        try:
            layers.extend(blot_layers(one))
        except (BlotQuantError, OSError, ValueError) as error:
            warnings.warn(f"blotquant could not open {one}: {error}", stacklevel=2)
            return None
    return layers


def blot_layers(path, *, study=None):
    """Layer data tuples of one blot image file (raises the library's errors).

    ``study`` (a study file listing the image) is recorded in the layers'
    metadata, so the lane review labels lanes with sample ids.
    """
    from blotquant.io import read_image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(path)
    for note in dict.fromkeys([str(w.message) for w in caught] + list(image.warnings)):
        warnings.warn(f"{image.name}: {note}", stacklevel=3)
    stem = Path(image.name).stem
    shown = list(image.default_channels)
    layers = []
    for index, channel in enumerate(image.channel_names):
        several = len(shown) > 1 and index in shown
        if several:
            colormap = _NAMED_COLORMAPS.get(channel, _CHANNEL_COLORMAPS[shown.index(index) % len(_CHANNEL_COLORMAPS)])
        else:
            colormap = _NAMED_COLORMAPS.get(channel, "gray") if index not in shown else "gray"
        metadata = {"blotquant": {"path": str(image.path), "channel": channel, "sha256": image.sha256,
                                  "full_scale": image.full_scale, "warnings": list(image.warnings),
                                  "study": None if study is None else str(study)}}
        kwargs = {
            "name": stem if len(image.channel_names) == 1 else f"{stem} [{channel}]",
            "metadata": metadata,
            "colormap": colormap,
            "blending": "additive" if several else "translucent",
            "visible": index in shown,
        }
        layers.append((image.data[index], kwargs, "image"))
    return layers
