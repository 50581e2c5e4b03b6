"""quantify() end to end on realistic synthetic blots with known truth."""

import numpy as np
import pytest

from blotquant import quantify
from blotquant.errors import ParameterError
from blotquant.io import image_from_array
from blotquant.synth import make_blot


def _blot_image(blot):
    return image_from_array(blot.image, name="synthetic", full_scale=blot.full_scale)


def _relative_errors(result, blot):
    """|measured / truth - 1| after one scale factor per band row, unsaturated bands."""
    truth = blot.truth_bands[~blot.truth_bands["saturated"]]
    ratios = {}
    for row in truth.itertuples():
        lane = result.bands[(result.bands["strip"] == row.strip) & (result.bands["lane"] == row.lane)]
        assert not lane.empty, f"no band found in lane {row.lane}"
        nearest = lane.iloc[(lane["y"] - row.y).abs().argmin()]
        assert abs(nearest["y"] - row.y) < 2 * row.sigma_y
        ratios.setdefault(row.band_row, []).append(nearest["volume"] / row.volume)
    errors = []
    for values in ratios.values():
        values = np.array(values)
        errors.extend(np.abs(values / np.median(values) - 1))
    return np.array(errors)


@pytest.mark.parametrize("polarity, bit_depth", [("light_on_dark", 16), ("dark_on_light", 16), ("light_on_dark", 8)])
def test_volumes_track_truth_on_blotchy_turned_blot(polarity, bit_depth):
    blot = make_blot(shape=(800, 1100), n_lanes=10, rotation_deg=1.0, smile=0.01, polarity=polarity,
                     bit_depth=bit_depth, band_rows=((0.3, 1.0), (0.65, 0.6)), tail=0.3, seed=21)
    result = quantify(_blot_image(blot), lanes=10)
    assert result.image["polarity"] == polarity
    errors = _relative_errors(result, blot)
    assert np.median(errors) < 0.03
    assert np.percentile(errors, 90) < (0.12 if bit_depth == 16 else 0.2)


def test_dilution_series_is_linear():
    amounts = np.array([1.0, 0.5, 0.25, 0.125, 0.0625, 1.0, 0.5, 0.25])
    blot = make_blot(shape=(600, 900), n_lanes=8, amounts=amounts, band_rows=((0.45, 1.0),), seed=4)
    y = int(blot.truth_bands["y"].median())
    # A dilution series is read in a fixed molecular-weight window, as a study does.
    result = quantify(_blot_image(blot), lanes=8, band_rows=(y - 40, y + 40))
    assert result.bands["detected"].all()
    volumes = result.bands.sort_values("lane")["volume"].to_numpy()
    assert len(volumes) == 8
    slope, intercept = np.polyfit(amounts, volumes, 1)
    deviation = np.abs(volumes / (slope * amounts + intercept) - 1)
    # Blotchy membrane background weighs most on the faintest (1/8, 1/16) lanes.
    assert np.max(deviation[amounts >= 0.25]) < 0.05
    assert np.max(deviation) < 0.12
    assert abs(intercept) < 0.05 * volumes.max()


def test_saturated_bands_are_flagged():
    blot = make_blot(shape=(600, 900), n_lanes=8, saturate=True, seed=8)
    assert blot.truth_bands["saturated"].any()
    result = quantify(_blot_image(blot), lanes=8)
    for row in blot.truth_bands[blot.truth_bands["saturated"]].itertuples():
        lane = result.bands[result.bands["lane"] == row.lane]
        nearest = lane.iloc[(lane["y"] - row.y).abs().argmin()]
        assert nearest["saturated"], f"lane {row.lane} band at {row.y:.0f} not flagged"
        assert nearest["saturated_pixels"] >= 4


