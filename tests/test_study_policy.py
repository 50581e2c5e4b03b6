"""The analysis policy: flagged and drifted samples leave the statistics, visibly, with a sensitivity table."""

import numpy as np
import pandas as pd
import pytest
from study_helpers import (
    hand_bands,
    layout_rows,
    pmtor_volumes,
    sample_rows,
    write_study,
)
from test_study_flags import CLEAN_DESIGN, LOADS, only, replicate, run, sample_folds

from blotquant.errors import StudyError
from blotquant.flags import group_flags
from blotquant.normalise import normalise_lane_signals
from blotquant.policy import assign_timepoints
from blotquant.study import analyse_study
from blotquant.study_files import load_study


def lane_of(result, sample_id):
    layout = result.study.layout
    return int(layout.loc[layout["sample_id"] == sample_id, "lane"].iloc[0])


def cell(table, target, group, minutes):
    return table.set_index(["target", "group", "nominal_min"]).loc[(target, group, minutes)]


WITH_120 = CLEAN_DESIGN + [("vehicle", 120, 3), ("ketamine", 120, 3)]


def overloaded_run(tmp_path, settings=None):
    """ket60-1's lane over-loaded tenfold: its p-mTOR band clips and reads ten times too high."""
    samples = sample_rows(WITH_120)
    lane = next(i for i, s in enumerate(samples, start=2) if s["sample_id"] == "ket60-1")
    base = pmtor_volumes(sample_folds(samples), {s["sample_id"]: LOADS[replicate(s["sample_id"])] for s in samples})

    def volume_of(image, layout_lane):
        factor = 10.0 if image["target"] == "p-mTOR" and layout_lane["sample_id"] == "ket60-1" else 1.0
        return base(image, layout_lane) * factor

    return run(tmp_path, design=WITH_120, volumes=volume_of, settings=settings,
               lanes={("p-mTOR", "B1", lane): {"saturated": True, "saturated_pixels": 140}})


def test_a_saturated_sample_leaves_the_mean_and_the_sensitivity_table_shows_what_it_would_do(tmp_path):
    result = overloaded_run(tmp_path)
    row = result.normalized.set_index(["sample_id", "target"]).loc[("ket60-1", "p-mTOR")]
    assert not row["included"] and row["exclusion_reason"] == "SATURATED_BAND (p-mTOR)"
    # Its total (mTOR) is not saturated, and stays in.
    assert result.normalized.set_index(["sample_id", "target"]).loc[("ket60-1", "mTOR"), "included"]
    primary = cell(result.timecourse, "p-mTOR", "ketamine", 60)
    assert primary["n"] == 2
    assert primary["fold_change"] == pytest.approx(1.6 * (1.0 + 1.07) / 2, rel=1e-6)
    sensitivity = result.sensitivity.set_index(["target", "group", "nominal_min"]).loc[("p-mTOR", "ketamine", 60)]
    assert sensitivity["fold_change_all"] == pytest.approx(1.6 * (0.93 * 10 + 1.0 + 1.07) / 3, rel=1e-6)
    assert sensitivity["n_all"] == 3 and sensitivity["n_left_out"] == 1
    assert sensitivity["conclusion_changes"]
    # The unaffected timepoint's conclusion stands.
    assert not result.sensitivity.set_index(["target", "group", "nominal_min"]).loc[
        ("p-mTOR", "ketamine", 30), "conclusion_changes"]
    # The peak estimate uses the analysed values too: 30 min (2.0x), not the inflated 60 min.
    peak = result.peaks.set_index(["target", "group"]).loc[("p-mTOR", "ketamine")]
    assert peak["peak_min"] == 30


def test_the_policy_can_be_turned_off(tmp_path):
    result = overloaded_run(tmp_path)
    study_file = tmp_path / "study.toml"
    study_file.write_text(study_file.read_text() + "\n[statistics]\nexclude_flagged = false\ntimepoint = \"nominal\"\n")
    study = load_study(study_file)
    assert study.exclude_flagged is False and study.timepoint == "nominal"
    kept = analyse_study(study, result.bands)
    assert kept.normalized["included"].all()
    assert cell(kept.timecourse, "p-mTOR", "ketamine", 60)["n"] == 3
    assert not kept.sensitivity["conclusion_changes"].any()


@pytest.mark.parametrize("text", ['timepoint = "real"', "exclude_flagged = 1"])
def test_a_policy_that_cannot_be_right_is_refused(tmp_path, text):
    run(tmp_path)
    study_file = tmp_path / "study.toml"
    study_file.write_text(study_file.read_text() + f"\n[statistics]\n{text}\n")
    with pytest.raises(StudyError, match=r"\[statistics\]"):
        load_study(study_file)


