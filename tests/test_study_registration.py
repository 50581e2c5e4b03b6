"""Lanes of a re-probed membrane: estimating how the membrane moved and carrying the lanes along."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from blotquant.registration import _rotation_matrix, estimate_image_offset, transform_lane_geometry
from blotquant.study import loaded_lane_span
from blotquant.synth import make_blot

SHAPE = (360, 800)
AMOUNTS = np.linspace(0.4, 1.0, 12)


def _move(image, angle, dy, dx):
    """Place the membrane of ``image`` at R(angle)(p - c) + c + (dy, dx), the model being estimated."""
    centre = (np.array(image.shape) - 1) / 2.0
    inverse = _rotation_matrix(-angle)
    offset = centre - inverse @ (centre + np.array([dy, dx]))
    return ndi.affine_transform(image.astype(np.float32), inverse, offset=offset, order=1, mode="nearest")


@pytest.fixture(scope="module")
def reference():
    return make_blot(shape=SHAPE, n_lanes=12, band_rows=((0.75, 1.0),), amounts=AMOUNTS, seed=3, smear=0.05)


@pytest.mark.parametrize("angle, dy, dx", [(0.0, 0.0, 0.0), (0.0, 4.0, -7.0), (0.8, -3.0, 5.0)])
def test_offset_of_a_moved_copy_is_recovered(reference, angle, dy, dx):
    moved = _move(reference.image, angle, dy, dx)
    offset = estimate_image_offset(reference.image, moved, rotation_deg=angle)
    assert offset["dy"] == pytest.approx(dy, abs=0.7)
    assert offset["dx"] == pytest.approx(dx, abs=0.7)
    assert offset["score"] > 0.05


def test_rotation_search_finds_the_turn_when_not_given(reference):
    offset = estimate_image_offset(reference.image, _move(reference.image, 1.0, 2.0, -3.0))
    assert offset["rotation_deg"] == pytest.approx(1.0, abs=0.3)
    assert offset["dx"] == pytest.approx(-3.0, abs=1.5)


def test_lanes_follow_a_reprobed_membrane_with_other_bands(reference):
    """Re-probe: bands at another row, membrane turned 0.7 degrees and shifted; lanes must land on them."""
    from blotquant.registration import _rotation_from_tilts
    from blotquant.pipeline import quantify

    reprobe = make_blot(shape=SHAPE, n_lanes=12, band_rows=((0.25, 1.0),), amounts=AMOUNTS[::-1], seed=3,
                        smear=0.05, rotation_deg=0.7)
    dy, dx = 5, -8
    moved = np.roll(reprobe.image, (dy, dx), axis=(0, 1))
    lanes = quantify(reference.image, lanes=12, band_rows=(250, 300)).lanes
    geometry = lanes[["strip", "lane", "x_left", "x_right", "y_top", "y_bottom", "slope"]]
    rotation = _rotation_from_tilts(geometry_slope=float(geometry["slope"].median()), plane=moved,
                                    full_scale=reference.full_scale, n_lanes=12)
    offset = estimate_image_offset(reference.image, moved, rotation_deg=rotation)
    carried = transform_lane_geometry(geometry, offset, moved.shape)
    truth = reprobe.truth_bands.sort_values("lane")
    y = truth["y"].to_numpy() + dy
    mid = (carried["y_top"] + carried["y_bottom"]).to_numpy() / 2
    centre = (carried["x_left"] + carried["x_right"]).to_numpy() / 2 + carried["slope"].to_numpy() * (y - mid)
    reference_error = np.abs((lanes["x_left"] + lanes["x_right"]).to_numpy() / 2
                             - reference.truth_bands.sort_values("lane")["x"].to_numpy()).max()
    assert np.abs(centre - (truth["x"].to_numpy() + dx)).max() < reference_error + 1.5
    # Without registration the lanes would miss by the whole shift.
    unmoved = (lanes["x_left"] + lanes["x_right"]).to_numpy() / 2
    assert np.abs(unmoved - (truth["x"].to_numpy() + dx)).max() > 6


def test_transform_lane_geometry_by_hand():
    lanes = pd.DataFrame({"strip": [1], "lane": [1], "x_left": [100.0], "x_right": [140.0], "y_top": [0],
                          "y_bottom": [200], "slope": [0.0]})
    shifted = transform_lane_geometry(lanes, {"dy": 0.0, "dx": 10.0, "rotation_deg": 0.0}, (201, 300))
    assert shifted[["x_left", "x_right", "slope"]].iloc[0].tolist() == pytest.approx([110, 150, 0])
    # Turned about the image centre (100, 150): a vertical lane leans by -tan(angle).
    turned = transform_lane_geometry(lanes, {"dy": 0.0, "dx": 0.0, "rotation_deg": 1.0}, (201, 300))
    assert turned["slope"].iloc[0] == pytest.approx(-np.tan(np.radians(1.0)), rel=1e-6)
    # Clipped to the image when the shift pushes a lane over the edge.
    edge = transform_lane_geometry(lanes, {"dy": 0.0, "dx": 190.0, "rotation_deg": 0.0}, (201, 300))
    assert edge["x_right"].iloc[0] == 299


def test_loaded_lane_span_ignores_empty_lanes_at_the_edges():
    layout = pd.DataFrame({"lane": [1, 2, 3, 4, 5], "sample_id": ["empty", "a", "empty", "b", "empty"]})
    assert loaded_lane_span(layout) == (2, 4)
    assert loaded_lane_span(layout.assign(sample_id="empty")) == (1, 5)
