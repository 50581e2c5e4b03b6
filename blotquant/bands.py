"""Bands: finding them along a lane and measuring their volume.

Detection runs on a robust lane profile (the median across a handful of
columns spread over the lane, minus the rolling-ball background), so a
speck of dust inside a lane does not become a band. Measurement runs on
every pixel of the band box: **volume = sum of (pixel - background)**.

Band limits are where the profile falls to a small fraction of the band's
height or reaches the valley towards a neighbouring band, whichever comes
first; this keeps a weaker non-specific band a few band-widths away out of
the specific band's box.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage as ndi
from .peaks import find_peaks, peak_widths

from ._shared import difference_noise_sigma, median, read_region, robust_sigma
from .background import beyond_extent_baseline, border_median_level, rubber_band_baseline, valley_baseline
from .errors import ParameterError
from .lanes import lane_columns, lane_row_runs

#: A pixel at or above this fraction of full scale is clipped.
SATURATION_LEVEL = 0.99
#: A band is saturated when this share of its pixels, and at least
#: :data:`MIN_SATURATED_PIXELS`, are clipped.
SATURATED_SHARE = 0.01
MIN_SATURATED_PIXELS = 4
#: A connected patch of this many clipped pixels makes a band saturated whatever its size.
MIN_CLIPPED_BLOB = 8

_WINDOWS = "widen"
_LIMIT_FRACTION = 0.03
_DETECTION_COLUMNS = 15  # columns sampled across a lane for the robust profile
_BORDER_ROWS = 3  # rows above and below a box for the border-median background (LI-COR default)


@dataclass
class LaneProfile:
    """The 1-D views of one lane that band finding and plotting use.

    Attributes
    ----------
    rows : (H,) int array
        Image rows of the lane, top to bottom.
    signal : (H,) float array
        Sum of the signal across the lane in each row.
    background : (H,) float array
        Sum of the 2-D background across the lane in each row (zero when no
        2-D background was estimated).
    robust : (H,) float array
        Median across the lane of signal minus background, per pixel; the
        profile bands are detected on.
    width : int
        Lane width in pixels.
    noise : float
        Per-pixel noise of the background-free signal.
    """

    rows: np.ndarray
    signal: np.ndarray
    background: np.ndarray
    robust: np.ndarray
    width: int
    noise: float

    # Band finding and every band's baseline read these; computed once per lane, not once per band.
    @cached_property
    def robust_smoothed(self):
        """``robust`` smoothed with a Gaussian of 1.5 rows (the detection profile)."""
        return ndi.gaussian_filter1d(np.asarray(self.robust, dtype=np.float64), 1.5)

    @cached_property
    def robust_noise(self):
        """Row-to-row noise of ``robust`` (:func:`blotquant._shared.difference_noise_sigma`)."""
        return difference_noise_sigma(self.robust)


class LanePixels:
    """On-demand access to one lane's straightened pixels.

    Gathering a whole lane is the costliest step on a large image, and only
    the band boxes need their pixels (saturation, border medians), so rows
    are gathered when asked for.
    """

    def __init__(self, image, rows, first, width):
        self.image = image
        self.rows = rows
        self.first = first
        self.width = int(width)

    def block(self, top, bottom):
        """Pixels of rows ``top..bottom`` (indices into the lane, inclusive, clipped)."""
        top, bottom = max(0, int(top)), min(self.rows.size - 1, int(bottom))
        if bottom < top:
            return np.empty((0, self.width), dtype=self.image.dtype)
        rows = self.rows[top : bottom + 1]
        columns = self.first[top : bottom + 1, None] + np.arange(self.width)[None, :]
        return self.image[rows[:, None], columns]


def lane_row_sums(image, rows, first, width):
    """Exact sum of each lane row, accumulated in float64.

    Each run of rows that starts at the same column is summed as one slice of
    the image (:func:`blotquant.lanes.lane_row_runs`), which gives the same
    sums as gathering the lane pixel by pixel, without an index array as large
    as the lane.
    """
    sums = np.empty(np.size(rows), dtype=np.float64)
    for start, stop, row, column in lane_row_runs(rows, first):
        block = read_region(image, slice(row, row + stop - start), slice(column, column + width))
        sums[start:stop] = block.sum(axis=1, dtype=np.float64)
    return sums


def lane_profile(signal, background, lane, *, quantum=0.0):
    """Build the :class:`LaneProfile` of one lane.

    Returns ``(profile, pixels)``: the profile and a :class:`LanePixels`
    accessor to the lane's signal pixels, which the caller needs for
    saturation and border measurements.

    Parameters
    ----------
    signal : (M, N) array
        Image with signal positive.
    background : (M, N) array, BilinearUpsampled or None
        2-D background estimate on the same grid (an array, or a surface read
        where needed such as :func:`blotquant.background.rolling_ball_surface`
        gives), or None.
    lane : mapping
        One row of a lane table (see :mod:`blotquant.lanes`).
    quantum : float
        Step between stored values (1 for integer images). Rounding adds
        noise of ``quantum / sqrt(12)`` that a flat, quantised background
        hides from a difference-based estimate, so it is the noise floor.
    """
    rows, first, width = lane_columns(lane, signal.shape)
    # A median over columns spread across the central 80 % of the lane ignores specks.
    inner = np.unique(np.linspace(0.1 * (width - 1), 0.9 * (width - 1), _DETECTION_COLUMNS).round().astype(int))
    # Noise from horizontal neighbours on a subsample of rows: structure along the lane cancels.
    sample_rows = np.arange(0, rows.size, max(1, rows.size // 200))
    residual = np.empty((rows.size, inner.size), dtype=np.float64)
    sample = np.empty((sample_rows.size, width), dtype=np.float64)
    signal_sums = np.empty(rows.size, dtype=np.float64)
    bg_profile = np.zeros(rows.size)
    # Each run of rows starting at the same column is one slice of the image,
    # read once for the sums, the detection columns and the noise sample.
    for start, stop, row, column in lane_row_runs(rows, first):
        image_rows, image_columns = slice(row, row + stop - start), slice(column, column + width)
        block = signal[image_rows, image_columns]
        signal_sums[start:stop] = block.sum(axis=1, dtype=np.float64)
        residual[start:stop] = block[:, inner]
        sampled = (sample_rows >= start) & (sample_rows < stop)
        sample[sampled] = block[sample_rows[sampled] - start]
        if background is not None:
            bg_block = read_region(background, image_rows, image_columns)
            bg_profile[start:stop] = bg_block.sum(axis=1, dtype=np.float64)
            residual[start:stop] -= bg_block[:, inner]
            sample[sampled] -= bg_block[sample_rows[sampled] - start]
    robust = median(residual, axis=1, overwrite_input=True)
    noise = robust_sigma(np.diff(sample, axis=1)) / np.sqrt(2.0) if width > 1 else difference_noise_sigma(robust)
    noise = max(noise, quantum / np.sqrt(12.0))
    profile = LaneProfile(rows, signal_sums, bg_profile, robust, width, float(noise))
    return profile, LanePixels(signal, rows, first, width)


def find_band_peaks(profile, *, min_snr=4.0, window=None):
    """Locate band peaks and limits on a lane's robust profile.

    Parameters
    ----------
    profile : LaneProfile
    min_snr : float
        A peak must stand this many noise standard deviations (of the
        smoothed robust profile) above its surroundings.
    window : (int, int), optional
        Only peaks whose maximum lies in these image rows are kept.

    Returns
    -------
    list of (int, int, int)
        ``(peak, top, bottom)`` as indices into ``profile.rows``, top to bottom.
    """
    robust = profile.robust_smoothed
    n = robust.size
    # The median of ~15 columns has about 1.25 / sqrt(15) of the pixel noise.
    noise = max(profile.robust_noise, 0.32 * profile.noise, 1e-12)
    # Gaussian smoothing with sigma 1.5 rows keeps 1/sqrt(2 sqrt(pi) 1.5) = 0.43 of white noise.
    smoothed_noise = 0.43 * noise
    # Background the estimator could not follow wanders slowly: 3 robust
    # sigmas of the band-free rows keep such swells out (capped, so a lane
    # crowded with bands does not raise the bar above its own bands).
    noise_prominence = 1.5 * min_snr * smoothed_noise
    candidates, _ = find_peaks(robust, height=min_snr * smoothed_noise, prominence=noise_prominence, width=1.5)
    band_free = np.ones(robust.size, bool)
    if candidates.size:
        _, _, left_ips, right_ips = peak_widths(robust, candidates, rel_height=0.9)
        for left, right in zip(left_ips, right_ips):  # a few peaks, not pixels
            band_free[max(0, int(left) - 2) : int(np.ceil(right)) + 3] = False
    swell = 3.0 * robust_sigma(robust[band_free]) if band_free.sum() >= 10 else 0.0
    prominence = max(noise_prominence, min(swell, 20 * smoothed_noise), 0.01 * max(robust.max(), 0.0))
    peaks, props = find_peaks(robust, height=min_snr * smoothed_noise, prominence=prominence, width=1.5)
    if window is not None:
        top_row, bottom_row = window
        keep = (profile.rows[peaks] >= top_row) & (profile.rows[peaks] <= bottom_row)
        peaks = peaks[keep]
    bands = []
    for order, peak in enumerate(peaks):
        height = robust[peak]
        limit = _LIMIT_FRACTION * height
        fwhm_rows = np.flatnonzero(robust[: peak + 1] < height / 2)
        half_top = fwhm_rows[-1] if fwhm_rows.size else 0
        fwhm_rows = np.flatnonzero(robust[peak:] < height / 2)
        half_bottom = peak + (fwhm_rows[0] if fwhm_rows.size else n - 1 - peak)
        reach = max(3, 4 * (half_bottom - half_top))
        top_bound = 0 if order == 0 else int(peaks[order - 1])
        bottom_bound = n - 1 if order == len(peaks) - 1 else int(peaks[order + 1])
        top_bound = max(top_bound, peak - reach)
        bottom_bound = min(bottom_bound, peak + reach)
        # Stop at the valley towards a neighbour or where the band has faded.
        above = robust[top_bound : peak + 1]
        faded = np.flatnonzero(above <= limit)
        top = top_bound + (faded[-1] if faded.size else int(np.argmin(above)))
        below = robust[peak : bottom_bound + 1]
        faded = np.flatnonzero(below <= limit)
        bottom = peak + (faded[0] if faded.size else int(np.argmin(below)))
        bands.append((int(peak), int(top), int(bottom)))
    return bands


def measure_band(profile, top, bottom, *, method, lane_pixels=None):
    """Volume and background of the band box ``top..bottom`` (profile indices).

    Parameters
    ----------
    profile : LaneProfile
    top, bottom : int
        First and last row index (inclusive) into ``profile.rows``.
    method : str
        ``"rolling_ball"``: the 2-D rolling-ball background under the box;
        ``"rolling_ball_valley"``: rolling ball plus a straight line between
        the residual profile's values at the limits (removes blotches the
        ball could not follow); ``"border_median"``: median of three rows
        above and below the box; ``"rubber_band"``: lower convex hull of the
        lane profile; ``"valley"``: straight line between the raw profile's
        values at the limits; ``"beyond"``: straight line through the raw
        profile beyond the band's extent (:func:`beyond_extent_baseline`);
        ``"none"``.
    lane_pixels : LanePixels, optional
        The lane's pixels, needed by ``"border_median"``.

    Returns
    -------
    volume, background : float
        Sum of (pixel - background) over the box, and the background summed
        over the box, in signal units.
    """
    raw = profile.signal[top : bottom + 1].sum()
    if method == "rolling_ball":
        background = profile.background[top : bottom + 1].sum()
    elif method == "rolling_ball_valley":
        residual = profile.signal - profile.background
        background = profile.background[top : bottom + 1].sum() + valley_baseline(residual, top, bottom).sum()
    elif method == "valley":
        background = valley_baseline(profile.signal, top, bottom).sum()
    elif method == "beyond":
        background = beyond_extent_baseline(profile.signal, profile.robust, top, bottom, noise=profile.robust_noise,
                                            smoothed=profile.robust_smoothed).sum()
    elif method == "rubber_band":
        background = rubber_band_baseline(profile.signal)[top : bottom + 1].sum()
    elif method == "border_median":
        if lane_pixels is None:
            raise ParameterError("border_median needs the lane's pixels")
        border = _BORDER_ROWS
        level = border_median_level(lane_pixels.block(top - border, bottom + border),
                                    min(top, border), min(top, border) + bottom - top, border=border)
        background = level * profile.width * (bottom - top + 1)
    elif method == "none":
        background = 0.0
    else:
        raise ParameterError(f"unknown background method {method!r}")
    return float(raw - background), float(background)


def background_error_sd(signal, band_free, height, *, flank=None, min_windows=8):
    """Spread of a band-box background estimate, measured on the lane's own band-free rows.

    Membrane texture and blotches are correlated over many rows, so the
    background under a box of ``height`` rows is known far less well than
    its pixel noise says. This slides a box of that height over the runs of
    band-free rows and, for each place, compares the box's row sum with a
    straight baseline through the mean of ``flank`` rows on each side, as
    the band's own background is estimated: the robust standard deviation
    of those differences is the background's share of a volume's
    uncertainty at that height.

    Parameters
    ----------
    signal : (H,) array
        Row sums of the lane.
    band_free : (H,) bool array
        Rows that hold no band.
    height : int
        Rows of the band's box.
    flank : int, optional
        Rows averaged on each side (default ``max(3, height // 4)``).
    min_windows : int
        Fewest box places needed; with fewer the spread is unknown (NaN).

    Returns
    -------
    float
        Standard deviation of the box's background sum, or NaN.

    Examples
    --------
    >>> rows = np.arange(200.0)
    >>> flat = 100.0 + 0.5 * rows  # a straight background: every box is estimated exactly
    >>> float(background_error_sd(flat, np.ones(200, bool), 20))
    0.0
    """
    signal = np.asarray(signal, dtype=np.float64)
    band_free = np.asarray(band_free, bool)
    height = int(height)
    flank = max(3, height // 4) if flank is None else int(flank)
    span = height + 2 * flank
    n = signal.size
    if height < 1 or n < span:
        return float("nan")
    cumulative = np.concatenate([[0.0], np.cumsum(signal)])
    free_run = np.concatenate([[0], np.cumsum(band_free)])
    starts = np.arange(n - span + 1)
    usable = (free_run[starts + span] - free_run[starts]) == span
    if usable.sum() < min_windows:
        return float("nan")
    starts = starts[usable]
    left = (cumulative[starts + flank] - cumulative[starts]) / flank
    box = cumulative[starts + flank + height] - cumulative[starts + flank]
    right = (cumulative[starts + span] - cumulative[starts + flank + height]) / flank
    return robust_sigma(box - height * (left + right) / 2.0)


def saturated_pixel_count(lane_pixels, top, bottom, full_scale):
    """Number of clipped pixels (>= 99 % of full scale) in a band box."""
    if full_scale is None:
        return 0
    box = lane_pixels.block(top, bottom) if isinstance(lane_pixels, LanePixels) else lane_pixels[top : bottom + 1]
    return int(np.count_nonzero(box >= SATURATION_LEVEL * full_scale))


def largest_clipped_blob(lane_pixels, top, bottom, full_scale):
    """Pixel count of the largest connected patch of clipped pixels in a band box."""
    if full_scale is None:
        return 0
    box = lane_pixels.block(top, bottom) if isinstance(lane_pixels, LanePixels) else lane_pixels[top : bottom + 1]
    labels, count = ndi.label(np.asarray(box) >= SATURATION_LEVEL * full_scale)
    return int(np.bincount(labels.ravel())[1:].max()) if count else 0


def is_saturated(saturated_pixels, n_pixels, largest_blob=0):
    """The saturation rule.

    A band is saturated when at least 1 % of its pixels, and at least 4, are
    clipped, or when its clipped pixels include one connected patch of
    :data:`MIN_CLIPPED_BLOB` or more: the clipped core of a large band is a
    small share of its box, but its peak is lost all the same. Scattered hot
    pixels do not form such a patch.

    Examples
    --------
    >>> is_saturated(30, 4000), is_saturated(30, 4000, largest_blob=12), is_saturated(45, 4000)
    (False, True, True)
    """
    return saturated_pixels >= max(MIN_SATURATED_PIXELS, SATURATED_SHARE * n_pixels) or (
        largest_blob >= MIN_CLIPPED_BLOB)


def band_centroid(profile, top, bottom, peak):
    """Intensity-weighted centre row (image coordinates) of a band's upper half."""
    values = profile.robust[top : bottom + 1]
    height = profile.robust[peak]
    weights = np.where(values >= height / 2, values, 0.0)
    if weights.sum() <= 0:
        return float(profile.rows[peak])
    index = np.arange(top, bottom + 1)
    return float(profile.rows[0] + (weights * index).sum() / weights.sum())


def harmonise_band_windows(profiles, found):
    """Give the bands of one molecular-weight row the same integration window.

    A careful analyst measures a band row with one box size in every lane;
    limits found lane by lane would shrink for weak bands, whose faint tails
    sink into the noise, and bias weak bands low. Bands are linked across
    neighbouring lanes into rows (nearest peak within one band width), and
    each row's extent above and below the peak is the height-weighted median
    of its strong members. Windows never cross the valley towards another
    band of the same lane.

    Parameters
    ----------
    profiles : list of LaneProfile
        The lanes of one strip, left to right (sharing their rows).
    found : list of list of (peak, top, bottom)
        What :func:`find_band_peaks` returned for each lane.

    Returns
    -------
    list of list of (peak, top, bottom)
        The same bands with harmonised limits.
    """
    rows = []  # each row: {"y": last peak index, "members": [(lane, band)]}
    for lane_index, bands in enumerate(found):
        taken = set()
        for band_index, (peak, top, bottom) in enumerate(bands):
            tolerance = max(3, bottom - top)
            best, best_distance = None, None
            for row_index, row in enumerate(rows):
                distance = abs(row["y"] - peak)
                if row_index in taken or distance > tolerance:
                    continue
                if best_distance is None or distance < best_distance:
                    best, best_distance = row_index, distance
            if best is None:
                rows.append({"y": peak, "members": []})
                best = len(rows) - 1
            rows[best]["y"] = peak
            rows[best]["members"].append((lane_index, band_index))
            taken.add(best)

    adjusted = [list(bands) for bands in found]
    for row in rows:
        members = row["members"]
        heights = np.array([profiles[l].robust[found[l][b][0]] for l, b in members], dtype=float)
        above = np.array([found[l][b][0] - found[l][b][1] for l, b in members], dtype=float)
        below = np.array([found[l][b][2] - found[l][b][0] for l, b in members], dtype=float)
        weights = np.clip(heights, 0, None)
        if weights.sum() <= 0:
            continue
        extent_above = _weighted_median(above, weights)
        extent_below = _weighted_median(below, weights)
        # Each band's width at half its height, against the row's: a band
        # wider than its row (more load, salt, a bubble) gets a window as much
        # wider, up to threefold; none gets a shorter one.
        fwhm = np.array([_half_height_width(profiles[l], found[l][b][0]) for l, b in members])
        row_fwhm = _weighted_median(fwhm, weights)
        ratio = np.clip(fwhm / max(row_fwhm, 1e-9), 1.0, 3.0)
        # Widths measured within a quarter of the row's are the row's width plus noise.
        ratio[ratio < 1.25] = 1.0
        widening = dict(zip(members, ratio))
        for lane_index, band_index in members:
            profile = profiles[lane_index]
            peaks = [band[0] for band in found[lane_index]]
            peak = peaks[band_index]
            low_bound = 0
            if band_index > 0:
                previous = peaks[band_index - 1]
                low_bound = previous + int(np.argmin(profile.robust[previous : peak + 1]))
            high_bound = profile.rows.size - 1
            if band_index < len(peaks) - 1:
                following = peaks[band_index + 1]
                high_bound = peak + int(np.argmin(profile.robust[peak : following + 1]))
            scale = widening[(lane_index, band_index)] if _WINDOWS == "widen" else 1.0
            own_top, own_bottom = found[lane_index][band_index][1:]
            # Widened no further than the band's own profile reaches (its fade or
            # the valley towards a neighbour), never narrower than its row's window.
            top = int(max(low_bound, min(round(peak - extent_above), max(own_top, round(peak - scale * extent_above)))))
            bottom = int(min(high_bound, max(round(peak + extent_below),
                                             min(own_bottom, round(peak + scale * extent_below)))))
            adjusted[lane_index][band_index] = (peak, top, max(top, bottom))
    return adjusted


def _half_height_width(profile, peak):
    """Width (rows) of a band at half its height on the smoothed detection profile."""
    smoothed = ndi.gaussian_filter1d(profile.robust, 1.5)
    return float(peak_widths(smoothed, [int(peak)], rel_height=0.5)[0][0])


def _weighted_median(values, weights):
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def gap_residual_profile(signal, background, lanes, index, *, cache=None):
    """Median signal above background, per row, in each gap beside one lane.

    The gaps are the columns between a lane and its neighbours (or, for an
    outer lane, a strip of the typical gap width outside it). Returns an
    array of shape (n_gaps, rows), or None when the lane has no gap wider
    than two pixels on either side.

    ``cache``, a dict kept over the lanes of one image, holds each gap's
    profile by its geometry, so the gap between two lanes of the same rows and
    tilt is measured once, not once for each of them.
    """
    lane = lanes[index]
    gap = max(2.0, float(np.median([b["x_left"] - a["x_right"] for a, b in zip(lanes[:-1], lanes[1:])]))
              if len(lanes) > 1 else 0.0)
    left_edge = lanes[index - 1]["x_right"] if index > 0 else lane["x_left"] - gap
    right_edge = lanes[index + 1]["x_left"] if index < len(lanes) - 1 else lane["x_right"] + gap
    pieces = []
    for x_left, x_right in ((left_edge + 1, lane["x_left"] - 1), (lane["x_right"] + 1, right_edge - 1)):
        if x_right - x_left < 2 or x_left < 0 or x_right > signal.shape[1] - 1:
            continue
        key = (x_left, x_right, lane["y_top"], lane["y_bottom"], lane["slope"])
        if cache is None or key not in cache:
            gap_lane = {**lane, "x_left": x_left, "x_right": x_right}
            gap_profile = _gap_median(signal, background, *lane_columns(gap_lane, signal.shape))
            if cache is None:
                pieces.append(gap_profile)
                continue
            cache[key] = gap_profile
        pieces.append(cache[key])
    if not pieces:
        return None
    return np.array(pieces)


def _gap_median(signal, background, rows, first, width):
    """Per-row median of signal minus background over up to 9 columns spread across a gap."""
    columns = np.unique(np.linspace(0, width - 1, min(width, 9)).round().astype(int))
    residual = []
    for start, stop, row, column in lane_row_runs(rows, first):
        image_rows = slice(row, row + stop - start)
        residual.append(signal[image_rows, column + columns] - read_region(background, image_rows, column + columns))
    return median(np.concatenate(residual), axis=1, overwrite_input=True)


def reject_off_lane_peaks(profile, gap_profile, found, *, max_gap_share=0.5):
    """Drop peaks that are as strong beside the lane as in it.

    A protein band stops at the lane's edges; a blotch of membrane
    background, a smear of ink or a hair runs on into the gaps. A peak whose
    signal in the neighbouring gaps reaches ``max_gap_share`` of its signal
    in the lane is background, not a band.
    """
    if gap_profile is None:
        return found
    kept = []
    for peak, top, bottom in found:
        half = max(1, (bottom - top) // 4)
        rows = slice(max(top, peak - half), min(bottom, peak + half) + 1)
        in_lane = float(np.mean(profile.robust[rows]))
        # The quieter side decides: a neighbour's band may spill into one gap.
        beside = float(np.min(np.mean(gap_profile[:, rows], axis=1)))
        if in_lane > 0 and beside < max_gap_share * in_lane:
            kept.append((peak, top, bottom))
    return kept