def test_nonspecific_band_kept_apart():
    blot = make_blot(shape=(700, 900), n_lanes=6, band_rows=((0.35, 1.0),), nonspecific=0.3,
                     nonspecific_offset=4.0, background="gradient", seed=9)
    result = quantify(_blot_image(blot), lanes=6)
    specific = blot.truth_bands[~blot.truth_bands["nonspecific"]]
    other = blot.truth_bands[blot.truth_bands["nonspecific"]]
    for lane in range(1, 7):
        bands = result.bands[result.bands["lane"] == lane]
        assert len(bands) == 2
        top, bottom = bands.iloc[0], bands.iloc[1]
        assert top["y_bottom"] <= bottom["y_top"]  # they may share the valley row, never overlap
        truth_specific = specific[specific["lane"] == lane]["y"].item()
        truth_other = other[other["lane"] == lane]["y"].item()
        assert abs(top["y"] - min(truth_specific, truth_other)) < 4
        assert abs(bottom["y"] - max(truth_specific, truth_other)) < 4


def test_band_rows_give_one_value_per_lane_even_when_lane_is_empty():
    blot = make_blot(shape=(600, 900), n_lanes=8, empty_lanes=(4,), band_rows=((0.4, 1.0),), seed=12)
    y = blot.truth_bands["y"].median()
    result = quantify(_blot_image(blot), lanes=8, band_rows=(int(y - 40), int(y + 40)))
    assert sorted(result.bands["lane"]) == list(range(1, 9))
    empty = result.bands[result.bands["lane"] == 4].iloc[0]
    assert not empty["detected"]
    assert abs(empty["volume"]) < 0.03 * result.bands["volume"].max()


def test_every_background_method_runs_and_input_is_untouched():
    blot = make_blot(shape=(400, 600), n_lanes=5, seed=1)
    original = blot.image.copy()
    for method in ("auto", "rolling_ball", "rolling_ball_valley", "border_median", "rubber_band", "valley", "none"):
        result = quantify(_blot_image(blot), lanes=5, background=method)
        assert len(result.bands) >= 5, method
        assert result.parameters["background_method"] != "auto"
    assert np.array_equal(blot.image, original)


def test_bad_options_are_refused():
    blot = make_blot(shape=(300, 400), n_lanes=4, seed=1)
    with pytest.raises(ParameterError, match="background"):
        quantify(_blot_image(blot), background="magic")
    with pytest.raises(ParameterError, match="band_rows"):
        quantify(_blot_image(blot), band_rows=(200, 100))
    with pytest.raises(ParameterError, match="channel"):
        quantify(_blot_image(blot), channel="green")


def test_result_tables_have_the_documented_columns():
    blot = make_blot(shape=(300, 500), n_lanes=4, seed=2)
    result = quantify(blot.image)
    for column in ("image", "strip", "lane", "band", "y", "y_top", "y_bottom", "volume", "background",
                   "saturated", "snr"):
        assert column in result.bands.columns
    for column in ("image", "strip", "lane", "x_center", "x_left", "x_right"):
        assert column in result.lanes.columns
    assert result.bands["saturated"].dtype == bool
    assert (result.bands["snr"] > 4).all()


def test_overlap_reports_bands_that_run_into_each_other():
    # Row 2 sits 3 band sigmas under row 1: the profile between them stays high.
    blot = make_blot(shape=(600, 900), n_lanes=6, band_rows=((0.3, 1.0), (0.3 + 3 * 6 / 600, 0.5), (0.75, 0.8)),
                     amounts=np.linspace(0.5, 1.0, 6), band_sigma=6.0, tail=0.0, background="flat", seed=14)
    result = quantify(_blot_image(blot), lanes=6)
    rows = result.bands.assign(row=result.bands.groupby("lane").cumcount())
    assert (rows.groupby("lane").size() == 3).all()
    touching = rows[rows["row"] < 2]["overlap"]
    isolated = rows[rows["row"] == 2]["overlap"]
    assert (touching > 0.3).all(), touching
    assert (isolated < 0.1).all(), isolated


@pytest.mark.parametrize("seed", [4, 5, 6, 7])
def test_membrane_blotches_are_not_reported_as_bands(seed):
    """Free detection on a blotchy membrane finds the protein and nothing else."""
    amounts = np.array([1.0, 0.5, 0.25, 0.125, 0.0625, 1.0, 0.5, 0.25])
    blot = make_blot(shape=(600, 900), n_lanes=8, amounts=amounts, band_rows=((0.45, 1.0),), seed=seed)
    assert blot.params["background"] == "blotchy"
    result = quantify(_blot_image(blot), lanes=8)
    assert result.bands.groupby("lane").size().to_dict() == {lane: 1 for lane in range(1, 9)}
    truth_y = blot.truth_bands.set_index("lane")["y"]
    assert (result.bands.set_index("lane")["y"] - truth_y).abs().max() < 3


