"""Flags: everything in a study that makes a number less trustworthy, in plain words.

Each ``flag_*`` function looks at one kind of problem and returns a table with the
columns of :data:`FLAG_COLUMNS`; :func:`collect_flags` concatenates and sorts them
into ``flags.csv``. Codes are stable upper-case strings (scripts filter on them)
and every message names the sample, blot or target and says what to do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .kinetics import classify_post_dose_time, describe_window

#: Columns of ``flags.csv``.
FLAG_COLUMNS = ("severity", "code", "target", "sample_id", "blot", "lane", "message")

#: Every flag code with its meaning (also listed in the report).
FLAG_CODES = {
    "TIME_ORDER_INVALID": "collection before the dose, or a missing time",
    "REFERENCE_AMBIGUOUS": "long infusions but no explicit time_reference",
    "COLLECTION_TIME_DRIFT": "real post-dose time far from the planned one",
    "OUTSIDE_KINETIC_WINDOW": "collected where the target is expected at baseline or not yet changed",
    "NO_TIME_MATCHED_CONTROL": "a treated timepoint without control samples at the same time",
    "PEAK_NOT_SAMPLED": "no timepoint inside the target's expected window of change",
    "SATURATED_BAND": "clipped pixels: the band volume is a lower bound",
    "LOW_SNR": "band barely above noise",
    "BAND_NOT_DETECTED": "no band found in the band window; the window's integral was used",
    "BAND_OVERLAP": "a neighbouring band runs into the band of interest, so its volume is approximate",
    "LOADING_CONTROL_VARIATION": "loading signal varies too much across lanes or differs between groups",
    "CROSS_BLOT_NO_CALIBRATOR": "values pooled across blots without a shared calibrator",
    "OUTSIDE_LINEAR_RANGE": "band outside the linear range of the calibrator dilution series",
    "IMAGE_WARNING": "the image file itself is unfit for quantification (lossy, 8-bit, ...)",
    "BAND_SIZE_MISMATCH": "the band measured is not at the size band_kda names, or two bands are equally near it",
}

#: What to do about each kind of problem, for the report's grouped entries.
FLAG_ACTIONS = {
    "TIME_ORDER_INVALID": "Correct dose_start / collected_at in samples.csv.",
    "REFERENCE_AMBIGUOUS": "Add time_reference = \"dose_start\" or \"infusion_end\" to study.toml.",
    "COLLECTION_TIME_DRIFT": "Check the collection log; the analysis uses the real times as [statistics] "
                             "timepoint says.",
    "OUTSIDE_KINETIC_WINDOW": "Read these samples as baseline checks, or collect on time in future.",
    "NO_TIME_MATCHED_CONTROL": "Add time-matched control animals, or compare against a pooled control group "
                               "and say so in the methods.",
    "PEAK_NOT_SAMPLED": "Add a timepoint inside the target's expected window.",
    "SATURATED_BAND": "Re-image with a shorter exposure or load less protein.",
    "LOW_SNR": "Re-image with a longer exposure or load more protein.",
    "BAND_NOT_DETECTED": "Check band_rows in study.toml and the overlay; re-run a failed lane.",
    "BAND_OVERLAP": "Check the overlay; narrow band_rows, or integrate a doublet whole (band_rows_mode = "
                    "\"window\").",
    "LOADING_CONTROL_VARIATION": "Check the odd lanes; re-run the blot with equal loads or normalise to total "
                                 "protein.",
    "CROSS_BLOT_NO_CALIBRATOR": "Load a pooled reference lysate on every blot and mark it 'calibrator'.",
    "OUTSIDE_LINEAR_RANGE": "Load less (or more) protein, or re-image with another exposure.",
    "IMAGE_WARNING": "Export the raw 16-bit image from the imager and quantify that.",
    "BAND_SIZE_MISMATCH": "Check the ladder ticks and band boxes on the overlay; fix band_kda or the ladder name, "
                          "or integrate a doublet whole (band_rows_mode = \"window\").",
}

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

#: Severities that mark a sample's point in the plots.
MARKING_SEVERITIES = ("error", "warning")
#: Codes about a timepoint rather than a sample's own value: they do not mark points.
TIMEPOINT_CODES = ("NO_TIME_MATCHED_CONTROL", "PEAK_NOT_SAMPLED")


def _flags(frame=None, **columns):
    """Build a flag table from a frame of matches and per-column values or Series."""
    if frame is not None and frame.empty:
        return empty_flags()
    table = pd.DataFrame(columns, index=None if frame is None else frame.index)
    for column in FLAG_COLUMNS:
        if column not in table:
            table[column] = ""
    return table[list(FLAG_COLUMNS)].reset_index(drop=True)


def empty_flags():
    """A flag table without rows."""
    return pd.DataFrame({column: pd.Series(dtype=object) for column in FLAG_COLUMNS})


def _sample_label(frame):
    """'Sample R07 (ketamine, 30 min)' for each row of a sample table."""
    return ("sample " + frame["sample_id"].astype(str) + " (" + frame["group"].astype(str) + ", "
            + frame["nominal_min"].map("{:g} min".format) + ")")


def _lane_text(frame):
    return "blot " + frame["blot"].astype(str) + " lane " + frame["lane"].astype(str)


def flag_time_order(timed_samples, where_loaded):
    """TIME_ORDER_INVALID: a sample whose times are missing or whose collection precedes the dose.

    Parameters
    ----------
    timed_samples : pandas.DataFrame
        Output of :func:`blotquant.timing.post_dose_minutes`.
    where_loaded : pandas.DataFrame
        ``sample_id``, ``blot``, ``lane`` (joined text when loaded more than once).
    """
    bad = timed_samples[timed_samples["time_problem"] != ""].merge(where_loaded, on="sample_id", how="left")
    what = bad["time_problem"].map({
        "missing": "dose_start or collected_at is missing",
        "collected_before_dose": "collected_at is before dose_start",
        "collected_during_infusion": "collected_at falls during the infusion, before the time reference "
                                     "(infusion_end)",
    })
    return _flags(bad, severity="error", code="TIME_ORDER_INVALID", sample_id=bad["sample_id"],
                  blot=bad["blot"].fillna(""), lane=bad["lane"].fillna(""),
                  message=_sample_label(bad) + ": " + what + " in samples.csv, so its real post-dose "
                  "time is unknown and its values are left out of the statistics (unless [statistics] exclude_flagged = "
                  "false). Correct the time stamps.")


def flag_reference_ambiguous(timed_samples, *, reference_given, reference_used="dose_start",
                             reference_inferred=False, comparison=None, max_bolus_min=5.0):
    """REFERENCE_AMBIGUOUS: infusions longer than ``max_bolus_min`` but no declared time reference.

    One study-level flag (the fix is one line in study.toml). When the time stamps fit one
    reference (see :func:`blotquant.timing.inferred_time_reference`) the message says which,
    by how many minutes, and that it was used.

    Parameters
    ----------
    timed_samples : pandas.DataFrame
        The sample sheet with ``infusion_min``.
    reference_given : bool
        study.toml names the reference; then nothing is flagged.
    reference_used : str
        The reference the times were counted from.
    reference_inferred : bool
        ``reference_used`` was read from the time stamps.
    comparison : pandas.DataFrame, optional
        :func:`blotquant.timing.compare_time_references` of the samples.
    """
    if reference_given:
        return empty_flags()
    long = timed_samples[timed_samples["infusion_min"].fillna(0) > max_bolus_min]
    if long.empty:
        return empty_flags()
    lengths = ", ".join(f"{v:g}" for v in sorted(long["infusion_min"].unique()))
    text = (f"{len(long)} samples had infusions ({lengths} min), but study.toml does not say whether "
            "post-dose time counts from dose_start or infusion_end. ")
    if comparison is not None and not comparison.empty:
        described = "Counted from " + "; from ".join(
            f"{r.reference}, {r.n_punctual} of {r.n_timed} collections are punctual "
            f"(median {r.median_drift_min:+.0f} min from plan)" for r in comparison.itertuples())
        text += described + ". "
    if reference_inferred:
        text += f"The time stamps fit {reference_used}, so times were counted from it. "
    else:
        text += f"Times were counted from {reference_used}. "
    text += ("Add time_reference = \"dose_start\" or \"infusion_end\" to study.toml to say which the "
             "protocol meant.")
    return _flags(severity=["warning"], code=["REFERENCE_AMBIGUOUS"], message=[text])


def flag_collection_drift(timed_samples, drift, where_loaded, timepoints=None):
    """COLLECTION_TIME_DRIFT: real post-dose time further from nominal than the tolerance.

    ``drift`` is the output of :func:`blotquant.timing.collection_drift` on the same index;
    ``timepoints`` (:func:`blotquant.policy.assign_timepoints`), when given, lets the
    message say what the analysis did with the sample.
    """
    late = timed_samples.join(drift)[drift["drifted"]].merge(where_loaded, on="sample_id", how="left")
    if late.empty:
        return empty_flags()
    direction = np.where(late["drift_min"] > 0, "late", "early")
    if timepoints is not None:
        late = late.merge(timepoints, on="sample_id", how="left", suffixes=("", "_assigned"))
        analysed = np.where(
            late["timepoint_min"].isna(),
            "It is left out of the time course (no planned timepoint is within tolerance of its real time)",
            np.where(late["timepoint_min"] == late["nominal_min"],
                     "It is analysed at its planned timepoint (timepoint = \"nominal\")",
                     "It is analysed at the " + late["timepoint_min"].map("{:g}".format)
                     + "-min timepoint, the planned one nearest its real time"))
        analysed = pd.Series(analysed, index=late.index) + ". Check the collection log."
    else:
        analysed = "Its point is plotted at its real time; check the collection log."
    return _flags(late, severity="warning", code="COLLECTION_TIME_DRIFT", sample_id=late["sample_id"],
                  blot=late["blot"].fillna(""), lane=late["lane"].fillna(""),
                  message=_sample_label(late) + ": collected at " + late["actual_min"].map("{:.0f}".format)
                  + " min after the dose, " + late["drift_min"].abs().map("{:.0f}".format) + " min "
                  + direction + " (tolerance " + late["drift_tolerance_min"].map("{:.0f}".format)
                  + " min). " + analysed)


def flag_outside_kinetic_window(normalized, kinetics, *, control_group, margin_min=5.0, margin_fraction=0.10):
    """OUTSIDE_KINETIC_WINDOW: a treated sample collected where the target is not expected to change.

    A warning when the planned time lies inside the expected window but the real time
    does not (the sample cannot show the effect it was meant to show); info when the
    planned timepoint itself lies outside (by design, e.g. to show the return to baseline).
    Window edges are approximate, so a real time within ``max(margin_min, margin_fraction *
    time)`` of an edge counts as inside (the same tolerance as collection drift).

    Parameters
    ----------
    normalized : pandas.DataFrame
        ``normalized.csv`` rows.
    kinetics : pandas.DataFrame
        Output of :func:`blotquant.kinetics.kinetics_for_targets` (study target names).
    margin_min, margin_fraction : float
        Tolerance at the window edges.
    """
    treated = normalized[normalized["group"] != control_group]
    rows = treated.merge(kinetics, on="target", how="inner")
    margin = np.maximum(margin_min, margin_fraction * rows["actual_min"].abs())
    actual = classify_post_dose_time(rows["actual_min"], rows["onset_min"] - margin, rows["baseline_min"] + margin)
    planned = classify_post_dose_time(rows["nominal_min"], rows["onset_min"], rows["baseline_min"])
    outside = np.isin(actual, ["before_onset", "after_baseline"])
    rows, actual, planned = rows[outside], actual[outside], planned[outside]
    window_text = rows.apply(describe_window, axis=1) if not rows.empty else pd.Series(dtype=object)
    where = np.where(actual == "before_onset", "before the change is expected",
                     "where it is expected back at baseline")
    by_design = planned != "in_window"
    advice = np.where(
        by_design,
        "This timepoint lies outside the window by design; read it as a baseline check, "
        "not as a failed effect.",
        "The sample was meant to fall inside the window: analyse it at its real time or "
        "leave it out of the timepoint's mean, and collect on time in future.")
    return _flags(rows, severity=np.where(by_design, "info", "warning"), code="OUTSIDE_KINETIC_WINDOW",
                  target=rows["target"], sample_id=rows["sample_id"], blot=rows["blot"], lane=rows["lane"],
                  message=_sample_label(rows) + ": " + rows["target"] + " collected at "
                  + rows["actual_min"].map("{:.0f}".format) + " min, " + where + ". "
                  + window_text + ". " + advice)


def flag_no_time_matched_control(normalized, *, control_group):
    """NO_TIME_MATCHED_CONTROL: a treated timepoint with no control value of that target.

    One flag per target and timepoint naming its treated samples; when the control group
    has no value of any target at a timepoint (the animals were never collected, or all
    were left out), one study-level flag for that timepoint instead.

    ``normalized`` holds the analysed values: ``nominal_min`` is the timepoint analysed.
    """
    has_value = normalized["value"].notna()
    control = normalized[(normalized["group"] == control_group) & has_value]
    treated = normalized[(normalized["group"] != control_group) & has_value]
    control_times = control[["target", "nominal_min"]].drop_duplicates()
    unmatched = treated.merge(control_times, on=["target", "nominal_min"], how="left", indicator=True)
    unmatched = unmatched[unmatched["_merge"] == "left_only"]
    if unmatched.empty:
        return empty_flags()
    advice = (f"Add time-matched {control_group} animals, or compare against a pooled {control_group} group "
              "and say so in the methods.")
    missing_everywhere = set(unmatched["nominal_min"]) - set(control["nominal_min"])
    study_level = unmatched[unmatched["nominal_min"].isin(missing_everywhere)]
    per_target = unmatched[~unmatched["nominal_min"].isin(missing_everywhere)]
    rows = []
    for minutes, group in study_level.groupby("nominal_min"):
        samples = sorted(group["sample_id"].astype(str).unique())
        rows.append({"target": "", "message": f"no {control_group} sample at {minutes:g} min for any target, "
                     f"so no fold change or test is given there ({len(samples)} treated samples: "
                     f"{', '.join(samples)}). {advice}"})
    for (target, minutes), group in per_target.groupby(["target", "nominal_min"]):
        samples = sorted(group["sample_id"].astype(str).unique())
        rows.append({"target": target, "message": f"no {control_group} value of {target} at {minutes:g} min, "
                     f"so no fold change or test is given there ({len(samples)} treated samples: "
                     f"{', '.join(samples)}). {advice}"})
    rows = pd.DataFrame(rows)
    return _flags(rows, severity="warning", code="NO_TIME_MATCHED_CONTROL", target=rows["target"],
                  message=rows["message"])


def flag_peak_not_sampled(normalized, kinetics, *, control_group):
    """PEAK_NOT_SAMPLED: no planned timepoint of a treated group inside the target's expected window."""
    treated = normalized.loc[normalized["group"] != control_group, ["target", "group", "nominal_min"]]
    rows = treated.drop_duplicates().merge(kinetics, on="target", how="inner")
    if rows.empty:
        return empty_flags()
    rows["inside"] = classify_post_dose_time(rows["nominal_min"], rows["onset_min"],
                                             rows["baseline_min"]) == "in_window"
    per_group = rows.groupby(["target", "group"]).agg(
        inside=("inside", "any"),
        times=("nominal_min", lambda t: ", ".join(f"{v:g}" for v in sorted(t))),
    ).reset_index()
    missed = per_group[~per_group["inside"]].merge(kinetics, on="target")
    window_text = missed.apply(describe_window, axis=1) if not missed.empty else ""
    return _flags(missed, severity="warning", code="PEAK_NOT_SAMPLED", target=missed["target"],
                  message="group " + missed["group"].astype(str) + " was sampled at " + missed["times"]
                  + " min only: " + window_text + ", so the study cannot show its change. "
                  "Add a timepoint inside the window.")


