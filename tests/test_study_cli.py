"""The ``blotquant study`` command: lane reviews applied and reported, bad time stamps refused."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from blotquant.cli import main
from blotquant.output import sha256_of_file
from blotquant.review import Review, save_review

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


def test_study_applies_and_reports_a_review(tmp_path, capsys):
    study_dir = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study_dir, ignore=shutil.ignore_patterns("*.py"))
    image = study_dir / "B1_p-mTOR.tif"
    review = Review(image_name=image.name, image_sha256=sha256_of_file(image), reviewer="A. Tester",
                    exclusions=[{"strip": 1, "lane": 3, "band": None, "reason": "bubble over the band"}])
    saved, _ = save_review(review, image)

    out = tmp_path / "out"
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out)]) == 0
    assert f"using lane review {saved}" in capsys.readouterr().err

    normalized = pd.read_csv(out / "normalized.csv")
    excluded = normalized[(normalized["sample_id"] == "PFC-R02") & (normalized["target"] == "p-mTOR")]
    kept = normalized[(normalized["sample_id"] == "PFC-R03") & (normalized["target"] == "p-mTOR")]
    assert np.isnan(excluded["value"]).all()
    assert np.isfinite(kept["value"]).all()
    report = (out / "report.html").read_text()
    assert saved.name in report
    assert "corrected by hand in a saved lane review" in report
    run = json.loads((out / "run.json").read_text())
    assert str(saved) in json.dumps(run)


def test_collection_before_dose_is_reported_with_exit_code_2(tmp_path, capsys):
    study_dir = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study_dir, ignore=shutil.ignore_patterns("*.py"))
    samples = pd.read_csv(study_dir / "samples.csv", dtype=str)
    samples.loc[samples["sample_id"] == "PFC-R03", "collected_at"] = "2024-03-05T08:00:00"
    samples.to_csv(study_dir / "samples.csv", index=False)
    code = main(["study", str(study_dir / "study.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "PFC-R03" in err and "before dose_start" in err and "Traceback" not in err
    flags = pd.read_csv(tmp_path / "out" / "flags.csv")
    assert ((flags["code"] == "TIME_ORDER_INVALID") & (flags["sample_id"] == "PFC-R03")).any()


def test_an_image_can_integrate_its_whole_window(tmp_path, capsys):
    study_dir = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study_dir, ignore=shutil.ignore_patterns("*.py"))
    toml = (study_dir / "study.toml").read_text()
    marker = 'file = "B2_p-mTOR.tif"\n'
    assert marker in toml
    (study_dir / "study.toml").write_text(toml.replace(marker, marker + 'band_rows_mode = "window"\n'))
    out = tmp_path / "out"
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out)]) == 0
    images = {item["file"]: item for item in json.loads((out / "run.json").read_text())["images"]}
    assert images["B2_p-mTOR.tif"]["band_rows_mode"] == "window"
    assert images["B1_p-mTOR.tif"]["band_rows_mode"] == "band"
    bands = pd.read_csv(out / "bands.csv")
    window = bands[bands["file"] == "B2_p-mTOR.tif"]
    top, bottom = images["B2_p-mTOR.tif"]["band_rows"]
    assert (window["y_top"] == top).all() and (window["y_bottom"] == bottom).all()

    (study_dir / "study.toml").write_text(toml.replace(marker, marker + 'band_rows_mode = "all"\n'))
    assert main(["study", str(study_dir / "study.toml"), "--out", str(tmp_path / "bad")]) == 2
    assert "band_rows_mode" in capsys.readouterr().err


def test_an_infinite_number_in_the_layout_is_a_one_line_error(tmp_path, capsys):
    study_dir = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study_dir, ignore=shutil.ignore_patterns("*.py"))
    layout = pd.read_csv(study_dir / "layout.csv", dtype=str)
    layout.loc[3, "lane"] = "1e400"
    layout.to_csv(study_dir / "layout.csv", index=False)
    assert main(["study", str(study_dir / "study.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layout.csv: row 5: lane is '1e400'" in err and "Traceback" not in err


def test_a_total_protein_stain_is_integrated_over_its_whole_window(tmp_path):
    study_dir = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study_dir, ignore=shutil.ignore_patterns("*.py"))
    toml = (study_dir / "study.toml").read_text()
    assert toml.count('role = "loading_control"') == 4
    (study_dir / "study.toml").write_text(toml.replace('role = "loading_control"', 'role = "total_protein"'))
    out = tmp_path / "out"
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out)]) == 0
    images = json.loads((out / "run.json").read_text())["images"]
    modes = {item["role"]: item["band_rows_mode"] for item in images}
    assert modes == {"total_protein": "window", "target": "band", "total": "band"}
    bands = pd.read_csv(out / "bands.csv")
    stain = bands[bands["role"] == "total_protein"]
    window = {item["file"]: item["band_rows"] for item in images if item["role"] == "total_protein"}
    assert all((group["y_top"] == window[file][0]).all() and (group["y_bottom"] == window[file][1]).all()
               for file, group in stain.groupby("file"))


def test_run_study_is_part_of_the_top_level_api():
    import blotquant
    from blotquant.study import run_study

    assert blotquant.run_study is run_study
    assert "run_study" in blotquant.__all__


def test_study_uses_the_review_beside_a_symlinked_image(tmp_path, capsys):
    """`quantify link.tif` and `study` must find the same review: the one beside the link."""
    raw = tmp_path / "raw"
    study_dir = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study_dir, ignore=shutil.ignore_patterns("*.py"))
    raw.mkdir()
    image = study_dir / "B1_p-mTOR.tif"
    shutil.move(image, raw / image.name)
    image.symlink_to(raw / image.name)
    review = Review(image_name=image.name, image_sha256=sha256_of_file(image), reviewer="A. Tester",
                    exclusions=[{"strip": 1, "lane": 3, "band": None, "reason": "bubble over the band"}])
    saved, _ = save_review(review, image)
    assert saved.parent == study_dir

    out = tmp_path / "out"
    assert main(["study", str(study_dir / "study.toml"), "--out", str(out)]) == 0
    assert f"using lane review {saved}" in capsys.readouterr().err
    normalized = pd.read_csv(out / "normalized.csv")
    excluded = normalized[(normalized["sample_id"] == "PFC-R02") & (normalized["target"] == "p-mTOR")]
    assert np.isnan(excluded["value"]).all()
