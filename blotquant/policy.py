"""The analysis policy: which sample values enter the statistics, and at which timepoint.

A flag says a number is wrong; the policy acts on it. By default (the careful choice):

* a sample whose measurement of a target is known to be wrong (a flag of severity
  ``error`` on that sample: a saturated band of the target, of its total or of the lane's
  loading control; a collection time before the dose; a band missing where the blot's
  other lanes show one) is left out of that target's means, tests and peak estimates;
* ``timepoint = "actual"``: a sample is analysed at the planned timepoint nearest its
  real post-dose time, if that lies within the drift tolerance of it; a sample within the
  tolerance of no planned timepoint is left out (``"nominal"`` keeps every sample at its
  planned time, drifted or not).

Nothing is dropped from the tables: :func:`apply_analysis_policy` marks every row of
``normalized.csv`` ``included`` or not with an ``exclusion_reason``, and
:func:`sensitivity_table` sets the primary analysis beside the one with every sample
included at its planned time, so a reader sees whether a left-out sample changes a
conclusion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Accepted values of ``[statistics] timepoint``.
TIMEPOINT_MODES = ("actual", "nominal")
#: Flag severities whose samples are left out of the analysis of the targets they affect.
EXCLUDING_SEVERITIES = ("error",)


def assign_timepoints(timed_samples, *, mode="actual", tolerance_min=5.0, tolerance_fraction=0.10):
    """The planned timepoint each sample is analysed at.

    Parameters
    ----------
    timed_samples : pandas.DataFrame
        Output of :func:`blotquant.timing.post_dose_minutes` (``sample_id``,
        ``nominal_min``, ``actual_min``).
    mode : {"actual", "nominal"}
        ``"actual"``: the planned timepoint (any ``nominal_min`` of the study) nearest
        the real time among those whose tolerance ``max(tolerance_min,
        tolerance_fraction * t)`` holds it; none, and the sample is left out.
        ``"nominal"``: the sample's own planned time.
    tolerance_min, tolerance_fraction : float
        The collection-drift tolerance (the same as :func:`blotquant.timing.collection_drift`).

    Returns
    -------
    pandas.DataFrame
        ``sample_id``, ``timepoint_min`` (NaN when left out) and ``timing_exclusion``
        (why it is left out, else ``""``).

    Examples
    --------
    >>> s = pd.DataFrame({"sample_id": ["a", "b", "c"], "nominal_min": [30, 30, 60],
    ...                   "actual_min": [33.0, 52.0, 31.0]})
    >>> assign_timepoints(s)["timepoint_min"].tolist()
    [30.0, nan, 30.0]
    """
    if mode not in TIMEPOINT_MODES:
        raise ValueError(f"mode must be one of {TIMEPOINT_MODES}, not {mode!r}")
    nominal = timed_samples["nominal_min"].to_numpy(float)
    result = pd.DataFrame({"sample_id": timed_samples["sample_id"].to_numpy(),
                           "timepoint_min": nominal.copy(), "timing_exclusion": ""})
    if mode == "nominal":
        return result
    actual = timed_samples["actual_min"].to_numpy(float)
    planned = np.unique(nominal[np.isfinite(nominal)])
    if planned.size == 0:
        return result
    tolerance = np.maximum(tolerance_min, tolerance_fraction * np.abs(planned))
    distance = np.abs(actual[:, None] - planned[None, :])
    within = distance <= tolerance[None, :]
    nearest = np.argmin(np.where(within, distance, np.inf), axis=1)
    known = np.isfinite(actual)
    assigned = known & within.any(axis=1)
    result["timepoint_min"] = np.where(assigned, planned[nearest], np.nan)
    planned_text = ", ".join(f"{t:g} ± {d:.0f}" for t, d in zip(planned, tolerance))
    unknown = ~known
    unassigned = known & ~assigned
    result.loc[unknown, "timing_exclusion"] = "real post-dose time unknown"
    result.loc[unassigned, "timing_exclusion"] = [
        f"collected at {a:.0f} min, within the tolerance of no planned timepoint ({planned_text} min)"
        for a in actual[unassigned]]
    return result


def affected_values(flags, normalised_lanes, *, severities=EXCLUDING_SEVERITIES):
    """Which sample values each flag of the given severities makes wrong.

    A flag on a sample without a target (a collection before the dose) affects all its
    targets; a flag on a target affects that target, any phospho target whose total it
    is, and, for a loading control or total-protein stain, every target normalised by it
    on that blot. A flag on a calibrator lane that scales its blot affects every
    calibrated value on that blot that it enters.

    Parameters
    ----------
    flags : pandas.DataFrame
        ``flags.csv`` rows.
    normalised_lanes : pandas.DataFrame
        Output of :func:`blotquant.normalise.normalise_lane_signals`.

    Returns
    -------
    pandas.DataFrame
        ``sample_id``, ``target``, ``reason`` (one row per value and reason).
    """
    columns = ["sample_id", "target", "reason"]
    bad = flags[flags["severity"].isin(severities) & (flags["sample_id"] != "")]
    if bad.empty:
        return pd.DataFrame(columns=columns)
    bad = bad.assign(reason=np.where(bad["target"] != "", bad["code"] + " (" + bad["target"] + ")", bad["code"]))
    lanes = normalised_lanes.loc[normalised_lanes["lane_kind"] == "sample",
                                 ["sample_id", "blot", "target", "loading_target", "total_target"]]
    lanes = lanes.astype({"blot": str}).fillna({"total_target": "", "loading_target": ""})
    pairs = bad[["sample_id", "blot", "target", "reason"]].rename(
        columns={"target": "flag_target", "blot": "flag_blot"}).merge(lanes, on="sample_id")
    on_blot = [(fb == "") or (b in fb.split(";")) for fb, b in zip(pairs["flag_blot"], pairs["blot"])]
    related = ((pairs["flag_target"] == "") | (pairs["flag_target"] == pairs["target"])
               | (pairs["flag_target"] == pairs["total_target"])
               | ((pairs["flag_target"] == pairs["loading_target"]) & np.asarray(on_blot, dtype=bool)))
    from_samples = pairs.loc[related, columns]
    return pd.concat([from_samples, _calibrator_affected_values(bad, normalised_lanes)],
                     ignore_index=True).drop_duplicates().reset_index(drop=True)


def _calibrator_affected_values(bad, normalised_lanes):
    """Sample values made wrong by a flag on a calibrator lane that scales its blot.

    Every calibrated value of a target on a blot is divided by the blot's
    reference calibrator lanes, so a saturated calibrator band (of the target,
    its total or the loading control) is wrong in all of them. Calibrator
    lanes of a dilution series other than the reference load scale nothing.
    """
    columns = ["sample_id", "target", "reason"]
    calibrators = normalised_lanes[normalised_lanes["lane_kind"] == "calibrator"]
    if calibrators.empty:
        return pd.DataFrame(columns=columns)
    from .normalise import _calibrator_reference_load

    reference = calibrators["blot"].map(_calibrator_reference_load(normalised_lanes))
    scaling = (calibrators["load_ug"].isna() & reference.isna()) | (calibrators["load_ug"] == reference)
    scaling_lanes = calibrators.loc[scaling, ["sample_id", "blot", "lane"]]
    # Flags carry lanes as text ("" for flags on no lane).
    scaling_lanes = scaling_lanes.assign(blot=scaling_lanes["blot"].astype(str),
                                         lane=scaling_lanes["lane"].astype(int).astype(str)).drop_duplicates()
    flagged = bad.assign(blot=bad["blot"].astype(str), lane=bad["lane"].astype(str)).merge(
        scaling_lanes, on=["sample_id", "blot", "lane"])
    if flagged.empty:
        return pd.DataFrame(columns=columns)
    flagged = flagged.assign(reason=flagged["code"] + " (calibrator lane, " + flagged["target"] + ")")
    samples = normalised_lanes.loc[(normalised_lanes["lane_kind"] == "sample")
                                   & normalised_lanes["calibrator_value"].notna(),
                                   ["sample_id", "blot", "target", "loading_target", "total_target"]]
    samples = samples.astype({"blot": str}).fillna({"total_target": "", "loading_target": ""})
    pairs = flagged[["blot", "target", "reason"]].rename(columns={"target": "flag_target"}).merge(samples, on="blot")
    related = ((pairs["flag_target"] == pairs["target"]) | (pairs["flag_target"] == pairs["total_target"])
               | (pairs["flag_target"] == pairs["loading_target"]))
    return pairs.loc[related, columns]


def apply_analysis_policy(normalized, timepoints, affected, *, exclude_flagged=True):
    """Mark each row of ``normalized.csv`` as included in the analysis or left out, and why.

    Parameters
    ----------
    normalized : pandas.DataFrame
        One row per sample and target (:func:`blotquant.normalise.sample_values`).
    timepoints : pandas.DataFrame
        Output of :func:`assign_timepoints`.
    affected : pandas.DataFrame
        Output of :func:`affected_values`.
    exclude_flagged : bool
        Leave out the values ``affected`` names (the default); False keeps them in and
        only timing decides.

    Returns
    -------
    pandas.DataFrame
        ``normalized`` with ``timepoint_min``, ``included`` and ``exclusion_reason``
        (reasons joined by ``"; "``). A row without a value is never included.
    """
    table = normalized.drop(columns=[c for c in ("timepoint_min", "included", "exclusion_reason")
                                     if c in normalized])
    table = table.merge(timepoints, on="sample_id", how="left", validate="many_to_one")
    reasons = [[r] if r else [] for r in table["timing_exclusion"].fillna("")]
    if exclude_flagged and not affected.empty:
        by_value = affected.groupby(["sample_id", "target"])["reason"].agg(lambda r: "; ".join(sorted(set(r))))
        keys = list(zip(table["sample_id"], table["target"]))
        for reason_list, key in zip(reasons, keys):
            if key in by_value.index:
                reason_list.insert(0, by_value[key])
    missing = table["value"].isna()
    for reason_list, no_value in zip(reasons, missing):
        if no_value:
            reason_list.insert(0, "no value (band excluded in a review or not measurable)")
    table["exclusion_reason"] = ["; ".join(r) for r in reasons]
    table["included"] = table["exclusion_reason"] == ""
    return table.drop(columns="timing_exclusion")


def sensitivity_table(primary, everything, *, control_group, alpha=0.05, fold_change_tolerance=0.2):
    """The primary time course beside the one with every sample included at its planned time.

    Parameters
    ----------
    primary, everything : pandas.DataFrame
        :func:`blotquant.statistics.summarise_timecourse` of the analysed samples and of
        all samples (``timepoint = "nominal"``, nothing left out).
    control_group : str
        Its rows (fold change 1 by definition) are not repeated.
    alpha : float
        Significance level of a conclusion (adjusted p-value).
    fold_change_tolerance : float
        A fold change that moves by more than this fraction counts as changed.

    Returns
    -------
    pandas.DataFrame
        Per target, treated group and timepoint: ``n``, ``fold_change``, ``p_adjusted`` of
        both analyses (``_primary`` / ``_all``), and ``conclusion_changes``: the
        significance at ``alpha`` differs, the direction differs, or the fold change
        moves by more than ``fold_change_tolerance``.
    """
    keys = ["target", "group", "nominal_min"]
    shown = ["control_n", "n", "fold_change", "p_adjusted"]
    merged = primary.loc[primary["group"] != control_group, [*keys, *shown]].merge(
        everything.loc[everything["group"] != control_group, [*keys, *shown]], on=keys, how="outer",
        suffixes=("_primary", "_all"))
    significant_primary = merged["p_adjusted_primary"] < alpha
    significant_all = merged["p_adjusted_all"] < alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        direction_primary = np.sign(np.log(merged["fold_change_primary"]))
        direction_all = np.sign(np.log(merged["fold_change_all"]))
        moved = (merged["fold_change_all"] / merged["fold_change_primary"] - 1).abs() > fold_change_tolerance
    lost = merged["fold_change_primary"].isna() != merged["fold_change_all"].isna()
    merged["conclusion_changes"] = ((significant_primary != significant_all)
                                    | ((direction_primary != direction_all) & (significant_primary | significant_all))
                                    | moved | lost)
    merged["n_left_out"] = (merged["n_all"].fillna(0) - merged["n_primary"].fillna(0)
                            + merged["control_n_all"].fillna(0) - merged["control_n_primary"].fillna(0)).astype(int)
    columns = [*keys, "n_primary", "control_n_primary", "fold_change_primary", "p_adjusted_primary",
               "n_all", "control_n_all", "fold_change_all", "p_adjusted_all", "n_left_out", "conclusion_changes"]
    return merged[columns].sort_values(keys, kind="stable").reset_index(drop=True)
