"""Synthetic Western blots with exact ground truth, for tests and benchmarks.

Every band is an analytic model (flat-topped across the lane, a Gaussian
core with an exponential tail along it) evaluated at the pixel centres of
the possibly rotated image, and only inside its own bounding box. A band's
true volume is therefore the exact sum of what was added to the image, and a
perfect algorithm that subtracts :attr:`SyntheticBlot.background` from the
noise-free image recovers it. Rotation is applied to coordinates, never to a
rendered image, so no resampling blurs the truth.

Signal units: stored units for ``light_on_dark`` images; for
``dark_on_light`` (film scans) the stored value is ``full_scale - signal``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import special

from .bands import SATURATION_LEVEL, is_saturated
from .errors import ParameterError
from .output import atomic_write_bytes

#: A pixel belongs to a band's footprint when the band's own noise-free
#: contribution there is at least this fraction of its maximum; the
#: ``saturated`` truth flag counts clipped pixels inside the footprint.
FOOTPRINT_FRACTION = 0.1

_CORE_REACH = 6.0  # band box extends this many sigma around the core
_TAIL_REACH = 10.0  # ... and this many tail lengths below it
_EDGE_REACH = 4.0  # ... and this many edge widths beyond the lane's flat top
_NO_CLIP_CEILING = 0.9  # saturate=False keeps noise-free band pixels below this
_EXACT_POISSON_BELOW = 30.0  # electrons; above this a normal draw is exact enough
_POLARITIES = ("light_on_dark", "dark_on_light")
_BACKGROUNDS = ("flat", "gradient", "blotchy")
_BIT_DEPTHS = (8, 10, 12, 14, 16, 32)


@dataclass
class SyntheticBlot:
    """A rendered blot and the truth it was drawn from.

    Attributes
    ----------
    image : ndarray
        2-D stored values (uint8, uint16 or float32) in ``polarity``.
    truth_bands : DataFrame
        One row per band: ``strip``, ``lane``, ``band_row`` (1-based, top to
        bottom, non-specific rows included), ``source_row`` (1-based index into
        ``band_rows``; for a non-specific band, the row it accompanies), ``y``
        and ``x`` (band centre at the lane centre, image px), ``volume`` (exact
        sum of the band's noise-free, unclipped contribution, signal units),
        ``amount``, ``strength``, ``saturated``, ``sigma_y``, ``nonspecific``.
    truth_lanes : DataFrame
        One row per lane: ``strip``, ``lane``, ``x_center``, ``x_left``,
        ``x_right`` (at the strip's vertical centre), ``y_top``, ``y_bottom``
        (strip edges at the lane centre), ``half_width``, ``empty``.
    full_scale : float
        Largest storable value (255, 65535, ... or 1.0 for float32).
    polarity : str
        ``"light_on_dark"`` or ``"dark_on_light"``.
    params : dict
        Every parameter used, JSON-serialisable, including ``seed`` and the
        resolved geometry of every band (``params["bands"]``, same order as
        ``truth_bands``), from which :func:`band_contribution` re-renders.
    background : ndarray
        Noise-free signal that is not band (membrane, strip gaps, smear, dust,
        pen marks), float32, signal units.
    """

    image: np.ndarray
    truth_bands: pd.DataFrame
    truth_lanes: pd.DataFrame
    full_scale: float
    polarity: str
    params: dict
    background: np.ndarray | None


class _Frame:
    """Rotation between the blot frame (u across lanes, v down them) and image (row, col).

    Positive angles turn the blot counter-clockwise as displayed (row axis
    pointing down), about the image centre.
    """

    def __init__(self, shape, rotation_deg):
        self.shape = tuple(int(n) for n in shape)
        theta = math.radians(rotation_deg)
        self.cos, self.sin = math.cos(theta), math.sin(theta)
        self.rc = (self.shape[0] - 1) / 2.0
        self.cc = (self.shape[1] - 1) / 2.0

    def to_image(self, u, v):
        du, dv = np.subtract(u, self.cc), np.subtract(v, self.rc)
        row = self.rc - du * self.sin + dv * self.cos
        col = self.cc + du * self.cos + dv * self.sin
        return row, col

    def to_blot(self, row, col):
        dr, dc = np.subtract(row, self.rc), np.subtract(col, self.cc)
        u = self.cc + dc * self.cos - dr * self.sin
        v = self.rc + dc * self.sin + dr * self.cos
        return u, v

    def box(self, u_range, v_range):
        """Image-pixel slices covering a blot-frame rectangle, or None if outside."""
        uu, vv = np.meshgrid(u_range, v_range)
        rows, cols = self.to_image(uu, vv)
        r0 = max(int(math.floor(rows.min())), 0)
        r1 = min(int(math.ceil(rows.max())) + 1, self.shape[0])
        c0 = max(int(math.floor(cols.min())), 0)
        c1 = min(int(math.ceil(cols.max())) + 1, self.shape[1])
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def blot_coords(self, rows, cols):
        """Blot-frame (u, v) of every pixel in a box (broadcast 2-D, float32 for speed)."""
        r = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None]
        c = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :]
        if self.sin == 0.0:  # unrotated: u varies along columns only, v along rows only
            return self.cc + (c - self.cc) * self.cos, self.rc + (r - self.rc) * self.cos
        return self.to_blot(r, c)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def make_blot(
    *,
    shape=(1200, 1600),
    n_lanes=10,
    n_strips=1,
    band_rows=((0.35, 1.0),),
    amounts=None,
    rotation_deg=0.0,
    smile=0.0,
    band_curvature=0.3,
    lane_width_jitter=0.1,
    lane_width_frac=0.7,
    lane_position_jitter=0.02,
    lane_margin=0.06,
    lane_edge=0.12,
    band_sigma=None,
    band_sigma_jitter=0.05,
    tail=0.3,
    tail_length=2.0,
    tail_jitter=0.0,
    peak=None,
    background="blotchy",
    background_level=0.08,
    noise=True,
    full_well=20000.0,
    read_noise=0.002,
    dust=0,
    saturate=False,
    polarity="light_on_dark",
    bit_depth=16,
    empty_lanes=(),
    smear=0.0,
    nonspecific=None,
    nonspecific_offset=4.0,
    nonspecific_row=1,
    strip_gap=0.05,
    strip_shift=None,
    marks=False,
    seed=0,
):
    """Render a synthetic Western blot with exact per-band truth.

    Parameters
    ----------
    shape : (int, int)
        Image size (rows, cols).
    n_lanes : int
        Lanes per strip, evenly pitched across the width between margins.
    n_strips : int
        Membrane strips stacked top to bottom, separated by a gap without
        membrane; each strip numbers its lanes from 1.
    band_rows : sequence of (position, strength)
        One entry per molecular-weight row: vertical position as a fraction
        of the strip height (0 top, 1 bottom) and relative strength.
    amounts : array_like, optional
        Relative protein amount per lane, shape ``(n_lanes,)``,
        ``(n_lanes, n_rows)`` or ``(n_strips, n_lanes, n_rows)``. Default:
        log-uniform over 0.1-1 independently per strip, lane and row (a
        tenfold, dilution-like spread with some weak bands).
    rotation_deg : float
        Counter-clockwise rotation of the whole blot about the image centre
        (typically within +-2). Coordinates are rotated analytically.
    smile : float
        Upward shift of the outermost lanes' bands relative to the central
        lane, as a fraction of the strip height (quadratic across the strip;
        negative for a frown). Typical 0.005-0.02.
    band_curvature : float
        How much higher a band's ends sit than its centre within the lane, in
        units of its sigma (0 for straight bands).
    lane_width_jitter : float
        Lane widths vary uniformly by this fraction around the nominal width.
    lane_width_frac : float
        Nominal lane width as a fraction of the lane pitch.
    lane_position_jitter : float
        Lane centres move uniformly by up to this fraction of the pitch.
    lane_margin : float
        Empty margin on each side of the lane grid, fraction of the width.
    lane_edge : float
        Softness (Gaussian sigma) of the lane's side edges, as a fraction of
        the nominal lane half-width.
    band_sigma : float or sequence of float, optional
        Gaussian core sigma along the lane in px, one value or one per band
        row. Default: 0.8 % of the image height, at least 1.5 px.
    band_sigma_jitter : float
        Each band's sigma varies uniformly by this fraction.
    tail : float
        Fraction (0-1) of each band's volume in an exponential tail
        downwards (an exponentially modified Gaussian).
    tail_length : float
        Decay length of the tail in units of the band sigma.
    tail_jitter : float
        Each band's tail fraction varies uniformly by this fraction of
        ``tail`` (0: every band has ``tail``; 1: anywhere from 0 to twice it),
        and its decay length by half as much: bands trail each in their own way.
    peak : float, optional
        Noise-free peak of the strongest band as a fraction of full scale
        (the "exposure"). Default 0.6, or 1.8 with ``saturate=True``.
    background : {"flat", "gradient", "blotchy"}
        Membrane background: constant; smooth gradient with vignetting; or
        gradient plus low-frequency blotches a few band heights across and
        faint fine speckle, like a real membrane.
    background_level : float
        Mean membrane background as a fraction of full scale.
    noise : bool
        Add shot noise (Poisson in electrons, normal approximation above 30
        electrons) and Gaussian read noise.
    full_well : float
        Electrons at full scale; sets the shot-noise level.
    read_noise : float
        Read-noise standard deviation as a fraction of full scale.
    dust : int
        Number of small bright or dark specks; any dust also adds one (fewer
        than 5 specks) or two hairs/scratches.
    saturate : bool
        Over-expose so that the strongest bands clip at full scale. When
        False, the noise-free band signal stays below 90 % of full scale.
    polarity : {"light_on_dark", "dark_on_light"}
        Bright bands on dark (chemiluminescence, fluorescence) or dark bands
        on light (film scan; stored = full_scale - signal).
    bit_depth : {8, 10, 12, 14, 16, 32}
        Integer depth (uint8 up to 8 bits, uint16 above; full scale
        ``2**bit_depth - 1``) or 32 for float32 with full scale 1.0.
    empty_lanes : sequence of int
        1-based lane numbers without any band (in every strip).
    smear : float
        Weak vertical streak down each loaded lane, peak as a fraction of the
        lane's strongest band peak; counted as background.
    nonspecific : float, optional
        Strength of a non-specific band accompanying ``nonspecific_row`` in
        every loaded lane, relative to the strongest specific band of that row
        in the strip (True means 0.3). Its amount follows the lane's total
        load (uniform 0.7-1.3), not the specific amount.
    nonspecific_offset : float
        Distance of the non-specific band from its row, in band sigmas
        (positive: below).
    nonspecific_row : int
        1-based index into ``band_rows`` of the row it accompanies.
    strip_gap : float
        Gap between strips as a fraction of the image height.
    strip_shift : sequence of float, optional
        Horizontal shift of each strip in px. Default: random within
        +-0.5 % of the width when ``n_strips > 1``.
    marks : bool
        Add a few short thick pen strokes (handwritten labels) in the top
        margin of the first strip; counted as background.
    seed : int
        Seed of the numpy Generator; equal seeds give equal blots.

    Returns
    -------
    SyntheticBlot

    Examples
    --------
    >>> blot = make_blot(shape=(200, 300), n_lanes=4, noise=False, seed=1)
    >>> blot.image.dtype, blot.image.shape, len(blot.truth_bands)
    (dtype('uint16'), (200, 300), 4)
    """
    opts = _resolve_options(dict(locals()))
    shape, rows, empty = opts["shape"], opts["band_rows"], opts["empty_lanes"]
    full_scale = 1.0 if bit_depth == 32 else float(2**bit_depth - 1)
    # One independent stream per ingredient, so switching dust or noise on
    # leaves the lanes, amounts and background of the same seed unchanged.
    rng_layout, rng_amounts, rng_bg, rng_dust, rng_marks, rng_noise, rng_smear = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(7)
    )
    frame = _Frame(shape, rotation_deg)

    strips = _strip_layout(shape, opts["n_strips"], opts["strip_gap"], strip_shift, rng_layout)
    lanes = _lane_layout(shape[1], opts, rng_layout)
    amount_table = _resolve_amounts(amounts, opts["n_strips"], opts["n_lanes"], len(rows), rng_amounts)
    amount_table[:, [lane - 1 for lane in empty], :] = 0.0
    loading = rng_amounts.uniform(0.7, 1.3, (opts["n_strips"], opts["n_lanes"]))
    specs = _band_specs(opts, strips, lanes, amount_table, loading, rng_layout)

    # Exposure: the strongest band's noise-free continuous peak is ``peak`` x full scale.
    unit_peaks = [_unit_peak(b) * b["amount"] * b["strength"] for b in specs]
    gain = opts["peak"] * full_scale / max(unit_peaks) if specs and max(unit_peaks) > 0 else 0.0
    for b in specs:
        b["volume_model"] = gain * b["amount"] * b["strength"]

    bg = _background_image(opts, specs, strips, frame, full_scale, (rng_bg, rng_smear, rng_marks, rng_dust))
    layers = [_render_band(b, frame) for b in specs]
    signal = bg.copy()
    _accumulate(signal, layers)
    if not saturate and layers:
        factor = _no_clip_factor(signal, bg, layers, full_scale)
        if factor < 1.0:
            gain *= factor
            for b in specs:
                b["volume_model"] *= factor
            layers = [_render_band(b, frame) for b in specs]
            signal = bg.copy()
            _accumulate(signal, layers)

    if noise:
        signal = _add_noise(signal, full_scale, full_well, read_noise, rng_noise)
    np.clip(signal, 0.0, full_scale, out=signal)
    if bit_depth != 32:
        np.rint(signal, out=signal)
    saturated = [_is_saturated_band(signal, layer, full_scale) for layer in layers]
    stored = signal if polarity == "light_on_dark" else full_scale - signal
    if bit_depth == 32:
        image = stored.astype(np.float32)
    else:
        image = stored.astype(np.uint8 if bit_depth <= 8 else np.uint16)

    params = _jsonable({
        **opts,
        "amounts": amount_table,
        "strip_shift": [s["shift"] for s in strips],
        "full_scale": full_scale,
        "gain": gain,
        "loading": loading,
        "strips": strips,
        "bands": specs,
    })
    return SyntheticBlot(
        image=image,
        truth_bands=_truth_bands(specs, layers, saturated, frame),
        truth_lanes=_truth_lanes(strips, lanes, opts, frame),
        full_scale=full_scale,
        polarity=polarity,
        params=params,
        background=bg,
    )


def random_hard_blot(seed, **overrides):
    """Draw a blot from a family made to be harder than blotquant, for honest benchmarks.

    Where :func:`random_blot` draws bands of one row with nearly one width,
    this family has what real membranes have: band widths varying up to
    threefold across the lanes of a row, a tail of its own size on each band
    (up to a third of its signal), faint non-specific bands a few band widths
    away on most blots, blotchy backgrounds whose blotches reach the peak of
    weak bands, soft lane edges and wide empty margins.

    Parameters
    ----------
    seed : int
    **overrides
        Any :func:`make_blot` keyword, fixed instead of drawn.

    Returns
    -------
    SyntheticBlot

    Examples
    --------
    >>> blot = random_hard_blot(2, shape=(300, 400), dust=0)
    >>> sigmas = blot.truth_bands.groupby("band_row")["sigma_y"]
    >>> bool((sigmas.max() / sigmas.min()).max() > 1.5)
    True
    """
    rng = np.random.default_rng([int(seed), 20261202])
    drawn = {
        "band_sigma_jitter": 0.5,  # 0.5x to 1.5x: up to threefold within a row
        "tail": float(rng.uniform(0.1, 0.17)),
        "tail_jitter": 1.0,  # each band 0 to a third of its signal in its tail
        "tail_length": float(rng.uniform(1.5, 3.0)),
        "nonspecific": float(rng.uniform(0.1, 0.3)) if rng.random() < 0.7 else None,
        # Two to four band widths (FWHM = 2.35 sigma) away: apart, but their flanks meet.
        "nonspecific_offset": float(rng.uniform(5.0, 9.0)),
        "background": "blotchy",
        "background_level": float(rng.uniform(0.1, 0.3)),
        "lane_edge": float(rng.uniform(0.25, 0.5)),
        "lane_margin": float(rng.uniform(0.08, 0.25)),
        "saturate": False,
    }
    return random_blot(seed, **{**drawn, **overrides})


def random_blot(seed, **overrides):
    """Draw a realistic random blot for benchmarks.

    Parameters
    ----------
    seed : int
        Seeds both the parameter draw and the rendering.
    **overrides
        Any :func:`make_blot` keyword, fixed instead of drawn.

    Returns
    -------
    SyntheticBlot
        ``params`` records every drawn and overridden value.

    Examples
    --------
    >>> blot = random_blot(3, shape=(240, 320), dust=0)
    >>> blot.image.shape
    (240, 320)
    """
    unknown = set(overrides) - set(make_blot.__kwdefaults__)
    if unknown:
        raise ParameterError(f"random_blot: unknown parameters {sorted(unknown)}")
    rng = np.random.default_rng([int(seed), 20240611])
    height = int(rng.integers(600, 2001))
    drawn = dict(shape=(height, int(round(height * rng.uniform(1.0, 1.6)))))
    drawn["n_lanes"] = int(rng.integers(6, 17))
    drawn["n_strips"] = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
    n_rows = int(rng.integers(1, 4))
    positions = np.sort(rng.uniform(0.2, 0.85, n_rows))
    while n_rows > 1 and np.diff(positions).min() < 0.15:
        positions = np.sort(rng.uniform(0.2, 0.85, n_rows))
    drawn["band_rows"] = tuple((float(p), float(rng.uniform(0.3, 1.0))) for p in positions)
    drawn["rotation_deg"] = float(np.clip(rng.normal(0, 0.7), -2, 2))
    drawn["smile"] = float(rng.uniform(-0.005, 0.02))
    drawn["lane_width_jitter"] = float(rng.uniform(0, 0.15))
    drawn["lane_width_frac"] = float(rng.uniform(0.55, 0.8))
    sigma_frac = float(rng.uniform(0.005, 0.012))
    drawn["tail"] = float(rng.uniform(0, 0.5))
    drawn["background"] = str(rng.choice(_BACKGROUNDS, p=[0.15, 0.25, 0.6]))
    drawn["background_level"] = float(rng.uniform(0.03, 0.2))
    drawn["full_well"] = float(10 ** rng.uniform(3.5, 4.7))
    drawn["read_noise"] = float(rng.uniform(0.0005, 0.004))
    drawn["dust"] = int(rng.integers(1, 30)) if rng.random() < 0.5 else 0
    drawn["saturate"] = bool(rng.random() < 0.15)
    drawn["polarity"] = str(rng.choice(_POLARITIES))
    drawn["bit_depth"] = int(rng.choice([16, 8, 12], p=[0.6, 0.2, 0.2]))
    empty_draw, empty_lane_frac = rng.random(), rng.random()
    drawn["smear"] = float(rng.uniform(0.01, 0.06)) if rng.random() < 0.4 else 0.0
    drawn["nonspecific"] = float(rng.uniform(0.1, 0.5)) if rng.random() < 0.25 else None
    drawn["marks"] = bool(rng.random() < 0.3)

    chosen = {**drawn, **overrides}
    # Quantities that depend on other choices follow the overrides.
    if "band_sigma" not in overrides:
        chosen["band_sigma"] = max(1.5, sigma_frac * chosen["shape"][0])
    if "empty_lanes" not in overrides:
        lanes = int(chosen.get("n_lanes", 10))
        chosen["empty_lanes"] = (1 + int(empty_lane_frac * lanes),) if empty_draw < 0.2 else ()
    chosen["seed"] = int(overrides.get("seed", seed))
    return make_blot(**chosen)


def log_linear_migration(kda, *, top=0.08, bottom=0.92, largest=250.0, smallest=10.0):
    """Position (fraction of the strip, 0 top) of each size on a gel whose log10(kDa) falls linearly.

    Examples
    --------
    >>> log_linear_migration([250, 10]).round(2).tolist()
    [0.08, 0.92]
    """
    fraction = (np.log10(largest) - np.log10(np.asarray(kda, dtype=float))) / (np.log10(largest) - np.log10(smallest))
    return top + (bottom - top) * fraction


def make_ladder_blot(*, ladder_kda, sample_kda, migration=log_linear_migration, ladder_lanes=(1,), missing_kda=(),
                     extra_positions=(), ladder_strength=1.0, sample_amounts=None, **options):
    """A synthetic blot with molecular-weight ladder lanes and sample bands of known sizes.

    Every size becomes a band row of :func:`make_blot` at ``migration(kda)``
    (a fraction of the strip height); the ladder lanes carry the ladder's
    sizes (except ``missing_kda``) and bands at ``extra_positions`` that are
    no ladder size, the other lanes carry the sample sizes. Smile, rotation,
    noise and every other :func:`make_blot` option apply to all lanes alike.

    Parameters
    ----------
    ladder_kda : sequence of float
        The ladder's sizes (any order).
    sample_kda : sequence of float
        Sizes of the sample bands, every sample lane the same.
    migration : callable
        ``kda -> position`` (fraction of the strip, 0 top, 1 bottom),
        decreasing in size; by default :func:`log_linear_migration`.
    ladder_lanes : sequence of int
        1-based lane numbers of the ladders (in every strip).
    missing_kda : sequence of float
        Ladder sizes left out of the ladder lanes (a band not seen).
    extra_positions : sequence of float
        Positions of bands in the ladder lanes that are no ladder size.
    ladder_strength : float
        Strength of the ladder bands relative to the sample bands.
    sample_amounts : array_like, optional
        Amount of each sample band, shape ``(n_lanes,)`` or
        ``(n_lanes, len(sample_kda))``; default log-uniform 0.3-1.
    **options
        Any other :func:`make_blot` keyword (``shape``, ``n_lanes``, ``smile``, ...).

    Returns
    -------
    SyntheticBlot
        ``truth_bands`` gains ``kda`` (NaN for the extra ladder bands) and
        ``ladder`` (true in ladder lanes); ``params["ladder"]`` records the sizes.

    Examples
    --------
    >>> blot = make_ladder_blot(ladder_kda=[100, 75, 50], sample_kda=[60], shape=(300, 400), n_lanes=4,
    ...                         noise=False, seed=1)
    >>> truth = blot.truth_bands[blot.truth_bands["amount"] > 0]
    >>> sorted(truth.loc[truth["ladder"], "kda"].tolist()), truth.loc[~truth["ladder"], "kda"].unique().tolist()
    ([50.0, 75.0, 100.0], [60.0])
    """
    n_lanes = int(options.get("n_lanes", 10))
    n_strips = int(options.get("n_strips", 1))
    ladder_sizes = sorted({float(k) for k in ladder_kda}, reverse=True)
    samples = [float(k) for k in sample_kda]
    sizes = sorted(set(ladder_sizes) | set(samples), reverse=True)
    rows = [(float(migration(np.array([k]))[0]), 1.0) for k in sizes]
    rows += [(float(p), 1.0) for p in extra_positions]
    sized = np.array(sizes + [np.nan] * len(extra_positions))
    order = np.argsort([row[0] for row in rows], kind="stable")
    rows, sized = [rows[i] for i in order], sized[order]
    ladder_lanes = sorted({int(lane) for lane in ladder_lanes})
    if any(not 1 <= lane <= n_lanes for lane in ladder_lanes):
        raise ParameterError(f"ladder_lanes {ladder_lanes} must be lane numbers 1..{n_lanes}")
    rng = np.random.default_rng([int(options.get("seed", 0)), 20260115])
    if sample_amounts is None:
        sample_table = 10 ** rng.uniform(np.log10(0.3), 0.0, (n_lanes, len(samples)))
    else:
        sample_table = np.broadcast_to(np.asarray(sample_amounts, dtype=float).reshape(n_lanes, -1),
                                       (n_lanes, len(samples)))
    amounts = np.zeros((n_strips, n_lanes, len(rows)))
    missing = {float(k) for k in missing_kda}
    for r, size in enumerate(sized):
        in_ladder = np.isnan(size) or (size in ladder_sizes and size not in missing)
        for lane in range(n_lanes):
            if lane + 1 in ladder_lanes:
                amounts[:, lane, r] = ladder_strength if in_ladder else 0.0
            elif not np.isnan(size) and size in samples:
                amounts[:, lane, r] = sample_table[lane, samples.index(size)]
    blot = make_blot(band_rows=tuple(rows), amounts=amounts, **options)
    truth = blot.truth_bands
    truth["kda"] = sized[truth["source_row"].to_numpy() - 1]
    truth["ladder"] = truth["lane"].isin(ladder_lanes)
    blot.params["ladder"] = {"ladder_kda": ladder_sizes, "sample_kda": samples, "ladder_lanes": ladder_lanes,
                             "missing_kda": sorted(missing, reverse=True),
                             "extra_positions": [float(p) for p in extra_positions]}
    return blot


def band_contribution(blot, index):
    """Re-render one band's noise-free contribution exactly as it was added.

    Parameters
    ----------
    blot : SyntheticBlot
    index : int
        Row position in ``blot.truth_bands``.

    Returns
    -------
    rows, cols : slice
        Image box the band was rendered into.
    values : ndarray of float32
        Its contribution there, in signal units;
        ``values.sum(dtype=np.float64)`` equals the truth volume.

    Examples
    --------
    >>> blot = make_blot(shape=(200, 300), n_lanes=3, noise=False, seed=2)
    >>> rows, cols, values = band_contribution(blot, 0)
    >>> bool(values.sum(dtype=np.float64) == blot.truth_bands.volume[0])
    True
    """
    frame = _Frame(blot.params["shape"], blot.params["rotation_deg"])
    layer = _render_band(blot.params["bands"][index], frame)
    if layer is None:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), dtype=np.float32)
    return layer


def save_blot(blot, path):
    """Write the blot's image to ``.tif``/``.tiff`` (zlib) or ``.png`` by suffix.

    Parameters
    ----------
    blot : SyntheticBlot
    path : str or Path
        Destination; its parent folder is created. PNG holds 8- and 16-bit
        integer images only.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    buffer = io.BytesIO()
    if suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(buffer, blot.image, compression="zlib")
    elif suffix == ".png":
        if blot.image.dtype not in (np.uint8, np.uint16):
            raise ParameterError(f"{path}: PNG cannot hold {blot.image.dtype} images; save as .tif")
        from PIL import Image

        Image.fromarray(blot.image).save(buffer, format="PNG")
    else:
        raise ParameterError(f"{path}: unknown image suffix {path.suffix!r}; use .tif, .tiff or .png")
    atomic_write_bytes(path, buffer.getvalue())


# --------------------------------------------------------------------------
# Options and layout
# --------------------------------------------------------------------------

_RANGES = {
    "tail": (0.0, 0.95),
    "lane_width_frac": (0.05, 1.0),
    "lane_width_jitter": (0.0, 0.5),
    "lane_position_jitter": (0.0, 0.3),
    "lane_margin": (0.0, 0.4),
    "lane_edge": (0.01, 1.0),
    "band_sigma_jitter": (0.0, 0.6),
    "tail_jitter": (0.0, 1.0),
    "background_level": (0.0, 0.8),
    "read_noise": (0.0, 0.2),
    "smear": (0.0, 1.0),
    "strip_gap": (0.0, 0.5),
}


def _resolve_options(args):
    """Check make_blot's keywords and fill in the defaults that depend on others."""
    opts = dict(args)
    opts["shape"] = _check_shape(args["shape"])
    opts["n_lanes"] = _positive_int(args["n_lanes"], "n_lanes")
    opts["n_strips"] = _positive_int(args["n_strips"], "n_strips")
    opts["band_rows"] = rows = _check_band_rows(args["band_rows"])
    for name, allowed in (("polarity", _POLARITIES), ("background", _BACKGROUNDS), ("bit_depth", _BIT_DEPTHS)):
        if args[name] not in allowed:
            raise ParameterError(f"{name} must be one of {allowed}, got {args[name]!r}")
    for name, (low, high) in _RANGES.items():
        if not low <= float(args[name]) <= high:
            raise ParameterError(f"{name} must lie in [{low}, {high}], got {args[name]!r}")
        opts[name] = float(args[name])
    for name in ("tail_length", "full_well"):
        if not float(args[name]) > 0:
            raise ParameterError(f"{name} must be positive, got {args[name]!r}")
        opts[name] = float(args[name])
    if int(args["dust"]) < 0:
        raise ParameterError(f"dust must be a count >= 0, got {args['dust']!r}")
    peak = args["peak"]
    if peak is None:
        peak = 1.8 if args["saturate"] else 0.6
    if not float(peak) > 0:
        raise ParameterError(f"peak must be positive, got {peak!r}")
    if not args["saturate"] and peak > _NO_CLIP_CEILING:
        raise ParameterError(f"peak={peak} would clip bands; give peak <= 0.9 or saturate=True")
    opts["peak"] = float(peak)
    empty = sorted({int(lane) for lane in args["empty_lanes"]})
    if any(not 1 <= lane <= opts["n_lanes"] for lane in empty):
        raise ParameterError(f"empty_lanes {empty} must be lane numbers 1..{opts['n_lanes']}")
    opts["empty_lanes"] = empty
    nonspecific = args["nonspecific"]
    if nonspecific is True:
        nonspecific = 0.3
    if nonspecific is None or nonspecific is False:
        nonspecific = None
    elif not 1 <= int(args["nonspecific_row"]) <= len(rows):
        raise ParameterError(f"nonspecific_row must be 1..{len(rows)}, got {args['nonspecific_row']!r}")
    opts["nonspecific"] = None if nonspecific is None else float(nonspecific)
    band_sigma = args["band_sigma"]
    if band_sigma is None:
        band_sigma = max(1.5, 0.008 * opts["shape"][0])
    row_sigma = np.broadcast_to(np.asarray(band_sigma, dtype=float), (len(rows),))
    if np.any(row_sigma <= 0):
        raise ParameterError(f"band_sigma must be positive, got {band_sigma!r}")
    opts["band_sigma"] = row_sigma.tolist()
    opts.pop("amounts")  # replaced by the resolved table
    return opts


def _check_shape(shape):
    try:
        height, width = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise ParameterError(f"shape must be (rows, cols), got {shape!r}") from None
    if height < 32 or width < 32:
        raise ParameterError(f"shape {shape!r} is too small; give at least 32 x 32 px")
    return height, width


def _positive_int(value, name):
    if int(value) != value or int(value) < 1:
        raise ParameterError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _check_band_rows(band_rows):
    rows = []
    for entry in band_rows:
        try:
            pos, strength = (float(x) for x in entry)
        except (TypeError, ValueError):
            raise ParameterError(f"band_rows entries must be (position, strength), got {entry!r}") from None
        if not 0 < pos < 1 or strength < 0:
            raise ParameterError(f"band row {entry!r}: position must lie in (0, 1) and strength be >= 0")
        rows.append((pos, strength))
    if not rows:
        raise ParameterError("band_rows is empty; give at least one (position, strength)")
    return rows


def _resolve_amounts(amounts, n_strips, n_lanes, n_rows, rng):
    if amounts is None:
        return 10 ** rng.uniform(-1, 0, (n_strips, n_lanes, n_rows))
    table = np.asarray(amounts, dtype=float)
    if table.ndim == 1:
        table = table[None, :, None]
    elif table.ndim == 2:
        table = table[None, :, :]
    try:
        table = np.broadcast_to(table, (n_strips, n_lanes, n_rows)).copy()
    except ValueError:
        raise ParameterError(
            f"amounts has shape {np.shape(amounts)}; expected ({n_lanes},), ({n_lanes}, {n_rows}) "
            f"or ({n_strips}, {n_lanes}, {n_rows})"
        ) from None
    if not np.all(np.isfinite(table)) or np.any(table < 0):
        raise ParameterError("amounts must be finite and >= 0")
    return table


def _strip_layout(shape, n_strips, strip_gap, strip_shift, rng):
    """Strips in blot-frame rows; the outer membrane edges lie beyond the image."""
    height, width = shape
    gap = strip_gap * height if n_strips > 1 else 0.0
    strip_h = (height - (n_strips - 1) * gap) / n_strips
    if strip_shift is None:
        shifts = rng.uniform(-0.005, 0.005, n_strips) * width if n_strips > 1 else np.zeros(1)
    else:
        shifts = np.broadcast_to(np.asarray(strip_shift, dtype=float), (n_strips,))
    strips = []
    for s in range(n_strips):
        top = -0.5 + s * (strip_h + gap)
        strips.append(dict(
            top=float(top), bottom=float(top + strip_h), shift=float(shifts[s]),
            membrane_top=None if s == 0 else float(top),
            membrane_bottom=None if s == n_strips - 1 else float(top + strip_h),
        ))
    return strips


def _lane_layout(width, opts, rng):
    """Lane centres (blot-frame columns, before any strip shift), half-widths and edge softness."""
    n_lanes, margin = opts["n_lanes"], opts["lane_margin"]
    pitch = width * (1 - 2 * margin) / n_lanes
    nominal_half = 0.5 * opts["lane_width_frac"] * pitch
    centres = (
        -0.5
        + width * margin
        + (np.arange(n_lanes) + 0.5) * pitch
        + rng.uniform(-1, 1, n_lanes) * opts["lane_position_jitter"] * pitch
    )
    half_widths = nominal_half * (1 + rng.uniform(-1, 1, n_lanes) * opts["lane_width_jitter"])
    return dict(u=centres, half_width=half_widths, edge=opts["lane_edge"] * nominal_half)


def _row_definitions(opts):
    """Every band row, specific or not, in top-to-bottom order with its 1-based band_row."""
    rows = opts["band_rows"]
    defs = [
        dict(source=k + 1, nonspecific=False, pos=pos, offset_sigma=0.0, strength=strength)
        for k, (pos, strength) in enumerate(rows)
    ]
    if opts["nonspecific"] is not None:
        source = int(opts["nonspecific_row"])
        defs.append(dict(
            source=source, nonspecific=True, pos=rows[source - 1][0],
            offset_sigma=float(opts["nonspecific_offset"]),
            strength=opts["nonspecific"] * rows[source - 1][1],
        ))
    for d in defs:
        d["sigma"] = opts["band_sigma"][d["source"] - 1]
    defs.sort(key=lambda d: (d["pos"], d["offset_sigma"]))
    for rank, d in enumerate(defs, start=1):
        d["band_row"] = rank
    return defs


def _band_specs(opts, strips, lanes, amount_table, loading, rng):
    """The resolved geometry and amount of every band, strip by strip, lane by lane, top to bottom."""
    row_defs = _row_definitions(opts)
    specs = []
    for s, strip in enumerate(strips):
        u_centres = lanes["u"] + strip["shift"]
        u_mid = float(u_centres.mean())
        half_span = max(float(np.abs(u_centres - u_mid).max()), 1.0)
        strip_h = strip["bottom"] - strip["top"]
        for j in range(opts["n_lanes"]):
            if j + 1 in opts["empty_lanes"]:
                continue
            for d in row_defs:
                sigma = d["sigma"] * (1 + rng.uniform(-1, 1) * opts["band_sigma_jitter"])
                tail, tail_length = opts["tail"], opts["tail_length"]
                if opts["tail_jitter"] > 0:  # drawn only then, so blots without it render as before
                    tail = min(0.95, tail * (1 + rng.uniform(-1, 1) * opts["tail_jitter"]))
                    tail_length *= 1 + 0.5 * rng.uniform(-1, 1) * opts["tail_jitter"]
                v0 = strip["top"] + d["pos"] * strip_h + d["offset_sigma"] * d["sigma"]
                if not strip["top"] < v0 < strip["bottom"]:
                    raise ParameterError(
                        f"band row {d['band_row']} falls outside strip {s + 1}; "
                        "move band_rows or nonspecific_offset inside the strip"
                    )
                if d["nonspecific"]:
                    amount = loading[s, j] * amount_table[s, :, d["source"] - 1].max()
                else:
                    amount = amount_table[s, j, d["source"] - 1]
                specs.append(dict(
                    strip=s + 1, lane=j + 1, band_row=d["band_row"], source_row=d["source"],
                    nonspecific=d["nonspecific"], amount=float(amount), strength=float(d["strength"]),
                    u=float(u_centres[j]), half_width=float(lanes["half_width"][j]),
                    edge=float(lanes["edge"]), v0=float(v0), u_mid=u_mid, half_span=half_span,
                    smile_px=float(opts["smile"] * strip_h),
                    curvature_px=float(opts["band_curvature"] * sigma), sigma=float(sigma),
                    tau=float(tail_length * sigma), tail=float(tail),
                    v_min=strip["membrane_top"], v_max=strip["membrane_bottom"], volume_model=0.0,
                ))
    return specs


def _jsonable(value):
    """Plain JSON types for a params dict (numpy arrays and scalars, tuples)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------
# Band model
# --------------------------------------------------------------------------


def _along_profile(d, sigma, tau, tail):
    """Unit-area band profile along the lane: Gaussian core plus exponential tail below."""
    core = np.exp(-0.5 * (d / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    if tail <= 0:
        return core
    # Exponentially modified Gaussian, in log form so long tails never overflow.
    emg = np.exp(0.5 * (sigma / tau) ** 2 - d / tau + special.log_ndtr(d / sigma - sigma / tau)) / tau
    return (1 - tail) * core + tail * emg


def _across_profile(du, half_width, edge):
    """Unit-area flat-topped profile across the lane with Gaussian-soft edges."""
    scale = math.sqrt(2) * edge
    return (special.erf((du + half_width) / scale) - special.erf((du - half_width) / scale)) / (
        4 * half_width
    )


def _band_centre_v(spec, u):
    """Band core position along the lane at blot column ``u`` (smile plus within-lane curvature)."""
    across = (np.subtract(u, spec["u_mid"]) / spec["half_span"]) ** 2
    within = (np.subtract(u, spec["u"]) / spec["half_width"]) ** 2
    return spec["v0"] - spec["smile_px"] * across - spec["curvature_px"] * within


def _unit_peak(spec):
    """Continuous peak value of a band of unit volume."""
    d = np.linspace(-3 * spec["sigma"], 3 * spec["sigma"] + 2 * spec["tau"], 801)
    along = _along_profile(d, spec["sigma"], spec["tau"], spec["tail"]).max()
    return float(_across_profile(0.0, spec["half_width"], spec["edge"]) * along)


def _render_band(spec, frame):
    """(rows, cols, values) of one band inside its bounding box, or None if off-image."""
    reach = spec["half_width"] + _EDGE_REACH * spec["edge"]
    u_lo, u_hi = spec["u"] - reach, spec["u"] + reach
    centres = _band_centre_v(spec, np.linspace(u_lo, u_hi, 33))
    v_lo = centres.min() - _CORE_REACH * spec["sigma"]
    v_hi = centres.max() + _CORE_REACH * spec["sigma"] + (_TAIL_REACH * spec["tau"] if spec["tail"] > 0 else 0)
    if spec["v_min"] is not None:
        v_lo = max(v_lo, spec["v_min"])
    if spec["v_max"] is not None:
        v_hi = min(v_hi, spec["v_max"])
    box = frame.box([u_lo, u_hi], [v_lo, v_hi])
    if box is None:
        return None
    rows, cols = box
    u, v = frame.blot_coords(rows, cols)
    values = (
        spec["volume_model"]
        * _across_profile(u - spec["u"], spec["half_width"], spec["edge"])
        * _along_profile(v - _band_centre_v(spec, u), spec["sigma"], spec["tau"], spec["tail"])
    )
    # No membrane, no signal: the band stops at its strip's edges.
    if spec["v_min"] is not None:
        values = np.where(v >= spec["v_min"], values, 0.0)
    if spec["v_max"] is not None:
        values = np.where(v <= spec["v_max"], values, 0.0)
    return rows, cols, values


def _accumulate(signal, layers):
    for layer in layers:
        if layer is not None:
            rows, cols, values = layer
            signal[rows, cols] += values


def _no_clip_factor(signal, bg, layers, full_scale):
    """Scale (<= 1) that keeps every band pixel's noise-free signal below the no-clip ceiling."""
    ceiling = _NO_CLIP_CEILING * full_scale
    factor = 1.0
    for layer in layers:
        if layer is None:
            continue
        rows, cols, _ = layer
        total = signal[rows, cols]
        if total.max() <= ceiling:
            continue
        base = bg[rows, cols]
        bands = total - base
        usable = (bands > 0) & (base < ceiling)
        if usable.any():
            factor = min(factor, float(((ceiling - base[usable]) / bands[usable]).min()))
    return factor * 0.999 if factor < 1 else 1.0


def _is_saturated_band(signal, layer, full_scale):
    if layer is None:
        return False
    rows, cols, values = layer
    footprint = values >= FOOTPRINT_FRACTION * values.max()
    clipped = int(np.count_nonzero(signal[rows, cols][footprint] >= SATURATION_LEVEL * full_scale))
    return bool(is_saturated(clipped, int(footprint.sum())))


# --------------------------------------------------------------------------
# Truth tables
# --------------------------------------------------------------------------


def _truth_bands(specs, layers, saturated, frame):
    rows = []
    for spec, layer, sat in zip(specs, layers, saturated):
        v = float(_band_centre_v(spec, spec["u"]))
        y, x = frame.to_image(spec["u"], v)
        rows.append(dict(
            strip=spec["strip"], lane=spec["lane"], band_row=spec["band_row"],
            source_row=spec["source_row"], y=float(y), x=float(x),
            volume=0.0 if layer is None else float(layer[2].sum(dtype=np.float64)),
            amount=spec["amount"], strength=spec["strength"], saturated=bool(sat),
            sigma_y=spec["sigma"], nonspecific=bool(spec["nonspecific"]),
        ))
    columns = ["strip", "lane", "band_row", "source_row", "y", "x", "volume", "amount", "strength",
               "saturated", "sigma_y", "nonspecific"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"strip": int, "lane": int, "band_row": int, "source_row": int,
                         "saturated": bool, "nonspecific": bool})


def _truth_lanes(strips, lanes, opts, frame):
    rows = []
    for s, strip in enumerate(strips):
        v_mid = 0.5 * (strip["top"] + strip["bottom"])
        for j in range(opts["n_lanes"]):
            u, half = lanes["u"][j] + strip["shift"], lanes["half_width"][j]
            _, x_center = frame.to_image(u, v_mid)
            _, x_left = frame.to_image(u - half, v_mid)
            _, x_right = frame.to_image(u + half, v_mid)
            y_top, _ = frame.to_image(u, strip["top"])
            y_bottom, _ = frame.to_image(u, strip["bottom"])
            rows.append(dict(
                strip=s + 1, lane=j + 1, x_center=float(x_center), x_left=float(x_left),
                x_right=float(x_right), y_top=float(y_top), y_bottom=float(y_bottom),
                half_width=float(half), empty=(j + 1) in opts["empty_lanes"],
            ))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# Background, artefacts, noise
# --------------------------------------------------------------------------


def _background_image(opts, specs, strips, frame, full_scale, rngs):
    """Everything that is not band: membrane, strip gaps, smear, pen marks, dust."""
    rng_bg, rng_smear, rng_marks, rng_dust = rngs
    level = opts["background_level"] * full_scale
    bg = _membrane_background(opts["background"], level, frame, float(np.mean(opts["band_sigma"])), rng_bg)
    if len(strips) > 1:
        _apply_strip_gaps(bg, strips, level, frame)
    if opts["smear"] > 0:
        _add_smear(bg, specs, strips, opts["smear"], frame, rng_smear)
    if opts["marks"]:
        first = strips[0]
        tops = [b["v0"] - b["curvature_px"] - max(b["smile_px"], 0) - 5 * b["sigma"]
                for b in specs if b["strip"] == 1]
        first_band = min(tops, default=first["top"] + 0.2 * (first["bottom"] - first["top"]))
        _add_marks(bg, first, first_band, full_scale, frame, rng_marks)
    if opts["dust"]:
        _add_dust(bg, int(opts["dust"]), level, full_scale, rng_dust)
    # Dark dust cannot take away more light than there is; bright dust on a pen
    # mark still leaves headroom below full scale.
    np.clip(bg, 0, 0.95 * full_scale, out=bg)
    return bg


def _smooth_field(shape, scale, rng):
    """Unit-variance smooth random field with features ~``scale`` px (Gaussian sums via two matmuls)."""
    height, width = shape
    step = max(scale / 2.0, 1.0)

    def kernel(n):
        centres = np.arange(-2 * scale, n + 2 * scale + step, step)
        return np.exp(-0.5 * ((np.arange(n)[:, None] - centres[None, :]) / scale) ** 2).astype(np.float32)

    ky, kx = kernel(height), kernel(width)
    field = ky @ rng.standard_normal((ky.shape[1], kx.shape[1])).astype(np.float32) @ kx.T
    # Variance of a sum of independent unit normals weighted by ky[i] kx[j]: separable.
    variance = float((ky.astype(np.float64) ** 2).sum(1).mean() * (kx.astype(np.float64) ** 2).sum(1).mean())
    field *= np.float32(1 / math.sqrt(variance))
    return field


def _membrane_background(kind, level, frame, sigma_ref, rng):
    height, width = frame.shape
    bg = np.full(frame.shape, level, dtype=np.float32)
    if kind == "flat" or level == 0:
        return bg
    r = (np.arange(height) - frame.rc) / max(frame.rc, 1)
    c = (np.arange(width) - frame.cc) / max(frame.cc, 1)
    g_r, g_c = rng.uniform(-0.3, 0.3, 2)
    vignette = rng.uniform(-0.3, 0.05)
    # Linear gradient plus radial vignetting, built from one row and one column term.
    row_term = (level * (1 + g_r * r + 0.5 * vignette * r**2)).astype(np.float32)[:, None]
    col_term = (level * (g_c * c + 0.5 * vignette * c**2)).astype(np.float32)[None, :]
    np.add(row_term, col_term, out=bg)
    np.maximum(bg, np.float32(0.3 * level), out=bg)
    if kind == "blotchy":
        band_height = 2.5 * sigma_ref
        blotches = _smooth_field(frame.shape, rng.uniform(2.0, 5.0) * band_height, rng)
        blotches *= np.float32(0.2)
        bg *= np.exp(blotches, out=blotches)
        speckle = rng.standard_normal(frame.shape, dtype=np.float32)
        speckle = ndi.gaussian_filter(speckle, 0.7, output=speckle)
        # A 0.7 px Gaussian divides white-noise sd by 2 * 0.7 * sqrt(pi).
        speckle *= np.float32(0.04 * level * 2 * 0.7 * math.sqrt(math.pi))
        bg += speckle
    return bg


def _apply_strip_gaps(bg, strips, level, frame):
    """Replace the background between strips (no membrane) with a darker flat level."""
    rows = np.arange(frame.shape[0], dtype=np.float32)[:, None]
    cols = np.arange(frame.shape[1], dtype=np.float32)[None, :]
    _, v = frame.to_blot(rows, cols)
    membrane = np.zeros(frame.shape, dtype=np.float32)
    for strip in strips:
        upper = 1.0 if strip["membrane_top"] is None else np.clip(v - strip["top"] + 0.5, 0, 1)
        lower = 1.0 if strip["membrane_bottom"] is None else np.clip(strip["bottom"] - v + 0.5, 0, 1)
        membrane += upper * lower
    gap_level = np.float32(0.3 * level)
    bg -= gap_level
    bg *= membrane
    bg += gap_level


def _add_smear(bg, specs, strips, smear, frame, rng):
    """A weak streak down each loaded lane, fading from the well."""
    lanes = {}
    for spec in specs:
        key = (spec["strip"], spec["lane"])
        lanes[key] = max(lanes.get(key, 0.0), spec["volume_model"] * _unit_peak(spec))
    for (strip_no, lane), lane_peak in lanes.items():
        spec = next(b for b in specs if (b["strip"], b["lane"]) == (strip_no, lane))
        strip = strips[strip_no - 1]
        reach = spec["half_width"] + _EDGE_REACH * spec["edge"]
        box = frame.box([spec["u"] - reach, spec["u"] + reach], [strip["top"], strip["bottom"]])
        if box is None:
            continue
        rows, cols = box
        u, v = frame.blot_coords(rows, cols)
        strip_h = strip["bottom"] - strip["top"]
        depth = (v - strip["top"]) / strip_h
        wobble = 1 + 0.25 * np.sin(np.float32(2 * np.pi) * (np.float32(rng.uniform(2, 5)) * depth + np.float32(rng.uniform())))
        along = (0.35 + 0.65 * np.exp(-depth / 0.35)) * wobble
        # Smoothstep edges: the smear is background, so it needs no exact profile, only speed.
        ramp = np.clip((spec["half_width"] + 1.5 * spec["edge"] - np.abs(u - spec["u"])) / (3 * spec["edge"]), 0, 1)
        across = ramp * ramp * (3 - 2 * ramp)
        inside = (v >= strip["top"]) & (v <= strip["bottom"])
        bg[rows, cols] += (np.float32(smear * lane_peak) * across * along * inside).astype(np.float32)


def _add_curve(acc, points, width_sigma, amplitude, *, flat_top):
    """Add a smooth stroke along a quadratic Bezier curve (image row/col control points)."""
    p0, p1, p2 = (np.asarray(p, dtype=float) for p in points)
    length = np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1)
    t = np.linspace(0, 1, max(int(length / 0.5), 2))[:, None]
    path = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    pad = 4 * width_sigma + 2
    r0, c0 = np.maximum(np.floor(path.min(axis=0) - pad), 0).astype(int)
    r1 = min(int(np.ceil(path[:, 0].max() + pad)) + 1, acc.shape[0])
    c1 = min(int(np.ceil(path[:, 1].max() + pad)) + 1, acc.shape[1])
    if r0 >= r1 or c0 >= c1:
        return
    canvas = np.zeros((r1 - r0, c1 - c0))
    local = path - [r0, c0]
    base = np.floor(local).astype(int)
    frac = local - base
    step = length / max(len(path) - 1, 1)
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        weight = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
        rr, cc = base[:, 0] + dr, base[:, 1] + dc
        ok = (rr >= 0) & (rr < canvas.shape[0]) & (cc >= 0) & (cc < canvas.shape[1])
        np.add.at(canvas, (rr[ok], cc[ok]), weight[ok] * step)
    line = ndi.gaussian_filter(canvas, width_sigma) * (width_sigma * math.sqrt(2 * math.pi))
    if flat_top:  # ink: saturates to a flat stroke rather than a ridge
        line = (1 - np.exp(-3 * line)) / (1 - math.exp(-3))
    acc[r0:r1, c0:c1] += (amplitude * line).astype(acc.dtype)


