"""Hostile input and faults (issue 9): each promise reproduced from a recipe built here.

Non-finite and vanishing pixels, clashing input names, a worker killed
mid-batch, and settings that cannot be right.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

import blotquant.batch as batch
from blotquant.cli import main
from blotquant.synth import make_blot, save_blot


@pytest.fixture(scope="module")
def float_blot(tmp_path_factory):
    """A synthetic blot saved as float32, as some analysis exports are."""
    blot = make_blot(shape=(300, 480), n_lanes=6, seed=3)
    return blot.image.astype(np.float32)


def _quantify(tmp_path, name, image, *extra):
    path = tmp_path / name
    tifffile.imwrite(path, image)
    out = tmp_path / f"out_{name}"
    code = main(["quantify", str(path), "--out", str(out), "--lanes", "6", "--no-overlay", *extra])
    return code, out


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_one_non_finite_pixel_changes_nothing_else(float_blot, tmp_path, capsys, bad_value):
    code, out = _quantify(tmp_path, "clean.tif", float_blot)
    assert code == 0
    clean = pd.read_csv(out / "bands.csv")
    damaged = float_blot.copy()
    damaged[5, 7] = bad_value  # in the margin, away from every band
    code, out = _quantify(tmp_path, "damaged.tif", damaged)
    assert code == 0
    bands = pd.read_csv(out / "bands.csv")
    assert len(bands) == len(clean) > 0
    np.testing.assert_allclose(bands["volume"], clean["volume"], rtol=1e-9)
    assert "1 pixel(s) (0.00%) were NaN or infinite" in capsys.readouterr().err


def test_non_finite_pixel_inside_a_band_gives_a_finite_volume(float_blot, tmp_path):
    code, out = _quantify(tmp_path, "clean.tif", float_blot, "--band-rows", "100", "200")
    clean = pd.read_csv(out / "bands.csv")
    row = clean.iloc[0]
    damaged = float_blot.copy()
    damaged[int(row["y"]), int((row["x_left"] + row["x_right"]) / 2)] = np.nan
    code, out = _quantify(tmp_path, "damaged.tif", damaged, "--band-rows", "100", "200")
    assert code == 0
    bands = pd.read_csv(out / "bands.csv")
    assert np.isfinite(bands["volume"]).all()
    # One pixel of a band filled from its neighbour: the volume moves by far under 1 %.
    np.testing.assert_allclose(bands["volume"], clean["volume"], rtol=0.01)


@pytest.mark.parametrize("recipe", ["all_nan", "tiny"])
def test_images_without_usable_values_are_refused_in_one_line(float_blot, tmp_path, capsys, recipe):
    image = np.full_like(float_blot, np.nan) if recipe == "all_nan" else float_blot * np.float32(1e-30)
    code, out = _quantify(tmp_path, f"{recipe}.tif", image)
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failures = pd.read_csv(out / "failures.csv")
    assert len(failures) == 1 and f"{recipe}.tif" in failures["error"][0]
    assert ("no finite pixel" if recipe == "all_nan" else "below 1e-06") in failures["error"][0]


def test_inputs_sharing_a_name_keep_their_overlays_inside_out(tmp_path, monkeypatch):
    """day1/blot1.tif and day2/blot1.tif, and an input given as ../b/x.tif."""
    for day in ("day1", "day2", "b"):
        (tmp_path / "raw" / day).mkdir(parents=True)
    for seed, day in enumerate(("day1", "day2"), start=1):
        save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=seed), tmp_path / "raw" / day / "blot1.tif")
    save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=9), tmp_path / "raw" / "b" / "blot1.tif")
    # An overlay a person kept beside the raw data must not be touched.
    kept = tmp_path / "raw" / "day1" / "blot1.tif.overlay.png"
    kept.write_bytes(b"mine")
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path / "raw" / "day1")
    inputs = ["blot1.tif", str(tmp_path / "raw" / "day2" / "blot1.tif"), "../b/blot1.tif"]
    assert main(["quantify", *inputs, "--out", str(out), "--lanes", "4", "--jobs", "1"]) == 0
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert all(out in p.parents for p in written), sorted(map(str, written))
    assert kept.read_bytes() == b"mine"
    overlays = sorted(p.name for p in out.glob("*.overlay.png"))
    assert overlays == ["b__blot1.tif.overlay.png", "day1__blot1.tif.overlay.png", "day2__blot1.tif.overlay.png"]


def _dies_on_doomed(task):
    if "doomed" in task[0]:
        os._exit(9)  # as the out-of-memory killer would end a worker
    return _real_quantify_one(task)


_real_quantify_one = batch._quantify_one


def test_a_killed_worker_costs_only_the_unfinished_images(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "blots"
    folder.mkdir()
    for seed in (1, 2):
        save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=seed), folder / f"a{seed}.tif")
    save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=3), folder / "doomed.tif")
    # Workers are forked, so they run the patched function.
    monkeypatch.setattr(batch, "_quantify_one", _dies_on_doomed)
    out = tmp_path / "out"
    code = main(["quantify", str(folder), "--out", str(out), "--lanes", "4", "--jobs", "2", "--no-overlay"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "worker process quantifying it died" in err
    failures = pd.read_csv(out / "failures.csv")
    assert any("doomed.tif" in error for error in failures["error"])
    # Every image is accounted for: finished ones have bands, the rest are failures.
    bands = pd.read_csv(out / "bands.csv")
    assert set(bands["image"]) | {os.path.basename(f) for f in failures["file"]} == {"a1.tif", "a2.tif", "doomed.tif"}


@pytest.mark.parametrize("arguments, message", [
    (["--out", ""], "--out is empty"),
    (["--out", "OUT", "--lanes", "100000"], "--lanes must be between 1 and 500"),
    (["--out", "OUT", "--lanes", "0"], "--lanes must be between 1 and 500"),
    (["--out", "OUT", "--jobs", "0"], "--jobs must be 1 or more"),
    (["--out", "FILE/under"], "cannot create the results folder"),
])
def test_settings_that_cannot_be_right_are_refused(tmp_path, capsys, monkeypatch, arguments, message):
    image = tmp_path / "blot.tif"
    save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=1), image)
    (tmp_path / "FILE").write_text("a file, not a folder")
    arguments = [str(tmp_path / a) if a.startswith(("OUT", "FILE")) else a for a in arguments]
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["quantify", str(image), *arguments]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_lane_count_too_large_for_the_image_is_refused():
    from blotquant.errors import ParameterError
    from blotquant.lanes import detect_lanes

    with pytest.raises(ParameterError, match="cannot fit an image 90 px wide"):
        detect_lanes(np.random.default_rng(0).random((60, 90)), n_lanes=31)


def test_a_live_run_holds_its_results_folder(tmp_path, capsys):
    """A second run into a folder that a live run is writing is refused; a dead run's lock is taken over."""
    from blotquant.output import LOCK_FILE_NAME

    image = tmp_path / "blot.tif"
    save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=1), image)
    out = tmp_path / "out"
    out.mkdir()
    lock = out / LOCK_FILE_NAME
    lock.write_text(f"{socket.gethostname()} {os.getppid()}\n")  # a live process: the test runner's parent
    assert main(["quantify", str(image), "--out", str(out), "--lanes", "4", "--no-overlay"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another blotquant run is writing into this folder" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE_NAME]
    # The owner was killed: its lock is stale and the next run takes the folder.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{socket.gethostname()} {dead.pid}\n")
    assert main(["quantify", str(image), "--out", str(out), "--lanes", "4", "--no-overlay"]) == 0
    assert not lock.exists() and (out / "bands.csv").exists()


def test_two_runs_into_one_new_folder_never_both_succeed(tmp_path):
    image = tmp_path / "blot.tif"
    save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=1), image)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "blotquant.cli", "quantify", str(image), "--out", str(out), "--lanes", "4"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "Traceback" not in refused and ("another blotquant run" in refused or "already holds results" in refused)


