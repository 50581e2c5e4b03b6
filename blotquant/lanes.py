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
   this also places empty lanes and ignores marks between lanes); where
   bands touch across lanes, the evenly pitched comb whose boundaries sit
   on the dips of the band rows (each band row judged on its own as well);
4. each lane's centre and edges from its own plateau in the projection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from .peaks import find_peaks, peak_widths

from ._shared import block_mean, difference_noise_sigma, robust_sigma
from .background import rolling_ball_background
from .errors import LaneDetectionError, ParameterError
from .marks import MARK_COLUMNS, MarkMap, mark_map

LANE_COLUMNS = ["strip", "lane", "x_center", "x_left", "x_right", "y_top", "y_bottom", "slope", "width", "empty"]

_DETECTION_SIZE = 1000  # longer side of the working copy used for detection


#: The most lanes per strip blotquant accepts (gels have up to ~100 wells).
MAX_LANES = 500


def detect_lanes(signal, *, n_lanes=None, strips=None, max_tilt_deg=3.0, ignore_marks=True):
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
    ignore_marks : bool
        Leave typed labels, handwriting and pen marks
        (:func:`blotquant.marks.glyph_mask`) out of the lane evidence.

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
    return detect_lanes_and_marks(signal, n_lanes=n_lanes, strips=strips, max_tilt_deg=max_tilt_deg,
                                  ignore_marks=ignore_marks)[0]


def working_copy(signal):
    """The lane finder's working copy of an image: ``(factor, small, residual)``.

    ``small`` is ``signal`` block-averaged by ``factor`` to about
    :data:`_DETECTION_SIZE` px on its long side; ``residual`` its band signal
    above a smooth membrane background (:func:`_band_residual`).
    """
    signal = np.asarray(signal)
    factor = max(1, int(round(max(signal.shape) / _DETECTION_SIZE)))
    small = block_mean(signal, factor)
    return factor, small, _band_residual(small)