def flag_band_quality(lane_signals, *, min_snr=10.0, max_overlap=0.3):
    """SATURATED_BAND, LOW_SNR, BAND_NOT_DETECTED and BAND_OVERLAP, per image and lane, from quantification."""
    lanes = lane_signals.assign(lane_text=_lane_text(lane_signals))
    who = np.where(lanes["lane_kind"] == "sample", "sample " + lanes["sample_id"].astype(str),
                   "the " + lanes["lane_kind"].astype(str) + " lane")
    is_loading = lanes["role"].isin(["loading_control", "total_protein"]).to_numpy()
    is_calibrator = (lanes["lane_kind"] == "calibrator").to_numpy()
    consequence = np.select(
        [is_calibrator & is_loading, is_calibrator, is_loading],
        ["every value scaled by this calibrator lane on blot " + lanes["blot"].astype(str) + " is affected",
         "every " + lanes["target"].astype(str) + " value scaled by this calibrator lane on blot "
         + lanes["blot"].astype(str) + " is affected",
         "every normalised value of this lane is affected"],
        "its normalised value is affected")
    prefix = pd.Series(who, index=lanes.index) + ", " + lanes["target"] + " (" + lanes["lane_text"] + "): "
    common = dict(target=lanes["target"], sample_id=lanes["sample_id"], blot=lanes["blot"],
                  lane=lanes["lane"])
    saturated = lanes["saturated"].astype(bool)
    low = (lanes["snr"] < min_snr) & ~saturated
    missing = ~lanes["detected"].astype(bool)
    # A band missing where most of the image's other sample lanes show one is a failed lane
    # (loading, transfer), not a sample without the protein: its value is wrong.
    is_sample = lanes["lane_kind"] == "sample"
    image_key = [lanes["blot"].astype(str), lanes["target"].astype(str)]
    found_elsewhere = (~missing & is_sample).groupby(image_key).transform("sum")
    others = is_sample.groupby(image_key).transform("sum") - is_sample.astype(int)
    expected = missing & is_sample & (found_elsewhere >= 0.5 * others) & (others > 0)
    overlap = lanes["overlap"] if "overlap" in lanes else pd.Series(np.nan, index=lanes.index)
    touching = (overlap >= max_overlap) & ~missing & ~saturated
    parts = [
        _flags(lanes[saturated], severity="error", code="SATURATED_BAND",
               **{k: v[saturated] for k, v in common.items()},
               message=prefix[saturated] + lanes.loc[saturated, "saturated_pixels"].astype(int).astype(str)
               + " pixels at the detector's ceiling, so the band volume is too low and "
               + pd.Series(consequence, index=lanes.index)[saturated]
               + ". Re-image with a shorter exposure or load less protein."),
        _flags(lanes[low], severity="warning", code="LOW_SNR",
               **{k: v[low] for k, v in common.items()},
               message=prefix[low] + "signal-to-noise " + lanes.loc[low, "snr"].map("{:.1f}".format)
               + f" (below {min_snr:g}), so the volume is uncertain by roughly "
               + (100 / lanes.loc[low, "snr"].clip(lower=1)).map("{:.0f}".format)
               + "%. Re-image with a longer exposure or load more protein."),
        _flags(lanes[missing], severity=np.where(expected[missing], "error", "warning"), code="BAND_NOT_DETECTED",
               **{k: v[missing] for k, v in common.items()},
               message=prefix[missing] + "no band was found inside band_rows; the signal of the whole "
               "window was used. " + pd.Series(np.where(
                   expected, "The blot's other sample lanes show the band, so this lane probably failed "
                   "(loading, transfer, a bubble): its value is left out of the analysis. ",
                   ""), index=lanes.index)[missing]
               + "Check band_rows in study.toml and the overlay image."),
        _flags(lanes[touching], severity="warning", code="BAND_OVERLAP",
               **{k: v[touching] for k, v in common.items()},
               message=prefix[touching] + "the profile between this band and a neighbouring one only falls to "
               + (100 * overlap[touching]).map("{:.0f}".format)
               + "% of the band's peak, so the volume holds part of the neighbour or misses part of its own "
               "tail. Check the overlay; if both bands are the target (a doublet), set band_rows_mode = "
               "\"window\" in [quantify], otherwise narrow band_rows or run the gel longer."),
    ]
    return pd.concat(parts, ignore_index=True)


