"""Overlay PNGs: what is drawn where, in which colour, and on a canvas of bounded size."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from blotquant import quantify
from blotquant.io import image_from_array, to_signal
from blotquant.overlay import _COLOURS, render_overlay
from blotquant.synth import make_blot, make_ladder_blot, save_blot

PRECISION_PLUS = [250, 150, 100, 75, 50, 37, 25, 20, 15, 10]


def _draw(blot, tmp_path, *, title=None, **options):
    image = image_from_array(blot.image, name="synthetic", full_scale=blot.full_scale)
    result = quantify(image, review=None, **options)
    signal, _ = to_signal(image.channel(0), polarity=result.image["polarity"], full_scale=image.full_scale)
    path = tmp_path / "overlay.png"
    render_overlay(signal, result, path, title=title)
    with Image.open(path) as png:
        png.load()
    return result, png


def _mask(png, colour):
    """Where the overlay shows ``colour`` exactly (rows, columns)."""
    return np.all(np.asarray(png.convert("RGB")) == np.array(_COLOURS[colour], np.uint8), axis=2)


def test_lanes_and_bands_are_drawn_where_they_were_measured(tmp_path):
    blot = make_blot(shape=(300, 400), n_lanes=4, seed=1, saturate=True)
    result, png = _draw(blot, tmp_path, lanes=4)
    assert png.mode == "P"
    # 400 px wide: enlarged 3x (whole pixels) so the labels stay legible; no title, no title strip.
    assert png.size == (1200, 900)
    rows, columns = np.nonzero(_mask(png, "lane"))
    lanes = result.lanes
    tilt = float((lanes["slope"].abs() * (lanes["y_bottom"] - lanes["y_top"])).max()) / 2.0
    assert abs(columns.min() - ((lanes["x_left"].min() + 0.5) * 3 - 0.5)) <= 3 * tilt + 2
    assert abs(columns.max() - ((lanes["x_right"].max() + 0.5) * 3 - 0.5)) <= 3 * tilt + 2
    assert abs(rows.min() - ((lanes["y_top"].min() + 0.5) * 3 - 0.5)) <= 2
    bands = result.bands
    assert bands["saturated"].any() and _mask(png, "saturated").any()
    rows, _ = np.nonzero(_mask(png, "saturated"))
    saturated = bands[bands["saturated"]]
    assert rows.min() >= (saturated["y_top"].min() + 0.5) * 3 - 2
    assert rows.max() <= (saturated["y_bottom"].max() + 0.5) * 3 + 1
    assert _mask(png, "band").any() == (bands["detected"] & ~bands["saturated"]).any()
    assert not _mask(png, "marker").any()  # no size calibration, no ladder ticks


def test_a_title_is_drawn_as_written_above_the_image(tmp_path):
    """``$`` and ``^`` in a file name are text, not markup; undecodable bytes are shown escaped."""
    blot = make_blot(shape=(300, 400), n_lanes=4, seed=1)
    _, png = _draw(blot, tmp_path, title="blot $x^$ \udcff.tif", lanes=4)
    assert png.size[0] == 1200 and png.size[1] > 900
    strip = np.asarray(png.convert("L"))[: png.size[1] - 900]
    assert (strip < 128).any() and (strip[:, :300] == 255).all()  # dark text, centred on white


def test_ladder_markers_and_band_sizes_are_labelled(tmp_path):
    blot = make_ladder_blot(ladder_kda=PRECISION_PLUS, sample_kda=[65], shape=(500, 600), n_lanes=5, seed=3)
    result, png = _draw(blot, tmp_path, lanes=5, ladder_lane=1, ladder="precision_plus_dual_color")
    assert result.calibration is not None
    marker_rows, _ = np.nonzero(_mask(png, "marker"))
    curve = next(iter(result.calibration.strips.values())).curves[0]
    for row in curve.rows:  # a tick at every marker of the ladder (drawn 2x)
        assert np.abs(marker_rows - ((row + 0.5) * 2 - 0.5)).min() <= 1
    _, size_columns = np.nonzero(_mask(png, "size"))
    assert size_columns.size and size_columns.min() > (result.bands["x_right"].max() + 0.5) * 2


def test_a_large_image_is_drawn_on_a_capped_canvas(tmp_path):
    empty = pd.DataFrame(columns=["lane", "strip", "x_left", "x_right", "y_top", "y_bottom", "slope", "excluded"])
    result = SimpleNamespace(lanes=empty, bands=pd.DataFrame(columns=["excluded"]), calibration=None,
                             marks=pd.DataFrame(columns=["kind"]))
    signal = np.random.default_rng(0).random((3300, 2000), dtype=np.float32)
    render_overlay(signal, result, tmp_path / "big.png")
    with Image.open(tmp_path / "big.png") as png:
        assert png.size == (2000 // 3, 3300 // 3)


@pytest.mark.parametrize("overlays", [True, False])
def test_the_batch_path_does_not_import_matplotlib(tmp_path, overlays):
    save_blot(make_blot(shape=(200, 300), n_lanes=4, seed=2), tmp_path / "blot.tif")
    code = (
        "import sys\n"
        "from blotquant.batch import quantify_batch\n"
        f"quantify_batch([sys.argv[1]], sys.argv[2], jobs=1, progress=False, overlays={overlays})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "blot.tif"), str(tmp_path / "out")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "out" / "blot.tif.overlay.png").exists() == overlays
