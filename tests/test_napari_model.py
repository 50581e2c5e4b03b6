"""The napari plugin's review model, reader and writer, without Qt or a viewer."""

import json

import numpy as np
import pandas as pd
import pytest

from blotquant import ReviewError, cli
from blotquant.io import read_image
from blotquant.pipeline import BAND_COLUMNS
from blotquant.review import load_review, review_path_for
from blotquant.synth import make_blot, save_blot
from blotquant_napari._model import (
    LaneReviewSession,
    band_corners,
    blot_image_for_layer,
    box_from_corners,
    export_table,
    lane_at,
    lane_corners,
    lane_from_corners,
)
from blotquant_napari._reader import napari_get_reader, read_blot
from blotquant_napari._writer import write_bands_csv


@pytest.fixture(scope="module")
def blot_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("blot") / "blot.tif"
    blot = make_blot(shape=(300, 480), n_lanes=6, band_rows=((0.3, 1.0), (0.65, 0.6)), background="flat",
                     dust=0, seed=3)
    save_blot(blot, path)
    return path


@pytest.fixture
def session(blot_file, tmp_path):
    copy = tmp_path / blot_file.name
    copy.write_bytes(blot_file.read_bytes())
    reviewed = LaneReviewSession(read_image(copy))
    reviewed.start_from_detection(reviewed.detect())
    return reviewed


def outlines_of(session):
    return [lane_corners(row) for row in session.lanes.to_dict("records")]


def origins_of(session):
    return [(int(s), int(n)) for s, n in zip(session.lanes["strip"], session.lanes["lane"])]


def volumes(bands, lane):
    return bands.loc[bands["lane"] == lane, "volume"].to_numpy()


# -- rectangles <-> tables ----------------------------------------------------


def test_lane_outline_round_trips_with_slope():
    lane = {"x_left": 40.25, "x_right": 71.5, "y_top": 10, "y_bottom": 209, "slope": 0.02}
    corners = lane_corners(lane)
    assert corners[0].tolist() == [9.5, 39.75 + 0.02 * (9.5 - 109.5)]
    back = lane_from_corners(corners, (300, 400))
    assert back["y_top"] == 10 and back["y_bottom"] == 209
    assert back["x_left"] == pytest.approx(40.25) and back["x_right"] == pytest.approx(71.5)
    assert back["slope"] == pytest.approx(0.02)


def test_lane_from_drawn_rectangle_is_clipped_to_the_image():
    drawn = np.array([[-20.0, 390.0], [-20.0, 450.0], [120.0, 450.0], [120.0, 390.0]])
    lane = lane_from_corners(drawn, (100, 400))
    assert (lane["y_top"], lane["y_bottom"]) == (0, 99)
    assert lane["x_left"] == 390.5 and lane["x_right"] == 399.0 and lane["slope"] == 0.0


def test_band_outline_round_trips():
    band = {"y_top": 20, "y_bottom": 31, "x_left": 5.0, "x_right": 14.0}
    assert box_from_corners(band_corners(band), 100) == (20, 31, 25.5, 9.5)


def test_lane_at_follows_the_lane_tilt():
    lanes = pd.DataFrame([{"strip": 1, "lane": 2, "x_left": 10.0, "x_right": 19.0, "y_top": 0, "y_bottom": 100,
                           "slope": 0.1}])
    assert lane_at(lanes, 50, 15) == (1, 2)
    assert lane_at(lanes, 100, 24) == (1, 2)  # shifted 5 columns right at the bottom
    assert lane_at(lanes, 0, 24) is None


# -- session -------------------------------------------------------------------


def test_detection_gives_lane_and_band_shapes(session):
    outlines, lanes, colours = session.lane_shapes()
    assert len(outlines) == len(lanes) == 6 == len(colours)
    assert {"strip", "lane", "x_left", "x_right", "label"} <= set(lanes.columns)
    outlines, bands, colours = session.band_shapes()
    assert list(bands.columns[: len(BAND_COLUMNS)]) == BAND_COLUMNS and "state" in bands
    assert len(outlines) == len(bands) >= 12


