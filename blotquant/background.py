"""Background estimation: the level under each band that is not the protein.

Three families that blot users know, all on "signal is positive" images:

* :func:`rolling_ball_background`: ImageJ's rolling ball (radius in pixels,
  ball height equal to its radius in intensity units, as ImageJ and
  scikit-image define it), made fast by rolling on a block-averaged image.
* :func:`border_median_level`: LI-COR Image Studio's "median, top/bottom
  border": the median of a few pixel rows just above and below a band box.
* :func:`rubber_band_baseline` and :func:`valley_baseline`: baselines drawn
  under a lane profile (ImageJ Gel Analyzer's straight line between valleys).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from ._constants import BACKGROUND_METHODS  # noqa: F401 - part of this module's API
from ._shared import BilinearUpsampled, block_mean, difference_noise_sigma, median
from .errors import ParameterError

#: Background methods accepted by :func:`blotquant.quantify`.

# Rolling on a block-averaged image is exact enough while the shrunk ball's
# radius stays above a few pixels; seven keeps the ball's footprint ~150 px.
_SHRUNK_BALL_RADIUS = 7.0


def rolling_ball_background(signal, radius, *, shrink=None, correct_noise_bias=True, intensity_scale=1.0):
    """Estimate a smooth background under a signal image with a rolling ball.

    The ball rolls under the intensity surface; the background at a pixel is
    the highest the ball's top reaches there. Features narrower than the
    ball's diameter (bands) stay above the background.

    Parameters
    ----------
    signal : (M, N) array
        Image in which signal is positive (bright bands).
    radius : float
        Ball radius in pixels. Choose it larger than the tallest band
        (including its tails); a larger ball follows uneven membrane
        background less closely.
    shrink : int, optional
        Block size used to average the image before rolling. By default
        chosen so that the shrunk ball has a radius of about seven pixels,
        which keeps the cost independent of the radius. Averaging, unlike
        ImageJ's block minimum, does not bias the background low by the noise.
    intensity_scale : float
        Intensity units per pixel of the ball's height. ImageJ's and
        scikit-image's ball is ``radius`` intensity units high, so on 8-bit
        data it is steep enough to sink into faint bands; blotquant's
        pipeline passes ``65535 / full_scale`` so every image is rolled as
        its 16-bit equivalent.
    correct_noise_bias : bool
        Raise the background by the median residual of the image, which
        removes the bias of a ball resting on noise minima.

    Returns
    -------
    background : (M, N) float32 array
        A new array; ``signal`` is not modified. :func:`rolling_ball_surface`
        gives the same values evaluated only where they are read.

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.full((64, 64), 100.0)
    >>> flat[30:34, 20:44] += 50  # a band
    >>> bg = rolling_ball_background(flat, radius=10)
    >>> bool(abs(bg[32, 32] - 100.0) < 1.0)  # the band is not background
    True
    """
    return rolling_ball_surface(signal, radius, shrink=shrink, correct_noise_bias=correct_noise_bias,
                                intensity_scale=intensity_scale).full()


def rolling_ball_surface(signal, radius, *, shrink=None, correct_noise_bias=True, intensity_scale=1.0):
    """The rolling-ball background of :func:`rolling_ball_background`, evaluated only where it is read.

    The ball rolls on the block-averaged image as before; the full-resolution
    surface is interpolated from it per region asked for, so a pipeline that
    reads the lanes only never holds a whole image of background (4 bytes a
    pixel). Values are equal to the bit to :func:`rolling_ball_background`'s.

    Parameters are those of :func:`rolling_ball_background`.

    Returns
    -------
    blotquant._shared.BilinearUpsampled
        ``surface.region(rows, columns)`` gives the background there;
        ``surface.full()`` the whole array.

    Examples
    --------
    >>> import numpy as np
    >>> flat = np.full((64, 64), 100.0)
    >>> surface = rolling_ball_surface(flat, radius=10)
    >>> bool(np.array_equal(surface.region(slice(30, 34), slice(20, 44)),
    ...                     rolling_ball_background(flat, radius=10)[30:34, 20:44]))
    True
    """
    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise ParameterError(f"rolling_ball_background needs a 2-D image, got shape {signal.shape}")
    if not np.isfinite(radius) or radius <= 0:
        raise ParameterError(f"rolling-ball radius must be a positive number of pixels, got {radius}")
    if shrink is None:
        shrink = max(1, int(np.ceil(radius / _SHRUNK_BALL_RADIUS)))
    shrink = int(min(shrink, max(1, min(signal.shape) // 4)))
    signal32 = np.asarray(signal, dtype=np.float32)
    if shrink > 1:
        # Block averaging already smooths more than ImageJ's 3x3 mean.
        smoothed = signal32
    else:
        # Light smoothing, as ImageJ does, so single noisy pixels do not hold the ball down.
        smoothed = ndi.uniform_filter(signal32, size=3, mode="nearest")
    small = block_mean(smoothed, shrink)

    shrunk_radius = radius / shrink
    half = int(np.ceil(shrunk_radius))
    dy, dx = np.mgrid[-half : half + 1, -half : half + 1]
    dist2 = (dy * dy + dx * dx) * float(shrink * shrink)
    footprint = dist2 <= radius * radius
    height = (np.sqrt(np.maximum(radius * radius - dist2, 0.0)) / intensity_scale).astype(np.float32)
    height = np.where(footprint, height, 0.0)
    eroded = ndi.grey_erosion(small, footprint=footprint, structure=height, mode="nearest")
    opened = ndi.grey_dilation(eroded, footprint=footprint, structure=height, mode="nearest")
    # grey_dilation with a structure adds the ball height back on top of the erosion.
    surface = BilinearUpsampled(opened, shrink, signal.shape)
    if correct_noise_bias:
        # The ball rests on noise minima, so it sits a little below the true
        # level everywhere; most pixels are background, so their median
        # residual measures that offset.
        step = max(1, int(np.sqrt(signal.size / 200_000)))
        sampled = surface.region(slice(None, None, step), slice(None, None, step))
        offset = float(median(smoothed[::step, ::step] - sampled, overwrite_input=True))
        surface.offset = max(offset, 0.0)
    return surface


def border_median_level(lane_block, top, bottom, *, border=3):
    """Per-pixel background of a band box from the median of its borders.

    Parameters
    ----------
    lane_block : (H, W) array
        Straightened lane pixels (rows are image rows, columns run across the lane).
    top, bottom : int
        First and last row of the band box (inclusive).
    border : int
        Rows taken above ``top`` and below ``bottom``.

    Returns
    -------
    float
        The median of the border pixels (rows clipped to the block).
    """
    height = lane_block.shape[0]
    above = lane_block[max(0, top - border) : max(0, top)]
    below = lane_block[min(height, bottom + 1) : min(height, bottom + 1 + border)]
    pixels = np.concatenate([above.ravel(), below.ravel()])
    if pixels.size == 0:
        return 0.0
    return float(np.median(pixels))


def rubber_band_baseline(profile):
    """Lower convex hull of a 1-D profile (the "rubber band" baseline).

    Parameters
    ----------
    profile : (N,) array

    Returns
    -------
    baseline : (N,) float64 array, never above ``profile``.

    Examples
    --------
    >>> rubber_band_baseline(np.array([1.0, 5.0, 2.0, 6.0, 3.0])).tolist()
    [1.0, 1.5, 2.0, 2.5, 3.0]
    """
    profile = np.asarray(profile, dtype=np.float64)
    n = profile.size
    if n < 3:
        return profile.copy()
    x = np.arange(n, dtype=np.float64)
    try:
        hull = ConvexHull(np.column_stack([x, profile]))
    except QhullError:  # all points on one line: the profile is its own hull
        return profile.copy()
    # Edges whose outward normal points down form the lower hull.
    lower_edges = hull.simplices[hull.equations[:, 1] < 0]
    vertices = np.unique(np.concatenate([lower_edges.ravel(), [0, n - 1]]))
    return np.interp(x, x[vertices], profile[vertices])


def valley_baseline(profile, top, bottom, *, edge_rows=2):
    """Straight baseline between the profile at a band's two limits.

    The level at each limit is the mean of ``edge_rows`` rows just outside
    it, which steadies the line against noise (Gel Analyzer's "straight
    line from valley to valley").

    Returns
    -------
    baseline : (bottom - top + 1,) float64 array
    """
    profile = np.asarray(profile, dtype=np.float64)
    n = profile.size
    left = profile[max(0, top - edge_rows) : top + 1].mean()
    right = profile[bottom : min(n, bottom + edge_rows + 1)].mean()
    steps = np.linspace(0.0, 1.0, bottom - top + 1)
    return left + (right - left) * steps


def beyond_extent_baseline(profile, robust, top, bottom, *, guard_rows=3, edge_rows=10, noise=None, smoothed=None):
    """Straight baseline through the profile beyond a band's extent, not at its limits.

    A band's limit rows still hold some of its light (its flanks fade slowly,
    a tail more slowly still), so a line drawn between them takes part of
    the band for background, more for a wide band than for a narrow one; and
    two or three rows are a noisy estimate of a level. Each anchor here is
    the median of ``edge_rows`` rows that start ``guard_rows`` beyond the
    limit. Where a neighbouring band rises before the anchor ends (the
    smoothed detection profile ``robust`` climbs more than three noise
    sigmas above its value at the limit), the anchor keeps to the rows
    before the rise.

    Parameters
    ----------
    profile : (H,) array
        The lane's per-row sums the band is measured on.
    robust : (H,) array
        The lane's detection profile (signal above the rolling ball), used to
        see neighbours.
    top, bottom : int
        The band's limits (inclusive indices).
    guard_rows, edge_rows : int
        Rows skipped beyond each limit, and rows in each anchor.
    noise : float, optional
        Noise of ``robust`` per row; estimated from it when omitted.
    smoothed : (H,) array, optional
        ``robust`` smoothed with a Gaussian of 1.5 rows, when the caller has it
        already (computed here when omitted).

    Returns
    -------
    baseline : (bottom - top + 1,) float64 array

    Examples
    --------
    >>> rows = np.arange(80.0)
    >>> band = 100 * np.exp(-0.5 * ((rows - 40) / 4) ** 2)
    >>> line = 5 + 0.1 * rows
    >>> base = beyond_extent_baseline(line + band, band, 30, 50)
    >>> bool(np.allclose(base, line[30:51], atol=0.05))
    True
    """
    profile = np.asarray(profile, dtype=np.float64)
    robust = np.asarray(robust, dtype=np.float64)
    n = profile.size
    if smoothed is None:
        smoothed = ndi.gaussian_filter1d(robust, 1.5)
    if noise is None:
        noise = difference_noise_sigma(robust)
    # Gaussian smoothing with sigma 1.5 rows keeps 0.43 of white noise.
    rise = 3.0 * 0.43 * float(noise)

    def anchor(limit, direction):
        run = limit + direction * np.arange(guard_rows + edge_rows)
        run = run[(run >= 0) & (run < n)]
        climbing = np.flatnonzero(smoothed[run] > smoothed[limit] + rise)
        usable = run[: climbing[0]] if climbing.size else run
        if usable.size >= guard_rows + 3:
            rows = usable[guard_rows:]
        else:  # a neighbour or the lane's end comes first: the rows next to the limit
            rows = usable[: max(1, min(usable.size, 3))] if usable.size else np.array([limit])
        return float(np.median(profile[rows])), float(np.mean(rows))

    upper, upper_row = anchor(top, -1)
    lower, lower_row = anchor(bottom, 1)
    positions = np.arange(top, bottom + 1, dtype=np.float64)
    if lower_row == upper_row:
        return np.full(positions.size, upper)
    return upper + (lower - upper) * (positions - upper_row) / (lower_row - upper_row)
