"""One image from file to tidy tables: input -> lanes -> background -> bands.

:func:`quantify` is the single entry point that the command line, the
study runner and the napari plugin all call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from .peaks import find_peaks, peak_widths

from . import __version__
from ._shared import difference_noise_sigma, median
from .background import BACKGROUND_METHODS, rolling_ball_surface
from .bands import (
    background_error_sd,
    band_centroid,
    find_band_peaks,
    gap_residual_profile,
    reject_off_lane_peaks,
    harmonise_band_windows,
    MIN_CLIPPED_BLOB,
    is_saturated,
    largest_clipped_blob,
    lane_profile,
    measure_band,
    saturated_pixel_count,
)
from .errors import ParameterError
from .io import BlotImage, image_from_array, read_image, to_signal
from .profile_fit import MIN_SINGLE_MISFIT, fit_is_trusted, fit_lane_bands, split_shoulders
from .lanes import detect_lanes_and_marks, lane_columns, lane_row_runs, lanes_from_geometry
from .marks import MARK_COLUMNS, find_marks
from .review import Review, find_review, load_review

#: Columns of the bands table, in order (``bands.csv``).
BAND_COLUMNS = [
    "image", "channel", "strip", "lane", "band", "y", "y_top", "y_bottom", "height", "kda", "kda_sd",
    "x_left", "x_right", "volume", "volume_sd", "background", "peak", "snr", "overlap", "fit_share", "fit_residual",
    "saturated", "saturated_pixels", "n_pixels", "detected", "excluded", "exclusion_reason",
]  # fmt: skip
#: Columns of the lanes table, in order (``lanes.csv``).
LANE_TABLE_COLUMNS = [
    "image", "strip", "lane", "x_center", "x_left", "x_right", "y_top", "y_bottom", "slope", "width",
    "empty", "excluded", "exclusion_reason", "source",
]  # fmt: skip

#: The background method ``"auto"`` stands for (chosen by benchmarks/accuracy.py).
DEFAULT_BACKGROUND = "fit"


@dataclass
class QuantResult:
    """Everything :func:`quantify` measured on one image.

    Attributes
    ----------
    lanes : pandas.DataFrame
        One row per lane (columns :data:`LANE_TABLE_COLUMNS`).
    bands : pandas.DataFrame
        One row per band and channel (columns :data:`BAND_COLUMNS`).
    image : dict
        Name, path, SHA-256, shape, bit depth, full scale, polarity and
        warnings of the input.
    parameters : dict
        Every parameter used, JSON-serialisable, for ``run.json``.
    profiles : dict
        ``(channel, strip, lane) -> LaneProfile``, for plots and review.
    calibration : blotquant.ladder.BlotCalibration or None
        The size curves of each strip, when a ladder was given.
    marks : pandas.DataFrame
        Labels, handwriting, pen marks and scan rims set aside
        (:mod:`blotquant.marks`; columns ``image`` and :data:`blotquant.marks.MARK_COLUMNS`).
    """

    lanes: pd.DataFrame
    bands: pd.DataFrame
    image: dict
    parameters: dict
    profiles: dict = field(default_factory=dict, repr=False)
    calibration: object = field(default=None, repr=False)
    marks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["image"] + MARK_COLUMNS), repr=False)


#: Images narrower or shorter than this hold no lane with a band and a background.
MIN_IMAGE_SIDE = 16


def quantify(
    image,
    *,
    lanes=None,
    lane_geometry=None,
    strips=None,
    channel=None,
    polarity="auto",
    background="auto",
    background_radius=None,
    band_rows=None,
    band_rows_mode="band",
    min_snr=4.0,
    min_band_snr=10.0,
    min_relative_height=0.02,
    review="auto",
    max_pixels=None,
    split_doublets=False,
    ladder=None,
    ladder_lane=None,
    ladder_marks=None,
    ignore_marks=True,
):
    """Find lanes and bands in a blot image and measure band volumes (and sizes, given a ladder).

    Parameters
    ----------
    image : str, pathlib.Path, BlotImage or ndarray
        A file (TIFF, PNG, GIF, JPEG, Bio-Rad .scn), an image already read
        with :func:`blotquant.io.read_image`, or a 2-D array.
    lanes : int, optional
        Expected number of lanes per strip (empty lanes included).
    lane_geometry : DataFrame or list of dict, optional
        Lanes given by the caller instead of detection; see
        :func:`blotquant.lanes.lanes_from_geometry`.
    strips : list of (int, int), optional
        Rows of each membrane strip; found automatically when omitted.
    channel : int or str, optional
        Channel to analyse; by default every default channel of the image
        (each channel of a two-colour image, the luminance of a colour scan).
    polarity : {"auto", "light_on_dark", "dark_on_light"}
        Whether bands are bright on dark (chemiluminescence, fluorescence)
        or dark on light (film, stained gels). ``auto`` decides from the data.
    background : str
        One of :data:`blotquant.background.BACKGROUND_METHODS`; ``auto`` is
        :data:`DEFAULT_BACKGROUND`.
    background_radius : float, optional
        Rolling-ball radius in pixels; by default three times the median
        band height (FWHM) found in a first pass, and at least 10.
    band_rows : (int, int), optional
        Rows of the band of interest. Then each lane (of the strip that
        holds these rows) yields exactly one band:
        the strongest band whose peak lies in these rows or, if none is
        found, the signal integrated over the whole window (``detected``
        false), so a lane with no visible band still gets its (small) value.
    min_snr : float
        Detection threshold of a band peak, in noise standard deviations.
    min_band_snr : float
        Bands found by detection whose integrated signal-to-noise (the
        ``snr`` column: volume over the noise of that many pixels) is below
        this are not reported: a real band that tall stands far higher, a
        bump of noise does not. Not applied with ``band_rows``.
    min_relative_height : float
        Bands found by detection whose peak is below this share of the
        strongest band of their strip are not reported (they are membrane
        texture far more often than protein). Not applied with ``band_rows``.
    review : "auto", None, path or Review
        A lane review made by hand (napari plugin). ``auto`` uses the review
        file saved next to the image file when there is one.
    max_pixels : int, optional
        Refuse images with more pixels than this, counted over every channel,
        page and colour sample decoded (default :data:`blotquant.io.DEFAULT_MAX_PIXELS`).
    split_doublets : bool
        With the profile fit and free detection, split a band whose profile
        is a doublet (a shoulder) into its two bands
        (:func:`blotquant.profile_fit.split_shoulders`). Off by default: on
        real captures single bands that an EMG does not follow closely
        were split too (14 more spurious bands on the rat-heart set).
    ladder : str or sequence of float, optional
        The molecular-weight ladder in the ``ladder_lane`` lanes: a name from
        ``blotquant/data/ladders.toml`` (key, product name, alias or
        catalogue number) or its sizes in kDa, top to bottom. ``None`` with
        a ladder lane identifies it from the table (with a warning).
    ladder_lane : int or sequence of int, optional
        Lane number(s) of the ladder within every strip (both sides of the
        blot: ``[1, 12]``). Its bands are matched to the ladder's sizes and a
        size curve is fitted per strip (:mod:`blotquant.ladder`); the bands
        table's ``kda`` and ``kda_sd`` give every band's size. Count the
        ladder lane in ``lanes``.
    ladder_marks : DataFrame or list of dict, optional
        Sizes at rows given directly instead of a ladder lane (pen marks at
        the 100, 75 and 50 kDa marker bands): ``kda`` and ``y`` per mark,
        optionally ``strip``, ``x``, ``y_sd`` and ``image``; see
        :func:`blotquant.ladder.calibrate_blot`.
    ignore_marks : bool
        Find typed labels, handwriting, pen marks and the dark rim of a scan
        (:mod:`blotquant.marks`), keep them out of lane finding, and exclude
        any band that lies on one (``exclusion_reason`` "on a label or
        mark"). The marks are in :attr:`QuantResult.marks` and the overlay.

    Returns
    -------
    QuantResult
    """
    blot = _as_blot_image(image, max_pixels=max_pixels)
    height, width = blot.data.shape[1:]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ParameterError(f"{blot.name}: the image is {width} x {height} px; a blot needs at least "
                             f"{MIN_IMAGE_SIDE} px each way to hold a lane and a band")
    method = DEFAULT_BACKGROUND if background == "auto" else background
    if method not in BACKGROUND_METHODS:
        raise ParameterError(f"unknown background method {background!r}; choose one of {', '.join(BACKGROUND_METHODS)}")
    if band_rows is not None:
        band_rows = _check_band_rows(band_rows, blot.data.shape[1])
    if band_rows_mode not in ("band", "window"):
        raise ParameterError(f"band_rows_mode must be 'band' or 'window', not {band_rows_mode!r}")
    if ladder is not None and ladder_lane is None and ladder_marks is None:
        raise ParameterError("a ladder was named but no ladder lane given; give the ladder's lane number "
                             "(--ladder-lane N, ladder_lane=N)")
    review_obj = _resolve_review(review, blot)
    channels = _select_channels(blot, channel)

    signals = {}
    polarity_used = None
    for index in channels:
        plane = blot.data[index]
        signals[index], chosen = to_signal(plane, polarity=polarity if polarity_used is None else polarity_used,
                                           full_scale=blot.full_scale)
        polarity_used = polarity_used or chosen

    first_signal = signals[channels[0]]
    lane_source = "detected"
    if review_obj is not None and review_obj.lanes is not None and lane_geometry is None:
        lane_table = lanes_from_geometry(review_obj.lanes, first_signal.shape)
        lane_source = "review"
    elif lane_geometry is not None:
        lane_table = lanes_from_geometry(lane_geometry, first_signal.shape)
        lane_source = "given"
    else:
        lane_table, marks = detect_lanes_and_marks(first_signal, n_lanes=lanes, strips=strips,
                                                   ignore_marks=ignore_marks)
    if lane_source != "detected":
        marks = find_marks(first_signal) if ignore_marks else None

    band_rows_out = []
    profiles = {}
    radii = {}
    for index in channels:
        name = blot.channel_names[index]
        radius = background_radius or _auto_radius(signals[index], lane_table)
        radii[name] = float(radius)
        rows, channel_profiles = _measure_channel(
            blot, signals[index], lane_table, lane_source=lane_source, radius=radius, method=method,
            review=review_obj, band_rows=band_rows, band_rows_mode=band_rows_mode, min_snr=min_snr,
            split_doublets=split_doublets,
            min_band_snr=min_band_snr, min_relative_height=min_relative_height)
        band_rows_out.extend({"image": blot.name, "channel": name, **row} for row in rows)
        profiles.update({(name, strip, lane): profile for (strip, lane), profile in channel_profiles.items()})

    bands = pd.DataFrame(band_rows_out, columns=[c for c in BAND_COLUMNS if c not in ("excluded", "exclusion_reason")])
    bands, lane_out = _apply_exclusions(bands, lane_table, review_obj)
    if marks is not None and not bands.empty:
        on_mark = (marks.share_of(bands) >= _ON_MARK) & ~bands["excluded"].to_numpy(bool)
        bands.loc[on_mark, ["excluded", "exclusion_reason"]] = [True, "on a label or mark"]
    calibration, size_warnings = None, []
    if ladder_lane is not None or ladder_marks is not None:
        from .ladder import calibrate_blot  # scipy.interpolate only when sizes are asked for

        channel_profiles = {}
        for index in channels:
            for (name, strip, lane), profile in profiles.items():
                if name == blot.channel_names[index]:
                    channel_profiles.setdefault((strip, lane), []).append(profile)
        calibration = calibrate_blot(lane_table.to_dict("records"), channel_profiles, ladder=ladder,
                                     ladder_lane=ladder_lane, ladder_marks=ladder_marks, image_name=blot.name,
                                     min_snr=min_snr)
        bands, size_warnings = _with_sizes(bands, calibration)
    lane_out.insert(0, "image", blot.name)
    lane_out["source"] = lane_source
    bands = bands.astype({"saturated": bool, "detected": bool, "excluded": bool})
    parameters = {
        "blotquant_version": __version__,
        "lanes": lanes,
        "lane_source": lane_source,
        "strips": strips,
        "channel": channel,
        "channels_analysed": [blot.channel_names[i] for i in channels],
        "polarity": polarity,
        "polarity_used": polarity_used,
        "background": background,
        "background_method": method,
        "background_radius": radii,
        "band_rows": list(band_rows) if band_rows is not None else None,
        "band_rows_mode": band_rows_mode,
        "min_snr": min_snr,
        "min_band_snr": min_band_snr,
        "min_relative_height": min_relative_height,
        "split_doublets": bool(split_doublets),
        "review": str(review_obj.path) if review_obj is not None and review_obj.path else None,
        "ladder": _ladder_record(ladder),
        "ladder_lane": None if ladder_lane is None else [int(n) for n in np.atleast_1d(ladder_lane)],
        "ladder_marks": None if ladder_marks is None else _ladder_mark_records(ladder_marks),
        "ladder_fits": calibration.records if calibration is not None else [],
        "ignore_marks": bool(ignore_marks),
    }
    image_info = {
        "name": blot.name,
        "path": str(blot.path) if blot.path else None,
        "sha256": blot.sha256,
        "shape": list(blot.data.shape),
        "channels": list(blot.channel_names),
        "bit_depth": blot.bit_depth,
        "full_scale": blot.full_scale,
        "source_format": blot.source_format,
        "lossy": blot.lossy,
        "polarity": polarity_used,
        "warnings": list(blot.warnings) + size_warnings,
    }
    mark_table = marks.table.assign(image=blot.name) if marks is not None else pd.DataFrame(
        columns=MARK_COLUMNS + ["image"])
    return QuantResult(lanes=lane_out[LANE_TABLE_COLUMNS], bands=bands[BAND_COLUMNS], image=image_info,
                       parameters=parameters, profiles=profiles, calibration=calibration,
                       marks=mark_table[["image"] + MARK_COLUMNS])


_ON_MARK = 0.25  # least share of a band's box covered by mark pixels for the band to be set aside


def _with_sizes(bands, calibration):
    """The bands table with ``kda`` and ``kda_sd`` from a blot's calibration, and warnings about it.

    Bands outside a ladder's range (or in a strip without one) keep empty
    sizes; how many, and why, is one warning per strip and reason.
    """
    bands = bands.copy()
    columns = (bands["x_left"].to_numpy(float) + bands["x_right"].to_numpy(float)) / 2.0
    estimate = calibration.size(bands["strip"].to_numpy(), bands["y"].to_numpy(float), columns)
    bands["kda"] = np.round(estimate.kda, 2)
    bands["kda_sd"] = np.round(estimate.kda_sd, 2)
    warnings = list(calibration.warnings)
    unsized = pd.DataFrame({"strip": bands["strip"].to_numpy(), "reason": estimate.reason})
    unsized = unsized[unsized["reason"] != ""]
    for (strip, reason), group in unsized.groupby(["strip", "reason"], sort=True):
        if reason == "no ladder in this strip":
            warnings.append(f"strip {strip}: no ladder, so its {len(group)} band(s) have no size")
        else:
            warnings.append(f"strip {strip}: {len(group)} band(s) lie {reason} and have no size (not extrapolated)")
    return bands, warnings


def _ladder_mark_records(marks):
    from .ladder import ladder_mark_records

    return ladder_mark_records(marks)


def _ladder_record(ladder):
    """The ladder asked for, as a JSON value: its name, or its sizes."""
    if ladder is None or isinstance(ladder, str):
        return ladder
    from .ladder import Ladder

    if isinstance(ladder, Ladder):
        return ladder.key if ladder.key != "custom" else list(ladder.kda)
    return [float(k) for k in ladder]


def _measure_channel(blot, signal, lane_table, *, lane_source, radius, method, review, band_rows,
                     band_rows_mode, min_snr, min_band_snr, min_relative_height, split_doublets=False):
    """Bands of every lane of one channel: rows of the bands table, and the lane profiles."""
    # Detection always works on the ball's residual; only the measurement follows ``method``.
    # Evaluated only where it is read (the lanes and their gaps): never a whole image of background.
    bg_image = rolling_ball_surface(signal, radius, intensity_scale=_ball_intensity_scale(blot, signal))
    quantum = 1.0 if np.issubdtype(blot.data.dtype, np.integer) else 0.0
    lane_records = lane_table.to_dict("records")
    lane_profiles, lane_pixels, lane_boxes = [], [], []
    gap_cache = {}
    for lane in lane_records:
        profile, pixels = lane_profile(signal, bg_image, lane, quantum=quantum)
        lane_profiles.append(profile)
        lane_pixels.append(pixels)
        gaps = None
        if lane_source == "detected":
            # Lanes drawn by a person or carried over from another image may
            # sit off the bands; only detected lanes have trustworthy gaps.
            strip_lanes = [other for other in lane_records if other["strip"] == lane["strip"]]
            gaps = gap_residual_profile(signal, bg_image, strip_lanes, strip_lanes.index(lane), cache=gap_cache)
        lane_boxes.append(_band_boxes(profile, lane, review, band_rows, min_snr, gaps, band_rows_mode))
    if band_rows is None:
        lane_boxes = _drop_implausible(lane_records, lane_profiles, lane_boxes, min_relative_height)
    lane_boxes = _harmonise(lane_records, lane_profiles, lane_boxes)

    rows = []
    for lane, profile, pixels, boxes in zip(lane_records, lane_profiles, lane_pixels, lane_boxes):
        y_mid = (lane["y_top"] + lane["y_bottom"]) / 2.0
        number = 0
        fits = {}
        if method == "fit":
            boxes, fits = _fit_boxes(profile, pixels, boxes, blot.full_scale,
                                     split=split_doublets and band_rows is None)
        band_free = _band_free_rows(profile.rows.size, boxes)
        for box in boxes:
            peak, top, bottom, source = box
            # Boxes the fit does not own (reviewed, forced, whole windows), and
            # fits that do not explain their profile, keep the box sum.
            volume, bg_sum = measure_band(profile, top, bottom, method=_BOX_METHOD.get(method, method),
                                          lane_pixels=pixels)
            fit = fits.get(box)
            fit_trusted = fit is not None and fit_is_trusted(fit, volume, _overlap(profile, peak, top, bottom))
            if fit_trusted:
                volume, bg_sum = fit.volume, fit.background
            n_pixels = (bottom - top + 1) * profile.width
            clipped = saturated_pixel_count(pixels, top, bottom, blot.full_scale)
            blob = largest_clipped_blob(pixels, top, bottom, blot.full_scale) if clipped >= MIN_CLIPPED_BLOB else 0
            y = band_centroid(profile, top, bottom, peak)
            shift = lane["slope"] * (y - y_mid)
            noise_volume = profile.noise * np.sqrt(n_pixels)
            snr = float(volume / noise_volume) if noise_volume > 0 else float("inf")
            # The spread is taken over the other estimators than the one that gave the volume.
            used = "fit" if fit_trusted else _BOX_METHOD.get(method, method)
            # The membrane's texture under a box this tall, measured on the lane's band-free rows,
            # where it is known: it exceeds the pixel noise's share on most real membranes.
            texture_sd = background_error_sd(profile.signal, band_free, bottom - top + 1)
            background_sd = max(noise_volume, texture_sd) if np.isfinite(texture_sd) else noise_volume
            volume_sd = _volume_sd(profile, top, bottom, pixels, volume, background_sd, used)
            if fit_trusted:
                volume_sd = float(np.hypot(volume_sd, fit.volume_sd))
            if band_rows is None and source == "detected" and snr < min_band_snr:
                continue
            number += 1
            rows.append(
                {
                    "strip": int(lane["strip"]),
                    "lane": int(lane["lane"]),
                    "band": number,
                    "y": round(y, 2),
                    "y_top": int(profile.rows[top]),
                    "y_bottom": int(profile.rows[bottom]),
                    "height": int(bottom - top + 1),
                    "x_left": round(lane["x_left"] + shift, 2),
                    "x_right": round(lane["x_right"] + shift, 2),
                    "volume": volume,
                    "volume_sd": volume_sd,
                    "background": bg_sum,
                    "peak": float(profile.robust[peak]),
                    "snr": snr,
                    "overlap": _overlap(profile, peak, top, bottom),
                    "fit_share": fit.own_share if fit_trusted else np.nan,
                    "fit_residual": fit.fit_residual if fit is not None else np.nan,
                    "saturated": bool(is_saturated(clipped, n_pixels, blob)),
                    "saturated_pixels": clipped,
                    "n_pixels": int(n_pixels),
                    "detected": source != "forced",
                }
            )
    profiles = {(int(lane["strip"]), int(lane["lane"])): profile for lane, profile in zip(lane_records, lane_profiles)}
    return rows, profiles


def _fit_boxes(profile, pixels, boxes, full_scale, *, split):
    """Profile fits of a lane's detected boxes; with ``split``, shoulders split into doublets first.

    Returns the boxes (split members in place of a split band) and a dict
    ``box -> BandFit``. Only bands the fit explains poorly (misfit above
    :data:`blotquant.profile_fit.MIN_SINGLE_MISFIT`) and that hold no
    clipped pixels (a flat, clipped top is misfit too, but one band) are
    tried as pairs, so the common case costs one fit.
    """
    fitted = [box for box in boxes if box[3] == "detected"]
    if not fitted:
        return boxes, {}
    fits = fit_lane_bands(profile.signal, profile.robust, [box[:3] for box in fitted], noise=profile.noise,
                          width=profile.width)
    if split:
        candidates = [box[:3] for box, fit in zip(fitted, fits)
                      if fit.fit_residual > MIN_SINGLE_MISFIT
                      and saturated_pixel_count(pixels, box[1], box[2], full_scale) == 0]
        split_boxes, shapes = split_shoulders(profile.signal, profile.robust, candidates, noise=profile.noise,
                                              width=profile.width, context=[box[:3] for box in fitted])
        if shapes:
            kept = [box for box in boxes if box[3] != "detected" or box[:3] not in candidates]
            boxes = sorted(kept + [(*box, "detected") for box in split_boxes if box not in kept],
                           key=lambda box: box[0])
            fitted = [box for box in boxes if box[3] == "detected"]
            fits = fit_lane_bands(profile.signal, profile.robust, [box[:3] for box in fitted],
                                  noise=profile.noise, width=profile.width, shapes=shapes)
    return boxes, dict(zip(fitted, fits))


#: The box method standing in for a profile method where there is no fitted band to measure.
_BOX_METHOD = {"fit": "beyond"}

#: Background estimators whose spread under a band measures how far its background is known.
_PLAUSIBLE_BACKGROUNDS = ("valley", "beyond", "border_median")


def _band_free_rows(n_rows, boxes):
    """Rows of a lane outside every band box, with a margin of a third of the box's height around it."""
    free = np.ones(n_rows, bool)
    for _, top, bottom, _ in boxes:
        margin = max(2, (bottom - top + 1) // 3)
        free[max(0, top - margin) : bottom + margin + 1] = False
    return free


def _volume_sd(profile, top, bottom, pixels, volume, noise_volume, method):
    """Standard uncertainty of a band volume: background noise and the spread of plausible backgrounds.

    ``noise_volume`` is the background's own uncertainty over the box (the
    pixel noise, or the membrane texture measured beside the band where that
    is larger: :func:`blotquant.bands.background_error_sd`); the background
    under a band is not known better than the estimators users trust
    disagree, so the sample standard deviation of the volumes under
    :data:`_PLAUSIBLE_BACKGROUNDS`, the chosen method and the chosen method
    on a window a quarter taller at each end is added in quadrature.
    """
    volumes = [volume] + [measure_band(profile, top, bottom, method=other, lane_pixels=pixels)[0]
                          for other in _PLAUSIBLE_BACKGROUNDS if other != method]
    # A window a quarter taller at each end is as plausible a box: what it adds
    # (a tail, a flank) is as uncertain as the background.
    reach = max(1, (bottom - top + 1) // 4)
    wider_top, wider_bottom = max(0, top - reach), min(profile.rows.size - 1, bottom + reach)
    if method != "none":
        volumes.append(measure_band(profile, wider_top, wider_bottom, method=_BOX_METHOD.get(method, method),
                                    lane_pixels=pixels)[0])
    spread = float(np.std(volumes, ddof=1)) if len(volumes) > 1 else 0.0
    return float(np.hypot(noise_volume, spread))


def _overlap(profile, peak, top, bottom):
    """Profile height at the band's higher limit as a share of its peak.

    Near 0 for a band that fades out inside its box; 0.3 or more when a
    neighbouring band runs into it (or a window cuts it), so that its volume
    holds part of the neighbour or misses part of its own tail.
    """
    height = profile.robust[peak]
    if height <= 0:
        return float("nan")
    edge = max(profile.robust[top], profile.robust[bottom], 0.0)
    return round(float(edge / height), 3)


def _as_blot_image(image, *, max_pixels):
    if isinstance(image, BlotImage):
        return image
    if isinstance(image, (str, Path)):
        return read_image(image, max_pixels=max_pixels)
    if isinstance(image, np.ndarray):
        return image_from_array(image)
    raise ParameterError(f"quantify takes a file path, a BlotImage or an array, not {type(image).__name__}")


def _select_channels(blot, channel):
    if channel is None:
        return list(blot.default_channels)
    if isinstance(channel, str):
        if channel not in blot.channel_names:
            raise ParameterError(
                f"{blot.name}: no channel named {channel!r}; it has {', '.join(blot.channel_names)}"
            )
        return [blot.channel_names.index(channel)]
    if not 0 <= int(channel) < len(blot.channel_names):
        raise ParameterError(f"{blot.name}: channel {channel} does not exist; it has {len(blot.channel_names)}")
    return [int(channel)]


def _check_band_rows(band_rows, height):
    try:
        top, bottom = (int(v) for v in band_rows)
    except (TypeError, ValueError):
        raise ParameterError(f"band_rows must be two row numbers [top, bottom], got {band_rows!r}") from None
    if not 0 <= top < bottom < height:
        raise ParameterError(f"band_rows {top}-{bottom} are not inside an image {height} pixels high")
    return top, bottom


def _ball_intensity_scale(blot, signal):
    """Roll every image as its 16-bit equivalent (see rolling_ball_background)."""
    ceiling = blot.full_scale or float(np.max(signal)) or 1.0
    return 65535.0 / ceiling


def _auto_radius(signal, lane_table):
    """Rolling-ball radius: three band heights (FWHM) from a quick first pass.

    Only peaks that stand 10 noise sigmas out of the lane profile are
    measured: on a real chemiluminescence capture the noise wiggles, a few
    rows wide, outnumber the bands, and a ball sized from them (about 10 px)
    rolls into wide bands and takes a third of their volume.
    """
    widths = []
    for lane in lane_table.to_dict("records"):
        rows, first, width = lane_columns(lane, signal.shape)
        columns = np.linspace(0, width - 1, min(9, width)).round().astype(int)
        profile = median(np.concatenate([signal[row : row + stop - start, column + columns]
                                         for start, stop, row, column in lane_row_runs(rows, first)]), axis=1,
                         overwrite_input=True)
        # Smoothing with sigma 1 row keeps 0.53 of white noise.
        noise = 0.53 * difference_noise_sigma(profile)
        profile = gaussian_filter1d(profile - np.percentile(profile, 10), 1.0)
        if profile.max() <= 0:
            continue
        peaks, _ = find_peaks(profile, prominence=max(0.2 * profile.max(), 10.0 * noise), width=1.5)
        if peaks.size:
            widths.extend(peak_widths(profile, peaks, rel_height=0.5)[0].tolist())
    fwhm = float(np.median(widths)) if widths else 0.02 * signal.shape[0]
    return float(np.clip(3.0 * fwhm, 10.0, 0.5 * min(signal.shape)))


def _resolve_review(review, blot):
    if review is None:
        return None
    if isinstance(review, Review):
        review.check_image(blot)
        return review
    if review == "auto":
        if blot.path is None:
            return None
        path = find_review(blot.path)
        if path is None:
            return None
        review = path
    loaded = load_review(review)
    loaded.check_image(blot)
    return loaded


def _band_boxes(profile, lane, review_obj, band_rows, min_snr, gap_profile=None, band_rows_mode="band"):
    """(peak, top, bottom, source) of each band to measure in one lane.

    ``source`` is "detected", "manual" (a reviewed box), "window" (the
    whole ``band_rows`` window, asked for) or "forced" (the whole window of
    a lane where no band was found).
    """
    manual = review_obj.bands_for(int(lane["strip"]), int(lane["lane"])) if review_obj is not None else None
    first_row = int(profile.rows[0])
    last_index = profile.rows.size - 1
    if manual is not None:
        boxes = []
        for y_top, y_bottom in manual:
            top = int(np.clip(y_top - first_row, 0, last_index))
            bottom = int(np.clip(y_bottom - first_row, top, last_index))
            peak = top + int(np.argmax(profile.robust[top : bottom + 1]))
            boxes.append((peak, top, bottom, "manual"))
        return boxes
    if band_rows is not None and (band_rows[1] < profile.rows[0] or band_rows[0] > profile.rows[-1]):
        return []  # the window lies in another membrane strip of the image
    found = reject_off_lane_peaks(profile, gap_profile, find_band_peaks(profile, min_snr=min_snr, window=band_rows))
    if band_rows is None:
        return [(peak, top, bottom, "detected") for peak, top, bottom in found]
    if band_rows_mode == "window":
        top = int(np.clip(band_rows[0] - first_row, 0, last_index))
        bottom = int(np.clip(band_rows[1] - first_row, top, last_index))
        peak = top + int(np.argmax(profile.robust[top : bottom + 1]))
        return [(peak, top, bottom, "window" if found else "forced")]
    if found:
        peak, top, bottom = max(found, key=lambda band: profile.robust[band[0]])
        return [(peak, top, bottom, "detected")]
    top = int(np.clip(band_rows[0] - first_row, 0, last_index))
    bottom = int(np.clip(band_rows[1] - first_row, top, last_index))
    peak = top + int(np.argmax(profile.robust[top : bottom + 1]))
    return [(peak, top, bottom, "forced")]


def _harmonise(lane_records, lane_profiles, lane_boxes):
    """One integration window per band row and strip (detected bands only)."""
    result = list(lane_boxes)
    strips = sorted({lane["strip"] for lane in lane_records})
    for strip in strips:
        members = [i for i, lane in enumerate(lane_records) if lane["strip"] == strip]
        # Reviewed boxes and forced windows are kept exactly as they are.
        members = [i for i in members if all(box[3] == "detected" for box in lane_boxes[i])]
        found = [[box[:3] for box in lane_boxes[i]] for i in members]
        if not any(found):
            continue
        adjusted = harmonise_band_windows([lane_profiles[i] for i in members], found)
        for i, boxes in zip(members, adjusted):
            result[i] = [(p, t, b, "detected") for p, t, b in boxes]
    return result


_MAX_LINE_WIDTH = 5.0  # FWHM (rows, after the detection smoothing) below which a narrow peak is a drawn line


def _drop_implausible(lane_records, lane_profiles, lane_boxes, min_relative_height):
    """Drop detected peaks that are membrane texture rather than protein.

    Peaks fainter than ``min_relative_height`` of the strip's strongest band
    go (too faint to quantify, and far more often film grain or texture), and
    so do faint peaks whose width (FWHM) is unlike that of the strip's strong
    bands, which ran through the same gel: swells 2.5 times wider are blotches
    the background estimate could not follow, spikes under 0.35 times as wide
    are noise, specks or scratches. Peaks of any strength under 0.3 times
    the typical width and 5 rows tall are drawn lines (a box edge burned into
    an export, a ruler). A band of interest that faint is still measured when
    its rows are given (``band_rows``).
    """
    result = list(lane_boxes)
    for strip in {lane["strip"] for lane in lane_records}:
        members = [i for i, lane in enumerate(lane_records) if lane["strip"] == strip]
        found = [(i, box) for i in members for box in lane_boxes[i] if box[3] == "detected"]
        if not found:
            continue
        heights = np.array([lane_profiles[i].robust[box[0]] for i, box in found])
        # Widths on the profile the peaks were found on (smoothed as in find_band_peaks).
        smoothed = {i: gaussian_filter1d(lane_profiles[i].robust, 1.5) for i in members}
        widths = np.array([peak_widths(smoothed[i], [box[0]], rel_height=0.5)[0][0] for i, box in found])
        strongest = heights.max()
        typical_width = np.median(widths[heights >= 0.5 * strongest])
        keep = heights >= min_relative_height * strongest
        # A band leaning on a neighbour has no width of its own to judge.
        isolated = np.array([max(smoothed[i][box[1]], smoothed[i][box[2]]) < 0.3 * smoothed[i][box[0]]
                             for i, box in found])
        faint = heights < 0.3 * strongest
        keep &= ~(faint & isolated & ((widths > 2.5 * typical_width) | (widths < 0.35 * typical_width)))
        # A line a few pixels tall across the lane, however dark, is a drawn
        # box edge, a ruler or a crease, not protein: bands are far taller.
        keep &= ~((widths < 0.3 * typical_width) & (widths < _MAX_LINE_WIDTH))
        dropped = {(i, box) for (i, box), kept in zip(found, keep) if not kept}
        for i in members:
            result[i] = [box for box in lane_boxes[i] if (i, box) not in dropped]
    return result


def _apply_exclusions(bands, lane_table, review_obj):
    bands = bands.copy()
    lanes = lane_table.copy()
    bands["excluded"] = False
    bands["exclusion_reason"] = ""
    lanes["excluded"] = False
    lanes["exclusion_reason"] = ""
    if review_obj is None:
        return bands, lanes
    for item in review_obj.exclusions:
        lane_match = (lanes["strip"] == item["strip"]) & (lanes["lane"] == item["lane"])
        band_match = (bands["strip"] == item["strip"]) & (bands["lane"] == item["lane"])
        if item.get("band") is None:
            lanes.loc[lane_match, ["excluded", "exclusion_reason"]] = [True, item["reason"]]
        else:
            band_match &= bands["band"] == item["band"]
        bands.loc[band_match, ["excluded", "exclusion_reason"]] = [True, item["reason"]]
    return bands, lanes
