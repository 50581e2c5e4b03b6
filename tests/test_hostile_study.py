"""Hostile input to ``blotquant study``: one clear line and exit code 2, never a traceback."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from blotquant.cli import main
from blotquant.errors import ReviewError
from blotquant.output import sha256_of_file
from blotquant.review import load_review, review_path_for

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


def copy_study(tmp_path):
    study_dir = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study_dir, ignore=shutil.ignore_patterns("*.py"))
    return study_dir


def run(study_dir, tmp_path, capsys):
    """Run the study command; returns (exit code, non-empty stderr lines, whole stderr)."""
    code = main(["study", str(study_dir / "study.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()], err


def assert_refused(study_dir, tmp_path, capsys, *needles):
    code, lines, err = run(study_dir, tmp_path, capsys)
    assert "Traceback" not in err
    assert code == 2, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def edit(path, old, new, count=None):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new) if count is None else text.replace(old, new, count), encoding="utf-8")


# ---------------------------------------------------------------------------
# Names are drawn as plain text, never parsed as mathtext


def test_dollar_signs_in_names_are_drawn_as_plain_text(tmp_path, capsys):
    study_dir = copy_study(tmp_path)
    toml = study_dir / "study.toml"
    # Unbalanced "$" in a target, "$x$" in a total, a group and the control group, "$" in a sample id.
    # Each of these is invalid mathtext, which matplotlib refuses to draw.
    edit(toml, 'target = "p-mTOR"', 'target = "p-$mTOR^$"')
    edit(toml, '"mTOR"', '"m$\\\\foo$OR"')
    edit(toml, 'control_group = "vehicle"', 'control_group = "veh$_$icle"')
    for name in ("samples.csv", "layout.csv"):
        edit(study_dir / name, "PFC-R03", "PFC-$R03^$")
    edit(study_dir / "samples.csv", "vehicle", "veh$_$icle")
    edit(study_dir / "samples.csv", "ketamine", "ket$amine")
    code, lines, err = run(study_dir, tmp_path, capsys)
    assert "Traceback" not in err
    assert code == 0, err
    plots = sorted(p.name for p in (tmp_path / "out" / "plots").glob("*.png"))
    assert len(plots) == 2
    assert "p-$mTOR^$" in (tmp_path / "out" / "report.html").read_text()


def test_plot_labels_escape_dollar_signs():
    from blotquant.plots import plain_text

    assert plain_text("a$b$c") == r"a\$b\$c"
    assert plain_text("no dollars") == "no dollars"


# ---------------------------------------------------------------------------
# [statistics] and [thresholds] values


@pytest.mark.parametrize("line, needle", [
    ("seed = -1", "seed"),
    ("bootstrap = 0", "bootstrap"),
    ("bootstrap = -5", "bootstrap"),
    ("bootstrap = 100000000000", "bootstrap"),
    ("seed = 100000000000000000000", "seed"),
])
def test_bad_statistics_settings_are_refused(tmp_path, capsys, line, needle):
    study_dir = copy_study(tmp_path)
    edit(study_dir / "study.toml", 'p_adjust = "holm"\n', f'p_adjust = "holm"\n{line}\n')
    assert_refused(study_dir, tmp_path, capsys, "study.toml", "[statistics]", needle)


@pytest.mark.parametrize("table, key, value", [
    ("thresholds", "collection_drift_min", "nan"),
    ("thresholds", "collection_drift_min", "inf"),
    ("thresholds", "min_snr", "-inf"),
    ("thresholds", "loading_group_p", "nan"),
    ("quantify", "min_snr", "nan"),
    ("quantify", "min_snr", "inf"),
])
def test_non_finite_settings_are_refused(tmp_path, capsys, table, key, value):
    study_dir = copy_study(tmp_path)
    edit(study_dir / "study.toml", "[statistics]\n", f"[{table}]\n{key} = {value}\n\n[statistics]\n")
    assert_refused(study_dir, tmp_path, capsys, "study.toml", f"[{table}] {key}", "finite")


def test_negative_threshold_is_refused(tmp_path, capsys):
    study_dir = copy_study(tmp_path)
    edit(study_dir / "study.toml", "[statistics]\n", "[thresholds]\ncollection_drift_min = -3\n\n[statistics]\n")
    assert_refused(study_dir, tmp_path, capsys, "[thresholds] collection_drift_min")


# ---------------------------------------------------------------------------
# The study file itself


def test_deeply_nested_toml_is_one_line(tmp_path, capsys):
    study_dir = copy_study(tmp_path)
    with open(study_dir / "study.toml", "a", encoding="utf-8") as handle:
        handle.write("\n[quantify]\nx = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_refused(study_dir, tmp_path, capsys, "study.toml", "nested too deep")


def test_very_long_target_name_is_refused(tmp_path, capsys):
    study_dir = copy_study(tmp_path)
    edit(study_dir / "study.toml", 'target = "p-mTOR"', 'target = "' + "p" * 10_000 + '"', count=1)
    line = assert_refused(study_dir, tmp_path, capsys, "study.toml", "[[image]] 2", "target", "200")
    assert len(line) < 600


def test_very_long_group_name_is_refused(tmp_path, capsys):
    study_dir = copy_study(tmp_path)
    edit(study_dir / "samples.csv", "ketamine", "k" * 10_000)
    line = assert_refused(study_dir, tmp_path, capsys, "samples.csv", "row 2", "group", "200")
    assert len(line) < 600


# ---------------------------------------------------------------------------
# The tables


@pytest.mark.parametrize("row", [1, 3])
def test_sample_row_with_too_many_fields_names_file_and_row(tmp_path, capsys, row):
    study_dir = copy_study(tmp_path)
    path = study_dir / "samples.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[row] += ",surplus"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_refused(study_dir, tmp_path, capsys, "samples.csv", f"row {row + 1}")


@pytest.mark.parametrize("lane", ["1e20", "1000000", "501"])
def test_absurd_lane_numbers_are_refused(tmp_path, capsys, lane):
    study_dir = copy_study(tmp_path)
    layout = pd.read_csv(study_dir / "layout.csv", dtype=str)
    layout.loc[3, "lane"] = lane
    layout.to_csv(study_dir / "layout.csv", index=False)
    assert_refused(study_dir, tmp_path, capsys, "layout.csv", "row 5", "lane", "<= 500")


# ---------------------------------------------------------------------------
# Tampered lane reviews


def _review_document(image):
    return {"format": "blotquant-review", "version": 1,
            "image": {"name": image.name, "sha256": sha256_of_file(image)},
            "lanes": [{"strip": 1, "lane": 1, "x_left": 10.0, "x_right": 40.0}],
            "bands": [], "exclusions": []}


@pytest.mark.parametrize("tamper", ["nan_edge", "inf_edge", "huge_int", "nested"])
def test_tampered_review_is_one_line(tmp_path, capsys, tamper):
    study_dir = copy_study(tmp_path)
    image = study_dir / "B1_p-mTOR.tif"
    document = _review_document(image)
    if tamper == "nested":
        text = json.dumps(document)[:-1] + ', "notes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    else:
        edge = {"nan_edge": "NaN", "inf_edge": "Infinity", "huge_int": "1" + "0" * 400}[tamper]
        text = json.dumps(document).replace('"x_left": 10.0', f'"x_left": {edge}')
    review_path_for(image).write_text(text, encoding="utf-8")
    with pytest.raises(ReviewError):
        load_review(review_path_for(image))
    assert_refused(study_dir, tmp_path, capsys, "blotreview.json")


@pytest.mark.parametrize("old, new, needle", [
    ("[statistics]\n", '[kinetics."p-mTOR"]\nonset_min = nan\n\n[statistics]\n', "onset_min"),
    ("[statistics]\n", '[kinetics."p-mTOR"]\nbaseline_min = inf\n\n[statistics]\n', "baseline_min"),
    ("[statistics]\n", '[kinetics."p-mTOR"]\npeak_min = [nan, 5]\n\n[statistics]\n', "peak_min"),
    ("[statistics]\n", "[quantify]\nmin_snr = -1\n\n[statistics]\n", "min_snr"),
    ('file = "B1_GAPDH.tif"', 'file = "' + "a" * 10_000 + '"', "does not exist"),
    ('layout = "layout.csv"', 'layout = "layout.csv"\nkinetics_file = "."', "kinetics"),
    ('samples = "samples.csv"', 'samples = "."', "samples"),
])
def test_other_hostile_settings_are_one_line(tmp_path, capsys, old, new, needle):
    study_dir = copy_study(tmp_path)
    edit(study_dir / "study.toml", old, new, count=1)
    assert_refused(study_dir, tmp_path, capsys, needle)