def flag_band_size(lane_signals):
    """BAND_SIZE_MISMATCH: an image chosen by ``band_kda`` whose measured band is not at that size.

    Per lane: the measured band's size (``kda``, from the ladder) is unknown or outside
    ``band_kda`` +- ``band_kda_tolerance``; or two or more bands lie within the tolerance
    (``size_candidates``), a doublet such as synapsin Ia/Ib, so the message says which was
    measured.
    """
    if "band_kda" not in lane_signals:
        return empty_flags()
    lanes = lane_signals[lane_signals["band_kda"].notna()]
    if lanes.empty:
        return empty_flags()
    lanes = lanes.assign(lane_text=_lane_text(lanes))
    tolerance = lanes["band_kda_tolerance"].astype(float)
    ratio = lanes["kda"].astype(float) / lanes["band_kda"].astype(float)
    far = ~((ratio >= 1 / (1 + tolerance)) & (ratio <= 1 + tolerance))
    candidates = lanes["size_candidates"].fillna("").astype(str) if "size_candidates" in lanes \
        else pd.Series("", index=lanes.index)
    several = candidates.str.count(";") >= 1
    who = np.where(lanes["lane_kind"] == "sample", "sample " + lanes["sample_id"].astype(str),
                   "the " + lanes["lane_kind"].astype(str) + " lane")
    prefix = pd.Series(who, index=lanes.index) + ", " + lanes["target"] + " (" + lanes["lane_text"] + "): "
    expected = (lanes["band_kda"].map("{:g}".format) + " kDa +- "
                + (100 * tolerance).map("{:.0f}".format) + "%")
    measured = lanes["kda"].map(lambda k: f"{k:.0f} kDa" if np.isfinite(k) else "a size the ladder cannot give")
    common = dict(target=lanes["target"], sample_id=lanes["sample_id"], blot=lanes["blot"], lane=lanes["lane"])
    return pd.concat([
        _flags(lanes[far], severity="warning", code="BAND_SIZE_MISMATCH", **{k: v[far] for k, v in common.items()},
               message=prefix[far] + "the band measured is at " + measured[far] + ", not at " + expected[far]
               + ", so it may be another protein. Check the overlay's ladder ticks and band box."),
        _flags(lanes[several & ~far], severity="warning", code="BAND_SIZE_MISMATCH",
               **{k: v[several & ~far] for k, v in common.items()},
               message=prefix[several & ~far] + "bands at " + candidates[several & ~far].str.replace(";", " and ")
               + " kDa are all within " + expected[several & ~far] + " (a doublet?); the stronger one, at "
               + measured[several & ~far] + ", was measured. To integrate both, set band_rows_mode = "
               "\"window\" for this image."),
    ], ignore_index=True)


