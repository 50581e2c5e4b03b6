"""Lanes, strips and bands of blotquant scored on real blots with ground truth.

Every folder of ``../shared/real_blots`` that holds ``gt_strips.csv``,
``gt_lanes.csv`` and ``gt_bands.csv`` (formats in its PROVENANCE.md) is
quantified twice, once fully automatically and once with the lane count
given (``--lanes N``, N the largest count of the image's annotated strips),
and scored per dataset:

* ``strips_found``: annotated strips matched by a detected strip, i.e. a
  strip whose lanes cover at least half of the strip's true lane centres;
* ``count_right``: matched strips with the right number of lanes;
* ``centres_covered``: true lane centres (at their band's row) that fall
  inside exactly one detected lane, that lane being no wider than 1.3 true
  pitches;
* ``main_found``: main bands with a detected band in the lane that covers
  them, centred inside the true box (+-3 rows);
* ``spurious``: detected bands, in strips where every band is annotated and
  within the strip's ``spurious_margin`` rows of its band row, that match no
  annotated band (text, labels, blotches taken for bands);
* ``clipped_flagged``: bands whose true box holds a clipped band core (read
  from the raw file with tifffile/Pillow, independently of blotquant: a blob
  of pixels at the file's limit, at least twice as wide as tall) that
  blotquant flags saturated;
* ``on_labels``: bands reported (not excluded) whose centre lies on a typed
  label or handwriting, from our own boxes in ``real_blots_labels.csv``.

Where the authors give numbers (``gt_pairs.csv``), the target/GAPDH ratios
of blotquant (with the vendor's lanes and band rows given, and fully
automatic) are compared with theirs: Pearson r of the log ratios, after one
scale per sheet, since their IDV includes the membrane background.

Usage::

    python benchmarks/real_blots.py [--csv real_blots_scores.csv] [--root ../shared/real_blots]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from blotquant import quantify

DEFAULT_ROOT = Path(
    os.environ.get("BLOTQUANT_REAL_BLOTS", Path(__file__).resolve().parents[2] / "shared" / "real_blots")
)

SCORE_COLUMNS = [
    "dataset", "mode", "images", "strips", "strips_found", "count_right", "centres", "centres_covered",
    "main_bands", "main_found", "spurious", "clipped", "clipped_flagged", "on_labels",
]
#: Boxes of typed labels and handwriting on the shared images, annotated by us (not part of the images' ground truth).
LABELS_CSV = Path(__file__).with_name("real_blots_labels.csv")


def datasets(root=DEFAULT_ROOT):
    """Folders of ``root`` that carry lane and band ground truth."""
    return sorted(p for p in Path(root).iterdir()
                  if p.is_dir() and all((p / f"gt_{name}.csv").is_file() for name in ("strips", "lanes", "bands")))


def load_truth(folder):
    """The ground-truth tables of one dataset folder."""
    folder = Path(folder)
    strips = pd.read_csv(folder / "gt_strips.csv")
    lanes = pd.read_csv(folder / "gt_lanes.csv")
    bands = pd.read_csv(folder / "gt_bands.csv")
    return strips, lanes, bands


def raw_clipped_band(path, box, polarity):
    """Whether a box holds a clipped band core in the raw file, read without blotquant.

    Stored values at their type's limit on the signal side (the ceiling for
    light-on-dark data, 0 for dark-on-light; a palette image's indices) count
    as clipped. A clipped band core runs along the band: a connected blob of
    at least 4 clipped pixels, at least 8 wide and twice as wide as it is tall.
    Digits or marks burned into an export (vendor box labels) are not.
    """
    from scipy import ndimage

    raw = _raw_pixels(path)
    x1, y1, x2, y2 = (int(v) for v in box)
    patch = raw[max(0, y1): y2 + 1, max(0, x1): x2 + 1]
    if patch.size == 0:
        return False
    if polarity == "dark_on_light":
        clipped = patch <= 0
    else:
        top = np.iinfo(raw.dtype).max if np.issubdtype(raw.dtype, np.integer) else raw.max()
        clipped = patch >= top
    labels, count = ndimage.label(clipped)
    for blob in ndimage.find_objects(labels) if count else []:
        height, width = blob[0].stop - blob[0].start, blob[1].stop - blob[1].start
        if width >= 2 * height and width >= 8 and clipped[blob].sum() >= 4:
            return True
    return False


_RAW_CACHE = {}


def _raw_pixels(path):
    path = Path(path)
    if path not in _RAW_CACHE:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            data = tifffile.imread(path)  # palette TIFFs give their indices
        else:
            from PIL import Image

            data = np.asarray(Image.open(path).convert("L"))
        if data.ndim == 3:
            # Colour: a pixel is clipped dark when all channels are 0, bright when all are full.
            channels = data[..., :3] if data.shape[-1] in (3, 4) else data
            top = np.iinfo(channels.dtype).max
            dark = channels.max(axis=-1) <= 0
            bright = channels.min(axis=-1) >= top
            data = np.where(dark, 0, np.where(bright, top, 1)).astype(channels.dtype)
        _RAW_CACHE[path] = data
    return _RAW_CACHE[path]


def _lane_interval(lanes, y):
    """Left and right column of each detected lane at row ``y`` (NaN where the lane has no such row)."""
    y_mid = (lanes["y_top"] + lanes["y_bottom"]) / 2.0
    shift = lanes["slope"] * (y - y_mid)
    inside = (lanes["y_top"] <= y) & (y <= lanes["y_bottom"])
    left = np.where(inside, lanes["x_left"] + shift, np.nan)
    right = np.where(inside, lanes["x_right"] + shift, np.nan)
    return left, right


def score_image(result, path, strips_gt, lanes_gt, bands_gt):
    """Per-strip scores of one quantified image; a list of dicts."""
    lanes = result.lanes.reset_index(drop=True)
    bands = result.bands
    rows = []
    for strip in strips_gt.itertuples():
        truth = lanes_gt[lanes_gt["strip_gt"] == strip.strip_gt].sort_values("x_center")
        truth_bands = bands_gt[bands_gt["strip_gt"] == strip.strip_gt]
        pitch = float(np.median(np.diff(truth["x_center"]))) if len(truth) > 1 else 50.0
        covering = []  # index of the detected lane covering each true centre, or -1
        for lane in truth.itertuples():
            left, right = _lane_interval(lanes, lane.y_ref)
            inside = np.flatnonzero((left <= lane.x_center) & (lane.x_center <= right))
            ok = inside.size == 1 and lanes.at[int(inside[0]), "width"] <= 1.3 * pitch
            covering.append(int(inside[0]) if ok else -1)
        covered = [c for c in covering if c >= 0]
        # The detected strip that holds most of this strip's true lanes.
        found_strip = None
        if covered:
            strip_ids = lanes.loc[covered, "strip"]
            found_strip = int(strip_ids.mode().iloc[0])
            if (strip_ids == found_strip).sum() < 0.5 * len(truth):
                found_strip = None
        n_found = int((lanes["strip"] == found_strip).sum()) if found_strip is not None else 0
        expected = strip.n_lanes if pd.notna(strip.n_lanes) else None
        main_found = 0
        matched_bands = set()
        clipped = clipped_flagged = 0
        for band in truth_bands.itertuples():
            lane_index = covering[list(truth["lane_gt"]).index(band.lane_gt)] if band.lane_gt in set(
                truth["lane_gt"]) else -1
            hit = None
            if lane_index >= 0:
                lane_row = lanes.loc[lane_index]
                candidates = bands[(bands["strip"] == lane_row["strip"]) & (bands["lane"] == lane_row["lane"])
                                   & (bands["y"] >= band.y1 - 3) & (bands["y"] <= band.y2 + 3)]
                if not candidates.empty:
                    hit = candidates.index[int(np.argmax(candidates["volume"].to_numpy()))]
                    matched_bands.add(hit)
            if band.main:
                main_found += hit is not None
            if raw_clipped_band(path, (band.x1, band.y1, band.x2, band.y2), result.image["polarity"]):
                clipped += 1
                clipped_flagged += bool(hit is not None and bands.at[hit, "saturated"])
        spurious = 0
        if bool(strip.all_bands_annotated) and found_strip is not None:
            margin = float(strip.spurious_margin) if pd.notna(strip.spurious_margin) else 40.0
            x_lo = truth["x_center"].min() - pitch / 2
            x_hi = truth["x_center"].max() + pitch / 2
            lane_mid = (bands["x_left"] + bands["x_right"]) / 2
            near = bands[(bands["y"] >= strip.y_min - margin) & (bands["y"] <= strip.y_max + margin)
                         & (lane_mid >= x_lo) & (lane_mid <= x_hi) & ~bands["excluded"]]
            spurious = int(len(set(near.index) - matched_bands))
        rows.append({
            "image": path.name, "strip_gt": strip.strip_gt, "found": found_strip is not None,
            "count_right": bool(expected is not None and n_found == expected),
            "count_known": expected is not None, "n_found": n_found,
            "centres": len(truth), "centres_covered": len(covered),
            "main_bands": int(truth_bands["main"].sum()), "main_found": main_found,
            "spurious": spurious, "clipped": clipped, "clipped_flagged": clipped_flagged,
        })
    return rows


def bands_on_labels(bands, dataset, image_name, labels_csv=LABELS_CSV):
    """Bands reported (not excluded) whose centre lies in an annotated label or handwriting box."""
    labels = pd.read_csv(labels_csv)
    labels = labels[(labels["dataset"] == dataset) & (labels["image"] == image_name)]
    if labels.empty or bands.empty:
        return 0
    kept = bands[~bands["excluded"]]
    x = ((kept["x_left"] + kept["x_right"]) / 2).to_numpy()[:, None]
    y = kept["y"].to_numpy()[:, None]
    inside = ((labels["x1"].to_numpy() <= x) & (x <= labels["x2"].to_numpy())
              & (labels["y1"].to_numpy() <= y) & (y <= labels["y2"].to_numpy()))
    return int(inside.any(axis=1).sum())


def _quantify_quietly(path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantify(path, review=None, **options)


def score_dataset(folder, *, given_count=False):
    """Per-strip score table of one dataset, automatic or with the lane count given."""
    folder = Path(folder)
    strips_gt, lanes_gt, bands_gt = load_truth(folder)
    rows = []
    for image_name, image_strips in strips_gt.groupby("image", sort=True):
        path = folder / image_name
        options = {}
        if given_count:
            counts = image_strips["n_lanes"].dropna()
            if counts.empty:
                continue
            options["lanes"] = int(counts.max())
        try:
            result = _quantify_quietly(path, **options)
        except Exception as error:  # a failure is scored as nothing found, and said
            print(f"{image_name}: {error}", file=sys.stderr)
            for strip in image_strips.itertuples():
                n = int((lanes_gt["image"] == image_name).sum())
                rows.append({"image": image_name, "strip_gt": strip.strip_gt, "found": False, "count_right": False,
                             "count_known": pd.notna(strip.n_lanes), "n_found": 0, "centres": n,
                             "centres_covered": 0, "main_bands": 0, "main_found": 0, "spurious": 0,
                             "clipped": 0, "clipped_flagged": 0})
            continue
        image_rows = score_image(result, path, image_strips,
                                 lanes_gt[lanes_gt["image"] == image_name], bands_gt[bands_gt["image"] == image_name])
        # Bands reported on labels are counted once per image, on its first strip.
        image_rows[0]["on_labels"] = bands_on_labels(result.bands, folder.name, image_name)
        rows += image_rows
    table = pd.DataFrame(rows)
    table["dataset"] = folder.name
    table["mode"] = "lanes given" if given_count else "automatic"
    return table


def summarise(per_strip):
    """One row per dataset and mode with the counts of :data:`SCORE_COLUMNS`."""
    out = []
    for (dataset, mode), part in per_strip.groupby(["dataset", "mode"], sort=False):
        out.append({
            "dataset": dataset, "mode": mode, "images": part["image"].nunique(), "strips": len(part),
            "strips_found": int(part["found"].sum()),
            "count_right": int(part["count_right"].sum()),
            "centres": int(part["centres"].sum()), "centres_covered": int(part["centres_covered"].sum()),
            "main_bands": int(part["main_bands"].sum()), "main_found": int(part["main_found"].sum()),
            "spurious": int(part["spurious"].sum()),
            "clipped": int(part["clipped"].sum()), "clipped_flagged": int(part["clipped_flagged"].sum()),
            "on_labels": int(part["on_labels"].fillna(0).sum()) if "on_labels" in part else 0,
        })
    return pd.DataFrame(out, columns=SCORE_COLUMNS)


def authors_agreement(folder):
    """Target/GAPDH ratios against the authors' (gt_pairs.csv); None where the folder has none.

    Each band is measured with the vendor's lane and rows given (``lane_geometry``
    from the box, ``band_rows`` its rows), so the comparison is of volumes, not of
    lane finding. Returns a dict with Pearson r of log ratios (one scale per
    sheet) and the median relative difference.
    """
    folder = Path(folder)
    pairs_path, boxes_path = folder / "gt_pairs.csv", folder / "gt_boxes.csv"
    if not pairs_path.is_file() or not boxes_path.is_file():
        return None
    pairs = pd.read_csv(pairs_path)
    boxes = pd.read_csv(boxes_path)
    volumes = {}
    heights = {}
    for (image, _strip), strip_boxes in boxes.groupby(["image", "strip_gt"]):
        # One run per strip: its vendor boxes as the lanes, their rows as the band window.
        if image not in heights:
            heights[image] = _raw_pixels(folder / image).shape[0]
        top, bottom = int(strip_boxes["y1"].min()), int(strip_boxes["y2"].max())
        geometry = [{"x_left": b.x1, "x_right": b.x2, "y_top": max(0, top - 60),
                     "y_bottom": min(heights[image] - 1, bottom + 60)} for b in strip_boxes.itertuples()]
        result = _quantify_quietly(folder / image, lane_geometry=geometry, band_rows=(top, bottom))
        for item, value in zip(strip_boxes.sort_values("x1")["stp_item"], result.bands.sort_values("lane")["volume"]):
            volumes[(image, int(item))] = float(value)

    def volume(image, item):
        return volumes.get((image, int(item)), np.nan)

    ours = np.array([volume(p.target_image, p.target_stp_item) / volume(p.gapdh_image, p.gapdh_stp_item)
                     for p in pairs.itertuples()])
    theirs = pairs["ratio_xls"].to_numpy(float)
    good = np.isfinite(ours) & (ours > 0) & (theirs > 0)
    frame = pd.DataFrame({"sheet": pairs["xls"] + "|" + pairs["sheet"], "ours": np.log(ours), "theirs": np.log(theirs)})
    frame = frame[good]
    # One scale per sheet: their IDV includes background, ours does not.
    centred = frame.groupby("sheet")[["ours", "theirs"]].transform(lambda v: v - v.median())
    r = float(np.corrcoef(centred["ours"], centred["theirs"])[0, 1])
    difference = np.abs(np.exp(centred["ours"] - centred["theirs"]) - 1)
    return {"pairs": int(good.sum()), "pearson_r_log": r, "median_rel_difference": float(np.median(difference))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--csv", type=Path, default=Path("real_blots_scores.csv"))
    parser.add_argument("--per-strip", type=Path, help="also write the per-strip scores here")
    parser.add_argument("--no-authors", action="store_true", help="skip the comparison with the authors' numbers")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"real blots not found at {args.root}; set BLOTQUANT_REAL_BLOTS", file=sys.stderr)
        return 2
    per_strip = pd.concat([score_dataset(folder, given_count=given) for folder in datasets(args.root)
                           for given in (False, True)], ignore_index=True)
    summary = summarise(per_strip)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False))
    summary.to_csv(args.csv, index=False)
    if args.per_strip:
        per_strip.to_csv(args.per_strip, index=False)
    print(f"\nwritten to {args.csv}")
    if not args.no_authors:
        for folder in datasets(args.root):
            agreement = authors_agreement(folder)
            if agreement:
                print(f"{folder.name}: target/GAPDH ratios vs the authors' ({agreement['pairs']} pairs, "
                      f"vendor boxes given): Pearson r (log, per-sheet scale) {agreement['pearson_r_log']:.3f}, "
                      f"median |relative difference| {100 * agreement['median_rel_difference']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
