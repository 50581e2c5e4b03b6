"""Background estimators on small hand-built arrays."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from blotquant.background import (
    border_median_level,
    rolling_ball_background,
    rubber_band_baseline,
    valley_baseline,
)
from blotquant.errors import ParameterError


def test_rolling_ball_keeps_band_above_flat_background():
    image = np.full((80, 80), 200.0)
    image[38:44, 20:60] += 300.0
    background = rolling_ball_background(image, radius=12)
    assert background[41, 40] == pytest.approx(200.0, abs=2.0)
    assert background[10, 10] == pytest.approx(200.0, abs=1e-3)
    assert image[41, 40] == 500.0  # input untouched


def test_rolling_ball_follows_gradient_and_matches_exact_ball_opening():
    rows, cols = np.mgrid[0:96, 0:128]
    image = (1000.0 + 4.0 * cols + 2.0 * rows).astype(np.float32)
    image[40:48, 30:90] += 800.0
    ours = rolling_ball_background(image, radius=15, correct_noise_bias=False)
    # The definition: grey opening with a ball of radius 15 at full resolution.
    dy, dx = np.mgrid[-15:16, -15:16]
    footprint = dy**2 + dx**2 <= 225
    ball = np.where(footprint, np.sqrt(np.maximum(225 - dy**2 - dx**2, 0)), 0)
    exact = ndi.grey_opening(image, footprint=footprint, structure=ball, mode="nearest")
    inner = (slice(16, -16), slice(16, -16))
    assert np.median(np.abs(ours[inner] - exact[inner])) < 3.0
    # A sloping membrane is followed exactly, under the band too.
    assert abs(ours[44, 60] - (1000 + 4 * 60 + 2 * 44)) < 15.0


def test_rolling_ball_noise_bias_is_corrected():
    rng = np.random.default_rng(0)
    image = rng.normal(500.0, 20.0, (200, 200)).astype(np.float32)
    background = rolling_ball_background(image, radius=20)
    assert np.median(background) == pytest.approx(500.0, abs=2.0)


def test_rolling_ball_rejects_bad_radius():
    with pytest.raises(ParameterError):
        rolling_ball_background(np.zeros((10, 10)), radius=0)
    with pytest.raises(ParameterError):
        rolling_ball_background(np.zeros(10), radius=3)


def test_border_median_uses_rows_just_outside_the_box():
    block = np.zeros((20, 4))
    block[5:8] = 10.0  # above the box
    block[8:12] = 100.0  # the band box
    block[12:15] = 30.0  # below
    assert border_median_level(block, 8, 11, border=3) == 20.0


def test_rubber_band_is_lower_hull():
    profile = np.array([3.0, 1.0, 9.0, 2.0, 3.0, 8.0, 5.0])
    baseline = rubber_band_baseline(profile)
    assert np.all(baseline <= profile + 1e-12)
    assert baseline.tolist() == pytest.approx([3.0, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0])


def test_valley_baseline_joins_the_limits():
    profile = np.array([0, 0, 10, 10, 50, 90, 50, 20, 20, 0], dtype=float)
    baseline = valley_baseline(profile, 3, 8, edge_rows=0)
    assert baseline.tolist() == pytest.approx([10, 12, 14, 16, 18, 20])


def test_upsampling_matches_bilinear_interpolation_between_block_centres():
    from blotquant._shared import block_mean, upsample_bilinear

    rng = np.random.default_rng(1)
    small = rng.random((9, 13)).astype(np.float32)
    factor = 4
    for shape in ((36, 52), (38, 55)):  # whole blocks, and leftover rows/columns
        out = upsample_bilinear(small, factor, shape)
        assert out.shape == shape and out.flags["C_CONTIGUOUS"]
        # Block centres sit at (i + 0.5) * factor - 0.5; beyond the outer centres values are held.
        rows = np.clip((np.arange(shape[0]) + 0.5) / factor - 0.5, 0, small.shape[0] - 1)
        cols = np.clip((np.arange(shape[1]) + 0.5) / factor - 0.5, 0, small.shape[1] - 1)
        expected = ndi.map_coordinates(small.astype(float), np.meshgrid(rows, cols, indexing="ij"), order=1)
        np.testing.assert_allclose(out, expected, atol=1e-5)
    # A constant image survives the round trip exactly.
    flat = np.full((40, 60), 7.0, np.float32)
    assert np.all(upsample_bilinear(block_mean(flat, 4), 4, flat.shape) == 7.0)


@pytest.mark.parametrize("shape, radius", [((96, 128), 15), ((301, 457), 40), ((60, 50), 3), ((777, 90), 25.5)])
def test_rolling_ball_surface_gives_the_background_bit_for_bit_where_read(shape, radius):
    from blotquant.background import rolling_ball_surface

    rng = np.random.default_rng(3)
    image = (rng.random(shape, dtype=np.float32) * 900 + np.linspace(0, 400, shape[1], dtype=np.float32))
    whole = rolling_ball_background(image, radius=radius, intensity_scale=2.0)
    surface = rolling_ball_surface(image, radius=radius, intensity_scale=2.0)
    assert np.array_equal(surface.full(), whole)
    assert np.array_equal(surface.region(slice(None), slice(None)), whole)
    rows, columns = np.array([0, 5, 6, shape[0] - 1]), np.array([shape[1] - 1, 0, 7])
    assert np.array_equal(surface.region(rows, columns), whole[rows][:, columns])
    assert np.array_equal(surface.region(slice(2, shape[0] - 3), slice(1, 9)), whole[2 : shape[0] - 3, 1:9])
    assert surface.region(slice(0, 4), slice(0, 4)).dtype == np.float32
