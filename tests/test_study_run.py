"""End to end on the sample study in sample_data/: outputs, numbers and the planted problems."""

import json
from pathlib import Path

import pandas as pd
import pytest

from blotquant.output import sha256_of_file
from blotquant.study import run_study

SAMPLE_STUDY = Path(__file__).resolve().parent.parent / "sample_data" / "study.toml"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample_study")
    return run_study(SAMPLE_STUDY, out, jobs=2, progress=False), out


def test_every_output_is_written(sample_run):
    result, out = sample_run
    for name in ("bands.csv", "lanes.csv", "normalized.csv", "timecourse.csv", "peaks.csv", "linearity.csv",
                 "flags.csv", "run.json", "report.html"):
        assert (out / name).stat().st_size > 0, name
    for target in ("p-mTOR", "mTOR"):
        for suffix in ("png", "svg"):
            assert (out / "plots" / f"timecourse_{target}.{suffix}").stat().st_size > 1000
    assert (out / "plots" / "timecourse_p-mTOR.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (out / "plots" / "timecourse_p-mTOR.svg").read_bytes()[:2000]
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert len(overlays) == 12 and "B1_mTOR.overlay.png" in overlays
    assert {r["overlay"] for r in result.images} == set(overlays)


def test_tables_have_the_promised_shape(sample_run):
    result, out = sample_run
    normalized = pd.read_csv(out / "normalized.csv")
    assert len(normalized) == 44 * 2  # one row per sample and target (p-mTOR, mTOR)
    assert not normalized.duplicated(["sample_id", "target"]).any()
    for column in ("sample_id", "group", "target", "blot", "lane", "nominal_min", "actual_min", "volume",
                   "normalised", "ratio_to_total", "value", "region", "sex"):
        assert column in normalized, column
    timecourse = pd.read_csv(out / "timecourse.csv")
    for column in ("target", "group", "nominal_min", "n", "mean", "sem", "fold_change", "p_value", "p_adjusted"):
        assert column in timecourse, column
    assert set(timecourse["nominal_min"]) == {15, 30, 60, 120, 240, 360}
    flags = pd.read_csv(out / "flags.csv", keep_default_na=False)
    assert list(flags.columns) == ["severity", "code", "target", "sample_id", "blot", "lane", "message"]
    bands = pd.read_csv(out / "bands.csv")
    assert {"file", "blot", "target", "role", "lane", "volume", "saturated", "snr"} <= set(bands.columns)
    # One band per image and lane: B1 has 15 lanes; B2-B4 end in an empty lane, which is not measured.
    assert len(bands) == 3 * 15 + 3 * 3 * 12


def test_biology_comes_out(sample_run):
    result, _ = sample_run
    tc = result.timecourse.set_index(["target", "group", "nominal_min"])
    p30 = tc.loc[("p-mTOR", "ketamine", 30)]
    assert 1.5 < p30["fold_change"] < 2.5 and p30["p_adjusted"] < 0.05
    assert 0.85 < tc.loc[("p-mTOR", "ketamine", 360), "fold_change"] < 1.2
    total = result.timecourse[(result.timecourse["target"] == "mTOR") & (result.timecourse["group"] == "ketamine")
                              & result.timecourse["fold_change"].notna()]
    assert total["fold_change"].between(0.85, 1.2).all() and (total["p_adjusted"] > 0.05).all()
    peak = result.peaks.set_index("target").loc["p-mTOR"]
    assert peak["peak_min"] in (30, 60) and peak["return_min"] > 60
    assert result.linearity["linear"].all()


def test_planted_problems_are_flagged_and_nothing_else(sample_run):
    result, _ = sample_run
    flags = result.flags
    serious = flags[flags["severity"] != "info"]
    found = set(zip(serious["code"], serious["sample_id"]))
    assert ("COLLECTION_TIME_DRIFT", "PFC-R03") in found  # planned 30 min, collected at 75
    assert ("COLLECTION_TIME_DRIFT", "PFC-R16") in found  # planned 60 min, collected at 140
    assert ("OUTSIDE_KINETIC_WINDOW", "PFC-R16") in found
    assert ("SATURATED_BAND", "PFC-R05") in found
    assert ("OUTSIDE_LINEAR_RANGE", "PFC-R05") in found
    missing = serious[serious["code"] == "NO_TIME_MATCHED_CONTROL"]
    assert len(missing) == 1 and missing.iloc[0]["sample_id"] == ""  # one study-level flag: no vehicle at 240
    assert "no vehicle sample at 240 min for any target" in missing.iloc[0]["message"]
    assert set(serious["code"]) == {"COLLECTION_TIME_DRIFT", "OUTSIDE_KINETIC_WINDOW", "SATURATED_BAND",
                                    "OUTSIDE_LINEAR_RANGE", "NO_TIME_MATCHED_CONTROL"}


def test_reprobed_images_were_registered(sample_run):
    result, _ = sample_run
    records = {(r["blot"], r["target"]): r for r in result.images}
    moved = records[("B1", "mTOR")]["offset"]  # the generator moved it by (5, -8) px and turned it 0.8 deg
    assert moved["dy"] == pytest.approx(5, abs=1.5) and moved["dx"] == pytest.approx(-8, abs=1.5)
    assert moved["rotation_deg"] == pytest.approx(-0.8, abs=0.25)
    assert records[("B1", "GAPDH")]["lanes_from"] == "detected"


def test_run_json_records_inputs_and_image_hashes(sample_run):
    _, out = sample_run
    run = json.loads((out / "run.json").read_text())
    assert run["study"]["control_group"] == "vehicle" and run["environment"]["python"]
    for record in run["images"]:
        assert record["sha256"] == sha256_of_file(SAMPLE_STUDY.parent / record["file"])
    assert run["inputs"]["samples"]["sha256"] == sha256_of_file(SAMPLE_STUDY.parent / "samples.csv")


def test_report_is_self_contained_and_shows_the_problems(sample_run):
    _, out = sample_run
    html = (out / "report.html").read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "<script" not in html and 'src="http' not in html and "url(" not in html
    assert html.count("data:image/png;base64,") == 2
    for text in ("SATURATED_BAND", "COLLECTION_TIME_DRIFT", "NO_TIME_MATCHED_CONTROL", "PFC-R03", "Methods",
                 "Welch", "Holm", "SHA-256"):
        assert text in html, text


def test_the_sample_study_applies_and_states_the_analysis_policy(sample_run):
    result, out = sample_run
    normalized = pd.read_csv(out / "normalized.csv")
    left_out = normalized[~normalized["included"]].set_index(["sample_id", "target"])["exclusion_reason"]
    # The planted problems: a saturated p-mTOR band, and two collections near no planned timepoint.
    assert left_out[("PFC-R05", "p-mTOR")] == "SATURATED_BAND (p-mTOR)"
    assert left_out[("PFC-R03", "p-mTOR")].startswith("collected at 75 min")
    assert left_out[("PFC-R16", "mTOR")].startswith("collected at 140 min")
    assert len(left_out) == 5
    sensitivity = pd.read_csv(out / "sensitivity.csv")
    assert set(sensitivity["group"]) == {"ketamine"} and "conclusion_changes" in sensitivity
    html = (out / "report.html").read_text()
    assert "were left out of the means, tests and peak estimates" in html  # the methods paragraph
    assert "Sensitivity" in html and "One entry per problem" in html
    assert "Left out of this target's means and tests (drawn hollow)" in html
    # One grouped entry per problem: the late collections are one entry naming both samples.
    flags_section = html.split("<h2>Flags</h2>")[1].split("<h2>")[0]
    assert flags_section.count("<td>COLLECTION_TIME_DRIFT</td>") == 1 and "PFC-R03, PFC-R16" in flags_section
