"""Generate the example study in ``sample_data/``: ketamine and p-mTOR in rat prefrontal cortex.

Design (what a real lab would run): ketamine 10 mg/kg i.p. or saline vehicle, animals
killed 15, 30, 60, 120, 240 and 360 min after the injection, four animals per group
and time, prefrontal cortex lysates run on four blots (one animal of every group and
time per blot). Each blot has a calibrator lane (a pooled reference lysate, 20 ug) and
eleven samples; blot B1 also carries a calibrator dilution series (5, 10, 20, 40 ug).
Every blot is probed for p-mTOR (Ser2448), total mTOR and GAPDH. Blots B1, B2 and B4
were stripped and re-probed for mTOR, so their mTOR images are a few pixels shifted
and turned; blot B3 was imaged in two colours (p-mTOR and mTOR in one two-channel TIFF).

Biology drawn into the bands: p-mTOR/mTOR rises about 2-fold by 30 min and is back at
baseline by 2 h (Li et al. 2010); total mTOR is flat; loading varies a little from lane
to lane (CV about 6%), which GAPDH follows.

Planted problems the report must flag:

* late collections: PFC-R03 (ketamine, planned 30 min) collected at 75 min, and
  PFC-R16 (ketamine, planned 60 min) collected at 140 min, when p-mTOR is expected
  back at baseline;
* a missing vehicle timepoint: no vehicle animals at 240 min;
* a saturated band: PFC-R05's p-mTOR band on blot B1 (a strong responder in an
  overloaded lane on an over-exposed image), which is also above the calibrator's
  linear range.

Run ``python sample_data/make_sample_study.py`` to regenerate (deterministic).
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from blotquant.output import atomic_write_bytes, atomic_write_text  # noqa: E402
from blotquant.synth import make_blot, save_blot  # noqa: E402

SHAPE = (360, 860)
TIMES = (15, 30, 60, 120, 240, 360)
BLOTS = ("B1", "B2", "B3", "B4")
P_MTOR_ROW, GAPDH_ROW = 0.25, 0.78  # band positions as fractions of the height (289 and 37 kDa)
# band_rows in pixels: the band row +- a margin for the re-probes' shift and turn.
P_MTOR_WINDOW = [round(P_MTOR_ROW * SHAPE[0]) - 26, round(P_MTOR_ROW * SHAPE[0]) + 28]
GAPDH_WINDOW = [round(GAPDH_ROW * SHAPE[0]) - 24, round(GAPDH_ROW * SHAPE[0]) + 26]
#: p-mTOR/mTOR fold change over vehicle after ketamine, by post-dose minute.
FOLD_CURVE = ((0, 1.0), (15, 1.4), (30, 2.0), (60, 1.6), (120, 1.1), (240, 1.0), (360, 1.0))
#: Planted late collections: (group, nominal minutes, replicate) -> real minutes.
LATE = {("ketamine", 30, 1): 75.0, ("ketamine", 60, 2): 140.0}
#: Planted saturated band: (group, nominal minutes, replicate); replicate 1 runs on blot B1.
SATURATED = ("ketamine", 60, 1)
DILUTIONS_UG = (40.0, 10.0, 5.0)  # extra calibrator lanes on blot B1 (lane 1 holds 20 ug)


def p_mtor_fold(minutes):
    """Expected fold change of p-mTOR/mTOR at a real post-dose time."""
    times, folds = zip(*FOLD_CURVE)
    return float(np.interp(minutes, times, folds))


def design_samples(rng):
    """The sample sheet rows: 4 animals per group and time, no vehicle at 240 min."""
    rows = []
    day = datetime(2024, 3, 5, 8, 30)
    subject = 0
    for replicate in range(len(BLOTS)):
        for minutes in TIMES:
            for group in ("ketamine", "vehicle"):
                if group == "vehicle" and minutes == 240:
                    continue  # planted: the vehicle 240-min animals were never run
                subject += 1
                name = f"R{subject:02d}"
                dose_start = day + timedelta(minutes=12 * (subject - 1))
                key = (group, minutes, replicate + 1)
                real = LATE.get(key, minutes + rng.uniform(-2.0, 2.5))
                rows.append({
                    "sample_id": f"PFC-{name}", "subject": name, "group": group,
                    "dose_mg_kg": 10 if group == "ketamine" else 0,
                    "dose_start": dose_start.isoformat(timespec="seconds"),
                    "collected_at": (dose_start + timedelta(minutes=real)).isoformat(timespec="seconds"),
                    "infusion_min": 0, "nominal_min": minutes, "region": "PFC", "sex": "M",
                    "replicate": replicate + 1, "real_min": real, "saturated": key == SATURATED,
                })
    return rows


def blot_lanes(samples):
    """layout rows: per blot, calibrator, the replicate's 11 samples, then dilutions or an empty lane."""
    layout = []
    for number, blot in enumerate(BLOTS, start=1):
        members = [s for s in samples if s["replicate"] == number]
        members.sort(key=lambda s: (s["nominal_min"], s["group"]))
        lanes = [("calibrator", 20.0)] + [(s["sample_id"], 20.0) for s in members]
        lanes += [("calibrator", load) for load in DILUTIONS_UG] if blot == "B1" else [("empty", "")]
        for lane, (sample_id, load) in enumerate(lanes, start=1):
            layout.append({"blot": blot, "lane": lane, "sample_id": sample_id,
                           "load_ug": f"{load:g}" if load != "" else ""})
    return layout


