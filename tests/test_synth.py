"""Tests for blotquant.synth: the synthetic blots every other test relies on."""

import json

import numpy as np
import pandas as pd
import pytest

from blotquant.errors import ParameterError
from blotquant.synth import (
    FOOTPRINT_FRACTION,
    SyntheticBlot,
    band_contribution,
    make_blot,
    random_blot,
    save_blot,
)

SMALL = dict(shape=(240, 320), n_lanes=6)


def bands_only(blot):
    """Sum of every band's re-rendered contribution, as a full image."""
    total = np.zeros(blot.image.shape, dtype=np.float64)
    for i in range(len(blot.truth_bands)):
        rows, cols, values = band_contribution(blot, i)
        total[rows, cols] += values
    return total


def signal_of(blot):
    image = blot.image.astype(np.float64)
    return image if blot.polarity == "light_on_dark" else blot.full_scale - image


def test_returns_dataclass_with_documented_columns():
    blot = make_blot(**SMALL, seed=1)
    assert isinstance(blot, SyntheticBlot)
    assert blot.image.shape == (240, 320) and blot.image.dtype == np.uint16
    assert blot.full_scale == 65535.0 and blot.polarity == "light_on_dark"
    for column in ("strip", "lane", "band_row", "y", "x", "volume", "amount", "saturated", "sigma_y",
                   "nonspecific"):
        assert column in blot.truth_bands.columns
    for column in ("strip", "lane", "x_center", "x_left", "x_right", "y_top", "y_bottom", "empty"):
        assert column in blot.truth_lanes.columns
    assert blot.background.dtype == np.float32 and blot.background.shape == blot.image.shape
    assert len(blot.truth_bands) == 6 and len(blot.truth_lanes) == 6
    assert list(blot.truth_lanes.lane) == [1, 2, 3, 4, 5, 6]
    assert np.all(np.diff(blot.truth_lanes.x_center) > 0)


def test_same_seed_same_blot_and_different_seed_differs():
    kwargs = dict(**SMALL, dust=5, marks=True, smear=0.03, nonspecific=0.3, rotation_deg=1.0)
    a, b = make_blot(**kwargs, seed=7), make_blot(**kwargs, seed=7)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.background, b.background)
    pd.testing.assert_frame_equal(a.truth_bands, b.truth_bands)
    assert a.params == b.params
    c = make_blot(**kwargs, seed=8)
    assert not np.array_equal(a.image, c.image)


def test_noise_does_not_change_the_drawn_blot():
    quiet = make_blot(**SMALL, seed=3, noise=False)
    noisy = make_blot(**SMALL, seed=3, noise=True)
    pd.testing.assert_frame_equal(quiet.truth_bands.drop(columns="saturated"),
                                  noisy.truth_bands.drop(columns="saturated"))
    assert not np.array_equal(quiet.image, noisy.image)


def test_truth_volume_is_the_sum_of_the_band_rendering():
    blot = make_blot(**SMALL, band_rows=((0.3, 1.0), (0.7, 0.5)), rotation_deg=1.5, smile=0.02, seed=4)
    for i, volume in enumerate(blot.truth_bands.volume):
        _, _, values = band_contribution(blot, i)
        assert float(values.sum(dtype=np.float64)) == volume
        assert volume > 0


def test_single_band_image_sums_to_its_volume_and_to_the_model_volume():
    # Flat zero background, no noise, float output: the image is the band alone.
    blot = make_blot(shape=(200, 200), n_lanes=1, amounts=[1.0], background="flat", background_level=0.0,
                     noise=False, bit_depth=32, seed=5)
    volume = blot.truth_bands.volume[0]
    assert blot.full_scale == 1.0 and blot.image.dtype == np.float32
    assert blot.image.sum(dtype=np.float64) == pytest.approx(volume, rel=1e-5)
    # The discrete sum matches the continuous model (unit-area profiles) closely.
    model = blot.params["bands"][0]["volume_model"]
    assert volume == pytest.approx(model, rel=2e-3)


def test_noise_free_image_minus_background_is_the_sum_of_bands():
    blot = make_blot(shape=(300, 400), n_lanes=8, n_strips=2, band_rows=((0.3, 1.0), (0.7, 0.6)),
                     rotation_deg=-1.2, smile=0.015, dust=8, marks=True, smear=0.04, nonspecific=0.3,
                     noise=False, seed=6)
    model = blot.background + bands_only(blot)
    unclipped = model <= blot.full_scale  # a bright speck on a band may still clip
    assert unclipped.mean() > 0.999
    residual = blot.image.astype(np.float64) - model
    # Only the final rounding to whole units separates them.
    assert np.abs(residual[unclipped]).max() <= 0.5 + 1e-2
    assert 0 <= blot.background.min() and blot.background.max() <= 0.95 * blot.full_scale


def test_float_output_is_exact_without_rounding():
    blot = make_blot(**SMALL, noise=False, bit_depth=32, seed=9)
    residual = blot.image.astype(np.float64) - blot.background - bands_only(blot)
    assert np.abs(residual).max() < 1e-5


