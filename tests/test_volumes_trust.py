"""When a band's profile fit is trusted over its box sum (issue 8).

Synthetic blots of the hard family (:func:`blotquant.synth.random_hard_blot`)
with their true lanes given, so that only band measurement is tested.
Expected volumes are the truth's (``truth_bands.volume``), up to the one
scale factor per band row that the benchmarks allow (the image's
response), taken as the median measured/true ratio of the row.
"""

import numpy as np
import pandas as pd

from blotquant import quantify
from blotquant.io import image_from_array
from blotquant.synth import random_hard_blot


def _true_lanes(blot):
    """The blot's true lanes as lane geometry (as ``benchmarks/accuracy.py`` gives them)."""
    height, width = blot.image.shape
    slope = float(np.tan(np.radians(blot.params.get("rotation_deg", 0.0))))
    lanes = blot.truth_lanes
    top = lanes["y_top"].clip(0, height - 1).round().astype(int)
    bottom = lanes["y_bottom"].clip(0, height - 1).round().astype(int)
    shift = slope * ((top + bottom) / 2.0 - (lanes["y_top"] + lanes["y_bottom"]) / 2.0)
    return pd.DataFrame({
        "strip": lanes["strip"], "lane": lanes["lane"],
        "x_left": (lanes["x_left"] + shift).clip(0, width - 2),
        "x_right": (lanes["x_right"] + shift).clip(1, width - 1),
        "y_top": top, "y_bottom": bottom, "slope": slope,
    })


def _row_errors(seed, strip, band_row):
    """Relative volume error of every found band of one band row, after the row's scale factor."""
    blot = random_hard_blot(seed)
    image = image_from_array(blot.image, name=f"hard-{seed}", full_scale=blot.full_scale)
    bands = quantify(image, review=None, lane_geometry=_true_lanes(blot)).bands
    truth = blot.truth_bands
    truth = truth[(truth["strip"] == strip) & (truth["band_row"] == band_row)]
    ratios = {}
    for row in truth.itertuples():
        lane = bands[(bands["strip"] == strip) & (bands["lane"] == row.lane)]
        nearest = (lane["y"] - row.y).abs()
        if lane.empty or nearest.min() > max(3.0, 2.0 * row.sigma_y):
            continue  # not found: scored as a miss by the benchmarks, not as a volume
        ratios[int(row.lane)] = float(lane.loc[nearest.idxmin(), "volume"]) / row.volume
    scale = np.median(list(ratios.values()))
    return {lane: ratio / scale - 1.0 for lane, ratio in ratios.items()}


def test_wide_bands_keep_their_clean_fit_against_a_short_box():
    # Seed 1, strip 1: bands with core sigmas of 15-19 px. Their boxes end on
    # their flanks, where the box's background still holds band light, so
    # the box sum is 35-50 % short; the fit explains each profile to ~1 %
    # and was set aside only for finding more than 1.5 times the box sum.
    errors = _row_errors(1, 1, 1)
    for lane in (2, 3, 5):
        assert abs(errors[lane]) < 0.12, (lane, errors[lane])


def test_fit_whose_baseline_sinks_below_the_data_is_not_used():
    # Seed 20, strip 1, lanes 4 and 15: bands 30 rows above a membrane edge,
    # a background swell below each detected as a second band. The pair of
    # fitted peaks took the place of the background (a baseline below zero
    # under rows of ~1500), which made the bands 14 and 20 times too large;
    # the box sum is within a third.
    errors = _row_errors(20, 1, 3)
    for lane in (4, 15):
        assert abs(errors[lane]) < 0.35, (lane, errors[lane])
