"""Molecular-weight ladders: the table, matching, size curves, and sizes in quantify() and the CLI."""

import numpy as np
import pandas as pd
import pytest

from blotquant import quantify
from blotquant.cli import main
from blotquant.errors import LadderError, ParameterError
from blotquant.io import image_from_array
from blotquant.ladder import (
    SizeCalibration,
    SizeCurve,
    find_ladder,
    load_ladders,
    match_ladder,
    match_ladder_lane,
)
from blotquant.pipeline import BAND_COLUMNS
from blotquant.synth import log_linear_migration, make_ladder_blot, save_blot

PRECISION_PLUS = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]
PAGERULER_PLUS = [250, 130, 100, 70, 55, 35, 25, 15, 10]


def curved_migration(kda):
    """A gel that compresses its large sizes: log10(kDa) against position is far from a line."""
    t = (np.log10(250) - np.log10(np.asarray(kda, dtype=float))) / (np.log10(250) - 1.0)
    return 0.08 + 0.84 * (1 - np.exp(-1.6 * t)) / (1 - np.exp(-1.6))


def _image(blot):
    return image_from_array(blot.image, name="synthetic", full_scale=blot.full_scale)


def _sample_errors(blot, result):
    """measured / true size - 1 of every sample band (NaN where it has no size)."""
    truth = blot.truth_bands[(blot.truth_bands["amount"] > 0) & ~blot.truth_bands["ladder"]]
    errors = []
    for row in truth.itertuples():
        lane = result.bands[(result.bands["strip"] == row.strip) & (result.bands["lane"] == row.lane)]
        nearest = lane.iloc[(lane["y"] - row.y).abs().argmin()]
        assert abs(nearest["y"] - row.y) < 3, f"band of {row.kda} kDa not found in lane {row.lane}"
        errors.append(nearest["kda"] / row.kda - 1)
    return np.array(errors)


# --- the table --------------------------------------------------------------------------------


def test_every_shipped_ladder_has_decreasing_sizes_and_a_source():
    ladders = load_ladders()
    assert {"precision_plus_dual_color", "pageruler_plus_prestained", "pageruler_prestained"} <= set(ladders)
    for ladder in ladders.values():
        assert all(np.diff(ladder.kda) < 0) and ladder.source and ladder.catalog
    assert load_ladders()["pageruler_prestained"].kda == (180, 130, 100, 70, 55, 40, 35, 25, 15, 10)


def test_a_ladder_is_found_by_key_name_alias_catalogue_number_or_its_sizes():
    assert find_ladder("precision_plus_dual_color").kda == tuple(PRECISION_PLUS)
    assert find_ladder("Precision Plus Dual-Color").key == "precision_plus_dual_color"
    assert find_ladder("26619").key == "pageruler_plus_prestained"
    assert find_ladder("50, 100, 75").kda == (100, 75, 50)
    assert find_ladder([100, 75, 50]).key == "custom"


@pytest.mark.parametrize("spec", ["precision plus dual colour 2", "100", [100, 100, 50], [75]])
def test_an_unknown_ladder_or_bad_sizes_is_one_clear_error(spec):
    with pytest.raises(LadderError) as caught:
        find_ladder(spec)
    assert "\n" not in str(caught.value)


# --- matching -----------------------------------------------------------------------------------


def _rows(sizes, migration=log_linear_migration, height=900.0):
    return migration(np.asarray(sizes, dtype=float)) * height


@pytest.mark.parametrize("migration", [log_linear_migration, curved_migration])
def test_missing_and_extra_ladder_bands_are_still_matched(migration):
    rows = _rows(PRECISION_PLUS, migration)
    seen = np.delete(rows, [0, 5])  # 250 (compressed at the top) and 37 kDa not seen
    extras = [0.5 * (rows[2] + rows[3]), rows[-1] + 40]  # a smear between 100 and 75, the dye front
    rng = np.random.default_rng(0)
    found = match_ladder(np.concatenate([seen, extras]) + rng.normal(0, 0.7, seen.size + 2), PRECISION_PLUS)
    assert found.kda.tolist() == [150, 100, 75, 50, 25, 20, 15, 10]
    assert found.missing_kda.tolist() == [250, 37] and found.unmatched_rows.size == 2
    np.testing.assert_allclose(found.rows, np.delete(rows, [0, 5]), atol=3)


def test_too_few_ladder_bands_is_one_clear_error():
    with pytest.raises(LadderError, match="3 band") as caught:
        match_ladder(_rows([100, 75, 50]), PRECISION_PLUS)
    assert "\n" not in str(caught.value)


def test_the_wrong_ladder_named_is_refused_and_the_right_one_suggested():
    rows = _rows(PAGERULER_PLUS, curved_migration)
    with pytest.raises(LadderError, match="pageruler_plus_prestained") as caught:
        match_ladder_lane(rows, "precision_plus_dual_color")
    assert "\n" not in str(caught.value)
    ladder, found = match_ladder_lane(rows, "PageRuler Plus")
    assert ladder.key == "pageruler_plus_prestained" and found.kda.tolist() == PAGERULER_PLUS
    # Unnamed, the table's ladder that fits is found.
    assert match_ladder_lane(rows, None)[0].key == "pageruler_plus_prestained"