def test_labels_set_aside_are_shown_and_stay_set_aside_after_an_edit(tmp_path):
    """Typed labels under the lanes are outlined for the reviewer, and bands on them stay excluded."""
    from PIL import Image, ImageDraw, ImageFont

    from blotquant.io import image_from_array

    blot = make_blot(shape=(400, 600), n_lanes=5, lane_width_frac=0.8, lane_position_jitter=0.0, lane_margin=0.1,
                     background="flat", dust=0, band_rows=((0.3, 1.0),), polarity="dark_on_light", bit_depth=8,
                     seed=2)
    ink = Image.new("L", (600, 400), 0)
    for x in blot.truth_lanes["x_center"]:
        word = Image.new("L", (150, 30), 0)
        ImageDraw.Draw(word).text((0, 0), "MOCK", fill=255, font=ImageFont.load_default(size=26))
        upright = word.rotate(90, expand=True)
        ink.paste(upright, (int(x) - 15, 220), upright)
    ink = np.asarray(ink, float) / 255.0
    image = image_from_array((blot.image * (1 - ink)).astype(np.uint8), name="labelled", full_scale=255)
    reviewed = LaneReviewSession(image)
    reviewed.start_from_detection(reviewed.detect())
    outlines, marks = reviewed.mark_shapes()
    assert len(outlines) == len(marks) >= 5 and (marks["kind"] == "label or mark").all()
    assert len(reviewed.lanes) == 5
    _, bands, _ = reviewed.band_shapes()
    kept = bands[~bands["excluded"]]
    assert len(kept) == 5 and (kept["y"] < 200).all()  # the 5 bands, none on the words below them
    # After a lane is moved the review is measured again: the words are still set aside.
    outlines = outlines_of(reviewed)
    outlines[0] = outlines[0] + np.array([0.0, 3.0])
    reviewed.set_lanes(outlines, origins_of(reviewed))
    again = reviewed.measure()
    assert (again.marks["kind"] == "label or mark").sum() == len(marks)
    assert (again.bands.loc[~again.bands["excluded"], "y"] < 200).all()


def test_editing_a_lane_changes_only_that_lanes_volume(session):
    before = session.result
    outlines = outlines_of(session)
    outlines[2] = outlines[2] + np.array([0.0, 6.0])  # move lane 3 sideways, half off its band
    session.set_lanes(outlines, origins_of(session))
    after = session.measure()
    session.accept(after)
    assert not np.allclose(volumes(before.bands, 3), volumes(after.bands, 3))
    assert after.lanes.loc[2, "x_left"] == pytest.approx(before.lanes.loc[2, "x_left"] + 6.0)
    assert (after.lanes["source"] == "review").all()


def test_unchanged_lanes_measure_as_detected(session):
    before = session.result
    session.set_lanes(outlines_of(session), origins_of(session))
    after = session.measure()
    np.testing.assert_allclose(after.bands["volume"], before.bands["volume"], rtol=1e-9)


def test_added_lane_is_numbered_by_position_and_exclusions_follow(session):
    session.exclude(1, 4, None, "bubble")
    session.band_boxes[(1, 5)] = [(80, 100)]
    outlines = outlines_of(session)
    new = lane_corners({"x_left": 0.0, "x_right": 8.0, "y_top": 0, "y_bottom": 299, "slope": 0.0})
    mapping = session.set_lanes(outlines + [new], origins_of(session) + [None])
    assert mapping[(1, 4)] == (1, 5) and len(session.lanes) == 7
    assert session.exclusions == [{"strip": 1, "lane": 5, "band": None, "reason": "bubble"}]
    assert session.band_boxes == {(1, 6): [(80, 100)]}


def test_deleted_lane_drops_its_exclusions(session):
    session.exclude(1, 2, 1, "tear")
    session.exclude(1, 3, None, "wrong sample")
    outlines, origins = outlines_of(session), origins_of(session)
    del outlines[1], origins[1]
    session.set_lanes(outlines, origins)
    assert session.exclusions == [{"strip": 1, "lane": 2, "band": None, "reason": "wrong sample"}]


def test_deleting_a_band_keeps_hand_set_boxes_and_renumbers_its_exclusion(session):
    outlines, bands, _ = session.band_shapes()
    in_lane_2 = bands.index[bands["lane"] == 2].tolist()
    assert len(in_lane_2) >= 2
    session.exclude(1, 2, int(bands.loc[in_lane_2[1], "band"]), "smear")
    origins = [(int(r.strip), int(r.lane), int(r.band)) for r in bands.itertuples()]
    keep = [i for i in range(len(outlines)) if i != in_lane_2[0]]
    outside = session.set_bands([outlines[i] for i in keep], [origins[i] for i in keep])
    assert outside == []
    assert list(session.band_boxes) == [(1, 2)] and len(session.band_boxes[(1, 2)]) == len(in_lane_2) - 1
    assert session.exclusions == [{"strip": 1, "lane": 2, "band": 1, "reason": "smear"}]
    session.accept(session.measure())
    lane_2 = session.result.bands[session.result.bands["lane"] == 2]
    assert len(lane_2) == len(in_lane_2) - 1 and lane_2["excluded"].tolist()[0]


