"""Peaks of 1-D profiles: the subset of :func:`scipy.signal.find_peaks` blotquant uses.

``scipy.signal`` imports ``scipy.stats`` and parses hundreds of docstrings
when it loads: 0.7 s of a one-image run, more than the measurement takes.
This module gives the same peaks, properties and widths (tested against
scipy on random, plateau-ridden and noisy profiles) with numpy alone:
local maxima and their prominences are found for all peaks at once, and
only the few peaks that survive the prominence filter are walked one by one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["find_peaks", "peak_prominences", "peak_widths"]


def _local_maxima(x):
    """Midpoints, left and right edges of every local maximum (plateaus included) of ``x``.

    As scipy: a maximum has a strictly lower neighbour on both sides; a flat
    top is one maximum at its middle (rounded down); the two end samples are
    never maxima.
    """
    n = x.size
    if n < 3:
        empty = np.array([], np.intp)
        return empty, empty, empty
    # Runs of equal values: their first and last index.
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    ends = np.concatenate((starts[1:] - 1, [n - 1]))
    values = x[starts]
    inner = np.zeros(starts.size, bool)
    if starts.size >= 3:
        inner[1:-1] = (values[1:-1] > values[:-2]) & (values[1:-1] > values[2:])
    left, right = starts[inner], ends[inner]
    return ((left + right) // 2).astype(np.intp), left.astype(np.intp), right.astype(np.intp)


def _walk_limits(x, peaks, maxima):
    """For each peak, the first and last index of the stretch scipy walks to find its prominence.

    Walking out from a peak, scipy stops at the first value above the peak.
    Beyond that value the profile climbs to the top of its hill (a local
    maximum higher than the peak, or an end of the profile), and nothing on
    that climb is lower than the stop value, so the stretch up to the nearest
    higher local maximum (or the end) has the same lowest point and the same
    bases. Finding that maximum only needs the local maxima: pointer jumping
    over them, each round one numpy pass.
    """
    n = x.size
    # Candidates: both ends (as +inf: a walk always stops there) and every local maximum.
    positions = np.concatenate(([0], maxima, [n - 1]))
    values = np.concatenate(([np.inf], x[maxima], [np.inf]))
    count = values.size
    left = np.arange(-1, count - 1)
    left[0] = 0
    while True:
        blocked = values[left] <= values
        blocked[[0, -1]] = False  # the ends are sentinels, not peaks
        if not blocked.any():
            break
        left = np.where(blocked, left[left], left)
    right = np.arange(1, count + 1)
    right[-1] = count - 1
    while True:
        blocked = values[right] <= values
        blocked[[0, -1]] = False
        if not blocked.any():
            break
        right = np.where(blocked, right[right], right)
    where = np.searchsorted(maxima, peaks) + 1  # each peak's slot among the candidates
    return positions[left[where]], positions[right[where]]


_FEW_PEAKS = 8  # below this many peaks, two searches per peak beat finding every local maximum


def _walk_limits_of_few(x, peaks):
    """:func:`_walk_limits` for a few peaks: the nearest higher value on each side, searched directly."""
    left_end = np.empty(peaks.size, np.intp)
    right_end = np.empty(peaks.size, np.intp)
    for index, peak in enumerate(peaks):  # a few peaks, not pixels
        higher = np.flatnonzero(x[:peak] > x[peak])
        left_end[index] = higher[-1] + 1 if higher.size else 0
        higher = np.flatnonzero(x[peak + 1 :] > x[peak])
        right_end[index] = peak + higher[0] if higher.size else x.size - 1
    return left_end, right_end


def _interval_minima(x, starts, stops):
    """``min(x[start:stop])`` for each pair, start < stop <= x.size."""
    if starts.size == 0:
        return np.array([], x.dtype)
    bounds = np.empty(2 * starts.size, np.intp)
    bounds[0::2], bounds[1::2] = starts, stops
    # reduceat over the even slots gives x[start:stop]; a stop at the end of x is not a valid index.
    extended = np.concatenate((x, [np.inf]))
    return np.minimum.reduceat(extended, bounds)[0::2]


def peak_prominences(x, peaks):
    """Prominence and bases of each peak, as :func:`scipy.signal.peak_prominences` with no window.

    Parameters
    ----------
    x : (N,) array
    peaks : (K,) int array
        Indices of peaks in ``x``.

    Returns
    -------
    prominences : (K,) float array
    left_bases, right_bases : (K,) int arrays
        Lowest point on either side before the profile rises above the
        peak (the one nearest the peak where the lowest value repeats).
    """
    x = np.asarray(x, dtype=np.float64)
    peaks = np.asarray(peaks, dtype=np.intp)
    if peaks.size == 0:
        return np.array([], float), np.array([], np.intp), np.array([], np.intp)
    if peaks.size <= _FEW_PEAKS:
        left_end, right_end = _walk_limits_of_few(x, peaks)
    else:
        left_end, right_end = _walk_limits(x, peaks, _local_maxima(x)[0])
    left_min = _interval_minima(x, left_end, peaks + 1)
    right_min = _interval_minima(x, peaks, right_end + 1)
    prominences = x[peaks] - np.maximum(left_min, right_min)
    left_bases, right_bases = _bases(x, peaks, left_end, right_end, left_min, right_min)
    return prominences, left_bases, right_bases


def _bases(x, peaks, left_end, right_end, left_min, right_min):
    """Positions of the lowest point on each side: the one nearest the peak (scipy walks outwards, strict <)."""
    left_bases = np.empty(peaks.size, np.intp)
    right_bases = np.empty(peaks.size, np.intp)
    for index, (peak, lo, hi) in enumerate(zip(peaks, left_end, right_end)):  # peaks, not pixels
        left_bases[index] = lo + np.flatnonzero(x[lo : peak + 1] == left_min[index])[-1]
        right_bases[index] = peak + np.flatnonzero(x[peak : hi + 1] == right_min[index])[0]
    return left_bases, right_bases


def _widths(x, peaks, rel_height, prominences, left_bases, right_bases):
    """Widths at ``rel_height`` of the prominence, with linear interpolation (scipy's ``_peak_widths``)."""
    widths = np.empty(peaks.size)
    heights = x[peaks] - prominences * rel_height
    left_ips = np.empty(peaks.size)
    right_ips = np.empty(peaks.size)
    for index, (peak, lo, hi, height) in enumerate(zip(peaks, left_bases, right_bases, heights)):
        # Left: the first index from the peak (not beyond the base) at or below the height.
        below = np.flatnonzero(x[lo + 1 : peak + 1] <= height)
        i = lo + 1 + below[-1] if below.size else lo
        left = float(i)
        if x[i] < height:
            left += (height - x[i]) / (x[i + 1] - x[i])
        below = np.flatnonzero(x[peak:hi] <= height)
        i = peak + below[0] if below.size else hi
        right = float(i)
        if x[i] < height:
            right -= (height - x[i]) / (x[i - 1] - x[i])
        left_ips[index], right_ips[index] = left, right
        widths[index] = right - left
    return widths, heights, left_ips, right_ips


def peak_widths(x, peaks, rel_height=0.5):
    """Width of each peak at ``rel_height`` of its prominence, as :func:`scipy.signal.peak_widths`.

    Returns
    -------
    widths, width_heights, left_ips, right_ips : (K,) float arrays
    """
    if rel_height < 0:
        raise ValueError("rel_height must be greater or equal to 0.0")
    x = np.asarray(x, dtype=np.float64)
    peaks = np.asarray(peaks, dtype=np.intp)
    prominences, left_bases, right_bases = peak_prominences(x, peaks)
    return _widths(x, peaks, rel_height, prominences, left_bases, right_bases)


def _keep_by_distance(peaks, priority, distance):
    """Peaks kept when lower ones within ``distance`` of a higher one are dropped (scipy's order)."""
    distance = np.ceil(distance)
    keep = np.ones(peaks.size, bool)
    for j in np.argsort(priority)[::-1]:  # peaks, highest first
        if keep[j]:
            near = np.abs(peaks - peaks[j]) < distance
            near[j] = False
            keep[near] = False
    return keep


def _bounds(condition):
    """(min, max) of a condition given as a number or a (min, max) pair."""
    if isinstance(condition, (tuple, list)):
        low, high = condition
        return low, high
    return condition, None


def _select(values, condition):
    low, high = _bounds(condition)
    keep = np.ones(values.size, bool)
    if low is not None:
        keep &= values >= low
    if high is not None:
        keep &= values <= high
    return keep


def find_peaks(x, *, height=None, distance=None, prominence=None, width=None, rel_height=0.5):
    """Peaks of ``x`` that satisfy the conditions, as :func:`scipy.signal.find_peaks`.

    Parameters
    ----------
    x : (N,) array
    height, prominence, width : float or (float, float), optional
        Least (or least and greatest) height, prominence and width of a peak.
    distance : float, optional
        Least distance between peaks; lower peaks nearer a higher one go.
    rel_height : float
        Relative height at which ``width`` is measured.

    Returns
    -------
    peaks : (K,) int array
    properties : dict
        ``peak_heights``, ``prominences``, ``left_bases``, ``right_bases``,
        ``widths``, ``width_heights``, ``left_ips``, ``right_ips``, as far as
        the conditions needed them.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("`x` must be a 1-D array")
    if distance is not None and distance < 1:
        raise ValueError("`distance` must be greater or equal to 1")
    maxima, _, _ = _local_maxima(x)
    peaks = maxima
    properties = {}

    def keep_only(keep):
        nonlocal peaks, properties
        peaks = peaks[keep]
        properties = {key: value[keep] for key, value in properties.items()}

    if height is not None:
        properties["peak_heights"] = x[peaks]
        keep_only(_select(properties["peak_heights"], height))
    if distance is not None:
        keep_only(_keep_by_distance(peaks, x[peaks], distance))
    if prominence is not None or width is not None:
        left_end, right_end = _walk_limits(x, peaks, maxima)
        left_min = _interval_minima(x, left_end, peaks + 1)
        right_min = _interval_minima(x, peaks, right_end + 1)
        properties["prominences"] = x[peaks] - np.maximum(left_min, right_min)
        if prominence is not None:
            keep = _select(properties["prominences"], prominence)
            left_end, right_end, left_min, right_min = (a[keep] for a in (left_end, right_end, left_min, right_min))
            keep_only(keep)
        # Bases only for the peaks left: they are found one peak at a time.
        properties["left_bases"], properties["right_bases"] = _bases(
            x, peaks, left_end, right_end, left_min, right_min)
    if width is not None:
        (properties["widths"], properties["width_heights"],
         properties["left_ips"], properties["right_ips"]) = _widths(
            x, peaks, rel_height, properties["prominences"], properties["left_bases"], properties["right_bases"])
        keep_only(_select(properties["widths"], width))
    return peaks, properties
