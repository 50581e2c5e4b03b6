"""Seeded fuzzing: damaged images and damaged study files never give a traceback.

Every case is a valid input damaged at random (seeded, so a failure is
reproducible): truncated, bytes overwritten in the header or anywhere, a span
zeroed; for studies, the sample sheet, layout or study file with cells,
characters or lines removed, duplicated or replaced. The command line must
answer each with exit code 0 (the damage spared what matters) or 2 and one
line per problem that starts with ``blotquant:``, never a traceback, and
must never leave a half-written results folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from blotquant.cli import main
from blotquant.synth import make_blot

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
SEED = 20261203


def _valid_files(folder):
    """Small valid images of every kind the reader takes."""
    blot = make_blot(shape=(160, 240), n_lanes=4, seed=11)
    image16 = blot.image.astype(np.uint16)
    image8 = (image16 >> 8).astype(np.uint8)
    files = {}
    files["16bit.tif"] = folder / "16bit.tif"
    tifffile.imwrite(files["16bit.tif"], image16)
    files["zlib.tif"] = folder / "zlib.tif"
    tifffile.imwrite(files["zlib.tif"], image16, compression="zlib")
    files["pages.tif"] = folder / "pages.tif"
    with tifffile.TiffWriter(files["pages.tif"]) as writer:
        writer.write(image16, contiguous=False)
        writer.write(image16[::-1].copy(), contiguous=False)
    files["float.tif"] = folder / "float.tif"
    tifffile.imwrite(files["float.tif"], image16.astype(np.float32) / 65535)
    files["8bit.png"] = folder / "8bit.png"
    Image.fromarray(image8).save(files["8bit.png"])
    files["16bit.png"] = folder / "16bit.png"
    Image.fromarray(image16).save(files["16bit.png"])
    files["photo.jpg"] = folder / "photo.jpg"
    Image.fromarray(image8).convert("RGB").save(files["photo.jpg"], quality=90)
    return files


def _damage(data, rng):
    """One random kind of damage to a file's bytes."""
    damaged = bytearray(data)
    kind = int(rng.integers(0, 4))
    if kind == 0:  # truncated
        return bytes(damaged[: int(rng.integers(1, len(damaged)))])
    if kind == 1:  # header bytes overwritten
        for _ in range(int(rng.integers(1, 12))):
            damaged[int(rng.integers(0, min(len(damaged), 512)))] = int(rng.integers(0, 256))
        return bytes(damaged)
    if kind == 2:  # bytes anywhere overwritten
        for _ in range(int(rng.integers(1, 200))):
            damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
        return bytes(damaged)
    start = int(rng.integers(0, len(damaged)))  # a span zeroed
    stop = min(len(damaged), start + int(rng.integers(1, 4096)))
    damaged[start:stop] = bytes(stop - start)
    return bytes(damaged)


def _assert_clean_answer(code, err, out_dir):
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err, err
    for line in err.strip().splitlines():
        assert line.startswith("blotquant:") or line.startswith("  "), err
    if code == 2 and out_dir.exists():
        # Whatever was written is whole: no temporary files left behind.
        assert not [p for p in out_dir.rglob("*") if p.name.startswith(".") and p.suffix == ".tmp"]


@pytest.mark.parametrize("round_", range(3))
def test_damaged_images_fail_in_one_line(tmp_path, capsys, round_):
    """7 formats x 3 rounds x 2 damages: exit 0 or 2, one line each, never a traceback."""
    rng = np.random.default_rng([SEED, round_])
    originals = _valid_files(tmp_path)
    for name, path in originals.items():
        data = path.read_bytes()
        for attempt in range(2):
            damaged = tmp_path / f"damaged_{round_}_{attempt}_{name}"
            damaged.write_bytes(_damage(data, rng))
            out_dir = tmp_path / f"out_{round_}_{attempt}_{name}"
            code = main(["quantify", str(damaged), "--out", str(out_dir), "--no-overlay", "--jobs", "1"])
            _assert_clean_answer(code, capsys.readouterr().err, out_dir)


def _damage_text(text, rng):
    """One random kind of damage to a CSV or TOML file's text."""
    lines = text.splitlines(keepends=True)
    kind = int(rng.integers(0, 6))
    if kind == 0 and len(lines) > 1:  # a line removed
        del lines[int(rng.integers(0, len(lines)))]
    elif kind == 1:  # a line duplicated
        index = int(rng.integers(0, len(lines)))
        lines.insert(index, lines[index])
    elif kind == 2:  # a cell emptied or replaced by garbage
        index = int(rng.integers(0, len(lines)))
        cells = lines[index].rstrip("\n").split(",")
        cells[int(rng.integers(0, len(cells)))] = rng.choice(["", "NaN", "-1", "x\"y", "2024-13-45T99:00", "1e400"])
        lines[index] = ",".join(cells) + "\n"
    elif kind == 3:  # characters deleted
        joined = "".join(lines)
        start = int(rng.integers(0, len(joined)))
        return joined[:start] + joined[start + int(rng.integers(1, 40)) :]
    elif kind == 4:  # truncated
        joined = "".join(lines)
        return joined[: int(rng.integers(0, len(joined)))]
    else:  # a non-UTF-8 byte sequence's worth of text
        joined = "".join(lines)
        position = int(rng.integers(0, len(joined)))
        return joined[:position] + "\udcff\udcfe" + joined[position:]
    return "".join(lines)


def test_damaged_study_files_fail_in_one_line(tmp_path, capsys):
    """The sample study with its samples, layout or study file damaged: exit 0 or 2, never a traceback.

    Damage that passes validation runs the whole study, so the cases are few
    and kept to the files that are read before any image is quantified.
    """
    rng = np.random.default_rng(SEED)
    for case in range(9):
        study = tmp_path / f"study_{case}"
        shutil.copytree(SAMPLE_DATA, study, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        target = study / ("samples.csv", "layout.csv", "study.toml")[case % 3]
        damaged = _damage_text(target.read_text(encoding="utf-8"), rng)
        target.write_bytes(damaged.encode("utf-8", errors="surrogateescape"))
        out_dir = tmp_path / f"out_{case}"
        code = main(["study", str(study / "study.toml"), "--out", str(out_dir), "--jobs", "1"])
        _assert_clean_answer(code, capsys.readouterr().err, out_dir)
