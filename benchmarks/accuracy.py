"""Accuracy of blotquant on synthetic blots with known band volumes.

Prints, for blotquant's default method and for a simple "fixed box plus
border-median background" baseline on the same images:

* median and 90th-percentile relative error of band volumes, after one
  scale factor per image and band row (the unknown antibody response),
  excluding saturated bands;
* the share of images whose lanes were all found automatically;
* the recall of band detection and of the saturation flag, and the share
  of reported bands that match no true band (membrane texture taken for protein);
* the linearity of a twofold dilution series (deviation from a straight
  line through the origin region, per dilution step).

Usage::

    python benchmarks/accuracy.py [--images 40] [--methods [METHOD ...]] [--jobs 2]

``--methods`` also scores background methods (every one when no names
follow), on the lanes found and on the true lanes, which is how the default
was chosen.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from blotquant import quantify
from blotquant.pipeline import DEFAULT_BACKGROUND
from blotquant.bands import is_saturated, lane_profile, saturated_pixel_count
from blotquant.background import border_median_level
from blotquant.io import image_from_array, to_signal
from blotquant.synth import make_blot, random_blot, random_hard_blot

#: Blot families: our own generator's, and one made to be harder than the code (widths varying
#: threefold in a row, tails of their own, faint neighbours, blotches, soft edges, wide margins).
FAMILIES = {"old": random_blot, "hard": random_hard_blot}

DILUTION = np.array([1.0, 0.5, 0.25, 0.125, 0.0625, 1.0, 0.5, 0.25])

METHODS = ("valley", "beyond", "fit", "border_median", "rolling_ball_valley", "rolling_ball", "rubber_band")


def match_lanes(found, truth):
    """Map each truth (strip, lane) to a found (strip, lane) by nearest centre; all found?"""
    mapping = {}
    all_found = True
    for strip, truth_strip in truth.groupby("strip"):
        pitch = np.median(np.diff(np.sort(truth_strip["x_center"]))) if len(truth_strip) > 1 else 100
        found_strip = found[(found["y_top"] <= truth_strip["y_top"].iloc[0] + 0.2 * pitch + 50)
                            & (found["y_bottom"] >= truth_strip["y_bottom"].iloc[0] - 0.2 * pitch - 50)]
        for row in truth_strip.itertuples():
            if found_strip.empty:
                all_found = False
                continue
            distance = (found_strip["x_center"] - row.x_center).abs()
            best = distance.idxmin()
            if distance[best] <= 0.3 * pitch:
                mapping[(row.strip, row.lane)] = (int(found_strip.at[best, "strip"]), int(found_strip.at[best, "lane"]))
            elif not row.empty:
                all_found = False
        if len(found_strip) != len(truth_strip) and (~truth_strip["empty"]).all():
            all_found = False
    return mapping, all_found


def match_bands(bands, truth_bands, mapping):
    """Measured volume (or NaN) and saturation flag for every truth band, and the bands used."""
    measured = np.full(len(truth_bands), np.nan)
    measured_sd = np.full(len(truth_bands), np.nan)
    flagged = np.zeros(len(truth_bands), bool)
    used = set()
    for index, row in enumerate(truth_bands.itertuples()):
        key = mapping.get((row.strip, row.lane))
        if key is None:
            continue
        candidates = bands[(bands["strip"] == key[0]) & (bands["lane"] == key[1])]
        if candidates.empty:
            continue
        distance = (candidates["y"] - row.y).abs()
        best = distance.idxmin()
        if distance[best] <= max(3.0, 2.0 * row.sigma_y):
            measured[index] = candidates.at[best, "volume"]
            if "volume_sd" in candidates:
                measured_sd[index] = candidates.at[best, "volume_sd"]
            flagged[index] = bool(candidates.at[best, "saturated"])
            used.add(best)
    return measured, flagged, used, measured_sd


def baseline_boxes(blot_image, result):
    """Fixed-height boxes with border-median background, as done by hand in ImageJ."""
    signal, _ = to_signal(blot_image.data[0], polarity=result.image["polarity"], full_scale=blot_image.full_scale)
    height = int(np.median(result.bands["y_bottom"] - result.bands["y_top"] + 1)) if len(result.bands) else 10
    half = max(2, height // 2)
    rows = []
    for band in result.bands.to_dict("records"):
        lane = result.lanes[(result.lanes["strip"] == band["strip"]) & (result.lanes["lane"] == band["lane"])].iloc[0]
        profile, pixels = lane_profile(signal, None, lane)
        centre = int(round(band["y"])) - int(profile.rows[0])
        top, bottom = max(0, centre - half), min(profile.rows.size - 1, centre + half)
        box = pixels.block(top - 3, bottom + 3)
        box_top = min(top, 3)
        level = border_median_level(box, box_top, box_top + bottom - top)
        n_pixels = pixels.width * (bottom - top + 1)
        volume = profile.signal[top : bottom + 1].sum() - level * n_pixels
        clipped = saturated_pixel_count(pixels, top, bottom, blot_image.full_scale)
        # The box has no uncertainty of its own: blotquant's volume_sd is not carried over.
        rows.append({**band, "volume": volume, "volume_sd": np.nan, "saturated": is_saturated(clipped, n_pixels)})
    return pd.DataFrame(rows, columns=result.bands.columns)


def score_image(task):
    seed, methods, family = task
    blot = FAMILIES[family](seed)
    image = image_from_array(blot.image, name=f"synthetic-{seed}", full_scale=blot.full_scale)
    outcome = {"seed": seed, "lanes_all_found": False, "rows": []}
    start = time.perf_counter()
    try:
        result = quantify(image, review=None)
    except Exception as error:  # a failure is a data point, not a crash
        outcome["error"] = f"{type(error).__name__}: {error}"
        return outcome
    outcome["seconds"] = time.perf_counter() - start
    mapping, outcome["lanes_all_found"] = match_lanes(result.lanes, blot.truth_lanes)
    truth = blot.truth_bands.reset_index(drop=True)
    tables = {"blotquant": result.bands, "baseline": baseline_boxes(image, result)}
    for method in methods:
        if method != DEFAULT_BACKGROUND:
            tables[method] = quantify(image, review=None, background=method,
                                      lane_geometry=result.lanes.drop(columns=["image"])).bands
    # Band volumes apart from lane finding: the true lanes given, as a careful analyst would draw them.
    given = true_lane_geometry(blot)
    given_result = quantify(image, review=None, lane_geometry=given)
    tables["blotquant, lanes given"] = given_result.bands
    for method in methods:
        if method != DEFAULT_BACKGROUND:
            tables[f"{method}, lanes given"] = quantify(image, review=None, background=method,
                                                       lane_geometry=given).bands
    tables["baseline, lanes given"] = baseline_boxes(image, given_result)
    identity = {(int(r.strip), int(r.lane)): (int(r.strip), int(r.lane)) for r in blot.truth_lanes.itertuples()}
    for name, bands in tables.items():
        measured, flagged, used, measured_sd = match_bands(bands, truth, identity if "lanes given" in name else mapping)
        if name == "blotquant":
            outcome["reported"], outcome["spurious"] = len(bands), len(bands) - len(used)
        frame = truth[["strip", "lane", "band_row", "volume", "saturated", "nonspecific"]].copy()
        frame["measured"] = measured
        frame["measured_sd"] = measured_sd
        frame["flagged"] = flagged
        frame["method"] = name
        frame["seed"] = seed
        frame["family"] = family
        outcome["rows"].append(frame)
    return outcome


def true_lane_geometry(blot):
    """The synthetic blot's true lanes as lane geometry (x at the middle row, lean from the rotation)."""
    height = blot.image.shape[0]
    slope = float(np.tan(np.radians(blot.params.get("rotation_deg", 0.0))))
    lanes = blot.truth_lanes
    top = lanes["y_top"].clip(0, height - 1).round().astype(int)
    bottom = lanes["y_bottom"].clip(0, height - 1).round().astype(int)
    shift = slope * ((top + bottom) / 2.0 - (lanes["y_top"] + lanes["y_bottom"]) / 2.0)
    width = blot.image.shape[1]
    return pd.DataFrame({
        "strip": lanes["strip"], "lane": lanes["lane"],
        "x_left": (lanes["x_left"] + shift).clip(0, width - 2), "x_right": (lanes["x_right"] + shift).clip(1, width - 1),
        "y_top": top, "y_bottom": bottom, "slope": slope,
    })


