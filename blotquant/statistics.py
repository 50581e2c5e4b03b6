"""Statistics of a study: time-course summaries, tests against time-matched controls,
peak and return-to-baseline times, and the linear range of a calibrator dilution series.

Every function takes tidy tables (``normalized.csv`` rows or per-lane signals) and
returns a new table; nothing here reads files or knows about images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

#: Roles whose values enter the time course (loading signals only normalise).
TIMECOURSE_ROLES = ("target", "total")

P_ADJUST_METHODS = ("holm", "bh")


def analysed_values(normalized):
    """The ``normalized.csv`` rows that enter the statistics, at the timepoint they are analysed at.

    Rows of :data:`TIMECOURSE_ROLES` with a value; when the table carries the analysis
    policy's columns (:func:`blotquant.policy.apply_analysis_policy`), only ``included``
    rows, and ``nominal_min`` replaced by ``timepoint_min`` (the planned timepoint a
    sample is analysed at, which under ``timepoint = "actual"`` can differ from the
    one it was planned for).
    """
    rows = normalized[normalized["role"].isin(TIMECOURSE_ROLES) & normalized["value"].notna()]
    if "included" in rows:
        rows = rows[rows["included"].astype(bool)]
    if "timepoint_min" in rows:
        rows = rows.assign(nominal_min=rows["timepoint_min"])
    return rows


def adjust_p_values(p_values, method="holm"):
    """Correct p-values for multiple comparisons.

    Parameters
    ----------
    p_values : array_like
        Raw p-values; NaN entries are ignored and stay NaN.
    method : {"holm", "bh"}
        Holm's step-down family-wise error control, or Benjamini-Hochberg
        false discovery rate.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, in the input order.

    Examples
    --------
    >>> adjust_p_values([0.01, 0.04, 0.03], "holm").round(4).tolist()
    [0.03, 0.06, 0.06]
    >>> adjust_p_values([0.01, 0.04, 0.03], "bh").round(4).tolist()
    [0.03, 0.04, 0.04]
    """
    if method not in P_ADJUST_METHODS:
        raise ValueError(f"method must be one of {P_ADJUST_METHODS}, not {method!r}")
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    valid = ~np.isnan(p)
    if not valid.any():
        return adjusted
    if method == "bh":
        adjusted[valid] = stats.false_discovery_control(p[valid], method="bh")
        return adjusted
    # Holm's step-down: scipy has no implementation of its own.
    m = int(valid.sum())
    order = np.argsort(p[valid], kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[valid][order])
    result = np.empty(m)
    result[order] = np.minimum(stepped, 1.0)
    adjusted[valid] = result
    return adjusted


def welch_t_test(mean_a, sd_a, n_a, mean_b, sd_b, n_b):
    """Two-sided Welch t-test from summary statistics, vectorised over arrays.

    Returns ``(t, df, p)``; NaN where a group has fewer than two values or both
    groups have zero spread.

    Examples
    --------
    >>> t, df, p = welch_t_test(2.0, 0.5, 4, 1.0, 0.4, 4)
    >>> round(float(p), 4)
    0.0218
    """
    mean_a, sd_a, n_a, mean_b, sd_b, n_b = (np.asarray(v, dtype=float)
                                            for v in (mean_a, sd_a, n_a, mean_b, sd_b, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        t, p = stats.ttest_ind_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b, equal_var=False)
        # scipy does not return the Welch-Satterthwaite degrees of freedom; the report shows them.
        var_a, var_b = sd_a**2 / n_a, sd_b**2 / n_b
        df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
        undefined = (n_a < 2) | (n_b < 2) | ~(var_a + var_b > 0)
    return (np.where(undefined, np.nan, t), np.where(undefined, np.nan, df),
            np.where(undefined, np.nan, p))


def summarise_timecourse(normalized, *, control_group, p_adjust="holm"):
    """Per target, group and nominal time: n, mean, SEM, fold change and test vs control.

    Parameters
    ----------
    normalized : pandas.DataFrame
        One row per sample and target (``normalized.csv``) with ``target``, ``role``,
        ``group``, ``nominal_min``, ``actual_min`` and ``value``; optionally ``value_sd``
        (measurement uncertainty) and the policy's ``included`` and ``timepoint_min``
        (see :func:`analysed_values`).
    control_group : str
        The group every other group is compared with at the same nominal time.
    p_adjust : {"holm", "bh"}
        Correction for multiple comparisons; the family is every treated-versus-control
        comparison of one target.

    Returns
    -------
    pandas.DataFrame
        ``target``, ``group``, ``nominal_min`` (the planned timepoint analysed), ``n``, ``mean``,
        ``sd`` (between animals), ``measurement_sd`` (root mean square of the samples'
        ``value_sd``: what quantification alone contributes), ``sem``, ``actual_min_mean``, ``actual_min_min``, ``actual_min_max``, ``control_n``,
        ``control_mean``, ``fold_change``, ``t``, ``df``, ``p_value``, ``p_adjusted``,
        ``test``. Control rows have ``fold_change`` 1 and no test; treated rows without
        a time-matched control have NaN fold change and p-values.
    """
    values = analysed_values(normalized)
    values = values.assign(value_variance=values["value_sd"] ** 2 if "value_sd" in values else np.nan)
    keys = ["target", "group", "nominal_min"]
    summary = values.groupby(keys, sort=True).agg(
        n=("value", "size"),
        mean=("value", "mean"),
        sd=("value", "std"),
        measurement_variance=("value_variance", "mean"),
        actual_min_mean=("actual_min", "mean"),
        actual_min_min=("actual_min", "min"),
        actual_min_max=("actual_min", "max"),
    ).reset_index()
    summary["sem"] = summary["sd"] / np.sqrt(summary["n"])
    summary["measurement_sd"] = np.sqrt(summary.pop("measurement_variance"))
    control = summary.loc[summary["group"] == control_group,
                          ["target", "nominal_min", "n", "mean", "sd"]].rename(
        columns={"n": "control_n", "mean": "control_mean", "sd": "control_sd"})
    summary = summary.merge(control, on=["target", "nominal_min"], how="left")
    summary["fold_change"] = summary["mean"] / summary["control_mean"]
    is_control = summary["group"] == control_group
    t, df, p = welch_t_test(summary["mean"], summary["sd"], summary["n"],
                            summary["control_mean"], summary["control_sd"], summary["control_n"])
    summary["t"], summary["df"], summary["p_value"] = t, df, p
    summary.loc[is_control, ["t", "df", "p_value"]] = np.nan
    summary["p_adjusted"] = np.nan
    for _, family in summary[~is_control].groupby("target").groups.items():
        summary.loc[family, "p_adjusted"] = adjust_p_values(summary.loc[family, "p_value"], p_adjust)
    summary["test"] = np.where(is_control, "", f"Welch t-test vs {control_group}, {p_adjust} adjusted")
    columns = [*keys, "n", "mean", "sd", "measurement_sd", "sem", "actual_min_mean", "actual_min_min", "actual_min_max",
               "control_n", "control_mean", "fold_change", "t", "df", "p_value", "p_adjusted", "test"]
    return summary[columns]


def _bootstrap_fold_changes(treated, control, n_boot, rng):
    """Bootstrap fold changes: resample animals within each timepoint. Shape (n_boot, T)."""
    columns = []
    for treated_values, control_values in zip(treated, control):
        t_means = rng.choice(treated_values, size=(n_boot, len(treated_values))).mean(axis=1)
        c_means = rng.choice(control_values, size=(n_boot, len(control_values))).mean(axis=1)
        columns.append(t_means / c_means)
    return np.column_stack(columns)


PEAK_COLUMNS = ("target", "group", "direction", "n_timepoints", "peak_min", "peak_min_low", "peak_min_high",
                "peak_fold_change", "peak_p_value", "peak_p_adjusted", "return_min_low", "return_min", "note")


def peak_and_return(normalized, timecourse, *, control_group, directions=None, alpha=0.05, n_boot=2000,
                    seed=0, confidence=0.95):
    """Time of the largest change and of the return to baseline, with their uncertainty.

    Only timepoints with a time-matched control count. A target has changed when at
    least one timepoint differs from control in the expected direction (Welch
    ``p_value < alpha``, unadjusted; the adjusted value is reported beside it).

    * Peak: the timepoint of the largest fold change in the expected direction. Its
      interval holds ``confidence`` of the peak times found when animals are resampled
      (bootstrap) within each timepoint.
    * Return to baseline: the first timepoint after the peak whose change is both less
      than half the peak's and no longer significant in the expected direction. The true
      return lies between the previous sampled time (``return_min_low``) and that time
      (``return_min``): the sampling interval is the uncertainty.

    Parameters
    ----------
    normalized : pandas.DataFrame
        ``normalized.csv`` rows (``target``, ``role``, ``group``, ``nominal_min``, ``value``).
    timecourse : pandas.DataFrame
        Output of :func:`summarise_timecourse` on the same rows.
    control_group : str
        The reference group.
    directions : dict, optional
        ``{target: "up" | "down"}``; otherwise the direction of the largest observed
        change is used.
    alpha : float
        Significance level of "differs from control".
    n_boot, seed : int
        Bootstrap resamples and random seed (results are reproducible).
    confidence : float
        Coverage of the peak-time interval.

    Returns
    -------
    pandas.DataFrame
        One row per target and treated group with the columns of :data:`PEAK_COLUMNS`.
    """
    directions = directions or {}
    values = analysed_values(normalized)
    by_cell = values.groupby(["target", "group", "nominal_min"])["value"].apply(np.asarray)
    compared = timecourse[(timecourse["group"] != control_group) & timecourse["fold_change"].notna()]
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2
    rows = []
    for (target, group), series in compared.groupby(["target", "group"], sort=True):
        series = series.sort_values("nominal_min")
        times = series["nominal_min"].to_numpy(float)
        fold = series["fold_change"].to_numpy(float)
        row = dict.fromkeys(PEAK_COLUMNS, np.nan)
        row.update(target=target, group=group, direction=directions.get(target, ""),
                   n_timepoints=len(times), note="")
        rows.append(row)
        if len(times) < 3:
            row["note"] = (f"only {len(times)} timepoint(s) with a time-matched control; "
                           "peak and return need at least 3")
            continue
        logs = np.log(fold)
        if not row["direction"]:
            row["direction"] = "up" if logs[np.nanargmax(np.abs(logs))] > 0 else "down"
        sign = 1.0 if row["direction"] == "up" else -1.0
        changed = (series["p_value"].to_numpy(float) < alpha) & (sign * logs > 0)
        if not changed.any():
            row["note"] = (f"no timepoint differs from {control_group} in the {row['direction']} direction "
                           f"(Welch p < {alpha:g}); no peak to report")
            continue
        peak = int(np.argmax(sign * logs))
        row.update(peak_min=times[peak], peak_fold_change=fold[peak],
                   peak_p_value=series["p_value"].iloc[peak], peak_p_adjusted=series["p_adjusted"].iloc[peak])
        treated = [by_cell[target, group, t] for t in times]
        control = [by_cell[target, control_group, t] for t in times]
        boot_peaks = times[np.argmax(sign * np.log(_bootstrap_fold_changes(treated, control, n_boot, rng)), axis=1)]
        row["peak_min_low"], row["peak_min_high"] = np.quantile(boot_peaks, [tail, 1 - tail],
                                                                method="inverted_cdf")
        half_effect = 0.5 * sign * logs[peak]
        returned = (sign * logs < half_effect) & ~changed
        after = np.flatnonzero(returned[peak + 1:])
        if after.size:
            index = peak + 1 + after[0]
            row["return_min_low"], row["return_min"] = times[index - 1], times[index]
        else:
            row["note"] = f"not back at baseline by the last compared time ({times[-1]:g} min)"
        if not row["peak_p_adjusted"] < alpha:
            row["note"] = "; ".join(filter(None, [row["note"], "the peak is not significant after correction "
                                                  f"for multiple comparisons (adjusted p = {row['peak_p_adjusted']:.3g})"]))
    return pd.DataFrame(rows, columns=list(PEAK_COLUMNS))


def _fit_line(loads, volumes):
    """Least-squares line; returns slope, intercept, R-squared and relative residuals."""
    slope, intercept = np.polyfit(loads, volumes, 1)
    fitted = intercept + slope * loads
    total = np.sum((volumes - volumes.mean()) ** 2)
    r_squared = 1.0 - np.sum((volumes - fitted) ** 2) / total if total > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(volumes - fitted) / np.abs(fitted)
    return slope, intercept, r_squared, relative


def calibrator_linear_range(lane_signals, *, min_points=3, min_r_squared=0.98, max_residual=0.15):
    """Find where band volume is proportional to load, from a calibrator dilution series.

    For every blot and image target with calibrator lanes at ``min_points`` or more
    distinct loads, the widest run of consecutive loads whose straight-line fit has
    ``R^2 >= min_r_squared`` and every point within ``max_residual`` (relative) of the
    line is the linear range; its band volumes bound the volumes that can be trusted.

    Parameters
    ----------
    lane_signals : pandas.DataFrame
        Per-lane signals with ``blot``, ``target``, ``lane_kind``, ``load_ug``, ``volume``.

    Returns
    -------
    pandas.DataFrame
        ``blot``, ``target``, ``n_loads``, ``linear`` (a range was found),
        ``load_low``, ``load_high``, ``volume_low``, ``volume_high``, ``slope``,
        ``intercept``, ``r_squared``.
    """
    series = lane_signals[(lane_signals["lane_kind"] == "calibrator") & lane_signals["load_ug"].notna()
                          & lane_signals["volume"].notna()]
    points = series.groupby(["blot", "target", "load_ug"])["volume"].mean().reset_index()
    rows = []
    for (blot, target), curve in points.groupby(["blot", "target"], sort=True):
        loads, volumes = curve["load_ug"].to_numpy(float), curve["volume"].to_numpy(float)
        row = {"blot": blot, "target": target, "n_loads": len(loads), "linear": False,
               "load_low": np.nan, "load_high": np.nan, "volume_low": np.nan, "volume_high": np.nan,
               "slope": np.nan, "intercept": np.nan, "r_squared": np.nan}
        if len(loads) < min_points:
            continue
        rows.append(row)
        best = None
        for first in range(len(loads)):
            for last in range(first + min_points, len(loads) + 1):
                slope, intercept, r_squared, relative = _fit_line(loads[first:last], volumes[first:last])
                if slope > 0 and r_squared >= min_r_squared and np.all(relative <= max_residual):
                    key = (last - first, loads[last - 1] - loads[first])
                    if best is None or key > best[0]:
                        best = (key, first, last, slope, intercept, r_squared)
        if best is not None:
            _, first, last, slope, intercept, r_squared = best
            row.update(linear=True, load_low=loads[first], load_high=loads[last - 1],
                       volume_low=volumes[first:last].min(), volume_high=volumes[first:last].max(),
                       slope=slope, intercept=intercept, r_squared=r_squared)
    columns = ["blot", "target", "n_loads", "linear", "load_low", "load_high", "volume_low",
               "volume_high", "slope", "intercept", "r_squared"]
    return pd.DataFrame(rows, columns=columns)
