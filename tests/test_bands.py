"""Lane profiles and gap profiles: read as slices, equal to reading the lane pixel by pixel."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from blotquant.background import rolling_ball_background, rolling_ball_surface
from blotquant.bands import gap_residual_profile, lane_profile, lane_row_sums
from blotquant.lanes import lane_columns


def _gathered(image, lane):
    """The lane's pixels gathered one by one: the definition the slices must match."""
    rows, first, width = lane_columns(lane, image.shape)
    return image[rows[:, None], first[:, None] + np.arange(width)[None, :]]


@pytest.fixture
def image():
    rng = np.random.default_rng(7)
    return (rng.random((400, 300), dtype=np.float32) * 5000 + np.linspace(0, 900, 300, dtype=np.float32))


LANES = [
    {"x_left": 20.0, "x_right": 59.0, "y_top": 10, "y_bottom": 389, "slope": 0.0},
    {"x_left": 80.0, "x_right": 121.0, "y_top": 10, "y_bottom": 389, "slope": 0.031},
    {"x_left": 140.0, "x_right": 180.0, "y_top": 10, "y_bottom": 389, "slope": -0.2},
    {"x_left": 0.0, "x_right": 299.0, "y_top": 0, "y_bottom": 399, "slope": 0.013},
]


@pytest.mark.parametrize("lane", LANES)
def test_lane_row_sums_equal_the_sums_of_the_gathered_lane(image, lane):
    rows, first, width = lane_columns(lane, image.shape)
    expected = _gathered(image, lane).sum(axis=1, dtype=np.float64)
    assert np.array_equal(lane_row_sums(image, rows, first, width), expected)


@pytest.mark.parametrize("lane", LANES)
def test_a_lane_profile_is_the_same_with_the_background_read_where_needed(image, lane):
    whole = rolling_ball_background(image, 30.0)
    surface = rolling_ball_surface(image, 30.0)
    from_array, _ = lane_profile(image, whole, lane, quantum=1.0)
    from_surface, pixels = lane_profile(image, surface, lane, quantum=1.0)
    for name in ("rows", "signal", "background", "robust"):
        assert np.array_equal(getattr(from_array, name), getattr(from_surface, name)), name
    assert from_array.noise == from_surface.noise and from_array.width == from_surface.width
    assert np.array_equal(from_array.background, _gathered(whole, lane).sum(axis=1, dtype=np.float64))
    assert np.array_equal(pixels.block(0, 5), _gathered(image, lane)[:6])


def test_a_gap_between_two_lanes_is_measured_once(image):
    """Detected lanes of a strip share rows and tilt, so the gap between two is one profile."""
    lanes = [{"strip": 1, "x_left": x, "x_right": x + 39.0, "y_top": 10, "y_bottom": 389, "slope": 0.031}
             for x in (30.0, 100.0, 170.0)]
    surface = rolling_ball_surface(image, 30.0)
    cache = {}
    cached = [gap_residual_profile(image, surface, lanes, index, cache=cache) for index in range(3)]
    plain = [gap_residual_profile(image, rolling_ball_background(image, 30.0), lanes, index) for index in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(cached, plain))
    assert len(cache) == 4  # six gap sides: the outer two and the two shared gaps
    assert np.array_equal(cached[0][1], cached[1][0]) and cached[0].shape == (2, 380)


def test_background_error_sd_of_white_noise_and_of_a_textured_membrane():
    """The spread of a box's background estimate, measured on band-free rows.

    White noise of sigma 1: a 20-row box sum varies by 20 and the baseline
    through two 5-row flank means by 20^2 * (1/5 + 1/5) / 4 = 40, so the
    spread is sqrt(60). A membrane whose texture is correlated over rows
    (smoothed noise) is known far worse than its pixel noise says.
    """
    from blotquant.bands import background_error_sd

    rng = np.random.default_rng(7)
    white = rng.normal(0.0, 1.0, 40_000)
    free = np.ones(white.size, bool)
    assert background_error_sd(white, free, 20, flank=5) == pytest.approx(np.sqrt(60.0), rel=0.05)
    textured = ndi.gaussian_filter1d(rng.normal(0.0, 1.0, 40_000), 8.0) * 8.0 + rng.normal(0.0, 1.0, 40_000)
    assert background_error_sd(textured, free, 20, flank=5) > 2.0 * np.sqrt(60.0)
    # Rows held by bands are never used; too few free places leave the spread unknown.
    free[:] = False
    free[100:130] = True
    assert np.isnan(background_error_sd(white, free, 20, flank=5))
