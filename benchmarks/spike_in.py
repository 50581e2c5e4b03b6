"""Band-volume accuracy on real membranes with known added bands ("spike-ins").

Real 16-bit chemiluminescence captures (``wb_zdf_rat_heart_chemi16`` in
``../shared/real_blots``, see its PROVENANCE.md) keep their own background,
noise, dust, pen marks and membrane edges; only the signal added here is
known. For every annotated strip of every usable image:

1. **Empty rows.** :func:`find_empty_rows` looks, above and below the boxed
   band row, for a window of ``height`` rows (90 by default: 6-8 sigmas of
   the broadest band plus room for its tail) that holds no band. Candidates
   keep ``gap`` rows (50) away from the boxed rows of every annotated strip
   of the image, so that the lanes given to blotquant (window +- 40 rows)
   stop short of them. The per-row signal is the mean over the lane columns
   minus a robust floor (a quadratic in the row number, fitted to the window
   twice, the second time without rows more than 2.5 noise sigmas above the
   first fit, so that a band does not lift its own floor). A window is
   rejected when that signal, smoothed over 5 rows, departs from zero by
   more than ``max_flatness`` (6) noise sigmas of the smoothed row mean
   anywhere (a band, a membrane edge, a pen mark across the lanes), when the
   same test on any single lane exceeds twice that (a band in a few lanes
   only), or when it is off the membrane: its median level must be at least
   halfway from the image's darkest rows (the surround, 2nd percentile of
   the row means) to the level of the membrane beside the boxed band. Of
   the windows left, the flattest is used (the one whose largest departure
   is smallest).

2. **Spike-ins.** :func:`make_spike_ins` adds one row of bands, one per
   annotated lane at its x centre, centred on the window's middle row, with
   a tilt (up to +-4 px across the strip) and a smile (-1 to 3 px). Each
   lane is 0.75 pitch wide with a raised-cosine taper over 15 % of its width
   on either side. Along the lane a band is a Gaussian core (sigma drawn
   log-uniform in [2.5, 7.5] px) plus an exponential tail downwards holding
   its own share of the volume (uniform 0-0.33; decay 1.5-3 sigma), i.e. an
   exponentially modified Gaussian. Amounts are log-uniform over a tenfold
   range in each row, and sigmas are redrawn until the band's peak is 3-40
   times the pixel noise of the membrane there (1.4826 MAD of horizontal
   pixel differences / sqrt 2, over the window and the lane columns). Half
   of the lanes get a faint non-specific neighbour (10-30 % of the main
   band, Gaussian, sigma 0.8-1 times the main band's) 2.5-4 core widths
   (FWHM of the main band's core, as in :func:`blotquant.synth.random_hard_blot`)
   above or below, where it fits inside the window. Every band's footprint
   is normalised on the pixel grid it is added to, so its true volume is
   exactly the sum of its added float image. Shot noise of the added signal
   only is added, ``sd = sqrt(added * gain)`` with the image's gain (ADU per
   photo-electron) estimated as the slope of pixel variance (from horizontal
   differences) against mean over 32x32 tiles, clipped to [0.1, 2]; the sum
   is rounded and clipped to uint16 below 65535 (bands that would reach the
   ceiling are scaled down, which never happens on these images).

3. **Scoring.** :func:`score_cases` runs ``blotquant.quantify`` with the
   lanes given (``lane_geometry``, no review) either with free band
   detection or with ``band_rows`` set to the window (one band per lane),
   and the "careful analyst" baseline: a box from the true centre
   -3 sigma to +3 sigma +3 tau over the lane columns, background the median
   of the 3 pixel rows just above and below the box (LI-COR Image Studio's
   border median), volume the background-subtracted sum. A true main band
   is found when its lane has a band within 2 sigma + 3 px of its centre
   (the nearest one is its match); non-specific bands are matched the same
   way among the rest; detections peaking in the window rows that match no
   true band are spurious, unless free detection finds a band within
   :data:`MEMBRANE_MATCH` rows of them in the same lane of the image before
   the spike (the membrane's own faint rows: counted as ``membrane``). Errors are for main bands only: ratio =
   measured / true, divided by the median ratio of its spike row (the unknown
   scale), ``error = |ratio / scale - 1|``. :func:`summarise` gives, per
   method and mode, the median and 90th percentile error, the share of main
   bands found and the spurious count and share of reported bands.

Usage::

    python benchmarks/spike_in.py [--seeds 3] [--methods [METHOD ...]] [--jobs 2] [--csv per_band.csv]

``--methods`` alone scores every background method of
:data:`blotquant.background.BACKGROUND_METHODS`; by default only ``auto``.
Each seed draws new bands on every usable strip (per strip the random
generator is ``numpy.random.default_rng([seed, crc32(image name), strip])``,
so a case does not depend on which others are made). Set
``BLOTQUANT_REAL_BLOTS`` to read the images from elsewhere.

Example (quick, as a test would)::

    cases = make_spike_ins(seed=0, max_cases=4)
    figures = summarise(pd.concat([score_cases(cases), score_cases(cases, method="baseline")]))
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import tifffile
from scipy.special import erfc, erfcx

DEFAULT_ROOT = Path(
    os.environ.get("BLOTQUANT_REAL_BLOTS", Path(__file__).resolve().parents[2] / "shared" / "real_blots")
)
DATASET = "wb_zdf_rat_heart_chemi16"
#: 8-bit palette, dark on light, clipped: not a raw capture.
SKIPPED_IMAGES = ("B1AR_March19_B1AR16w_Bottom.tif",)

WINDOW_HEIGHT = 90
STRIP_GAP = 50
LANE_MARGIN = 40
MAX_FLATNESS = 6.0
SMOOTH_ROWS = 5

SPIKE_LANE_WIDTH = 0.75  # of the pitch
TAPER_SHARE = 0.15  # of the lane width, on each side
GEOMETRY_LANE_WIDTH = 0.9  # of the pitch, given to blotquant
SIGMA_RANGE = (2.5, 7.5)
TAIL_SHARE_RANGE = (0.0, 0.33)
TAIL_LENGTH_RANGE = (1.5, 3.0)  # in sigmas
AMOUNT_RANGE = 10.0
PEAK_SNR_RANGE = (3.0, 40.0)
NONSPECIFIC_PROBABILITY = 0.5
NONSPECIFIC_SHARE = (0.1, 0.3)
NONSPECIFIC_OFFSET = (2.5, 4.0)  # in FWHM of the main band's core
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
CEILING = 65534  # stay below the uint16 limit, which would read as clipped
MEMBRANE_MATCH = 6  # rows: a detection this close to one found before the spike is the membrane's own

TRUTH_COLUMNS = ["lane", "x_center", "y_center", "sigma", "tail", "tau", "amount", "peak", "peak_snr", "nonspecific"]
SUMMARY_COLUMNS = ["method", "mode", "images", "strips", "cases", "main_bands", "found_share", "median_error",
                   "p90_error", "reported", "spurious", "membrane", "spurious_share", "within_1_sd", "within_2_sd"]


class EmptyWindow(NamedTuple):
    """Rows of a band-free window (inclusive) and how flat it is."""

    top: int
    bottom: int
    flatness: float  # largest departure of the smoothed row signal from its floor, in noise sigmas
    side: str  # "above" or "below" the boxed band row


@dataclass
class SpikeInCase:
    """One real image with one row of known bands added.

    Attributes
    ----------
    image : numpy.ndarray
        The spiked uint16 image.
    name : str
        File name of the real image.
    strip : int
        The annotated strip (``strip_gt``) whose lanes carry the spike row.
    seed : int
    window : tuple of int
        Rows (inclusive) of the empty window the bands were added to.
    geometry : pandas.DataFrame
        Lanes for ``quantify(lane_geometry=...)``: x_left, x_right, y_top,
        y_bottom, slope, one row per lane left to right.
    truth : pandas.DataFrame
        One row per added band (columns :data:`TRUTH_COLUMNS`); ``amount`` is
        the true volume (sum of the added float signal), ``nonspecific``
        flags the faint neighbours.
    noise_sigma : float
        Pixel noise of the membrane in the window (ADU).
    gain : float
        ADU per photo-electron used for the added shot noise.
    flatness : float
        :attr:`EmptyWindow.flatness` of the window.
    original : numpy.ndarray
        The image before the bands were added, to tell the membrane's own
        faint rows in the window from spurious detections.
    """

    image: np.ndarray = field(repr=False)
    name: str
    strip: int
    seed: int
    window: tuple
    geometry: pd.DataFrame = field(repr=False)
    truth: pd.DataFrame = field(repr=False)
    noise_sigma: float
    gain: float
    flatness: float
    original: np.ndarray = field(default=None, repr=False)


# --------------------------------------------------------------------------- data

def dataset_folder(root=DEFAULT_ROOT):
    """Folder of the 16-bit chemiluminescence dataset under ``root``."""
    return Path(root) / DATASET


def load_ground_truth(root=DEFAULT_ROOT):
    """Annotated strips and lanes of the dataset.

    Returns
    -------
    strips, lanes : pandas.DataFrame
        ``gt_strips.csv`` and ``gt_lanes.csv`` (0-based pixels).
    """
    folder = dataset_folder(root)
    return pd.read_csv(folder / "gt_strips.csv"), pd.read_csv(folder / "gt_lanes.csv")


def usable_images(root=DEFAULT_ROOT):
    """Names of the dataset's images that are raw 16-bit captures with annotated strips."""
    strips, _ = load_ground_truth(root)
    folder = dataset_folder(root)
    return [name for name in sorted(strips["image"].unique())
            if name not in SKIPPED_IMAGES and (folder / name).is_file()]


