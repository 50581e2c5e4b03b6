"""Lane reviews: a person's corrections to lanes and bands, kept next to the image.

A review file is small, versioned, human-readable JSON saved beside its
image as ``<image file name>.blotreview.json``::

    {
      "format": "blotquant-review",
      "version": 1,
      "image": {"name": "blot1.tif", "sha256": "<hex of the image file>"},
      "reviewer": "A. Scientist",
      "reviewed_at": "2026-11-27T14:03:00+00:00",
      "lanes": [{"strip": 1, "lane": 1, "x_left": 40.0, "x_right": 95.0,
                 "y_top": 0, "y_bottom": 599, "slope": 0.0}, ...],
      "bands": [{"strip": 1, "lane": 2, "boxes": [[210, 236]]}, ...],
      "exclusions": [{"strip": 1, "lane": 5, "band": null, "reason": "bubble"}],
      "notes": ""
    }

``lanes`` replaces lane detection (``null`` keeps detection); ``bands``
lists, for the lanes a person edited, the band boxes (image rows, top and
bottom inclusive) to measure instead of detected ones; an exclusion with
``band: null`` excludes the whole lane. :func:`blotquant.quantify` uses the
review when it finds one and refuses it when the image's hash differs.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import ReviewError
from .output import atomic_write_text, try_lock_file

REVIEW_FORMAT = "blotquant-review"
REVIEW_VERSION = 1
REVIEW_SUFFIX = ".blotreview.json"


@dataclass
class Review:
    """A person's corrections to one image's lanes and bands."""

    image_name: str
    image_sha256: str
    reviewer: str = ""
    reviewed_at: str = ""
    lanes: list | None = None
    bands: list = field(default_factory=list)
    exclusions: list = field(default_factory=list)
    notes: str = ""
    path: Path | None = None

    def check_image(self, blot):
        """Raise ReviewError unless this review belongs to ``blot`` (same file hash)."""
        if blot.sha256 is not None and blot.sha256 != self.image_sha256:
            where = self.path or "the review"
            raise ReviewError(
                f"{where}: this review was made for an image with SHA-256 {self.image_sha256[:12]}…, "
                f"but {blot.name} has {blot.sha256[:12]}…; the image changed since review, so review it "
                "again (or delete the stale review file)"
            )

    def bands_for(self, strip, lane):
        """Band boxes a person set for a lane, or None when the lane keeps detection."""
        for entry in self.bands:
            if entry["strip"] == strip and entry["lane"] == lane:
                return [tuple(box) for box in entry["boxes"]]
        return None

    def to_dict(self):
        """The JSON-ready form written to disk."""
        return {
            "format": REVIEW_FORMAT,
            "version": REVIEW_VERSION,
            "image": {"name": self.image_name, "sha256": self.image_sha256},
            "reviewer": self.reviewer,
            "reviewed_at": self.reviewed_at,
            "lanes": self.lanes,
            "bands": self.bands,
            "exclusions": self.exclusions,
            "notes": self.notes,
        }


def review_path_for(image_path):
    """Where the review of ``image_path`` lives: beside it, same name plus a suffix."""
    image_path = Path(image_path)
    return image_path.with_name(image_path.name + REVIEW_SUFFIX)


def find_review(image_path):
    """The review file of an image, or None when there is none."""
    path = review_path_for(image_path)
    return path if path.is_file() else None


def load_review(path):
    """Read and validate a review file.

    Raises
    ------
    ReviewError
        With the file name and what is wrong, for unreadable JSON, another
        format or version, or malformed entries.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReviewError(f"{path}: review file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReviewError(f"{path}: not a readable review file ({error}); fix or delete it") from None
    except RecursionError:
        raise ReviewError(f"{path}: not a readable review file (nested too deep); fix or delete it") from None
    if not isinstance(data, dict) or data.get("format") != REVIEW_FORMAT:
        raise ReviewError(f"{path}: not a blotquant review (missing \"format\": \"{REVIEW_FORMAT}\")")
    if data.get("version") != REVIEW_VERSION:
        raise ReviewError(
            f"{path}: review format version {data.get('version')!r} is not supported "
            f"(this blotquant reads version {REVIEW_VERSION}); upgrade blotquant"
        )
    try:
        image = data["image"]
        review = Review(
            image_name=str(image["name"]),
            image_sha256=str(image["sha256"]),
            reviewer=str(data.get("reviewer", "")),
            reviewed_at=str(data.get("reviewed_at", "")),
            lanes=_check_lanes(data.get("lanes")),
            bands=_check_bands(data.get("bands") or []),
            exclusions=_check_exclusions(data.get("exclusions") or []),
            notes=str(data.get("notes", "")),
            path=path,
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as error:
        raise ReviewError(f"{path}: malformed review entry ({error!s}); fix or delete the file") from None
    return review


def save_review(review, image_path, *, now=None):
    """Write ``review`` beside its image without losing an earlier review.

    An existing review file is copied to a timestamped name
    (``<image>.blotreview.<UTC time>.json``, with ``-2``, ``-3``, ... when
    that name is taken: two saves within one clock tick keep both) before
    the new one is written atomically, so the review file itself is never
    missing. Saves of one image's review take turns (a lock file beside it,
    ``<review>.lock``, taken over from a save whose process died), so two saving at once (two napari windows, a script)
    both keep their reviews: one as the review, the other as a copy.

    Returns
    -------
    saved : pathlib.Path
        The review file.
    previous : pathlib.Path or None
        Where the earlier review was kept, if there was one.

    Raises
    ------
    ReviewError
        When another live save holds the lock for longer than
        :data:`_SAVE_LOCK_WAIT_S`.
    """
    path = review_path_for(image_path)
    now = now or datetime.now(timezone.utc)
    if not review.reviewed_at:
        review.reviewed_at = now.isoformat(timespec="seconds")
    text = json.dumps(review.to_dict(), indent=2) + "\n"
    with _review_save_lock(path):
        previous = None
        if path.exists():
            stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
            previous = _keep_copy(path, path.with_name(f"{Path(image_path).name}.blotreview.{stamp}"))
        atomic_write_text(path, text)
    review.path = path
    return path, previous


#: How long a save waits for another save of the same review (seconds) before giving up.
_SAVE_LOCK_WAIT_S = 30.0


@contextmanager
def _review_save_lock(path):
    """Hold ``<review>.lock`` while the review is saved, waiting for another save to finish.

    The lock is :func:`blotquant.output.try_lock_file`'s: one left by a save
    whose process died is taken over.
    """
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + _SAVE_LOCK_WAIT_S
    try:
        while not try_lock_file(lock):
            if time.monotonic() > deadline:
                raise ReviewError(f"{lock}: another save of this review has not finished in "
                                  f"{_SAVE_LOCK_WAIT_S:.0f} s; try again")
            time.sleep(0.01)
    except OSError as error:
        raise ReviewError(f"{path}: cannot be saved ({error.strerror or error})") from None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _keep_copy(path, stem):
    """Copy ``path`` to ``<stem>.json`` (or ``<stem>-2.json``, ...), never over an existing file."""
    data = path.read_bytes()
    for number in range(1, 10_000):
        candidate = stem.with_name(stem.name + (f"-{number}" if number > 1 else "") + ".json")
        try:
            with open(candidate, "xb") as handle:
                handle.write(data)
                handle.flush()
        except FileExistsError:
            continue
        return candidate
    raise ReviewError(f"{path}: 10 000 copies of this review already exist; clear some out")


def _finite(value, what):
    """``value`` as a finite float; Python's json reads NaN and Infinity, which no lane edge can be."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} is {value!r}, not a finite number")
    return number


def _check_lanes(lanes):
    if lanes is None:
        return None
    checked = []
    for entry in lanes:
        lane = int(entry["lane"])
        item = {"strip": int(entry.get("strip", 1)), "lane": lane,
                "x_left": _finite(entry["x_left"], f"x_left of lane {lane}"),
                "x_right": _finite(entry["x_right"], f"x_right of lane {lane}")}
        for key in ("y_top", "y_bottom"):
            if entry.get(key) is not None:
                item[key] = int(entry[key])
        item["slope"] = _finite(entry.get("slope", 0.0), f"slope of lane {lane}")
        checked.append(item)
    return checked


def _check_bands(bands):
    checked = []
    for entry in bands:
        boxes = [[int(top), int(bottom)] for top, bottom in entry["boxes"]]
        if any(bottom < top for top, bottom in boxes):
            raise ValueError(f"band box with bottom above top in lane {entry['lane']}")
        checked.append({"strip": int(entry.get("strip", 1)), "lane": int(entry["lane"]), "boxes": boxes})
    return checked


def _check_exclusions(exclusions):
    checked = []
    for entry in exclusions:
        reason = str(entry.get("reason", "")).strip()
        if not reason:
            raise ValueError(f"exclusion of lane {entry.get('lane')} has no reason")
        band = entry.get("band")
        checked.append({"strip": int(entry.get("strip", 1)), "lane": int(entry["lane"]),
                        "band": None if band is None else int(band), "reason": reason})
    return checked
