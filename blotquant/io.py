"""Image input: blot image files and arrays to one checked, read-only :class:`BlotImage`.

This is the first pipeline stage. It reads TIFF (tifffile), PNG, JPEG and GIF
(Pillow) and Bio-Rad Image Lab ``.scn`` files, refuses hostile or broken
files with a one-line :class:`~blotquant.errors.ImageReadError`, keeps pixel
values in their stored units and records what a later stage must know: the
saturation ceiling, whether the data are lossy, and what the file got wrong.

Polarity (are bands bright or dark?) is judged from the pixel values by
:func:`detect_polarity`, never from file tags, which are often wrong.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .errors import (
    ImageReadError,
    ImageTooLargeError,
    LossyImageWarning,  # noqa: F401 - part of this module's API
    ParameterError,
)
from .output import sha256_of_file

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "LUMINANCE_WEIGHTS",
    "LossyImageWarning",
    "BlotImage",
    "read_image",
    "image_from_array",
    "detect_polarity",
    "to_signal",
]

#: Largest number of pixels :func:`read_image` decodes, counted over every channel, page and
#: colour sample it decodes (a 4-page file counts four times its size, an RGB scan three times).
DEFAULT_MAX_PIXELS = 250_000_000
#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS`.
MAX_PIXELS_ENV = "BLOTQUANT_MAX_PIXELS"
#: Rec. 709 weights used for the luminance of colour images (R, G, B).
LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)

POLARITIES = ("light_on_dark", "dark_on_light")

#: Pages a TIFF may hold (channels or exposures of one blot); more are refused before any is read.
MAX_TIFF_PAGES = 64
# RGB exports of a grey image: channels may differ by this fraction of full scale.
_GRAY_RGB_TOLERANCE = 0.01
# Pixels that polarity detection looks at; a strided subsample beyond that.
_POLARITY_SAMPLE = 1_000_000
# Tail depths (percent of pixels) compared by detect_polarity.
_POLARITY_TAILS = (0.1, 0.5, 1.0, 2.0, 5.0)

_SUPPORTED = "TIFF, PNG, JPEG, GIF and Bio-Rad .scn"
_SUFFIX_FORMATS = {
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".gif": "GIF",
    ".scn": "SCN",
}
_EIGHT_BIT_WARNING = (
    "8-bit image: 8-bit exports saturate easily and keep only 256 grey levels, "
    "so strong bands are clipped and weak ones lose precision; quantify the "
    "imager's original 16-bit file where you can"
)
_LOSSY_WARNING = (
    "lossy JPEG compression: its artefacts change band intensities, so lossy "
    "8-bit data are not fit for quantification; use the imager's original TIFF "
    "or .scn file, and treat any number from this image as a rough estimate"
)


@dataclass(frozen=True, eq=False)
class BlotImage:
    """A decoded blot image in its stored units, with what is known about it.

    Attributes
    ----------
    data : ndarray, shape (n_channels, H, W)
        Pixel values, uint8, uint16 or float32, read-only.
    channel_names : tuple of str
        One name per channel: ``("gray",)``, ``("page1", "page2")``,
        ``("luminance", "red", "green", "blue")``, ...
    default_channels : tuple of int
        Channels analysed when the caller names none.
    full_scale : float or None
        Saturation ceiling in stored units (255, 65535, 4095 for 12-bit data
        in 16-bit files...); None for float data without a known ceiling.
    bit_depth : int
        8, 16 or 32 (float) bits per sample of the source data.
    lossy : bool
        True when the data went through lossy (JPEG) compression.
    source_format : str
        ``"TIFF"``, ``"PNG"``, ``"JPEG"``, ``"GIF"``, ``"SCN"`` or ``"array"``.
    path : pathlib.Path or None
        Absolute path of the file read, None for arrays.
    name : str
        File name, or the name given to :func:`image_from_array`.
    sha256 : str or None
        SHA-256 of the file bytes, None for arrays.
    warnings : tuple of str
        Plain-language warnings about the data (lossy, 8-bit, tags ignored...).
    """

    data: np.ndarray = field(repr=False)
    channel_names: tuple[str, ...]
    default_channels: tuple[int, ...]
    full_scale: float | None
    bit_depth: int
    lossy: bool
    source_format: str
    path: Path | None
    name: str
    sha256: str | None
    warnings: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of every channel."""
        return self.data.shape[1], self.data.shape[2]

    def channel(self, key: int | str) -> np.ndarray:
        """Return one channel as a read-only 2-D view.

        Parameters
        ----------
        key : int or str
            Channel index (negative counts from the end) or channel name.

        Returns
        -------
        plane : ndarray, shape (H, W)

        Raises
        ------
        ParameterError
            If no channel has that index or name.

        Examples
        --------
        >>> image = image_from_array(np.array([[0, 10], [20, 30]], np.uint8))
        >>> image.channel("gray").tolist()
        [[0, 10], [20, 30]]
        """
        names = ", ".join(self.channel_names)
        if isinstance(key, str):
            if key not in self.channel_names:
                raise ParameterError(
                    f"{self.name}: no channel named {key!r}; the channels are {names}"
                )
            return self.data[self.channel_names.index(key)]
        n_channels = len(self.channel_names)
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
            raise ParameterError(
                f"{self.name}: channel must be an index or a name, not {key!r}; "
                f"the channels are {names}"
            )
        if not -n_channels <= key < n_channels:
            raise ParameterError(
                f"{self.name}: there is no channel {key}; the image has "
                f"{n_channels} channel(s): {names}"
            )
        return self.data[key]