def flag_loading_variation(lane_signals, samples, *, max_cv=0.20, max_lane_ratio=1.5, max_group_p=0.05):
    """LOADING_CONTROL_VARIATION: uneven loading within a blot, one odd lane, or loading that differs by group.

    Parameters
    ----------
    lane_signals : pandas.DataFrame
        Per-lane signals of every role (``blot``, ``lane``, ``role``, ``lane_kind``,
        ``sample_id``, ``target``, ``volume``).
    samples : pandas.DataFrame
        The sample sheet (``sample_id``, ``group``).
    max_cv : float
        Largest acceptable coefficient of variation of the loading signal across a
        blot's sample lanes.
    max_lane_ratio : float
        A lane whose loading signal is more than this factor above or below the blot's
        median is flagged on its own.
    max_group_p : float
        A one-way ANOVA of the loading signal (relative to each blot's median) across
        groups below this p-value flags a group difference.
    """
    loading = lane_signals[lane_signals["role"].isin(["loading_control", "total_protein"])
                           & (lane_signals["lane_kind"] == "sample")].copy()
    if loading.empty:
        return empty_flags()
    loading["relative"] = loading["volume"] / loading.groupby("blot")["volume"].transform("median")
    per_blot = loading.groupby("blot").agg(target=("target", "first"), cv=("volume", lambda v: v.std() / v.mean()),
                                           n=("volume", "count")).reset_index()
    uneven = per_blot[per_blot["cv"] > max_cv]
    odd = loading[(loading["relative"] > max_lane_ratio) | (loading["relative"] < 1 / max_lane_ratio)]
    odd = odd.merge(samples[["sample_id", "group", "nominal_min"]], on="sample_id", how="left")
    parts = [
        _flags(uneven, severity="warning", code="LOADING_CONTROL_VARIATION", target=uneven["target"],
               blot=uneven["blot"],
               message="blot " + uneven["blot"].astype(str) + ": " + uneven["target"] + " varies by "
               + (100 * uneven["cv"]).map("{:.0f}".format) + f"% (CV) across its sample lanes (more than "
               f"{100 * max_cv:.0f}%). Normalisation corrects proportional loading differences only; "
               "re-run the blot with equal loads, or check the loading band is in its linear range."),
        _flags(odd, severity="warning", code="LOADING_CONTROL_VARIATION", target=odd["target"],
               sample_id=odd["sample_id"], blot=odd["blot"], lane=odd["lane"],
               message=_sample_label(odd) + ": its " + odd["target"] + " signal is "
               + odd["relative"].map("{:.2f}".format) + " x the blot's median, so its ratios rest on a "
               "very different load. Check the lane (bubble, loading error) and consider re-running it."),
    ]
    grouped = loading.merge(samples[["sample_id", "group"]], on="sample_id", how="left")
    groups = [g["relative"].dropna().to_numpy() for _, g in grouped.groupby("group")]
    groups = [g for g in groups if g.size >= 2]
    if len(groups) >= 2 and np.ptp(np.concatenate(groups)) > 0:
        p = stats.f_oneway(*groups).pvalue
        if p < max_group_p:
            means = grouped.groupby("group")["relative"].mean()
            detail = ", ".join(f"{g} {m:.2f}" for g, m in means.items())
            parts.append(_flags(severity=["warning"], code=["LOADING_CONTROL_VARIATION"],
                                target=[loading["target"].iloc[0]],
                                message=[f"the loading signal differs between groups (mean relative to "
                                         f"blot median: {detail}; one-way ANOVA p = {p:.3g}), which "
                                         "biases every normalised ratio. Check that the treatment does not "
                                         "change the loading protein itself; if it does, normalise to total "
                                         "protein instead."]))
    return pd.concat(parts, ignore_index=True)


