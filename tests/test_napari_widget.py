"""The Lane review widget in a real (headless) napari viewer, driven through its handlers."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from blotquant import cli  # noqa: E402
from blotquant.pipeline import BAND_COLUMNS  # noqa: E402
from blotquant.review import load_review, review_path_for  # noqa: E402
from blotquant.synth import make_blot, save_blot  # noqa: E402
from blotquant_napari._model import BAND_COLOURS, LANE_COLOURS  # noqa: E402

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def blot_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("blot") / "blot.tif"
    amounts = [[1.0, 0.5], [0.5, 0.4], [0.25, 0.8], [0.12, 0.6], [0.06, 0.9], [0.7, 0.3]]
    save_blot(make_blot(shape=(300, 480), n_lanes=6, band_rows=((0.3, 1.0), (0.65, 0.6)), amounts=amounts,
                        background="flat", saturate=True, peak=1.4, seed=3), path)
    return path.read_bytes()


@pytest.fixture
def viewer_widget(make_napari_viewer_proxy, blot_bytes, tmp_path):
    image = tmp_path / "blot.tif"
    image.write_bytes(blot_bytes)
    viewer = make_napari_viewer_proxy()
    viewer.open(str(image), plugin="blotquant")
    _, widget = viewer.window.add_plugin_dock_widget("blotquant", "Lane review")
    return viewer, widget, image


def run(widget, qtbot, action, *args):
    """Call a widget handler and wait until blotquant has finished measuring."""
    started = action(*args)
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.last_error is None, widget.last_error
    return started


def colour(hex_code):
    from napari.utils.colormaps.standardize_color import transform_color

    return transform_color(hex_code)[0]


def test_widget_opens_and_detects_lanes_and_bands(viewer_widget, qtbot):
    viewer, widget, _ = viewer_widget
    assert widget.image_choice.currentText() == "blot"
    run(widget, qtbot, widget.run_detection)
    result = widget.session.result
    assert len(widget.lanes_layer.data) == len(result.lanes) == 6
    assert widget.lanes_layer.features["lane"].tolist() == [1, 2, 3, 4, 5, 6]
    assert list(widget.lanes_layer.text.values) == ["1", "2", "3", "4", "5", "6"]
    bands = widget.bands_layer.features
    assert set(BAND_COLUMNS) <= set(bands.columns) and len(widget.bands_layer.data) == len(bands)
    saturated = bands.index[bands["saturated"]].tolist()
    assert saturated, "the test blot has an over-exposed band"
    np.testing.assert_allclose(widget.bands_layer.edge_color[saturated[0]], colour(BAND_COLOURS["saturated"]))
    assert "saturated" in widget.status.text()


def test_detection_runs_on_the_sample_blot(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    layers = viewer.open_sample("blotquant", "western-blot")
    _, widget = viewer.window.add_plugin_dock_widget("blotquant", "Lane review")
    assert widget.image_choice.currentText() == layers[0].name
    run(widget, qtbot, widget.run_detection)
    assert len(widget.session.result.lanes) >= 6 and len(widget.session.result.bands) > 0
    if widget.session.sample_ids:  # the sample from sample_data/ belongs to the example study
        assert any(" · " in label for label in widget.lanes_layer.features["label"])


def test_editing_a_lane_shape_remeasures_that_lane(viewer_widget, qtbot):
    _, widget, _ = viewer_widget
    run(widget, qtbot, widget.run_detection)
    before = widget.session.result.bands.copy()
    outlines = [np.array(o) for o in widget.lanes_layer.data]
    outlines[2][:, 1] += 7.0  # drag lane 3 to the right, partly off its bands
    widget.lanes_layer.data = [(o, "rectangle") for o in outlines]
    assert widget.busy
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    after = widget.session.result.bands
    lane3_before = before.loc[before["lane"] == 3, "volume"].to_numpy()
    lane3_after = after.loc[after["lane"] == 3, "volume"].to_numpy()
    assert lane3_after.size and not np.allclose(lane3_before[: lane3_after.size], lane3_after)
    np.testing.assert_allclose(after.loc[after["lane"] == 1, "volume"], before.loc[before["lane"] == 1, "volume"])
    assert widget.lanes_layer.features.loc[2, "x_left"] == pytest.approx(
        widget.session.lanes.loc[2, "x_left"]) and widget.lanes_layer.features.loc[2, "source"] == "review"


def test_an_edit_made_while_measuring_is_measured_too(viewer_widget, qtbot):
    _, widget, _ = viewer_widget
    run(widget, qtbot, widget.run_detection)
    start = widget.session.lanes[["x_left"]].to_numpy().ravel()
    outlines = [np.array(o) for o in widget.lanes_layer.data]
    outlines[0][:, 1] += 3.0
    widget.lanes_layer.data = [(o, "rectangle") for o in outlines]
    outlines[4][:, 1] -= 3.0
    widget.lanes_layer.data = [(o, "rectangle") for o in outlines]
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    shown = widget.lanes_layer.features["x_left"].to_numpy()
    np.testing.assert_allclose(shown[[0, 4]], start[[0, 4]] + [3.0, -3.0])
    np.testing.assert_allclose(widget.session.result.lanes["x_left"], shown)


def test_drawing_a_new_lane_renumbers_the_lanes(viewer_widget, qtbot):
    _, widget, _ = viewer_widget
    run(widget, qtbot, widget.run_detection)
    first = widget.session.lanes.iloc[0]
    gap = first["x_left"] - 12
    assert gap > 4
    widget.lanes_layer.add_rectangles(np.array([[0.0, 1.0], [299.0, gap]]))
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.session.lanes["lane"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert widget.session.lanes.loc[0, "x_right"] < first["x_left"]
    assert widget.lanes_layer.features["label"].tolist()[-1] == "7"


def test_deleting_a_band_remeasures_its_lane(viewer_widget, qtbot):
    _, widget, _ = viewer_widget
    run(widget, qtbot, widget.run_detection)
    bands = widget.bands_layer.features
    lane2 = bands.index[bands["lane"] == 2].tolist()
    widget.bands_layer.selected_data = {lane2[0]}
    widget.bands_layer.remove_selected()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    after = widget.session.result.bands
    assert (after["lane"] == 2).sum() == len(lane2) - 1
    assert widget.session.band_boxes and list(widget.session.band_boxes) == [(1, 2)]


def test_an_excluded_band_leaves_the_exported_table(viewer_widget, qtbot, tmp_path):
    _, widget, _ = viewer_widget
    run(widget, qtbot, widget.run_detection)
    bands = widget.bands_layer.features
    widget.bands_layer.selected_data = {3}
    target = bands.loc[3]
    assert widget.selected == (target["strip"], target["lane"], target["band"])
    run(widget, qtbot, widget.exclude_band, "bubble")
    exported = pd.read_csv(widget.export_csv(tmp_path / "bands.csv"))
    assert list(exported.columns) == BAND_COLUMNS and len(exported) == len(bands) - 1
    assert not ((exported["lane"] == target["lane"]) & (exported["band"] == target["band"])).any()
    features = widget.bands_layer.features
    excluded = features.index[features["excluded"]].tolist()
    assert features.loc[excluded, "exclusion_reason"].tolist() == ["bubble"]
    np.testing.assert_allclose(widget.bands_layer.edge_color[excluded[0]], colour(BAND_COLOURS["excluded"]))
    assert "band" in widget.details.text()
    run(widget, qtbot, widget.include)
    assert not widget.session.result.bands["excluded"].any()


def test_profile_plot_follows_the_selected_lane(viewer_widget, qtbot):
    _, widget, _ = viewer_widget
    run(widget, qtbot, widget.run_detection)
    widget.lanes_layer.selected_data = {1}
    assert widget.selected == (1, 2, None)
    axes = widget.plot.axes
    assert [line.get_label() for line in axes.get_lines()] == ["signal", "background"]
    assert axes.get_title(loc="left") == "Lane 2"
    assert len(axes.patches) == (widget.session.result.bands["lane"] == 2).sum()


def test_saved_review_is_used_by_blotquant_quantify(viewer_widget, qtbot, tmp_path):
    _, widget, image = viewer_widget
    run(widget, qtbot, widget.run_detection)
    outlines = [np.array(o) for o in widget.lanes_layer.data]
    outlines[3][:, 1] -= 6.0
    widget.lanes_layer.data = [(o, "rectangle") for o in outlines]
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    widget.lanes_layer.selected_data = {4}
    run(widget, qtbot, widget.exclude_lane, "wrong sample")
    assert widget.save_review() is None  # no reviewer name yet
    widget.reviewer.setText("A. Scientist")
    saved, previous = widget.save_review()
    assert saved == review_path_for(image) and previous is None
    assert load_review(saved).reviewer == "A. Scientist"
    saved, previous = widget.save_review()
    assert previous is not None and previous.is_file() and previous.name in widget.status.text()

    assert cli.main(["quantify", str(image), "--out", str(tmp_path / "out"), "--no-overlay"]) == 0
    written = pd.read_csv(tmp_path / "out" / "bands.csv")
    np.testing.assert_allclose(written["volume"], widget.session.result.bands["volume"], rtol=1e-9)
    assert written.loc[written["lane"] == 5, "exclusion_reason"].eq("wrong sample").all()
    lanes = pd.read_csv(tmp_path / "out" / "lanes.csv")
    assert lanes.loc[3, "x_left"] == pytest.approx(widget.session.lanes.loc[3, "x_left"])


def test_reopening_continues_the_saved_review(viewer_widget, qtbot):
    _, widget, _ = viewer_widget
    run(widget, qtbot, widget.run_detection)
    widget.lanes_layer.selected_data = {0}
    run(widget, qtbot, widget.exclude_lane, "tear")
    widget.reviewer.setText("A. Scientist")
    widget.save_review()
    run(widget, qtbot, widget.run_detection)
    assert widget.session.exclusions == [{"strip": 1, "lane": 1, "band": None, "reason": "tear"}]
    np.testing.assert_allclose(widget.lanes_layer.edge_color[0], colour(LANE_COLOURS["excluded"]))
    assert "review" in widget.status.text()


def test_review_of_another_image_is_not_used(viewer_widget, qtbot, tmp_path):
    _, widget, image = viewer_widget
    other = tmp_path / "other.tif"
    save_blot(make_blot(shape=(300, 480), n_lanes=6, seed=11), other)
    run(widget, qtbot, widget.run_detection)
    widget.lanes_layer.selected_data = {0}
    run(widget, qtbot, widget.exclude_lane, "tear")
    widget.reviewer.setText("A. Scientist")
    saved, _ = widget.save_review()
    review_path_for(other).write_bytes(saved.read_bytes())
    saved.unlink()
    assert cli.main(["quantify", str(other), "--out", str(tmp_path / "out"), "--no-overlay"]) == 2
    widget.viewer.open(str(other), plugin="blotquant")
    widget.image_choice.setCurrentText("other")
    run(widget, qtbot, widget.run_detection)
    assert widget.session.loaded_review is None and widget.session.exclusions == []


def test_manifest_validates_with_imports():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("blotquant")
    assert manifest.name == "blotquant"
    manifest.validate_imports()
    assert {w.display_name for w in manifest.contributions.widgets} == {"Lane review"}
