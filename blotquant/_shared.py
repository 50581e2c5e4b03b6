"""Small numeric helpers shared by several pipeline stages (private)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np


def block_mean(image, factor):
    """Downsample a 2-D array by averaging ``factor`` x ``factor`` blocks.

    Rows and columns that do not fill a whole block are dropped, so the
    result has shape ``(H // factor, W // factor)``.
    """
    factor = int(factor)
    if factor <= 1:
        return np.asarray(image, dtype=np.float32)
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    trimmed = np.asarray(image[: rows * factor, : cols * factor], dtype=np.float32)
    # Summing whole rows first, then neighbouring columns, runs on contiguous
    # memory and is about three times faster than a mean over both block axes.
    column_sums = trimmed.reshape(rows, factor, cols * factor).sum(axis=1)
    return column_sums.reshape(rows, cols, factor).sum(axis=2) / np.float32(factor * factor)


def upsample_bilinear(small, factor, shape):
    """Enlarge a block-averaged array back to ``shape`` by bilinear interpolation.

    Sample ``small[i, j]`` is taken to sit at the centre of its block,
    ``(i + 0.5) * factor - 0.5`` in full-resolution pixel coordinates; values
    beyond the outermost centres are held constant. Each of the ``factor``
    phases of an axis is one vectorised blend of two shifted copies, which
    avoids a gather over every output pixel; the result is C-contiguous.
    """
    factor = int(factor)
    small = np.asarray(small, dtype=np.float32)
    if factor <= 1:
        return small[: shape[0], : shape[1]].copy()
    # Columns first, while the array is still short; then rows, whose phases
    # are whole contiguous rows of the output.
    return _upsample_axis(_upsample_axis(small, factor, shape[1], 1), factor, shape[0], 0)


def _upsample_axis(array, factor, n_out, axis):
    n_in = array.shape[axis]

    def take(start, stop):
        index = [slice(None)] * array.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    padded = np.concatenate([array[take(0, 1)], array, array[take(n_in - 1, n_in)]], axis=axis)
    out_shape = list(array.shape)
    out_shape[axis] = max(n_out, n_in * factor)
    out = np.empty(out_shape, dtype=np.float32)
    for phase in range(factor):  # factor is small (< 20): loops over phases, not pixels
        offset = (phase + 0.5) / factor - 0.5
        if offset < 0:
            low, high, weight = padded[take(0, n_in)], padded[take(1, n_in + 1)], 1.0 + offset
        else:
            low, high, weight = padded[take(1, n_in + 1)], padded[take(2, n_in + 2)], offset
        target = [slice(None)] * array.ndim
        target[axis] = slice(phase, n_in * factor, factor)
        out[tuple(target)] = low * np.float32(1.0 - weight) + high * np.float32(weight)
    if n_out > n_in * factor:  # rows beyond the last whole block repeat the last value
        out[take(n_in * factor, n_out)] = out[take(n_in * factor - 1, n_in * factor)]
    return out[take(0, n_out)]


def robust_sigma(values):
    """Noise standard deviation from the median absolute deviation."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def difference_noise_sigma(profile):
    """Noise of a 1-D profile estimated from its first differences.

    Differences cancel slow structure (bands, background), so the MAD of
    ``diff(profile) / sqrt(2)`` measures the pixel-to-pixel noise alone.
    """
    profile = np.asarray(profile, dtype=np.float64)
    if profile.size < 3:
        return 0.0
    return robust_sigma(np.diff(profile)) / np.sqrt(2.0)


def safe_file_stem(text):
    """A file-name-safe stem for a target name (``p-mTOR`` -> ``p-mTOR``, ``a/b c`` -> ``a_b_c``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return stem or "target"


def read_toml(path, error, *, missing):
    """Parse a TOML file, or raise ``error`` in one line: ``missing`` when it does not exist, or its syntax error."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc}); fix the syntax") from None


def read_csv_columns(path, required, *, what, error, hint=""):
    """A CSV table a user gives (lane geometry, ladder marks), with its required columns checked.

    Parameters
    ----------
    path : str or Path
    required : sequence of str
        Columns the table must have.
    what : str
        What the table is, for the messages ("lane geometry table").
    error : type
        The :class:`~blotquant.errors.BlotQuantError` subclass to raise.
    hint : str
        Said after the missing columns (what they hold).

    Raises
    ------
    error
        One line naming the file: unreadable, or a column missing.
    """
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read the {what} ({exc})") from None
    missing = [name for name in required if name not in table.columns]
    if missing:
        raise error(f"{path}: the {what} needs the column(s) {', '.join(missing)}{hint}")
    return table