def test_a_lane_whose_spacing_follows_no_ladder_is_refused():
    rows = np.array([100.0, 130.0, 300.0, 320.0, 520.0, 800.0])  # no ladder of the table spaced like this
    with pytest.raises(LadderError):
        match_ladder_lane(rows, "precision_plus_dual_color")


# --- the size curve ------------------------------------------------------------------------------


def test_size_curve_is_exact_on_log_linear_markers_and_never_extrapolates():
    rows = _rows(PRECISION_PLUS)
    curve = SizeCurve(rows, PRECISION_PLUS)
    assert curve.method == "pchip" and np.nanmax(np.abs(curve.loo_errors)) < 1e-9
    between = _rows([200, 60, 12])
    kda, sd = curve.size(between)
    np.testing.assert_allclose(kda, [200, 60, 12], rtol=1e-6)
    assert np.all(sd > 0)
    outside, _ = curve.size([rows[0] - 5, rows[-1] + 5])
    assert np.isnan(outside).all()


def test_three_pen_marks_give_a_quadratic_with_the_middle_mark_checked():
    curve = SizeCurve([300, 230, 180], [50, 75, 100], row_sd=1.5)  # any order
    assert curve.method == "quadratic" and curve.rows.tolist() == [180, 230, 300]
    # The middle mark predicted from the outer two (a straight line in log size).
    expected = 10 ** np.interp(230, [180, 300], np.log10([100, 50])) / 75 - 1
    assert curve.loo_errors[1] == pytest.approx(expected)
    kda, sd = curve.size([180, 205, 300])
    assert kda[0] == pytest.approx(100) and kda[2] == pytest.approx(50) and 75 < kda[1] < 100
    assert np.all(sd > 0)
    # With exact rows only the curve's shape is uncertain: not at the marks, but between them.
    exact = SizeCurve([300, 230, 180], [50, 75, 100], row_sd=0.0)
    _, sd = exact.size([180, 205, 300], band_row_sd=0.0)
    assert sd[0] == pytest.approx(0, abs=1e-9) and sd[2] == pytest.approx(0, abs=1e-9) and sd[1] > 1e-3


def test_marks_out_of_order_are_one_clear_error():
    with pytest.raises(LadderError, match="out of order"):
        SizeCurve([100, 150, 200], [100, 50, 75])


def test_two_ladders_follow_a_tilt_across_the_lanes():
    left = SizeCurve(_rows(PRECISION_PLUS), PRECISION_PLUS)
    right = SizeCurve(_rows(PRECISION_PLUS) + 40, PRECISION_PLUS)  # the blot runs 40 px lower at the right
    calibration = SizeCalibration([left, right], columns=[0, 1000])
    rows = _rows([60, 60, 60]) + np.array([0, 20, 40])
    estimate = calibration.size(rows, [0, 500, 1000])
    np.testing.assert_allclose(estimate.kda, 60, rtol=1e-3)
    # One ladder alone would size the right-hand band as far smaller.
    alone = SizeCalibration([left], columns=[0]).size(rows, [0, 500, 1000])
    assert alone.kda[2] < 0.9 * 60
    assert calibration.size([rows[0]], [500]).reason[0] == ""
    assert "above" in calibration.size([10.0], [500]).reason[0]


# --- quantify -----------------------------------------------------------------------------------


@pytest.mark.parametrize("migration", [log_linear_migration, curved_migration])
def test_sample_band_sizes_within_5_percent_over_the_ladder_range(migration):
    blot = make_ladder_blot(ladder_kda=PRECISION_PLUS, sample_kda=[180, 65, 42, 28, 12], migration=migration,
                            shape=(700, 800), n_lanes=8, seed=5)
    result = quantify(_image(blot), lanes=8, ladder_lane=1, ladder="precision_plus_dual_color")
    assert list(result.bands.columns) == BAND_COLUMNS
    errors = _sample_errors(blot, result)
    assert np.all(np.isfinite(errors)) and np.max(np.abs(errors)) < 0.05
    assert (result.bands["kda_sd"].dropna() > 0).all()
    fit = result.parameters["ladder_fits"][0]
    assert fit["ladder"] == "precision_plus_dual_color" and fit["missing_kda"] == []


def test_missing_and_extra_bands_in_the_ladder_lane_and_a_turned_blot():
    blot = make_ladder_blot(ladder_kda=PRECISION_PLUS, sample_kda=[65, 42], migration=curved_migration,
                            missing_kda=[37], extra_positions=[0.62], rotation_deg=1.5, shape=(700, 900),
                            n_lanes=9, seed=8)
    result = quantify(_image(blot), lanes=9, ladder_lane=1, ladder="Precision Plus")
    fit = result.parameters["ladder_fits"][0]
    assert fit["missing_kda"] == [37.0] and len(fit["unmatched_rows"]) == 1
    errors = _sample_errors(blot, result)
    assert np.max(np.abs(errors)) < 0.05
    # Carried along the lanes' lean: without it the far lanes would be sized wrong.
    calibration = result.calibration.strips[1]
    flat = SizeCalibration(calibration.curves, calibration.columns, slope=0.0)
    far = result.bands[result.bands["lane"] == 9]
    sizes = flat.size(far["y"], (far["x_left"] + far["x_right"]) / 2).kda
    assert np.max(np.abs(sizes / np.array([65, 42]) - 1)) > 0.05