def test_drifted_samples_are_analysed_at_their_real_time(tmp_path):
    design = CLEAN_DESIGN + [("vehicle", 120, 3), ("ketamine", 120, 3)]
    # 52 min for 30 (near no planned time), 62 for 30 (the 60-min timepoint), 33 for 30 (on time).
    result = run(tmp_path, design=design, late={"ket30-1": 52, "ket30-2": 62, "veh30-1": 33})
    table = result.normalized[result.normalized["target"] == "p-mTOR"].set_index("sample_id")
    assert np.isnan(table.loc["ket30-1", "timepoint_min"]) and not table.loc["ket30-1", "included"]
    assert "collected at 52 min, within the tolerance of no planned timepoint" in table.loc["ket30-1",
                                                                                           "exclusion_reason"]
    assert table.loc["ket30-2", "timepoint_min"] == 60 and table.loc["ket30-2", "included"]
    assert table.loc["veh30-1", "timepoint_min"] == 30
    at_30 = cell(result.timecourse, "p-mTOR", "ketamine", 30)
    at_60 = cell(result.timecourse, "p-mTOR", "ketamine", 60)
    assert at_30["n"] == 1 and at_60["n"] == 4
    assert at_30["actual_min_max"] == 30  # the mean real time is the timepoint's, not 37
    drift = only(result, "COLLECTION_TIME_DRIFT").set_index("sample_id")
    assert "left out of the time course" in drift.loc["ket30-1", "message"]
    assert "analysed at the 60-min timepoint" in drift.loc["ket30-2", "message"]


def test_timepoint_nominal_keeps_drifted_samples_where_they_were_planned(tmp_path):
    result = run(tmp_path, late={"ket30-1": 52})
    assert cell(result.timecourse, "p-mTOR", "ketamine", 30)["n"] == 2
    study_file = tmp_path / "study.toml"
    study_file.write_text(study_file.read_text() + "\n[statistics]\ntimepoint = \"nominal\"\n")
    study = load_study(study_file)
    nominal = analyse_study(study, result.bands)
    assert cell(nominal.timecourse, "p-mTOR", "ketamine", 30)["n"] == 3
    assert "analysed at its planned timepoint" in only(nominal, "COLLECTION_TIME_DRIFT").iloc[0]["message"]


def test_a_collection_before_the_dose_leaves_every_target(tmp_path):
    samples = sample_rows(CLEAN_DESIGN)
    bad = next(s for s in samples if s["sample_id"] == "ket30-2")
    bad["collected_at"] = "2024-03-05T08:00:00"
    study = load_study(write_study(tmp_path, samples=samples, layout=layout_rows(samples)))
    result = analyse_study(study, hand_bands(study, pmtor_volumes(sample_folds(samples))))
    rows = result.normalized[result.normalized["sample_id"] == "ket30-2"]
    assert len(rows) == 2 and not rows["included"].any()
    assert all(reason.startswith("TIME_ORDER_INVALID") for reason in rows["exclusion_reason"])
    assert cell(result.timecourse, "p-mTOR", "ketamine", 30)["n"] == 2
    assert "left out of the statistics" in only(result, "TIME_ORDER_INVALID").iloc[0]["message"]


def test_a_saturated_loading_band_leaves_every_target_of_that_lane(tmp_path):
    result = run(tmp_path, lanes={("GAPDH", "B1", 6): {"saturated": True, "saturated_pixels": 50}})
    sample = result.study.layout.set_index("lane").loc[6, "sample_id"]
    rows = result.normalized[result.normalized["sample_id"] == sample]
    assert set(rows["target"]) == {"p-mTOR", "mTOR"} and not rows["included"].any()
    assert set(rows["exclusion_reason"]) == {"SATURATED_BAND (GAPDH)"}
    others = result.normalized[result.normalized["sample_id"] != sample]
    assert others["included"].all()


def test_a_band_missing_where_the_others_show_one_is_an_error_and_left_out(tmp_path):
    result = run(tmp_path, lanes={("p-mTOR", "B1", 9): {"detected": False, "snr": 2.0}})
    flag = only(result, "BAND_NOT_DETECTED").iloc[0]
    assert flag["severity"] == "error" and "probably failed" in flag["message"]
    sample = result.study.layout.set_index("lane").loc[9, "sample_id"]
    row = result.normalized.set_index(["sample_id", "target"]).loc[(sample, "p-mTOR")]
    assert not row["included"] and row["exclusion_reason"] == "BAND_NOT_DETECTED (p-mTOR)"
    # A target no lane shows is a warning about the window, not a failed lane.
    nothing = run(tmp_path / "none", lanes={("p-mTOR", "B1", lane): {"detected": False} for lane in range(1, 14)})
    assert set(only(nothing, "BAND_NOT_DETECTED")["severity"]) == {"warning"}
    assert nothing.normalized["included"].all()


def test_flags_are_grouped_into_one_entry_per_problem(tmp_path):
    # No vehicle group at 120 min and long infusions without a declared reference.
    design = CLEAN_DESIGN + [("ketamine", 120, 3)]
    result = run(tmp_path, design=design, infusion_min=40, settings={"time_reference": None})
    assert len(only(result, "REFERENCE_AMBIGUOUS")) == 1
    grouped = group_flags(result.flags).set_index("code")
    entry = grouped.loc["NO_TIME_MATCHED_CONTROL"]
    assert entry["target"] == "" and "ket120-1, ket120-2, ket120-3" in entry["message"]
    assert "Add time-matched" in entry["message"]
    assert grouped.index.is_unique
    # Eight samples' drift is one entry naming the eight, with one example message and what to do.
    late = {f"ket{t}-{k}": t + 30 for t in (30, 60) for k in (1, 2, 3)} | {"veh30-1": 70, "veh60-1": 100}
    drifted = group_flags(run(tmp_path / "late", late=late).flags).set_index("code").loc["COLLECTION_TIME_DRIFT"]
    assert drifted["n_samples"] == 8 and drifted["samples"].count(",") == 7
    assert drifted["message"].startswith("real post-dose time far from the planned one: 8 flags. For example,")
    assert "collection log" in drifted["action"]


