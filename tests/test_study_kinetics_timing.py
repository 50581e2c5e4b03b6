"""Expected-kinetics data file and real post-dose times."""

import math

import numpy as np
import pandas as pd
import pytest

from blotquant.errors import StudyError
from blotquant.kinetics import (
    classify_post_dose_time,
    describe_window,
    kinetics_for_targets,
    load_expected_kinetics,
    target_key,
)
from blotquant.timing import collection_drift, post_dose_minutes


def test_default_kinetics_cover_the_required_targets_with_sources():
    table = load_expected_kinetics().set_index("target")
    fast = ["p-mTOR", "p-p70S6K", "p-4E-BP1", "p-ERK", "p-Akt"]
    for target in fast:  # up by about 30 min, back to baseline by about 2 h
        row = table.loc[target]
        assert row["direction"] == "up" and row["onset_min"] <= 30 and row["baseline_min"] == 120
        assert row["peak_first_min"] <= 30 <= row["peak_last_min"] or row["peak_first_min"] == 30
    assert table.loc["p-eEF2", "direction"] == "down" and table.loc["p-eEF2", "peak_first_min"] == 30
    assert table.loc["BDNF", "direction"] == "up" and table.loc["BDNF", "peak_first_min"] == 30
    for target in ("PSD-95", "GluA1", "synapsin I"):  # rising from about 2 h, higher at about 6 h
        row = table.loc[target]
        assert row["onset_min"] == 120 and row["peak_first_min"] == 360 and math.isnan(row["baseline_min"])
    assert (table["source"].str.contains("doi:10.")).all()
    # Nobody here could read the figures of the sources: every number is marked approximate.
    assert table["approximate"].all()
    assert (table["origin"] == "default").all()


def test_targets_match_by_name_or_alias_ignoring_case_and_dashes():
    table = load_expected_kinetics()
    found = kinetics_for_targets(["pmTOR", "P-MTOR ser2448", "GluR1", "mTOR", "unknown"], table)
    assert found["target"].tolist() == ["pmTOR", "P-MTOR ser2448", "GluR1"]
    assert found["kinetics_name"].tolist() == ["p-mTOR", "p-mTOR", "GluA1"]
    assert target_key("p-mTOR") != target_key("mTOR")


def test_study_overrides_replace_keys_and_add_targets():
    table = load_expected_kinetics(overrides={"p-mTOR": {"baseline_min": 180},
                                              "Arc": {"direction": "up", "onset_min": 30, "peak_min": 60}})
    rows = table.set_index("target")
    assert rows.loc["p-mTOR", "baseline_min"] == 180 and rows.loc["p-mTOR", "onset_min"] == 15
    assert rows.loc["p-mTOR", "origin"] == "study" and "study.toml" in rows.loc["p-mTOR", "source"]
    assert rows.loc["Arc", "peak_first_min"] == rows.loc["Arc", "peak_last_min"] == 60
    arc = table[table["target"] == "Arc"].iloc[0]
    assert describe_window(arc) == ("Arc is expected to be elevated from about 30 min on, largest change near "
                                    "60 min after the dose")


@pytest.mark.parametrize("override, message", [
    ({"p-mTOR": {"direction": "sideways"}}, "direction"),
    ({"p-mTOR": {"baseline_min": 10}}, "not after onset_min"),
    ({"Arc": {"direction": "up"}}, "onset_min is missing"),
    ({"p-mTOR": {"peak_min": [60, 30]}}, "peak_min"),
    ({"p-mTOR": {"onset": 5}}, "unknown key"),
])
def test_bad_overrides_name_the_table_and_the_fix(override, message):
    with pytest.raises(StudyError, match=message) as info:
        load_expected_kinetics(overrides=override)
    assert str(info.value).startswith("study.toml: [kinetics.")


def test_kinetics_file_errors(tmp_path):
    with pytest.raises(StudyError, match="not found"):
        load_expected_kinetics(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[[target]\n")
    with pytest.raises(StudyError, match="not valid TOML"):
        load_expected_kinetics(tmp_path / "bad.toml")


def test_classify_post_dose_time():
    result = classify_post_dose_time([5, 15, 119, 120, 240, np.nan], 15, 120)
    assert result.tolist() == ["before_onset", "in_window", "in_window", "after_baseline", "after_baseline",
                               "unknown"]
    # No return expected: late times stay inside the window.
    assert classify_post_dose_time([600], 120, np.nan).tolist() == ["in_window"]


def _times(dose, collected, infusion=0):
    return pd.DataFrame({"dose_start": pd.to_datetime(dose), "collected_at": pd.to_datetime(collected),
                         "infusion_min": infusion, "nominal_min": 30})


def test_post_dose_minutes_from_dose_start_and_from_infusion_end():
    samples = _times(["2024-03-05 09:00", "2024-03-05 23:50"], ["2024-03-05 09:40", "2024-03-06 00:35"],
                     infusion=[10, 0])
    assert post_dose_minutes(samples)["actual_min"].tolist() == [40.0, 45.0]  # across midnight
    timed = post_dose_minutes(samples, time_reference="infusion_end")
    assert timed["actual_min"].tolist() == [30.0, 45.0]
    assert (timed["time_problem"] == "").all()
    assert timed["reference_time"].iloc[0] == pd.Timestamp("2024-03-05 09:10")
    with pytest.raises(ValueError):
        post_dose_minutes(samples, time_reference="lunch")


def test_missing_times_and_collection_before_dose_are_marked_not_guessed():
    samples = _times(["2024-03-05 09:00", None, "2024-03-05 09:00", "2024-03-05 09:00"],
                     ["2024-03-05 08:50", "2024-03-05 09:30", None, "2024-03-05 09:20"], infusion=30)
    timed = post_dose_minutes(samples, time_reference="infusion_end")
    assert timed["time_problem"].tolist() == ["collected_before_dose", "missing", "missing",
                                              "collected_during_infusion"]
    assert timed["actual_min"].isna().all()
    assert post_dose_minutes(samples)["actual_min"].tolist()[3] == 20.0


def test_collection_drift_tolerance_grows_with_time():
    timed = pd.DataFrame({"actual_min": [34.0, 36.0, 75.0, 390.0, 400.0, np.nan],
                          "nominal_min": [30, 30, 30, 360, 360, 30]})
    drift = collection_drift(timed)
    assert drift["drift_min"].tolist()[:5] == [4.0, 6.0, 45.0, 30.0, 40.0]
    assert drift["drift_tolerance_min"].tolist()[:4] == [5.0, 5.0, 5.0, 36.0]
    assert drift["drifted"].tolist() == [False, True, True, False, True, False]
    assert collection_drift(timed, tolerance_min=10)["drifted"].tolist()[:2] == [False, False]
