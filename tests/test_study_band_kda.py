"""Studies that name the band of interest by its size (band_kda) from a ladder lane."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from blotquant.errors import StudyError
from blotquant.study import run_study
from blotquant.study_files import load_study
from blotquant.synth import make_ladder_blot, save_blot
from study_helpers import sample_rows, write_csv, write_study

PRECISION_PLUS = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]
DESIGN = [("vehicle", 30, 3), ("ketamine", 30, 3)]
N_LANES = 7  # lane 1 is the ladder


def make_blot_folder(folder, *, crop_top=0, target_kda=(95.0, 60.0), seed=3):
    """One blot, two images: PSD-95 (95 kDa, and a non-specific 60 kDa band) and GAPDH (37 kDa)."""
    folder.mkdir(parents=True, exist_ok=True)
    amounts = np.linspace(0.5, 1.0, N_LANES)
    for name, sizes, offset in (("PSD95", target_kda, 0), ("GAPDH", (37.0,), 1)):
        blot = make_ladder_blot(ladder_kda=PRECISION_PLUS, sample_kda=sizes, shape=(520, 560), n_lanes=N_LANES,
                                seed=seed + offset, sample_amounts=np.column_stack([amounts] * len(sizes)),
                                rotation_deg=0.0)
        path = folder / f"B1_{name}.tif"
        save_blot(blot, path)
        if crop_top:
            tifffile.imwrite(path, tifffile.imread(path)[crop_top:])
    return folder


def band_row_of(kda, height=520, crop_top=0):
    from blotquant.synth import log_linear_migration

    return float(log_linear_migration([kda])[0]) * height - crop_top


def write_sized_study(folder, *, target_entry, loading_entry=None):
    samples = sample_rows(DESIGN)
    layout = [{"blot": "B1", "lane": 1, "sample_id": "ladder"}]
    layout += [{"blot": "B1", "lane": i, "sample_id": s["sample_id"]} for i, s in enumerate(samples, start=2)]
    images = [
        {"file": "B1_GAPDH.tif", "blot": "B1", "target": "GAPDH", "role": "loading_control",
         **(loading_entry or {"band_kda": 37, "ladder": "precision_plus_dual_color"})},
        {"file": "B1_PSD95.tif", "blot": "B1", "target": "PSD-95", "role": "target", **target_entry},
    ]
    return write_study(folder, samples=samples, layout=layout, images=images, touch=False)


def test_band_kda_picks_the_same_bands_as_hand_given_rows_however_the_image_is_cropped(tmp_path):
    values = {}
    for label, crop in (("rows", 0), ("kda", 0), ("kda_cropped", 60)):
        folder = make_blot_folder(tmp_path / label, crop_top=crop)
        if label == "rows":
            target = {"band_rows": [round(band_row_of(95) - 14), round(band_row_of(95) + 14)]}
            loading = {"band_rows": [round(band_row_of(37) - 14), round(band_row_of(37) + 14)]}
        else:
            target = {"band_kda": 95, "ladder": "precision_plus_dual_color"}
            loading = None
        study = write_sized_study(folder, target_entry=target, loading_entry=loading)
        result = run_study(study, tmp_path / f"out_{label}", progress=False, overlays=False, jobs=1)
        values[label] = result.normalized.set_index("sample_id")["value"]
        if label != "rows":
            measured = result.bands[result.bands["target"] == "PSD-95"]
            sample_lanes = measured[measured["lane"] > 1]
            assert sample_lanes["kda"].to_numpy() == pytest.approx(95, rel=0.05)
            assert not (result.flags["code"] == "BAND_SIZE_MISMATCH").any()
            record = next(r for r in result.images if r["target"] == "PSD-95")
            assert record["band_kda"] == 95
            assert record["band_rows"][0] < band_row_of(95, crop_top=crop) < record["band_rows"][1]
    # The 60 kDa non-specific band is not measured: the same values as the rows drawn by hand.
    assert values["kda"].to_numpy() == pytest.approx(values["rows"].to_numpy(), rel=0.02)
    assert values["kda_cropped"].to_numpy() == pytest.approx(values["rows"].to_numpy(), rel=0.02)


def test_a_doublet_within_the_tolerance_is_flagged_with_the_band_measured(tmp_path):
    folder = make_blot_folder(tmp_path / "b", target_kda=(88.0, 70.0))
    study = write_sized_study(folder, target_entry={"band_kda": 78, "ladder": "precision_plus_dual_color"})
    result = run_study(study, tmp_path / "out", progress=False, overlays=False, jobs=1)
    flags = result.flags[result.flags["code"] == "BAND_SIZE_MISMATCH"]
    assert len(flags) == 6 and set(flags["severity"]) == {"warning"}
    assert "(a doublet?)" in flags.iloc[0]["message"] and "was measured" in flags.iloc[0]["message"]


def test_no_band_near_the_size_is_one_clear_error(tmp_path):
    folder = make_blot_folder(tmp_path / "b")
    study = write_sized_study(folder, target_entry={"band_kda": 180, "band_kda_tolerance": 0.05,
                                                    "ladder": "precision_plus_dual_color"})
    with pytest.raises(StudyError, match=r"no band within 5% of 180 kDa in any lane \(sizes found: .*95"):
        run_study(study, tmp_path / "out", progress=False, overlays=False, jobs=1)


def test_band_kda_without_a_ladder_lane_or_with_a_bad_size_is_refused(tmp_path):
    folder = make_blot_folder(tmp_path / "b")
    study = write_sized_study(folder, target_entry={"band_kda": 95})
    layout = pd.read_csv(folder / "layout.csv")
    layout.loc[layout["sample_id"] == "ladder", "sample_id"] = "empty"
    write_csv(folder / "layout.csv", layout.to_dict("records"))
    with pytest.raises(StudyError, match="band_kda needs a ladder lane on blot B1"):
        load_study(study)
    study = write_sized_study(folder, target_entry={"band_kda": -3})
    with pytest.raises(StudyError, match=r"band_kda = -3; write the size"):
        load_study(study)
