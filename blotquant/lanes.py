"""Lane geometry: finding the lanes of a blot, or taking them from the caller.

A lane is a band of columns that may lean slightly (a blot turned by a
degree or two on the imager). Its geometry is one row of a tidy table:

``strip, lane, x_center, x_left, x_right, y_top, y_bottom, slope, width, empty``

``x_*`` are columns at the strip's middle row ``(y_top + y_bottom) / 2``;
at another row ``y`` every column is shifted by ``slope * (y - y_mid)``.
Strips (membrane pieces imaged one above the other) are numbered from the
top and lanes from the left within their strip, both from 1.

Detection works on a block-averaged copy of the image (about 1000 pixels
on its longer side), so its cost barely depends on the image size:

1. membrane strips from the rows' low-percentile level (gaps without
   membrane differ from membrane);
2. the tilt that makes the column projection of the background-free
   signal sharpest;
3. the lane pitch from the projection's autocorrelation, then a regular
   grid fitted to it (wells are cut by a comb, so lanes are evenly spaced;
   this also places empty lanes and ignores marks between lanes);
4. each lane's centre and edges from its own plateau in the projection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.signal import find_peaks, peak_widths

from ._shared import block_mean, difference_noise_sigma, robust_sigma
from .background import rolling_ball_background
from .errors import LaneDetectionError, ParameterError

LANE_COLUMNS = ["strip", "lane", "x_center", "x_left", "x_right", "y_top", "y_bottom", "slope", "width", "empty"]

_DETECTION_SIZE = 1000  # longer side of the working copy used for detection


def detect_lanes(signal, *, n_lanes=None, strips=None, max_tilt_deg=3.0):
    """Find the lanes of a blot image automatically.

    Parameters
    ----------
    signal : (M, N) array
        Image in which signal is positive (see :func:`blotquant.io.to_signal`).
    n_lanes : int, optional
        Expected number of lanes in each strip. When given, exactly this many
        lanes are returned per strip, empty lanes included; when omitted, the
        number is inferred from the lanes that carry signal.
    strips : sequence of (int, int), optional
        ``(y_top, y_bottom)`` rows of each membrane strip; found automatically
        when omitted.
    max_tilt_deg : float
        Largest rotation of the blot searched for, in degrees.

    Returns
    -------
    lanes : pandas.DataFrame
        One row per lane with the columns in :data:`LANE_COLUMNS`.

    Raises
    ------
    LaneDetectionError
        When no lane structure can be found; the message says to pass the
        number of lanes or their geometry.
    """
    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise ParameterError(f"detect_lanes needs a 2-D image, got shape {signal.shape}")
    if n_lanes is not None and (int(n_lanes) != n_lanes or n_lanes < 1):
        raise ParameterError(f"the number of lanes must be a positive whole number, got {n_lanes}")
    factor = max(1, int(round(max(signal.shape) / _DETECTION_SIZE)))
    small = block_mean(signal, factor)
    residual = _band_residual(small)

    if strips is None:
        small_strips = detect_strips(small)
    else:
        given = _check_strips(strips, signal.shape)
        small_strips = [(top // factor, bottom // factor) for top, bottom in given]
    slope = estimate_tilt(residual, max_tilt_deg=max_tilt_deg)

    rows = []
    for strip_number, (top, bottom) in enumerate(small_strips, start=1):
        block = residual[top : bottom + 1]
        y_mid = (top + bottom) / 2.0
        projection = sheared_column_profile(block * _band_row_weights(block)[:, None], slope, y_ref=y_mid - top)
        centers, lefts, rights, empty = _lanes_from_projection(projection, n_lanes=n_lanes, strip=strip_number)
        full_top = top * factor
        full_bottom = min(signal.shape[0] - 1, (bottom + 1) * factor - 1)
        if strips is not None:
            full_top, full_bottom = _check_strips(strips, signal.shape)[strip_number - 1]
        # Low-res column c covers full-res columns [c*f, (c+1)*f).
        for lane_number, (left, right, is_empty) in enumerate(zip(lefts, rights, empty), start=1):
            rows.append(
                {
                    "strip": strip_number,
                    "lane": lane_number,
                    "x_left": float(max(0.0, left * factor)),
                    "x_right": float(min(signal.shape[1] - 1.0, (right + 1) * factor - 1)),
                    "y_top": int(full_top),
                    "y_bottom": int(full_bottom),
                    "slope": float(slope),
                    "empty": bool(is_empty),
                }
            )
    return _finish_table(rows)


def lanes_from_geometry(geometry, image_shape):
    """Validate caller-given lane geometry and fill in defaults.

    Parameters
    ----------
    geometry : pandas.DataFrame or sequence of dict
        Needs ``x_left`` and ``x_right`` per lane; ``strip`` (default 1),
        ``lane`` (default: numbered left to right), ``y_top``/``y_bottom``
        (default: the whole image height) and ``slope`` (default 0) are
        optional.
    image_shape : tuple of int
        ``(rows, columns)`` of the image the geometry belongs to.

    Returns
    -------
    lanes : pandas.DataFrame with the columns in :data:`LANE_COLUMNS`.
    """
    table = pd.DataFrame(geometry).copy()
    missing = [name for name in ("x_left", "x_right") if name not in table.columns]
    if missing:
        raise ParameterError(f"lane geometry lacks column(s) {', '.join(missing)}; give x_left and x_right per lane")
    if table.empty:
        raise ParameterError("lane geometry is empty; give at least one lane")
    height, width = image_shape[:2]
    table["strip"] = table["strip"].astype(int) if "strip" in table else 1
    table["y_top"] = table["y_top"].fillna(0).astype(int) if "y_top" in table else 0
    table["y_bottom"] = table["y_bottom"].fillna(height - 1).astype(int) if "y_bottom" in table else height - 1
    table["slope"] = table["slope"].fillna(0.0).astype(float) if "slope" in table else 0.0
    table["empty"] = table["empty"].fillna(False).astype(bool) if "empty" in table else False
    if "lane" not in table:
        table = table.sort_values(["strip", "x_left"], kind="stable")
        table["lane"] = table.groupby("strip").cumcount() + 1
    for name in ("x_left", "x_right"):
        table[name] = table[name].astype(float)
    bad = table[(table["x_right"] <= table["x_left"]) | (table["x_left"] < -0.5) | (table["x_right"] > width - 0.5)]
    if not bad.empty:
        row = bad.iloc[0]
        raise ParameterError(
            f"lane {int(row['lane'])} of strip {int(row['strip'])}: x_left={row['x_left']:.1f}, "
            f"x_right={row['x_right']:.1f} do not describe a lane inside an image {width} pixels wide"
        )
    bad = table[(table["y_top"] < 0) | (table["y_bottom"] >= height) | (table["y_bottom"] <= table["y_top"])]
    if not bad.empty:
        row = bad.iloc[0]
        raise ParameterError(
            f"lane {int(row['lane'])} of strip {int(row['strip'])}: rows {row['y_top']}-{row['y_bottom']} "
            f"are not inside an image {height} pixels high"
        )
    duplicated = table.duplicated(["strip", "lane"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise ParameterError(
            f"lane {int(row['lane'])} of strip {int(row['strip'])} is given twice in the lane geometry"
        )
    return _finish_table(table.to_dict("records"))


def lane_columns(lane, shape):
    """Rows, first column per row and width of one lane (whole pixels).

    Each row of the lane takes whole pixel columns shifted with the lane's
    tilt (no interpolation, so sums over a lane are sums of real pixels):
    pixel ``j`` of row ``i`` is ``image[rows[i], first[i] + j]``.

    Returns
    -------
    rows : (H,) int array
    first : (H,) int array
        The lane's leftmost column in each row, following its tilt.
    width : int
    """
    rows = np.arange(int(lane["y_top"]), int(lane["y_bottom"]) + 1)
    y_mid = (lane["y_top"] + lane["y_bottom"]) / 2.0
    width = min(shape[1], max(1, int(round(lane["x_right"] - lane["x_left"])) + 1))
    first = np.rint(lane["x_left"] + lane["slope"] * (rows - y_mid)).astype(np.intp)
    first = np.clip(first, 0, shape[1] - width)
    return rows, first, width


def estimate_tilt(residual, *, max_tilt_deg=3.0, step_deg=0.25):
    """Slope (dx/dy) of the lanes of a turned blot.

    A turned blot tilts its lanes and its bands alike. The projection of the
    band pixels along the lanes (columns) and along the bands (rows) is
    most concentrated at the true angle, so the sum of squares of both
    projections is scored over a scan of angles; bands across a wide blot
    carry most of the evidence, lanes on tall blots add to it. The best angle
    is refined by a parabola through its neighbours.
    """
    if max_tilt_deg <= 0:
        return 0.0
    angles = np.arange(-max_tilt_deg, max_tilt_deg + step_deg / 2, step_deg)
    noise = robust_sigma(np.diff(residual[:: max(1, residual.shape[0] // 200)], axis=1)) / np.sqrt(2.0)
    strong = np.where(residual > 5 * noise, residual, 0).astype(np.float32)
    if not strong.any():
        return 0.0
    # Only the band pixels take part, at most ~100k of them.
    ys, xs = np.nonzero(strong)
    keep = slice(None, None, max(1, ys.size // 100_000))
    ys, xs = ys[keep], xs[keep]
    values = strong[ys, xs].astype(np.float64)
    y_ref, x_ref = (strong.shape[0] - 1) / 2.0, (strong.shape[1] - 1) / 2.0
    lane_scores = np.empty(angles.size)
    band_scores = np.empty(angles.size)
    for index, angle in enumerate(angles):  # ~25 angles, each fully vectorised
        tangent = np.tan(np.radians(angle))
        # Turning by +angle moves a lane's x by -tan per row down and a band's y by +tan per column right.
        lane_scores[index] = np.sum(_projection(xs + tangent * (ys - y_ref), values) ** 2)
        band_scores[index] = np.sum(_projection(ys - tangent * (xs - x_ref), values) ** 2)
    scores = lane_scores / lane_scores.mean() + band_scores / band_scores.mean()
    best = int(np.argmax(scores))
    straight = int(np.argmin(np.abs(angles)))
    # Most blots are imaged straight: a tilt must earn its place by sharpening
    # the projections clearly, not by a flat score's noise.
    if scores[best] - scores[straight] < 0.01 * scores[straight]:
        return 0.0
    angle = angles[best]
    if 0 < best < angles.size - 1:
        left, mid, right = scores[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        if curvature < 0:
            angle += step_deg * 0.5 * (left - right) / curvature
    if np.ptp(scores) <= 1e-6:
        return 0.0
    return float(-np.tan(np.radians(angle)))


def _projection(positions, values):
    """Histogram of ``values`` at fractional ``positions``, split between neighbours."""
    positions = positions - np.floor(positions.min())
    low = np.floor(positions).astype(np.intp)
    weight_high = positions - low
    size = int(low.max()) + 2
    return np.bincount(low, values * (1 - weight_high), size) + np.bincount(low + 1, values * weight_high, size)


def sheared_column_profile(image, slope, *, y_ref):
    """Sum each lane-parallel line of ``image``: the projection along ``slope``.

    Pixel ``(y, x)`` is credited to column ``x - slope * (y - y_ref)`` of the
    output, split linearly between the two nearest columns.
    """
    n_rows, n_cols = image.shape
    offsets = slope * (np.arange(n_rows) - y_ref)
    positions = np.arange(n_cols)[None, :] - offsets[:, None]
    low = np.floor(positions)
    weight_high = (positions - low).ravel()
    low = low.astype(np.intp).ravel()
    values = image.ravel().astype(np.float64)
    valid_low = (low >= 0) & (low < n_cols)
    valid_high = (low + 1 >= 0) & (low + 1 < n_cols)
    profile = np.bincount(low[valid_low], weights=values[valid_low] * (1 - weight_high[valid_low]), minlength=n_cols)
    high_weights = values[valid_high] * weight_high[valid_high]
    profile += np.bincount(low[valid_high] + 1, weights=high_weights, minlength=n_cols)[:n_cols]
    return profile


def detect_strips(image, *, min_gap_frac=0.01, min_strip_frac=0.12):
    """Find membrane strips imaged one above the other.

    Rows without membrane (the gap between two strips) carry less signal
    than membrane, with sharp edges. The membrane level of a row is its 10th
    percentile, which the spaces between lanes set even in rows crossed by
    bands.

    Returns
    -------
    list of (int, int)
        ``(y_top, y_bottom)`` of each strip in ``image`` rows; the whole
        height when there is only one strip.
    """
    height = image.shape[0]
    whole = [(0, height - 1)]
    if height < 20:
        return whole
    row_level = np.percentile(image, 10, axis=1)
    row_level = ndi.median_filter(row_level, size=max(3, height // 100 | 1), mode="nearest")
    membrane = np.median(row_level)
    # Without membrane there is less signal (black for chemiluminescence,
    # clear film for a scan); rows crossed by bands only ever rise.
    deviation = np.clip(membrane - row_level, 0, None)
    # A gap must differ from membrane by several pixel-noise sigmas, not just
    # by the faint halo that band rows leave in the spaces between lanes.
    pixel_noise = robust_sigma(np.diff(image[:: max(1, height // 200)], axis=1)) / np.sqrt(2.0)
    extreme = deviation.max()
    if extreme < max(6 * pixel_noise, 1e-9):
        return whole
    is_gap = deviation > 0.5 * extreme
    labels, n_runs = ndi.label(is_gap)
    if n_runs == 0:
        return whole
    strips = []
    start = 0
    edge = max(2, int(0.01 * height))
    for run in ndi.find_objects(labels):
        top, stop = run[0].start, run[0].stop
        if stop - top < min_gap_frac * height:
            continue
        # A membrane edge is a sharp step; a smooth background swell is not a gap.
        step_needed = 0.6 * np.abs(row_level[top:stop] - membrane).mean()
        def step_at(row):
            return abs(row_level[min(height - 1, row + edge)] - row_level[max(0, row - edge - 1)])

        sharp_top = top == 0 or step_at(top) >= step_needed
        sharp_bottom = stop == height or step_at(stop) >= step_needed
        if not (sharp_top and sharp_bottom):
            continue
        if top - start >= min_strip_frac * height:
            strips.append((start, top - 1))
        start = stop
    if height - start >= min_strip_frac * height:
        strips.append((start, height - 1))
    return strips if strips else whole


def _check_strips(strips, shape):
    checked = []
    for top, bottom in strips:
        if not (0 <= top < bottom < shape[0]):
            raise ParameterError(f"strip rows {top}-{bottom} are not inside an image {shape[0]} pixels high")
        checked.append((int(top), int(bottom)))
    return checked


def _band_row_weights(block):
    """Weights that let rows crossed by bands dominate the column projection.

    Membrane edges, scratches and lane smears run through every row; bands
    sit in a few. Weighting rows by their band signal keeps the former from
    passing for lanes.
    """
    row_signal = block.sum(axis=1)
    top = np.percentile(row_signal, 99)
    if top <= 0:
        return np.ones(block.shape[0])
    return np.clip(row_signal / top, 0, 1) ** 2


def _band_residual(small):
    """Band signal above a smooth membrane background, with outliers capped."""
    radius = max(8.0, min(small.shape) / 12.0)
    residual = small - rolling_ball_background(small, radius)
    cap = np.percentile(residual, 99.7)
    return np.clip(residual, 0, cap if cap > 0 else None)


def _lanes_from_projection(projection, *, n_lanes, strip):
    """Lane centres and edges (projection columns) from a column projection."""
    n_cols = projection.size
    profile = ndi.gaussian_filter1d(projection, 1.0)
    profile = profile - np.percentile(profile, 5)
    noise = difference_noise_sigma(projection)
    peak_level = profile.max()
    if peak_level <= 8 * noise or peak_level <= 0:
        raise LaneDetectionError(
            f"strip {strip}: no lanes with signal were found; give the lanes yourself "
            "(--lane-geometry CSV, or lane_geometry= in Python)"
        )
    pitch = _estimate_pitch(profile)
    if n_lanes:
        # The caller's count and the span of the signal give a pitch too; when
        # the periodicity disagrees with it badly (bands curved within their
        # lane look like two lanes each), the count wins.
        signal_columns = np.flatnonzero(ndi.gaussian_filter1d(profile, 2.0) > 0.1 * profile.max())
        span = signal_columns[-1] - signal_columns[0] + 1 if signal_columns.size else n_cols
        span_pitch = span / float(n_lanes)
        if pitch is not None and n_lanes > 1:
            # Of the periodicity's multiples, the one the count agrees with.
            multiples = pitch * np.array([1 / 3, 1 / 2, 1, 2, 3, 4])
            closest = multiples[np.argmin(np.abs(np.log(multiples / span_pitch)))]
            pitch = closest if abs(closest / span_pitch - 1) <= 0.3 else span_pitch
        elif pitch is None:
            pitch = span_pitch if n_lanes > 1 else None

    if pitch is None:
        # A single lane: take the plateau around the strongest column.
        centers = np.array([float(np.argmax(profile))])
    else:
        smooth = ndi.gaussian_filter1d(projection, max(1.0, pitch / 8.0))
        smooth = smooth - np.percentile(smooth, 5)
        threshold = max(6 * noise * np.sqrt(1.0 / max(1.0, pitch / 8.0)), 0.02 * smooth.max())
        peaks, _ = find_peaks(smooth, distance=max(1, int(0.6 * pitch)), prominence=threshold)
        if peaks.size == 0:
            peaks = np.array([int(np.argmax(smooth))])
        if peaks.size > 2:
            # Pen marks and scratches are narrower or wider than lanes: they
            # must not stretch the span that sets the lane count.
            widths = peak_widths(smooth, peaks, rel_height=0.5)[0]
            typical = np.median(widths)
            lane_like = (widths >= 0.5 * typical) & (widths <= 1.8 * typical)
            if lane_like.sum() >= 2:
                peaks = peaks[lane_like]
        if n_lanes is None:
            count = int(round((peaks.max() - peaks.min()) / pitch)) + 1 if peaks.size > 1 else 1
        else:
            count = int(n_lanes)
            if (count - 1) * pitch * 0.9 >= n_cols:
                # The caller's count cannot sit at the spacing found: trust the count.
                span = peaks.max() - peaks.min() if peaks.size > 1 else 0
                pitch = span / (count - 1) if span > 0 else n_cols / (count + 0.5)
        # The grid is scored on the lane mass around each point (a box of 60 %
        # of the pitch), so it centres on plateaus, not on bright lane edges.
        mass = ndi.uniform_filter1d(smooth, size=max(3, int(0.6 * pitch)), mode="constant")
        mass_peaks, _ = find_peaks(mass, distance=max(1, int(0.6 * pitch)))
        centers = _fit_lane_grid(mass, mass_peaks if mass_peaks.size else peaks, pitch, count)

    centers, lefts, rights, empty = _lane_edges(profile, centers, noise)
    if n_lanes is None:
        # Without a lane count, an outer "lane" without signal of its own is
        # a membrane edge or a mark, not an empty lane we could know about.
        levels = np.array([profile[int(round(l)) : int(round(r)) + 1].mean() for l, r in zip(lefts, rights)])
        # Faint but real outer lanes (a weak phospho signal) stay: only noise-level ones go.
        faint = levels <= 8 * noise
        keep = np.ones(centers.size, bool)
        for order in (range(centers.size), reversed(range(centers.size))):
            for index in order:
                if not faint[index] or keep.sum() <= 1:
                    break
                keep[index] = False
        centers, lefts, rights, empty = centers[keep], lefts[keep], rights[keep], empty[keep]
    return centers, lefts, rights, empty


def _estimate_pitch(profile):
    """Lane pitch of a column projection.

    Lanes loaded with tenfold different amounts have plateaus of very
    different heights, and blotchy membrane fills some gaps, so no single
    cue is reliable. Candidates come from the autocorrelation of two
    amplitude-free versions of the profile (a lane mask made binary against
    the local maximum, and the profile stretched between its local minimum
    and maximum), together with their halves, thirds and doubles; the
    candidate whose evenly spaced lanes stand highest above the gaps midway
    between them wins.
    """
    n = profile.size
    local_max = ndi.maximum_filter1d(profile, size=max(5, n // 6))
    lane_mask = ((profile > 0.25 * local_max) & (profile > 0.02 * profile.max())).astype(float)
    high = ndi.maximum_filter1d(profile, size=max(5, n // 8))
    low = ndi.minimum_filter1d(profile, size=max(5, n // 8))
    stretched = (profile - low) / np.maximum(high - low, 1e-9 * max(profile.max(), 1e-12))
    found = [lag for lag in (_autocorrelation_pitch(lane_mask), _autocorrelation_pitch(stretched)) if lag]
    if not found:
        return None
    candidates = {lag * factor for lag in found for factor in (1.0, 0.5, 1.0 / 3.0, 2.0)}
    # A comb needs teeth to be judged: candidates leaving room for at least
    # two lanes compete; otherwise the first estimate stands.
    candidates = sorted(c for c in candidates if 4 <= c <= n / 2.2)
    if not candidates:
        return float(found[0])
    scores = [_fundamental_power(stretched, candidate) for candidate in candidates]
    pitch = float(candidates[int(np.argmax(scores))])
    # Lanes brighter at their edges than in their middle (smiling bands) put
    # their power at twice the lane frequency; a comb at the winner's half
    # whose teeth sit on lanes and whose gaps sit between them is the truth.
    lane_cores = (profile > 0.5 * local_max).astype(float)
    if pitch / 2 >= 4 and _lane_gap_contrast(lane_cores, pitch / 2) > _lane_gap_contrast(lane_cores, pitch) + 0.1:
        pitch /= 2
    return pitch


def _autocorrelation_pitch(signal):
    """Lag of the first strong autocorrelation peak, refined to sub-sample precision."""
    centred = signal - signal.mean()
    n = centred.size
    spectrum = np.fft.rfft(centred, 2 * n)
    autocorrelation = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if autocorrelation[0] <= 0:
        return None
    autocorrelation /= autocorrelation[0]
    peaks, props = find_peaks(autocorrelation[: int(n * 0.75)], height=0.05)
    peaks = peaks[peaks >= 4]
    if peaks.size == 0:
        return None
    # The first peak that is not a small side lobe of a larger one.
    heights = autocorrelation[peaks]
    strong = peaks[heights >= 0.5 * heights.max()]
    lag = int(strong[0])
    # Alternating strong and weak lanes can make twice the pitch look
    # stronger; a clear peak at half (or a third of) the lag is the pitch.
    for divisor in (2, 3):
        near = peaks[np.abs(peaks - lag / divisor) <= max(2, 0.1 * lag / divisor)]
        if near.size and autocorrelation[near].max() >= 0.15:
            lag = int(near[np.argmax(autocorrelation[near])])
            break
    # Sub-sample refinement with a parabola.
    if 0 < lag < n - 1:
        a, b, c = autocorrelation[lag - 1 : lag + 2]
        if a - 2 * b + c < 0:
            return float(lag + 0.5 * (a - c) / (a - 2 * b + c))
    return float(lag)


def _fundamental_power(stretched, pitch):
    """Power of the profile's Fourier component at one cycle per ``pitch``.

    Evenly spaced lanes put most of their power at the fundamental; twice
    the pitch (a subharmonic) carries almost none, half the pitch only a
    harmonic's share.
    """
    centred = stretched - stretched.mean()
    phase = np.exp(-2j * np.pi * np.arange(centred.size) / pitch)
    return float(np.abs(np.dot(centred, phase)) ** 2 / centred.size)


def _lane_gap_contrast(mask, pitch):
    """Lane minus gap level of a binary lane mask along the best-placed comb."""
    n = mask.size
    count = int((n - 1) // pitch)
    if count < 1:
        return -np.inf
    columns = np.arange(n)
    centres = np.arange(0.0, pitch, 1.0)[:, None] + pitch * np.arange(count)[None, :]
    gaps = centres + pitch / 2.0
    valid = gaps < n - 1
    difference = np.where(valid, np.interp(centres, columns, mask) - np.interp(np.minimum(gaps, n - 1), columns, mask),
                          np.nan)
    return float(np.nanmax(np.nanmean(difference, axis=1)))


def _fit_lane_grid(smooth, peaks, pitch, count):
    """Centres of ``count`` evenly pitched lanes that best cover the signal."""
    n_cols = smooth.size
    pitches = pitch * np.linspace(0.9, 1.1, 41)
    best = (-np.inf, None)
    for candidate in pitches:  # 41 pitches, each scoring every offset at once
        span = (count - 1) * candidate
        if span >= n_cols:
            continue
        offsets = np.arange(0.0, n_cols - span, 0.5)
        positions = offsets[:, None] + candidate * np.arange(count)[None, :]
        score = np.interp(positions, np.arange(n_cols), smooth).sum(axis=1)
        index = int(np.argmax(score))
        if score[index] > best[0]:
            best = (score[index], positions[index])
    if best[1] is None:
        raise LaneDetectionError(
            f"{count} lanes do not fit in the image at the detected spacing; check the lane count, "
            "or give the lanes yourself (--lane-geometry CSV)"
        )
    grid = best[1]
    # Snap each grid position to a detected lane peak nearby: real lanes are not perfectly even.
    centers = grid.copy()
    if peaks.size:
        distance = np.abs(peaks[None, :] - grid[:, None])
        nearest = np.argmin(distance, axis=1)
        close = distance[np.arange(count), nearest] <= 0.3 * pitch
        centers[close] = peaks[nearest[close]]
    return centers


def _lane_edges(profile, centers, noise):
    """Left and right edges of each lane where its plateau falls to 15 %."""
    n_cols = profile.size
    centers = np.asarray(centers, dtype=float)
    order = np.argsort(centers)
    centers = centers[order]
    bounds = np.concatenate([[0.0], (centers[1:] + centers[:-1]) / 2.0, [n_cols - 1.0]])
    if centers.size == 1:
        bounds = np.array([0.0, n_cols - 1.0])
    lefts, rights, levels = [], [], []
    for index, center in enumerate(centers):
        lo, hi = int(np.floor(bounds[index])), int(np.ceil(bounds[index + 1]))
        c = int(np.clip(round(center), lo, hi))
        window = profile[lo : hi + 1]
        quarter = max(1, (hi - lo) // 4)
        # Measure the plateau from its top, not from a dip the grid may have landed in.
        near = slice(max(lo, c - quarter), min(hi, c + quarter) + 1)
        c = near.start + int(np.argmax(profile[near]))
        level = profile[max(lo, c - quarter) : min(hi, c + quarter) + 1].max()
        levels.append(level)
        threshold = 0.15 * level
        below = window < threshold
        left_part = np.flatnonzero(below[: c - lo])
        right_part = np.flatnonzero(below[c - lo :])
        lefts.append(lo + (left_part[-1] + 1 if left_part.size else 0))
        rights.append(c + (right_part[0] - 1 if right_part.size else hi - c))
    lefts, rights, levels = np.array(lefts, float), np.array(rights, float), np.array(levels)
    empty = levels <= max(8 * noise, 0.03 * levels.max())
    # A lane whose plateau could not be traced gets the typical width below.
    empty |= rights - lefts < 1
    widths = rights - lefts
    if (~empty).any():
        typical = np.median(widths[~empty])
        # An empty lane has no plateau of its own: give it the typical width.
        lefts[empty] = np.maximum(bounds[:-1][empty], centers[empty] - typical / 2)
        rights[empty] = np.minimum(bounds[1:][empty], centers[empty] + typical / 2)
        # Wells come from one comb: a lane traced far narrower than its
        # neighbours lost its faint edges to noise, so it gets the typical width.
        # Likewise a lane traced far wider ran on into membrane background.
        odd = ~empty & ((rights - lefts < 0.7 * typical) | (rights - lefts > 1.35 * typical))
        lefts[odd] = np.maximum(bounds[:-1][odd], centers[odd] - typical / 2)
        rights[odd] = np.minimum(bounds[1:][odd], centers[odd] + typical / 2)
    rights = np.maximum(rights, lefts + 1)
    return centers, lefts, rights, empty


def _finish_table(rows):
    table = pd.DataFrame(rows)
    # The centre is the middle of the lane's box, whatever the detection aimed at.
    table["x_center"] = (table["x_left"] + table["x_right"]) / 2.0
    # Inclusive pixel columns, as lane_columns takes them.
    table["width"] = table["x_right"] - table["x_left"] + 1
    table = table.sort_values(["strip", "lane"], kind="stable").reset_index(drop=True)
    return table[LANE_COLUMNS]