@dataclass
class _Pixels:
    """What a format reader hands to :func:`_build_image`."""

    array: np.ndarray
    # "planes": (C, H, W); "interleaved": (H, W, S) with S = 2 (grey + alpha),
    # 3 (RGB) or 4 (RGBA).
    layout: str
    channel_names: tuple[str, ...] | None = None
    declared_full_scale: float | None = None
    lossy: bool = False
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# Public API


def read_image(path, *, max_pixels: int | None = None) -> BlotImage:
    """Read a blot image file.

    The pixel count is checked against the limit from the file header, before
    any pixel is decoded. Every problem with the file raises
    :class:`~blotquant.errors.ImageReadError` with a one-line message that
    names the file and says what to do.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF (8/16-bit, 32-bit float; single page, multi-page or multi-channel),
        PNG, JPEG, GIF or Bio-Rad Image Lab ``.scn`` file. The format is
        recognised from the file's content, not its name.
    max_pixels : int, optional
        Largest number of pixels to decode, counted over every channel, page
        and colour sample decoded (what bounds a worker's memory). Defaults to
        the environment variable ``BLOTQUANT_MAX_PIXELS`` or else
        :data:`DEFAULT_MAX_PIXELS`.

    Returns
    -------
    image : BlotImage

    Raises
    ------
    ImageReadError
        Missing, empty, truncated, corrupt, unsupported or blank file.
    ImageTooLargeError
        The header declares more pixels than ``max_pixels``.
    ParameterError
        ``max_pixels`` (or the environment variable) is not a positive integer.

    Warns
    -----
    LossyImageWarning
        For JPEG data, which are not fit for quantification.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> folder = Path(tempfile.mkdtemp())
    >>> tifffile.imwrite(folder / "blot.tif", np.array([[9, 9], [9, 900]], np.uint16))
    >>> image = read_image(folder / "blot.tif")
    >>> image.channel_names, image.full_scale, image.data.dtype
    (('gray',), 65535.0, dtype('uint16'))
    """
    limit = _resolve_max_pixels(max_pixels)
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise ParameterError(
            f"image path must be a file path, not {type(path).__name__}"
        ) from None
    label = str(path)
    head = _read_head(path, label)
    source_format = _sniff_format(head, label)
    notes = []
    expected = _SUFFIX_FORMATS.get(path.suffix.lower())
    if expected is not None and expected != source_format:
        notes.append(
            f"the file name ends in {path.suffix} but the file holds a "
            f"{source_format} image; it was read as {source_format}"
        )
    try:
        if source_format == "TIFF":
            # tifffile reads the file itself, and decodes a copy in memory half as fast,
            # so the file is hashed alongside the decoding (once the size is checked).
            hasher = _FileHasher(path)
            pixels = _read_tiff(path, label, limit, on_checked=hasher.start)
            digest = hasher.result()
        else:
            # The file is read once: decoded from these bytes and hashed from them.
            blob = path.read_bytes()
            if source_format == "SCN":
                pixels = _read_scn(blob, label, limit)
            else:
                pixels = _read_with_pillow(blob, label, source_format, head, limit)
            digest = hashlib.sha256(blob).hexdigest()
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise ImageReadError(
            f"{label}: not enough memory to decode this {source_format} image; "
            "close other programs or crop the image"
        ) from exc
    except Exception as exc:  # any decoder failure becomes one clear line
        raise ImageReadError(
            f"{label}: cannot decode the {source_format} data, the file is "
            f"truncated or corrupt ({_one_line(exc)}); copy or export the image again"
        ) from exc
    pixels.notes[:0] = notes
    try:
        image = _build_image(
            pixels,
            source_format=source_format,
            path=Path(os.path.abspath(path)),
            name=path.name,
            sha256=digest,
            label=label,
            error=ImageReadError,
        )
    except MemoryError as exc:
        raise ImageReadError(
            f"{label}: not enough memory to prepare this {source_format} image; "
            "close other programs or crop the image"
        ) from exc
    if image.lossy:
        warnings.warn(f"{label}: {_LOSSY_WARNING}", LossyImageWarning, stacklevel=2)
    return image


def image_from_array(array, *, name: str = "array", full_scale: float | None = None) -> BlotImage:
    """Wrap an in-memory image (for example a napari layer) as a :class:`BlotImage`.

    The array is copied, so later changes to it do not change the image,
    and the caller's array is never made read-only.

    Parameters
    ----------
    array : array_like
        A 2-D grey image, a ``(C, H, W)`` stack of channels, or an
        ``(H, W, 3)`` / ``(H, W, 4)`` RGB(A) image (a 3-D array whose last
        axis has 3 or 4 entries and whose first axis has more than 4).
        Integer values are kept as uint8 or uint16 when they fit, others
        become float32.
    name : str, optional
        Name used in messages and reports.
    full_scale : float, optional
        Saturation ceiling in the array's units. Defaults to the dtype maximum
        (or 2**k - 1 for 10-15-bit data in uint16), None for float data.

    Returns
    -------
    image : BlotImage

    Raises
    ------
    ParameterError
        Wrong shape or type, blank array, or ``full_scale`` below the data.

    Examples
    --------
    >>> image = image_from_array(np.array([[0, 4095], [4095, 4095], [4095, 7]], np.uint16))
    >>> image.full_scale, image.channel_names, image.bit_depth
    (4095.0, ('gray',), 16)
    """
    arr = np.array(array)
    if arr.ndim == 2:
        pixels = _Pixels(arr[np.newaxis], "planes", ("gray",))
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
        pixels = _Pixels(arr, "interleaved")
    elif arr.ndim == 3:
        names = ("gray",) if arr.shape[0] == 1 else _numbered("channel", arr.shape[0])
        pixels = _Pixels(arr, "planes", names)
    else:
        raise ParameterError(
            f"{name}: an image array must be 2-D (H, W), (C, H, W) or (H, W, 3/4), "
            f"not of shape {arr.shape}"
        )
    if full_scale is not None:
        if not isinstance(full_scale, (int, float, np.number)) or not (
            math.isfinite(full_scale) and full_scale > 0
        ):
            raise ParameterError(
                f"{name}: full_scale must be a positive number, not {full_scale!r}"
            )
        pixels.declared_full_scale = float(full_scale)
    return _build_image(
        pixels,
        source_format="array",
        path=None,
        name=name,
        sha256=None,
        label=name,
        error=ParameterError,
    )


