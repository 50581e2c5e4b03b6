"""Numbers of the statistics stage against values worked by hand (and scipy where it has them)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from blotquant.statistics import (
    adjust_p_values,
    calibrator_linear_range,
    peak_and_return,
    summarise_timecourse,
    welch_t_test,
)


def test_holm_matches_hand_worked_values():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, 1*0.04 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert adjust_p_values([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])


def test_bh_matches_hand_worked_values_and_scipy():
    # sorted 0.01, 0.03, 0.04 -> 0.01*3/1, 0.03*3/2, 0.04*3/3 = 0.03, 0.045, 0.04 -> running min from the top
    assert adjust_p_values([0.01, 0.04, 0.03], "bh") == pytest.approx([0.03, 0.04, 0.04])
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert adjust_p_values(p, "bh") == pytest.approx(stats.false_discovery_control(p))


def test_adjustment_ignores_missing_p_values_and_caps_at_one():
    p = [0.2, np.nan, 0.001, 0.05]
    holm = adjust_p_values(p, "holm")
    assert np.isnan(holm[1])
    assert holm[[0, 2, 3]] == pytest.approx([0.2, 0.003, 0.1])
    bh = adjust_p_values(p, "bh")
    assert bh[[0, 2, 3]] == pytest.approx([0.2, 0.003, 0.075])
    assert adjust_p_values([0.6, 0.7], "holm") == pytest.approx([1.0, 1.0])
    assert np.isnan(adjust_p_values([np.nan], "bh")).all()
    with pytest.raises(ValueError):
        adjust_p_values([0.1], "bonferroni-ish")


def test_welch_from_summaries_equals_scipy_on_raw_values():
    a, b = np.array([2.0, 2.4, 1.6, 2.2]), np.array([1.0, 1.2, 0.8])
    t, df, p = welch_t_test(a.mean(), a.std(ddof=1), a.size, b.mean(), b.std(ddof=1), b.size)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    assert df == pytest.approx(expected.df)
    # Undefined with a single animal or no spread at all.
    assert np.isnan(welch_t_test(2.0, np.nan, 1, 1.0, 0.1, 3)[2])
    assert np.isnan(welch_t_test(2.0, 0.0, 3, 1.0, 0.0, 3)[2])


def _normalized(rows):
    table = pd.DataFrame(rows, columns=["sample_id", "target", "group", "nominal_min", "value"])
    table["role"] = "target"
    table["actual_min"] = table["nominal_min"].astype(float)
    return table


def test_timecourse_mean_sem_fold_change_and_test():
    rows = [(f"v{i}", "X", "vehicle", 30, v) for i, v in enumerate([1.0, 1.2, 0.8])]
    rows += [(f"k{i}", "X", "ketamine", 30, v) for i, v in enumerate([2.0, 2.4, 1.6])]
    rows += [(f"w{i}", "X", "vehicle", 120, v) for i, v in enumerate([1.0, 1.1])]
    rows += [(f"m{i}", "X", "ketamine", 120, v) for i, v in enumerate([1.0, 1.3])]
    rows += [(f"n{i}", "X", "ketamine", 240, v) for i, v in enumerate([1.0, 1.2])]  # no vehicle at 240
    table = summarise_timecourse(_normalized(rows), control_group="vehicle")
    at = table.set_index(["group", "nominal_min"])
    vehicle, ketamine = at.loc[("vehicle", 30)], at.loc[("ketamine", 30)]
    # By hand: means 1.0 and 2.0, SD 0.2 and 0.4, SEM = SD / sqrt(3).
    assert (vehicle["n"], vehicle["mean"], vehicle["sem"]) == (3, pytest.approx(1.0), pytest.approx(0.2 / np.sqrt(3)))
    assert ketamine["mean"] == pytest.approx(2.0)
    assert ketamine["sem"] == pytest.approx(0.4 / np.sqrt(3))
    assert ketamine["fold_change"] == pytest.approx(2.0)
    assert vehicle["fold_change"] == pytest.approx(1.0) and np.isnan(vehicle["p_value"])
    # Welch by hand: se = sqrt(0.04/3 + 0.16/3), t = 1/se = 3.873, df = 2.941.
    assert ketamine["t"] == pytest.approx(3.872983, rel=1e-5)
    assert ketamine["df"] == pytest.approx(2.941176, rel=1e-5)
    assert ketamine["p_value"] == pytest.approx(
        stats.ttest_ind([2.0, 2.4, 1.6], [1.0, 1.2, 0.8], equal_var=False).pvalue)
    later = at.loc[("ketamine", 120)]
    assert later["fold_change"] == pytest.approx(1.15 / 1.05)
    # Holm over the target's two comparisons (240 has no control and is not a comparison).
    # Holm by hand for two p-values: the smaller doubled, the larger at least that.
    p30, p120 = ketamine["p_value"], later["p_value"]
    assert p30 < p120
    assert ketamine["p_adjusted"] == pytest.approx(min(1.0, 2 * p30))
    assert later["p_adjusted"] == pytest.approx(min(1.0, max(2 * p30, p120)))
    unmatched = at.loc[("ketamine", 240)]
    assert np.isnan(unmatched["fold_change"]) and np.isnan(unmatched["p_value"])
    assert np.isnan(unmatched["p_adjusted"]) and unmatched["n"] == 2


def test_correction_family_is_per_target_and_bh_is_available():
    rows = []
    for target, shift in (("X", 1.0), ("Y", 0.1)):
        for minutes in (30, 60):
            rows += [(f"v{target}{minutes}{i}", target, "vehicle", minutes, 1 + 0.1 * i) for i in range(3)]
            rows += [(f"k{target}{minutes}{i}", target, "ketamine", minutes, 1 + shift + 0.1 * i) for i in range(3)]
    normalized = _normalized(rows)
    table = summarise_timecourse(normalized, control_group="vehicle", p_adjust="bh")
    treated = table[table["group"] == "ketamine"]
    for _, family in treated.groupby("target"):
        assert family["p_adjusted"].to_numpy() == pytest.approx(adjust_p_values(family["p_value"], "bh"))
    assert (treated["test"] == "Welch t-test vs vehicle, bh adjusted").all()


def _course(folds_by_time, *, n=4, spread=0.05, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for minutes, fold in folds_by_time.items():
        for i in range(n):
            rows.append((f"v{minutes}-{i}", "p-X", "vehicle", minutes, 1.0 + rng.normal(0, spread)))
            rows.append((f"k{minutes}-{i}", "p-X", "drug", minutes, fold + rng.normal(0, spread)))
    return _normalized(rows)


def test_peak_and_return_on_a_transient_rise():
    normalized = _course({15: 1.3, 30: 2.0, 60: 1.6, 120: 1.05, 240: 1.0})
    timecourse = summarise_timecourse(normalized, control_group="vehicle")
    peaks = peak_and_return(normalized, timecourse, control_group="vehicle", directions={"p-X": "up"}, n_boot=500)
    row = peaks.iloc[0]
    assert (row["target"], row["group"], row["direction"]) == ("p-X", "drug", "up")
    assert row["peak_min"] == 30 and row["peak_fold_change"] == pytest.approx(2.0, abs=0.1)
    assert row["peak_min_low"] <= 30 <= row["peak_min_high"]
    # 60 min is still well up; 120 min is back: the return lies between them.
    assert (row["return_min_low"], row["return_min"]) == (60, 120)
    assert row["peak_p_adjusted"] < 0.05 and row["note"] == ""
    again = peak_and_return(normalized, timecourse, control_group="vehicle", n_boot=500)
    assert again.equals(peak_and_return(normalized, timecourse, control_group="vehicle", n_boot=500))
    assert again.iloc[0]["direction"] == "up"  # inferred from the data


def test_peak_and_return_says_when_sampling_does_not_allow_it():
    flat = _course({30: 1.0, 60: 1.0, 120: 1.0}, spread=0.05)
    table = peak_and_return(flat, summarise_timecourse(flat, control_group="vehicle"), control_group="vehicle",
                            directions={"p-X": "up"}, n_boot=200)
    assert np.isnan(table.iloc[0]["peak_min"]) and "no timepoint differs" in table.iloc[0]["note"]
    short = _course({30: 2.0, 60: 1.5})
    table = peak_and_return(short, summarise_timecourse(short, control_group="vehicle"), control_group="vehicle")
    assert "at least 3" in table.iloc[0]["note"]
    rising = _course({30: 1.5, 60: 2.0, 120: 2.5})
    table = peak_and_return(rising, summarise_timecourse(rising, control_group="vehicle"), control_group="vehicle")
    assert table.iloc[0]["peak_min"] == 120 and np.isnan(table.iloc[0]["return_min"])
    assert "not back at baseline" in table.iloc[0]["note"]


def _series(loads, volumes, blot="B1", target="X"):
    return pd.DataFrame({"blot": blot, "target": target, "lane_kind": "calibrator", "load_ug": loads,
                         "volume": volumes})


def test_linear_range_excludes_a_saturating_top_dilution():
    # 5-20 ug exactly proportional, 40 ug flattens (saturation): the linear range is 5-20 ug.
    table = calibrator_linear_range(_series([5, 10, 20, 40], [100.0, 200.0, 400.0, 520.0]))
    row = table.iloc[0]
    assert row["linear"] and (row["load_low"], row["load_high"]) == (5, 20)
    assert (row["volume_low"], row["volume_high"]) == (100, 400)
    assert row["slope"] == pytest.approx(20.0) and row["r_squared"] == pytest.approx(1.0)


def test_linear_range_needs_three_loads_and_reports_a_curve_without_one():
    assert calibrator_linear_range(_series([10, 20], [1.0, 2.0])).empty
    curved = calibrator_linear_range(_series([5, 10, 20, 40], [100.0, 400.0, 420.0, 430.0]))
    assert not curved.iloc[0]["linear"] and np.isnan(curved.iloc[0]["load_low"])
