"""Studies: a folder of blot images plus a sample sheet and a lane layout, run end to end.

A study is described by ``study.toml`` (images, blots, targets, roles, band windows),
``samples.csv`` (one row per tissue sample with its dosing and collection times) and
``layout.csv`` (which sample sits in which lane of which blot). :func:`blotquant.study_files.load_study`
reads and checks all three (see :mod:`blotquant.study_files`); :func:`run_study` quantifies every image (lanes are found once per blot and carried
to the blot's other images, registered for a re-probed membrane that was imaged
shifted or turned, see :mod:`blotquant.registration`), then normalises, times, summarises, flags, plots and reports.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from ._shared import safe_file_stem
from .errors import BlotQuantError, StudyError
from .executors import default_jobs, describe_executor, run_tasks
from .flags import (
    collect_flags,
    flag_band_quality,
    flag_band_size,
    flag_collection_drift,
    flag_cross_blot_without_calibrator,
    flag_image_warnings,
    flag_loading_variation,
    flag_no_time_matched_control,
    flag_outside_kinetic_window,
    flag_outside_linear_range,
    flag_peak_not_sampled,
    flag_reference_ambiguous,
    flag_time_order,
)
from .kinetics import kinetics_for_targets
from .normalise import (
    LOADING_ROLES,
    SPECIAL_LANES,
    label_lane_signals,
    normalise_lane_signals,
    sample_values,
)
from .output import (
    environment_record,
    final_path,
    locked_output_dir,
    results_subfolder,
    sha256_of_file,
    write_json,
    write_table,
)
from .policy import (
    affected_values,
    apply_analysis_policy,
    assign_timepoints,
    sensitivity_table,
)
from .registration import (
    _GEOMETRY_COLUMNS,
    MIN_REGISTRATION_SCORE,
    _rotation_from_tilts,
    estimate_image_offset,
    transform_lane_geometry,
)
from .statistics import (
    analysed_values,
    calibrator_linear_range,
    peak_and_return,
    summarise_timecourse,
)
from .study_files import Study, load_study
from .timing import (
    collection_drift,
    compare_time_references,
    inferred_time_reference,
    post_dose_minutes,
)

# ---------------------------------------------------------------------------
# Quantifying the images of one blot


def loaded_lane_span(layout_of_blot):
    """First and last lane of a blot that is not marked ``empty`` in the layout.

    An empty lane at the edge of a blot shows nothing, so the lane finder cannot tell
    whether it lies left or right of the loaded lanes; lanes are therefore detected over
    the loaded span only (empty lanes inside it are placed by the regular lane grid).
    """
    loaded = layout_of_blot.loc[layout_of_blot["sample_id"] != "empty", "lane"]
    if loaded.empty:
        return int(layout_of_blot["lane"].min()), int(layout_of_blot["lane"].max())
    return int(loaded.min()), int(loaded.max())


def quantify_blot(images_of_blot, layout_of_blot, quantify_options, overlay_dir=None):
    """Quantify every image of one blot on one shared lane layout.

    Lanes are detected once, on the blot's loading image (the number of lanes taken
    from the layout); every other image gets that geometry moved by the offset
    :func:`estimate_image_offset` finds between the two images (channels of one file
    share it unchanged).

    Parameters
    ----------
    images_of_blot : pandas.DataFrame
        Rows of :attr:`Study.images` for one blot.
    layout_of_blot : pandas.DataFrame
        Rows of :attr:`Study.layout` for that blot.
    quantify_options : dict
        Extra keyword arguments for :func:`blotquant.quantify`.
    overlay_dir : str or Path, optional
        Where to draw each image with the lanes and bands used
        (``<blot>_<target>.overlay.png``), so a person can check the lanes at a glance.

    Returns
    -------
    bands : pandas.DataFrame
        The quantification bands of every image (one per lane), with the study columns
        ``file``, ``blot``, ``target``, ``role``, ``total_target`` in front.
    lanes : pandas.DataFrame
        The lane geometry used on every image, with ``file``, ``blot``, ``target``.
    records : list of dict
        Per image: file, target, role, SHA-256, shape, polarity, warnings, the offset
        used, the overlay file, and the parameters of the quantification.
    """
    from .io import read_image, to_signal
    from .overlay import render_overlay
    from .pipeline import quantify

    options = dict(quantify_options)
    max_pixels = options.pop("max_pixels", None)
    images_of_blot = images_of_blot.copy()
    images_of_blot["is_reference"] = images_of_blot["role"].isin(LOADING_ROLES)
    images_of_blot = images_of_blot.sort_values("is_reference", ascending=False, kind="stable")
    first_lane, last_lane = loaded_lane_span(layout_of_blot)
    n_lanes = last_lane - first_lane + 1
    ladder_lanes = sorted(set(layout_of_blot.loc[layout_of_blot["sample_id"] == "ladder", "lane"].astype(int)))
    opened = {}

    def plane_of(entry):
        where = f"study.toml: [[image]] {entry['number']} ({entry['file']})"
        if entry["path"] not in opened:
            opened[entry["path"]] = read_image(entry["path"], max_pixels=max_pixels)
        image = opened[entry["path"]]
        channel = entry["channel"]
        if channel is None and len(image.default_channels) > 1:
            names = ", ".join(image.channel_names[i] for i in image.default_channels)
            raise StudyError(f"{where}: the image holds {len(image.default_channels)} channels ({names}); "
                             "say which one shows this target with channel = <number from 0 or name>")
        try:
            plane = image.channel(image.default_channels[0] if channel is None else channel)
        except BlotQuantError as exc:
            raise StudyError(f"{where}: {exc}; fix channel") from None
        if entry["band_bottom"] >= plane.shape[0]:
            raise StudyError(f"{where}: band_rows [{entry['band_top']}, {entry['band_bottom']}] reach below the "
                             f"image, which has rows 0-{plane.shape[0] - 1}; fix band_rows")
        return image, plane

    band_tables, lane_tables, records = [], [], []
    reference = None
    for _, entry in images_of_blot.iterrows():
        image, plane = plane_of(entry)
        channel = entry["channel"]
        offset = None
        try:
            if reference is None:
                result = _measure_image(quantify, image, entry, _image_options(options, entry),
                                        ladder_lanes=[n - first_lane + 1 for n in ladder_lanes],
                                        lanes=n_lanes, channel=channel)
                # Detected lanes are numbered from 1; the layout numbers them from its first loaded lane.
                result.lanes["lane"] += first_lane - 1
                result.bands["lane"] += first_lane - 1
                geometry = result.lanes[_GEOMETRY_COLUMNS]
                reference = (entry, plane, geometry)
            else:
                ref_entry, ref_plane, ref_geometry = reference
                if entry["path"] == ref_entry["path"]:
                    offset = {"dy": 0.0, "dx": 0.0, "rotation_deg": 0.0, "score": None,
                              "method": "same file"}
                    geometry = ref_geometry
                elif plane.shape != ref_plane.shape:
                    raise StudyError(
                        f"{entry['file']} (blot {entry['blot']}): is {plane.shape[1]}x{plane.shape[0]} pixels but "
                        f"{ref_entry['file']} of the same blot is {ref_plane.shape[1]}x{ref_plane.shape[0]}; "
                        "export every image of a blot at the same size (no cropping)")
                else:
                    rotation = _rotation_from_tilts(geometry_slope=float(ref_geometry["slope"].median()),
                                                    plane=plane, full_scale=image.full_scale, n_lanes=n_lanes)
                    offset = estimate_image_offset(ref_plane, plane, rotation_deg=rotation)
                    offset["method"] = ("lane tilt + phase correlation" if rotation is not None
                                        else "phase correlation")
                    if offset["score"] < MIN_REGISTRATION_SCORE:
                        offset.update(dy=0.0, dx=0.0, rotation_deg=0.0, method="assumed aligned (weak match)")
                    geometry = transform_lane_geometry(ref_geometry, offset, plane.shape)
                result = _measure_image(quantify, image, entry, _image_options(options, entry),
                                        ladder_lanes=ladder_lanes, lane_geometry=geometry, channel=channel)
        except StudyError:
            raise
        except BlotQuantError as exc:
            raise type(exc)(f"{entry['file']} (blot {entry['blot']}, {entry['target']}): {exc}") from None
        overlay = None
        if overlay_dir is not None:
            overlay = f"{safe_file_stem(entry['blot'])}_{safe_file_stem(entry['target'])}.overlay.png"
            signal, _ = to_signal(plane, polarity=result.image["polarity"], full_scale=image.full_scale)
            render_overlay(signal, result, Path(overlay_dir) / overlay,
                           title=f"{entry['file']}: {entry['target']} (blot {entry['blot']})")
        study_columns = {"file": entry["file"], "blot": entry["blot"], "target": entry["target"],
                         "role": entry["role"], "total_target": entry["total_target"]}
        band_tables.append(result.bands.assign(**study_columns)[[*study_columns, *result.bands.columns]])
        lane_tables.append(result.lanes.assign(file=entry["file"], blot=entry["blot"], target=entry["target"]))
        records.append({
            "number": int(entry["number"]), "file": entry["file"], "blot": entry["blot"],
            "target": entry["target"], "role": entry["role"], "channel": channel,
            "band_rows": result.parameters.get("band_rows_from_kda")
            or [int(entry["band_top"]), int(entry["band_bottom"])],
            "band_kda": None if not np.isfinite(entry.get("band_kda") or np.nan) else float(entry["band_kda"]),
            "band_rows_mode": result.parameters.get("band_rows_mode"),
            "sha256": result.image.get("sha256"), "shape": result.image.get("shape"),
            "bit_depth": result.image.get("bit_depth"), "polarity": result.image.get("polarity"),
            "warnings": list(result.image.get("warnings", [])),
            "lanes_from": "detected" if offset is None else f"{reference[0]['file']} ({offset['method']})",
            "offset": offset, "overlay": overlay, "parameters": result.parameters,
            "review": result.parameters.get("review"),
        })
    return pd.concat(band_tables, ignore_index=True), pd.concat(lane_tables, ignore_index=True), records


def _measure_image(quantify, image, entry, options, *, ladder_lanes, **lanes):
    """Quantify one study image: in its ``band_rows``, or at the rows its ``band_kda`` sits at.

    With ``band_kda`` and no ``band_rows``, a first pass finds every band and sizes it
    from the blot's ladder lanes; the rows of the bands within the size tolerance in the
    sample lanes become the band window of the second pass, which measures one band per
    lane there as ``band_rows`` would. The bands table gains ``band_kda`` and
    ``size_candidates`` (the sizes of every band within the tolerance in that lane, ``;``
    joined), which :func:`blotquant.flags.flag_band_size` reads.
    """
    band_kda = entry.get("band_kda")
    if band_kda is None or not np.isfinite(band_kda):
        return quantify(image, band_rows=(entry["band_top"], entry["band_bottom"]), **lanes, **options)
    ladder = entry.get("ladder") or None
    sizing = dict(ladder=ladder, ladder_lane=ladder_lanes)
    tolerance = float(entry["band_kda_tolerance"])
    where = f"{entry['file']} (blot {entry['blot']}, {entry['target']})"
    survey = quantify(image, **lanes, **{k: v for k, v in options.items() if k != "band_rows_mode"}, **sizing)
    bands = survey.bands
    ratio = bands["kda"] / band_kda
    # The lane numbers the survey used for its ladders are the ladder lanes passed in.
    in_ladder = bands["lane"].isin(ladder_lanes)
    near = bands[~in_ladder & (ratio >= 1 / (1 + tolerance)) & (ratio <= 1 + tolerance)]
    if entry.get("band_rows_given"):
        window = (entry["band_top"], entry["band_bottom"])
    elif near.empty:
        found = ", ".join(f"{k:.0f}" for k in sorted(bands.loc[~in_ladder, "kda"].dropna().unique())[:12])
        raise StudyError(f"{where}: no band within {100 * tolerance:.0f}% of {band_kda:g} kDa in any lane "
                         f"(sizes found: {found or 'none, the ladder could not size any band'}); check band_kda "
                         "and the ladder on the overlay, or give band_rows")
    else:
        window = (int(np.floor(near["y_top"].min())), int(np.ceil(near["y_bottom"].max())))
    lane_geometry = lanes.get("lane_geometry")
    if lane_geometry is None:
        lane_geometry = survey.lanes[_GEOMETRY_COLUMNS]
    result = quantify(image, band_rows=window, lane_geometry=lane_geometry, channel=lanes.get("channel"),
                      **options, **sizing)
    candidates = near.groupby(["strip", "lane"])["kda"].agg(lambda k: ";".join(f"{v:.1f}" for v in sorted(k)))
    keys = list(zip(result.bands["strip"], result.bands["lane"]))
    result.bands["size_candidates"] = [candidates.get(key, "") for key in keys]
    result.bands["band_kda"] = band_kda
    result.bands["band_kda_tolerance"] = tolerance
    result.parameters["band_rows_from_kda"] = None if entry.get("band_rows_given") else list(window)
    return result


def _image_options(options, entry):
    """The study's [quantify] options, with this image's own band_rows_mode.

    An image's own ``band_rows_mode`` wins; a total-protein stain is a whole
    lane's worth of bands, so its window is integrated whole unless the
    image says otherwise.
    """
    mode = entry.get("band_rows_mode")
    if isinstance(mode, str):
        return {**options, "band_rows_mode": mode}
    if entry.get("role") == "total_protein":
        return {**options, "band_rows_mode": "window"}
    return options


def _quantify_blot_task(arguments):
    return quantify_blot(*arguments)


def quantify_study_images(study, *, jobs=None, progress=False, overlay_dir=None, executor=None):
    """Quantify every blot of a study, in parallel across blots.

    Parameters
    ----------
    study : Study
    jobs : int, optional
        Local worker processes when no ``executor`` is given (default: one per core,
        at most one per blot).
    progress : bool
        Show a progress bar (images done) when standard error is a terminal.
    overlay_dir : path, optional
        Where each worker writes its images' overlays.
    executor : concurrent.futures.Executor or distributed.Client, optional
        Where the blots are quantified (see :func:`blotquant.executors.run_tasks`).

    Returns
    -------
    tuple
        ``(bands, lanes, records)`` as :func:`quantify_blot` returns, for all blots, in
        the study's order whatever order the blots finished in.

    Raises
    ------
    BlotQuantError
        The first blot that could not be quantified (a study needs every image), or a
        blot whose worker died.
    """
    tasks = [(entries, study.layout[study.layout["blot"] == blot], study.quantify_options, overlay_dir)
             for blot, entries in study.images.groupby("blot", sort=False)]
    workers = default_jobs(jobs, len(tasks))
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(study.images), desc="images", unit="image", file=sys.stderr)
    results = [None] * len(tasks)
    try:
        for index, result, error in run_tasks(_quantify_blot_task, tasks, executor=executor, jobs=workers):
            if error is not None:
                if isinstance(error, BlotQuantError):
                    raise error
                entries = tasks[index][0]
                raise BlotQuantError(
                    f"blot {entries['blot'].iloc[0]}: its worker failed ({type(error).__name__}: {error}); "
                    "run the study again, with fewer --jobs if memory is short") from None
            results[index] = result
            if bar is not None:
                bar.update(len(tasks[index][0]))
    finally:
        if bar is not None:
            bar.close()
    bands = pd.concat([r[0] for r in results], ignore_index=True)
    lanes = pd.concat([r[1] for r in results], ignore_index=True)
    records = [record for r in results for record in r[2]]
    return bands, lanes, records


# ---------------------------------------------------------------------------
# Analysis (pure: bands in, tables out)


@dataclass
class StudyResult:
    """Every table a study run produced; the same tables are written to ``out_dir``.

    Attributes
    ----------
    study : Study
    bands, lanes : pandas.DataFrame
        Quantification of every image (``bands.csv``, ``lanes.csv``).
    lane_signals : pandas.DataFrame
        Per image and lane: the band with its layout label (sample, calibrator).
    normalised_lanes : pandas.DataFrame
        Per target and lane: loading factor, normalised value, ratio, calibration.
    normalized : pandas.DataFrame
        One row per sample and target (``normalized.csv``).
    timecourse : pandas.DataFrame
        Per target, group and analysed timepoint (``timecourse.csv``): the primary analysis.
    sensitivity : pandas.DataFrame
        The primary fold changes beside those with every sample included at its planned
        time (``sensitivity.csv``, :func:`blotquant.policy.sensitivity_table`).
    peaks : pandas.DataFrame
        Observed peak and return-to-baseline times (``peaks.csv``).
    linearity : pandas.DataFrame
        Calibrator dilution-series linear ranges (``linearity.csv``).
    kinetics : pandas.DataFrame
        Expected kinetics of the study's targets.
    flags : pandas.DataFrame
        ``flags.csv``.
    images : list of dict
        Per image provenance (hash, offset, parameters).
    figures : dict
        ``{target: {"png": path, "svg": path}}`` once written.
    out_dir : pathlib.Path or None
    executor : dict
        What quantified the images (:func:`blotquant.executors.describe_executor`).
    """

    study: Study
    bands: pd.DataFrame
    lanes: pd.DataFrame
    lane_signals: pd.DataFrame
    normalised_lanes: pd.DataFrame
    normalized: pd.DataFrame
    timecourse: pd.DataFrame
    sensitivity: pd.DataFrame
    peaks: pd.DataFrame
    linearity: pd.DataFrame
    kinetics: pd.DataFrame
    flags: pd.DataFrame
    images: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    out_dir: Path | None = None
    executor: dict = field(default_factory=dict)


def _where_loaded(layout):
    """Per sample: the blot(s) and lane(s) it was loaded in, as text."""
    lanes = layout[~layout["sample_id"].isin(SPECIAL_LANES)]
    return lanes.groupby("sample_id").agg(blot=("blot", lambda blots: ";".join(map(str, blots))),
                                          lane=("lane", lambda numbers: ";".join(map(str, numbers)))).reset_index()


def _time_reference_read_from_stamps(study):
    """The study with the time reference its time stamps fit, when study.toml does not say.

    Returns ``(study, comparison)``; ``comparison`` is
    :func:`blotquant.timing.compare_time_references` when infusions make the reference
    matter and none is declared, else None.
    """
    long_infusions = study.samples["infusion_min"].fillna(0) > study.thresholds["max_bolus_min"]
    if study.time_reference_given or not long_infusions.any():
        return study, None
    comparison = compare_time_references(study.samples, tolerance_min=study.thresholds["collection_drift_min"],
                                         tolerance_fraction=study.thresholds["collection_drift_fraction"])
    fitting = inferred_time_reference(comparison)
    if fitting is None:
        return study, comparison
    return replace(study, time_reference=fitting, time_reference_inferred=True), comparison


def analyse_study(study, bands, *, lanes=None, images=None):
    """Turn per-lane band measurements of a study into every result table.

    Pure: no file is read or written, so tests can feed hand-made bands.

    Parameters
    ----------
    study : Study
    bands : pandas.DataFrame
        One band per image and lane, with the study columns ``blot``, ``target``,
        ``role``, ``total_target`` (as :func:`quantify_blot` returns).
    lanes : pandas.DataFrame, optional
        Lane geometry, carried into the result.
    images : list of dict, optional
        Image records from :func:`quantify_blot`; their warnings become flags.

    Returns
    -------
    StudyResult
    """
    thresholds = study.thresholds
    tolerance = dict(tolerance_min=thresholds["collection_drift_min"],
                     tolerance_fraction=thresholds["collection_drift_fraction"])
    study, comparison = _time_reference_read_from_stamps(study)
    lane_signals = label_lane_signals(bands, study.layout)
    timed = post_dose_minutes(study.samples, time_reference=study.time_reference)
    normalised_lanes = normalise_lane_signals(lane_signals)
    measured = sample_values(normalised_lanes, timed)
    kinetics = kinetics_for_targets(measured["target"].unique(), study.expected_kinetics)
    linearity = calibrator_linear_range(lane_signals, min_r_squared=thresholds["linear_min_r_squared"],
                                        max_residual=thresholds["linear_max_residual"])
    where = _where_loaded(study.layout)
    drift = collection_drift(timed, **tolerance)
    timepoints = assign_timepoints(timed, mode=study.timepoint, **tolerance)
    image_warnings = pd.DataFrame(
        [{"file": r["file"], "blot": r["blot"], "target": r["target"], "warning": w}
         for r in (images or []) for w in r.get("warnings", [])],
        columns=["file", "blot", "target", "warning"])
    # Flags on the measurements and the times decide the analysis policy ...
    sample_flags = collect_flags([
        flag_time_order(timed, where),
        flag_reference_ambiguous(timed, reference_given=study.time_reference_given,
                                 reference_used=study.time_reference,
                                 reference_inferred=study.time_reference_inferred, comparison=comparison,
                                 max_bolus_min=thresholds["max_bolus_min"]),
        flag_collection_drift(timed, drift, where, timepoints),
        flag_outside_kinetic_window(measured, kinetics, control_group=study.control_group,
                                    margin_min=thresholds["collection_drift_min"],
                                    margin_fraction=thresholds["collection_drift_fraction"]),
        flag_band_quality(lane_signals, min_snr=thresholds["min_snr"], max_overlap=thresholds["band_max_overlap"]),
        flag_loading_variation(lane_signals, study.samples, max_cv=thresholds["loading_max_cv"],
                               max_lane_ratio=thresholds["loading_max_lane_ratio"],
                               max_group_p=thresholds["loading_group_p"]),
        flag_cross_blot_without_calibrator(normalised_lanes),
        flag_outside_linear_range(lane_signals, linearity),
        flag_image_warnings(image_warnings),
        flag_band_size(lane_signals),
    ])
    normalized = apply_analysis_policy(measured, timepoints, affected_values(sample_flags, normalised_lanes),
                                       exclude_flagged=study.exclude_flagged)
    # ... and the timepoints left after it are what the design flags judge.
    flags = collect_flags([
        sample_flags,
        flag_no_time_matched_control(analysed_values(normalized), control_group=study.control_group),
        flag_peak_not_sampled(measured, kinetics, control_group=study.control_group),
    ])
    timecourse = summarise_timecourse(normalized, control_group=study.control_group, p_adjust=study.p_adjust)
    every_sample = summarise_timecourse(measured, control_group=study.control_group, p_adjust=study.p_adjust)
    sensitivity = sensitivity_table(timecourse, every_sample, control_group=study.control_group)
    directions = dict(zip(kinetics["target"], kinetics["direction"]))
    peaks = peak_and_return(normalized, timecourse, control_group=study.control_group, directions=directions,
                            n_boot=study.bootstrap, seed=study.seed)
    return StudyResult(
        study=study, bands=bands, lanes=lanes if lanes is not None else pd.DataFrame(),
        lane_signals=lane_signals, normalised_lanes=normalised_lanes, normalized=normalized,
        timecourse=timecourse, sensitivity=sensitivity, peaks=peaks, linearity=linearity, kinetics=kinetics,
        flags=flags, images=list(images or []),
    )


# ---------------------------------------------------------------------------
# Writing the results


def _csv_ready(table):
    """Date-times as ISO text so CSV readers everywhere agree."""
    table = table.copy()
    for column in table.columns:
        if pd.api.types.is_datetime64_any_dtype(table[column]):
            table[column] = table[column].map(lambda t: "" if pd.isna(t) else t.isoformat())
    return table


def run_record(result):
    """The ``run.json`` content: inputs with hashes, parameters, versions, per-image provenance."""
    study = result.study
    return {
        "blotquant_version": __version__,
        "command": "study",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "study": {
            "name": study.name,
            "file": str(study.path),
            "time_reference": study.time_reference,
            "time_reference_given": study.time_reference_given,
            "time_reference_inferred": study.time_reference_inferred,
            "timepoint": study.timepoint,
            "exclude_flagged": study.exclude_flagged,
            "control_group": study.control_group,
            "p_adjust": study.p_adjust,
            "bootstrap": study.bootstrap,
            "seed": study.seed,
            "thresholds": study.thresholds,
            "quantify_options": study.quantify_options,
        },
        "inputs": {role: {"path": str(path), "sha256": sha256_of_file(path)}
                   for role, path in study.input_files.items()},
        "images": [{k: v for k, v in record.items()} for record in result.images],
        "executor": result.executor,
        "environment": environment_record(),
    }


def write_study_outputs(result, out_dir):
    """Write every table, the plots, ``run.json`` and ``report.html`` of a study run.

    ``out_dir`` must already be prepared (see :func:`blotquant.output.prepare_output_dir`).
    """
    from .plots import save_timecourse_figures
    from .report import write_report

    out_dir = Path(out_dir)
    write_table(result.bands, out_dir / "bands.csv")
    if not result.lanes.empty:
        write_table(result.lanes, out_dir / "lanes.csv")
    write_table(_csv_ready(result.normalized), out_dir / "normalized.csv")
    write_table(result.timecourse, out_dir / "timecourse.csv")
    write_table(result.sensitivity, out_dir / "sensitivity.csv")
    write_table(result.peaks, out_dir / "peaks.csv")
    if not result.linearity.empty:
        write_table(result.linearity, out_dir / "linearity.csv")
    write_table(result.flags, out_dir / "flags.csv")
    result.figures = save_timecourse_figures(result, results_subfolder(out_dir, "plots"))
    record = run_record(result)
    write_json(record, out_dir / "run.json")
    write_report(result, out_dir / "report.html", run=record)
    result.out_dir = out_dir
    return result


def run_study(study_file, out_dir, *, force=False, jobs=None, progress=True, overlays=True, executor=None):
    """Run a whole study: quantify, normalise, time, summarise, flag, plot and report.

    Parameters
    ----------
    study_file : str or Path
        The study's ``study.toml`` (or its folder).
    out_dir : str or Path
        Output folder; must be new, empty, or ``force`` must be true.
    force : bool
        Replace results already in ``out_dir``.
    jobs : int, optional
        Blots quantified in parallel (default: one per CPU core, at most one per blot).
    progress : bool
        Show a progress bar when standard error is a terminal.
    overlays : bool
        Draw every image with its lanes and bands into ``out_dir/overlays``.
    executor : concurrent.futures.Executor or distributed.Client, optional
        Where the blots are quantified (default: a local process pool); see
        :func:`blotquant.executors.run_tasks`. Workers read the images by path and
        write overlays into the results folder, so both must be shared.

    Returns
    -------
    StudyResult

    Raises
    ------
    StudyError
        Malformed study file, sample sheet or layout.
    BlotQuantError
        An image cannot be read or quantified, or ``out_dir`` holds results.
    """
    study = load_study(study_file)
    # Everything is written into a staging folder that replaces out_dir as a whole.
    with locked_output_dir(out_dir, force=force) as staging:
        # Checked before the images are quantified, not after minutes of work.
        overlay_dir = results_subfolder(staging, "overlays")
        results_subfolder(staging, "plots")
        bands, lanes, records = quantify_study_images(study, jobs=jobs, progress=progress,
                                                      overlay_dir=overlay_dir if overlays else None,
                                                      executor=executor)
        result = analyse_study(study, bands, lanes=lanes, images=records)
        result.executor = describe_executor(
            executor, jobs=default_jobs(jobs, study.images["blot"].nunique()) if executor is None else None)
        write_study_outputs(result, staging)
    # The paths a caller reads are those of the results folder, not of the staging one.
    out_dir = Path(out_dir)
    result.out_dir = out_dir
    for figure in result.figures.values():
        for kind in ("png", "svg"):
            if kind in figure:
                figure[kind] = final_path(Path(figure[kind]), Path(staging), out_dir)
    return result