def detect_polarity(plane) -> str:
    """Tell from the pixel values whether bands are bright or dark.

    Bands cover a minority of the pixels and lie at one extreme; the
    background is the majority. The distances from the median to the upper
    and to the lower percentiles are compared at several tail depths
    (0.1 % to 5 %), on a subsample of about a million pixels; the side with
    the longer tails holds the signal. This works on mostly blank
    chemiluminescence images, on film scans and on stained gels, as long as
    bands cover less than half the image.

    Parameters
    ----------
    plane : array_like, shape (H, W)
        One channel in stored units. File tags are not consulted.

    Returns
    -------
    polarity : {"light_on_dark", "dark_on_light"}
        ``"light_on_dark"`` when high stored values are signal. A flat plane
        gives ``"light_on_dark"``.

    Raises
    ------
    ParameterError
        If ``plane`` is not 2-D or has no finite value.

    Examples
    --------
    >>> film = np.full((50, 50), 200, np.uint8)
    >>> film[20:24, 10:40] = 40          # a dark band on a light film
    >>> detect_polarity(film)
    'dark_on_light'
    >>> detect_polarity(255 - film)
    'light_on_dark'
    """
    values = _finite_sample(_as_plane(plane))
    depths = np.asarray(_POLARITY_TAILS)
    quantiles = np.percentile(values, np.concatenate([depths, [50.0], 100.0 - depths]))
    n = depths.size
    lower, median, upper = quantiles[:n], quantiles[n], quantiles[n + 1 :]
    spread = upper[0] - lower[0]
    if spread <= 0:
        return "light_on_dark"
    # A floor of 1 % of the spread keeps a single quantised grey level in an
    # otherwise flat tail from deciding alone.
    floor = 0.01 * spread
    score = np.sum(np.log((upper - median + floor) / (median - lower + floor)))
    return "light_on_dark" if score >= 0 else "dark_on_light"


def to_signal(plane, *, polarity: str = "auto", full_scale: float | None) -> tuple[np.ndarray, str]:
    """Convert one channel to a float32 image in which signal is positive.

    Parameters
    ----------
    plane : array_like, shape (H, W)
        One channel in stored units; it is not modified.
    polarity : {"auto", "light_on_dark", "dark_on_light"}, optional
        ``"auto"`` asks :func:`detect_polarity`.
    full_scale : float or None
        Saturation ceiling in stored units. For dark-on-light data the signal
        is ``full_scale - plane``; None uses the plane's maximum (float data).

    Returns
    -------
    signal : ndarray of float32, shape (H, W)
        A new array.
    polarity_used : {"light_on_dark", "dark_on_light"}

    Raises
    ------
    ParameterError
        Unknown polarity, or a plane that is not 2-D.

    Examples
    --------
    >>> signal, used = to_signal(np.array([[250, 100], [250, 250]], np.uint8),
    ...                          polarity="dark_on_light", full_scale=255)
    >>> signal.tolist(), used
    ([[5.0, 155.0], [5.0, 5.0]], 'dark_on_light')
    """
    if polarity not in ("auto",) + POLARITIES:
        raise ParameterError(
            f"polarity must be 'auto', 'light_on_dark' or 'dark_on_light', not {polarity!r}"
        )
    plane = _as_plane(plane)
    used = detect_polarity(plane) if polarity == "auto" else polarity
    if used == "light_on_dark":
        return plane.astype(np.float32), used
    ceiling = float(np.nanmax(plane)) if full_scale is None else float(full_scale)
    return np.subtract(np.float32(ceiling), plane, dtype=np.float32), used


# --------------------------------------------------------------------------
# Checks shared by every reader


def _resolve_max_pixels(max_pixels):
    source = "max_pixels"
    if max_pixels is None:
        setting = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not setting:
            return DEFAULT_MAX_PIXELS
        source = MAX_PIXELS_ENV
        try:
            max_pixels = int(setting.replace("_", ""))
        except ValueError:
            raise ParameterError(
                f"{MAX_PIXELS_ENV}={setting!r} is not a whole number; "
                "set it to a pixel count such as 500000000, or unset it"
            ) from None
    whole = isinstance(max_pixels, (int, np.integer)) and not isinstance(max_pixels, (bool, np.bool_))
    if not whole or max_pixels <= 0:
        raise ParameterError(
            f"{source} must be a positive whole number of pixels, not {max_pixels!r}"
        )
    return int(max_pixels)