def _working_copy_noise(small):
    """Pixel noise of the working copy ``small``, from the differences of neighbouring columns.

    Lane finding and :func:`detect_strips` need it on the same copy; it is
    computed once and passed on (the MAD of ~250k differences costs 7 ms).
    """
    return robust_sigma(np.diff(small[:: max(1, small.shape[0] // 200)], axis=1)) / np.sqrt(2.0)


def detect_lanes_and_marks(signal, *, n_lanes=None, strips=None, max_tilt_deg=3.0, ignore_marks=True):
    """:func:`detect_lanes`, and the labels and marks it left out: ``(lanes, marks)``.

    ``marks`` is a :class:`blotquant.marks.MarkMap` (empty with
    ``ignore_marks`` false).
    """
    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise ParameterError(f"detect_lanes needs a 2-D image, got shape {signal.shape}")
    if n_lanes is not None and (int(n_lanes) != n_lanes or n_lanes < 1):
        raise ParameterError(f"the number of lanes must be a positive whole number, got {n_lanes}")
    if n_lanes is not None and n_lanes > min(MAX_LANES, signal.shape[1] // 3):
        # A lane needs a few columns to have a profile; a huge count would only hang the search.
        raise ParameterError(f"{n_lanes} lanes cannot fit an image {signal.shape[1]} px wide "
                             f"(at most {min(MAX_LANES, signal.shape[1] // 3)}: 3 px per lane, {MAX_LANES} in all)")
    factor, small, residual = working_copy(signal)
    if ignore_marks:
        marks = mark_map(residual, factor, signal.shape)
        residual = np.where(marks.mask, 0.0, residual)
    else:
        marks = MarkMap(pd.DataFrame(columns=MARK_COLUMNS), np.zeros(residual.shape, bool), factor)
    return _detect_lanes(signal, small, residual, factor, n_lanes, strips, max_tilt_deg), marks


def _detect_lanes(signal, small, residual, factor, n_lanes, strips, max_tilt_deg):
    """Lanes from the working copy; see :func:`detect_lanes`."""
    noise = _working_copy_noise(small)
    if not _lanes_touch(band_row_profile(residual, 0.0)[0]):
        # Lanes parted by dark gaps: their periodicity is strong evidence, and
        # strips are told apart by the membrane alone.
        return _detect_lanes_by_periodicity(signal, small, residual, factor, n_lanes, strips, max_tilt_deg,
                                            noise=noise)
    if strips is None:
        pieces, membrane_gap = strip_pieces(small, residual, pixel_noise=noise)
        found = [_strip_lanes(residual, piece, n_lanes, max_tilt_deg, noise) for piece in pieces]
        pieces, found = _merge_matching_pieces(residual, pieces, found, membrane_gap, n_lanes, max_tilt_deg, noise)
    else:
        given = _check_strips(strips, signal.shape)
        pieces = [(top // factor, min(small.shape[0] - 1, bottom // factor)) for top, bottom in given]
        found = [_strip_lanes(residual, piece, n_lanes, max_tilt_deg, noise) for piece in pieces]
    # Membranes side by side in one band of rows: each gets lanes of its own.
    parts = []
    for piece_index, (piece, lanes) in enumerate(zip(pieces, found)):
        columns = side_by_side_strips(small, *piece) if lanes is not None else []
        if len(columns) > 1:
            for first, last in columns:
                parts.append((piece_index, piece, _strip_lanes(residual, piece, n_lanes, max_tilt_deg, noise,
                                                               columns=(first, last))))
        else:
            parts.append((piece_index, piece, lanes))
    if all(lanes is None for _, _, lanes in parts):
        raise LaneDetectionError(
            "no lanes with signal were found; give the lanes yourself "
            "(--lane-geometry CSV, or lane_geometry= in Python)"
        )

    rows = []
    strip_number = 0
    for piece_index, (top, bottom), lanes in parts:
        if lanes is None:
            continue
        strip_number += 1
        lefts, rights, empty, slope = lanes
        full_top = top * factor
        full_bottom = min(signal.shape[0] - 1, (bottom + 1) * factor - 1)
        if strips is not None:
            full_top, full_bottom = _check_strips(strips, signal.shape)[piece_index]
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


def _detect_lanes_by_periodicity(signal, small, residual, factor, n_lanes, strips, max_tilt_deg, *, noise=None):
    """Lanes of blots whose lanes are parted by gaps: membrane strips, then each strip's lane periodicity.

    ``noise`` is the pixel noise of ``small`` (:func:`_working_copy_noise`) when the caller has it.
    """
    if noise is None:
        noise = _working_copy_noise(small)
    if strips is None:
        small_strips = detect_strips(small, pixel_noise=noise)
    else:
        given = _check_strips(strips, signal.shape)
        small_strips = [(top // factor, bottom // factor) for top, bottom in given]
    slope = estimate_tilt(residual, max_tilt_deg=max_tilt_deg)
    rows = []
    strip_number = 0
    parts = [(index, top, bottom, columns) for index, (top, bottom) in enumerate(small_strips)
             for columns in side_by_side_strips(small, top, bottom)]
    for strip_index, top, bottom, (first, last) in parts:
        strip_number += 1
        block = residual[top : bottom + 1, first : last + 1]
        y_mid = (top + bottom) / 2.0
        projection = sheared_column_profile(block * _band_row_weights(block)[:, None], slope, y_ref=y_mid - top)
        try:
            _, lefts, rights, empty = _lanes_from_projection(projection, n_lanes=n_lanes, strip=strip_number)
        except LaneDetectionError:
            if len(parts) == 1 or (strip_number == len(parts) and not rows):
                raise
            strip_number -= 1  # a membrane piece without lanes of its own
            continue
        # The periodicity can lock onto blotches of the membrane as wide as
        # a few lanes: the comb on the dips between bands is the second
        # opinion, and wins where its lanes part the bands clearly better.
        comb = _comb_block_lanes(block, n_lanes, slope, noise) if _bands_outnumber_lanes(block, slope, lefts) else None
        prepared = _block_comb_evidence(block, slope, noise) if comb is not None and lefts.size else None
        if prepared is not None:
            periodic = _boundaries_score(prepared, _lane_boundaries(lefts, rights))
            if comb[4] > max(periodic, 0.0) * _COMB_OVER_PERIOD + 1e-12:
                lefts, rights, empty = comb[:3]
        lefts, rights = lefts + first, rights + first
        full_top = top * factor
        full_bottom = min(signal.shape[0] - 1, (bottom + 1) * factor - 1)
        if strips is not None:
            full_top, full_bottom = _check_strips(strips, signal.shape)[strip_index]
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


def lane_row_runs(rows, first):
    """The lane as rectangles: runs of consecutive rows that start at the same column.

    A lane leaning by ``slope`` shifts by a whole column every ``1 / slope``
    rows, so it is a short stack of rectangles; each is a plain slice of the
    image, read without building an index array as large as the lane.

    Parameters
    ----------
    rows, first : (H,) int arrays
        As :func:`lane_columns` returns them.

    Returns
    -------
    list of (int, int, int, int)
        ``(start, stop, row, column)``: lane rows ``start..stop-1`` are image
        rows ``row..row + stop - start - 1``, starting at image column ``column``.

    Examples
    --------
    >>> lane_row_runs(np.arange(10, 15), np.array([3, 3, 4, 4, 4]))
    [(0, 2, 10, 3), (2, 5, 12, 4)]
    """
    rows = np.asarray(rows)
    first = np.asarray(first)
    if rows.size == 0:
        return []
    breaks = np.flatnonzero((np.diff(first) != 0) | (np.diff(rows) != 1)) + 1
    starts = np.r_[0, breaks].tolist()
    stops = np.r_[breaks, rows.size].tolist()
    return [(start, stop, int(rows[start]), int(first[start])) for start, stop in zip(starts, stops)]


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
    ys, xs = np.nonzero(strong != 0)  # the same pixels; nonzero finds them faster in a boolean mask
    keep = slice(None, None, max(1, ys.size // 100_000))
    ys, xs = ys[keep], xs[keep]
    values = strong[ys, xs].astype(np.float64)
    y_ref, x_ref = (strong.shape[0] - 1) / 2.0, (strong.shape[1] - 1) / 2.0
    # Positions as floats and offsets from the centre are the same at every angle: computed once.
    rows_from_centre, columns_from_centre = ys - y_ref, xs - x_ref
    ys, xs = ys.astype(np.float64), xs.astype(np.float64)
    lane_scores = np.empty(angles.size)
    band_scores = np.empty(angles.size)
    for index, angle in enumerate(angles):  # ~25 angles, each fully vectorised
        tangent = np.tan(np.radians(angle))
        # Turning by +angle moves a lane's x by -tan per row down and a band's y by +tan per column right.
        lane_scores[index] = np.sum(_projection(xs + tangent * rows_from_centre, values) ** 2)
        band_scores[index] = np.sum(_projection(ys - tangent * columns_from_centre, values) ** 2)
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
    low = positions.astype(np.intp)  # the positions are >= 0 now, so truncating is the floor
    weight_high = positions - low
    size = int(low.max()) + 2
    histogram = np.bincount(low, values * (1 - weight_high), size)
    # Each value's share in the next bin up: counted on the same bins, added one bin higher.
    histogram[1:] += np.bincount(low, values * weight_high, size - 1)
    return histogram


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


def detect_strips(image, *, min_gap_frac=0.01, min_strip_frac=0.12, darker_membranes=True, pixel_noise=None):
    """Find membrane strips imaged one above the other.

    Rows without membrane (the gap between two strips) carry less signal
    than membrane, with sharp edges. The membrane level of a row is its 10th
    percentile, which the spaces between lanes set even in rows crossed by
    bands.

    With ``darker_membranes``, a stretch as dark as a gap but crossed by
    bands (:func:`_rows_hold_bands`) is a darker membrane: a strip of its own.
    ``pixel_noise`` is ``image``'s :func:`_working_copy_noise` when the caller
    has it already; it is computed when omitted.

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
    if pixel_noise is None:
        pixel_noise = _working_copy_noise(image)
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
        if (darker_membranes and stop - top >= min_strip_frac * height
                and _rows_hold_bands(image[top:stop], pixel_noise)):
            # A membrane darker than the others (another blot, another
            # exposure), not a gap: gaps hold no bands. It is a strip of its
            # own, cut from its neighbours at its sharp edges.
            if top - start >= min_strip_frac * height:
                strips.append((start, top - 1))
            strips.append((top, stop - 1))
            start = stop
            continue
        if top - start >= min_strip_frac * height:
            strips.append((start, top - 1))
        start = stop
    if height - start >= min_strip_frac * height:
        strips.append((start, height - 1))
    return strips if strips else whole


def _rows_hold_bands(rows, pixel_noise, *, min_contrast=20.0):
    """Whether some row of ``rows`` has band contrast: its 90th percentile ``min_contrast`` noise sigmas above its 10th.

    Rows without membrane are flat up to their noise; membrane crossed by
    bands is not.
    """
    if rows.shape[0] == 0:
        return False
    contrast = np.percentile(rows, 90, axis=1) - np.percentile(rows, 10, axis=1)
    smooth = ndi.uniform_filter1d(contrast, size=3, mode="nearest")
    return bool(smooth.max() >= min_contrast * max(pixel_noise, 1e-12))


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


# ---------------------------------------------------------------------------
# Lanes from the dips between bands (the comb search)


_PROFILE_MODE = "mean"
_WEAK = 0.06
_RUN_LEVEL, _EDGE_LEVEL = 0.15, 0.08
_LANE_MATCH = 0.7  # least row-profile correlation of a lane with its neighbour (see _alike_lanes)
_LANES_SHARE_ROWS = 0.85  # median correlation of neighbouring lanes for that test to apply
_SHARED_COMB = 0.7  # least share of a piece's own comb score that lanes found with its neighbour must reach
_COMB_OVER_PERIOD = 1.2  # how much better the comb must part the bands to overrule the periodicity
_WEAK_COMB = 0.2  # a piece whose best comb scores under this share of its neighbour's has no lanes of its own


def band_row_profile(block, slope):
    """Column profile of a strip across its band rows, robust to curved and tilted rows.

    Each column takes the mean, over the strip's band rows (rows holding at
    least 35 % of the strongest row's signal), of the residual after
    shearing the rows by the lanes' ``slope``, so the dips between touching
    bands of neighbouring lanes survive.

    Parameters
    ----------
    block : (M, N) array
        Band residual of one strip (background removed, outliers capped).
    slope : float
        Lane slope (dx/dy) of the strip.

    Returns
    -------
    profile : (N,) float array
    band_rows : (K,) int array
        Rows of ``block`` taken as band rows.
    """
    n_rows, n_cols = block.shape
    if slope:
        # A turned blot turns its band rows too: level them first, so that the
        # bands at both ends of a row are in the same rows.
        block = _levelled_rows(block, slope)
    row_signal = ndi.uniform_filter1d(block.sum(axis=1), size=3, mode="nearest")
    band_rows = np.flatnonzero(row_signal >= 0.35 * row_signal.max()) if row_signal.max() > 0 else np.arange(n_rows)
    rows_used = straightened_rows(block, slope, rows=band_rows)
    if _PROFILE_MODE == "mean":
        return rows_used.mean(axis=0), band_rows
    # Band height: the longest run of band rows (FWHM of the strongest row).
    labels, count = ndi.label(row_signal >= 0.5 * row_signal.max())
    height = max(3, max(run[0].stop - run[0].start for run in ndi.find_objects(labels)) if count else 3)
    height = min(height, max(3, n_rows // 3))
    if slope:
        shifts = np.rint(slope * (np.arange(n_rows) - (n_rows - 1) / 2.0)).astype(np.intp)
        columns = np.clip(np.arange(n_cols)[None, :] + shifts[:, None], 0, n_cols - 1)
        sheared = block[np.arange(n_rows)[:, None], columns]
    else:
        sheared = block
    windowed = ndi.uniform_filter1d(sheared, size=int(height), axis=0, mode="nearest")
    return windowed.max(axis=0), band_rows


def _levelled_rows(block, slope):
    """``block`` with each column shifted vertically so that band rows turned with lanes of ``slope`` run level.

    Turning a blot so that its lanes lean by ``slope`` (dx/dy) moves its
    bands down by ``-slope`` rows per column to the right.
    """
    n_rows, n_cols = block.shape
    shifts = np.rint(-slope * (np.arange(n_cols) - (n_cols - 1) / 2.0)).astype(np.intp)
    if not shifts.any():
        return block
    rows = np.clip(np.arange(n_rows)[:, None] + shifts[None, :], 0, n_rows - 1)
    return block[rows, np.arange(n_cols)[None, :]]


def _signal_runs(profile, level):
    """Runs of columns (start, stop) where ``profile`` exceeds ``level``."""
    above = profile > level
    labels, count = ndi.label(above)
    return [(run.start, run.stop) for (run,) in ndi.find_objects(labels)] if count else []


def band_row_evidence(block, slope, noise, *, min_level=0.1, max_rows=3):
    """Column profiles of each band row of a strip on its own, for judging lane combs.

    Rows are grouped into band rows by the peaks of the row signal (each
    peak's rows at half its height or more, up to the valleys next to it), so
    a weaker band row below the strongest keeps its own dips: bands that
    touch in one row are often parted in another.

    Parameters
    ----------
    block : (M, N) array
        Band residual of one strip.
    slope : float
        Lane slope (dx/dy) of the strip.
    noise : float
        Pixel noise sigma of the residual.
    min_level : float
        Weakest band row taken, as a share of the strongest row's signal.
    max_rows : int
        Most band rows a strip may have for them to count.

    Returns
    -------
    list of (profile, noise)
        Each band row's column profile ((N,) array) and its noise sigma;
        empty when the strip has a single band row or more than ``max_rows``.
    """
    n_rows, n_cols = block.shape
    row_signal = ndi.uniform_filter1d(block.sum(axis=1), size=3, mode="nearest")
    top = row_signal.max()
    if top <= 0 or n_rows < 5:
        return []
    peaks, _ = find_peaks(row_signal, height=min_level * top, prominence=min_level * top)
    if not 2 <= peaks.size <= max_rows:
        # One band row has no second opinion; many rows (a whole lysate, or
        # membranes stacked without a gap) need not share their lanes.
        return []
    # Each band row ends at the valley between it and its neighbour.
    valleys = [a + int(np.argmin(row_signal[a : b + 1])) for a, b in zip(peaks[:-1], peaks[1:])]
    lows, highs = np.r_[0, valleys], np.r_[valleys, n_rows - 1]
    smooth = ndi.uniform_filter1d(block, size=3, axis=0, mode="nearest")
    shifts = np.rint(slope * (np.arange(n_rows) - (n_rows - 1) / 2.0)).astype(np.intp)
    evidence = []
    for peak, low, high in zip(peaks, lows, highs):
        rows = np.arange(low, high + 1)
        rows = rows[row_signal[rows] >= 0.5 * row_signal[peak]]
        columns = np.clip(np.arange(n_cols)[None, :] + shifts[rows, None], 0, n_cols - 1)
        evidence.append((smooth[rows[:, None], columns].mean(axis=0), noise / np.sqrt(max(rows.size, 1))))
    return evidence


def _comb_score(rows, start, stop, count):
    """Score and boundaries of ``count`` evenly pitched lanes filling columns ``start:stop``.

    ``rows`` holds ``(profile, plateau, penalty)`` per band-row profile, the
    strip's profile first. In each profile every inner boundary is moved to
    the lowest column within a quarter pitch of its grid position and earns
    the depth of its dip below the lower of its two lanes' levels (relative
    to the profile's plateau) minus its ``penalty``: a real gap between lanes
    is deep, a boundary put inside a lane (a harmonic of the true pitch)
    earns nothing and costs the penalty. Each profile scores the comb on its
    own; a band row adds its score when positive (touching bands of one row
    are often parted in another). The boundaries are the strip profile's
    dips, or a band row's deepest dip where the strip profile has none.
    All boundaries and profiles are scored at once (no loop per boundary).
    """
    pitch = (stop - start) / count
    return _edges_score(rows, start + pitch * np.arange(count + 1), start, stop, widths=np.full(count, pitch))


def _edges_score(rows, edges, start, stop, *, widths=None):
    """Score and boundaries of the lanes between ``edges`` (a comb, even or not) in columns ``start:stop``.

    See :func:`_comb_score`; each boundary looks for its dip within a
    quarter of its mean neighbouring lane width.
    """
    edges = np.asarray(edges, float)
    count = edges.size - 1
    if count == 1:
        return 0.0, edges
    profiles = np.array([row[0] for row in rows])
    plateaus = np.array([row[1] for row in rows])[:, None]
    penalties = np.array([row[2] for row in rows])[:, None]
    n_cols = profiles.shape[1]
    widths = np.diff(edges) if widths is None else widths
    local_quarter = np.maximum(1, ((widths[:-1] + widths[1:]) / 8).astype(np.intp))
    quarter = int(local_quarter.max())
    # Every boundary's window (a quarter pitch each side, inside the span) at once.
    offsets = np.arange(-quarter, quarter + 1)[None, :]
    window = np.rint(edges[1:-1])[:, None].astype(np.intp) + offsets
    inside = (window >= start) & (window <= stop - 1) & (np.abs(offsets) <= local_quarter[:, None])
    values = np.where(inside[None], profiles[:, np.clip(window, 0, n_cols - 1)], np.inf)
    dips = np.min(values, axis=2)
    # Each lane's level: the maximum over its middle half.
    lo = np.rint(edges[:-1] + widths / 4).astype(np.intp)
    hi = np.maximum(lo + 1, np.rint(edges[1:] - widths / 4).astype(np.intp))
    padded = np.concatenate([profiles, np.full((profiles.shape[0], 1), -np.inf)], axis=1)
    levels = np.maximum.reduceat(padded, np.ravel(np.column_stack([lo, hi])), axis=1)[:, ::2]
    lower = np.minimum(levels[:, :-1], levels[:, 1:])
    # Depth relative to the lower neighbour: a dark gap beside a weak lane counts as fully as one beside a strong lane.
    depth = np.clip((lower - dips) / np.maximum(lower, 1e-12), -1, 1) - penalties
    # A boundary beside an empty lane says nothing about the pitch.
    informative = lower >= 0.05 * plateaus
    informative[~informative.any(axis=1)] = True
    depth = np.where(informative, depth, np.nan)
    boundaries = edges.copy()
    dip_columns = np.take_along_axis(window[None], np.argmin(values, axis=2)[..., None], axis=2)[..., 0]
    # A boundary sits on the strip profile's dip; where that profile has
    # none (bands touching), on the deepest dip of a band row.
    deepest = np.argmax(np.nan_to_num(depth, nan=-np.inf), axis=0)
    no_dip = ~(np.nan_to_num(depth[0], nan=-np.inf) > 0)
    source = np.where(no_dip & (depth.max(axis=0, initial=-np.inf, where=np.isfinite(depth)) > 0), deepest, 0)
    boundaries[1:-1] = dip_columns[source, np.arange(count - 1)]
    # Every boundary of the true comb sits on a dip; a harmonic's extra
    # boundaries sit inside lanes. The lower quartile of the depths, not their
    # mean, tells the two apart even where dips between touching bands are
    # hardly deeper than the texture inside a lane.
    scores = _row_quantile_ignoring_nan(depth, 0.25)
    # A band row's own comb adds its evidence; one without dips at this comb
    # (a row of blotches) takes nothing from the strip's profile.
    return float((count - 1) * (scores[0] + np.clip(scores[1:], 0, None).sum())), boundaries


def _row_quantile_ignoring_nan(values, q):
    """``np.nanpercentile(values, 100 * q, axis=1)`` (linear interpolation) for a 2-D array, without a loop per row.

    NumPy's nanpercentile along an axis runs a Python function per row;
    the comb search asks for thousands of small rows.
    """
    ordered = np.sort(values, axis=1)  # NaN sorts last
    valid = np.count_nonzero(~np.isnan(values), axis=1)
    position = q * np.maximum(valid - 1, 0)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, np.maximum(valid - 1, 0))
    rows = np.arange(values.shape[0])
    low, high = ordered[rows, below], ordered[rows, above]
    fraction = position - below
    # NumPy's own interpolation, so the numbers are the same to the last bit.
    result = np.where(fraction >= 0.5, high - (high - low) * (1 - fraction), low + (high - low) * fraction)
    return np.where(valid > 0, result, np.nan)


def comb_lanes(profile, *, n_lanes=None, noise=0.0, min_pitch=4.0, evidence=(), lane_rows=None):
    """Lane boundaries of one strip from the dips of its band-row profile.

    The span of the strip's signal is divided into every plausible number of
    evenly pitched lanes; the number whose boundaries sit on the deepest dips
    (a dip between touching bands counts as well as a dark gap between
    separate ones) wins. A harmonic of the true pitch puts boundaries inside
    lanes, a subharmonic leaves dips unused, so neither can win.

    Parameters
    ----------
    profile : (N,) array
        Band-row profile of the strip (:func:`band_row_profile`).
    n_lanes : int, optional
        Lanes expected in the strip. When the signal fills fewer lanes, empty
        lanes at the found pitch are added at the sides with most room.
    noise : float
        Noise sigma of ``profile``.
    min_pitch : float
        Narrowest lane considered, in columns.
    evidence : sequence of (profile, noise)
        Profiles of the strip's band rows on their own
        (:func:`band_row_evidence`); a boundary counts the deepest dip any
        of them (or ``profile``) has there.
    lane_rows : (M, N) array, optional
        The strip's residual straightened so that lanes run down the columns
        (:func:`straightened_rows`). When given, the comb keeps only the lanes
        around its strongest one whose bands sit in the same rows as their
        neighbours' (:func:`_alike_lanes`): labels, handwriting and membrane
        edges beside the lanes have signal in other rows or in every row.

    Returns
    -------
    boundaries : (K + 1,) float array or None
        Column boundaries of K lanes (``boundaries[k]`` to ``boundaries[k+1]``);
        None when the profile shows no lane structure.
    empty : (K,) bool array
    score : float
    whole_cells : bool
        True when the lanes are the comb's whole cells (a harmonic was set
        aside for the count asked for), so each lane keeps its full cell.
    """
    prepared = _comb_evidence(profile, noise, evidence)
    if prepared is None:
        return None, None, 0.0, False
    profile, rows, start, stop, widths, masses = prepared
    n_cols = profile.size
    peak = profile.max()
    weak_level = max(_WEAK * peak, 8 * noise)

    def fit(start, stop):
        # The best comb over the span, cut back to the lanes that look like lanes.
        found = _best_comb(rows, start, stop, min_pitch)
        if lane_rows is None:
            return start, stop, found
        boundaries = found[1][found[3]][1]
        first, last = _alike_lanes(lane_rows, profile, boundaries, weak_level)
        if (first, last) == (0, boundaries.size - 2):
            return start, stop, found
        start, stop = int(np.floor(boundaries[first])), int(np.ceil(boundaries[last + 1]))
        counts, results, scores, _ = _best_comb(rows, start, stop, min_pitch)
        # The lanes kept, at the pitch found: a refit could take a harmonic.
        return start, stop, (counts, results, scores, min(last - first, len(counts) - 1))

    start, stop, (counts, results, scores, best) = fit(start, stop)
    # A lane parted from its neighbours by a gap forms a run of its own, narrow
    # beside a run of touching lanes: lane-wide runs near the span belong to it.
    pitch = (stop - start) / counts[best]
    widened_start, widened_stop = start, stop
    for run, width, mass in zip(_signal_runs(profile, _RUN_LEVEL * peak), widths, masses):
        if not (0.4 * pitch <= width <= 1.5 * pitch and mass >= 0.02 * masses.sum()):
            continue
        if widened_start - 1.5 * pitch <= run[1] <= widened_start:
            widened_start = run[0]
        elif widened_stop <= run[0] <= widened_stop + 1.5 * pitch:
            widened_stop = run[1]
    if (widened_start, widened_stop) != (start, stop):
        start, stop = _reach_out(profile, widened_start, widened_stop, _EDGE_LEVEL * peak)
        start, stop, (counts, results, scores, best) = fit(start, stop)
    # Lanes far weaker than the strongest (a tenfold dilution) fall below the
    # span's level: a lane-like run at the comb's pitch just beyond it belongs to it.
    pitch = (stop - start) / counts[best]
    extended_start, extended_stop = start, stop
    for _ in range(3):  # at most three weak lanes on each side
        if extended_stop + 0.75 * pitch <= n_cols and _weak_lane_at(profile, extended_stop, pitch, weak_level):
            extended_stop = int(min(n_cols, round(extended_stop + pitch)))
        if extended_start - 0.75 * pitch >= 0 and _weak_lane_at(profile, extended_start - pitch, pitch, weak_level):
            extended_start = int(max(0, round(extended_start - pitch)))
    if (extended_start, extended_stop) != (start, stop):
        start, stop, (counts, results, scores, best) = fit(extended_start, extended_stop)
    empty = np.zeros(counts[best], bool)
    score, boundaries = results[best]
    whole_cells = False
    if n_lanes is not None and counts[best] != n_lanes:
        asked = int(n_lanes) - 1
        if asked < len(results) and scores[asked] >= 0.85 * scores[best]:
            # The count asked for fits the dips about as well: it wins.
            score, boundaries = results[asked]
            empty = np.zeros(int(n_lanes), bool)
        elif counts[best] >= 2.5 * n_lanes:
            # Far more "lanes" than asked for: the dips are a harmonic (bands
            # curling up at their lane edges); the count asked for fills the span.
            score, boundaries = _comb_score(rows, start, stop, int(n_lanes))
            empty = np.zeros(int(n_lanes), bool)
            whole_cells = True
        elif counts[best] > n_lanes:
            # More lanes carry signal than were asked for (a marker lane, a
            # neighbouring sample): the n_lanes adjacent lanes holding most signal.
            masses = np.array([profile[int(a) : max(int(a) + 1, int(b))].sum()
                               for a, b in zip(boundaries[:-1], boundaries[1:])])
            window = np.convolve(masses, np.ones(int(n_lanes)), mode="valid")
            first = int(np.argmax(window))
            boundaries = boundaries[first : first + int(n_lanes) + 1]
            empty = np.zeros(int(n_lanes), bool)
        else:
            extended = _add_empty_lanes(boundaries, int(n_lanes), n_cols)
            if extended is None:
                # No room at the found pitch: the span holds the count asked for.
                _, boundaries = _comb_score(rows, start, stop, int(n_lanes))
                empty = np.zeros(int(n_lanes), bool)
            else:
                boundaries, empty = extended
    return boundaries, empty, score, whole_cells


def _comb_evidence(profile, noise, evidence):
    """What the comb search scores: ``(profile, rows, start, stop, run_widths, run_masses)``, or None.

    ``profile`` smoothed and set on its floor; ``rows`` its
    ``(profile, plateau, penalty)`` and those of the band rows that stand
    above their noise (:func:`_evidence_rows`); ``start:stop`` the span of
    the strip's signal; the widths and masses of the profile's signal runs.
    None when the profile does not stand above its noise.
    """
    profile = ndi.gaussian_filter1d(np.asarray(profile, float), 1.0)
    profile = profile - np.percentile(profile, 5)
    peak = profile.max()
    if peak <= max(8 * noise, 0):
        return None
    runs = _signal_runs(profile, _RUN_LEVEL * peak)
    widths = np.array([stop - start for start, stop in runs])
    # Narrow runs far weaker than lanes (pen strokes, dust) do not stretch the span.
    masses = np.array([profile[start:stop].sum() for start, stop in runs])
    keep = (widths >= 0.25 * np.median(widths[widths >= 0.5 * widths.max()])) & (masses >= 0.05 * masses.max())
    runs = [run for run, k in zip(runs, keep) if k]
    start, stop = runs[0][0], runs[-1][1]
    start, stop = _reach_out(profile, start, stop, _EDGE_LEVEL * peak)
    plateau = float(np.percentile(profile[start:stop], 75))
    penalty = max(0.02, 4 * noise / max(plateau, 1e-12))
    rows = [(profile, plateau, penalty)] + _evidence_rows(evidence, start, stop)
    return profile, rows, start, stop, widths, masses


def _weak_lane_at(profile, left, pitch, level):
    """Whether columns ``left`` to ``left + pitch`` hold a weak lane: signal in its middle above its edges."""
    lo, hi = int(round(left + pitch / 4)), int(round(left + 3 * pitch / 4))
    edge_lo, edge_hi = int(round(left)), int(round(left + pitch))
    n = profile.size
    if hi <= lo or lo < 0 or hi > n:
        return False
    middle = float(np.mean(profile[lo:hi]))
    edges = [profile[i] for i in (edge_lo, edge_hi - 1) if 0 <= i < n]
    return middle >= level and middle > 1.5 * min(edges) if edges else False


def _reach_out(profile, start, stop, level):
    """Widen the span ``start:stop`` to where the profile falls below ``level``: a lane's soft edge."""
    low = profile < level
    left_low = np.flatnonzero(low[:start])
    right_low = np.flatnonzero(low[stop:])
    start = int(left_low[-1] + 1) if left_low.size else 0
    stop = int(stop + right_low[0]) if right_low.size else profile.size
    return start, stop


def straightened_rows(block, slope, *, rows=None):
    """A strip's residual with each row shifted by the lanes' slope, so that lanes run down the columns.

    Rows are averaged in threes to calm the noise; ``rows`` (indices) keeps
    only those rows.
    """
    n_rows, n_cols = block.shape
    smooth = ndi.uniform_filter1d(block, size=3, axis=0, mode="nearest")
    rows = np.arange(n_rows) if rows is None else np.asarray(rows)
    if not slope:
        return smooth[rows]
    shifts = np.rint(slope * (rows - (n_rows - 1) / 2.0)).astype(np.intp)
    columns = np.clip(np.arange(n_cols)[None, :] + shifts[:, None], 0, n_cols - 1)
    return smooth[rows[:, None], columns]


def _lane_row_profiles(lane_rows, boundaries):
    """Each lane's row profile: the mean of ``lane_rows`` over the middle half of its columns, (K, M)."""
    n_cols = lane_rows.shape[1]
    cumulative = np.concatenate([np.zeros((lane_rows.shape[0], 1)), np.cumsum(lane_rows, axis=1)], axis=1)
    width = np.diff(boundaries)
    lo = np.clip(np.rint(boundaries[:-1] + width / 4).astype(np.intp), 0, n_cols - 1)
    hi = np.clip(np.maximum(lo + 1, np.rint(boundaries[1:] - width / 4).astype(np.intp)), 1, n_cols)
    return ((cumulative[:, hi] - cumulative[:, lo]) / (hi - lo)).T


def _row_match(a, b, max_shift):
    """Correlation of two row profiles at the best vertical shift of up to ``max_shift`` rows.

    Neighbouring lanes' bands sit a few rows apart where the band row
    smiles or the blot is turned; a label or a membrane edge matches a lane
    at no shift.
    """
    shift = int(min(max_shift, a.size // 4))
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(b, shift, mode="edge"), a.size)
    a = a - a.mean()
    windows = windows - windows.mean(axis=1, keepdims=True)
    norm = np.sqrt((windows ** 2).sum(axis=1) * (a ** 2).sum())
    correlation = np.where(norm > 0, windows @ a / np.where(norm > 0, norm, 1.0), -1.0)
    return float(correlation.max())


def _compressed_rows(rows):
    """Lane row profiles on a log scale relative to each lane's peak, (K, M).

    Where a lane has its bands matters here, not how strong each one is:
    the bands of neighbouring lanes may stand in any ratio to each other.
    """
    positive = np.clip(rows, 0, None)
    return np.log1p(positive / np.maximum(0.05 * positive.max(axis=1), 1e-12)[:, None])


def _alike_lanes(lane_rows, profile, boundaries, level, *, min_match=_LANE_MATCH):
    """First and last lane of a comb that belong to the strip's lanes.

    From the strongest lane outwards, each lane with signal (its level in
    ``profile`` at least ``level``) must have its bands in the rows of the
    nearest lane already taken: :func:`_row_match` at least ``min_match``
    (a band row that slopes or smiles moves a few rows from lane to lane),
    on the row profiles themselves or on a log scale (:func:`_compressed_rows`:
    its bands may stand in another ratio than its neighbour's). Labels,
    handwriting, pen marks and membrane edges beside the lanes match in
    neither. The comb ends before the first lane that fails,
    and before the lanes without signal next to it; lanes without signal
    are not judged otherwise.
    """
    count = boundaries.size - 1
    if count < 2:
        return 0, count - 1
    rows = _lane_row_profiles(lane_rows, boundaries)
    n_cols = profile.size
    lo = np.clip(np.rint(boundaries[:-1] + np.diff(boundaries) / 4).astype(np.intp), 0, n_cols - 1)
    hi = np.clip(np.maximum(lo + 1, np.rint(boundaries[1:] - np.diff(boundaries) / 4).astype(np.intp)), 1, n_cols)
    levels = np.maximum.reduceat(np.append(profile, -np.inf), np.ravel(np.column_stack([lo, hi])))[::2]
    max_shift = max(2, int(round(np.median(np.diff(boundaries)) / 8)))
    judged = np.flatnonzero(levels >= level)
    matches = np.array([_row_match(rows[a], rows[b], max_shift) for a, b in zip(judged[:-1], judged[1:])])
    if matches.size < 2 or np.median(matches) < _LANES_SHARE_ROWS:
        # The lanes do not share their band rows (labels inside the lanes,
        # membranes stacked without a gap): the test cannot tell lanes apart.
        return 0, count - 1
    compressed = _compressed_rows(rows)
    core = int(np.argmax(levels))
    ends = []
    for step in (-1, 1):
        taken, lane, end = core, core + step, None
        while 0 <= lane < count and end is None:
            if levels[lane] >= level:
                if (_row_match(rows[lane], rows[taken], max_shift) < min_match
                        and _row_match(compressed[lane], compressed[taken], max_shift) < min_match):
                    end = taken
                else:
                    taken = lane
            lane += step
        ends.append(end if end is not None else (0 if step < 0 else count - 1))
    return ends[0], ends[1]


def _evidence_rows(evidence, start, stop):
    """``(profile, plateau, penalty)`` of each band-row profile that stands above its noise."""
    rows = []
    for profile, noise in evidence:
        profile = ndi.gaussian_filter1d(np.asarray(profile, float), 1.0)
        profile = profile - np.percentile(profile, 5)
        if profile[start:stop].max() <= 8 * noise:
            continue
        plateau = float(np.percentile(profile[start:stop], 75))
        if plateau <= 0:
            continue
        rows.append((profile, plateau, max(0.02, 4 * noise / plateau)))
    return rows


def _best_comb(rows, start, stop, min_pitch):
    """Every plausible lane count over the span, its comb and score, and the best one."""
    max_count = max(1, int((stop - start) / min_pitch))
    counts = list(range(1, min(max_count, 60) + 1))
    results = [_comb_score(rows, start, stop, count) for count in counts]
    scores = np.array([score for score, _ in results])
    return counts, results, scores, int(np.argmax(scores))


def _add_empty_lanes(boundaries, n_lanes, n_cols):
    """Add empty lanes at the found pitch on the sides with most room, up to ``n_lanes``.

    Returns ``(boundaries, empty)``, or None when the image has no room for them.
    """
    pitch = float(np.median(np.diff(boundaries)))
    left, right = float(boundaries[0]), float(boundaries[-1])
    added_left = added_right = 0
    while boundaries.size - 1 + added_left + added_right < n_lanes:
        room_left, room_right = left, n_cols - right
        if max(room_left, room_right) < 0.5 * pitch:
            return None
        if room_left >= room_right:
            left -= pitch
            added_left += 1
        else:
            right += pitch
            added_right += 1
    edges = np.concatenate([boundaries[0] - pitch * np.arange(added_left, 0, -1), boundaries,
                            boundaries[-1] + pitch * np.arange(1, added_right + 1)])
    edges = np.clip(edges, 0, n_cols)
    empty = np.zeros(edges.size - 1, bool)
    empty[:added_left] = True
    empty[edges.size - 1 - added_right:] = True
    return edges, empty


# ---------------------------------------------------------------------------
# Strips: pieces of membrane, each with lanes of its own


def strip_pieces(small, residual, *, quiet_level=0.08, min_quiet_frac=0.05, pixel_noise=None):
    """Row ranges that may each be a membrane strip of their own.

    Rows are cut where the membrane changes (:func:`detect_strips`) and in the
    middle of every long run of rows without band signal, at its darkest row
    (the gap between two membranes, when there is one). Pieces whose lanes
    turn out to agree are joined again by :func:`_merge_matching_pieces`, so a
    single membrane probed for two targets stays one strip. ``pixel_noise``
    is passed on to :func:`detect_strips`.

    Returns
    -------
    pieces : list of (int, int)
        ``(top, bottom)`` rows of each piece, from the top.
    membrane_gap : list of bool
        For each pair of neighbouring pieces, whether a gap without membrane
        separates them (such pieces are never joined).
    """
    height = small.shape[0]
    cuts = set()
    membrane = detect_strips(small, pixel_noise=pixel_noise)
    hard_cuts = {(bottom + top) // 2 for (_, bottom), (top, _) in zip(membrane[:-1], membrane[1:])}
    cuts |= hard_cuts
    row_signal = ndi.uniform_filter1d(residual.sum(axis=1), size=3, mode="nearest")
    if row_signal.max() > 0:
        quiet = row_signal < quiet_level * row_signal.max()
        row_level = ndi.median_filter(np.percentile(small, 10, axis=1), size=5, mode="nearest")
        labels, count = ndi.label(quiet)
        for (run,) in ndi.find_objects(labels) if count else []:
            if run.start == 0 or run.stop == height or run.stop - run.start < min_quiet_frac * height:
                continue
            cuts.add(run.start + int(np.argmin(row_level[run])))
    edges = [0] + sorted(cuts) + [height]
    pieces = [(a, b - 1) for a, b in zip(edges[:-1], edges[1:]) if b - a >= 3]
    # A piece with hardly any band signal is not a strip of its own: it joins its neighbour.
    strength = [row_signal[a : b + 1].max() if row_signal.size else 0.0 for a, b in pieces]
    strongest = max(strength) if strength else 0.0
    merged = []
    for (a, b), level in zip(pieces, strength):
        weak = merged and (level < 0.15 * strongest or merged[-1][2] < 0.15 * strongest)
        if weak and a not in hard_cuts:
            top, _, previous = merged.pop()
            merged.append((top, b, max(level, previous)))
        else:
            merged.append((a, b, level))
    return [(a, b) for a, b, _ in merged], [a in hard_cuts for a, _, _ in merged[1:]]


def _strip_lanes(residual, piece, n_lanes, max_tilt_deg, noise, columns=None):
    """Lanes of one strip: (lefts, rights, empty, slope) in working-copy columns, or None.

    ``columns`` (first, last) limits the strip to those columns (a membrane
    with another beside it).
    """
    top, bottom = piece
    first = 0 if columns is None else int(columns[0])
    block = residual[top : bottom + 1] if columns is None else residual[top : bottom + 1, first : columns[1] + 1]
    if block.shape[0] < 3 or block.shape[1] < 8 or block.max() <= 0:
        return None
    lanes = _block_lanes(block, n_lanes, max_tilt_deg, noise)
    if lanes is None or not first:
        return lanes
    lefts, rights, empty, slope = lanes
    return lefts + first, rights + first, empty, slope


def side_by_side_strips(small, top, bottom):
    """Column ranges of membranes imaged side by side in rows ``top`` to ``bottom``.

    The columns' membrane level (their 10th percentile) drops where there is
    no membrane, as the rows' level does between strips one above the other
    (:func:`detect_strips`, applied to the columns). One range when the rows
    hold one membrane.
    """
    block = small[top : bottom + 1]
    whole = [(0, block.shape[1] - 1)]
    if block.shape[0] < 20 or block.shape[1] < 40:
        return whole
    # Columns between lanes are darker than lanes by nature: only real gaps part membranes here.
    columns = detect_strips(block.T, min_gap_frac=0.02, min_strip_frac=0.15, darker_membranes=False)
    # A single membrane keeps every column: a darker margin is not a reason to drop lanes.
    return columns if len(columns) > 1 else whole


def _block_lanes(block, n_lanes, max_tilt_deg, noise):
    """Lanes of one strip's residual block; see :func:`_strip_lanes`."""
    slope = estimate_tilt(block, max_tilt_deg=max_tilt_deg)
    comb = _comb_block_lanes(block, n_lanes, slope, noise)
    if comb is not None:
        return comb[:4]
    # Separate lanes with dark gaps between them (or no comb standing out): the periodicity decides.
    y_mid = (block.shape[0] - 1) / 2.0
    projection = sheared_column_profile(block * _band_row_weights(block)[:, None], slope, y_ref=y_mid)
    try:
        _, lefts, rights, empty = _lanes_from_projection(projection, n_lanes=n_lanes, strip=0)
    except LaneDetectionError:
        return None
    return lefts, rights, empty, slope


def _comb_block_lanes(block, n_lanes, slope, noise):
    """Lanes of a strip's block from the dips of its band rows: ``(lefts, rights, empty, slope, score)``, or None.

    None when no comb stands out (its score is not positive and no count
    was asked for). ``score`` is the comb's :func:`_comb_score`.
    """
    profile, _ = band_row_profile(block, slope)
    boundaries, comb_empty, score, whole_cells = comb_lanes(
        profile, n_lanes=n_lanes, noise=noise * np.sqrt(3.0 / block.shape[0]),
        evidence=band_row_evidence(block, slope, noise), lane_rows=straightened_rows(block, slope))
    if boundaries is None or not (score > 0 or n_lanes is not None):
        return None
    smooth = ndi.gaussian_filter1d(profile, 1.0)
    smooth = smooth - np.percentile(smooth, 5)
    if whole_cells:
        lefts, rights, empty = _cell_edges(smooth, boundaries, difference_noise_sigma(profile))
    else:
        centres = (boundaries[:-1] + boundaries[1:]) / 2.0
        _, lefts, rights, empty = _lane_edges(smooth, centres, difference_noise_sigma(profile))
    return lefts, rights, empty | comb_empty, slope, score


def _bands_outnumber_lanes(block, slope, lefts, *, ratio=1.3):
    """Whether the band-row profile of a strip has clearly more peaks than ``lefts`` has lanes.

    Lanes from the periodicity that each hold several bands side by side
    (the period of membrane blotches, not of the lanes) show as more peaks
    than lanes; only then is the comb asked for its opinion, which costs
    more than the periodicity itself.
    """
    profile = ndi.gaussian_filter1d(band_row_profile(block, slope)[0], 2.0)
    profile = profile - np.percentile(profile, 5)
    if profile.max() <= 0:
        return False
    peaks, _ = find_peaks(profile, prominence=0.1 * profile.max())
    return peaks.size > ratio * max(len(lefts), 1)


def _lane_boundaries(lefts, rights):
    """Comb boundaries of lanes: their outer edges and the middles of the gaps between neighbours."""
    return np.concatenate([[lefts[0]], (rights[:-1] + lefts[1:]) / 2.0, [rights[-1] + 1]])


def _block_comb_evidence(block, slope, noise):
    """:func:`_comb_evidence` of a strip block's band-row profile and band rows, under ``slope``."""
    profile, _ = band_row_profile(block, slope)
    return _comb_evidence(profile, noise * np.sqrt(3.0 / block.shape[0]), band_row_evidence(block, slope, noise))


def _boundaries_score(prepared, boundaries):
    """:func:`_edges_score` of lanes between ``boundaries`` on prepared comb evidence, the span widened to hold them."""
    _, rows, start, stop, _, _ = prepared
    start = int(min(start, max(0, np.floor(boundaries[0]))))
    stop = int(max(stop, min(rows[0][0].size, np.ceil(boundaries[-1]))))
    return _edges_score(rows, boundaries, start, stop)[0]


def _lanes_touch(profile, *, min_lanes_per_run=2.5):
    """Whether the strip's bands touch across lanes, so that only dips part the lanes.

    Separate lanes leave dark gaps: the profile breaks into one run per lane.
    Touching bands (strong loads, wide lanes) form a few long runs; the
    periodicity of such a profile is weak and its dips are the evidence
    (:func:`comb_lanes`).
    """
    smooth = ndi.gaussian_filter1d(np.asarray(profile, float), 1.0)
    smooth = smooth - np.percentile(smooth, 5)
    if smooth.max() <= 0:
        return False
    runs = _signal_runs(smooth, 0.25 * smooth.max())
    widths = np.array([stop - start for start, stop in runs])
    if widths.size == 0:
        return False
    # Lanes are far narrower than the widest run when that run holds several of them.
    typical = np.median(widths)
    if widths.max() >= min_lanes_per_run * typical or len(runs) <= 2:
        return True
    # Lanes parted only by slits (a fifth of a lane or less) are touching bands too.
    gaps = np.array([b[0] - a[1] for a, b in zip(runs[:-1], runs[1:])])
    return bool(np.median(gaps) < 0.2 * typical)


def _cell_edges(profile, boundaries, noise):
    """Each lane's columns within its comb cell: where the profile exceeds 15 % of the cell's peak.

    A lane keeps its whole signal (bands that curl up at both edges
    included) and loses only the dark gap beside it. Empty cells, and lanes
    traced far narrower or wider than the typical lane, get the typical width.
    """
    n_lanes = boundaries.size - 1
    lefts, rights, levels = np.empty(n_lanes), np.empty(n_lanes), np.empty(n_lanes)
    n_cols = profile.size
    for lane in range(n_lanes):
        lo = int(np.clip(np.floor(boundaries[lane]), 0, n_cols - 1))
        hi = int(np.clip(np.ceil(boundaries[lane + 1]), lo + 1, n_cols))
        cell = profile[lo:hi]
        levels[lane] = cell.max()
        inside = np.flatnonzero(cell >= 0.15 * levels[lane]) if levels[lane] > 0 else np.array([], int)
        lefts[lane], rights[lane] = (lo + inside[0], lo + inside[-1]) if inside.size else (lo, hi - 1)
    empty = levels <= max(8 * noise, 0.03 * max(levels.max(), 1e-12))
    cells_lo, cells_hi = boundaries[:-1], np.minimum(boundaries[1:], n_cols) - 1
    if (~empty).any():
        typical = float(np.median(rights[~empty] - lefts[~empty]))
        centres = (cells_lo + cells_hi) / 2.0
        odd = empty | (rights - lefts < 0.6 * typical) | (rights - lefts > 1.5 * typical)
        traced = (lefts + rights) / 2.0
        middle = np.where(empty, centres, traced)
        lefts[odd] = np.maximum(cells_lo[odd], middle[odd] - typical / 2)
        rights[odd] = np.minimum(cells_hi[odd], middle[odd] + typical / 2)
    rights = np.maximum(rights, lefts + 1)
    return lefts, rights, empty


def _merge_matching_pieces(residual, pieces, found, membrane_gap, n_lanes, max_tilt_deg, noise):
    """Join neighbouring pieces whose lanes line up and no membrane gap parts: they are one membrane.

    Pieces whose own lanes differ in pitch are joined too when the lanes
    found on both together are one piece's lanes and each piece's bands sit
    between them (:func:`_pieces_take_lanes`): a band row whose bands are
    weak, smeared or touching misleads its piece's own comb.
    """
    pieces, found, membrane_gap = list(pieces), list(found), list(membrane_gap)
    index = 0
    while index < len(pieces) - 1:
        a, b = found[index], found[index + 1]
        joined = (pieces[index][0], pieces[index + 1][1])
        rows = joined[1] - joined[0] + 1
        join = False
        middle = [(top + bottom) / 2.0 for top, bottom in pieces[index : index + 2]]
        if membrane_gap[index]:
            pass  # a gap without membrane parts two membranes, whatever their lanes
        elif a is None or b is None or _lanes_agree(a, _lanes_at_row(b, middle[1], middle[0]), rows=rows):
            lanes = _strip_lanes(residual, joined, n_lanes, max_tilt_deg, noise)
            join = lanes is not None or (a is None and b is None)
        elif not _same_pitch(a, b):
            # The pieces' lanes differ in pitch, so one of them was misread
            # (weak, smeared or touching bands in its rows): the lanes of both
            # together count when they are one piece's lanes and the bands of
            # each piece sit between them about as well as between that
            # piece's own best comb. Pieces at one pitch but shifted or
            # fanned against each other are two membranes (_lanes_agree).
            lanes = _strip_lanes(residual, joined, n_lanes, max_tilt_deg, noise)
            join = (lanes is not None
                    and any(_lanes_agree(_lanes_at_row(lanes, (joined[0] + joined[1]) / 2.0, row), piece_lanes, rows=rows)
                            for piece_lanes, row in zip((a, b), middle))
                    and _pieces_take_lanes(residual, pieces[index : index + 2], joined, lanes, noise))
        if join:
            pieces[index : index + 2] = [joined]
            found[index : index + 2] = [lanes]
            del membrane_gap[index]
            continue
        index += 1
    return pieces, found


def _lanes_at_row(lanes, row, new_row):
    """Lanes ``(lefts, rights, empty, slope)`` given at ``row``, with their columns moved to ``new_row``.

    A leaning lane's columns shift by ``slope`` per row: the lanes of two
    pieces are compared at one row.
    """
    lefts, rights, empty, slope = lanes
    shift = slope * (new_row - row)
    return lefts + shift, rights + shift, empty, slope


def _same_pitch(a, b, *, tolerance=0.1):
    """Whether two strips' lanes (lefts, rights, ...) have one pitch, within ``tolerance`` of it."""
    centres_a, centres_b = (a[0] + a[1]) / 2.0, (b[0] + b[1]) / 2.0
    if centres_a.size < 2 or centres_b.size < 2:
        return centres_a.size == centres_b.size
    return bool(abs(np.median(np.diff(centres_a)) / np.median(np.diff(centres_b)) - 1) <= tolerance)


def _pieces_take_lanes(residual, pieces, strip, lanes, noise, *, min_share=_SHARED_COMB, weak=_WEAK_COMB):
    """Whether the bands of each of ``pieces`` sit between the lanes found for the rows ``strip`` holding them.

    The comb those lanes make, scored on a piece's own band rows
    (:func:`_edges_score`), must reach ``min_share`` of the score of the
    piece's own best comb. A piece with hardly any lane evidence of its own
    (no signal, or its best comb scoring under ``weak`` times its
    neighbour's: bands smeared across the lanes) takes the lanes as they are.
    """
    slope = lanes[3]
    evidence = [_block_comb_evidence(residual[top : bottom + 1], slope, noise) if bottom - top >= 2 else None
                for top, bottom in pieces]
    own = [None if prepared is None else float(np.max(_best_comb(*prepared[1:4], 4.0)[2])) for prepared in evidence]
    strongest = max((score for score in own if score is not None), default=0.0)
    for (top, bottom), prepared, score in zip(pieces, evidence, own):
        if prepared is None or score <= weak * strongest:
            continue
        # The lanes' columns at the piece's middle row (they are given at the strip's).
        lefts, rights, _, _ = _lanes_at_row(lanes, (strip[0] + strip[1]) / 2.0, (top + bottom) / 2.0)
        if _boundaries_score(prepared, _lane_boundaries(lefts, rights)) < min_share * score:
            return False
    return True


def _lanes_agree(a, b, *, rows=0, tolerance=0.2, max_drift=0.15):
    """Whether two strips' lanes are the same lanes.

    Most lanes of the strip with fewer lanes (70 %) must have a lane of the
    other strip within ``tolerance`` pitches, at nearly the same pitch: an
    extra faint lane at one edge does not make two membranes. The offsets
    of those matched lanes, fitted by a line across the strip, must stay
    within ``max_drift`` pitches at both ends: two membranes laid one above
    the other, shifted or fanned out against each other by a sixth of a lane
    at one end, would put one grid's boxes across the other's bands, while
    one lane traced badly at an edge does not move the line. Lanes whose
    slopes differ part by as much over the ``rows`` the two strips span.
    """
    centres_a, centres_b = (a[0] + a[1]) / 2.0, (b[0] + b[1]) / 2.0
    if centres_a.size == 1 or centres_b.size == 1:
        width = max(a[1][0] - a[0][0], 1.0)
        return centres_a.size == centres_b.size and abs(centres_a[0] - centres_b[0]) < tolerance * width
    pitch_a, pitch_b = np.median(np.diff(centres_a)), np.median(np.diff(centres_b))
    if abs(pitch_a / pitch_b - 1) > 0.1:
        return False
    fewer, more = (centres_a, centres_b) if centres_a.size <= centres_b.size else (centres_b, centres_a)
    nearest = more[np.abs(fewer[:, None] - more[None, :]).argmin(axis=1)]
    offset = nearest - fewer
    matched = np.abs(offset) < tolerance * pitch_a
    # Strips shifted sideways by a whole lane also match lane for lane, but
    # then neither end agrees; one faint extra lane moves only one end.
    ends_agree = (abs(centres_a[0] - centres_b[0]) < tolerance * pitch_a) or (
        abs(centres_a[-1] - centres_b[-1]) < tolerance * pitch_a)
    if not (ends_agree and np.mean(matched) >= 0.7):
        return False
    if matched.sum() < 3:
        return True
    slope, intercept = np.polyfit(fewer[matched], offset[matched], 1)
    drift = np.abs(slope * fewer[[0, -1]] + intercept)
    # Lanes leaning apart part too: over the rows of both, by the same measure.
    lean = abs(a[3] - b[3]) * rows / 2.0
    return bool(max(drift.max(), lean) < max_drift * pitch_a)
