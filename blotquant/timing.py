"""Real post-dose times of tissue samples from their dosing and collection timestamps.

A planned "30 min" animal is often collected at 38 or 75 min; what the tissue
shows depends on the real time, so every later stage uses it. Times are counted
from the start of dosing or from the end of an infusion, as the study declares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The two accepted origins of post-dose time.
TIME_REFERENCES = ("dose_start", "infusion_end")


def post_dose_minutes(samples, *, time_reference="dose_start"):
    """Add the real post-dose time of every sample.

    Parameters
    ----------
    samples : pandas.DataFrame
        One row per sample with datetime columns ``dose_start`` and ``collected_at``
        (NaT when missing) and a numeric ``infusion_min`` (0 for a bolus).
    time_reference : {"dose_start", "infusion_end"}
        Origin of post-dose time: the start of dosing, or the end of the infusion
        (``dose_start + infusion_min``).

    Returns
    -------
    pandas.DataFrame
        A copy with ``reference_time`` (the origin used), ``actual_min`` (minutes from
        the origin to collection; NaN when a time is missing or collection precedes the
        origin) and ``time_problem``: ``""``, ``"missing"``, ``"collected_before_dose"`` or
        ``"collected_during_infusion"`` (before the end of the infusion when that is the origin).

    Examples
    --------
    >>> s = pd.DataFrame({"dose_start": pd.to_datetime(["2024-01-01 09:00"]),
    ...                   "collected_at": pd.to_datetime(["2024-01-01 09:40"]),
    ...                   "infusion_min": [10]})
    >>> post_dose_minutes(s, time_reference="infusion_end")["actual_min"].tolist()
    [30.0]
    """
    if time_reference not in TIME_REFERENCES:
        raise ValueError(f"time_reference must be one of {TIME_REFERENCES}, not {time_reference!r}")
    timed = samples.copy()
    infusion = pd.to_timedelta(timed["infusion_min"].fillna(0).astype(float), unit="min")
    reference = timed["dose_start"] + infusion if time_reference == "infusion_end" else timed["dose_start"]
    minutes = (timed["collected_at"] - reference).dt.total_seconds() / 60.0
    missing = timed["dose_start"].isna() | timed["collected_at"].isna()
    before_dose = ~missing & (timed["collected_at"] < timed["dose_start"])
    before_reference = ~missing & (minutes < 0)
    timed["reference_time"] = reference
    timed["actual_min"] = minutes.where(~missing & ~before_reference).astype(float)
    timed["time_problem"] = np.select([missing, before_dose, before_reference],
                                      ["missing", "collected_before_dose", "collected_during_infusion"], "")
    return timed


def collection_drift(timed_samples, *, tolerance_min=5.0, tolerance_fraction=0.10):
    """Difference between real and planned post-dose time, and whether it is too large.

    Parameters
    ----------
    timed_samples : pandas.DataFrame
        Output of :func:`post_dose_minutes` with a ``nominal_min`` column.
    tolerance_min, tolerance_fraction : float
        A sample drifts when ``|actual - nominal| > max(tolerance_min,
        tolerance_fraction * nominal)``: 5 min at 30 min, 36 min at 6 h by default.

    Returns
    -------
    pandas.DataFrame
        Columns ``drift_min`` (actual minus nominal, NaN when unknown),
        ``drift_tolerance_min`` and ``drifted`` (bool), on the input's index.

    Examples
    --------
    >>> t = pd.DataFrame({"actual_min": [33.0, 75.0], "nominal_min": [30, 30]})
    >>> collection_drift(t)["drifted"].tolist()
    [False, True]
    """
    nominal = timed_samples["nominal_min"].astype(float)
    drift = timed_samples["actual_min"].astype(float) - nominal
    tolerance = np.maximum(tolerance_min, tolerance_fraction * nominal.abs())
    return pd.DataFrame(
        {"drift_min": drift, "drift_tolerance_min": tolerance, "drifted": drift.abs() > tolerance},
        index=timed_samples.index,
    )


def compare_time_references(samples, *, tolerance_min=5.0, tolerance_fraction=0.10):
    """How punctual the collections are when counted from each time reference.

    For an infusion, "30 min after the dose" may mean after its start or after its end;
    a study that does not say can often be read from its own time stamps: one reference
    makes every collection punctual, the other makes them all late by the infusion's length.

    Parameters
    ----------
    samples : pandas.DataFrame
        The sample sheet (``dose_start``, ``collected_at``, ``infusion_min``, ``nominal_min``).
    tolerance_min, tolerance_fraction : float
        The drift tolerance (see :func:`collection_drift`).

    Returns
    -------
    pandas.DataFrame
        One row per reference of :data:`TIME_REFERENCES`: ``reference``, ``n_timed``
        (samples with a usable time), ``n_punctual``, ``median_drift_min``.
    """
    rows = []
    for reference in TIME_REFERENCES:
        timed = post_dose_minutes(samples, time_reference=reference)
        drift = collection_drift(timed, tolerance_min=tolerance_min, tolerance_fraction=tolerance_fraction)
        known = drift["drift_min"].notna()
        rows.append({"reference": reference, "n_timed": int(known.sum()),
                     "n_punctual": int((known & ~drift["drifted"]).sum()),
                     "median_drift_min": float(drift.loc[known, "drift_min"].median()) if known.any() else np.nan})
    return pd.DataFrame(rows)


def inferred_time_reference(comparison, *, punctual_share=0.9):
    """The reference the time stamps fit, or None when they fit both or neither.

    One reference fits when at least ``punctual_share`` of the timed samples are punctual
    counted from it and fewer than half are counted from the other.

    Examples
    --------
    >>> c = pd.DataFrame({"reference": ["dose_start", "infusion_end"], "n_timed": [12, 12],
    ...                   "n_punctual": [0, 12], "median_drift_min": [40.0, 0.0]})
    >>> inferred_time_reference(c)
    'infusion_end'
    """
    share = comparison["n_punctual"] / comparison["n_timed"].where(comparison["n_timed"] > 0)
    fits = comparison.loc[share >= punctual_share, "reference"].tolist()
    poor = comparison.loc[share < 0.5, "reference"].tolist()
    if len(fits) == 1 and len(poor) == len(comparison) - 1:
        return fits[0]
    return None