def flag_cross_blot_without_calibrator(normalised_lanes):
    """CROSS_BLOT_NO_CALIBRATOR: a target's samples span several blots, not all with a calibrator lane."""
    samples_only = normalised_lanes[normalised_lanes["lane_kind"] == "sample"]
    per_target = samples_only.groupby("target")["blot"].nunique()
    pooled = per_target[per_target > 1].index
    if pooled.empty:
        return empty_flags()
    blots = normalised_lanes[normalised_lanes["target"].isin(pooled)].groupby(["target", "blot"]).agg(
        calibrated=("calibrator_value", lambda v: v.notna().any())).reset_index()
    missing = blots[~blots["calibrated"]]
    return _flags(missing, severity="warning", code="CROSS_BLOT_NO_CALIBRATOR", target=missing["target"],
                  blot=missing["blot"],
                  message=missing["target"] + " on blot " + missing["blot"].astype(str)
                  + " is pooled with other blots but this blot has no calibrator lane (or its calibrator "
                  "band could not be measured), so its values are on its own scale. Load the same pooled "
                  "reference lysate on every blot and mark its lane 'calibrator' in layout.csv.")


def flag_outside_linear_range(lane_signals, linear_ranges):
    """OUTSIDE_LINEAR_RANGE: a band volume outside its blot's calibrator linear range.

    Also flags a dilution series in which no linear run of loads was found.
    """
    if linear_ranges.empty:
        return empty_flags()
    none = linear_ranges[~linear_ranges["linear"]]
    found = linear_ranges[linear_ranges["linear"]]
    lanes = lane_signals[lane_signals["lane_kind"] == "sample"].merge(
        found[["blot", "target", "volume_low", "volume_high", "load_low", "load_high"]], on=["blot", "target"])
    above = lanes["volume"] > lanes["volume_high"]
    below = lanes["volume"] < lanes["volume_low"]
    out = lanes[above | below]
    side = np.where(above[above | below], "above the strongest", "below the weakest")
    fix = np.where(above[above | below], "load less protein or shorten the exposure",
                   "load more protein or extend the dilution series downwards")
    return pd.concat([
        _flags(out, severity="warning", code="OUTSIDE_LINEAR_RANGE", target=out["target"],
               sample_id=out["sample_id"], blot=out["blot"], lane=out["lane"],
               message="sample " + out["sample_id"].astype(str) + ", " + out["target"] + " ("
               + _lane_text(out) + "): band volume " + out["volume"].map("{:.4g}".format) + " lies "
               + side + " point of the calibrator's linear range (" + out["load_low"].map("{:g}".format)
               + "-" + out["load_high"].map("{:g}".format) + " ug), where signal may not be proportional "
               "to protein; " + fix + "."),
        _flags(none, severity="warning", code="OUTSIDE_LINEAR_RANGE", target=none["target"], blot=none["blot"],
               message="blot " + none["blot"].astype(str) + ", " + none["target"] + ": the calibrator "
               "dilution series shows no linear run of 3 or more loads, so no band of this image is known "
               "to be in the linear range. Re-image with a shorter exposure or widen the dilution series."),
    ], ignore_index=True)


