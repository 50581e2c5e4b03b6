"""Normalisation to loading, phospho/total ratios and calibrator scaling, worked by hand."""

import numpy as np
import pandas as pd
import pytest

from blotquant.normalise import label_lane_signals, lane_kind, normalise_lane_signals, sample_values

LANES = ["blot", "strip", "lane"]


def _bands(volumes, *, blot="B1", extra=None):
    """Per-lane bands from ``{target: [volume per lane]}`` for GAPDH, mTOR and p-mTOR."""
    roles = {"GAPDH": ("loading_control", ""), "mTOR": ("total", ""), "p-mTOR": ("target", "mTOR")}
    rows = []
    for target, values in volumes.items():
        role, total = roles[target]
        for lane, volume in enumerate(values, start=1):
            rows.append({"blot": blot, "strip": 1, "lane": lane, "target": target, "role": role,
                         "total_target": total, "volume": volume, "saturated": False, "snr": 100.0,
                         "detected": True, "excluded": False, **(extra or {})})
    return pd.DataFrame(rows)


def _layout(sample_ids, loads=None, blot="B1"):
    return pd.DataFrame({"blot": blot, "strip": 1, "lane": np.arange(1, len(sample_ids) + 1),
                         "sample_id": sample_ids, "load_ug": loads if loads is not None else np.nan})


def test_lane_kinds():
    assert lane_kind(pd.Series(["a", "EMPTY", " ladder ", "Calibrator"])).tolist() == [
        "sample", "empty", "ladder", "calibrator"]


def test_loading_normalisation_ratio_and_calibrator_by_hand():
    # GAPDH: calibrator 1000, a 800, b 1200 -> sample median 1000 -> factors 1.0, 0.8, 1.2.
    # mTOR 500, 400, 660 -> normalised 500, 500, 550; p-mTOR 200, 320, 330 -> 200, 400, 275.
    # Ratios 0.4, 0.8, 0.5; divided by the calibrator's 0.4: a 2.0, b 1.25. mTOR / 500: 1.0, 1.1.
    bands = _bands({"GAPDH": [1000, 800, 1200], "mTOR": [500, 400, 660], "p-mTOR": [200, 320, 330]})
    lanes = normalise_lane_signals(label_lane_signals(bands, _layout(["calibrator", "a", "b"])))
    p = lanes[lanes["target"] == "p-mTOR"].set_index("lane")
    assert p["loading_factor"].tolist() == pytest.approx([1.0, 0.8, 1.2])
    assert p["normalised"].tolist() == pytest.approx([200, 400, 275])
    assert p["total_normalised"].tolist() == pytest.approx([500, 500, 550])
    assert p["ratio_to_total"].tolist() == pytest.approx([0.4, 0.8, 0.5])
    assert p["calibrator_value"].tolist() == pytest.approx([0.4] * 3)
    assert p["value"].tolist() == pytest.approx([1.0, 2.0, 1.25])
    assert (p["value_kind"] == "ratio_to_total/calibrator").all()
    m = lanes[lanes["target"] == "mTOR"].set_index("lane")
    assert m["value"].tolist() == pytest.approx([1.0, 1.0, 1.1])
    assert (m["value_kind"] == "normalised/calibrator").all()
    assert set(lanes["target"]) == {"mTOR", "p-mTOR"}  # loading rows only normalise


def test_without_calibrator_values_stay_normalised_in_target_units():
    bands = _bands({"GAPDH": [800, 1200], "mTOR": [400, 660], "p-mTOR": [320, 330]})
    lanes = normalise_lane_signals(label_lane_signals(bands, _layout(["a", "b"])))
    p = lanes[lanes["target"] == "p-mTOR"]
    assert p["calibrator_value"].isna().all()
    assert p["value"].tolist() == pytest.approx([0.8, 0.5])  # the ratio itself
    assert (p["value_kind"] == "ratio_to_total").all()


def test_dilution_series_scales_by_the_calibrator_at_the_samples_load():
    # Calibrator at 10, 20 (the samples' load) and 40 ug; only the 20-ug lane is the reference.
    loads = [10, 20, 40, 20, 20]
    bands = _bands({"GAPDH": [500, 1000, 2000, 1000, 1000], "mTOR": [250, 500, 1000, 500, 500],
                    "p-mTOR": [100, 300, 400, 150, 300]})
    lanes = normalise_lane_signals(label_lane_signals(
        bands, _layout(["calibrator", "calibrator", "calibrator", "a", "b"], loads)))
    p = lanes[lanes["target"] == "p-mTOR"].set_index("lane")
    # Loading reference = median of the sample lanes (1000): the 20-ug calibrator ratio is 300/500 = 0.6.
    assert p.loc[2, "calibrator_value"] == pytest.approx(0.6)
    assert p.loc[4, "value"] == pytest.approx((150 / 500) / 0.6)
    assert p.loc[5, "value"] == pytest.approx(1.0)


def test_unloaded_lane_gives_nan_not_infinity_and_excluded_bands_are_dropped():
    bands = _bands({"GAPDH": [1000, 0, 1000], "mTOR": [500, 500, 500], "p-mTOR": [200, 200, 200]})
    bands.loc[(bands["target"] == "p-mTOR") & (bands["lane"] == 3), "excluded"] = True
    lanes = normalise_lane_signals(label_lane_signals(bands, _layout(["a", "b", "c"])))
    p = lanes[lanes["target"] == "p-mTOR"].set_index("lane")
    assert np.isfinite(p.loc[1, "value"])
    assert np.isnan(p.loc[2, "value"]) and np.isnan(p.loc[3, "value"])


def test_ladder_and_empty_lanes_are_ignored():
    bands = _bands({"GAPDH": [5, 1000, 0], "mTOR": [5, 500, 0], "p-mTOR": [5, 200, 0]})
    labelled = label_lane_signals(bands, _layout(["ladder", "a", "empty"]))
    assert labelled["lane"].unique().tolist() == [2]


def test_sample_values_average_technical_replicates_and_keep_sample_columns():
    bands = pd.concat([
        _bands({"GAPDH": [1000, 1000], "mTOR": [500, 500], "p-mTOR": [200, 300]}, blot="B1"),
        _bands({"GAPDH": [1000], "mTOR": [500], "p-mTOR": [250]}, blot="B2"),
    ])
    layout = pd.concat([_layout(["a", "b"], blot="B1"), _layout(["a"], blot="B2")])
    samples = pd.DataFrame({"sample_id": ["a", "b"], "subject": ["S1", "S2"], "group": ["vehicle", "drug"],
                            "dose_mg_kg": [0, 10], "nominal_min": [30, 30], "actual_min": [31.0, 29.0],
                            "region": ["PFC", "PFC"], "reference_time": pd.NaT, "time_problem": ""})
    table = sample_values(normalise_lane_signals(label_lane_signals(bands, layout)), samples)
    a = table[(table["sample_id"] == "a") & (table["target"] == "p-mTOR")].iloc[0]
    # B1 ratio 200/500 = 0.4 (B1's median GAPDH 1000), B2 250/500 = 0.5 -> mean 0.45
    assert a["value"] == pytest.approx(0.45)
    assert (a["blot"], a["lane"], a["n_lanes"]) == ("B1;B2", "1;1", 2)
    assert a["region"] == "PFC" and a["actual_min"] == 31.0
    assert "reference_time" not in table and "time_problem" not in table
    assert len(table) == 4  # 2 samples x (p-mTOR, mTOR)