def _check_pixel_count(label, height, width, n_channels, limit):
    """Refuse an image whose decoded planes (channels, pages, colour samples) hold more than ``limit`` pixels."""
    plane = int(height) * int(width)
    total = plane * int(n_channels)
    fix = "pass max_pixels= or --max-pixels, or set BLOTQUANT_MAX_PIXELS"
    if total <= limit:
        return
    if n_channels == 1:
        raise ImageTooLargeError(
            f"{label}: the image declares {width} x {height} = {plane:,} pixels, "
            f"more than the limit of {limit:,}; if the file is genuine, {fix} "
            "to a larger number"
        )
    raise ImageTooLargeError(
        f"{label}: the image declares {n_channels:,} planes (channels, pages or colour samples) of "
        f"{width} x {height} pixels, {total:,} pixels to decode in all, more than the limit of {limit:,}; "
        f"if the file is genuine, {fix} to a larger number"
    )


class _FileHasher:
    """The SHA-256 of a file, computed in a thread while the decoder reads the same file.

    Hashing releases the GIL, so on a free core it costs no wall time; it is
    started only once the file's size has passed the pixel limit.
    """

    def __init__(self, path):
        self._path = path
        self._thread = None
        self._digest = None
        self._error = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="blotquant-sha256", daemon=True)
        self._thread.start()

    def _run(self):
        try:
            self._digest = sha256_of_file(self._path)
        except BaseException as error:  # noqa: BLE001 - raised again in result()
            self._error = error

    def result(self):
        """The hex digest (computed here if the thread was never started)."""
        if self._thread is None:
            return sha256_of_file(self._path)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest


def _read_head(path, label):
    try:
        if path.is_dir():
            raise ImageReadError(
                f"{label}: is a folder, not an image file; give the path of one image file"
            )
        if not path.exists():
            raise ImageReadError(f"{label}: file not found; check the path and spelling")
        if path.stat().st_size == 0:
            raise ImageReadError(
                f"{label}: the file is empty (0 bytes); copy or export the image again"
            )
        with open(path, "rb") as handle:
            return handle.read(64)
    except ImageReadError:
        raise
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise ImageReadError(
            f"{label}: cannot open the file ({reason}); "
            "check that it exists and that you may read it"
        ) from exc


def _sniff_format(head, label):
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "TIFF"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"MIME-Version:"):
        return "SCN"
    if head.startswith(b"%PDF"):
        what = "a PDF document, not an image"
    elif head.startswith(b"BM"):
        what = "a BMP image, which blotquant does not read"
    elif all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        what = "a text file, not an image"
    else:
        what = "not an image format blotquant recognises"
    raise ImageReadError(
        f"{label}: unsupported file: {what}; blotquant reads {_SUPPORTED} files, "
        "so export the blot from the imager as a 16-bit TIFF"
    )


def _one_line(exc):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _numbered(prefix, count):
    return tuple(f"{prefix}{i + 1}" for i in range(count))


# --------------------------------------------------------------------------
# TIFF (tifffile)


class _QuietTiffLog:
    """Hold back tifffile's own log lines while reading: a damaged file gets one
    clear ImageReadError from us, not a stream of tag warnings before it."""

    def __enter__(self):
        self._logger = logging.getLogger("tifffile")
        self._filter = lambda record: record.levelno >= logging.CRITICAL
        self._logger.addFilter(self._filter)
        return self

    def __exit__(self, *exc):
        self._logger.removeFilter(self._filter)
        return False


