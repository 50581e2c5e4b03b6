"""Review files: round trip, no silent overwrite, and malformed files refused cleanly."""

import copy
import json

import numpy as np
import pytest

from blotquant.errors import ReviewError
from blotquant.review import Review, find_review, load_review, review_path_for, save_review

VALID = {
    "format": "blotquant-review",
    "version": 1,
    "image": {"name": "blot.tif", "sha256": "ab" * 32},
    "reviewer": "A. Tester",
    "reviewed_at": "2026-11-27T10:00:00+00:00",
    "lanes": [{"strip": 1, "lane": 1, "x_left": 10.0, "x_right": 50.0, "y_top": 0, "y_bottom": 99, "slope": 0.0}],
    "bands": [{"strip": 1, "lane": 1, "boxes": [[20, 30]]}],
    "exclusions": [{"strip": 1, "lane": 1, "band": None, "reason": "bubble"}],
    "notes": "",
}


def test_round_trip_and_earlier_review_kept(tmp_path):
    image = tmp_path / "blot.tif"
    image.write_bytes(b"not really an image")
    review = Review(image_name="blot.tif", image_sha256="ab" * 32, reviewer="A. Tester",
                    lanes=VALID["lanes"], bands=VALID["bands"], exclusions=VALID["exclusions"])
    saved, previous = save_review(review, image)
    assert previous is None and saved == review_path_for(image) == find_review(image)
    loaded = load_review(saved)
    assert loaded.bands_for(1, 1) == [(20, 30)] and loaded.bands_for(1, 2) is None
    assert loaded.exclusions == VALID["exclusions"]
    saved_again, previous = save_review(loaded, image)
    assert saved_again == saved and previous.exists()
    assert json.loads(previous.read_text())["reviewer"] == "A. Tester"


def _mutations(rng, count):
    """Damaged copies of a valid review: keys dropped, values of the wrong type or range."""
    bad_values = [None, "text", -1, 3.5, [], {}, [[1]], True]
    paths = [("format",), ("version",), ("image",), ("image", "sha256"), ("lanes",), ("lanes", 0),
             ("lanes", 0, "x_left"), ("lanes", 0, "lane"), ("bands",), ("bands", 0, "boxes"),
             ("bands", 0, "boxes", 0), ("exclusions", 0), ("exclusions", 0, "reason"), ("exclusions", 0, "band")]
    for _ in range(count):
        data = copy.deepcopy(VALID)
        path = paths[rng.integers(len(paths))]
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.3 and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = bad_values[rng.integers(len(bad_values))]
        yield data


def test_damaged_review_files_give_review_error_only(tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "blot.tif.blotreview.json"
    refused = 0
    for data in _mutations(rng, 300):
        path.write_text(json.dumps(data))
        try:
            load_review(path)
        except ReviewError as error:
            assert str(path) in str(error)
            refused += 1
    assert refused > 100  # most damage is caught; the rest is harmless (e.g. an empty list)
    for text in ("", "{", "[1, 2]", "null", '"text"'):
        path.write_text(text)
        with pytest.raises(ReviewError):
            load_review(path)


def _note_review(note):
    from blotquant.review import Review

    return Review(image_name="blot.tif", image_sha256="0" * 64, reviewer="A. Person", notes=note)


def test_two_saves_in_one_clock_tick_keep_both_reviews(tmp_path):
    """Saves stamped with the same instant: the earlier review gets a numbered copy, not overwritten."""
    import json
    from datetime import datetime, timezone

    from blotquant.review import save_review

    image = tmp_path / "blot.tif"
    image.write_bytes(b"")
    instant = datetime(2026, 12, 3, 12, 0, 0, tzinfo=timezone.utc)
    for note in ("first", "second", "third"):
        save_review(_note_review(note), image, now=instant)
    kept = sorted(p.name for p in tmp_path.glob("blot.tif.blotreview.*.json"))
    assert kept == ["blot.tif.blotreview.20261203T120000000000Z-2.json",
                    "blot.tif.blotreview.20261203T120000000000Z.json"]
    notes = {json.loads(p.read_text())["notes"] for p in tmp_path.glob("blot.tif.blotreview*.json")}
    assert notes == {"first", "second", "third"}
    assert not list(tmp_path.glob("*.lock"))


def test_concurrent_saves_lose_no_review(tmp_path):
    """Eight threads save at once: every review survives, as the review or as a copy."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from blotquant.review import save_review

    image = tmp_path / "blot.tif"
    image.write_bytes(b"")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: save_review(_note_review(f"review {i}"), image), range(8)))
    notes = sorted(json.loads(p.read_text())["notes"] for p in tmp_path.glob("blot.tif.blotreview*.json"))
    assert notes == sorted(f"review {i}" for i in range(8))


def test_a_save_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    from blotquant.review import review_path_for, save_review

    image = tmp_path / "blot.tif"
    image.write_bytes(b"")
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = review_path_for(image).with_name(review_path_for(image).name + ".lock")
    lock.write_text(f"{socket.gethostname()} {finished.stdout.strip()}\n")
    saved, _ = save_review(_note_review("after a crash"), image)
    assert saved.exists() and not lock.exists()


def test_a_save_waits_for_a_live_save_and_then_gives_up(tmp_path, monkeypatch):
    import os
    import socket

    import blotquant.review as review_module
    from blotquant.errors import ReviewError

    image = tmp_path / "blot.tif"
    image.write_bytes(b"")
    lock = review_module.review_path_for(image).with_name(review_module.review_path_for(image).name + ".lock")
    lock.write_text(f"{socket.gethostname()} {os.getpid()}\n")  # held by a live process: this one
    monkeypatch.setattr(review_module, "_SAVE_LOCK_WAIT_S", 0.05)
    with pytest.raises(ReviewError, match="another save of this review has not finished"):
        review_module.save_review(_note_review("blocked"), image)
    assert lock.exists() and not review_module.review_path_for(image).exists()
