"""Typed labels and handwriting on a film scan are neither lanes nor bands (blotquant.marks)."""

import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from blotquant import quantify
from blotquant.io import image_from_array
from blotquant.synth import make_blot


def _labelled_film(seed):
    """An 8-bit film scan with 8 lanes, "GAPDH" beside the band row, lane names typed upright below, and "4."."""
    blot = make_blot(shape=(600, 1000), n_lanes=8, lane_width_frac=0.8, lane_position_jitter=0.0, lane_margin=0.12,
                     background="flat", dust=0, band_rows=((0.35, 1.0),), seed=seed, polarity="dark_on_light",
                     bit_depth=8)
    ink = Image.new("L", (1000, 600), 0)
    font = ImageFont.load_default(size=34)
    ImageDraw.Draw(ink).text((10, 190), "GAPDH", fill=255, font=font)
    for lane, x in enumerate(blot.truth_lanes["x_center"]):
        word = Image.new("L", (200, 40), 0)
        ImageDraw.Draw(word).text((0, 0), ["MOCK", "siRNA"][lane % 2], fill=255, font=font)
        upright = word.rotate(90, expand=True)
        ink.paste(upright, (int(x) - 20, 330), upright)
    ImageDraw.Draw(ink).text((820, 520), "4.", fill=255, font=font)
    ink = np.asarray(ink, float) / 255.0
    image = (blot.image.astype(float) * (1 - ink)).astype(np.uint8)  # black ink on the film
    return blot, image, ink


def _bands_on_ink(bands, ink):
    """Bands kept whose centre lies within 8 px of a glyph's pixels."""
    kept = bands[~bands["excluded"]]
    x = ((kept["x_left"] + kept["x_right"]) / 2).round().astype(int).to_numpy()
    y = kept["y"].round().astype(int).to_numpy()
    return sum(ink[max(0, b - 8) : b + 8, max(0, a - 8) : a + 8].max() > 0.5 for a, b in zip(x, y))


def _quantify(image, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantify(image_from_array(image, full_scale=255), review=None, **options)


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_labels_are_neither_lanes_nor_bands(seed):
    blot, image, ink = _labelled_film(seed)
    result = _quantify(image)
    assert len(result.lanes) == 8
    pitch = np.median(np.diff(blot.truth_lanes["x_center"]))
    offsets = np.abs(result.lanes["x_center"].to_numpy() - blot.truth_lanes["x_center"].to_numpy())
    assert offsets.max() < 0.2 * pitch
    assert _bands_on_ink(result.bands, ink) == 0
    assert (result.bands["exclusion_reason"] == "").sum() == 8  # the 8 GAPDH bands, and only they, are kept
    assert len(result.marks) > 20 and (result.marks["kind"] == "label or mark").all()
    # Without the marks set aside the letters are lanes and bands (what the tool did before).
    plain = _quantify(image, ignore_marks=False)
    assert len(plain.lanes) > 20 and _bands_on_ink(plain.bands, ink) > 50
    assert plain.marks.empty
