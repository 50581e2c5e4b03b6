"""The state of one lane review, without Qt: lanes, band edits, exclusions and their numbers.

A :class:`LaneReviewSession` holds what a scientist has decided about one
blot image (lane geometry, band boxes of the lanes whose bands they edited,
exclusions with reasons) and the latest :class:`blotquant.QuantResult`. Every
number comes from :func:`blotquant.quantify`, called with the session's draft
:class:`blotquant.review.Review`, exactly as ``blotquant quantify`` calls it
with the saved review file; so the plugin shows the numbers the command line
will write.

The functions at the top convert between lane/band table rows and napari
Shapes rectangles: ``(4, 2)`` arrays of ``(row, col)`` corners around the
pixels a lane or band covers (pixel centres sit on integer coordinates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from blotquant.io import image_from_array, read_image
from blotquant.output import write_table
from blotquant.review import Review, find_review, load_review, save_review

#: Columns of a lane's geometry, as stored in a review and given to ``lane_geometry``.
GEOMETRY_COLUMNS = ["strip", "lane", "x_left", "x_right", "y_top", "y_bottom", "slope"]
#: Bands below this signal-to-noise ratio are marked as low-signal
#: (the LOW_SNR threshold of :func:`blotquant.flags.flag_band_quality`).
LOW_SNR = 10.0
#: Reasons offered for an exclusion; any other text is accepted too.
EXCLUSION_REASONS = ("bubble", "tear", "wrong sample", "smear", "dust or speck", "not a band")
#: Edge colours of band rectangles by state, and of lanes.
BAND_COLOURS = {"ok": "#00e5ff", "saturated": "#ff1744", "low signal": "#ffb300", "excluded": "#9e9e9e"}
LANE_COLOURS = {"ok": "#ffee58", "excluded": "#9e9e9e"}


# ---------------------------------------------------------------------------
# Rectangles <-> table rows


def lane_corners(lane):
    """Corners of a lane's outline: top-left, top-right, bottom-right, bottom-left.

    ``x_left``/``x_right`` hold at the lane's middle row and shift by ``slope``
    per row, so a leaning lane is a parallelogram.

    Examples
    --------
    >>> lane_corners({"x_left": 10, "x_right": 19, "y_top": 0, "y_bottom": 99, "slope": 0.0})[0].tolist()
    [-0.5, 9.5]
    """
    top, bottom = lane["y_top"] - 0.5, lane["y_bottom"] + 0.5
    middle = (lane["y_top"] + lane["y_bottom"]) / 2.0
    slope = float(lane.get("slope", 0.0) or 0.0)
    left, right = lane["x_left"] - 0.5, lane["x_right"] + 0.5
    shift_top, shift_bottom = slope * (top - middle), slope * (bottom - middle)
    return np.array([[top, left + shift_top], [top, right + shift_top],
                     [bottom, right + shift_bottom], [bottom, left + shift_bottom]], dtype=float)


def assign_strips(lanes):
    """Strip numbers of lanes from their rows: lanes sharing rows are one strip.

    Two lanes belong to one strip when at least half of the shorter one's
    rows are shared, except that lanes which came from different strips
    (``origin``) stay apart, so strips side by side keep their own lanes.
    A new lane (origin None) joins the strip it shares most rows with.
    Strips are numbered from the top, then from the left.

    Parameters
    ----------
    lanes : list of dict
        ``y_top``, ``y_bottom``, ``x_left``, ``x_right`` and ``origin``
        (``(strip, lane)`` before the edit, or None) of each lane.

    Returns
    -------
    list of int

    Examples
    --------
    >>> top = [{"y_top": 0, "y_bottom": 99, "x_left": x, "x_right": x + 9, "origin": (1, i)}
    ...        for i, x in enumerate((0, 20), start=1)]
    >>> bottom = [{"y_top": 150, "y_bottom": 249, "x_left": 5, "x_right": 14, "origin": None}]
    >>> assign_strips(top + bottom)
    [1, 1, 2]
    """
    count = len(lanes)
    parent = list(range(count))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def shared(a, b):
        overlap = min(a["y_bottom"], b["y_bottom"]) - max(a["y_top"], b["y_top"]) + 1
        shorter = min(a["y_bottom"] - a["y_top"], b["y_bottom"] - b["y_top"]) + 1
        return overlap / max(shorter, 1)

    known = [i for i in range(count) if lanes[i]["origin"] is not None]
    for i in known:
        for j in known:
            if i < j and lanes[i]["origin"][0] == lanes[j]["origin"][0] and shared(lanes[i], lanes[j]) >= 0.5:
                parent[find(j)] = find(i)
    new = [i for i in range(count) if lanes[i]["origin"] is None]
    for i in new:
        candidates = [j for j in range(count) if j != i and shared(lanes[i], lanes[j]) >= 0.5
                      and (lanes[j]["origin"] is not None or j < i)]
        if candidates:
            centre = (lanes[i]["x_left"] + lanes[i]["x_right"]) / 2.0
            # Most rows shared first; among equals, the nearest lane beside it.
            best = max(candidates, key=lambda j: (round(shared(lanes[i], lanes[j]), 2),
                                                  -abs((lanes[j]["x_left"] + lanes[j]["x_right"]) / 2.0 - centre)))
            parent[find(i)] = find(best)
    groups = {}
    for i in range(count):
        groups.setdefault(find(i), []).append(i)
    ordered = sorted(groups.values(), key=lambda members: (min(lanes[m]["y_top"] for m in members),
                                                           min(lanes[m]["x_left"] for m in members)))
    strips = [0] * count
    for number, members in enumerate(ordered, start=1):
        for m in members:
            strips[m] = number
    return strips


def lane_from_corners(corners, image_shape):
    """Lane geometry (``x_left``, ``x_right``, ``y_top``, ``y_bottom``, ``slope``) of an outline.

    The inverse of :func:`lane_corners` for parallelograms; any other shape
    (a rotated rectangle, a polygon) is read through its two top-most and two
    bottom-most corners. The result is clipped to the image.
    """
    points = np.asarray(corners, dtype=float)[:, -2:]
    height, width = image_shape
    if len(points) != 4:
        (top, left), (bottom, right) = points.min(axis=0), points.max(axis=0)
        points = np.array([[top, left], [top, right], [bottom, right], [bottom, left]])
    order = np.argsort(points[:, 0], kind="stable")
    upper = points[order[:2]][np.argsort(points[order[:2], 1])]
    lower = points[order[2:]][np.argsort(points[order[2:], 1])]
    top_edge, bottom_edge = upper[:, 0].mean(), lower[:, 0].mean()
    span = bottom_edge - top_edge
    slope = ((lower[0, 1] - upper[0, 1]) + (lower[1, 1] - upper[1, 1])) / 2.0 / span if span > 0 else 0.0
    y_top = int(np.clip(round(top_edge + 0.5), 0, height - 2))
    y_bottom = int(np.clip(round(bottom_edge - 0.5), y_top + 1, height - 1))
    x_left = (upper[0, 1] + lower[0, 1]) / 2.0 + 0.5
    x_right = (upper[1, 1] + lower[1, 1]) / 2.0 - 0.5
    x_left = float(np.clip(x_left, 0.0, width - 2.0))
    x_right = float(np.clip(x_right, x_left + 1.0, width - 1.0))
    return {"x_left": x_left, "x_right": x_right, "y_top": y_top, "y_bottom": y_bottom, "slope": float(slope)}


def band_corners(band):
    """Axis-aligned outline of a band row of ``bands.csv`` (its rows and the lane's columns there)."""
    top, bottom = band["y_top"] - 0.5, band["y_bottom"] + 0.5
    left, right = band["x_left"] - 0.5, band["x_right"] + 0.5
    return np.array([[top, left], [top, right], [bottom, right], [bottom, left]], dtype=float)


def box_from_corners(corners, image_height):
    """``(y_top, y_bottom, row, col)`` of a band outline: its rows (inclusive) and centre."""
    points = np.asarray(corners, dtype=float)[:, -2:]
    (top, left), (bottom, right) = points.min(axis=0), points.max(axis=0)
    y_top = int(np.clip(round(top + 0.5), 0, image_height - 1))
    y_bottom = int(np.clip(round(bottom - 0.5), y_top, image_height - 1))
    return y_top, y_bottom, (top + bottom) / 2.0, (left + right) / 2.0


def lane_at(lanes, row, col):
    """``(strip, lane)`` of the lane covering pixel (row, col), or None."""
    if lanes is None:
        return None
    for lane in lanes.to_dict("records"):
        if not lane["y_top"] - 0.5 <= row <= lane["y_bottom"] + 0.5:
            continue
        shift = lane["slope"] * (row - (lane["y_top"] + lane["y_bottom"]) / 2.0)
        if lane["x_left"] - 0.5 + shift <= col <= lane["x_right"] + 0.5 + shift:
            return int(lane["strip"]), int(lane["lane"])
    return None


def band_state(band):
    """``"excluded"``, ``"saturated"``, ``"low signal"`` or ``"ok"`` for a row of ``bands.csv``."""
    if band["excluded"]:
        return "excluded"
    if band["saturated"]:
        return "saturated"
    if not band["detected"] or band["snr"] < LOW_SNR:
        return "low signal"
    return "ok"


def export_table(bands, *, include_excluded=False):
    """The bands table to export: ``bands.csv`` columns, excluded bands left out unless asked for."""
    from blotquant.pipeline import BAND_COLUMNS

    missing = [name for name in BAND_COLUMNS if name not in bands.columns]
    if missing:
        raise ValueError(f"not a blotquant bands table: it lacks {', '.join(missing)}")
    table = bands[BAND_COLUMNS]
    if not include_excluded:
        table = table[~table["excluded"].astype(bool)]
    return table.reset_index(drop=True)


# ---------------------------------------------------------------------------
# Which image a napari layer shows


def blot_image_for_layer(data, metadata=None, *, source_path=None, name="layer"):
    """The :class:`~blotquant.io.BlotImage` and channel name behind an image layer.

    A layer opened by this plugin's reader names its file and channel in
    ``metadata["blotquant"]``; a layer napari opened from a file is read
    again from that file (so a review can be saved beside it); anything else
    is wrapped with :func:`blotquant.io.image_from_array` and has no file.
    """
    info = (metadata or {}).get("blotquant") or {}
    path = info.get("path") or source_path
    if path is not None and Path(path).is_file():
        image = read_image(path)
        channel = info.get("channel")
        if channel not in image.channel_names:
            channel = _layer_channel(image, data)
        return image, channel
    image = image_from_array(np.asarray(data), name=name)
    return image, image.channel_names[image.default_channels[0]]


def _layer_channel(image, data):
    """The channel of ``image`` whose pixels the layer shows, else its first default channel."""
    data = np.asarray(data)
    for index, plane in enumerate(image.data):
        if data.shape == plane.shape and np.array_equal(data, plane):
            return image.channel_names[index]
    return image.channel_names[image.default_channels[0]]


def study_settings(study, image, channel=None):
    """What a loaded :class:`blotquant.study.Study` says about one channel of one of its images.

    Returns
    -------
    options : dict
        ``lanes`` (lanes per strip in the layout) and ``band_rows`` of the
        image's ``[[image]]`` entry, for :func:`blotquant.quantify`; empty when
        the study does not list the image.
    sample_ids : dict
        ``{(strip, lane): sample_id}`` from the study's lane layout.
    """
    if image.path is None:
        return {}, {}
    image_path = Path(image.path).resolve()
    entries = study.images[[Path(p).resolve() == image_path for p in study.images["path"]]]
    if entries.empty:
        return {}, {}

    def channel_name(key):
        if isinstance(key, str) or key is None:
            return key
        return image.channel_names[int(key)] if 0 <= int(key) < len(image.channel_names) else None

    matching = [e for e in entries.to_dict("records") if e["channel"] is None or channel is None
                or channel_name(e["channel"]) == channel]
    entry = (matching or entries.to_dict("records"))[0]
    layout = study.layout[study.layout["blot"].astype(str) == str(entry["blot"])]
    strips = layout["strip"] if "strip" in layout else pd.Series(1, index=layout.index)
    sample_ids = {(int(s), int(lane)): str(sample) for s, lane, sample in zip(strips, layout["lane"],
                                                                            layout["sample_id"])}
    if entry.get("band_rows_given", True):
        options = {"band_rows": (int(entry["band_top"]), int(entry["band_bottom"]))}
    else:
        # An image named by band_kda has no rows of its own: show every band with its size.
        ladder_lanes = sorted(set(layout.loc[layout["sample_id"] == "ladder", "lane"].astype(int)))
        options = {"ladder": entry.get("ladder") or None, "ladder_lane": ladder_lanes or None}
    if len(layout):
        options["lanes"] = int(layout.groupby(strips)["lane"].max().max())
    return options, sample_ids


# ---------------------------------------------------------------------------
# The review session


class LaneReviewSession:
    """One image under review: its lanes, band edits, exclusions and latest numbers.

    Parameters
    ----------
    image : blotquant.io.BlotImage
    channel : str, optional
        Channel analysed and shown (default: the image's first default channel).
    options : dict, optional
        More keyword arguments for :func:`blotquant.quantify` (``lanes``,
        ``polarity``, ``background``, ``band_rows``, ``min_snr`` ...).
    sample_ids : dict, optional
        ``{(strip, lane): sample_id}`` used in lane labels.

    Methods that compute (:meth:`detect`, :meth:`measure`) change no state and
    may run in a worker thread; :meth:`accept` then takes their result.
    """

    def __init__(self, image, *, channel=None, options=None, sample_ids=None):
        self.image = image
        self.channel = channel or image.channel_names[image.default_channels[0]]
        self.options = dict(options or {})
        self.sample_ids = dict(sample_ids or {})
        self.lanes = None  # DataFrame of GEOMETRY_COLUMNS once known
        self.band_boxes = {}  # (strip, lane) -> [(y_top, y_bottom), ...] for lanes whose bands were edited
        self.exclusions = []  # dicts strip, lane, band (None: whole lane), reason
        self.result = None
        self.loaded_review = None

    # -- computing (no state change) --------------------------------------

    def detect(self):
        """Detect lanes and bands afresh, ignoring any review."""
        from blotquant import quantify

        return quantify(self.image, channel=self.channel, review=None, **self.options)

    def measure(self, review=None):
        """Quantify with a review (default: :meth:`draft_review`), as ``blotquant quantify`` would."""
        from blotquant import quantify

        options = {k: v for k, v in self.options.items() if k != "lanes" or self.lanes is None}
        return quantify(self.image, channel=self.channel, review=review or self.draft_review(), **options)

    # -- changing state ----------------------------------------------------

    def accept(self, result):
        """Take a quantification result; lanes come from it when none were known."""
        self.result = result
        if self.lanes is None:
            self.lanes = result.lanes[GEOMETRY_COLUMNS].reset_index(drop=True)

    def start_from_detection(self, result):
        """Forget every edit and start from a fresh detection."""
        self.lanes, self.band_boxes, self.exclusions, self.loaded_review = None, {}, [], None
        self.accept(result)

    def start_from_review(self, review):
        """Take lanes, band edits and exclusions from a saved review (then call :meth:`measure`)."""
        review.check_image(self.image)
        self.lanes = None if review.lanes is None else _geometry_table(review.lanes)
        self.band_boxes = {(b["strip"], b["lane"]): [tuple(box) for box in b["boxes"]] for b in review.bands}
        self.exclusions = [dict(e) for e in review.exclusions]
        self.loaded_review = review
        self.result = None

    def saved_review(self):
        """The review file beside the image, loaded, or None; raises ReviewError for a broken one."""
        if self.image.path is None:
            return None
        path = find_review(self.image.path)
        return None if path is None else load_review(path)

    def set_lanes(self, outlines, origins):
        """Replace the lanes by edited outlines and renumber them left to right.

        Strips follow the outlines (:func:`assign_strips`): lanes made shorter
        so that they no longer share rows with the others form a strip of
        their own, and lanes drawn in rows without lanes start a new strip.

        Parameters
        ----------
        outlines : list of (4, 2) arrays
            One outline per lane (see :func:`lane_corners`).
        origins : list of (strip, lane) or None
            The lane each outline was before the edit; None for a new lane.

        Returns
        -------
        renumbered : dict
            ``{old (strip, lane): new (strip, lane)}``; band edits and
            exclusions follow their lane, and those of deleted lanes are dropped.
        """
        shape = self.image.shape
        rows = [{**lane_from_corners(outline, shape), "origin": origin} for outline, origin in zip(outlines, origins)]
        for row, strip in zip(rows, assign_strips(rows)):
            row["strip"] = strip
        rows.sort(key=lambda r: (r["strip"], r["x_left"] + r["x_right"]))
        counters, mapping = {}, {}
        for row in rows:
            counters[row["strip"]] = counters.get(row["strip"], 0) + 1
            row["lane"] = counters[row["strip"]]
            if row["origin"] is not None:
                mapping[tuple(row["origin"])] = (row["strip"], row["lane"])
        self.band_boxes = {mapping[key]: boxes for key, boxes in self.band_boxes.items() if key in mapping}
        self.exclusions = [{**e, "strip": mapping[(e["strip"], e["lane"])][0],
                            "lane": mapping[(e["strip"], e["lane"])][1]}
                           for e in self.exclusions if (e["strip"], e["lane"]) in mapping]
        self.lanes = _geometry_table(rows) if rows else None
        return mapping

    def set_bands(self, outlines, origins):
        """Replace the bands by edited outlines; lanes whose bands changed keep boxes set by hand.

        Parameters
        ----------
        outlines : list of (4, 2) arrays
            One outline per band; each band belongs to the lane under its centre.
        origins : list of (strip, lane, band) or None
            The band each outline was before the edit; None for a new band.

        Returns
        -------
        outside : list of int
            Indices of outlines that lie in no lane (ignored).
        """
        height = self.image.shape[0]
        current = self._current_boxes()
        edited, outside = {}, []
        for index, (outline, origin) in enumerate(zip(outlines, origins)):
            top, bottom, row, col = box_from_corners(outline, height)
            key = lane_at(self.lanes, row, col)
            if key is None:
                outside.append(index)
                continue
            edited.setdefault(key, []).append(((top, bottom), origin))
        for key in set(current) | set(edited):
            new = sorted(edited.get(key, []), key=lambda item: item[0])
            if [box for box, _ in new] == current.get(key, []):
                continue
            self.band_boxes[key] = [box for box, _ in new]
            number_of = {tuple(origin): n for n, (_, origin) in enumerate(new, start=1) if origin is not None}
            kept = []
            for item in self.exclusions:
                if (item["strip"], item["lane"]) != key or item["band"] is None:
                    kept.append(item)
                elif (key[0], key[1], item["band"]) in number_of:
                    kept.append({**item, "band": number_of[(key[0], key[1], item["band"])]})
            self.exclusions = kept
        return outside

    def exclude(self, strip, lane, band=None, reason=""):
        """Exclude a lane (``band=None``) or one band, with a reason."""
        reason = str(reason).strip()
        if not reason:
            raise ValueError("give a reason for the exclusion (bubble, tear, wrong sample ...)")
        self.include(strip, lane, band)
        self.exclusions.append({"strip": int(strip), "lane": int(lane),
                                "band": None if band is None else int(band), "reason": reason})

    def include(self, strip, lane, band=None):
        """Undo the exclusion of a lane or a band."""
        self.exclusions = [e for e in self.exclusions
                           if (e["strip"], e["lane"], e["band"]) != (strip, lane, band)]

    def draft_review(self, reviewer="", notes=""):
        """The current state as a :class:`blotquant.review.Review` (not saved)."""
        lanes = None if self.lanes is None else [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in self.lanes[GEOMETRY_COLUMNS].to_dict("records")
        ]
        bands = [{"strip": s, "lane": lane, "boxes": [[int(t), int(b)] for t, b in boxes]}
                 for (s, lane), boxes in sorted(self.band_boxes.items())]
        return Review(image_name=self.image.name, image_sha256=self.image.sha256 or "", reviewer=reviewer,
                      lanes=lanes, bands=bands, exclusions=[dict(e) for e in self.exclusions], notes=notes)

    def save(self, reviewer, notes=""):
        """Save the review beside the image; an earlier review is kept, never overwritten.

        Returns
        -------
        saved, previous : pathlib.Path, pathlib.Path or None
            See :func:`blotquant.review.save_review`.
        """
        if self.image.path is None:
            raise ValueError(f"{self.image.name} was not opened from a file, so there is nowhere to save "
                             "its review; open the image file in napari and review it again")
        if not str(reviewer).strip():
            raise ValueError("enter the reviewer's name before saving the review")
        return save_review(self.draft_review(str(reviewer).strip(), notes), self.image.path)

    def export_table(self, *, include_excluded=False):
        """The current bands in ``bands.csv`` columns; excluded bands are left out unless asked for."""
        if self.result is None:
            raise ValueError("nothing measured yet; run the detection first")
        return export_table(self.result.bands, include_excluded=include_excluded)

    def export_csv(self, path, *, include_excluded=False):
        """Write :meth:`export_table` to ``path`` (atomic); returns the path."""
        write_table(self.export_table(include_excluded=include_excluded), path)
        return Path(path)

    # -- views for the layers ----------------------------------------------

    def lane_label(self, strip, lane):
        """``"3"``, ``"3 · S-12"`` with a sample id, prefixed by the strip when there are several."""
        text = str(lane)
        if self.lanes is not None and self.lanes["strip"].nunique() > 1:
            text = f"{strip}.{lane}"
        sample = self.sample_ids.get((strip, lane))
        return f"{text} · {sample}" if sample else text

    def lane_shapes(self):
        """Outlines, features (the lanes table plus ``label``) and edge colours of the lanes."""
        if self.result is None:
            return [], pd.DataFrame(), []
        table = self.result.lanes.reset_index(drop=True).copy()
        table["label"] = [self.lane_label(int(s), int(n)) for s, n in zip(table["strip"], table["lane"])]
        outlines = [lane_corners(row) for row in table.to_dict("records")]
        colours = [LANE_COLOURS["excluded" if excluded else "ok"] for excluded in table["excluded"]]
        return outlines, table, colours

    def band_shapes(self):
        """Outlines, features (the bands.csv columns plus ``state``) and edge colours of the bands."""
        if self.result is None:
            return [], pd.DataFrame(), []
        table = self.result.bands.reset_index(drop=True).copy()
        table["state"] = [band_state(row) for row in table.to_dict("records")]
        outlines = [band_corners(row) for row in table.to_dict("records")]
        return outlines, table, [BAND_COLOURS[state] for state in table["state"]]

    def mark_shapes(self):
        """Outlines and features of the labels, handwriting and pen marks set aside (:mod:`blotquant.marks`).

        The scan's rim is left out: its box would cover the blot.
        """
        if self.result is None:
            return [], pd.DataFrame()
        table = self.result.marks
        table = table[table["kind"] == "label or mark"].reset_index(drop=True)
        outlines = [band_corners({"x_left": row["x_left"], "x_right": row["x_right"], "y_top": row["y_top"],
                                  "y_bottom": row["y_bottom"]}) for row in table.to_dict("records")]
        return outlines, table

    def lane_details(self, strip, lane):
        """The profile (:class:`blotquant.bands.LaneProfile`) and the bands of one lane."""
        if self.result is None:
            return None, pd.DataFrame()
        profile = self.result.profiles.get((self.channel, int(strip), int(lane)))
        bands = self.result.bands
        return profile, bands[(bands["strip"] == strip) & (bands["lane"] == lane)]

    # -- helpers -------------------------------------------------------------

    def _current_boxes(self):
        """``{(strip, lane): [(y_top, y_bottom), ...]}`` of the bands measured last, in band order."""
        if self.result is None:
            return {}
        boxes = {}
        for row in self.result.bands.sort_values(["strip", "lane", "band"]).to_dict("records"):
            boxes.setdefault((int(row["strip"]), int(row["lane"])), []).append(
                (int(row["y_top"]), int(row["y_bottom"])))
        return {key: sorted(value) for key, value in boxes.items()}


def _geometry_table(rows):
    table = pd.DataFrame(list(rows))
    for name, default in (("strip", 1), ("slope", 0.0)):
        if name not in table:
            table[name] = default
    if "lane" not in table:
        table = table.sort_values(["strip", "x_left"], kind="stable")
        table["lane"] = table.groupby("strip").cumcount() + 1
    table = table[GEOMETRY_COLUMNS].astype({"strip": int, "lane": int, "x_left": float, "x_right": float,
                                            "y_top": int, "y_bottom": int, "slope": float})
    return table.sort_values(["strip", "lane"]).reset_index(drop=True)