def read_capture(path):
    """A raw capture as uint16, or None when it is not a 2-D uint16 image."""
    array = tifffile.imread(path)
    if array.dtype != np.uint16 or array.ndim != 2:
        return None
    return array


# --------------------------------------------------------------------------- noise

def pixel_noise_sigma(pixels):
    """Robust pixel noise: 1.4826 MAD of horizontal differences / sqrt(2).

    Parameters
    ----------
    pixels : numpy.ndarray
        2-D block of an image.

    Returns
    -------
    float
    """
    differences = np.diff(np.asarray(pixels, dtype=float), axis=1).ravel()
    return float(1.4826 * np.median(np.abs(differences - np.median(differences))) / np.sqrt(2.0))


def estimate_gain(image, tile=32, limits=(0.1, 2.0)):
    """ADU per photo-electron: slope of pixel variance against mean over tiles.

    The variance of each ``tile`` x ``tile`` block comes from its horizontal
    pixel differences (robust to smooth structure); a least-squares line
    through (mean, variance) gives the slope, clipped to ``limits``.

    Parameters
    ----------
    image : numpy.ndarray
    tile : int
    limits : (float, float)

    Returns
    -------
    float
    """
    data = np.asarray(image, dtype=float)
    rows, columns = (data.shape[0] // tile) * tile, ((data.shape[1] - 1) // tile) * tile
    means = data[:rows, :columns].reshape(rows // tile, tile, columns // tile, tile).mean(axis=(1, 3))
    differences = np.diff(data, axis=1)[:rows, :columns].reshape(rows // tile, tile, columns // tile, tile)
    centred = differences - np.median(differences, axis=(1, 3), keepdims=True)
    variances = (1.4826 * np.median(np.abs(centred), axis=(1, 3))) ** 2 / 2.0
    slope = np.polyfit(means.ravel(), variances.ravel(), 1)[0]
    return float(np.clip(slope, *limits)) if np.isfinite(slope) else 1.0


# --------------------------------------------------------------------------- empty rows

def lane_column_ranges(lanes, image_width, width_share=SPIKE_LANE_WIDTH):
    """First and last column (inclusive) of each lane, ``width_share`` pitches wide.

    Parameters
    ----------
    lanes : pandas.DataFrame
        Lanes of one strip with an ``x_center`` column.
    image_width : int
    width_share : float

    Returns
    -------
    centres, first, last : numpy.ndarray
        Sorted lane centres and integer column bounds.
    pitch : float
    """
    centres = np.sort(np.asarray(lanes["x_center"], dtype=float))
    pitch = float(np.median(np.diff(centres))) if centres.size > 1 else 50.0
    half = 0.5 * width_share * pitch
    first = np.clip(np.ceil(centres - half), 0, image_width - 1).astype(int)
    last = np.clip(np.floor(centres + half), 0, image_width - 1).astype(int)
    return centres, first, last, pitch


def lane_row_means(image, first, last):
    """Mean of each row over each lane's columns: array (lanes, rows)."""
    data = np.asarray(image, dtype=float)
    cumulative = np.concatenate([np.zeros((data.shape[0], 1)), np.cumsum(data, axis=1)], axis=1)
    sums = cumulative[:, last + 1] - cumulative[:, first]
    return (sums / (last - first + 1)).T


def _row_noise(profiles):
    """Noise sigma of row means from their row-to-row differences (last axis)."""
    differences = np.diff(profiles, axis=-1)
    mad = np.median(np.abs(differences - np.median(differences, axis=-1, keepdims=True)), axis=-1)
    return 1.4826 * mad / np.sqrt(2.0)


def _window_departures(profiles, tops, height, noise):
    """Largest |smoothed signal - robust floor| of each window, in noise sigmas of the smoothed mean.

    Parameters
    ----------
    profiles : numpy.ndarray
        Row means, shape (series, rows).
    tops : numpy.ndarray
        First row of each candidate window.
    height : int
    noise : numpy.ndarray
        Row-mean noise of each series.

    Returns
    -------
    numpy.ndarray, shape (series, windows)
    """
    offsets = np.arange(height)
    windows = profiles[:, tops[:, None] + offsets[None, :]]  # (series, windows, rows)
    x = (offsets - 0.5 * (height - 1)) / height
    design = np.stack([np.ones_like(x), x, x * x], axis=1)  # (rows, 3)
    scale = noise[:, None, None]

    def fit(weights):
        # Weighted least squares of every window at once: solve (A^T W A) c = A^T W y.
        normal = np.einsum("swr,ri,rj->swij", weights, design, design)
        right = np.einsum("swr,ri,swr->swi", weights, design, windows)
        normal = normal + 1e-9 * np.eye(3)
        coefficients = np.linalg.solve(normal, right[..., None])[..., 0]
        return np.einsum("ri,swi->swr", design, coefficients)

    floor = fit(np.ones_like(windows))
    keep = ((windows - floor) <= 2.5 * scale).astype(float)
    floor = fit(keep)
    signal = windows - floor
    kernel = np.ones(SMOOTH_ROWS) / SMOOTH_ROWS
    cumulative = np.concatenate([np.zeros(signal.shape[:2] + (1,)), np.cumsum(signal, axis=-1)], axis=-1)
    smoothed = (cumulative[..., SMOOTH_ROWS:] - cumulative[..., :-SMOOTH_ROWS]) * kernel[0]
    return np.abs(smoothed).max(axis=-1) / (scale[..., 0] / np.sqrt(SMOOTH_ROWS))


def find_empty_rows(image, strip_row, lanes, height=WINDOW_HEIGHT, *, other_rows=(), gap=STRIP_GAP,
                    max_flatness=MAX_FLATNESS, step=2):
    """Find a band-free window of ``height`` rows on the membrane of a strip's lanes.

    Candidate windows lie above or below the boxed band row, at least ``gap``
    rows from it and from the boxed rows in ``other_rows``. The signal of a
    row is its mean over the lane columns (0.75 pitch around each centre)
    minus a robust floor: a quadratic fitted to the window, then refitted
    without rows more than 2.5 noise sigmas above the first fit. Smoothed
    over 5 rows, that signal must stay within ``max_flatness`` noise sigmas
    (of a 5-row mean; the row-mean noise is estimated from row-to-row
    differences) for the mean over all lanes, and within twice that for
    every single lane. The window must also be on the membrane: its median
    level at least halfway from the image's surround (2nd percentile of the
    row means) to the membrane beside the band row (median of rows 5-40
    above and below the box). The flattest window that passes is returned.

    Parameters
    ----------
    image : numpy.ndarray
        2-D light-on-dark image.
    strip_row : mapping or namedtuple
        With ``y_min`` and ``y_max``, the boxed band row (inclusive).
    lanes : pandas.DataFrame
        The strip's lanes (``x_center``).
    height : int
        Rows of the window.
    other_rows : sequence of (int, int)
        Boxed band rows of the image's other strips.
    gap : int
        Least distance in rows from any boxed band row.
    max_flatness : float
        Largest departure allowed, in noise sigmas.
    step : int
        Candidate windows start every ``step`` rows.

    Returns
    -------
    EmptyWindow or None
        None when no window passes.
    """
    data = np.asarray(image, dtype=float)
    rows = data.shape[0]
    _, first, last, _ = lane_column_ranges(lanes, data.shape[1])
    per_lane = lane_row_means(data, first, last)
    overall = per_lane.mean(axis=0, keepdims=True)

    y_min, y_max = int(_field(strip_row, "y_min")), int(_field(strip_row, "y_max"))
    tops = np.arange(0, rows - height + 1, step)
    bottoms = tops + height - 1
    allowed = np.ones(tops.size, bool)
    for box_top, box_bottom in [(y_min, y_max), *other_rows]:
        allowed &= (bottoms < box_top - gap) | (tops > box_bottom + gap)
    tops = tops[allowed]
    if tops.size == 0:
        return None

    beside = np.r_[max(0, y_min - 40):max(0, y_min - 5), min(rows, y_max + 6):min(rows, y_max + 41)]
    membrane_level = float(np.median(overall[0, beside])) if beside.size else float(np.median(overall))
    surround_level = float(np.percentile(overall[0], 2))
    window_level = np.median(overall[0, tops[:, None] + np.arange(height)[None, :]], axis=1)
    on_membrane = window_level >= surround_level + 0.5 * (membrane_level - surround_level)

    departure_all = _window_departures(overall, tops, height, _row_noise(overall))[0]
    departure_lane = _window_departures(per_lane, tops, height, _row_noise(per_lane)).max(axis=0)
    passes = on_membrane & (departure_all <= max_flatness) & (departure_lane <= 2 * max_flatness)
    if not passes.any():
        return None
    best = np.flatnonzero(passes)[np.argmin(departure_all[passes])]
    top = int(tops[best])
    return EmptyWindow(top, top + height - 1, float(departure_all[best]), "above" if top < y_min else "below")


def _field(record, name):
    return record[name] if isinstance(record, (dict, pd.Series)) else getattr(record, name)


# --------------------------------------------------------------------------- band shapes

def band_profile(offsets, sigma, tail_share, tau):
    """Exponentially modified Gaussian band profile along the lane (unnormalised density).

    ``(1 - tail_share)`` of a Gaussian core of ``sigma`` plus ``tail_share``
    of the same Gaussian convolved with an exponential decaying downwards
    (towards larger rows) over ``tau``.

    Parameters
    ----------
    offsets : numpy.ndarray
        Rows minus the core's centre.
    sigma, tail_share, tau : float

    Returns
    -------
    numpy.ndarray
    """
    offsets = np.asarray(offsets, dtype=float)
    core = np.exp(-0.5 * (offsets / sigma) ** 2) / (np.sqrt(2.0 * np.pi) * sigma)
    if tail_share <= 0:
        return core
    z = (sigma / tau - offsets / sigma) / np.sqrt(2.0)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        # erfcx for z >= 0 (no overflow), erfc where z < 0 (far down the tail).
        stable = np.exp(-0.5 * (offsets / sigma) ** 2) * erfcx(np.maximum(z, 0.0))
        far = np.exp(0.5 * (sigma / tau) ** 2 - offsets / tau) * erfc(np.minimum(z, 0.0))
    tail = np.where(z >= 0, stable, far) / (2.0 * tau)
    return (1.0 - tail_share) * core + tail_share * tail


def lane_weights(columns, centre, width, taper_share=TAPER_SHARE):
    """Raised-cosine lane profile across the lane: 1 in the middle, tapering to 0 at the edges."""
    distance = np.abs(np.asarray(columns, dtype=float) - centre)
    half = 0.5 * width
    taper = taper_share * width
    inner = half - taper
    weights = 0.5 * (1.0 + np.cos(np.pi * np.clip((distance - inner) / taper, 0.0, 1.0)))
    return np.where(distance <= half, weights, 0.0)


def render_band(shape, centre_x, width, row_of_column, sigma, tail_share, tau, amount):
    """Float image of one band on the pixel grid, summing exactly to ``amount``.

    Parameters
    ----------
    shape : (int, int)
        Image shape.
    centre_x, width : float
        Lane centre column and lane width (pixels).
    row_of_column : callable
        Core centre row as a function of column (tilt and smile).
    sigma, tail_share, tau, amount : float

    Returns
    -------
    rows, columns : slice
        Footprint of the band in the image.
    values : numpy.ndarray
        The band's added signal on that footprint.
    """
    first = int(max(0, np.floor(centre_x - 0.5 * width)))
    last = int(min(shape[1] - 1, np.ceil(centre_x + 0.5 * width)))
    columns = np.arange(first, last + 1)
    weights = lane_weights(columns, centre_x, width)
    centres = row_of_column(columns)
    top = int(max(0, np.floor(centres.min() - 5 * sigma)))
    bottom = int(min(shape[0] - 1, np.ceil(centres.max() + 5 * sigma + (8 * tau if tail_share > 0 else 0))))
    band_rows = np.arange(top, bottom + 1)
    values = band_profile(band_rows[:, None] - centres[None, :], sigma, tail_share, tau) * weights[None, :]
    values *= amount / values.sum()
    return slice(top, bottom + 1), slice(first, last + 1), values


# --------------------------------------------------------------------------- spike-ins

def _strip_rng(seed, name, strip):
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(strip)])


def _log_uniform(rng, low, high, size=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _draw_main_bands(rng, n_lanes, unit_peak, noise_sigma):
    """Sigma, tail share, tau and amount of each lane's main band.

    ``unit_peak(sigma, tail_share, tau)`` is the peak pixel of a band of
    volume 1. The row's amounts are log-uniform over a tenfold range whose
    bottom gives a 3-sigma-noise peak at sigma 5 px; each band's sigma (with
    its tail) is redrawn until its peak is 3-40 noise sigmas.
    """
    reference_peak = unit_peak(5.0, 0.0, 10.0)
    lowest_amount = PEAK_SNR_RANGE[0] * noise_sigma / reference_peak
    amounts = lowest_amount * _log_uniform(rng, 1.0, AMOUNT_RANGE, n_lanes)
    drawn = []
    for amount in amounts:
        for _ in range(200):
            sigma = float(_log_uniform(rng, *SIGMA_RANGE))
            tail_share = float(rng.uniform(*TAIL_SHARE_RANGE))
            tau = float(rng.uniform(*TAIL_LENGTH_RANGE)) * sigma
            snr = amount * unit_peak(sigma, tail_share, tau) / noise_sigma
            if PEAK_SNR_RANGE[0] <= snr <= PEAK_SNR_RANGE[1]:
                break
        drawn.append((sigma, tail_share, tau, float(amount)))
    return drawn


def spike_strip(image, name, strip, lanes, window, seed, *, noise_sigma=None, gain=None):
    """Add one row of known bands to a strip's empty window.

    Parameters
    ----------
    image : numpy.ndarray
        The real uint16 image (not changed).
    name : str
    strip : int
    lanes : pandas.DataFrame
        The strip's annotated lanes (``x_center``).
    window : EmptyWindow or (int, int)
        Rows (inclusive) to put the bands in.
    seed : int
    noise_sigma, gain : float, optional
        Estimated from the image when omitted.

    Returns
    -------
    SpikeInCase
    """
    rng = _strip_rng(seed, name, strip)
    shape = image.shape
    top, bottom = int(window[0]), int(window[1])
    centres, first, last, pitch = lane_column_ranges(lanes, shape[1])
    if noise_sigma is None:
        noise_sigma = pixel_noise_sigma(image[top:bottom + 1, first.min():last.max() + 1])
    if gain is None:
        gain = estimate_gain(image)
    width = SPIKE_LANE_WIDTH * pitch
    middle_row = 0.5 * (top + bottom)
    middle_x = 0.5 * (centres[0] + centres[-1])
    half_span = max(0.5 * (centres[-1] - centres[0]), 1.0)
    tilt = rng.uniform(-4.0, 4.0)  # rows, across the strip
    smile = rng.uniform(-1.0, 3.0)  # rows, edges against the middle

    def row_of_column(columns):
        relative = (np.asarray(columns, dtype=float) - middle_x) / half_span
        return middle_row + 0.5 * tilt * relative + smile * (relative ** 2 - 1.0 / 3.0)

    def unit_peak(sigma, tail_share, tau):
        rows_, cols_, values = render_band(shape, centres[0], width, lambda c: np.full(np.shape(c), middle_row),
                                           sigma, tail_share, tau, 1.0)
        return float(values.max())

    added = np.zeros(shape)
    footprints = []
    truth = []
    for lane_number, ((sigma, tail_share, tau, amount), centre_x) in enumerate(
            zip(_draw_main_bands(rng, centres.size, unit_peak, noise_sigma), centres), start=1):
        bands = [(sigma, tail_share, tau, amount, 0.0, False)]
        if rng.random() < NONSPECIFIC_PROBABILITY:
            share = rng.uniform(*NONSPECIFIC_SHARE)
            ns_sigma = sigma * rng.uniform(0.8, 1.0)
            offset = rng.uniform(*NONSPECIFIC_OFFSET) * FWHM_PER_SIGMA * sigma
            centre_row = float(row_of_column([centre_x])[0])
            for direction in rng.permutation([-1.0, 1.0]):
                ns_row = centre_row + direction * offset
                if top + 2 * ns_sigma <= ns_row <= bottom - 2 * ns_sigma:
                    bands.append((ns_sigma, 0.0, ns_sigma, share * amount, direction * offset, True))
                    break
        for band_sigma, band_tail, band_tau, band_amount, shift, nonspecific in bands:
            rows_, cols_, values = render_band(shape, centre_x, width, lambda c: row_of_column(c) + shift,
                                               band_sigma, band_tail, band_tau, band_amount)
            added[rows_, cols_] += values
            footprints.append((rows_, cols_, values))
            truth.append(dict(lane=lane_number, x_center=float(centre_x),
                              y_center=float(row_of_column([centre_x])[0] + shift), sigma=band_sigma,
                              tail=band_tail, tau=band_tau, amount=float(values.sum()), peak=float(values.max()),
                              peak_snr=float(values.max() / noise_sigma), nonspecific=nonspecific))
    truth = pd.DataFrame(truth, columns=TRUTH_COLUMNS)

    # Bands that would reach the ceiling are scaled down (their truth with them).
    headroom = (CEILING - 5.0 * np.sqrt(np.maximum(added, 0) * gain) - image) / np.maximum(added, 1e-12)
    scale = float(np.clip(headroom[added > 0].min(), 0.0, 1.0)) if (added > 0).any() else 1.0
    if scale < 1.0:
        added *= scale
        truth[["amount", "peak", "peak_snr"]] *= scale

    shot = rng.standard_normal(shape) * np.sqrt(np.maximum(added, 0.0) * gain)
    spiked = np.clip(np.rint(image + added + shot), 0, CEILING).astype(np.uint16)

    y_top = max(0, top - LANE_MARGIN)
    y_bottom = min(shape[0] - 1, bottom + LANE_MARGIN)
    half_lane = 0.5 * GEOMETRY_LANE_WIDTH * pitch
    geometry = pd.DataFrame({"x_left": np.clip(centres - half_lane, 0, shape[1] - 1),
                             "x_right": np.clip(centres + half_lane, 0, shape[1] - 1),
                             "y_top": float(y_top), "y_bottom": float(y_bottom), "slope": 0.0})
    flatness = float(getattr(window, "flatness", np.nan))
    return SpikeInCase(image=spiked, name=name, strip=int(strip), seed=int(seed), window=(top, bottom),
                       geometry=geometry, truth=truth, noise_sigma=float(noise_sigma), gain=float(gain),
                       flatness=flatness, original=image)


def make_spike_ins(seed, *, root=DEFAULT_ROOT, images=None, max_cases=None, height=WINDOW_HEIGHT):
    """Spike-in cases of every usable strip of the dataset.

    Parameters
    ----------
    seed : int
        Draws the bands (per strip, see the module docstring).
    root : path
        Folder holding ``wb_zdf_rat_heart_chemi16``.
    images : sequence of str, optional
        File names to use; by default :func:`usable_images`.
    max_cases : int, optional
        Stop after this many cases (in file and strip order).
    height : int
        Rows of the empty window.

    Returns
    -------
    list of SpikeInCase
        Strips without an empty window, or with fewer than 2 lanes, are left out.
    """
    strips, lanes = load_ground_truth(root)
    folder = dataset_folder(root)
    cases = []
    for name in images if images is not None else usable_images(root):
        if name in SKIPPED_IMAGES:
            continue
        image = read_capture(folder / name)
        if image is None:
            continue
        image_strips = strips[strips["image"] == name]
        gain = estimate_gain(image)
        for strip_row in image_strips.itertuples():
            strip_lanes = lanes[(lanes["image"] == name) & (lanes["strip_gt"] == strip_row.strip_gt)]
            if len(strip_lanes) < 2:
                continue
            others = [(int(r.y_min), int(r.y_max)) for r in image_strips.itertuples()
                      if r.strip_gt != strip_row.strip_gt]
            window = find_empty_rows(image, strip_row, strip_lanes, height, other_rows=others)
            if window is None:
                continue
            cases.append(spike_strip(image, name, int(strip_row.strip_gt), strip_lanes, window, seed, gain=gain))
            if max_cases is not None and len(cases) >= max_cases:
                return cases
    return cases


# --------------------------------------------------------------------------- scoring

def _match(true_rows, detected_y, available):
    """Index into ``detected_y`` of the nearest available detection within 2 sigma + 3 px, or -1."""
    matches = []
    for row in true_rows.itertuples():
        distance = np.abs(detected_y - row.y_center)
        distance = np.where(available & (distance <= 2 * row.sigma + 3), distance, np.inf)
        index = int(np.argmin(distance)) if distance.size and np.isfinite(distance.min()) else -1
        if index >= 0:
            available[index] = False
        matches.append(index)
    return matches


def analyst_volumes(case):
    """The "careful analyst" baseline: box around each true main band, border-median background.

    The box spans the true centre -3 sigma to +3 sigma +3 tau over the
    lane's columns (``case.geometry``); the background is the median of the
    3 pixel rows just above and below it; the volume is the sum of pixels
    minus that median over the box.

    Parameters
    ----------
    case : SpikeInCase

    Returns
    -------
    numpy.ndarray
        One volume per main band, in the order of ``case.truth``'s main rows.
    """
    data = case.image.astype(float)
    rows = data.shape[0]
    volumes = []
    main = case.truth[~case.truth["nonspecific"]]
    for band in main.itertuples():
        lane = case.geometry.iloc[band.lane - 1]
        first, last = int(np.ceil(lane["x_left"])), int(np.floor(lane["x_right"]))
        top = int(max(3, np.floor(band.y_center - 3 * band.sigma)))
        bottom = int(min(rows - 4, np.ceil(band.y_center + 3 * band.sigma + 3 * band.tau)))
        box = data[top:bottom + 1, first:last + 1]
        border = np.concatenate([data[top - 3:top, first:last + 1].ravel(),
                                 data[bottom + 1:bottom + 4, first:last + 1].ravel()])
        volumes.append(float((box - np.median(border)).sum()))
    return np.asarray(volumes)


def _score_case(case, method, band_rows):
    """Per-band rows of one case and one method."""
    truth = case.truth.reset_index(drop=True)
    base = dict(image=case.name, strip=case.strip, seed=case.seed, method=method,
                mode="analyst" if method == "baseline" else ("band_rows" if band_rows else "free"))
    records = []
    if method == "baseline":
        measured = analyst_volumes(case)
        for band, volume in zip(truth[~truth["nonspecific"]].itertuples(), measured):
            records.append(dict(base, **band._asdict(), found=True, measured=volume, reported_in_window=1,
                                spurious=0, membrane=0))
        return records

    from blotquant import quantify
    from blotquant.io import image_from_array

    image = image_from_array(case.image, name=f"{case.name}#strip{case.strip}", full_scale=65535)
    options = dict(lane_geometry=case.geometry, review=None, background=method)
    if band_rows:
        options["band_rows"] = case.window
    bands = quantify(image, **options).bands
    top, bottom = case.window
    before = None
    if not band_rows and case.original is not None:
        # What free detection finds in the window before the spike: the membrane's own faint rows.
        original = image_from_array(case.original, name=f"{case.name}#strip{case.strip}#before", full_scale=65535)
        before = quantify(original, **options).bands
    for lane_number, lane_truth in truth.groupby("lane"):
        found = bands[(bands["strip"] == 1) & (bands["lane"] == lane_number)]
        detected_y = found["y"].to_numpy(float)
        available = np.ones(detected_y.size, bool)
        main = lane_truth[~lane_truth["nonspecific"]]
        nonspecific = lane_truth[lane_truth["nonspecific"]]
        main_match = _match(main, detected_y, available)
        _match(nonspecific, detected_y, available)
        in_window = (detected_y >= top) & (detected_y <= bottom)
        unmatched = in_window & available
        membrane = np.zeros(detected_y.size, bool)
        if before is not None:
            earlier = before.loc[(before["strip"] == 1) & (before["lane"] == lane_number), "y"].to_numpy(float)
            if earlier.size:
                membrane = unmatched & (np.abs(detected_y[:, None] - earlier[None, :]).min(axis=1) <= MEMBRANE_MATCH)
        for band, index in zip(main.itertuples(), main_match):
            records.append(dict(base, **band._asdict(), found=index >= 0,
                                measured=float(found["volume"].iloc[index]) if index >= 0 else np.nan,
                                measured_sd=float(found["volume_sd"].iloc[index]) if index >= 0 else np.nan,
                                reported_in_window=int(in_window.sum()),
                                spurious=int((unmatched & ~membrane).sum()), membrane=int(membrane.sum())))
    return records


def score_cases(cases, method="auto", band_rows=False):
    """Score blotquant (a background method) or the analyst baseline on spike-in cases.

    Parameters
    ----------
    cases : list of SpikeInCase
    method : str
        A :data:`blotquant.background.BACKGROUND_METHODS` entry, or
        ``"baseline"`` for the careful analyst (:func:`analyst_volumes`).
    band_rows : bool
        Give blotquant the window as ``band_rows`` (one band per lane)
        instead of free detection. Ignored by the baseline.

    Returns
    -------
    pandas.DataFrame
        One row per main band: the truth columns, ``found``, ``measured``,
        ``ratio`` (measured / true), ``error`` (against the median ratio of
        its spike row) and, per lane, ``reported_in_window`` and ``spurious``.
    """
    records = []
    for case in cases:
        records.extend(_score_case(case, method, band_rows))
    per_band = pd.DataFrame(records)
    if per_band.empty:
        return per_band
    per_band["ratio"] = per_band["measured"] / per_band["amount"]
    row_keys = ["image", "strip", "seed", "method", "mode"]
    scale = per_band.groupby(row_keys)["ratio"].transform("median")
    per_band["error"] = (per_band["ratio"] / scale - 1.0).abs()
    if "measured_sd" in per_band:
        # Standard uncertainties (volume_sd) between each volume and the truth on the same scale.
        per_band["z"] = (per_band["measured"] - scale * per_band["amount"]).abs() / per_band["measured_sd"]
    return per_band


def _share_within(group, limit):
    """Share of found bands whose volume lies within ``limit`` volume_sd of the truth (NaN without volume_sd)."""
    if "z" not in group:
        return np.nan
    z = group.loc[group["found"], "z"].dropna()
    return float((z <= limit).mean()) if z.size else np.nan


def summarise(per_band):
    """Figures per method and mode from :func:`score_cases` tables.

    Parameters
    ----------
    per_band : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`: images, strips (image and strip
        pairs), cases (spike rows), main bands, share found, median and 90th
        percentile error of found bands, bands reported in the window rows,
        spurious ones and their share of those reported.
    """
    rows = []
    for (method, mode), group in per_band.groupby(["method", "mode"], sort=False):
        errors = group.loc[group["found"], "error"].dropna()
        reported = int(group["reported_in_window"].sum())
        spurious = int(group["spurious"].sum())
        membrane = int(group["membrane"].sum()) if "membrane" in group else 0
        rows.append(dict(method=method, mode=mode, images=group["image"].nunique(),
                         strips=len(group[["image", "strip"]].drop_duplicates()),
                         cases=len(group[["image", "strip", "seed"]].drop_duplicates()), main_bands=len(group),
                         found_share=float(group["found"].mean()),
                         median_error=float(errors.median()) if errors.size else np.nan,
                         p90_error=float(errors.quantile(0.9)) if errors.size else np.nan,
                         reported=reported, spurious=spurious, membrane=membrane,
                         spurious_share=spurious / reported if reported else 0.0,
                         within_1_sd=_share_within(group, 1.0), within_2_sd=_share_within(group, 2.0)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# --------------------------------------------------------------------------- command line

def _score_image(task):
    """Worker: make one image's cases for one seed and score them with every method asked for."""
    seed, name, methods, root = task
    cases = make_spike_ins(seed, root=root, images=[name])
    tables = [score_cases(cases, method="baseline")]
    for method in methods:
        tables.append(score_cases(cases, method=method))
        tables.append(score_cases(cases, method=method, band_rows=True))
    windows = [dict(image=c.name, strip=c.strip, seed=c.seed, top=c.window[0], bottom=c.window[1],
                    flatness=c.flatness, noise_sigma=c.noise_sigma, gain=c.gain) for c in cases]
    return pd.concat([t for t in tables if not t.empty], ignore_index=True) if cases else pd.DataFrame(), windows


def main(argv=None):
    """Command line: print the figures of every method and of the analyst baseline."""
    from blotquant.background import BACKGROUND_METHODS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds; each draws new bands on every strip")
    parser.add_argument("--methods", nargs="*", default=None, metavar="METHOD",
                        help="background methods to score (all when given without names; default: auto)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="folder holding " + DATASET)
    parser.add_argument("--csv", type=Path, help="also write the per-band table here")
    args = parser.parse_args(argv)

    if not dataset_folder(args.root).is_dir():
        print(f"spike_in: {dataset_folder(args.root)} not found; set BLOTQUANT_REAL_BLOTS", file=sys.stderr)
        return 1
    if args.methods is None:
        methods = ["auto"]
    elif not args.methods:
        methods = list(BACKGROUND_METHODS)
    else:
        methods = args.methods
    unknown = sorted(set(methods) - set(BACKGROUND_METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(BACKGROUND_METHODS)}")

    started = time.perf_counter()
    tasks = [(seed, name, methods, args.root) for seed in range(args.seeds) for name in usable_images(args.root)]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_score_image, tasks))
    else:
        results = [_score_image(task) for task in tasks]
    per_band = pd.concat([table for table, _ in results if not table.empty], ignore_index=True)
    windows = pd.DataFrame([w for _, ws in results for w in ws])
    summary = summarise(per_band)

    strips, _ = load_ground_truth(args.root)
    annotated = strips[~strips["image"].isin(SKIPPED_IMAGES)]
    usable = windows[["image", "strip"]].drop_duplicates()
    print(f"Spike-ins on {DATASET}: {usable['image'].nunique()} images, {len(usable)} of {len(annotated)} "
          f"annotated strips usable (empty window found), {args.seeds} seeds, "
          f"{int(summary['main_bands'].iloc[0])} main bands per method")
    print(f"window flatness (noise sigmas): median {windows['flatness'].median():.1f}, "
          f"max {windows['flatness'].max():.1f}; membrane noise {windows['noise_sigma'].median():.1f} ADU, "
          f"gain {windows['gain'].median():.2f} ADU/e-")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{time.perf_counter() - started:.1f} s")
    if args.csv:
        per_band.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