def _add_marks(bg, strip, first_band_v, full_scale, frame, rng):
    """Short thick pen strokes (labels) in the strip's top margin."""
    width = frame.shape[1]
    strip_h = strip["bottom"] - strip["top"]
    zone_top = strip["top"] + 0.015 * strip_h
    zone_bottom = max(zone_top + 0.02 * strip_h, min(zone_top + 0.06 * strip_h, first_band_v))
    thickness = max(1.2, 0.0012 * width)
    for _ in range(int(rng.integers(2, 5))):
        size = max(10.0, rng.uniform(0.012, 0.03) * width)
        u0 = rng.uniform(0.05, 0.95) * width
        v0 = rng.uniform(zone_top + 0.5 * size, max(zone_top + 0.5 * size, zone_bottom - 0.5 * size))
        amplitude = rng.uniform(0.35, 0.6) * full_scale
        for _ in range(int(rng.integers(1, 4))):
            start = np.array([u0, v0]) + rng.uniform(-0.5, 0.5, 2) * size
            angle = rng.uniform(0, 2 * np.pi)
            end = start + size * np.array([np.cos(angle), np.sin(angle)])
            bend = 0.5 * (start + end) + rng.uniform(-0.25, 0.25, 2) * size
            points = [np.array(frame.to_image(p[0], p[1])) for p in (start, bend, end)]
            _add_curve(bg, points, thickness * rng.uniform(1.0, 1.6), amplitude, flat_top=True)