def _read_tiff(path, label, limit, *, on_checked=None):
    """Decode a TIFF; ``on_checked()`` is called once its size has passed the limit, before decoding."""
    import tifffile

    with _QuietTiffLog(), tifffile.TiffFile(path) as tif:
        # Counting pages reads only the chain of page headers; sorting them
        # into series reads every header in full (seconds for 10 000 pages).
        n_pages = len(tif.pages)
        if n_pages > MAX_TIFF_PAGES:
            raise ImageReadError(
                f"{label}: the TIFF file holds {n_pages} pages; a blot has at most {MAX_TIFF_PAGES} "
                "(one per channel or exposure): save the pages to quantify as a file of their own"
            )
        all_series = tif.series
        if not all_series:
            raise ImageReadError(f"{label}: the TIFF file holds no image; export the image again")
        first = all_series[0]
        axes, shape = first.axes, tuple(first.shape)
        if "Y" not in axes or "X" not in axes:
            raise ImageReadError(
                f"{label}: the TIFF image has no height and width axes ({axes}); "
                "export the image as an ordinary 2-D TIFF"
            )
        height, width = shape[axes.index("Y")], shape[axes.index("X")]
        if height * width == 0:
            raise ImageReadError(
                f"{label}: the image has no pixels ({width} x {height}); export the image again"
            )
        # Pages written one by one (not as one shaped stack) come back as
        # separate series; same-shaped ones are the pages of one blot.
        stacked = (
            len(all_series) > 1
            and axes == "YX"
            and all(s.shape == first.shape and s.dtype == first.dtype for s in all_series)
        )
        n_series = len(all_series) if stacked else 1
        n_channels = n_series * math.prod(shape) // (height * width)
        page = first.keyframe
        photometric = getattr(page.photometric, "name", str(page.photometric))
        if photometric == "PALETTE" and page.colormap is not None and not _is_grey_ramp(page.colormap):
            n_channels *= 3  # painted through its colours: three planes of RGB
        _check_pixel_count(label, height, width, n_channels, limit)
        if on_checked is not None:
            on_checked()

        notes = []
        if len(all_series) > 1 and not stacked:
            notes.append(
                f"the TIFF file holds {len(all_series)} images of different shapes; "
                "only the first was read"
            )
        if photometric == "MINISWHITE":
            notes.append(
                "the TIFF photometric tag says MinIsWhite (0 = white); the tag was "
                "ignored and polarity is judged from the pixel values"
            )
        compression = getattr(page.compression, "name", str(page.compression))
        lossy = "JPEG" in compression

        if stacked:
            array = np.stack([s.asarray() for s in all_series])
            axes = "I" + axes
        else:
            array = first.asarray()
        declared = _tiff_ceiling(page, array.dtype)
        if photometric == "PALETTE" and page.colormap is not None and _is_grey_ramp(page.colormap):
            # An imager's display look-up table: the indices are the data, and
            # the colours painted on the ends only mark clipped pixels.
            notes.append(
                "the TIFF palette is a grey ramp (its end colours mark clipped pixels); "
                "the palette indices were quantified, index 0 and the top index as clipped"
            )
            photometric = "MINISBLACK"
            declared = float(2 ** int(page.bitspersample) - 1)
        elif photometric == "PALETTE" and page.colormap is not None:
            array = _apply_tiff_colormap(array, page.colormap)
            axes += "S"
            photometric = "RGB"
            declared = None

    other_axes = [i for i, a in enumerate(axes) if a not in "YXS"]
    is_colour = (
        photometric in ("RGB", "YCBCR")
        and "S" in axes
        and array.shape[axes.index("S")] in (3, 4)
    )
    if is_colour:
        if math.prod(array.shape[i] for i in other_axes) > 1:
            notes.append("the TIFF file holds several colour images; only the first was read")
        index = tuple(0 if i in other_axes else slice(None) for i in range(array.ndim))
        array = array[index]
        kept = "".join(a for i, a in enumerate(axes) if i not in other_axes)
        array = np.moveaxis(array, [kept.index("Y"), kept.index("X")], [0, 1])
        return _Pixels(array, "interleaved", None, declared, lossy, notes)

    iy, ix = axes.index("Y"), axes.index("X")
    planes = np.moveaxis(array, [iy, ix], [-2, -1]).reshape(-1, height, width)
    extra = [a for a, n in zip(axes, array.shape) if a not in "YX" and n > 1]
    if planes.shape[0] == 1:
        names = ("gray",)
    elif len(extra) == 1 and extra[0] not in "SC":
        names = _numbered("page", planes.shape[0])
    else:
        names = _numbered("channel", planes.shape[0])
    return _Pixels(planes, "planes", names, declared, lossy, notes)


def _tiff_ceiling(page, dtype):
    """Saturation ceiling declared by MaxSampleValue or a short BitsPerSample."""
    if dtype.kind not in "ui":
        return None
    tag = page.tags.get("MaxSampleValue")
    if tag is not None:
        value = float(np.max(tag.value))
        if 0 < value < np.iinfo(dtype).max:
            return value
    bits = int(page.bitspersample)
    if 0 < bits < dtype.itemsize * 8:
        return float(2**bits - 1)
    return None


def _is_grey_ramp(colormap):
    """Whether a TIFF palette is a rising grey ramp, apart from (saturation) colours at its two ends.

    Examples
    --------
    >>> ramp = np.tile(np.arange(256) * 257, (3, 1))
    >>> ramp[:, 0] = (0, 65280, 0)  # green for clipped dark pixels
    >>> ramp[:, 255] = (65280, 0, 0)  # red for clipped bright pixels
    >>> _is_grey_ramp(ramp), _is_grey_ramp(ramp[:, ::-1])
    (True, False)
    """
    colormap = np.asarray(colormap, dtype=np.float64)
    if colormap.ndim != 2 or colormap.shape[0] != 3 or colormap.shape[1] < 4:
        return False
    inner = colormap[:, 1:-1]
    grey = np.all(inner[0] == inner[1]) and np.all(inner[1] == inner[2])
    return bool(grey and np.all(np.diff(inner[0]) > 0))


