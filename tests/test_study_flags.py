"""Every flag code fires on a realistic problem and stays silent on a clean study."""

import numpy as np
import pytest

from blotquant.flags import FLAG_CODES, FLAG_COLUMNS, flagged_samples
from blotquant.study import analyse_study
from blotquant.study_files import load_study
from study_helpers import hand_bands, layout_rows, pmtor_volumes, sample_rows, write_study

CLEAN_DESIGN = [("vehicle", 30, 3), ("ketamine", 30, 3), ("vehicle", 60, 3), ("ketamine", 60, 3)]
FOLDS = {15: 1.4, 30: 2.0, 60: 1.6, 120: 1.1, 240: 1.0, 360: 1.0}
LOADS = (1.0, 1.05, 0.95)  # the same small spread in every group
ANIMALS = (0.93, 1.0, 1.07)  # animal-to-animal spread of the p-mTOR/mTOR ratio


def replicate(sample_id):
    return int(sample_id.split("-")[1]) - 1


def sample_folds(samples):
    return {s["sample_id"]: (FOLDS[s["nominal_min"]] if s["group"] != "vehicle" else 1.0)
            * ANIMALS[replicate(s["sample_id"])] for s in samples}


def run(tmp_path, *, design=CLEAN_DESIGN, late=None, settings=None, blots=("B1",), calibrator=True,
        dilutions=(), loads=None, lanes=None, images=None, infusion_min=0, volumes=None):
    samples = sample_rows(design, late=late, infusion_min=infusion_min)
    layout = layout_rows(samples, blots=blots, calibrator=calibrator, dilutions=dilutions)
    study = load_study(write_study(tmp_path, samples=samples, layout=layout, settings=settings))
    if loads is None:
        loads = {s["sample_id"]: LOADS[replicate(s["sample_id"])] for s in samples}
    bands = hand_bands(study, volumes or pmtor_volumes(sample_folds(samples), loads), lanes=lanes or {})
    return analyse_study(study, bands, images=images)


def codes(result, severity=None):
    flags = result.flags
    if severity:
        flags = flags[flags["severity"] == severity]
    return sorted(set(flags["code"]))


def only(result, code):
    return result.flags[result.flags["code"] == code]


def test_clean_study_has_no_flags_and_sensible_numbers(tmp_path):
    result = run(tmp_path)
    assert result.flags.empty
    assert list(result.flags.columns) == list(FLAG_COLUMNS)
    p = result.timecourse[(result.timecourse["target"] == "p-mTOR") & (result.timecourse["group"] == "ketamine")]
    assert p["fold_change"].tolist() == pytest.approx([2.0, 1.6])  # loading differences normalised away
    assert (p["p_adjusted"] < 0.05).all()


def test_time_order_invalid(tmp_path):
    result = run(tmp_path, late={"ket30-1": -10, "veh60-2": None})
    flags = only(result, "TIME_ORDER_INVALID").set_index("sample_id")
    assert flags.loc["ket30-1", "severity"] == "error"
    assert "collected_at is before dose_start" in flags.loc["ket30-1", "message"]
    assert "missing" in flags.loc["veh60-2", "message"] and "Correct the time stamps" in flags.loc["veh60-2", "message"]
    assert flags.loc["ket30-1", "blot"] == "B1" and flags.loc["ket30-1", "lane"] == "5"
    # The sample stays in the analysis at its nominal time, without a real time.
    row = result.normalized.set_index(["sample_id", "target"]).loc[("ket30-1", "p-mTOR")]
    assert np.isnan(row["actual_min"]) and row["nominal_min"] == 30


def test_reference_ambiguous_only_without_an_explicit_reference(tmp_path):
    result = run(tmp_path / "a", infusion_min=40, settings={"time_reference": None})
    flags = only(result, "REFERENCE_AMBIGUOUS")
    # One study-level flag (one line in study.toml fixes it), not one per sample.
    assert len(flags) == 1 and flags.iloc[0]["sample_id"] == "" and flags.iloc[0]["target"] == ""
    message = flags.iloc[0]["message"]
    assert "12 samples had infusions (40 min)" in message and "time_reference" in message
    # Collected on plan after the infusion's end, so 40 min late from its start: read from the stamps.
    assert ("Counted from dose_start, 0 of 12 collections are punctual (median +40 min from plan); "
            "from infusion_end, 12 of 12 collections are punctual") in message
    assert "The time stamps fit infusion_end, so times were counted from it" in message
    # ... and no sample is called late, or left out, for it.
    assert "COLLECTION_TIME_DRIFT" not in codes(result)
    assert result.normalized["included"].all() and result.study.time_reference == "infusion_end"
    assert result.normalized["actual_min"].tolist() == result.normalized["nominal_min"].astype(float).tolist()
    assert "REFERENCE_AMBIGUOUS" not in codes(run(tmp_path / "b", infusion_min=40,
                                                   settings={"time_reference": "infusion_end"}))
    assert "REFERENCE_AMBIGUOUS" not in codes(run(tmp_path / "c", infusion_min=2, settings={"time_reference": None}))