def flag_image_warnings(image_records):
    """IMAGE_WARNING: what the image reader found wrong with a file (lossy, 8-bit, ...).

    ``image_records`` has ``file``, ``blot``, ``target`` and ``warning`` (one row per warning).
    """
    return _flags(image_records, severity="warning", code="IMAGE_WARNING", target=image_records["target"],
                  blot=image_records["blot"],
                  message=image_records["file"].astype(str) + ": " + image_records["warning"].astype(str))


def collect_flags(parts):
    """Concatenate flag tables and sort them by severity, code, target and sample."""
    parts = [p for p in parts if p is not None and not p.empty]
    if not parts:
        return empty_flags()
    flags = pd.concat(parts, ignore_index=True)
    flags = flags.fillna("").astype({"blot": str, "lane": str, "sample_id": str, "target": str})
    flags["_rank"] = flags["severity"].map(SEVERITY_ORDER)
    flags = flags.sort_values(["_rank", "code", "target", "blot", "sample_id"], kind="stable")
    return flags.drop(columns="_rank").drop_duplicates().reset_index(drop=True)


def flagged_samples(flags, *, severities=MARKING_SEVERITIES):
    """``(target, sample_id)`` pairs to mark in plots; an empty target applies to every target.

    Only flags that question a sample's own value count (not :data:`TIMEPOINT_CODES`).

    Returns
    -------
    pandas.DataFrame
        ``target``, ``sample_id``, ``codes`` (the codes joined by ``, ``).
    """
    marked = flags[flags["severity"].isin(severities) & (flags["sample_id"] != "")
                   & ~flags["code"].isin(TIMEPOINT_CODES)]
    return marked.groupby(["target", "sample_id"])["code"].agg(
        lambda c: ", ".join(sorted(set(c)))).rename("codes").reset_index()