def _add_dust(bg, count, level, full_scale, rng):
    """Small bright or dark specks, plus one or two hairs/scratches."""
    height, width = bg.shape
    for _ in range(count):
        r, c = rng.uniform(0, height), rng.uniform(0, width)
        sd = rng.uniform(0.6, 2.0)
        reach = int(math.ceil(4 * sd))
        r0, r1 = max(int(r) - reach, 0), min(int(r) + reach + 1, height)
        c0, c1 = max(int(c) - reach, 0), min(int(c) + reach + 1, width)
        rr = np.arange(r0, r1)[:, None]
        cc = np.arange(c0, c1)[None, :]
        blob = np.exp(-0.5 * ((rr - r) ** 2 + (cc - c) ** 2) / sd**2)
        if rng.random() < 0.5:
            amplitude = rng.uniform(0.15, 0.5) * full_scale
        else:
            amplitude = -rng.uniform(0.4, 0.9) * float(bg[min(int(r), height - 1), min(int(c), width - 1)])
        bg[r0:r1, c0:c1] += (amplitude * blob).astype(np.float32)
    for _ in range(1 if count < 5 else 2):
        start = np.array([rng.uniform(0, height), rng.uniform(0, width)])
        length = rng.uniform(0.05, 0.15) * min(height, width)
        angle = rng.uniform(0, 2 * np.pi)
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        bend = 0.5 * (start + end) + rng.uniform(-0.15, 0.15, 2) * length
        amplitude = rng.uniform(0.1, 0.3) * full_scale if rng.random() < 0.5 else -0.5 * level
        _add_curve(bg, (start, bend, end), rng.uniform(0.5, 1.0), amplitude, flat_top=False)


def _add_noise(signal, full_scale, full_well, read_noise, rng):
    """Shot noise in electrons plus Gaussian read noise, in signal units."""
    electrons_per_unit = full_well / full_scale
    electrons = np.maximum(signal, 0) * np.float32(electrons_per_unit)
    variance = electrons + np.float32((read_noise * full_well) ** 2)
    noisy = electrons + np.sqrt(variance) * rng.standard_normal(signal.shape, dtype=np.float32)
    low = electrons < _EXACT_POISSON_BELOW
    if low.any():  # dim pixels: exact Poisson counts plus read noise
        counts = rng.poisson(electrons[low]).astype(np.float32)
        noisy[low] = counts + np.float32(read_noise * full_well) * rng.standard_normal(counts.shape, dtype=np.float32)
    return noisy / np.float32(electrons_per_unit)