def test_collection_time_drift_and_a_late_sample_outside_the_window(tmp_path):
    result = run(tmp_path, late={"ket30-3": 75, "ket60-2": 240, "veh30-1": 33})
    drift = only(result, "COLLECTION_TIME_DRIFT").set_index("sample_id")
    assert sorted(drift.index) == ["ket30-3", "ket60-2"]  # 3 min late is within tolerance
    assert "45 min late" in drift.loc["ket30-3", "message"]
    window = only(result, "OUTSIDE_KINETIC_WINDOW")
    assert window[["severity", "target", "sample_id"]].values.tolist() == [["warning", "p-mTOR", "ket60-2"]]
    assert "expected back at baseline" in window.iloc[0]["message"]
    # The planted points are the ones ringed in the plot.
    assert set(flagged_samples(result.flags)["sample_id"]) == {"ket30-3", "ket60-2"}


def test_planned_timepoints_outside_the_window_are_info_and_vehicle_is_never_flagged(tmp_path):
    design = [("vehicle", 60, 3), ("ketamine", 60, 3), ("vehicle", 240, 3), ("ketamine", 240, 3)]
    result = run(tmp_path, design=design)
    window = only(result, "OUTSIDE_KINETIC_WINDOW")
    assert set(window["sample_id"]) == {"ket240-1", "ket240-2", "ket240-3"}
    assert (window["severity"] == "info").all() and "by design" in window.iloc[0]["message"]
    assert "OUTSIDE_KINETIC_WINDOW" not in set(flagged_samples(result.flags)["sample_id"])


def test_no_time_matched_control(tmp_path):
    design = CLEAN_DESIGN + [("ketamine", 120, 3)]
    result = run(tmp_path, design=design)
    flags = only(result, "NO_TIME_MATCHED_CONTROL")
    # No vehicle animal at 120 min at all: one study-level flag naming the treated samples.
    assert flags[["target", "sample_id"]].values.tolist() == [["", ""]]
    assert "no vehicle sample at 120 min for any target" in flags.iloc[0]["message"]
    assert "ket120-1, ket120-2, ket120-3" in flags.iloc[0]["message"]
    row = result.timecourse.set_index(["target", "group", "nominal_min"]).loc[("p-mTOR", "ketamine", 120)]
    assert np.isnan(row["fold_change"]) and np.isnan(row["p_value"])


def test_peak_not_sampled(tmp_path):
    design = [("vehicle", 240, 3), ("ketamine", 240, 3), ("vehicle", 360, 3), ("ketamine", 360, 3)]
    result = run(tmp_path, design=design)
    flags = only(result, "PEAK_NOT_SAMPLED")
    assert flags[["target", "sample_id"]].values.tolist() == [["p-mTOR", ""]]
    assert "sampled at 240, 360 min only" in flags.iloc[0]["message"]
    assert "Add a timepoint inside the window" in flags.iloc[0]["message"]
    assert "PEAK_NOT_SAMPLED" not in codes(run(tmp_path / "clean"))


def test_band_quality_flags_carry_from_quantification(tmp_path):
    lanes = {("p-mTOR", "B1", 3): {"saturated": True, "saturated_pixels": 57},
             ("mTOR", "B1", 4): {"snr": 4.0},
             ("GAPDH", "B1", 5): {"detected": False},
             ("p-mTOR", "B1", 1): {"snr": 6.0}}
    result = run(tmp_path, lanes=lanes)
    saturated = only(result, "SATURATED_BAND").iloc[0]
    assert (saturated["severity"], saturated["sample_id"], saturated["lane"]) == ("error", "veh30-2", "3")
    assert "57 pixels at the detector's ceiling" in saturated["message"] and "shorter exposure" in saturated["message"]
    low = only(result, "LOW_SNR").set_index("sample_id")
    assert set(low.index) == {"veh30-3", "calibrator"}
    assert "uncertain by roughly 25%" in low.loc["veh30-3", "message"]
    assert "the calibrator lane" in low.loc["calibrator", "message"]
    missing = only(result, "BAND_NOT_DETECTED").iloc[0]
    assert missing["target"] == "GAPDH" and "Check band_rows" in missing["message"]
    assert "BAND_OVERLAP" not in codes(result)


def test_band_overlap_flagged_where_a_neighbour_runs_in(tmp_path):
    result = run(tmp_path, lanes={("p-mTOR", "B1", 4): {"overlap": 0.55}, ("mTOR", "B1", 5): {"overlap": 0.29}})
    flags = only(result, "BAND_OVERLAP")
    assert flags[["target", "lane", "severity"]].values.tolist() == [["p-mTOR", "4", "warning"]]
    assert "only falls to 55% of the band's peak" in flags.iloc[0]["message"]
    assert 'band_rows_mode = "window"' in flags.iloc[0]["message"]


