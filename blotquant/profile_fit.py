"""Band volumes from a fit of the lane profile: a smooth baseline plus peak shapes.

A band along its lane is, to a good approximation, a Gaussian core (the
protein's spread in the gel) with an exponential tail trailing down the lane
(protein left behind as it migrated): an exponentially modified Gaussian
(EMG). Fitting the lane's row sums around each band (its limits and
:data:`REGION_ROWS` rows beyond them) with such peaks on a straight
baseline separates three things a box cannot:

* the band's flanks and tail from the background under it (a box's limit
  rows still hold band light; a straight line between them takes it for
  background);
* a band from a neighbour running into it (each peak has its own shape);
* a wide band's extent from its row's typical window.

The volume reported is the data minus the fitted baseline and the fitted
neighbours between the band's limits, plus the band's fitted light on the
fitted rows beyond them (never extrapolated further), so that a band whose
shape is not exactly an EMG is still measured by its pixels. A fit that
does not explain its profile is set aside for the box sum
(:func:`fit_is_trusted`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import least_squares, lsq_linear
from scipy.special import erfc, erfcx

#: Longest tail the fit allows, in core sigmas.
MAX_TAU_SIGMAS = 4.0
#: Smoothing of the detection profile (rows), as in :func:`blotquant.bands.find_band_peaks`.
_DETECTION_SMOOTHING = 1.5
#: A fit whose RMS misfit exceeds this share of the band's fitted peak height is not used.
MAX_FIT_RESIDUAL = 0.2
#: A fit further than this share from the box sum is not used.
MAX_FIT_DISAGREEMENT = 0.5
#: A fit that misses its profile by less than this share of the band's peak (RMS) is used
#: whatever the box sum says: a step or a blotch taken for a tail leaves more misfit than this.
MAX_CLEAN_RESIDUAL = 0.03
#: A fit whose baseline sinks further than this share of the band's fitted peak below the
#: lowest row of its region (less the row-sum noise) is not used.
MAX_FLOOR_GAP = 0.2
#: A box whose limit stands this high on its band (share of the peak) is no reference for a fit.
MAX_REFERENCE_EDGE = 0.2
#: Most of a band's volume that its light beyond its limits may add.
MAX_BEYOND_SHARE = 0.5
#: A pair replaces a single band when its RMS misfit is under this share of the single fit's.
SPLIT_MISFIT_SHARE = 0.5
#: Only a band whose single fit misses by this share of its peak (RMS) is tried as a pair: a
#: good single fit (about 1 % on clean bands with tails) is one band, however much a pair improves it.
MIN_SINGLE_MISFIT = 0.03
#: The weaker band of a split pair holds at least this share of the pair's light.
MIN_SPLIT_SHARE = 0.1
#: Rows fitted beyond each band's limits (and beyond its tail): the baseline's evidence.
REGION_ROWS = 13


@dataclass
class BandFit:
    """What the profile fit measured for one band.

    Attributes
    ----------
    volume : float
        Signal above the fitted baseline that belongs to this band.
    background : float
        Fitted baseline summed between the band's limits.
    centre, sigma, tau : float
        Fitted core centre (profile index), core sigma and tail length (rows).
    own_share : float
        Of the fitted peak light between the band's limits, the share that is
        this band's own (1 for an isolated band; lower where a neighbour runs
        into it and had to be split off).
    fit_residual : float
        RMS misfit of the fit over its region as a share of the band's
        fitted peak height (0.02 for a band the model explains down to the
        noise; 0.3 or more where the profile holds something the model has
        no term for, such as a membrane edge).
    volume_sd : float
        Standard uncertainty of the volume: the fitted area's (from the
        linear part's covariance, shapes held) and the row-sum noise over
        the limits, in quadrature.
    floor_gap : float
        How far the fitted baseline sinks below the lowest row sum of the
        fitted region (less four row-sum noise sigmas), as a share of the
        band's fitted peak height. Light only adds to the background, so
        the baseline cannot lie far below every row: a fit with a large gap
        has wide peaks standing in for the background.
    """

    volume: float
    background: float
    centre: float
    sigma: float
    tau: float
    own_share: float
    fit_residual: float
    volume_sd: float
    floor_gap: float = 0.0


def emg(x, area, centre, sigma, tau):
    """Exponentially modified Gaussian with its tail towards larger ``x``.

    Parameters
    ----------
    x : array
        Positions (rows).
    area, centre, sigma, tau : float
        Integral, Gaussian centre and sigma, exponential decay length.

    Returns
    -------
    ndarray
        ``area`` times the EMG density at ``x``, computed in a form that
        neither overflows far down the tail nor loses the Gaussian limit as
        ``tau`` goes to zero.

    Examples
    --------
    >>> x = np.arange(-50.0, 150.0)
    >>> round(float(emg(x, 10.0, 0.0, 3.0, 5.0).sum()), 6)
    10.0
    """
    x = np.asarray(x, dtype=np.float64)
    tau = max(float(tau), 1e-6)
    ratio = sigma / tau
    z = (x - centre) / sigma
    u = (ratio - z) * np.sqrt(0.5)
    # erfcx keeps the product finite where erfc underflows (u large); far
    # down the tail (u < -5, where erfcx overflows) erfc is ~2 and the
    # plain form's exponent is negative, so neither branch can overflow.
    density = np.exp(-0.5 * z * z) * erfcx(np.maximum(u, -5.0))
    far = u < -5.0
    if far.any():
        density[far] = np.exp(ratio * (0.5 * ratio - z[far])) * erfc(u[far])
    return (area / (2.0 * tau)) * density


#: Relative step of the forward differences: the square root of float64's resolution.
_DIFFERENCE_STEP = float(np.finfo(np.float64).eps) ** 0.5


def forward_difference_jacobian(function, x, at_x, lower, upper):
    """Jacobian of ``function`` at ``x`` by forward differences that stay inside the bounds.

    The steps are those :func:`scipy.optimize.least_squares` takes for
    ``jac="2-point"`` (``sqrt(eps) * max(1, |x|)``, signed as ``x``; turned
    back where they would leave the bounds, or shortened to the far bound
    where neither way fits), so a fit given this Jacobian takes the same
    path to the same values; computed here, it costs the residuals alone,
    without the generic machinery around them (a tenth of the fit's time).

    Parameters
    ----------
    function : callable
        ``function(x)`` gives the residuals, a 1-D array.
    x : (n,) array
    at_x : (m,) array
        ``function(x)``, already evaluated.
    lower, upper : (n,) arrays
        Finite bounds, ``lower <= x <= upper``.

    Returns
    -------
    (m, n) array
    """
    step = _DIFFERENCE_STEP * ((x >= 0).astype(float) * 2 - 1) * np.maximum(1.0, np.abs(x))
    below, above = x - lower, upper - x
    fitting = np.abs(step) <= np.maximum(below, above)
    outside = ((x + step) < lower) | ((x + step) > upper)
    step[outside & fitting] *= -1
    forward = (above >= below) & ~fitting
    step[forward] = above[forward]
    backward = (above < below) & ~fitting
    step[backward] = -below[backward]
    transposed = np.empty((x.size, at_x.size))
    for index in range(x.size):
        trial = x.copy()
        trial[index] = x[index] + step[index]
        transposed[index] = (function(trial) - at_x) / ((x[index] + step[index]) - x[index])
    return transposed.T


def _smoothed_detection(detection):
    """The detection profile smoothed as for band finding: computed once per lane, read for each band."""
    return ndi.gaussian_filter1d(np.asarray(detection, dtype=np.float64), _DETECTION_SMOOTHING)


def _initial_sigma(smoothed, peak, top=None, bottom=None):
    """Core sigma of a band from its width at half height on the smoothed detection profile.

    Returns ``(peak, sigma)``: the local maximum within three rows of the
    given peak, and the sigma of a Gaussian as wide at half height. The
    half-height points are looked for between the band's limits ``top`` and
    ``bottom`` when given (a neighbour beyond the valley would widen it);
    where the profile does not fall to half height before a limit, the
    limit stands for it. ``smoothed`` is the lane's detection profile as
    :func:`_smoothed_detection` gives it.
    """
    top = 0 if top is None else int(top)
    bottom = smoothed.size - 1 if bottom is None else int(bottom)
    near = slice(max(top, int(peak) - 3), min(bottom, int(peak) + 3) + 1)
    if near.stop <= near.start:
        near = slice(max(0, int(peak) - 3), min(smoothed.size, int(peak) + 4))
    peak = near.start + int(np.argmax(smoothed[near]))
    half = 0.5 * smoothed[peak]
    above = np.flatnonzero(smoothed[top : peak + 1] < half)
    below = np.flatnonzero(smoothed[peak : bottom + 1] < half)
    left = top + above[-1] if above.size else top
    right = peak + below[0] if below.size else bottom
    fwhm = float(max(right - left - 1, 1))
    sigma = np.sqrt(max((fwhm / 2.3548) ** 2 - _DETECTION_SMOOTHING**2, 0.7**2))
    return peak, float(sigma)


def _clusters(spans):
    """Group bands whose fit regions overlap (indices into ``spans``, sorted by start)."""
    order = np.argsort([span[0] for span in spans])
    groups, current, reach = [], [], -1
    for index in order:
        start, stop = spans[index]
        if current and start > reach:
            groups.append(current)
            current = []
        current.append(int(index))
        reach = max(reach, stop)
    if current:
        groups.append(current)
    return groups


def _fit_cluster(rows, values, seeds, noise):
    """Least-squares fit of one region: a straight baseline plus one EMG per seed.

    The model is linear in the baseline's coefficients and the bands' areas,
    so only each band's centre, sigma and tail length are searched for
    (variable projection); for each trial shape the linear part is solved
    exactly, with areas kept non-negative. (A Gaussian core plus a separate
    tail of its own share follows long tails better, but on the benchmarks
    its extra freedom traded band light for baseline: 8.8 % p90 error on the
    old family became 12 %, 24 % on the spike-ins 28 %.)

    Parameters
    ----------
    rows, values : (R,) arrays
        The region's row numbers and row sums.
    seeds : list of (centre, sigma)
        First guesses, one per band (areas need none: they are solved for).
    noise : float
        Row-sum noise (a floor for the fit's scale).

    Returns
    -------
    baseline : (R,) array
    peaks : list of dict
        Per band: ``area``, ``model`` (its fitted light on ``rows``),
        ``centre``, ``sigma``, ``tau`` and ``area_variance`` (from the
        linear part's covariance, shapes held at their fitted values).
    rms : float
        RMS misfit over the region.
    """
    centre_row = 0.5 * (rows[0] + rows[-1])
    half_span = max(0.5 * (rows[-1] - rows[0]), 1.0)
    t = (rows - centre_row) / half_span
    baseline_design = np.column_stack([np.ones_like(t), t])
    n_base = baseline_design.shape[1]
    ends = np.r_[0:3, rows.size - 3 : rows.size]
    line = np.polyfit(t[ends], values[ends], 1)
    peak_scale = max(float(np.max(np.abs(values - np.polyval(line, t)))), noise, 1e-9)
    scaled = values / peak_scale
    n_peaks = len(seeds)

    start, lower, upper = [], [], []
    for centre, sigma in seeds:
        start += [centre, sigma, sigma]
        lower += [centre - 2.0 * sigma - 2.0, 0.7, 0.3]
        upper += [centre + 2.0 * sigma + 2.0, 3.0 * sigma + 1.0, MAX_TAU_SIGMAS * sigma + 1.0]
    start = np.clip(start, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
    area_floor = np.r_[np.full(n_base, -np.inf), np.zeros(n_peaks)]

    def design_for(shapes):
        # Called hundreds of times per band (each residual and Jacobian column):
        # filled in place, not stacked from a list of columns.
        design = np.empty((rows.size, n_base + n_peaks))
        design[:, :n_base] = baseline_design
        for k in range(n_peaks):
            centre, sigma, tau = shapes[3 * k : 3 * k + 3]
            design[:, n_base + k] = emg(rows, 1.0, centre, sigma, tau)
        return design

    def solve(shapes):
        design = design_for(shapes)
        coefficients, *_ = np.linalg.lstsq(design, scaled, rcond=None)
        if (coefficients[n_base:] < 0).any():
            # A core or tail the data would rather subtract: keep its area at zero.
            coefficients = lsq_linear(design, scaled, bounds=(area_floor, np.inf)).x
        return design, coefficients

    last = {}  # the shapes of the last residuals evaluated, and those residuals

    def residuals(shapes):
        design, coefficients = solve(shapes)
        misfit = design @ coefficients - scaled
        last["shapes"], last["misfit"] = shapes.copy(), misfit
        return misfit

    def jacobian(shapes):
        # least_squares asks for the Jacobian where it has just evaluated the residuals.
        at_shapes = last["misfit"] if np.array_equal(last.get("shapes"), shapes) else residuals(shapes)
        return forward_difference_jacobian(residuals, shapes, at_shapes, lower_bounds, upper_bounds)

    lower_bounds, upper_bounds = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    result = least_squares(residuals, start, jac=jacobian, bounds=(lower, upper), method="trf", x_scale="jac",
                           ftol=1e-5, xtol=1e-5, max_nfev=60 * (len(start) + 1))
    shapes = result.x
    design, coefficients = solve(shapes)
    misfit = design @ coefficients - scaled
    dof = max(rows.size - len(coefficients) - len(shapes), 1)
    residual_variance = float(np.sum(misfit**2)) / dof
    covariance = np.linalg.pinv(design.T @ design) * residual_variance
    peaks = []
    for k in range(n_peaks):
        index = n_base + k
        peaks.append({
            "area": float(coefficients[index]) * peak_scale,
            "model": design[:, index] * coefficients[index] * peak_scale,
            "centre": float(shapes[3 * k]),
            "sigma": float(shapes[3 * k + 1]),
            "tau": float(shapes[3 * k + 2]),
            "area_variance": float(max(covariance[index, index], 0.0)) * peak_scale**2,
        })
    baseline = baseline_design @ coefficients[:n_base] * peak_scale
    rms = float(np.sqrt(np.mean(misfit**2))) * peak_scale
    return baseline, peaks, rms


def fit_is_trusted(fit, box_volume, box_edge_share=0.0):
    """Whether a band's fitted volume may stand in for its box sum.

    A fit is set aside when it does not explain its profile (RMS misfit
    above :data:`MAX_FIT_RESIDUAL` of the band's fitted peak: a membrane
    edge or a blotch the model has no term for), when its baseline sinks
    below every row of its region (``floor_gap`` above
    :data:`MAX_FLOOR_GAP`: wide peaks took the background's place), or
    when it disagrees with the box sum by finding more than
    :data:`MAX_FIT_DISAGREEMENT` of it more although no neighbour shares
    its box, the box holds the band down to a fifth of its height and the
    fit misses its profile by more than :data:`MAX_CLEAN_RESIDUAL` (a step
    taken for a tail). A fit that explains its profile that closely is
    kept against the box sum: the box of a wide band ends on its flanks,
    where the box's background still holds band light, and it is the box
    sum that falls short.

    Parameters
    ----------
    fit : BandFit
    box_volume : float
        The band's box sum (``beyond`` background) over the same limits.
    box_edge_share : float
        The detection profile at the box's higher limit as a share of the
        band's peak (the bands table's ``overlap``). Both thresholds were set on real membranes with known added
    bands (``benchmarks/spike_in.py``).

    Examples
    --------
    >>> good = BandFit(100.0, 0.0, 5.0, 2.0, 1.0, 1.0, 0.06, 3.0)
    >>> fit_is_trusted(good, 95.0), fit_is_trusted(good, 40.0), fit_is_trusted(good, 400.0)
    (True, False, True)
    >>> clean = BandFit(100.0, 0.0, 5.0, 2.0, 1.0, 1.0, 0.01, 3.0)
    >>> fit_is_trusted(clean, 40.0), fit_is_trusted(BandFit(100.0, 0.0, 5.0, 2.0, 1.0, 1.0, 0.01, 3.0, 0.5), 95.0)
    (True, False)
    """
    if not np.isfinite(fit.volume) or not np.isfinite(fit.fit_residual) or fit.fit_residual > MAX_FIT_RESIDUAL:
        return False
    if fit.floor_gap > MAX_FLOOR_GAP:
        return False
    if fit.own_share < 0.9 or box_edge_share >= MAX_REFERENCE_EDGE:
        # A neighbour shares the box, or the box cuts the band: the box sum
        # is no reference, and the fit is meant to differ from it.
        return True
    # Less than the box is what a fit finds where a neighbour's light spills
    # into the box; far more means it took a step or a blotch for the band's tail.
    return fit.fit_residual <= MAX_CLEAN_RESIDUAL or (
        fit.volume <= box_volume + MAX_FIT_DISAGREEMENT * max(abs(box_volume), 1e-12))


def fit_lane_bands(signal, detection, bands, *, noise, width, shapes=None):
    """Measure the bands of one lane by fitting its profile.

    Parameters
    ----------
    signal : (H,) array
        The lane's row sums (signal across the lane in each row).
    detection : (H,) array
        The lane's detection profile (per-pixel, background-free), used for
        first guesses of each band's width.
    bands : list of (peak, top, bottom)
        Bands found on the lane (profile indices), as from
        :func:`blotquant.bands.find_band_peaks`.
    noise : float
        Per-pixel noise; the row-sum noise is ``noise * sqrt(width)``.
    width : int
        Lane width in pixels.
    shapes : dict, optional
        ``(peak, top, bottom) -> (centre, sigma)`` first guesses that replace
        those read off the detection profile (the members of a split doublet,
        from :func:`split_shoulders`).

    Returns
    -------
    list of BandFit
        One per band, in the order given.

    Examples
    --------
    A band with a tail on a sloping background, measured to within a
    fraction of a percent:

    >>> rows = np.arange(200.0)
    >>> truth = emg(rows, 5000.0, 80.0, 4.0, 6.0)
    >>> fits = fit_lane_bands(300 + 0.5 * rows + truth, truth / 20, [(82, 66, 115)], noise=0.0, width=20)
    >>> round(fits[0].volume / 5000.0, 3)
    1.0
    """
    signal = np.asarray(signal, dtype=np.float64)
    n = signal.size
    if not bands:
        return []
    bands = list(bands)
    seeds = []
    smoothed = _smoothed_detection(detection)
    for band in bands:
        if shapes and band in shapes:
            seeds.append(tuple(float(v) for v in shapes[band]))
            continue
        peak, sigma = _initial_sigma(smoothed, *band)
        seeds.append((float(peak), sigma))
    spans = []
    for peak, top, bottom in bands:
        spans.append((max(0, int(top - REGION_ROWS)), min(n - 1, int(bottom + REGION_ROWS))))
    row_noise = max(noise * np.sqrt(max(width, 1)), 1e-12)
    results = [None] * len(bands)
    for group in _clusters(spans):
        first = min(spans[i][0] for i in group)
        last = max(spans[i][1] for i in group)
        if last - first + 1 < 8:
            first, last = max(0, first - 4), min(n - 1, last + 4)
        rows = np.arange(first, last + 1, dtype=np.float64)
        values = signal[first : last + 1]
        baseline, peaks, rms = _fit_cluster(rows, values, [seeds[i] for i in group], row_noise)
        models = [peak["model"] for peak in peaks]
        for k, i in enumerate(group):
            top, bottom = bands[i][1], bands[i][2]
            inside = slice(top - first, bottom - first + 1)
            others = sum((models[j][inside] for j in range(len(group)) if j != k), np.zeros(bottom - top + 1))
            own = models[k][inside]
            measured = float(np.sum(values[inside] - baseline[inside] - others))
            # The band's light beyond its limits (a tail's end, a flank), as the
            # fit sees it on the rows it was fitted to: never extrapolated.
            beyond = float(models[k].sum() - own.sum())
            volume = measured + min(beyond, MAX_BEYOND_SHARE * max(measured, 0.0))
            peak_light = float(own.sum() + others.sum())
            results[i] = BandFit(
                volume=volume,
                background=float(baseline[inside].sum()),
                centre=peaks[k]["centre"],
                sigma=peaks[k]["sigma"],
                tau=peaks[k]["tau"],
                own_share=float(own.sum() / peak_light) if peak_light > 0 else 1.0,
                fit_residual=float(rms / max(float(models[k].max()), row_noise)),
                volume_sd=float(np.sqrt(peaks[k]["area_variance"] + (bottom - top + 1) * row_noise**2)),
                floor_gap=float(max(0.0, values.min() - baseline.min() - 4.0 * row_noise)
                                / max(float(models[k].max()), row_noise)),
            )
    return results


def split_shoulders(signal, detection, bands, *, noise, width, context=()):
    """Split bands that are two: a doublet whose weaker member is only a shoulder.

    Two bands closer than about three core sigmas (p44/p42 ERK, a
    phospho-shift) make one peak on the detection profile. Each band is
    fitted alone and, with a second peak seeded where the first fit misses
    most, as a pair; the pair replaces it when its misfit is under
    :data:`SPLIT_MISFIT_SHARE` of the single fit's, the weaker member holds
    at least :data:`MIN_SPLIT_SHARE` of the pair and stands out of the
    row-sum noise, and the two centres are at least a core sigma apart.
    The limit between the two is the row where their fitted profiles cross.
    A band with another found band within its fit region is left as it is
    (that neighbour would be taken for the second member).

    Parameters
    ----------
    signal, detection : (H,) arrays
        As for :func:`fit_lane_bands`.
    bands : list of (peak, top, bottom)
        The bands to try.
    noise : float
    width : int
    context : list of (peak, top, bottom), optional
        Every band found on the lane; a band with another of them within its
        fit region is not tried.

    Returns
    -------
    bands : list of (peak, top, bottom)
        The bands, with each split one replaced by its two members, top to bottom.
    shapes : dict
        ``(peak, top, bottom) -> (centre, sigma)`` of each split member, the
        first guesses for :func:`fit_lane_bands`.

    Examples
    --------
    >>> rows = np.arange(200.0)
    >>> pair = emg(rows, 3000.0, 90.0, 3.0, 0.5) + emg(rows, 1800.0, 99.0, 3.0, 0.5)
    >>> split_shoulders(100 + pair, pair / 30, [(90, 78, 110)], noise=0.5, width=30)[0]
    [(90, 78, 95), (99, 96, 110)]
    """
    signal = np.asarray(signal, dtype=np.float64)
    n = signal.size
    row_noise = max(noise * np.sqrt(max(width, 1)), 1e-12)
    result, shapes = [], {}
    smoothed = _smoothed_detection(detection)
    for peak, top, bottom in bands:
        centre0, sigma0 = _initial_sigma(smoothed, peak, top, bottom)
        first, last = max(0, top - REGION_ROWS), min(n - 1, bottom + REGION_ROWS)
        crowded = any(first <= other[0] <= last for other in list(bands) + list(context) if other[0] != peak)
        if last - first + 1 < 12 or bottom - top < 4 or crowded:
            # A neighbour in the region would be taken for the second member: left as found.
            result.append((peak, top, bottom))
            continue
        rows = np.arange(first, last + 1, dtype=np.float64)
        values = signal[first : last + 1]
        baseline, peaks, rms_one = _fit_cluster(rows, values, [(float(centre0), sigma0)], row_noise)
        misfit = ndi.gaussian_filter1d(values - baseline - peaks[0]["model"], 1.0)
        inside = slice(top - first, bottom - first + 1)
        candidate = top + int(np.argmax(misfit[inside]))
        single_misfit = rms_one / max(float(peaks[0]["model"].max()), 1e-12)
        if misfit[candidate - first] < 5.0 * row_noise or single_misfit < MIN_SINGLE_MISFIT:
            result.append((peak, top, bottom))
            continue
        sigma = peaks[0]["sigma"]
        # The single fit widened itself over both: each member is narrower.
        seeds = [(float(centre0), 0.7 * sigma), (float(candidate), 0.7 * sigma)]
        baseline2, pair, rms_two = _fit_cluster(rows, values, seeds, row_noise)
        areas = np.array([p["area"] for p in pair])
        centres = np.array([p["centre"] for p in pair])
        weaker = float(areas.min() / max(areas.sum(), 1e-12))
        weaker_peak = min(float(p["model"].max()) for p in pair)
        if (rms_two < SPLIT_MISFIT_SHARE * rms_one and weaker >= MIN_SPLIT_SHARE
                and weaker_peak > 10.0 * row_noise and np.all((centres >= top) & (centres <= bottom))
                and abs(centres[1] - centres[0]) >= min(p["sigma"] for p in pair)):
            order = np.argsort(centres)
            upper, lower = (pair[i] for i in order)
            low_index = int(np.floor(upper["centre"])) - first
            high_index = int(np.ceil(lower["centre"])) - first
            between = np.arange(max(low_index, 0), min(high_index, rows.size - 1) + 1)
            # The limit: the last row where the upper band's light still exceeds the lower's.
            upper_wins = between[upper["model"][between] >= lower["model"][between]]
            boundary = first + int(upper_wins.max() if upper_wins.size else low_index)
            boundary = int(np.clip(boundary, top, bottom - 1))
            upper_peak = int(np.clip(round(upper["centre"]), top, boundary))
            lower_peak = int(np.clip(round(lower["centre"]), boundary + 1, bottom))
            # The box found for the single peak may stop short of the members' own extents.
            member_top = int(max(0, min(top, np.floor(upper["centre"] - 3.0 * upper["sigma"]))))
            member_bottom = int(min(n - 1, max(bottom, np.ceil(lower["centre"] + 3.0 * lower["sigma"]
                                                              + 3.0 * lower["tau"]))))
            members = [(upper_peak, member_top, boundary), (lower_peak, boundary + 1, member_bottom)]
            result.extend(members)
            for member, fitted in zip(members, (upper, lower)):
                shapes[member] = (fitted["centre"], fitted["sigma"])
        else:
            result.append((peak, top, bottom))
    return sorted(result), shapes
