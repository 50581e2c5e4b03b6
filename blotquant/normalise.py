"""Normalisation: from band volumes to numbers comparable across lanes and blots.

Three steps, each a pure function on tidy tables:

1. :func:`label_lane_signals` attaches the lane layout (which sample, calibrator,
   ladder or empty lane) to the one-band-per-lane quantification of every image.
2. :func:`normalise_lane_signals` divides each target by its lane's loading signal
   (loading control or total protein, expressed relative to the blot's median lane
   so values stay in target units), forms phospho/total ratios lane by lane, and
   scales every blot by its calibrator lane so blots can be pooled.
3. :func:`sample_values` averages technical replicates into one row per sample and
   target and joins the sample sheet: the ``normalized.csv`` table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Reserved ``sample_id`` values of layout.csv that mark lanes without a study sample.
SPECIAL_LANES = ("ladder", "empty", "calibrator")

#: Image roles that measure how much protein a lane holds.
LOADING_ROLES = ("loading_control", "total_protein")

_LANE_KEYS = ["blot", "strip", "lane"]


def lane_kind(sample_ids):
    """Classify layout ``sample_id`` values as sample, calibrator, ladder or empty.

    Examples
    --------
    >>> import pandas as pd
    >>> lane_kind(pd.Series(["R01", "Ladder", "calibrator"])).tolist()
    ['sample', 'ladder', 'calibrator']
    """
    lowered = sample_ids.astype(str).str.strip().str.lower()
    return lowered.where(lowered.isin(SPECIAL_LANES), "sample")


def label_lane_signals(bands, layout):
    """Attach the lane layout to per-lane band measurements.

    Parameters
    ----------
    bands : pandas.DataFrame
        One row per image and lane (quantified with a band window), with the study
        columns ``blot``, ``target``, ``role``, ``total_target`` and the quantification
        columns ``strip``, ``lane``, ``volume``, ``saturated``, ``snr``, ``detected``,
        ``excluded``.
    layout : pandas.DataFrame
        ``blot``, ``strip``, ``lane``, ``sample_id`` and optionally ``load_ug``.

    Returns
    -------
    pandas.DataFrame
        The bands of lanes present in the layout with ``sample_id``, ``lane_kind`` and
        ``load_ug`` added; excluded bands have a NaN volume. Ladder and empty lanes are
        dropped.
    """
    layout = layout.assign(lane_kind=lane_kind(layout["sample_id"]))
    if "load_ug" not in layout:
        layout = layout.assign(load_ug=np.nan)
    labelled = bands.merge(layout[[*_LANE_KEYS, "sample_id", "lane_kind", "load_ug"]],
                           on=_LANE_KEYS, how="inner", validate="many_to_one")
    labelled = labelled[labelled["lane_kind"].isin(["sample", "calibrator"])].copy()
    excluded = labelled["excluded"].fillna(False).astype(bool) if "excluded" in labelled else False
    labelled["volume"] = labelled["volume"].where(~excluded)
    return labelled.reset_index(drop=True)


def _calibrator_reference_load(lanes):
    """Per blot: the calibrator load used for scaling (closest to the samples' load)."""
    sample_load = lanes[lanes["lane_kind"] == "sample"].groupby("blot")["load_ug"].median()
    calibrators = lanes.loc[lanes["lane_kind"] == "calibrator", ["blot", "load_ug"]].drop_duplicates()
    calibrators = calibrators.assign(sample_load=calibrators["blot"].map(sample_load))
    # Without loads every calibrator lane counts; with a dilution series, the dilution nearest
    # the samples' load (or the highest one when sample loads are unknown) is the reference.
    distance = (calibrators["load_ug"] - calibrators["sample_load"]).abs()
    distance = distance.fillna(-calibrators["load_ug"]).fillna(0.0)
    calibrators = calibrators.assign(distance=distance, negative_load=-calibrators["load_ug"].fillna(0))
    best = calibrators.sort_values(["blot", "distance", "negative_load"]).drop_duplicates("blot")
    return best.set_index("blot")["load_ug"]


def normalise_lane_signals(lane_signals):
    """Normalise every lane to its loading signal, form phospho/total ratios, calibrate blots.

    Parameters
    ----------
    lane_signals : pandas.DataFrame
        Output of :func:`label_lane_signals`. Each blot has exactly one image whose
        ``role`` is ``loading_control`` or ``total_protein``.

    Returns
    -------
    pandas.DataFrame
        One row per non-loading target and lane with the added columns

        ``loading_target``, ``loading_volume``
            the lane's loading band;
        ``loading_factor``
            loading volume / median loading volume of the blot's sample and
            calibrator lanes (1 means an average load);
        ``normalised``
            volume / loading_factor;
        ``total_normalised``, ``ratio_to_total``
            for a phospho target, its total's normalised value in the same lane
            and normalised / total_normalised;
        ``calibrator_value``
            the blot's mean uncalibrated value in its reference calibrator lanes
            (NaN when the blot has no calibrator);
        ``value``, ``value_kind``
            the number the statistics use: the ratio to total for a phospho
            target, else the normalised value, divided by ``calibrator_value``
            when there is one.
        ``value_sd``
            the measurement uncertainty of ``value``: the bands' ``volume_sd``
            (target, loading or total band, calibrator lanes) carried through
            the divisions as relative variances (NaN when the bands carry none).

    Examples
    --------
    >>> import pandas as pd
    >>> lanes = pd.DataFrame({
    ...     "blot": "B1", "strip": 1, "lane": [1, 2, 1, 2], "sample_id": ["a", "b"] * 2,
    ...     "lane_kind": "sample", "load_ug": np.nan, "target": ["X", "X", "GAPDH", "GAPDH"],
    ...     "role": ["target", "target", "loading_control", "loading_control"],
    ...     "total_target": "", "volume": [10.0, 30.0, 90.0, 110.0]})
    >>> normalise_lane_signals(lanes)["normalised"].round(3).tolist()
    [11.111, 27.273]
    """
    keys = _LANE_KEYS
    is_loading = lane_signals["role"].isin(LOADING_ROLES)
    lane_signals = lane_signals.assign(relative_sd=_relative_sd(lane_signals))
    loading = lane_signals.loc[is_loading, [*keys, "lane_kind", "target", "volume", "relative_sd"]].rename(
        columns={"target": "loading_target", "volume": "loading_volume", "relative_sd": "loading_relative_sd"})
    # The reference is the blot's median *sample* lane: a calibrator dilution series would
    # otherwise pull it down. A blot of calibrators only falls back to all its lanes.
    median_all = loading.groupby("blot")["loading_volume"].median()
    median_samples = loading[loading["lane_kind"] == "sample"].groupby("blot")["loading_volume"].median()
    loading_median = median_samples.reindex(median_all.index).fillna(median_all)
    loading["loading_factor"] = loading["loading_volume"] / loading["blot"].map(loading_median)
    loading = loading.drop(columns="lane_kind")
    # A lane without loading signal cannot be normalised: NaN, not infinity.
    loading["loading_factor"] = loading["loading_factor"].where(loading["loading_factor"] > 0)

    measured = lane_signals[~is_loading].merge(loading, on=keys, how="left", validate="many_to_one")
    measured["normalised"] = measured["volume"] / measured["loading_factor"]

    totals = measured[[*keys, "target", "normalised", "relative_sd"]].rename(
        columns={"target": "total_target", "normalised": "total_normalised", "relative_sd": "total_relative_sd"})
    measured = measured.merge(totals, on=[*keys, "total_target"], how="left", validate="many_to_one")
    measured["ratio_to_total"] = measured["normalised"] / measured["total_normalised"].where(
        measured["total_normalised"] > 0)
    has_total = measured["total_target"].fillna("").astype(str) != ""
    uncalibrated = measured["ratio_to_total"].where(has_total, measured["normalised"])
    measured["value_kind"] = np.where(has_total, "ratio_to_total", "normalised")
    # Relative measurement variances add: a ratio to total shares the lane's loading, which
    # cancels; a normalised value carries the loading band's uncertainty.
    uncalibrated_relative_variance = np.where(
        has_total, measured["relative_sd"] ** 2 + measured["total_relative_sd"] ** 2,
        measured["relative_sd"] ** 2 + measured["loading_relative_sd"] ** 2)

    reference_load = _calibrator_reference_load(measured)
    measured["uncalibrated_value"] = uncalibrated
    at_reference = (measured["lane_kind"] == "calibrator") & (
        measured["load_ug"].isna() & measured["blot"].map(reference_load).isna()
        | (measured["load_ug"] == measured["blot"].map(reference_load)))
    measured["uncalibrated_relative_variance"] = uncalibrated_relative_variance
    reference_lanes = measured[at_reference].groupby(["blot", "target"])
    calibrator_value = reference_lanes["uncalibrated_value"].mean()
    # The mean of n lanes: its relative variance is the mean lane variance over n.
    calibrator_variance = reference_lanes["uncalibrated_relative_variance"].mean() / reference_lanes.size()
    measured = measured.join(calibrator_value.rename("calibrator_value"), on=["blot", "target"])
    measured = measured.join(calibrator_variance.rename("calibrator_relative_variance"), on=["blot", "target"])
    calibrated = measured["calibrator_value"].notna()
    measured["value"] = uncalibrated.where(~calibrated, uncalibrated / measured["calibrator_value"])
    measured["value_kind"] = measured["value_kind"].where(~calibrated, measured["value_kind"] + "/calibrator")
    relative_variance = measured["uncalibrated_relative_variance"] + measured["calibrator_relative_variance"].where(
        calibrated, 0.0)
    measured["value_sd"] = measured["value"].abs() * np.sqrt(relative_variance)
    measured = measured.drop(columns=["relative_sd", "loading_relative_sd", "total_relative_sd",
                                      "uncalibrated_relative_variance", "calibrator_relative_variance"])
    return measured.reset_index(drop=True)


def _relative_sd(lane_signals):
    """Each band's measurement SD relative to its volume (NaN without ``volume_sd``)."""
    if "volume_sd" not in lane_signals:
        return pd.Series(np.nan, index=lane_signals.index)
    volume = lane_signals["volume"].where(lane_signals["volume"].abs() > 0)
    return (lane_signals["volume_sd"] / volume).abs()


def sample_values(normalised_lanes, samples):
    """One row per sample and target: the ``normalized.csv`` table.

    Technical replicates (a sample loaded in several lanes or on several blots) are
    averaged; ``blot`` and ``lane`` then list every lane used, separated by ``;``.

    Parameters
    ----------
    normalised_lanes : pandas.DataFrame
        Output of :func:`normalise_lane_signals`.
    samples : pandas.DataFrame
        The sample sheet with real post-dose times (see :func:`blotquant.timing.post_dose_minutes`).

    Returns
    -------
    pandas.DataFrame
        Sample columns (``sample_id``, ``subject``, ``group``, ``dose_mg_kg``,
        ``nominal_min``, ``actual_min`` and any further sample-sheet columns), then
        ``target``, ``role``, ``total_target``, ``blot``, ``lane``, ``n_lanes``, ``volume``,
        ``loading_volume``, ``loading_factor``, ``normalised``, ``total_normalised``,
        ``ratio_to_total``, ``calibrator_value``, ``value``, ``value_sd``, ``value_kind``,
        ``saturated``, ``snr``, ``detected``.
    """
    lanes = normalised_lanes[normalised_lanes["lane_kind"] == "sample"].copy()
    lanes["lane_label"] = lanes["lane"].astype(int).astype(str)
    numeric = ["volume", "loading_volume", "loading_factor", "normalised", "total_normalised",
               "ratio_to_total", "calibrator_value", "value"]
    aggregations = {column: (column, "mean") for column in numeric}
    # The SD of a mean of n replicate lanes whose errors are independent.
    aggregations["value_sd"] = ("value_sd", lambda sd: np.sqrt((sd**2).sum(min_count=1)) / sd.size)
    aggregations.update(
        role=("role", "first"),
        total_target=("total_target", "first"),
        value_kind=("value_kind", "first"),
        blot=("blot", lambda s: ";".join(map(str, s))),
        lane=("lane_label", ";".join),
        n_lanes=("lane", "size"),
        saturated=("saturated", "any"),
        snr=("snr", "min"),
        detected=("detected", "all"),
    )
    per_sample = lanes.groupby(["sample_id", "target"], sort=False).agg(**aggregations).reset_index()
    sample_columns = [c for c in samples.columns if c not in ("reference_time", "time_problem")]
    table = samples[sample_columns].merge(per_sample, on="sample_id", how="inner", validate="one_to_many")
    ordered = [*sample_columns, "target", "role", "total_target", "blot", "lane", "n_lanes",
               *numeric[:-1], "value", "value_sd", "value_kind", "saturated", "snr", "detected"]
    return table[ordered].sort_values(["target", "group", "nominal_min", "sample_id"],
                                      kind="stable").reset_index(drop=True)