def test_band_rows_measure_only_the_strip_that_holds_them():
    blot = make_blot(shape=(900, 900), n_lanes=7, n_strips=2, band_rows=((0.4, 1.0),), seed=2)
    lower = blot.truth_bands[blot.truth_bands["strip"] == 2]
    y = int(lower["y"].median())
    result = quantify(_blot_image(blot), lanes=7, band_rows=(y - 25, y + 25))
    assert set(result.bands["strip"]) == {2}
    assert sorted(result.bands["lane"]) == list(range(1, 8))
    assert result.bands["detected"].all()


def _hand_built_row(sigmas, tails=None, *, tail_length=2.0, background=100.0, width=30, gap=10, height=200,
                    centre=90.0):
    """A row of bands drawn by hand: Gaussian cores (and exponential tails) of known volume, no noise."""
    from scipy.stats import exponnorm

    tails = np.zeros(len(sigmas)) if tails is None else np.asarray(tails, float)
    rows = np.arange(height, dtype=float)
    pitch = width + gap
    image = np.full((height, pitch * len(sigmas) + gap), background)
    volumes = []
    for index, (sigma, tail) in enumerate(zip(sigmas, tails)):
        core = np.exp(-0.5 * ((rows - centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
        trailing = exponnorm.pdf(rows, tail_length, loc=centre, scale=sigma) if tail > 0 else 0.0
        along = 1000.0 * ((1 - tail) * core + tail * trailing)  # volume 1000 per column
        left = gap + index * pitch
        image[:, left : left + width] += along[:, None]
        volumes.append(along.sum() * width)
    lanes = [{"x_left": gap + i * pitch, "x_right": gap + i * pitch + width - 1} for i in range(len(sigmas))]
    return image, lanes, np.array(volumes)


@pytest.mark.parametrize("background, tolerance", [("valley", 0.06), ("beyond", 0.015), ("fit", 0.002)])
def test_wide_band_in_a_row_of_narrow_ones_keeps_its_volume(background, tolerance):
    """One band three times as wide as its row: its window widens with it (issue 8, cause 2).

    With one window for the whole row it kept a quarter of its volume (0.25).
    The valley baseline still stands on the flanks at the limits and takes
    about 5 % of a wide band; the baseline beyond the band's extent about
    1 % (its anchors start three rows out, where a wide band's flank still
    glows); the profile fit counts the flanks as the band's.
    """
    image, lanes, truth = _hand_built_row([3.0, 3.0, 9.0, 3.0, 3.0])
    result = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, background=background,
                      review=None)
    volumes = result.bands.sort_values("lane")["volume"].to_numpy()
    assert len(volumes) == 5
    np.testing.assert_allclose(volumes / truth, 1.0, atol=tolerance)


def _add_band(image, lanes, lane_indices, centre, sigma, volume_per_column):
    """Add a Gaussian band of known volume to some lanes of a hand-built row; return its volume per lane."""
    rows = np.arange(image.shape[0], dtype=float)
    along = volume_per_column * np.exp(-0.5 * ((rows - centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    for index in lane_indices:
        lane = lanes[index]
        image[:, lane["x_left"] : lane["x_right"] + 1] += along[:, None]
    return along.sum() * (lanes[0]["x_right"] - lanes[0]["x_left"] + 1)


def test_trailing_bands_keep_most_of_their_tails():
    """Every band of a row trails (a fifth of its light in a tail two sigmas long).

    Measured share kept: valley 0.90-0.96, beyond 0.95-0.98, fit 0.95-0.96.
    The fit's single EMG per band follows a Gaussian core with a separate
    tail only in part; a core-plus-tail model kept 1.000 here but lost on
    the benchmarks (8.8 % p90 error on the old family became 10-12 %), so it
    is not the default. This pins the shortfall so that it can only shrink.
    """
    image, lanes, truth = _hand_built_row([3.0, 3.5, 4.0, 3.5, 3.0], [0.2] * 5, tail_length=2.0)
    bands = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, review=None).bands
    kept = bands.sort_values("lane")["volume"].to_numpy() / truth
    assert ((kept >= 0.94) & (kept <= 1.005)).all(), kept.round(4)


def test_one_trailing_band_in_a_row_of_clean_ones_is_measured_best_by_the_fit():
    """One band of five trails; its row's window is the clean bands' and cuts the tail.

    Measured share of its volume kept: valley 0.873, beyond 0.929, fit 0.941
    (the single-EMG model follows a Gaussian core with a separate long tail
    only in part). The clean bands stay exact.
    """
    image, lanes, truth = _hand_built_row([3.0] * 5, [0.0, 0.0, 0.2, 0.0, 0.0], tail_length=2.0)
    kept = {}
    for background in ("valley", "fit"):
        bands = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, background=background,
                         review=None).bands.sort_values("lane")
        kept[background] = bands["volume"].to_numpy() / truth
    np.testing.assert_allclose(kept["fit"][[0, 1, 3, 4]], 1.0, atol=0.002)
    assert 0.93 <= kept["fit"][2] <= 1.0
    assert kept["fit"][2] > kept["valley"][2] + 0.05


def test_neighbour_on_the_tail_side_is_split_off_by_the_fit():
    """A faint band (a fifth of the main one) three band-widths down one lane's tail.

    Box sums share the light between them (valley: main 0.907, neighbour
    0.858 of their truths); the fit gives main 0.969, neighbour 1.088 (the
    main band's tail it cannot follow in full goes to the neighbour).
    """
    image, lanes, truth = _hand_built_row([3.0] * 5, [0.2] * 5, tail_length=2.0)
    neighbour = _add_band(image, lanes, [2], 90.0 + 3 * 2.355 * 3.0, 3.0, 200.0)
    bands = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, review=None).bands
    lane = bands[bands["lane"] == 3].sort_values("y")
    assert len(lane) == 2
    main, faint = lane.iloc[0], lane.iloc[1]
    assert main["volume"] == pytest.approx(truth[2], rel=0.04)
    assert faint["volume"] == pytest.approx(neighbour, rel=0.10)
    valley = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, background="valley",
                      review=None).bands
    valley_main = valley[valley["lane"] == 3].sort_values("y").iloc[0]["volume"]
    assert abs(main["volume"] / truth[2] - 1) < 0.5 * abs(valley_main / truth[2] - 1)
    # The split is reported: part of the light in each box is the other band's.
    assert main["fit_share"] < 1.0 and faint["fit_share"] < 0.99
    assert bands["fit_residual"].max() < 0.05


def test_resolved_doublet_is_split_exactly():
    """A p44/p42-like pair 4 sigmas apart (the second 0.6 of the first): each band its own volume.

    Measured: fit 1.000 and 1.000; valley 0.70 and 0.59.
    """
    image, lanes, truth = _hand_built_row([3.0] * 4)
    second = _add_band(image, lanes, range(4), 90.0 + 4 * 3.0, 3.0, 600.0)
    bands = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, review=None).bands
    for _, lane in bands.groupby("lane"):
        np.testing.assert_allclose(lane.sort_values("y")["volume"].to_numpy(), [truth[0], second], rtol=0.005)