def test_band_outside_every_lane_is_reported(session):
    outlines, bands, _ = session.band_shapes()
    stray = band_corners({"y_top": 10, "y_bottom": 20, "x_left": 470.0, "x_right": 478.0})
    origins = [(int(r.strip), int(r.lane), int(r.band)) for r in bands.itertuples()]
    assert session.set_bands(outlines + [stray], origins + [None]) == [len(outlines)]
    assert session.band_boxes == {}


def test_exclusion_removes_the_band_from_the_export(session, tmp_path):
    first = session.result.bands.iloc[0]
    session.exclude(int(first["strip"]), int(first["lane"]), int(first["band"]), "bubble")
    session.accept(session.measure())
    table = session.export_table()
    assert list(table.columns) == BAND_COLUMNS and len(table) == len(session.result.bands) - 1
    assert not ((table["lane"] == first["lane"]) & (table["band"] == first["band"])).any()
    marked = session.export_table(include_excluded=True)
    assert marked["excluded"].sum() == 1 and marked.loc[marked["excluded"], "exclusion_reason"].item() == "bubble"
    written = pd.read_csv(session.export_csv(tmp_path / "bands.csv"))
    assert len(written) == len(table)


def test_exclusion_needs_a_reason(session):
    with pytest.raises(ValueError, match="reason"):
        session.exclude(1, 1, None, "  ")


def test_include_undoes_an_exclusion(session):
    session.exclude(1, 1, None, "bubble")
    session.include(1, 1, None)
    assert session.exclusions == []


# -- saving, and the command line using the review -----------------------------------


def test_save_never_overwrites_an_earlier_review(session):
    with pytest.raises(ValueError, match="reviewer"):
        session.save(" ")
    saved, previous = session.save("A. Scientist")
    assert saved == review_path_for(session.image.path) and previous is None
    session.exclude(1, 1, None, "tear")
    saved_again, previous = session.save("A. Scientist")
    assert saved_again == saved and previous.is_file()
    assert json.loads(previous.read_text())["exclusions"] == []
    assert load_review(saved).exclusions[0]["reason"] == "tear"


def test_saved_review_changes_what_blotquant_quantify_writes(session, tmp_path):
    outlines = outlines_of(session)
    outlines[2] = outlines[2] + np.array([0.0, 6.0])
    session.set_lanes(outlines, origins_of(session))
    session.exclude(1, 5, None, "wrong sample")
    session.accept(session.measure())
    session.save("A. Scientist")
    image = str(session.image.path)
    assert cli.main(["quantify", image, "--out", str(tmp_path / "plain"), "--no-review", "--no-overlay"]) == 0
    assert cli.main(["quantify", image, "--out", str(tmp_path / "reviewed"), "--no-overlay"]) == 0
    plain = pd.read_csv(tmp_path / "plain" / "bands.csv")
    reviewed = pd.read_csv(tmp_path / "reviewed" / "bands.csv")
    np.testing.assert_allclose(reviewed["volume"], session.result.bands["volume"], rtol=1e-9)
    assert not np.allclose(volumes(plain, 3), volumes(reviewed, 3))
    assert reviewed.loc[reviewed["lane"] == 5, "exclusion_reason"].eq("wrong sample").all()
    assert not plain["excluded"].any()
    run = json.loads((tmp_path / "reviewed" / "run.json").read_text())
    assert review_path_for(image).name in json.dumps(run)


def test_review_of_another_image_is_refused(session, blot_file, tmp_path, capsys):
    saved, _ = session.save("A. Scientist")
    other = tmp_path / "other" / "other.tif"
    save_blot(make_blot(shape=(300, 480), n_lanes=6, seed=11), other)
    review_path_for(other).write_bytes(saved.read_bytes())
    with pytest.raises(ReviewError, match="SHA-256"):
        LaneReviewSession(read_image(other)).start_from_review(load_review(review_path_for(other)))
    assert cli.main(["quantify", str(other), "--out", str(tmp_path / "out"), "--no-overlay"]) == 2
    assert "SHA-256" in capsys.readouterr().err