def dilution_deviation(task):
    """|measured / linear fit - 1| per lane of one synthetic dilution-series blot."""
    seed, method = task
    blot = make_blot(shape=(600, 900), n_lanes=8, amounts=DILUTION, band_rows=((0.45, 1.0),), seed=seed)
    y = int(blot.truth_bands["y"].median())
    image = image_from_array(blot.image, full_scale=blot.full_scale)
    result = quantify(image, lanes=8, band_rows=(y - 40, y + 40), background=method, review=None)
    volumes = result.bands.sort_values("lane")["volume"].to_numpy()
    slope, intercept = np.polyfit(DILUTION, volumes, 1)
    return method, np.abs(volumes / (slope * DILUTION + intercept) - 1)


def summarise(table):
    """Relative errors after one scale factor per image and band row."""
    usable = table[~table["saturated"] & table["measured"].notna() & (table["volume"] > 0)].copy()
    usable["ratio"] = usable["measured"] / usable["volume"]
    scale = usable.groupby(["method", "seed", "band_row"])["ratio"].transform("median")
    usable["error"] = (usable["ratio"] / scale - 1).abs()
    # How many standard uncertainties (volume_sd) each volume lies from the truth on the same scale.
    usable["z"] = (usable["measured"] - scale * usable["volume"]).abs() / usable["measured_sd"]
    out = {}
    for method, group in usable.groupby("method"):
        everything = table[table["method"] == method]
        saturated = everything[everything["saturated"] & everything["measured"].notna()]
        out[method] = {
            "median_error": float(group["error"].median()),
            "p90_error": float(group["error"].quantile(0.9)),
            "p90_specific": float(group.loc[~group["nonspecific"], "error"].quantile(0.9)),
            "bands_scored": int(len(group)),
            "detection_recall": float(everything["measured"].notna().mean()),
            "saturation_recall": float(saturated["flagged"].mean()) if len(saturated) else float("nan"),
            "saturated_bands": int(len(saturated)),
            "within_1_sd": float((group["z"] <= 1).mean()) if group["z"].notna().any() else float("nan"),
            "within_2_sd": float((group["z"] <= 2).mean()) if group["z"].notna().any() else float("nan"),
        }
    return out