def lane_amounts(layout_of_blot, samples_by_id, rng):
    """Relative amounts of GAPDH, total mTOR and p-mTOR in each lane of one blot."""
    gapdh, mtor, p_mtor = [], [], []
    for lane in layout_of_blot:
        kind = lane["sample_id"]
        if kind == "empty":
            gapdh.append(0.0), mtor.append(0.0), p_mtor.append(0.0)
            continue
        if kind == "calibrator":
            load = float(lane["load_ug"]) / 20.0
            level, ratio = 1.0, 1.0  # the pool: average mTOR and p-mTOR/mTOR
        else:
            sample = samples_by_id[kind]
            load = rng.lognormal(0.0, 0.06)
            level = rng.lognormal(0.0, 0.08)
            fold = p_mtor_fold(sample["real_min"]) if sample["group"] == "ketamine" else 1.0
            ratio = fold * rng.lognormal(0.0, 0.12)
            if sample["saturated"]:
                load, level, ratio = 1.35, 1.1, 2.4  # an overloaded lane of a strong responder
        gapdh.append(load * rng.lognormal(0.0, 0.03))
        mtor.append(load * level)
        p_mtor.append(load * level * ratio)
    return np.array(gapdh), np.array(mtor), np.array(p_mtor)


def shifted(image, dy, dx):
    """The image moved by whole pixels, edges repeated (a membrane placed slightly off)."""
    return np.pad(image, ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))), mode="edge")[
        max(-dy, 0): max(-dy, 0) + image.shape[0], max(-dx, 0): max(-dx, 0) + image.shape[1]]


def render_blot(blot, amounts, seed):
    """Draw the three images of one blot; returns {name: SyntheticBlot or array}."""
    gapdh, mtor, p_mtor = amounts
    n_lanes = len(gapdh)
    common = dict(shape=SHAPE, n_lanes=n_lanes, lane_margin=0.04, seed=seed, smile=0.006,
                  background="blotchy", smear=0.04, bit_depth=16)
    tilt = {"B1": 0.3, "B2": -0.4, "B3": 0.2, "B4": -0.2}[blot]
    images = {
        "GAPDH": make_blot(band_rows=((GAPDH_ROW, 1.0),), amounts=gapdh, peak=0.55, rotation_deg=tilt,
                           **common),
    }
    saturate = blot == "B1"
    p_image = make_blot(band_rows=((P_MTOR_ROW, 1.0),), amounts=p_mtor, rotation_deg=tilt,
                        saturate=saturate, peak=1.12 if saturate else 0.45, dust=3 if blot == "B2" else 0,
                        marks=blot == "B4", **common)
    if blot == "B3":
        # Two-colour fluorescence: both antibodies on the membrane at once, one scan, two channels.
        m_image = make_blot(band_rows=((P_MTOR_ROW, 1.0),), amounts=mtor, rotation_deg=tilt, peak=0.5, **common)
        images["p-mTOR+mTOR"] = np.stack([p_image.image, m_image.image])
        images["_truth"] = p_image
        return images
    # Stripped and re-probed: the membrane went back on the imager a little off.
    turn, dy, dx = {"B1": (0.8, 5, -8), "B2": (-0.6, -4, 6), "B4": (0.4, 2, 3)}[blot]
    m_image = make_blot(band_rows=((P_MTOR_ROW, 1.0),), amounts=mtor, rotation_deg=tilt + turn, peak=0.5,
                        **common)
    m_image.image = shifted(m_image.image, dy, dx)
    images["p-mTOR"] = p_image
    images["mTOR"] = m_image
    images["_truth"] = p_image
    return images


