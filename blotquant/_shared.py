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
    blocks = column_sums.reshape(rows, cols, factor)
    if factor >= _SEQUENTIAL_SUM_LIMIT:
        return blocks.sum(axis=2) / np.float32(factor * factor)
    # numpy adds fewer than 8 values one after the other; adding the block's
    # columns in that order gives the same sums, five times faster than its
    # reduction over an innermost axis this short.
    block_sums = blocks[:, :, 0] + blocks[:, :, 1]
    for column in range(2, factor):
        block_sums += blocks[:, :, column]
    return block_sums / np.float32(factor * factor)


#: Below this many values numpy's sum adds them in order (above, pairwise in blocks of 8).
_SEQUENTIAL_SUM_LIMIT = 8


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


class BilinearUpsampled:
    """``upsample_bilinear(small, factor, shape) + offset``, evaluated only where it is read.

    A smooth surface (a background) is often read in a part of the image only,
    the lanes; keeping it whole costs 4 bytes a pixel. Here the columns are
    enlarged once (an array ``1 / factor`` of the full size) and the rows are
    blended when a region is read, with the same float32 blends of the same
    neighbours as :func:`upsample_bilinear`, so every value is equal to the bit.

    Parameters
    ----------
    small : (m, n) array
        The block-averaged surface.
    factor : int
        Block size it was averaged with.
    shape : (int, int)
        The full-resolution shape.
    offset : float, optional
        Added to every value read (in float32, as ``array += offset`` adds it).

    Examples
    --------
    >>> small = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> lazy = BilinearUpsampled(small, 2, (4, 6), offset=1.0)
    >>> whole = upsample_bilinear(small, 2, (4, 6)) + np.float32(1.0)
    >>> bool(np.array_equal(lazy.region(slice(1, 3), np.array([0, 5])), whole[1:3][:, [0, 5]]))
    True
    """

    def __init__(self, small, factor, shape, *, offset=None):
        self.shape = (int(shape[0]), int(shape[1]))
        self.offset = offset
        self._small = np.asarray(small, dtype=np.float32)
        self._factor = int(factor)
        if self._factor <= 1:
            self._padded = self._small[: self.shape[0], : self.shape[1]]
            self._low = np.arange(self.shape[0])
            return
        columns = _upsample_axis(self._small, self._factor, self.shape[1], 1)
        self._padded = np.concatenate([columns[:1], columns, columns[-1:]], axis=0)
        # Row r blends padded rows low[r] and low[r] + 1, as _upsample_axis does phase by phase;
        # rows below the last whole block repeat its last row.
        rows = np.minimum(np.arange(self.shape[0]), self._small.shape[0] * self._factor - 1)
        phase_offset = (rows % self._factor + 0.5) / self._factor - 0.5
        below = phase_offset < 0
        weight = np.where(below, 1.0 + phase_offset, phase_offset)
        self._low = np.where(below, rows // self._factor, rows // self._factor + 1)
        self._low_weight = (1.0 - weight).astype(np.float32)
        self._high_weight = weight.astype(np.float32)

    def region(self, rows, columns):
        """The values at ``rows`` x ``columns`` (each a slice or an int array), as a new float32 array."""
        rows = np.arange(self.shape[0])[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.intp)
        source_rows = rows if self._factor <= 1 else self._low[rows]
        if rows.size == 0:
            window, first = self._padded[:, columns], 0
        else:
            # Only the few source rows these rows blend, with the columns asked for: a
            # gather of a handful of columns (a gap's) from the whole surface costs more.
            first = int(source_rows.min())
            stop = int(source_rows.max()) + (1 if self._factor <= 1 else 2)
            window = self._padded[first:stop, columns if isinstance(columns, slice)
                                  else np.asarray(columns, dtype=np.intp)]
        if self._factor <= 1:
            values = window[source_rows - first]
        else:
            low = source_rows - first
            values = window[low] * self._low_weight[rows, None] + window[low + 1] * self._high_weight[rows, None]
        if self.offset is not None:
            values += self.offset
        return values

    def full(self):
        """The whole surface as one array (what :func:`upsample_bilinear` gives, plus the offset)."""
        values = upsample_bilinear(self._small, self._factor, self.shape)
        if self.offset is not None:
            values += self.offset
        return values


def read_region(image, rows, columns):
    """``image[rows, columns]`` of an array, or the region of a :class:`BilinearUpsampled` surface."""
    if isinstance(image, BilinearUpsampled):
        return image.region(rows, columns)
    if isinstance(rows, slice) or isinstance(columns, slice):
        return image[rows, columns]
    return image[np.asarray(rows)[:, None], np.asarray(columns)[None, :]]


def median(values, axis=None, *, overwrite_input=False):
    """``np.median(values, axis=axis)``, equal to the bit, at a fraction of its cost on float data.

    ``np.median`` partitions around the middle element(s) and, on float data,
    around the last element too, to find NaNs; on the short rows of a lane
    (15 columns) that second pivot and its NaN check cost five times the
    partition itself. This partitions around the middle only and takes the
    mean of the middle element(s) as ``np.median`` does, so every value and
    its type are the same. Float data holding a NaN, and anything else
    (integers, empty arrays), go to ``np.median``.

    Parameters
    ----------
    values : array_like
    axis : int, optional
        As for ``np.median``; None takes the median of all values.
    overwrite_input : bool
        Partition ``values`` in place (a temporary array the caller throws away).

    Examples
    --------
    >>> rows = np.array([[3.0, 1.0, 2.0], [4.0, 6.0, 5.0]])
    >>> median(rows, axis=1).tolist(), float(median([4.0, 1.0, 3.0, 2.0]))
    ([2.0, 5.0], 2.5)
    """
    values = np.asarray(values)
    size = values.size if axis is None else values.shape[axis]
    if values.dtype.kind != "f" or size == 0 or values.ndim == 0 or np.isnan(values).any():
        return np.median(values, axis=axis, overwrite_input=overwrite_input)
    if axis is None:
        values = values.ravel()  # a view where it can be, as in np.median
        axis = 0
    middle = size // 2
    kth = [middle - 1, middle] if size % 2 == 0 else [middle]
    if overwrite_input:
        values.partition(kth, axis=axis)
        part = values
    else:
        part = np.partition(values, kth, axis=axis)
    indexer = [slice(None)] * part.ndim
    indexer[axis] = slice(middle - 1, middle + 1) if size % 2 == 0 else slice(middle, middle + 1)
    return np.mean(part[tuple(indexer)], axis=axis)


def robust_sigma(values):
    """Noise standard deviation from the median absolute deviation."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return 0.0
    return float(1.4826 * median(np.abs(values - median(values)), overwrite_input=True))


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