def report_family(family, methods, args):
    """Score one family of random blots and print its figures."""
    tasks = [(seed, methods, family) for seed in range(args.images)]
    with ProcessPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(score_image, tasks))
    failed = [o for o in outcomes if "error" in o]
    table = pd.concat([frame for o in outcomes for frame in o["rows"]], ignore_index=True)
    summary = summarise(table)
    lanes_ok = np.mean([o["lanes_all_found"] for o in outcomes])
    seconds = [o["seconds"] for o in outcomes if "seconds" in o]
    print(f"\n== family '{family}': {len(outcomes)} synthetic blots (failed: {len(failed)}), "
          f"median quantify time {np.median(seconds):.2f} s")
    for o in failed:
        print(f"  seed {o['seed']}: {o['error']}")
    print(f"lanes all found automatically: {lanes_ok:.1%} of images")
    missed = [o["seed"] for o in outcomes if not o["lanes_all_found"] and "error" not in o]
    if missed:
        print(f"  images with a lane missed or extra: seeds {missed}")
    reported = sum(o.get("reported", 0) for o in outcomes)
    spurious = sum(o.get("spurious", 0) for o in outcomes)
    print(f"bands reported by free detection: {reported}, of which matching no true band: {spurious} "
          f"({spurious / max(reported, 1):.1%})")
    print("relative error of band volumes (one scale factor per image and band row, unsaturated bands);")
    print("'p90 specific' leaves out non-specific bands that overlap a stronger band's tail")
    print("'within 1/2 sd': share of volumes within 1 and 2 of their volume_sd of the truth (a calibrated")
    print("uncertainty has about 68 % and 95 %; only blotquant's own tables carry volume_sd)")
    print(f"{'method':22s} {'median err':>10s} {'p90 err':>8s} {'p90 specific':>12s} {'bands':>6s} "
          f"{'detected':>9s} {'sat. recall':>11s}       {'within 1/2 sd':>14s}")
    for method, figures in sorted(summary.items(), key=lambda item: item[1]["median_error"]):
        coverage = ("" if np.isnan(figures["within_1_sd"])
                    else f"{figures['within_1_sd']:6.1%} / {figures['within_2_sd']:.1%}")
        print(f"{method:22s} {figures['median_error']:10.2%} {figures['p90_error']:8.2%} "
              f"{figures['p90_specific']:12.2%} {figures['bands_scored']:6d} {figures['detection_recall']:9.1%} "
              f"{figures['saturation_recall']:11.1%} (of {figures['saturated_bands']:2d}) {coverage:>14s}")
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=None, metavar="METHOD",
                        help="score these background methods too (every one when given without names)")
    parser.add_argument("--dilution-blots", type=int, default=8, help="dilution-series blots to score")
    parser.add_argument("--family", nargs="+", choices=sorted(FAMILIES), default=["old", "hard"],
                        help="blot families to score (default: both)")
    args = parser.parse_args()
    methods = () if args.methods is None else (tuple(args.methods) or METHODS)
    for family in args.family:
        report_family(family, methods, args)
    if args.dilution_blots < 1:
        return
    dilution_methods = (DEFAULT_BACKGROUND,) + tuple(m for m in methods if m != DEFAULT_BACKGROUND)
    tasks = [(seed, method) for method in dilution_methods for seed in range(args.dilution_blots)]
    with ProcessPoolExecutor(args.jobs) as pool:
        deviations = list(pool.map(dilution_deviation, tasks))
    print(f"\ntwofold dilution series ({args.dilution_blots} blots, blotchy background, band_rows window): "
          "mean |deviation from linear fit| per load")
    print(f"{'method':22s} " + " ".join(f"{amount:>7.4g}" for amount in DILUTION[:5]) + f" {'worst':>7s}")
    for method in dilution_methods:
        table = np.array([d for m, d in deviations if m == method])
        per_load = [table[:, DILUTION == amount].mean() for amount in DILUTION[:5]]
        print(f"{method + (' (default)' if method == DEFAULT_BACKGROUND else ''):22s} "
              + " ".join(f"{value:7.1%}" for value in per_load) + f" {table.max():7.1%}")


if __name__ == "__main__":
    main()
