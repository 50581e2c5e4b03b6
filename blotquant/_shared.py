"""Small numeric helpers shared by several pipeline stages (private)."""

from __future__ import annotations

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
    trimmed = image[: rows * factor, : cols * factor]
    return trimmed.reshape(rows, factor, cols, factor).mean(axis=(1, 3), dtype=np.float32)


def upsample_bilinear(small, factor, shape):
    """Enlarge a block-averaged array back to ``shape`` by bilinear interpolation.

    Sample ``small[i, j]`` is taken to sit at the centre of its block,
    ``(i + 0.5) * factor - 0.5`` in full-resolution pixel coordinates; values
    beyond the outermost centres are held constant. Each of the ``factor``
    phases of an axis is one vectorised blend of two shifted copies, which
    avoids a gather over every output pixel.
    """
    factor = int(factor)
    small = np.asarray(small, dtype=np.float32)
    if factor <= 1:
        return small[: shape[0], : shape[1]].copy()
    return np.ascontiguousarray(_upsample_axis(_upsample_axis(small, factor, shape[0], 0), factor, shape[1], 1))


def _upsample_axis(array, factor, n_out, axis):
    array = np.moveaxis(array, axis, 0)
    n_in = array.shape[0]
    padded = np.concatenate([array[:1], array, array[-1:]], axis=0)
    out = np.empty((n_in * factor,) + array.shape[1:], dtype=np.float32)
    for phase in range(factor):  # factor is small (< 20): loops over phases, not pixels
        offset = (phase + 0.5) / factor - 0.5
        if offset < 0:
            low, high, weight = padded[0:n_in], padded[1 : n_in + 1], 1.0 + offset
        else:
            low, high, weight = padded[1 : n_in + 1], padded[2 : n_in + 2], offset
        out[phase::factor] = low * np.float32(1.0 - weight) + high * np.float32(weight)
    if n_out > out.shape[0]:
        out = np.concatenate([out, np.repeat(out[-1:], n_out - out.shape[0], axis=0)], axis=0)
    return np.moveaxis(out[:n_out], 0, axis)


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
