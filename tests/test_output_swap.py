"""A results folder holds one whole run (issue 9, item 8).

A run is written into a staging folder and replaces ``--out`` as a whole:
``--force`` leaves nothing of the replaced run, a run that fails leaves the
earlier one byte for byte, a killed run's leftovers neither block nor
corrupt the next run, and a file blotquant did not write is never lost.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import blotquant.batch as batch
import blotquant.output as output
from blotquant.cli import main
from blotquant.errors import OutputExistsError, OutputWriteError
from blotquant.output import LOCK_FILE_NAME
from blotquant.synth import make_blot, save_blot

SAMPLE_STUDY = Path(__file__).resolve().parent.parent / "sample_data" / "study.toml"


@pytest.fixture(params=["exchange", "renames", "inside"])
def mode(request, monkeypatch):
    """Each way a run takes the place of ``--out``: one exchange, two renames, or moved in from inside."""
    if request.param == "renames":
        monkeypatch.setattr(output, "_exchange", lambda first, second: False)
    elif request.param == "inside":
        # As for a mount point, the current folder or another user's folder.
        monkeypatch.setattr(output, "_can_swap", lambda real: False)
    return request.param


@pytest.fixture(scope="module")
def blots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blots")
    for seed in (1, 2):
        save_blot(make_blot(shape=(200, 300), n_lanes=4, seed=seed), folder / f"blot{seed}.tif")
    return folder


def _quantify(out, *images, extra=()):
    return main(["quantify", *map(str, images), "--out", str(out), "--lanes", "4", "--jobs", "1", *extra])


def _snapshot(folder):
    """Every file under ``folder``, as relative path -> bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(Path(folder).rglob("*"))
            if path.is_file()}


def _results_as_read(folder):
    """What a reader of ``folder`` sees, less the running blotquant's own lock and staging entries."""
    return {name: data for name, data in _snapshot(folder).items() if not name.startswith(".blotquant.")}


def _leftovers(out):
    """Staging, replaced or lock entries a run left beside or inside ``out``."""
    beside = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    inside = [p.name for p in out.iterdir() if p.name.startswith(".blotquant.")] if out.is_dir() else []
    return beside + inside


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_force_with_fewer_images_leaves_nothing_of_the_replaced_run(tmp_path, blots, mode):
    """No stale failures.csv, overlay of an image no longer given or study table; a person's files stay."""
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff")
    out = tmp_path / "out"
    assert _quantify(out, blots / "blot1.tif", blots / "blot2.tif", broken) == 2
    assert {"failures.csv", "blot1.tif.overlay.png", "blot2.tif.overlay.png"} <= set(os.listdir(out))
    (out / "notes.txt").write_text("mine")
    (out / "blot1.tif.review.json").write_text("{}")
    (out / "raw").mkdir()
    (out / "raw" / "scan.txt").write_text("raw")
    # Tables a study wrote here before, which a quantify run's run.json does not list.
    (out / "normalized.csv").write_text("old study")
    (out / "plots").mkdir()
    (out / "plots" / "timecourse_X.png").write_bytes(b"old study")

    assert _quantify(out, blots / "blot1.tif", extra=["--force"]) == 0
    assert sorted(os.listdir(out)) == ["bands.csv", "blot1.tif.overlay.png", "blot1.tif.review.json",
                                       "lanes.csv", "marks.csv", "notes.txt", "raw", "run.json"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "raw" / "scan.txt").read_text() == "raw"
    assert set(pd.read_csv(out / "bands.csv")["image"]) == {"blot1.tif"}
    assert _leftovers(out) == []