def test_measurement_uncertainty_is_carried_to_each_value():
    lanes = pd.DataFrame({
        "blot": "B1", "strip": 1, "lane": [1, 1, 1], "sample_id": "a", "lane_kind": "sample",
        "load_ug": np.nan, "target": ["p-X", "X", "GAPDH"], "role": ["target", "total", "loading_control"],
        "total_target": ["X", "", ""], "volume": [30.0, 60.0, 100.0], "volume_sd": [3.0, 3.0, 2.0]})
    values = normalise_lane_signals(lanes).set_index("target")
    # The ratio to total shares the loading band, which cancels: 10% and 5% add in quadrature.
    assert values.loc["p-X", "value_sd"] == pytest.approx(0.5 * np.hypot(0.10, 0.05))
    # The total, normalised by GAPDH alone, carries GAPDH's 2% as well.
    assert values.loc["X", "value_sd"] == pytest.approx(values.loc["X", "value"] * np.hypot(0.05, 0.02))


def test_measurement_sd_is_reported_beside_the_spread_between_animals(tmp_path):
    samples = sample_rows(CLEAN_DESIGN)
    study = load_study(write_study(tmp_path, samples=samples, layout=layout_rows(samples)))
    bands = hand_bands(study, pmtor_volumes(sample_folds(samples)))
    bands["volume_sd"] = 0.04 * bands["volume"]
    result = analyse_study(study, bands)
    p_mtor = result.normalized[result.normalized["target"] == "p-mTOR"]
    # 4% on the p-mTOR band and 4% on mTOR; the calibrator lane's ratio carries the same again.
    assert p_mtor["value_sd"].to_numpy() == pytest.approx(0.08 * p_mtor["value"].to_numpy())
    cell_values = p_mtor[(p_mtor["group"] == "ketamine") & (p_mtor["nominal_min"] == 30)]["value"].to_numpy()
    row = cell(result.timecourse, "p-mTOR", "ketamine", 30)
    assert row["measurement_sd"] == pytest.approx(0.08 * np.sqrt(np.mean(cell_values**2)))
    assert row["sd"] == pytest.approx(np.std(cell_values, ddof=1))


def test_assign_timepoints_picks_the_nearest_within_tolerance():
    samples = pd.DataFrame({"sample_id": list("abcde"), "nominal_min": [30, 30, 60, 240, 30],
                            "actual_min": [36.0, 58.0, 120.0, 262.0, np.nan]})
    assigned = assign_timepoints(samples)
    np.testing.assert_array_equal(assigned["timepoint_min"], [np.nan, 60, np.nan, 240, np.nan])
    assert assigned.loc[4, "timing_exclusion"] == "real post-dose time unknown"
    assert "collected at 120 min" in assigned.loc[2, "timing_exclusion"]
    assert assign_timepoints(samples, mode="nominal")["timepoint_min"].tolist() == [30, 30, 60, 240, 30]


def test_a_saturated_calibrator_band_leaves_every_value_it_scales(tmp_path):
    # Calibrator lane 1 of B1 scales both blots' values of B1 only; B2 has its own.
    result = run(tmp_path / "target", blots=("B1", "B2"),
                 lanes={("p-mTOR", "B1", 1): {"saturated": True, "saturated_pixels": 80}})
    normalized = result.normalized
    on_b1 = normalized["blot"].astype(str) == "B1"
    assert not normalized.loc[on_b1 & (normalized["target"] == "p-mTOR"), "included"].any()
    assert set(normalized.loc[on_b1 & (normalized["target"] == "p-mTOR"), "exclusion_reason"]) == {
        "SATURATED_BAND (calibrator lane, p-mTOR)"}
    # mTOR values on B1 and every value on B2 are not scaled by that band.
    assert normalized.loc[~on_b1 | (normalized["target"] == "mTOR"), "included"].all()
    message = result.flags.set_index("code").loc["SATURATED_BAND", "message"]
    assert "every p-mTOR value scaled by this calibrator lane on blot B1 is affected" in message

    loading = run(tmp_path / "loading", blots=("B1", "B2"),
                  lanes={("GAPDH", "B2", 1): {"saturated": True, "saturated_pixels": 80}})
    normalized = loading.normalized
    on_b2 = normalized["blot"].astype(str) == "B2"
    assert not normalized.loc[on_b2, "included"].any() and normalized.loc[~on_b2, "included"].all()
    assert set(normalized.loc[on_b2, "exclusion_reason"]) == {"SATURATED_BAND (calibrator lane, GAPDH)"}