@pytest.mark.parametrize("separation, weaker, tolerance",
                         [(2.5, 600.0, 0.04), (3.0, 300.0, 0.02), (3.0, 600.0, 0.02), (3.0, 1000.0, 0.02)])
def test_doublet_seen_as_one_peak_is_split_into_its_two_bands(separation, weaker, tolerance):
    """A pair 2.5-3 sigmas apart makes one peak with a shoulder: the fit splits it, exactly.

    Before the split the pair was fitted as one band with a long tail that
    ran past it: 1.24 of the pair's total (the valley box 0.32); that is still
    what happens without ``split_doublets`` (its default is off). With pixel
    noise the members come out within 3.2 % (2.5 sigmas apart) and 1.6 % (3
    sigmas) of their truths. Closer pairs (2 sigmas) stay one band, measured
    whole to within 6 %.
    """
    image, lanes, truth = _hand_built_row([3.0] * 4)
    second = _add_band(image, lanes, range(4), 90.0 + separation * 3.0, 3.0, weaker)
    noisy = image + np.random.default_rng(0).normal(0, 1.0, image.shape)
    bands = quantify(image_from_array(noisy, full_scale=4095.0), lane_geometry=lanes, review=None,
                     split_doublets=True).bands
    for _, lane in bands.groupby("lane"):
        lane = lane.sort_values("y")
        assert len(lane) == 2
        np.testing.assert_allclose(lane["volume"].to_numpy(), [truth[0], second], rtol=tolerance)
        assert (lane["fit_share"] < 1.0).all()