def write_csv(path, rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


STUDY_TOML = """\
# Example study: does ketamine activate mTOR signalling in rat prefrontal cortex, and when?
name = "Ketamine and p-mTOR in rat PFC (blotquant example)"
description = "Ketamine 10 mg/kg i.p. vs saline; PFC lysates at 15 min to 6 h; p-mTOR (Ser2448), mTOR, GAPDH."
time_reference = "dose_start"   # bolus injections: minutes count from the injection
control_group = "vehicle"
samples = "samples.csv"
layout = "layout.csv"

[statistics]
p_adjust = "holm"

{images}
"""

IMAGE_TOML = """\
[[image]]
file = "{file}"
blot = "{blot}"
target = "{target}"
role = "{role}"
band_rows = [{top}, {bottom}]
"""


def main():
    rng = np.random.default_rng(20240305)
    samples = design_samples(rng)
    samples_by_id = {s["sample_id"]: s for s in samples}
    layout = blot_lanes(samples)
    image_entries = []
    saturated = []
    for index, blot in enumerate(BLOTS):
        rows = [lane for lane in layout if lane["blot"] == blot]
        images = render_blot(blot, lane_amounts(rows, samples_by_id, rng), seed=100 + index)
        truth = images.pop("_truth")
        saturated += [(blot, int(lane)) for lane in truth.truth_bands.loc[truth.truth_bands["saturated"], "lane"]]
        for name, image in images.items():
            file = f"{blot}_{name.replace('+', '_')}.tif"
            if isinstance(image, np.ndarray):
                buffer = io.BytesIO()
                tifffile.imwrite(buffer, image, compression="zlib")
                atomic_write_bytes(HERE / file, buffer.getvalue())
            else:
                save_blot(image, HERE / file)
            window = GAPDH_WINDOW if name == "GAPDH" else P_MTOR_WINDOW
            if name == "p-mTOR+mTOR":
                image_entries.append(dict(file=file, blot=blot, target="p-mTOR", role="target",
                                          window=window, total="mTOR", channel=0))
                image_entries.append(dict(file=file, blot=blot, target="mTOR", role="total",
                                          window=window, channel=1))
            else:
                role = {"GAPDH": "loading_control", "p-mTOR": "target", "mTOR": "total"}[name]
                image_entries.append(dict(file=file, blot=blot, target=name, role=role, window=window,
                                          total="mTOR" if name == "p-mTOR" else None))
    saturated_id = next(s["sample_id"] for s in samples if s["saturated"])
    expected = [("B1", next(lane["lane"] for lane in layout if lane["sample_id"] == saturated_id))]
    if saturated != expected:
        raise SystemExit(f"saturation planted wrongly: saturated bands {saturated}, expected {expected}")

    blocks = []
    for entry in image_entries:
        block = IMAGE_TOML.format(file=entry["file"], blot=entry["blot"], target=entry["target"],
                                  role=entry["role"], top=entry["window"][0], bottom=entry["window"][1])
        if entry.get("total"):
            block += f"total = \"{entry['total']}\"\n"
        if entry.get("channel") is not None:
            block += f"channel = {entry['channel']}\n"
        blocks.append(block)
    atomic_write_text(HERE / "study.toml", STUDY_TOML.format(images="\n".join(blocks)))
    write_csv(HERE / "samples.csv", samples,
              ["sample_id", "subject", "group", "dose_mg_kg", "dose_start", "collected_at", "infusion_min",
               "nominal_min", "region", "sex"])
    write_csv(HERE / "layout.csv", layout, ["blot", "lane", "sample_id", "load_ug"])
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.is_file())
    print(f"wrote {len(image_entries)} image entries, {len(samples)} samples, {len(layout)} lanes; "
          f"folder size {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