def test_volume_is_proportional_to_amount_times_strength():
    amounts = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [1.0, 0.8]])
    blot = make_blot(shape=(300, 300), n_lanes=4, band_rows=((0.3, 1.0), (0.7, 0.5)), amounts=amounts,
                     lane_width_jitter=0.2, noise=False, seed=10)
    truth = blot.truth_bands
    ratio = truth.volume / (truth.amount * truth.strength)
    # Different widths and sigmas, same volume per unit amount (within discretisation).
    assert ratio.max() / ratio.min() == pytest.approx(1.0, abs=5e-3)
    np.testing.assert_allclose(truth.amount.to_numpy().reshape(4, 2), amounts)


def test_band_centres_are_local_maxima_of_the_signal_when_rotated():
    blot = make_blot(shape=(300, 400), n_lanes=5, band_rows=((0.3, 1.0), (0.7, 0.7)), rotation_deg=2.0,
                     band_sigma=8.0, band_curvature=0.0, tail=0.0, background="flat", noise=False,
                     bit_depth=32, seed=11)
    signal = blot.image - blot.background
    for band in blot.truth_bands.itertuples():
        col = int(round(band.x))
        window = np.arange(int(band.y) - 15, int(band.y) + 16)
        assert abs(window[np.argmax(signal[window, col])] - band.y) <= 1.0
        # Across the lane: the half-maximum run through the centre is centred on x.
        row = signal[int(round(band.y)), :]
        inside = row > 0.5 * row[col]
        left, right = col, col
        while inside[left - 1]:
            left -= 1
        while inside[right + 1]:
            right += 1
        assert abs(0.5 * (left + right) - band.x) <= 1.5


def test_rotation_moves_band_centres_as_a_counter_clockwise_turn():
    common = dict(shape=(300, 400), n_lanes=6, noise=False, smile=0.0, seed=12)
    flat = make_blot(**common, rotation_deg=0.0).truth_bands
    turned = make_blot(**common, rotation_deg=2.0).truth_bands
    assert flat.y.max() - flat.y.min() < 1e-9
    slope = np.polyfit(turned.x, turned.y, 1)[0]
    assert slope == pytest.approx(-np.tan(np.radians(2.0)), abs=1e-9)
    # Rotation about the image centre: the centre lane barely moves.
    centre = np.array([399 / 2, 299 / 2])
    for (_, a), (_, b) in zip(flat.iterrows(), turned.iterrows()):
        assert np.hypot(a.x - centre[0], a.y - centre[1]) == pytest.approx(
            np.hypot(b.x - centre[0], b.y - centre[1]), abs=1e-6)


def test_smile_raises_outer_lanes():
    truth = make_blot(shape=(300, 400), n_lanes=7, smile=0.02, lane_position_jitter=0.0, noise=False,
                      seed=13).truth_bands
    assert truth.y[0] < truth.y[3] and truth.y[6] < truth.y[3]
    assert truth.y[3] - truth.y[0] == pytest.approx(0.02 * 300, rel=0.05)


def test_dark_on_light_is_full_scale_minus_light_on_dark():
    for noise in (False, True):
        light = make_blot(**SMALL, noise=noise, dust=3, seed=14)
        dark = make_blot(**SMALL, noise=noise, dust=3, seed=14, polarity="dark_on_light")
        np.testing.assert_array_equal(dark.image.astype(np.int64), 65535 - light.image.astype(np.int64))
        pd.testing.assert_frame_equal(light.truth_bands, dark.truth_bands)
        assert dark.polarity == "dark_on_light"


def _saturated_by_rule(blot, index):
    rows, cols, values = band_contribution(blot, index)
    footprint = values >= FOOTPRINT_FRACTION * values.max()
    signal = signal_of(blot)[rows, cols][footprint]
    clipped = int(np.count_nonzero(signal >= 0.99 * blot.full_scale))
    return clipped >= 4 and clipped >= 0.01 * footprint.sum()


def test_saturate_clips_pixels_and_flags_exactly_the_bands_that_meet_the_rule():
    for polarity in ("light_on_dark", "dark_on_light"):
        blot = make_blot(**SMALL, band_rows=((0.3, 1.0), (0.7, 0.4)), saturate=True, polarity=polarity,
                         seed=15)
        flags = blot.truth_bands.saturated
        assert flags.any() and not flags.all()
        assert np.count_nonzero(signal_of(blot) >= blot.full_scale) > 0
        expected = [_saturated_by_rule(blot, i) for i in range(len(flags))]
        assert list(flags) == expected


def test_without_saturate_no_band_clips():
    blot = make_blot(**SMALL, amounts=[1, 1, 1, 1, 1, 1], background_level=0.3, noise=False, seed=16)
    assert not blot.truth_bands.saturated.any()
    assert (blot.background + bands_only(blot)).max() <= 0.9 * blot.full_scale + 1
    with pytest.raises(ParameterError, match="saturate=True"):
        make_blot(**SMALL, peak=1.5)