def test_close_doublet_is_measured_whole():
    image, lanes, truth = _hand_built_row([3.0] * 4)
    second = _add_band(image, lanes, range(4), 90.0 + 2.0 * 3.0, 3.0, 600.0)
    bands = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, review=None,
                     split_doublets=True).bands
    np.testing.assert_allclose(bands.groupby("lane")["volume"].sum().to_numpy(), truth[0] + second, rtol=0.06)


def test_a_clean_trailing_band_is_not_split():
    """A single band with a long tail fits one EMG closely: it is one band, not a doublet."""
    image, lanes, truth = _hand_built_row([3.0, 4.0, 5.0, 4.0], [0.3] * 4, tail_length=2.5)
    noisy = image + np.random.default_rng(1).normal(0, 1.0, image.shape)
    bands = quantify(image_from_array(noisy, full_scale=4095.0), lane_geometry=lanes, review=None,
                     split_doublets=True).bands
    assert (bands.groupby("lane").size() == 1).all()


def test_doublets_are_split_only_when_asked():
    image, lanes, truth = _hand_built_row([3.0] * 4)
    _add_band(image, lanes, range(4), 90.0 + 3.0 * 3.0, 3.0, 600.0)
    bands = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, review=None).bands
    assert (bands.groupby("lane").size() == 1).all()


def test_a_membrane_edge_beside_a_band_sets_the_fit_aside():
    """A step in the background just below the bands (a membrane's edge): the fit is not trusted there.

    The step is found as a band of its own; the fits of both would take the
    step for a tail, so the box sums stand (``fit_share`` empty).
    """
    image, lanes, truth = _hand_built_row([3.0] * 4)
    image[105:, :] += 40.0
    bands = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, review=None).bands
    beyond = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, background="beyond",
                      review=None).bands
    assert bands["fit_share"].isna().all()
    np.testing.assert_allclose(bands["volume"].to_numpy(), beyond["volume"].to_numpy())


def test_baseline_beyond_the_extent_keeps_the_flanks():
    """Noise-free bands on a sloping background: the line beyond the band's extent misses < 1 %."""
    image, lanes, truth = _hand_built_row([3.0, 5.0, 7.0])
    image = image + np.linspace(0, 50, image.shape[0])[:, None]
    bands = quantify(image_from_array(image, full_scale=4095.0), lane_geometry=lanes, background="beyond",
                     review=None).bands
    np.testing.assert_allclose(bands.sort_values("lane")["volume"].to_numpy() / truth, 1.0, atol=0.01)


def test_every_volume_has_an_uncertainty():
    image, lanes, truth = _hand_built_row([3.0, 4.0, 5.0])
    noisy = image + np.random.default_rng(0).normal(0, 2.0, image.shape)
    bands = quantify(image_from_array(noisy, full_scale=4095.0), lane_geometry=lanes, review=None).bands
    assert (bands["volume_sd"] > 0).all()
    assert (bands["volume_sd"] < 0.1 * bands["volume"]).all()
    # The truth lies within a few standard uncertainties.
    z = (bands.sort_values("lane")["volume"].to_numpy() - truth) / bands.sort_values("lane")["volume_sd"].to_numpy()
    assert np.abs(z).max() < 4