def test_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path):
    """An image named like a formula is written with a leading apostrophe; numbers stay numbers."""
    from blotquant.output import write_table

    image = tmp_path / "=HYPERLINK(1).tif"
    save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=1), image)
    out = tmp_path / "out"
    assert main(["quantify", str(image), "--out", str(out), "--lanes", "4", "--no-overlay"]) == 0
    text = (out / "bands.csv").read_text()
    assert "\n'=HYPERLINK(1).tif," in text and "\n=HYPERLINK" not in text
    table = pd.DataFrame({"sample": ["@SUM(A1)", "+1", "-x", "ok", "\tTAB"], "value": [-1.5, 2.0, -3.0, 4.0, 5.0]})
    write_table(table, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["sample"].tolist() == ["'@SUM(A1)", "'+1", "'-x", "ok", "'\tTAB"]
    assert back["value"].tolist() == [-1.5, 2.0, -3.0, 4.0, 5.0]
    assert table["sample"][0] == "@SUM(A1)"  # the caller's table is untouched


def test_force_leaves_nothing_of_the_replaced_run(tmp_path):
    """--force: the old run's failures.csv and overlays go; a file a person put there stays."""
    folder = tmp_path / "blots"
    folder.mkdir()
    save_blot(make_blot(shape=(240, 360), n_lanes=4, seed=1), folder / "good.tif")
    (folder / "broken.tif").write_bytes(b"not a tiff")
    out = tmp_path / "out"
    assert main(["quantify", str(folder), "--out", str(out), "--lanes", "4", "--jobs", "1"]) == 2
    assert (out / "failures.csv").exists() and (out / "good.tif.overlay.png").exists()
    (out / "my_notes.txt").write_text("mine")
    (folder / "broken.tif").unlink()
    (folder / "good.tif").rename(folder / "renamed.tif")
    assert main(["quantify", str(folder), "--out", str(out), "--lanes", "4", "--jobs", "1", "--force"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bands.csv", "lanes.csv", "marks.csv", "my_notes.txt", "renamed.tif.overlay.png", "run.json"]


def test_slivers_are_refused_and_tall_overlays_stay_small(tmp_path, capsys):
    """A 2 x 1000 px image is refused in one line; a tall thin blot's overlay has a bounded canvas."""
    from PIL import Image

    sliver = tmp_path / "sliver.tif"
    tifffile.imwrite(sliver, np.random.default_rng(0).integers(0, 60000, (1000, 2), dtype=np.uint16))
    code = main(["quantify", str(sliver), "--out", str(tmp_path / "a")])
    assert code == 2
    assert "the image is 2 x 1000 px; a blot needs at least 16 px" in capsys.readouterr().err
    tall = make_blot(shape=(1600, 120), n_lanes=1, seed=2)
    save_blot(tall, tmp_path / "tall.tif")
    assert main(["quantify", str(tmp_path / "tall.tif"), "--out", str(tmp_path / "b"), "--lanes", "1"]) == 0
    with Image.open(tmp_path / "b" / "tall.tif.overlay.png") as overlay:
        assert max(overlay.size) <= 16.5 * 150


def test_a_study_holds_its_results_folder_too(tmp_path, capsys):
    from pathlib import Path

    from blotquant.output import LOCK_FILE_NAME

    out = tmp_path / "study_out"
    out.mkdir()
    (out / LOCK_FILE_NAME).write_text(f"{socket.gethostname()} {os.getppid()}\n")
    study = Path(__file__).resolve().parents[1] / "sample_data" / "study.toml"
    assert main(["study", str(study), "--out", str(out)]) == 2
    assert "another blotquant run is writing into this folder" in capsys.readouterr().err


def test_a_tiff_of_thousands_of_pages_is_refused_before_it_is_read(tmp_path, capsys):
    """2 000 small pages: refused in one line from the page count, without sorting the pages into series.

    Before, 10 000 pages of 64 x 64 took 8 s to read and became 10 000 channels.
    """
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as writer:
        for index in range(2000):
            writer.write(np.full((32, 32), index % 7, np.uint16), contiguous=False)
    code = main(["quantify", str(path), "--out", str(tmp_path / "out")])
    assert code == 2
    message = capsys.readouterr().err
    assert "the TIFF file holds 2000 pages; a blot has at most 64" in message
    assert "Traceback" not in message


def test_a_tiff_with_a_few_pages_is_still_read_as_channels(tmp_path):
    path = tmp_path / "two.tif"
    blot = make_blot(shape=(300, 400), n_lanes=4, seed=3)
    with tifffile.TiffWriter(path) as writer:
        for _ in range(2):
            writer.write(blot.image, contiguous=False)
    from blotquant.io import read_image

    assert len(read_image(path).channel_names) == 2


@pytest.mark.parametrize("link", ["plots", "overlays"])
def test_a_symlinked_subfolder_cannot_carry_a_study_outside_its_folder(tmp_path, capsys, link):
    """A `plots` or `overlays` link in the results folder is refused before any image is quantified."""
    from pathlib import Path

    from blotquant.output import LOCK_FILE_NAME

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "study_out"
    out.mkdir()
    (out / link).symlink_to(elsewhere, target_is_directory=True)
    study = Path(__file__).resolve().parents[1] / "sample_data" / "study.toml"
    assert main(["study", str(study), "--out", str(out), "--force"]) == 2
    message = capsys.readouterr().err
    assert f"{out / link}: is a symbolic link" in message
    assert "Traceback" not in message
    assert list(elsewhere.iterdir()) == []
    assert not (out / LOCK_FILE_NAME).exists()


def test_file_names_that_are_not_utf8_are_written_escaped(tmp_path, capsys):
    """A file name with bytes that are not UTF-8: quantified, its name written as \\xNN in valid UTF-8 files.

    Before, writing the tables raised UnicodeEncodeError (a traceback) and the
    overlay's title crashed matplotlib.
    """
    folder = tmp_path / "images"
    folder.mkdir()
    blot = make_blot(shape=(200, 300), n_lanes=4, seed=1)
    save_blot(blot, folder / "good.tif")
    try:
        os.rename(os.fsencode(folder / "good.tif"), os.fsencode(folder) + b"/blot\xff.tif")
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    (folder / "bad.tif").write_bytes(b"II*\x00garbage")
    os.rename(os.fsencode(folder / "bad.tif"), os.fsencode(folder) + b"/bad\xfe.tif")
    out = tmp_path / "out"
    code = main(["quantify", str(folder), "--out", str(out), "--lanes", "4"])
    err = capsys.readouterr().err
    assert code == 2  # the bad file
    assert "Traceback" not in err
    bands = (out / "bands.csv").read_bytes().decode("utf-8")  # strict: the file is valid UTF-8
    assert "blot\\xff.tif" in bands
    failures = (out / "failures.csv").read_bytes().decode("utf-8")
    assert "bad\\xfe.tif" in failures
    (out / "run.json").read_bytes().decode("utf-8")
    assert len(list(out.glob("*.overlay.png"))) == 1


def test_a_full_disk_is_one_line_and_keeps_the_earlier_file(tmp_path, capsys, monkeypatch):
    """ENOSPC while writing results: exit 2, one line naming the file, no temporary file left,
    and the file an earlier run wrote is unchanged."""
    import errno

    import blotquant.output as output

    blot = make_blot(shape=(200, 300), n_lanes=4, seed=1)
    save_blot(blot, tmp_path / "blot.tif")
    out = tmp_path / "out"
    assert main(["quantify", str(tmp_path / "blot.tif"), "--out", str(out), "--lanes", "4"]) == 0
    before = (out / "bands.csv").read_bytes()
    capsys.readouterr()

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output.os, "fsync", full_disk)
    code = main(["quantify", str(tmp_path / "blot.tif"), "--out", str(out), "--lanes", "4", "--force"])
    err = capsys.readouterr().err
    assert code == 2
    assert "could not be written (No space left on device)" in err
    assert "Traceback" not in err
    assert (out / "bands.csv").read_bytes() == before
    assert not list(out.glob(".*.tmp"))