def _apply_tiff_colormap(indices, colormap):
    colormap = np.asarray(colormap)
    if np.all(colormap % 257 == 0):
        colormap = (colormap // 257).astype(np.uint8)
    return np.moveaxis(colormap[:, indices], 0, -1)


# --------------------------------------------------------------------------
# Bio-Rad Image Lab .scn (MIME multipart with XML headers and raw pixels)

_MIME_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_MIME_BOUNDARY_LINE = re.compile(rb"(?m)^--[^\r\n]*\r?\n")
# A body may end right before the next boundary, without a line break.
_MIME_BOUNDARY_HERE = re.compile(rb"[\r\n]*--[^\r\n]*\r?\n")
_SCN_SCAN_PART = re.compile(r"ScanImageTag(\d+)")


def _mime_parts(blob, label):
    """List the leaf parts of a MIME multipart file.

    Returns (scan number or None, Content-Description, body start, body
    length) tuples. Bodies are skipped by their Content-Length, so binary pixel data
    can never be mistaken for a boundary.
    """
    first_blank = _MIME_BLANK_LINE.search(blob)
    if first_blank is None:
        raise ImageReadError(
            f"{label}: the .scn file has no MIME header; it is truncated or not an Image Lab file"
        )
    parts, scan, pos = [], None, first_blank.end()
    while True:
        boundary = _MIME_BOUNDARY_HERE.match(blob, pos) or _MIME_BOUNDARY_LINE.search(blob, pos)
        if boundary is None:
            return parts
        pos = boundary.end()
        if not blob.startswith(b"Content-", pos) and not blob.startswith(b"X-", pos):
            continue  # a closing boundary followed by another boundary
        end = _MIME_BLANK_LINE.search(blob, pos)
        if end is None:
            raise ImageReadError(f"{label}: a .scn part header is cut off; the file is truncated")
        headers = {}
        for line in blob[pos : end.start()].decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        pos = end.end()
        description = headers.get("content-description", "")
        if headers.get("content-type", "").lower().startswith("multipart/"):
            match = _SCN_SCAN_PART.fullmatch(description)
            scan = int(match.group(1)) if match else None
            continue
        try:
            length = int(headers["content-length"])
        except (KeyError, ValueError):
            raise ImageReadError(
                f"{label}: the .scn part {description!r} has no valid Content-Length; "
                "the file is corrupt"
            ) from None
        if pos + length > len(blob):
            raise ImageReadError(
                f"{label}: the .scn part {description!r} is cut off; the file is truncated"
            )
        parts.append((scan, description, pos, length))
        pos += length


def _xml_attribute(text, element, attribute):
    match = re.search(rf"<{element}\b[^>]*\b{attribute}=\"([^\"]*)\"", text)
    return match.group(1) if match else None


def _read_scn(blob, label, limit):
    parts = _mime_parts(blob, label)
    scans = {}
    for scan, description, start, length in parts:
        if scan is not None and description in ("ImageData", "ImageHeader"):
            scans.setdefault(scan, {})[description] = (start, length)
    complete = [s for s in sorted(scans) if len(scans[s]) == 2]
    if not complete:
        raise ImageReadError(
            f"{label}: the .scn file holds no image data with its header; it is "
            "truncated or not an Image Lab image file; export the image as a 16-bit TIFF"
        )
    layouts, notes = [], []
    for scan in complete:
        start, length = scans[scan]["ImageHeader"]
        header = blob[start : start + length].decode("utf-8", "replace")
        width = _xml_attribute(header, "size_pix", "width")
        height = _xml_attribute(header, "size_pix", "height")
        if width is None or height is None or not (width.isdigit() and height.isdigit()):
            raise ImageReadError(
                f"{label}: the .scn image header gives no pixel size; the file is corrupt"
            )
        endian = re.search(r"<endian>\s*(\w+)", header)
        units = re.search(r"<units>\s*(\w+)", header)
        ceiling = _xml_attribute(header, "scanner", "data_ceiling")
        layouts.append(
            (
                int(height),
                int(width),
                ">" if endian and endian.group(1).lower() == "big" else "<",
                units.group(1).lower() if units else "int",
                float(ceiling) if ceiling and ceiling.replace(".", "", 1).isdigit() else None,
                scans[scan]["ImageData"],
            )
        )
    height, width = layouts[0][:2]
    if any(layout[:2] != (height, width) for layout in layouts):
        notes.append("the .scn file holds images of different sizes; only the first was read")
        layouts = layouts[:1]
    if height * width == 0:
        raise ImageReadError(f"{label}: the .scn image has no pixels; export the image again")
    _check_pixel_count(label, height, width, len(layouts), limit)

    planes = []
    for _, _, order, units, _, (start, length) in layouts:
        itemsize, remainder = divmod(length, height * width)
        kinds = {1: "u1", 2: "u2", 4: "f4" if units.startswith("float") else None}
        kind = kinds.get(itemsize) if remainder == 0 else None
        if kind is None:
            raise ImageReadError(
                f"{label}: the .scn image data hold {length:,} bytes, which does not fit "
                f"{width} x {height} pixels of a known type; export the image as a 16-bit TIFF"
            )
        plane = np.frombuffer(blob, np.dtype(order + kind), height * width, start)
        planes.append(plane.reshape(height, width))
    array = np.stack(planes) if len(planes) > 1 else planes[0][np.newaxis]
    names = ("gray",) if len(planes) == 1 else _numbered("channel", len(planes))
    ceiling = layouts[0][4]
    return _Pixels(array, "planes", names, ceiling, False, notes)


# --------------------------------------------------------------------------
# PNG, JPEG, GIF (Pillow)

_PILLOW_LOCK = threading.Lock()


@contextmanager
def _pillow_size_check_disabled():
    # Our own limit, checked from the header, replaces Pillow's bomb check so
    # that the user sees one message that says how to raise the limit.
    from PIL import Image

    with _PILLOW_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _read_with_pillow(blob, label, source_format, head, limit):
    import io

    from PIL import Image, ImageOps

    notes = []
    with _pillow_size_check_disabled(), Image.open(io.BytesIO(blob), formats=[source_format]) as im:
        width, height = im.size
        if width * height == 0:
            raise ImageReadError(
                f"{label}: the image has no pixels ({width} x {height}); export the image again"
            )
        samples = len(im.getbands())
        if im.mode in ("P", "PA"):  # decoded through their colours: RGB, or RGBA with transparency
            samples = 4 if im.mode == "PA" or "transparency" in im.info else 3
        _check_pixel_count(label, height, width, samples, limit)
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            notes.append(f"the {source_format} file holds {frames} frames; only the first was read")
        if source_format == "JPEG" and im.getexif().get(0x0112, 1) not in (1, None):
            notes.append("the JPEG was rotated or flipped as its EXIF orientation tag asks")
            im = ImageOps.exif_transpose(im)
        sixteen_bit_colour = source_format == "PNG" and head[24] == 16 and head[25] in (2, 4, 6)
        if sixteen_bit_colour:
            # Pillow reduces 16-bit colour PNG to 8 bits; imagecodecs keeps them.
            import imagecodecs

            array = imagecodecs.png_decode(blob)
        else:
            array = _pillow_pixels(im, label)
    if array.ndim == 2:
        return _Pixels(array[np.newaxis], "planes", ("gray",), None, source_format == "JPEG", notes)
    return _Pixels(array, "interleaved", None, None, source_format == "JPEG", notes)


def _pillow_pixels(im, label):
    mode = im.mode
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if mode in ("L", "LA", "RGB", "RGBA", "F") or mode.startswith("I"):
        return np.asarray(im)
    if mode in ("RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "La"):
        return np.asarray(im.convert("RGB" if mode != "La" else "L"))
    raise ImageReadError(
        f"{label}: unsupported pixel mode {mode!r}; export the image as a grey-scale 16-bit TIFF"
    )


# --------------------------------------------------------------------------
# From decoded pixels to a checked BlotImage


def _build_image(pixels, *, source_format, path, name, sha256, label, error):
    notes = list(pixels.notes)
    array = pixels.array
    if array.size == 0:
        raise error(
            f"{label}: the image has no pixels (shape {array.shape}); give a non-empty image"
        )
    if pixels.layout == "interleaved":
        array = _drop_alpha(array, notes)
    array = _supported_dtype(array, label, error, notes)
    if pixels.layout == "interleaved" and array.shape[-1] == 3:
        planes, names, default = _split_rgb(array, pixels.declared_full_scale)
    else:
        names = pixels.channel_names or _numbered("channel", array.shape[0])
        if pixels.layout == "interleaved":  # grey values left after dropping alpha
            array, names = np.moveaxis(array, -1, 0), ("gray",)
        planes, default = array, tuple(range(array.shape[0]))
    planes = np.ascontiguousarray(planes)
    if planes.dtype.kind == "f":
        planes = _fill_non_finite(planes, label, error, notes)

    lows, highs = _channel_ranges(planes, label, error, notes)
    magnitude = float(max(abs(lows.min()), abs(highs.max())))
    if planes.dtype.kind == "f" and 0 < magnitude < _SMALLEST_FLOAT_RANGE:
        # Noise and edge tests carry absolute floors far above such values:
        # quantifying would silently find nothing.
        raise error(
            f"{label}: every pixel value is below {_SMALLEST_FLOAT_RANGE:g} in size (largest "
            f"{_format_value(magnitude)}); export the image in its own units or rescale it"
        )
    if lows.min() == highs.max():
        raise error(
            f"{label}: blank image: every pixel is {_format_value(lows.min())}; "
            "check the exposure and export settings, or pick the right file"
        )
    for channel, (low, high) in enumerate(zip(lows, highs)):
        if low == high and len(names) > 1:
            notes.append(f"channel {names[channel]} is blank: every pixel is {_format_value(low)}")
    full_scale = _saturation_ceiling(
        planes, array.dtype, pixels.declared_full_scale, float(highs.max()), label, error, notes
    )
    bit_depth = {1: 8, 2: 16}.get(array.dtype.itemsize, 32) if array.dtype.kind == "u" else 32
    if bit_depth == 8:
        notes.append(_EIGHT_BIT_WARNING)
    if pixels.lossy:
        notes.insert(0, _LOSSY_WARNING)
    planes.flags.writeable = False
    return BlotImage(
        data=planes,
        channel_names=tuple(names),
        default_channels=default,
        full_scale=full_scale,
        bit_depth=bit_depth,
        lossy=pixels.lossy,
        source_format=source_format,
        path=path,
        name=name,
        sha256=sha256,
        warnings=tuple(notes),
    )


#: Float images whose values all lie closer to 0 than this are refused.
_SMALLEST_FLOAT_RANGE = 1e-6


def _fill_non_finite(planes, label, error, notes):
    """Float planes with each NaN or infinite pixel set to its nearest finite pixel.

    One undefined pixel (a dead pixel, a division by zero in an export) must
    not poison every sum it falls in, and the finite pixels' values must not
    change. Filling from the nearest neighbour keeps a band's local level
    instead of dragging it to the image's background; the count is reported.
    """
    finite = np.isfinite(planes)
    bad = int(planes.size - np.count_nonzero(finite))
    if bad == 0:
        return planes
    if not finite.any(axis=(1, 2)).all():
        raise error(f"{label}: a channel holds no finite pixel (all NaN or infinite); "
                    "check the export, or pick the right file")
    filled = planes.copy()
    for index in np.flatnonzero(~finite.all(axis=(1, 2))):
        # Indices of the nearest finite pixel, for every pixel of the plane.
        nearest = ndimage.distance_transform_edt(~finite[index], return_distances=False, return_indices=True)
        filled[index] = planes[index][tuple(nearest)]
    share = bad / planes.size
    notes.append(f"{bad} pixel(s) ({share:.2%}) were NaN or infinite; each was set to its nearest "
                 "finite pixel's value: check the export if this is more than a few")
    return filled


def _drop_alpha(array, notes):
    samples = array.shape[-1]
    if samples not in (2, 4):
        return array
    alpha = array[..., -1]
    if alpha.min() != alpha.max():
        notes.append("the image has transparent pixels; transparency was ignored")
    return array[..., :-1]


def _supported_dtype(array, label, error, notes):
    """Return uint8, uint16 or float32 data in native byte order, copying only if needed."""
    dtype = array.dtype
    if dtype.kind == "b":
        notes.append("1-bit (black and white) image: not fit for quantification")
        return array.astype(np.uint8) * np.uint8(255)
    if dtype.kind == "u" and dtype.itemsize in (1, 2) or dtype.kind == "f" and dtype.itemsize == 4:
        return array.astype(dtype.newbyteorder("="), copy=False)
    if dtype.kind == "f":
        return array.astype(np.float32)
    if dtype.kind in "ui":
        low, high = int(array.min()), int(array.max())
        if 0 <= low and high <= 255 and dtype.itemsize == 1:
            target = np.dtype(np.uint8)
        elif 0 <= low and high <= 65535:
            target = np.dtype(np.uint16)
        else:
            target = np.dtype(np.float32)
        return array.astype(target)
    raise error(
        f"{label}: unsupported pixel type {dtype}; give integer or floating-point grey values"
    )


def _split_rgb(rgb, declared_full_scale):
    """An RGB array to one 'gray' channel, or to luminance + red, green, blue."""
    scale = declared_full_scale or (np.iinfo(rgb.dtype).max if rgb.dtype.kind == "u" else 1.0)
    gray = _gray_of_rgb(rgb, _GRAY_RGB_TOLERANCE * scale)
    if gray is not None:
        return gray[np.newaxis], ("gray",), (0,)
    planes = np.empty((4,) + rgb.shape[:2], np.float32)
    planes[1:] = np.moveaxis(rgb, -1, 0)
    np.multiply(planes[1], LUMINANCE_WEIGHTS[0], out=planes[0])
    planes[0] += LUMINANCE_WEIGHTS[1] * planes[2]
    planes[0] += LUMINANCE_WEIGHTS[2] * planes[3]
    return planes, ("luminance", "red", "green", "blue"), (0,)


def _gray_of_rgb(rgb, tolerance):
    """The grey plane of an RGB export of a grey image, or None for a colour image."""
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / _POLARITY_SAMPLE)))
    if _largest_channel_difference(rgb[::step, ::step]) > tolerance:
        return None  # rejected cheaply on a subsample
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(red, green) and np.array_equal(red, blue):
        return red
    if _largest_channel_difference(rgb) > tolerance:
        return None
    gray = rgb.mean(axis=-1, dtype=np.float32)
    return np.rint(gray).astype(rgb.dtype) if rgb.dtype.kind == "u" else gray


