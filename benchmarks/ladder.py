"""Molecular-weight ladders: how well blotquant sizes bands, on synthetic families and real pen marks.

Three parts, printed as tables:

1. **Matching alone** (``blotquant.ladder.match_ladder_lane``): the rows of a
   ladder lane's bands drawn from every ladder of the shipped table, under
   migration curves harder than the code assumes (log10 kDa against row
   bent so that its slope changes up to sevenfold down the lane, plus a
   wiggle), bands missing, bands that are no ladder's, and noise in the rows;
   and the same lanes with a wrong ladder named. An outcome is *sized right*
   when every true ladder band inside the fitted range is sized within 5 %,
   *refused* when a one-line ``LadderError`` is raised, *wrong* otherwise.
2. **Whole blots** (``blotquant.quantify`` with ``ladder_lane``): synthetic
   blots (``blotquant.synth.make_ladder_blot``) with a ladder lane, sample
   bands of known size, rotation, smile, noise; every sample band's ``kda``
   against its true size, and how often the truth lies within 2 ``kda_sd``.
3. **Real pen marks** (``../shared/real_blots/wb_zdf_rat_heart_chemi16``): the
   marks drawn at the 100, 75 and 50 kDa marker bands beside the strips give
   a three-point calibration per side; the sizes of the vendor's boxed target
   bands (``gt_boxes.csv``) per strip, and their spread across the blots of
   one antibody. The marks' rows were **read by eye** from the images (see
   ``PEN_MARKS``) and refined to the darkness centroid of each mark within
   +-10 rows of the reading; automatic detection of the marks was not built
   (they are dark ink on bright membrane, next to hand-written numbers).

Usage::

    python benchmarks/ladder.py [--trials 200] [--blots 10] [--root ../shared/real_blots]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from blotquant import quantify
from blotquant.errors import BlotQuantError, LadderError
from blotquant.io import image_from_array, read_image
from blotquant.ladder import SizeCalibration, SizeCurve, load_ladders, match_ladder_lane
from blotquant.synth import make_ladder_blot

DEFAULT_ROOT = Path(
    os.environ.get("BLOTQUANT_REAL_BLOTS", Path(__file__).resolve().parents[2] / "shared" / "real_blots")
)
RAT_HEART = "wb_zdf_rat_heart_chemi16"


# --------------------------------------------------------------------------
# Migration curves harder than the code
# --------------------------------------------------------------------------


def random_migration(rng, *, curved):
    """kDa -> position (fraction of the strip) of a random gel.

    Straight in log10 kDa, or bent: ``(1 - exp(-k t)) / (1 - exp(-k))`` with
    ``k`` up to +-2 (the slope changes up to e^2 = 7.4-fold from top to
    bottom, compressing the large or the small sizes), plus a wiggle of up to
    5 % of the lane.
    """
    k = rng.uniform(-2.0, 2.0) if curved else 0.0
    wiggle = rng.uniform(-0.05, 0.05) if curved else 0.0
    top, bottom = rng.uniform(0.08, 0.12), rng.uniform(0.85, 0.93)

    def migration(kda):
        t = (np.log10(260.0) - np.log10(np.asarray(kda, dtype=float))) / (np.log10(260.0) - np.log10(9.0))
        bent = t if abs(k) < 1e-6 else (1 - np.exp(-k * t)) / (1 - np.exp(-k))
        return top + (bottom - top) * (bent + wiggle * np.sin(np.pi * t))

    return migration


# --------------------------------------------------------------------------
# 1. Matching alone
# --------------------------------------------------------------------------

MATCH_FAMILIES = [
    # name, curved, most missing, most extra, row noise (px)
    ("log-linear, every band", False, 0, 0, 0.5),
    ("curved, every band", True, 0, 0, 0.5),
    ("curved, 0-2 bands missing", True, 2, 0, 1.0),
    ("curved, 0-2 extra bands", True, 0, 2, 1.0),
    ("curved, 0-2 missing + 0-2 extra", True, 2, 2, 1.0),
    ("curved, 0-2 missing + 0-2 extra, 2 px noise", True, 2, 2, 2.0),
]


def _size_error(match, kda, rows):
    """Largest |size / truth - 1| over the true ladder bands inside the fitted range."""
    estimate, _ = SizeCurve(match.rows, match.kda).size(rows)
    errors = np.abs(estimate / kda - 1)
    return float(np.nanmax(errors)) if np.isfinite(errors).any() else 0.0


def matching_benchmark(trials, seed=0):
    ladders = load_ladders()
    keys = list(ladders)
    rows_out = []
    for name, curved, most_missing, most_extra, noise in MATCH_FAMILIES:
        rng = np.random.default_rng([seed, len(rows_out)])
        counts = dict.fromkeys(["right", "refused", "wrong", "wl_refused", "wl_harmless", "wl_wrong"], 0)
        for _ in range(trials):
            key = keys[rng.integers(len(keys))]
            kda = np.array(ladders[key].kda)
            rows = random_migration(rng, curved=curved)(kda) * rng.uniform(500, 1100) + rng.normal(0, noise, kda.size)
            seen = np.ones(kda.size, bool)
            seen[rng.choice(kda.size, rng.integers(0, most_missing + 1), replace=False)] = False
            extra = rng.uniform(rows.min() - 20, rows.max() + 20, rng.integers(0, most_extra + 1))
            lane = np.concatenate([rows[seen], extra])
            try:
                _, match = match_ladder_lane(lane, key, ladders=ladders)
                counts["right" if _size_error(match, kda, rows) < 0.05 else "wrong"] += 1
            except LadderError:
                counts["refused"] += 1
            others = [k for k in keys if ladders[k].kda != ladders[key].kda]
            other = others[rng.integers(len(others))]
            try:
                _, match = match_ladder_lane(lane, other, ladders=ladders)
                counts["wl_harmless" if _size_error(match, kda, rows) < 0.05 else "wl_wrong"] += 1
            except LadderError:
                counts["wl_refused"] += 1
        rows_out.append({"family": name, "trials": trials, **{k: 100.0 * v / trials for k, v in counts.items()}})
    return pd.DataFrame(rows_out)


# --------------------------------------------------------------------------
# 2. Whole synthetic blots
# --------------------------------------------------------------------------

BLOT_FAMILIES = [
    # name, curved, most missing, extra bands, ladder lanes, rotation (deg), smile
    ("log-linear, one ladder, turned", False, 0, 0, "one", 1.0, 0.0),
    ("curved, 0-2 missing, 0-1 extra, one ladder", True, 2, 1, "one", 1.5, 0.0),
    ("curved, 0-2 missing, both sides, turned + smile", True, 2, 0, "both", 1.5, 0.006),
]


def blot_benchmark(blots, seed=0):
    ladders = load_ladders()
    keys = [k for k in ladders if k != "precision_plus_all_blue"]  # one of each size list is enough
    rows_out = []
    for family, (name, curved, most_missing, most_extra, sides, rotation, smile) in enumerate(BLOT_FAMILIES):
        rng = np.random.default_rng([seed, 100 + family])
        errors, within, outside_right, outside, refused, missed = [], [], 0, 0, 0, 0
        started = time.perf_counter()
        for number in range(blots):
            key = keys[rng.integers(len(keys))]
            kda = np.array(ladders[key].kda)
            # Three sample sizes inside the ladder (log-uniform, apart), one above its largest size.
            inside = np.sort(10 ** rng.uniform(np.log10(kda[-2]), np.log10(kda[1]), 3))[::-1]
            while np.min(np.abs(np.diff(np.log10(inside)))) < 0.08:
                inside = np.sort(10 ** rng.uniform(np.log10(kda[-2]), np.log10(kda[1]), 3))[::-1]
            samples = np.r_[1.12 * kda[0], inside].round(1)
            n_lanes = int(rng.integers(7, 11))
            missing = rng.choice(kda[1:-1], rng.integers(0, most_missing + 1), replace=False)
            migration = random_migration(rng, curved=curved)
            extra = []
            if most_extra and rng.random() < 0.7:
                extra = [float(np.mean(migration(kda[[3, 4]])))]
            lanes = (1,) if sides == "one" else (1, n_lanes)
            blot = make_ladder_blot(
                ladder_kda=kda, sample_kda=samples, migration=migration, missing_kda=missing,
                extra_positions=extra, ladder_lanes=lanes, n_lanes=n_lanes, shape=(700, 110 * n_lanes),
                rotation_deg=float(rng.uniform(-rotation, rotation)), smile=smile, background="blotchy",
                full_well=float(10 ** rng.uniform(3.6, 4.4)), seed=seed * 1000 + 31 * family + number,
            )
            image = image_from_array(blot.image, name="synthetic", full_scale=blot.full_scale)
            try:
                result = quantify(image, lanes=n_lanes, ladder_lane=list(lanes), ladder=key)
            except LadderError:
                refused += 1
                continue
            truth = blot.truth_bands[(blot.truth_bands["amount"] > 0) & ~blot.truth_bands["ladder"]]
            for band in truth.itertuples():
                lane = result.bands[(result.bands["strip"] == band.strip) & (result.bands["lane"] == band.lane)]
                near = lane.iloc[(lane["y"] - band.y).abs().argmin()] if len(lane) else None
                if near is None or abs(near["y"] - band.y) > 3:
                    missed += 1
                    continue
                if band.kda > kda[0]:
                    outside += 1
                    outside_right += int(np.isnan(near["kda"]))
                    continue
                errors.append(near["kda"] / band.kda - 1)
                within.append(abs(near["kda"] - band.kda) <= 2 * near["kda_sd"])
        errors = np.abs(np.array(errors))
        sized = errors[np.isfinite(errors)]
        rows_out.append({
            "family": name, "blots": blots, "refused": refused, "sample_bands": len(errors),
            "sized": len(sized), "median_error_pct": 100 * np.median(sized),
            "p90_error_pct": 100 * np.percentile(sized, 90),
            "within_5pct": 100 * np.mean(sized < 0.05), "truth_within_2sd_pct": 100 * np.mean(within),
            "above_ladder_unsized": f"{outside_right}/{outside}", "bands_not_found": missed,
            "seconds_per_blot": (time.perf_counter() - started) / blots,
        })
    return pd.DataFrame(rows_out)


# --------------------------------------------------------------------------
# 3. Real pen marks on the rat-heart blots
# --------------------------------------------------------------------------

#: Pen marks READ BY EYE from the images (zoomed, contrast-stretched): image, strip (as in
#: gt_strips.csv), the columns the mark spans, and (kDa, row) of each mark as read. The rows are
#: refined below to the mark's darkness centroid (+-10 rows); the readings agree with the
#: centroids within 3.5 px. "labelled": the sizes are written beside the marks on the membrane;
#: False: three unlabelled lines, taken as 100/75/50 kDa only because they are spaced as the
#: labelled marks are (about 65 then 120 px). Strips not listed carry no marks legible in these
#: chemiluminescence captures (B1AR July4, March19, Oct10; B2AR July23, June20, Oct10) or marks
#: written over one another (B1AR July23 strip 2).
PEN_MARKS = [
    ("B1AR_July23_B1AR_10wtop_10wbottom.tif", 1, (262, 360), [(100, 66), (75, 122), (50, 216)], True),
    ("B1AR_July24_B1AR_16wbottom.tif", 1, (805, 840), [(100, 487), (75, 548), (50, 668)], False),
    ("B2AR_July4_B2AR_10wtop_16wbottom.tif", 1, (172, 215), [(100, 84), (75, 151), (50, 267)], True),
    ("B2AR_July4_B2AR_10wtop_16wbottom.tif", 1, (750, 800), [(100, 85), (75, 154), (50, 275)], True),
    # The left marks of strip 2 are slanted strokes: their centre is used.
    ("B2AR_July4_B2AR_10wtop_16wbottom.tif", 2, (128, 186), [(100, 375), (75, 438), (50, 548)], True),
    ("B2AR_July4_B2AR_10wtop_16wbottom.tif", 2, (725, 820), [(100, 391), (75, 458), (50, 578)], True),
    # Strip 1: the sizes are written at the left, the marks drawn at the right.
    ("B2AR_July24_B2AR_10wbottom.tif", 1, (845, 890), [(100, 61), (75, 124), (50, 245)], True),
    ("B2AR_July24_B2AR_10wbottom.tif", 2, (325, 395), [(100, 356), (75, 415), (50, 522)], True),
    ("B2AR_July24_B2AR_10wbottom.tif", 2, (928, 973), [(100, 366), (75, 427), (50, 541)], True),
    ("B3AR_April24_B3AR_10wtop.tif", 1, (100, 142), [(100, 104), (75, 170), (50, 282)], True),
    ("B3AR_April24_B3AR_10wtop.tif", 1, (680, 750), [(100, 106), (75, 177), (50, 290)], True),
    ("B3AR_April24_B3AR_16wbottom.tif", 1, (166, 205), [(100, 527), (75, 591), (50, 709)], True),
    ("B3AR_April24_B3AR_16wbottom.tif", 1, (748, 790), [(100, 527), (75, 593), (50, 714)], True),
    ("B3AR_June25_B3AR_10wtop_16wbottom.tif", 1, (312, 350), [(100, 92), (75, 153), (50, 263)], True),
    ("B3AR_June25_B3AR_10wtop_16wbottom.tif", 1, (888, 930), [(100, 79), (75, 150), (50, 259)], True),
    ("B3AR_June25_B3AR_10wtop_16wbottom.tif", 2, (365, 405), [(100, 294), (75, 361), (50, 480)], True),
    ("B3AR_June25_B3AR_10wtop_16wbottom.tif", 2, (922, 985), [(100, 300), (75, 361), (50, 487)], True),
    ("B3AR_Oct1_B3ARbottom.tif", 1, (895, 945), [(100, 148), (75, 213), (50, 340)], False),
    ("B3AR_Oct1_B3ARbottom.tif", 2, (895, 945), [(100, 438), (75, 509), (50, 635)], False),
]

#: Standard uncertainty of a refined pen-mark row (px): the marks are 5-20 px tall blots of ink.
PEN_MARK_ROW_SD = 2.0


def refined_mark_row(image, columns, guess, *, reach=10, context=30):
    """Row of a dark pen mark: the darkness-weighted centroid within ``reach`` rows of a reading."""
    rows = np.arange(guess - context, guess + context + 1)
    rows = rows[(rows >= 0) & (rows < image.shape[0])]
    profile = np.median(image[rows][:, columns[0]:columns[1]], axis=1)
    darkness = np.clip(np.percentile(profile, 80) - profile, 0, None) * (np.abs(rows - guess) <= reach)
    return float(np.sum(darkness ** 2 * rows) / np.sum(darkness ** 2))


def pen_mark_table(folder):
    """One row per mark: image, strip, x (centre of its columns), y (refined), y_read, kda, labelled."""
    from scipy import ndimage as ndi

    images, rows = {}, []
    for name, strip, columns, marks, labelled in PEN_MARKS:
        if name not in images:
            images[name] = ndi.gaussian_filter(read_image(folder / name).data[0].astype(float), 1.0)
        for kda, guess in marks:
            rows.append({"image": name, "strip": strip, "x": 0.5 * sum(columns), "kda": float(kda), "y_read": guess,
                         "y": round(refined_mark_row(images[name], columns, guess), 1), "labelled": labelled})
    return pd.DataFrame(rows)


def pen_mark_benchmark(root):
    folder = Path(root) / RAT_HEART
    if not folder.is_dir():
        return None, None, None
    marks = pen_mark_table(folder)
    boxes = pd.read_csv(folder / "gt_boxes.csv")
    per_strip = []
    for (name, strip), group in marks.groupby(["image", "strip"], sort=False):
        curves, columns = [], []
        for x, side in group.groupby("x"):
            curves.append(SizeCurve(side["y"], side["kda"], row_sd=PEN_MARK_ROW_SD, label=f"{name} {strip} x={x:g}"))
            columns.append(x)
        estimate = SizeCalibration(curves, columns).size(*_box_centres(boxes, name, strip))
        per_strip.append({
            "antibody": name.split("_")[0], "image": name, "strip": strip, "labelled": bool(group["labelled"].all()),
            "sides": len(curves), "boxes": estimate.kda.size, "unsized": int(np.isnan(estimate.kda).sum()),
            "kda_median": np.nanmedian(estimate.kda), "kda_min": np.nanmin(estimate.kda),
            "kda_max": np.nanmax(estimate.kda), "kda_sd_median": np.nanmedian(estimate.kda_sd),
            "marks_loo_error_pct": 100 * max(c.max_error for c in curves),
        })
    per_strip = pd.DataFrame(per_strip)
    spread = (per_strip[per_strip["labelled"]].groupby("antibody")["kda_median"]
              .agg(strips="size", mean="mean", sd="std", min="min", max="max").reset_index())
    return per_strip, spread, _through_quantify(folder, marks, boxes)


def _box_centres(boxes, name, strip):
    rows = boxes[(boxes["image"] == name) & (boxes["strip_gt"] == strip)]
    return rows["y_center"].to_numpy(float), rows["x_center"].to_numpy(float)


def _through_quantify(folder, marks, boxes):
    """The same marks given to quantify(): the boxed band's ``kda`` in bands.csv against the direct sizes.

    The marks' strips are blotquant's own: each annotated strip is mapped to
    the detected strip whose lanes hold its boxes' centres. Images where two
    annotated strips fall in one detected strip are left out.
    """
    rows = []
    for name in marks["image"].unique():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = quantify(folder / name, lanes=9)
        mapping = {}
        for strip in marks.loc[marks["image"] == name, "strip"].unique():
            y, x = _box_centres(boxes, name, strip)
            found = [_lane_at(plain.lanes, yy, xx) for yy, xx in zip(y, x)]
            strips = {lane["strip"] for lane in found if lane is not None}
            mapping[strip] = strips.pop() if len(strips) == 1 else None
        if None in mapping.values() or len(set(mapping.values())) < len(mapping):
            rows.append({"image": name, "status": "strips not separated by detection"})
            continue
        given = marks[marks["image"] == name].assign(strip=lambda t: t["strip"].map(mapping))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = quantify(folder / name, lanes=9, ladder_marks=given[["image", "strip", "x", "y", "kda"]])
        except BlotQuantError as error:
            rows.append({"image": name, "status": f"refused: {error}"})
            continue
        differences, missing = [], 0
        for strip, detected in mapping.items():
            y, x = _box_centres(boxes, name, strip)
            direct = result.calibration.size(np.full(y.size, detected), y, x).kda
            for yy, xx, size in zip(y, x, direct):
                lane = _lane_at(result.lanes, yy, xx)
                bands = result.bands[(result.bands["strip"] == lane["strip"]) & (result.bands["lane"] == lane["lane"])]
                near = bands.iloc[(bands["y"] - yy).abs().argmin()] if len(bands) else None
                if near is None or abs(near["y"] - yy) > 8 or np.isnan(near["kda"]):
                    missing += 1
                    continue
                differences.append(near["kda"] / size - 1)
        differences = np.abs(np.array(differences))
        rows.append({"image": name, "status": "ok", "boxes_sized_in_bands_csv": differences.size,
                     "boxes_without_band": missing,
                     "max_difference_pct": 100 * differences.max() if differences.size else np.nan})
    return pd.DataFrame(rows)


def _lane_at(lanes, y, x):
    inside = lanes[(lanes["x_left"] <= x) & (lanes["x_right"] >= x) & (lanes["y_top"] <= y) & (lanes["y_bottom"] >= y)]
    return None if inside.empty else inside.iloc[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="lanes per family for the matching benchmark")
    parser.add_argument("--blots", type=int, default=10, help="blots per family for the whole-blot benchmark")
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="the real_blots folder")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 80)

    print(f"1. Matching a ladder lane's band rows to the ladder named ({args.trials} lanes per family, % of lanes)")
    print("   right/refused/wrong: the right ladder named; wl_*: a wrong ladder named (harmless = sizes still "
          "within 5 %)")
    print(matching_benchmark(args.trials).round(1).to_string(index=False))
    print()
    print(f"2. Whole synthetic blots, quantify(..., ladder_lane=...) ({args.blots} blots per family); errors of "
          "the sample bands inside the ladder's range")
    print(blot_benchmark(args.blots).round(2).to_string(index=False))
    print()
    per_strip, spread, through = pen_mark_benchmark(args.root)
    if per_strip is None:
        print(f"3. Real pen marks: {Path(args.root) / RAT_HEART} not found; skipped")
        return 0
    print("3. Rat-heart blots: boxed target bands sized from the pen marks at 100/75/50 kDa (rows read by eye, "
          "refined to the marks' centroids)")
    print(per_strip.round(1).to_string(index=False))
    print()
    print("   Spread of the strips' median sizes across the blots of one antibody (labelled marks only)")
    print(spread.round(1).to_string(index=False))
    print()
    print("   The same marks through quantify(ladder_marks=...): the boxed band's kda in bands.csv vs the direct sizes")
    print(through.round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
