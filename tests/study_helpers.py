"""Builders of small study folders and hand-made band tables for the study tests."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_HEADER = ["sample_id", "subject", "group", "dose_mg_kg", "dose_start", "collected_at", "infusion_min",
                 "nominal_min"]

#: The three images of a typical p-mTOR blot: band volumes come from the lane's amounts.
PMTOR_IMAGES = (
    {"target": "GAPDH", "role": "loading_control"},
    {"target": "p-mTOR", "role": "target", "total": "mTOR"},
    {"target": "mTOR", "role": "total"},
)


def sample_rows(design, *, start=datetime(2024, 3, 5, 9, 0), late=None, infusion_min=0):
    """Sample sheet rows for ``design`` = [(group, nominal_min, n), ...].

    ``late`` maps sample_id to the real minutes at which it was collected; every other
    sample is collected exactly on time.
    """
    rows = []
    late = late or {}
    for group, minutes, n in design:
        for k in range(n):
            sample_id = f"{group[:3]}{int(minutes)}-{k + 1}"
            dose = start + timedelta(minutes=7 * len(rows))
            real = late.get(sample_id, minutes)
            rows.append({"sample_id": sample_id, "subject": f"S{len(rows) + 1}", "group": group,
                         "dose_mg_kg": 0 if group == "vehicle" else 10,
                         "dose_start": dose.isoformat(timespec="seconds"),
                         "collected_at": (dose + timedelta(minutes=infusion_min + real)).isoformat(timespec="seconds")
                         if real is not None else "",
                         "infusion_min": infusion_min, "nominal_min": minutes})
    return rows


def layout_rows(samples, *, blots=("B1",), calibrator=True, dilutions=()):
    """Lanes: per blot an optional calibrator lane 1, then its share of the samples, then dilutions."""
    rows = []
    per_blot = int(np.ceil(len(samples) / len(blots)))
    for b, blot in enumerate(blots):
        lanes = [("calibrator", 20)] if calibrator else []
        lanes += [(s["sample_id"], 20) for s in samples[b * per_blot:(b + 1) * per_blot]]
        lanes += [("calibrator", load) for load in dilutions] if b == 0 else []
        rows += [{"blot": blot, "lane": i, "sample_id": sid, "load_ug": load}
                 for i, (sid, load) in enumerate(lanes, start=1)]
    return rows


def write_csv(path, rows, header=None):
    header = header or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def toml_value(value):
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def write_study(folder, *, samples, layout, images=None, blots=None, settings=None, extra="", touch=True):
    """Write study.toml, samples.csv and layout.csv into ``folder``; returns the study file.

    ``images`` defaults to :data:`PMTOR_IMAGES` on every blot of the layout, each with
    ``band_rows = [10, 30]`` and an empty placeholder file (``touch``) so the study loads
    without real images.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "samples.csv", samples, header=list(samples[0]))
    write_csv(folder / "layout.csv", layout, header=list(layout[0]))
    blots = blots or list(dict.fromkeys(row["blot"] for row in layout))
    if images is None:
        images = [{"file": f"{blot}_{spec['target']}.tif", "blot": blot, "band_rows": [10, 30], **spec}
                  for blot in blots for spec in PMTOR_IMAGES]
    settings = {"name": "test study", "time_reference": "dose_start", "control_group": "vehicle",
                "samples": "samples.csv", "layout": "layout.csv", **(settings or {})}
    lines = [f"{key} = {toml_value(value)}" for key, value in settings.items() if value is not None]
    lines.append(extra)
    for image in images:
        lines.append("[[image]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in image.items()]
        if touch and not (folder / image["file"]).exists():
            (folder / image["file"]).write_bytes(b"")
    path = folder / "study.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def hand_bands(study, volume_of, **overrides):
    """One band per image and lane of ``study``, volume from ``volume_of(image, lane)``.

    ``image`` and ``lane`` are dicts (a row of ``study.images`` and of ``study.layout``);
    the other quantification columns get clean defaults that ``overrides`` may replace
    with ``{(file, blot, lane): {column: value}}``.
    """
    rows = []
    for image in study.images.to_dict("records"):
        for lane in study.layout[study.layout["blot"] == image["blot"]].to_dict("records"):
            row = {"file": image["file"], "blot": image["blot"], "target": image["target"],
                   "role": image["role"], "total_target": image["total_target"], "image": image["file"],
                   "channel": "gray", "strip": int(lane["strip"]), "lane": int(lane["lane"]), "band": 1,
                   "volume": float(volume_of(image, lane)), "background": 0.0, "snr": 200.0, "overlap": 0.02,
                   "saturated": False, "saturated_pixels": 0, "detected": True, "excluded": False,
                   "exclusion_reason": ""}
            row.update(overrides.get("lanes", {}).get((image["target"], image["blot"], int(lane["lane"])), {}))
            rows.append(row)
    return pd.DataFrame(rows)


def pmtor_volumes(fold_by_sample=None, load_by_sample=None, gapdh=1000.0, mtor=500.0, ratio=0.4):
    """A ``volume_of`` for :func:`hand_bands`: GAPDH and mTOR follow the load, p-mTOR also the fold."""
    fold_by_sample = fold_by_sample or {}
    load_by_sample = load_by_sample or {}

    def volume_of(image, lane):
        sample = lane["sample_id"]
        if sample == "empty":
            return 0.0
        load = float(lane["load_ug"]) / 20.0 if sample == "calibrator" else load_by_sample.get(sample, 1.0)
        fold = fold_by_sample.get(sample, 1.0)
        if image["target"] == "GAPDH":
            return gapdh * load
        if image["target"] == "mTOR":
            return mtor * load
        return mtor * ratio * fold * load

    return volume_of