def test_loading_control_uneven_lanes_odd_lane_and_group_difference(tmp_path):
    samples = [s["sample_id"] for s in sample_rows(CLEAN_DESIGN)]
    uneven = dict(zip(samples, [0.7, 1.3, 1.0, 1.35, 0.75, 1.0, 0.72, 1.28, 1.0, 1.3, 0.7, 1.0]))
    result = run(tmp_path / "uneven", loads=uneven)
    flags = only(result, "LOADING_CONTROL_VARIATION")
    blot_level = flags[flags["sample_id"] == ""]
    assert len(blot_level) == 1 and "varies by" in blot_level.iloc[0]["message"]
    odd = {**{s: 1.0 for s in samples}, "ket30-2": 1.6}
    flags = only(run(tmp_path / "odd", loads=odd), "LOADING_CONTROL_VARIATION")
    assert flags["sample_id"].tolist() == ["ket30-2"] and "1.60 x the blot's median" in flags.iloc[0]["message"]
    by_group = {s: (1.15 if s.startswith("ket") else 0.87) * (1 + 0.01 * (i % 3)) for i, s in enumerate(samples)}
    flags = only(run(tmp_path / "group", loads=by_group), "LOADING_CONTROL_VARIATION")
    assert len(flags) == 1 and "differs between groups" in flags.iloc[0]["message"]
    assert "ANOVA" in flags.iloc[0]["message"] and "total protein" in flags.iloc[0]["message"]


def test_cross_blot_without_calibrator(tmp_path):
    result = run(tmp_path / "none", blots=("B1", "B2"), calibrator=False)
    flags = only(result, "CROSS_BLOT_NO_CALIBRATOR")
    assert sorted(flags["blot"]) == ["B1", "B1", "B2", "B2"]  # p-mTOR and mTOR on each blot
    assert "calibrator" in flags.iloc[0]["message"]
    assert "CROSS_BLOT_NO_CALIBRATOR" not in codes(run(tmp_path / "both", blots=("B1", "B2")))
    assert "CROSS_BLOT_NO_CALIBRATOR" not in codes(run(tmp_path / "single", calibrator=False))


def test_outside_linear_range(tmp_path):
    # Dilution series 5-80 ug on the blot; GAPDH saturates at 80 ug, so its linear range ends at 40 ug.
    samples = sample_rows(CLEAN_DESIGN)
    base = pmtor_volumes(sample_folds(samples), {s["sample_id"]: 1.0 for s in samples})

    def volumes(image, lane):
        if image["target"] == "GAPDH" and lane["load_ug"] == 80:
            return 2300.0  # 4000 if it were linear
        if image["target"] == "p-mTOR" and lane["sample_id"] == "ket30-2":
            return 2000.0  # far above the 80-ug calibrator (800)
        return base(image, lane)

    result = run(tmp_path, dilutions=(5, 10, 40, 80), volumes=volumes)
    ranges = result.linearity.set_index("target")
    assert ranges.loc["GAPDH", "load_high"] == 40 and ranges.loc["p-mTOR", "load_high"] == 80
    flags = only(result, "OUTSIDE_LINEAR_RANGE")
    assert flags[["target", "sample_id"]].values.tolist() == [["p-mTOR", "ket30-2"]]
    assert "above the strongest point" in flags.iloc[0]["message"]
    assert "OUTSIDE_LINEAR_RANGE" not in codes(run(tmp_path / "clean", dilutions=(5, 10, 40, 80)))


def test_image_warnings_become_flags(tmp_path):
    images = [{"file": "B1_p-mTOR.jpg", "blot": "B1", "target": "p-mTOR", "warnings": ["lossy JPEG compression"]}]
    flags = only(run(tmp_path, images=images), "IMAGE_WARNING")
    assert flags.iloc[0]["message"] == "B1_p-mTOR.jpg: lossy JPEG compression"


def test_every_code_is_documented():
    assert all(code.isupper() for code in FLAG_CODES)
    issue_codes = {"OUTSIDE_KINETIC_WINDOW", "COLLECTION_TIME_DRIFT", "NO_TIME_MATCHED_CONTROL", "PEAK_NOT_SAMPLED",
                   "REFERENCE_AMBIGUOUS", "TIME_ORDER_INVALID", "SATURATED_BAND", "LOW_SNR",
                   "LOADING_CONTROL_VARIATION", "CROSS_BLOT_NO_CALIBRATOR", "OUTSIDE_LINEAR_RANGE"}
    assert issue_codes <= set(FLAG_CODES)