def test_bands_outside_the_ladder_are_not_extrapolated():
    blot = make_ladder_blot(ladder_kda=[100, 75, 50, 37], sample_kda=[150, 60, 25], ladder_lanes=(6,),
                            shape=(600, 700), n_lanes=6, seed=2)
    result = quantify(_image(blot), lanes=6, ladder_lane=6, ladder=[100, 75, 50, 37])
    samples = result.bands[result.bands["lane"] < 6].copy()
    samples["truth"] = [150, 60, 25] * 5
    assert samples.loc[samples["truth"] != 60, "kda"].isna().all()
    assert samples.loc[samples["truth"] != 60, "kda_sd"].isna().all()
    assert np.allclose(samples.loc[samples["truth"] == 60, "kda"], 60, rtol=0.05)
    assert any("above the ladder" in w and "not extrapolated" in w for w in result.image["warnings"])
    assert any("below the ladder" in w for w in result.image["warnings"])


def test_each_strip_gets_its_own_curve_and_ladders_on_both_sides_are_used():
    blot = make_ladder_blot(ladder_kda=PRECISION_PLUS, sample_kda=[65, 30], ladder_lanes=(1, 8), n_strips=2,
                            rotation_deg=-1.2, shape=(1000, 900), n_lanes=8, seed=11)
    result = quantify(_image(blot), lanes=8, ladder_lane=[1, 8], ladder="precision_plus_dual_color")
    assert sorted(result.calibration.strips) == [1, 2]
    assert [len(c.curves) for c in result.calibration.strips.values()] == [2, 2]
    errors = _sample_errors(blot, result)
    assert errors.size == 2 * 6 * 2 and np.max(np.abs(errors)) < 0.05


def test_pen_marks_given_as_sizes_and_rows():
    blot = make_ladder_blot(ladder_kda=[100, 75, 50], sample_kda=[120, 65, 40], shape=(600, 800), n_lanes=7,
                            seed=4, ladder_lanes=(7,))
    marks = blot.truth_bands[blot.truth_bands["ladder"] & (blot.truth_bands["amount"] > 0)]
    table = pd.DataFrame({"image": "synthetic", "kda": marks["kda"], "y": marks["y"].round(), "x": 10.0})
    result = quantify(_image(blot), lanes=7, ladder_marks=table)
    samples = result.bands[result.bands["lane"] < 7]
    sized = samples[samples["kda"].notna()]
    assert len(sized) == 6 and np.allclose(sized["kda"], 65, rtol=0.05)  # 120 and 40 kDa lie outside the marks
    assert result.parameters["ladder_marks"][0]["kda"] == 100
    # Rows for another image are not this one's marks.
    other = quantify(_image(blot), lanes=7, ladder_marks=table.assign(image="other.tif"))
    assert other.bands["kda"].isna().all() and any("no rows for this image" in w for w in other.image["warnings"])


def test_a_ladder_lane_that_is_not_there_is_one_clear_error():
    blot = make_ladder_blot(ladder_kda=PRECISION_PLUS, sample_kda=[60], shape=(500, 600), n_lanes=5, seed=1)
    with pytest.raises(LadderError, match="no ladder lane 7"):
        quantify(_image(blot), lanes=5, ladder_lane=7)
    with pytest.raises(ParameterError, match="no ladder lane given"):
        quantify(_image(blot), lanes=5, ladder="precision_plus_dual_color")


def test_cli_writes_sizes_and_refuses_a_wrong_ladder_in_one_line(tmp_path, capsys):
    blot = make_ladder_blot(ladder_kda=PRECISION_PLUS, sample_kda=[65], shape=(500, 600), n_lanes=5, seed=3)
    save_blot(blot, tmp_path / "blot.tif")
    out = tmp_path / "out"
    assert main(["quantify", str(tmp_path / "blot.tif"), "--out", str(out), "--lanes", "5", "--ladder-lane", "1",
                 "--ladder", "precision_plus_dual_color", "--jobs", "1"]) == 0
    bands = pd.read_csv(out / "bands.csv")
    assert np.allclose(bands.loc[bands["lane"] > 1, "kda"], 65, rtol=0.05)
    assert (out / "blot.tif.overlay.png").stat().st_size > 1000
    capsys.readouterr()
    code = main(["quantify", str(tmp_path / "blot.tif"), "--out", str(tmp_path / "wrong"), "--lanes", "5",
                 "--ladder-lane", "1", "--ladder", "pageruler_prestained", "--jobs", "1"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert code == 2 and len(lines) == 1 and "ladder" in lines[0] and "Traceback" not in lines[0]
