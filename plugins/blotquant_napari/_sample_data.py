"""Sample data contribution: a Western blot to try the lane review on.

The blot comes from the project's ``sample_data/`` folder when the plugin
runs from a source checkout (the first target image of its example study,
so lanes are labelled with sample ids); otherwise a synthetic blot (one saturated band,
dilutions down to a faint band, an empty lane and some dust) is rendered by
:func:`blotquant.synth.make_blot` and kept in a cache folder, so it is a real
file beside which a review can be saved.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SAMPLE_DATA_DIR = Path(__file__).resolve().parents[2] / "sample_data"
#: Where the synthetic sample blot is written (override with BLOTQUANT_NAPARI_CACHE).
CACHE_ENV = "BLOTQUANT_NAPARI_CACHE"
SYNTHETIC_NAME = "blotquant_sample_blot.tif"


def sample_blot():
    """Layer data tuples of the sample blot (see :func:`sample_blot_path`)."""
    from ._reader import blot_layers

    path, study = sample_blot_path()
    return blot_layers(path, study=study)


def sample_blot_path():
    """``(image, study file or None)``: a blot of ``sample_data/``, else the synthetic sample blot."""
    from blotquant.errors import BlotQuantError

    study_file = SAMPLE_DATA_DIR / "study.toml"
    if study_file.is_file():
        from blotquant.study_files import load_study

        try:
            images = load_study(study_file).images
        except BlotQuantError:
            images = None
        if images is not None:
            targets = images[(images["role"] == "target") & images["channel"].isna()]
            if not targets.empty:
                return Path(targets.iloc[0]["path"]), study_file
    if SAMPLE_DATA_DIR.is_dir():
        found = sorted(p for p in SAMPLE_DATA_DIR.rglob("*") if p.suffix.lower() in (".tif", ".tiff")
                       and not p.name.startswith("."))
        if found:
            return found[0], None
    return synthetic_sample_blot(), None


def synthetic_sample_blot(folder=None):
    """Write (once) and return the synthetic sample blot file."""
    from blotquant.synth import make_blot, save_blot

    folder = Path(folder or os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "blotquant-napari")
    path = folder / SYNTHETIC_NAME
    if not path.is_file():
        # Lane 1 over-exposed in its upper band, a dilution series to a faint band in lane 6, lane 7 empty.
        amounts = [[1.0, 1.0], [0.6, 0.5], [0.35, 0.8], [0.2, 0.6], [0.1, 0.7], [0.006, 0.9], [0, 0], [0.5, 0.4]]
        blot = make_blot(shape=(520, 820), n_lanes=8, band_rows=((0.32, 1.0), (0.66, 0.45)), amounts=amounts,
                         saturate=True, peak=1.3, dust=3, empty_lanes=(7,), seed=7)
        save_blot(blot, path)
    return path