# -- reader, writer, layers ----------------------------------------------------------


def test_reader_declines_what_it_cannot_read(tmp_path):
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not really a tiff")
    with pytest.warns(UserWarning, match="could not open"):
        assert napari_get_reader(str(broken))(str(broken)) is None


def test_reader_gives_one_layer_per_channel(tmp_path):
    import tifffile

    path = tmp_path / "two_colour.tif"
    planes = np.zeros((2, 40, 60), np.uint16)
    planes[0, 10:20, 5:15] = 3000
    planes[1, 25:30, 30:50] = 9000
    tifffile.imwrite(path, planes)
    layers = read_blot(str(path))
    assert len(layers) == 2 and all(kind == "image" for _, _, kind in layers)
    np.testing.assert_array_equal(layers[1][0], planes[1])
    info = layers[1][1]["metadata"]["blotquant"]
    assert info["path"] == str(path.resolve()) and info["channel"] == read_image(path).channel_names[1]
    image, channel = blot_image_for_layer(layers[1][0], layers[1][1]["metadata"])
    assert image.sha256 is not None and channel == info["channel"]


def test_layer_without_a_file_is_analysed_from_its_pixels():
    data = np.arange(30 * 40, dtype=np.uint16).reshape(30, 40)
    image, channel = blot_image_for_layer(data, {}, name="pasted")
    assert image.path is None and image.name == "pasted" and channel == "gray"


def test_writer_writes_the_bands_layer_without_excluded_bands(session, tmp_path):
    session.exclude(1, 1, None, "bubble")
    session.accept(session.measure())
    _, features, _ = session.band_shapes()
    path = tmp_path / "layer.csv"
    assert write_bands_csv(str(path), [], {"features": features, "name": "bands"}) == [str(path)]
    written = pd.read_csv(path)
    assert list(written.columns) == BAND_COLUMNS and not (written["lane"] == 1).any()
    assert len(export_table(features)) == len(written)
    with pytest.raises(ValueError, match="not a blotquant"):
        write_bands_csv(str(path), [], {"features": pd.DataFrame({"a": [1]}), "name": "other"})


def test_a_strip_taken_for_one_is_split_by_editing_its_lanes(session):
    """Detection put both band rows in one strip; the reviewer shortens the lanes to the top
    rows and draws lanes of their own over the bottom rows, shifted sideways: two strips."""
    top_lanes = [{**row, "y_top": 0, "y_bottom": 140} for row in session.lanes.to_dict("records")]
    bottom_lanes = [{**row, "y_top": 141, "y_bottom": 299, "x_left": row["x_left"] + 12,
                     "x_right": row["x_right"] + 12} for row in session.lanes.to_dict("records")[:5]]
    session.set_lanes([lane_corners(row) for row in top_lanes + bottom_lanes],
                      origins_of(session) + [None] * len(bottom_lanes))
    lanes = session.lanes
    assert sorted(lanes["strip"].unique()) == [1, 2]
    assert (lanes["strip"] == 1).sum() == len(top_lanes) and (lanes["strip"] == 2).sum() == 5
    assert (lanes.loc[lanes["strip"] == 2, "y_top"] == 141).all()
    assert lanes.loc[lanes["strip"] == 2, "lane"].tolist() == [1, 2, 3, 4, 5]
    # The next measurement uses the two strips: bands of the bottom rows belong to strip 2.
    bands = session.measure().bands
    assert set(bands.loc[bands["y"] > 141, "strip"]) == {2}
    assert set(bands.loc[bands["y"] < 140, "strip"]) == {1}


def test_side_by_side_strips_keep_their_own_lanes():
    from blotquant_napari._model import assign_strips

    left = [{"y_top": 0, "y_bottom": 99, "x_left": x, "x_right": x + 9, "origin": (1, i)}
            for i, x in enumerate((0, 20, 40), start=1)]
    right = [{"y_top": 10, "y_bottom": 109, "x_left": x, "x_right": x + 9, "origin": (2, i)}
             for i, x in enumerate((80, 100), start=1)]
    added = {"y_top": 10, "y_bottom": 109, "x_left": 120, "x_right": 129, "origin": None}
    assert assign_strips(left + right + [added]) == [1, 1, 1, 2, 2, 2]