def test_eight_bit_output():
    blot8 = make_blot(**SMALL, bit_depth=8, noise=False, seed=17)
    blot16 = make_blot(**SMALL, bit_depth=16, noise=False, seed=17)
    assert blot8.image.dtype == np.uint8 and blot8.full_scale == 255.0
    assert blot8.image.max() <= 255
    np.testing.assert_allclose(blot8.truth_bands.volume / 255, blot16.truth_bands.volume / 65535, rtol=1e-5)
    np.testing.assert_allclose(blot8.image / 255, blot16.image / 65535, atol=0.6 / 255)
    twelve = make_blot(**SMALL, bit_depth=12, seed=17)
    assert twelve.image.dtype == np.uint16 and twelve.full_scale == 4095.0 and twelve.image.max() <= 4095


def test_two_strips_number_their_lanes_independently():
    blot = make_blot(shape=(400, 320), n_lanes=5, n_strips=2, band_rows=((0.4, 1.0),), noise=False, seed=18)
    lanes, bands = blot.truth_lanes, blot.truth_bands
    assert list(lanes.strip) == [1] * 5 + [2] * 5
    assert list(lanes.lane) == [1, 2, 3, 4, 5] * 2
    assert sorted(bands.groupby("strip").lane.apply(list).tolist()) == [[1, 2, 3, 4, 5]] * 2
    top, bottom = lanes[lanes.strip == 1], lanes[lanes.strip == 2]
    assert (top.y_bottom.to_numpy() < bottom.y_top.to_numpy()).all()
    assert bands[bands.strip == 1].y.max() < top.y_bottom.min()
    assert bands[bands.strip == 2].y.min() > bottom.y_top.max()
    # No membrane in the gap: a darker, flat signal there.
    gap = slice(int(top.y_bottom.max()) + 3, int(bottom.y_top.min()) - 2)
    assert gap.stop > gap.start
    gap_signal = blot.background[gap]
    membrane = blot.background[: int(top.y_bottom.min()) - 5]
    assert gap_signal.mean() < 0.6 * membrane.mean()
    assert gap_signal.std() < 0.2 * membrane.std() + 1


def test_empty_lanes_have_no_bands():
    blot = make_blot(**SMALL, empty_lanes=(2, 5), seed=19)
    assert set(blot.truth_bands.lane) == {1, 3, 4, 6}
    assert list(blot.truth_lanes["empty"]) == [False, True, False, False, True, False]


def test_nonspecific_band_sits_a_few_sigma_below_and_is_weaker():
    blot = make_blot(**SMALL, band_rows=((0.3, 1.0),), nonspecific=0.3, nonspecific_offset=4.0, seed=20)
    truth = blot.truth_bands
    specific, extra = truth[~truth.nonspecific], truth[truth.nonspecific]
    assert len(specific) == len(extra) == 6
    assert list(extra.band_row) == [2] * 6 and list(extra.source_row) == [1] * 6
    gap = extra.y.to_numpy() - specific.y.to_numpy()
    np.testing.assert_allclose(gap / specific.sigma_y.to_numpy(), 4.0, rtol=0.1)
    assert extra.volume.max() < 0.4 * specific.volume.max()


def test_params_are_json_serialisable_and_complete():
    blot = make_blot(**SMALL, n_strips=2, nonspecific=True, dust=2, seed=21)
    text = json.dumps(blot.params, allow_nan=False)
    params = json.loads(text)
    assert params["seed"] == 21 and params["n_strips"] == 2 and params["nonspecific"] == 0.3
    assert len(params["bands"]) == len(blot.truth_bands)


def test_save_blot_round_trips(tmp_path):
    import tifffile
    from PIL import Image

    blot = make_blot(**SMALL, seed=22)
    save_blot(blot, tmp_path / "blot.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "blot.tif"), blot.image)
    save_blot(blot, tmp_path / "sub" / "blot.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "sub" / "blot.png")), blot.image)
    floats = make_blot(**SMALL, bit_depth=32, seed=22)
    save_blot(floats, tmp_path / "float.tiff")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "float.tiff"), floats.image)
    with pytest.raises(ParameterError, match="PNG"):
        save_blot(floats, tmp_path / "float.png")
    with pytest.raises(ParameterError, match="suffix"):
        save_blot(blot, tmp_path / "blot.jpg")


def test_random_blot_is_deterministic_and_respects_overrides():
    a = random_blot(5, shape=(200, 260))
    b = random_blot(5, shape=(200, 260))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.shape == (200, 260) and a.params["seed"] == 5
    for seed in range(6):
        blot = random_blot(seed, shape=(180, 240), n_lanes=5)
        assert blot.params["n_lanes"] == 5 and len(blot.truth_lanes) == 5 * blot.params["n_strips"]
        assert np.isfinite(blot.truth_bands.volume).all()
    with pytest.raises(ParameterError, match="unknown"):
        random_blot(1, n_lane=3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(polarity="sideways"), "polarity"),
        (dict(band_rows=((1.2, 1.0),)), "position"),
        (dict(bit_depth=7), "bit_depth"),
        (dict(amounts=[1, 2]), "amounts"),
        (dict(empty_lanes=(9,)), "empty_lanes"),
        (dict(background="plaid"), "background"),
    ],
)
def test_bad_parameters_raise_parameter_error(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        make_blot(**SMALL, **kwargs)