def test_a_run_that_fails_midway_leaves_the_earlier_run_byte_identical(tmp_path, blots, monkeypatch, capsys, mode):
    out = tmp_path / "out"
    assert _quantify(out, blots / "blot1.tif", blots / "blot2.tif") == 0
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    written = batch.write_table

    def fails_after_bands(table, path):
        written(table, path)
        if Path(path).name == "bands.csv":
            # Mid-run, a reader of --out still sees the earlier run, whole.
            assert _results_as_read(out) == before
            raise OutputWriteError(f"{output._shown(path.with_name('lanes.csv'))}: could not be written (test)")

    monkeypatch.setattr(batch, "write_table", fails_after_bands)
    capsys.readouterr()
    assert _quantify(out, blots / "blot1.tif", extra=["--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"blotquant: error: {out / 'lanes.csv'}: could not be written (test)"]
    assert _snapshot(out) == before
    assert _leftovers(out) == []


def test_write_errors_name_the_results_folder_not_the_staging_folder(tmp_path, blots, monkeypatch, capsys, mode):
    import errno

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output.os, "fsync", full_disk)
    out = tmp_path / "out"
    assert _quantify(out, blots / "blot1.tif", extra=["--no-overlay"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'bands.csv'}: could not be written (No space left on device)" in err
    assert "staging" not in err
    assert os.listdir(out) == [] and _leftovers(out) == []


def test_a_killed_run_neither_blocks_nor_corrupts_the_next(tmp_path, blots):
    """A dead run's staging folder (half a table, a note on its way across) and lock are cleaned up."""
    out = tmp_path / "out"
    assert _quantify(out, blots / "blot1.tif", blots / "blot2.tif") == 0
    dead = _dead_pid()
    # Killed while carrying a person's note into its staging folder, its lock still in --out.
    staging = tmp_path / f".out.staging-{dead}"
    staging.mkdir()
    (staging / LOCK_FILE_NAME).write_text(f"{socket.gethostname()} {dead}\n")
    (staging / "bands.csv").write_text("image,lane,vol")  # cut short
    (staging / ".lanes.csv.abc123_x.tmp").write_text("half")
    (staging / "notes.txt").write_text("mine")
    (out / LOCK_FILE_NAME).write_text(f"{socket.gethostname()} {dead}\n")

    assert _quantify(out, blots / "blot2.tif", extra=["--force"]) == 0
    assert sorted(os.listdir(out)) == ["bands.csv", "blot2.tif.overlay.png", "lanes.csv", "marks.csv", "notes.txt",
                                       "run.json"]
    assert (out / "notes.txt").read_text() == "mine"
    assert set(pd.read_csv(out / "bands.csv")["image"]) == {"blot2.tif"}
    assert _leftovers(out) == []


def test_a_swap_killed_between_its_two_renames_is_finished_by_the_next_run(tmp_path, blots, capsys):
    """--out gone, the earlier run renamed aside, the complete new run still staged: the new run is put in."""
    new, old = tmp_path / "new", tmp_path / "old"
    assert _quantify(new, blots / "blot2.tif") == 0
    assert _quantify(old, blots / "blot1.tif") == 0
    (old / "notes.txt").write_text("mine")
    staged = _snapshot(new)
    dead = _dead_pid()
    for folder, kind in ((new, "staging"), (old, "replaced")):
        (folder / LOCK_FILE_NAME).write_text(f"{socket.gethostname()} {dead}\n")
        folder.rename(tmp_path / f".out.{kind}-{dead}")
    out = tmp_path / "out"
    capsys.readouterr()
    # Without --force the next run is refused: the finished run is back in --out, and it is results.
    assert _quantify(out, blots / "blot1.tif") == 2
    assert "already holds results" in capsys.readouterr().err
    assert _snapshot(out) == {**staged, "notes.txt": b"mine"}
    assert _leftovers(out) == []


def test_a_run_moved_in_from_inside_is_finished_or_undone_after_a_kill(tmp_path, blots, monkeypatch):
    """Staged inside --out (a mount point, say), a kill mid-move is undone or finished by the next run."""
    monkeypatch.setattr(output, "_can_swap", lambda real: False)
    out = tmp_path / "out"
    assert _quantify(out, blots / "blot1.tif") == 0
    before = _snapshot(out)
    dead = _dead_pid()
    staging, aside = out / f".blotquant.staging-{dead}", out / f".blotquant.replaced-{dead}"

    def killed_while_moving(moved_aside):
        staging.mkdir()
        (staging / LOCK_FILE_NAME).write_text(f"{socket.gethostname()} {dead}\n")
        (staging / "lanes.csv").write_text("new lanes")
        aside.mkdir()
        (out / "bands.csv").rename(aside / "bands.csv")
        if moved_aside:
            (aside / output._MOVED_ASIDE_MARK).touch()
            (out / "lanes.csv").rename(aside / "lanes.csv")
            (out / "bands.csv").write_text("new bands")

    class Failed(Exception):
        pass

    # Killed while moving the earlier run aside (no mark yet): undone, the earlier run is whole again.
    killed_while_moving(moved_aside=False)
    with pytest.raises(Failed):
        with output.locked_output_dir(out, force=True):
            assert _results_as_read(out) == before
            raise Failed
    assert _snapshot(out) == before and _leftovers(out) == []
    # Killed while moving the new run in (the mark is there): finished, the new run is whole.
    killed_while_moving(moved_aside=True)
    with pytest.raises(Failed):
        with output.locked_output_dir(out, force=True):
            assert (out / "bands.csv").read_text() == "new bands" and (out / "lanes.csv").read_text() == "new lanes"
            raise Failed
    assert (out / "lanes.csv").read_text() == "new lanes" and _leftovers(out) == []


def test_a_live_runs_staging_folder_is_left_alone(tmp_path, blots):
    out = tmp_path / "out"
    other = tmp_path / ".out.staging-1"
    other.mkdir()
    (other / LOCK_FILE_NAME).write_text(f"{socket.gethostname()} {os.getppid()}\n")  # alive: the runner's parent
    (other / "bands.csv").write_text("theirs")
    assert _quantify(out, blots / "blot1.tif") == 0
    assert (other / "bands.csv").read_text() == "theirs"


def test_a_persons_files_are_never_lost(tmp_path, blots, monkeypatch, mode):
    """Files in --out before a run, and ones saved into it while the run is writing, are all still there."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / ".hidden").write_text("hidden")
    (out / "plots").mkdir()
    (out / "plots" / "README.txt").write_text("about the plots")
    assert _quantify(out, blots / "blot1.tif") == 0  # only a person's files: not refused
    written, exchange = batch.write_json, output._exchange

    def saved_meanwhile(record, path):
        (out / "blot1.tif.review.json").write_text("{}")  # say, a lane review saved from napari
        written(record, path)

    def saved_at_the_swap(staging, out_dir):
        # The folder about to become --out already holds the person's files...
        assert (Path(staging) / "notes.txt").read_text() == "mine"
        assert (Path(staging) / "plots" / "README.txt").exists()
        # ...and one saved into the earlier folder in this very instant is not lost either.
        (out / "late.txt").write_text("late")
        return exchange(staging, out_dir)

    monkeypatch.setattr(batch, "write_json", saved_meanwhile)
    monkeypatch.setattr(output, "_exchange", saved_at_the_swap)
    assert _quantify(out, blots / "blot2.tif", extra=["--force"]) == 0
    names = sorted(p.name for p in out.iterdir())
    expected = [".hidden", "bands.csv", "blot1.tif.review.json", "blot2.tif.overlay.png", "lanes.csv",
                "marks.csv", "notes.txt", "plots", "run.json"]
    assert names == sorted(expected + (["late.txt"] if mode != "inside" else []))
    assert (out / "plots" / "README.txt").read_text() == "about the plots"
    assert _leftovers(out) == []


def test_a_folder_that_cannot_be_carried_across_makes_the_run_move_in_instead(tmp_path, blots, monkeypatch):
    """A read-only sub-folder of the user's cannot change parent: the new run's files move in around it."""
    import errno

    out = tmp_path / "out"
    assert _quantify(out, blots / "blot1.tif", blots / "blot2.tif") == 0
    (out / "raw").mkdir()
    (out / "raw" / "scan.txt").write_text("raw")
    (out / "notes.txt").write_text("mine")
    rename = os.rename

    def read_only_raw(source, destination):
        if Path(source).name == "raw" and ".staging-" in str(destination):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(source))
        rename(source, destination)

    monkeypatch.setattr(output.os, "rename", read_only_raw)
    assert _quantify(out, blots / "blot1.tif", extra=["--force"]) == 0
    assert sorted(os.listdir(out)) == ["bands.csv", "blot1.tif.overlay.png", "lanes.csv", "marks.csv", "notes.txt",
                                       "raw", "run.json"]
    assert (out / "raw" / "scan.txt").read_text() == "raw"
    assert set(pd.read_csv(out / "bands.csv")["image"]) == {"blot1.tif"}
    assert _leftovers(out) == []


@pytest.mark.parametrize("name, make", [("bands.csv", "folder"), ("plots", "file"), ("run.json", "link")])
def test_an_entry_blotquant_could_not_replace_is_refused_in_one_line(tmp_path, blots, capsys, name, make):
    out = tmp_path / "out"
    out.mkdir()
    target = out / name
    if make == "folder":
        target.mkdir()
    elif make == "file":
        target.write_text("a file")
    else:
        target.symlink_to(tmp_path / "elsewhere.json")
    assert _quantify(out, blots / "blot1.tif", extra=["--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"blotquant: error: {target}: is ")
    assert os.listdir(out) == [name] and _leftovers(out) == []


def test_a_study_results_folder_is_replaced_as_a_whole(tmp_path, capsys):
    """peaks.csv, linearity.csv, plots/ and overlays/ count as results, and nothing stale of them stays."""
    from blotquant.study import run_study

    out = tmp_path / "study_out"
    (out / "plots").mkdir(parents=True)
    (out / "overlays").mkdir()
    (out / "peaks.csv").write_text("old")
    (out / "linearity.csv").write_text("old")
    (out / "plots" / "timecourse_gone.png").write_bytes(b"old")
    (out / "plots" / "my_caption.txt").write_text("mine")
    (out / "overlays" / "B9_gone.overlay.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"\(linearity.csv, overlays/, peaks.csv, plots/\)"):
        run_study(SAMPLE_STUDY, out, jobs=2, progress=False, overlays=False)

    run_study(SAMPLE_STUDY, out, force=True, jobs=2, progress=False, overlays=False)
    assert not (out / "overlays").exists()  # this run drew none: the old overlays went with the old run
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "my_caption.txt", "timecourse_mTOR.png", "timecourse_mTOR.svg", "timecourse_p-mTOR.png",
        "timecourse_p-mTOR.svg"]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "peaks.csv").read_text() != "old" and (out / "linearity.csv").read_text() != "old"
    assert {"bands.csv", "normalized.csv", "timecourse.csv", "flags.csv", "run.json", "report.html"} <= set(
        os.listdir(out))
    assert "staging" not in (out / "run.json").read_text()
    assert _leftovers(out) == []