def _largest_channel_difference(rgb):
    wide = np.float32 if rgb.dtype.kind == "f" else np.int32
    return max(
        float(np.nanmax(np.abs(rgb[..., a].astype(wide) - rgb[..., b])))
        for a, b in ((0, 1), (1, 2), (0, 2))
    )


def _channel_ranges(planes, label, error, notes):
    flat = planes.reshape(planes.shape[0], -1)
    if planes.dtype.kind != "f":
        return flat.min(axis=1), flat.max(axis=1)
    finite = np.isfinite(flat)
    bad = flat.size - int(np.count_nonzero(finite))
    if bad == flat.size:
        raise error(
            f"{label}: no pixel holds a finite number (all NaN or infinite); check the export"
        )
    if bad:
        notes.append(f"{bad:,} pixel values are NaN or infinite and will be ignored where possible")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lows = np.nanmin(np.where(finite, flat, np.nan), axis=1)
            highs = np.nanmax(np.where(finite, flat, np.nan), axis=1)
        return np.nan_to_num(lows, nan=0.0), np.nan_to_num(highs, nan=0.0)
    return flat.min(axis=1), flat.max(axis=1)


def _saturation_ceiling(planes, dtype, declared, data_max, label, error, notes):
    if declared is not None:
        if data_max <= declared:
            return float(declared)
        if error is ParameterError:
            raise ParameterError(
                f"{label}: full_scale={_format_value(declared)} but pixel values reach "
                f"{_format_value(data_max)}; give a full_scale at least as large as the data"
            )
        notes.append(
            f"the file declares a saturation ceiling of {_format_value(declared)} but pixel "
            f"values reach {_format_value(data_max)}; the declared ceiling was ignored"
        )
    if dtype.kind != "u":
        return None
    if dtype == np.uint16 and data_max in {2.0**k - 1 for k in range(10, 16)}:
        # 10-15-bit cameras store in 16-bit files; a pile of pixels at
        # exactly 2**k - 1 is their saturation.
        if np.count_nonzero(planes == data_max) >= 4:
            return data_max
    return float(np.iinfo(dtype).max)


def _format_value(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _as_plane(plane):
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ParameterError(f"expected one 2-D image channel, got an array of shape {plane.shape}")
    return plane


def _finite_sample(plane):
    step = max(1, int(math.ceil(math.sqrt(plane.size / _POLARITY_SAMPLE))))
    sample = plane[::step, ::step].ravel()
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    elif sample.dtype.kind not in "ui":
        sample = sample.astype(np.float64)
    if sample.size == 0:
        raise ParameterError("the image channel holds no finite value")
    return sample
