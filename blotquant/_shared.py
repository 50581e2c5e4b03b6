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
    beyond the outermost centres are held constant.
    """
    if factor <= 1 and small.shape == tuple(shape):
        return np.asarray(small, dtype=np.float32)

    def axis_weights(n_out, n_in):
        pos = (np.arange(n_out, dtype=np.float64) + 0.5) / factor - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        low = np.floor(pos).astype(np.intp)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, (pos - low).astype(np.float32)

    r0, r1, wr = axis_weights(shape[0], small.shape[0])
    c0, c1, wc = axis_weights(shape[1], small.shape[1])
    rows = small[r0] * (1 - wr)[:, None] + small[r1] * wr[:, None]
    return rows[:, c0] * (1 - wc)[None, :] + rows[:, c1] * wc[None, :]


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