GROUPED_FLAG_COLUMNS = ("severity", "code", "target", "n_samples", "samples", "blots", "message", "action")


def group_flags(flags):
    """One entry per problem, for reading: flags of one severity, code and target together.

    ``flags.csv`` keeps one row per sample; a report that repeats the same problem for
    eight samples hides the one that matters. The grouped entry names the samples (or,
    for a study-level flag, none), gives the message itself when there is one flag and
    the code's meaning with the first flag's message as an example otherwise, and says
    what to do.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`GROUPED_FLAG_COLUMNS`, most severe first, then most samples.
    """
    if flags.empty:
        return pd.DataFrame(columns=list(GROUPED_FLAG_COLUMNS))
    rows = []
    for (severity, code, target), group in flags.groupby(["severity", "code", "target"], sort=False):
        samples = sorted(set(group["sample_id"]) - {""})
        blots = sorted(set(";".join(group["blot"]).split(";")) - {""})
        if len(group) == 1:
            message = group["message"].iloc[0]
        else:
            message = (f"{FLAG_CODES.get(code, code)}: {len(group)} flags. For example, "
                       f"{group['message'].iloc[0]}")
        rows.append({"severity": severity, "code": code, "target": target, "n_samples": len(samples),
                     "samples": ", ".join(samples), "blots": ", ".join(blots), "message": message,
                     "action": "" if FLAG_ACTIONS.get(code, "") in message else FLAG_ACTIONS.get(code, "")})
    grouped = pd.DataFrame(rows, columns=list(GROUPED_FLAG_COLUMNS))
    grouped["_rank"] = grouped["severity"].map(SEVERITY_ORDER)
    grouped = grouped.sort_values(["_rank", "n_samples", "code", "target"], ascending=[True, False, True, True],
                                  kind="stable")
    return grouped.drop(columns="_rank").reset_index(drop=True)
