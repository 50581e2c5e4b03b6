"""Loading a study: a well-formed one loads, every malformed input gives one clear StudyError."""

import pandas as pd
import pytest

from blotquant.errors import StudyError
from blotquant.study_files import load_study
from study_helpers import layout_rows, sample_rows, write_study

DESIGN = [("vehicle", 30, 2), ("ketamine", 30, 2)]


def _write(tmp_path, *, samples=None, layout=None, **kwargs):
    samples = samples if samples is not None else sample_rows(DESIGN)
    layout = layout if layout is not None else layout_rows(samples)
    return write_study(tmp_path, samples=samples, layout=layout, **kwargs)


def _error(path):
    with pytest.raises(StudyError) as info:
        load_study(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_good_study_loads_with_typed_tables(tmp_path):
    samples = sample_rows(DESIGN)
    for row in samples:
        row["sex"] = "M"
    study = load_study(_write(tmp_path, samples=samples))
    assert study.name == "test study" and study.control_group == "vehicle"
    assert study.time_reference == "dose_start" and study.time_reference_given
    assert pd.api.types.is_datetime64_any_dtype(study.samples["collected_at"])
    assert study.samples["nominal_min"].tolist() == [30, 30, 30, 30]
    assert study.samples["sex"].tolist() == ["M"] * 4  # extra columns carried along
    assert study.layout["strip"].eq(1).all() and study.layout["lane"].tolist() == [1, 2, 3, 4, 5]
    assert study.images[["target", "role", "total_target"]].values.tolist() == [
        ["GAPDH", "loading_control", ""], ["p-mTOR", "target", "mTOR"], ["mTOR", "total", ""]]
    assert study.images["channel"].tolist() == [None, None, None]
    # The folder itself also names the study.
    assert load_study(tmp_path).path == study.path


def test_time_reference_may_be_left_out(tmp_path):
    study = load_study(_write(tmp_path, settings={"time_reference": None}))
    assert study.time_reference == "dose_start" and not study.time_reference_given


def test_time_zones_are_honoured(tmp_path):
    samples = sample_rows(DESIGN)
    samples[0]["dose_start"] = "2024-03-05T09:00:00+01:00"
    samples[0]["collected_at"] = "2024-03-05T08:30:00Z"
    for row in samples[1:]:
        row["dose_start"] += "+00:00"
        row["collected_at"] += "+00:00"
    study = load_study(_write(tmp_path, samples=samples))
    first = study.samples.iloc[0]
    assert (first["collected_at"] - first["dose_start"]) == pd.Timedelta(minutes=30)


# --- the five cases of the issue ---------------------------------------------------------


def test_missing_column(tmp_path):
    samples = [{k: v for k, v in row.items() if k != "collected_at"} for row in sample_rows(DESIGN)]
    message = _error(_write(tmp_path, samples=samples))
    assert message.startswith("samples.csv: row 1: missing column(s) collected_at")
    assert "the header must contain" in message


def test_unknown_sample_in_layout(tmp_path):
    samples = sample_rows(DESIGN)
    layout = layout_rows(samples)
    layout[2]["sample_id"] = "keta30-9"
    message = _error(_write(tmp_path, samples=samples, layout=layout))
    assert message.startswith("layout.csv: row 4: sample_id 'keta30-9' is not in the sample sheet")
    assert "add it to samples.csv" in message


def test_image_that_does_not_exist(tmp_path):
    path = _write(tmp_path)
    (tmp_path / "B1_mTOR.tif").unlink()
    message = _error(path)
    assert message.startswith("study.toml: [[image]] 3 (B1_mTOR.tif): image file 'B1_mTOR.tif' does not exist")
    assert "fix the path" in message


@pytest.mark.parametrize("bad", ["2024-13-05T09:00:00", "05/03/2024 09:00", "2024-03-05T25:61", "yesterday"])
def test_malformed_date_time(tmp_path, bad):
    samples = sample_rows(DESIGN)
    samples[2]["collected_at"] = bad
    message = _error(_write(tmp_path, samples=samples))
    assert message.startswith(f"samples.csv: row 4: collected_at {bad!r} is not an ISO 8601 date-time")
    assert "write it like 2024-03-05T09:30:00" in message


def test_duplicate_lane(tmp_path):
    samples = sample_rows(DESIGN)
    layout = layout_rows(samples)
    layout[3]["lane"] = 2
    message = _error(_write(tmp_path, samples=samples, layout=layout))
    assert message.startswith("layout.csv: row 5: blot B1 lane 2 is already given in row 3")
    assert "fix the lane number" in message


# --- further malformed input -------------------------------------------------------------


def _with(tmp_path, **changes):
    samples = sample_rows(DESIGN)
    samples[1].update(changes)
    return _error(_write(tmp_path, samples=samples))


@pytest.mark.parametrize("changes, expected", [
    ({"sample_id": "veh30-1"}, "samples.csv: row 3: sample_id 'veh30-1' is already used in row 2"),
    ({"sample_id": "Calibrator"}, "samples.csv: row 3: sample_id 'Calibrator' is reserved"),
    ({"group": ""}, "samples.csv: row 3: group is empty; fill it in"),
    ({"nominal_min": "thirty"}, "samples.csv: row 3: nominal_min is 'thirty', not a number >= 0"),
    ({"infusion_min": "-5"}, "samples.csv: row 3: infusion_min is '-5', not a number >= 0; write a number >= 0 (0 for a bolus)"),
    ({"dose_mg_kg": ""}, "samples.csv: row 3: dose_mg_kg is '', not a number"),
])
def test_bad_sample_rows(tmp_path, changes, expected):
    assert _with(tmp_path, **changes).startswith(expected)


def test_sample_sheet_columns_may_not_shadow_result_columns(tmp_path):
    samples = sample_rows(DESIGN)
    for row in samples:
        row["value"] = "high"
    message = _error(_write(tmp_path, samples=samples))
    assert message == ("samples.csv: row 1: column 'value' is a name blotquant uses for its results; "
                       "rename it (e.g. 'value_note')")


def test_mixed_time_zones_are_refused(tmp_path):
    message = _with(tmp_path, collected_at="2024-03-05T10:00:00+02:00")
    assert message.startswith("samples.csv: row 2: dose_start") and "same kind of zone offset" in message
    samples = sample_rows(DESIGN)
    for row in samples:  # zones in one column only would shift every sample by hours
        row["collected_at"] += "Z"
    message = _error(_write(tmp_path, samples=samples))
    assert message.startswith("samples.csv: row 2: dose_start")


def test_empty_time_is_not_an_error(tmp_path):
    samples = sample_rows(DESIGN)
    samples[1]["collected_at"] = ""
    study = load_study(_write(tmp_path, samples=samples))
    assert study.samples["collected_at"].isna().tolist() == [False, True, False, False]


@pytest.mark.parametrize("column, value, expected", [
    ("lane", "2.5", "layout.csv: row 3: lane is '2.5', not a whole number >= 1"),
    ("lane", "0", "layout.csv: row 3: lane is '0', not a whole number >= 1"),
    ("load_ug", "lots", "layout.csv: row 3: load_ug is 'lots', not a number >= 0"),
    ("blot", "", "layout.csv: row 3: blot is empty"),
])
def test_bad_layout_rows(tmp_path, column, value, expected):
    samples = sample_rows(DESIGN)
    layout = layout_rows(samples)
    layout[1][column] = value
    assert _error(_write(tmp_path, samples=samples, layout=layout)).startswith(expected)


def test_layout_blot_without_images_and_image_blot_without_lanes(tmp_path):
    samples = sample_rows(DESIGN)
    layout = layout_rows(samples)
    layout[-1]["blot"] = "B9"
    message = _error(_write(tmp_path / "a", samples=samples, layout=layout, blots=["B1"]))
    assert message.startswith("layout.csv: row 6: blot 'B9' has no [[image]] in study.toml")
    images = [{"file": "x.tif", "blot": "B2", "target": "GAPDH", "role": "loading_control", "band_rows": [1, 5]}]
    message = _error(_write(tmp_path / "b", images=images))
    assert "blot 'B2' has no lanes in layout.csv" in message


@pytest.mark.parametrize("settings, extra, expected", [
    ({"control_group": "saline"}, "", "study.toml: control_group 'saline' is not a group of samples.csv"),
    ({"control_group": None}, "", "study.toml: control_group is missing"),
    ({"time_reference": "injection"}, "", "study.toml: time_reference = 'injection'"),
    ({}, "contol_group = \"vehicle\"", "study.toml: unknown key(s) contol_group"),
    ({}, "[statistics]\np_adjust = \"bonferroni\"", "study.toml: [statistics] p_adjust = 'bonferroni'"),
    ({}, "[thresholds]\nmin_snr = \"high\"", "study.toml: [thresholds] min_snr = 'high' has the wrong type"),
    ({}, "name = ", "study.toml: not valid TOML"),
])
def test_bad_study_settings(tmp_path, settings, extra, expected):
    assert _error(_write(tmp_path, settings=settings, extra=extra)).startswith(expected)


def _image_error(tmp_path, **changes):
    images = [{"file": "B1_GAPDH.tif", "blot": "B1", "target": "GAPDH", "role": "loading_control",
               "band_rows": [10, 30]},
              {"file": "B1_p.tif", "blot": "B1", "target": "p-mTOR", "role": "target", "band_rows": [10, 30],
               "total": "mTOR"},
              {"file": "B1_m.tif", "blot": "B1", "target": "mTOR", "role": "total", "band_rows": [10, 30]}]
    images[1].update(changes)
    images[1] = {k: v for k, v in images[1].items() if v is not None}
    return _error(_write(tmp_path, images=images))


@pytest.mark.parametrize("changes, expected", [
    ({"role": "phospho"}, "role 'phospho' is unknown; use one of target, total, loading_control, total_protein"),
    ({"band_rows": [30, 10]}, "band_rows = [30, 10]; write band_rows = [top, bottom]"),
    ({"band_rows": None}, "band_rows is missing; add band_rows = [top, bottom] (pixel rows of the band of interest) or band_kda"),
    ({"total": "total-mTOR"}, "total = 'total-mTOR' but blot B1 has no image with target = 'total-mTOR'"),
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"target": "GAPDH", "total": None}, "blot B1 already has an image of GAPDH"),
    ({"role": "loading_control", "total": None}, "needs exactly one image with role \"loading_control\""),
    ({"channel": True}, "channel must be a channel number"),
])
def test_bad_image_tables(tmp_path, changes, expected):
    message = _image_error(tmp_path, **changes)
    assert message.startswith("study.toml:") and expected in message


def test_no_loading_image_at_all(tmp_path):
    images = [{"file": "B1_p.tif", "blot": "B1", "target": "p-mTOR", "role": "target", "band_rows": [10, 30]}]
    assert "needs exactly one image with role" in _error(_write(tmp_path, images=images))


def test_unreadable_tables(tmp_path):
    path = _write(tmp_path)
    (tmp_path / "layout.csv").write_text("blot,lane,sample_id\n", encoding="utf-8")
    assert _error(path).startswith("layout.csv: has a header but no rows; add one row per lane")
    (tmp_path / "layout.csv").unlink()
    assert "file not found; fix the layout path in study.toml" in _error(path)
    assert "study file not found" in _error(tmp_path / "nope.toml")
