"""Batches and studies on a real Dask distributed cluster (two worker processes on loopback)."""

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pandas as pd
import pytest

from blotquant.batch import quantify_batch
from blotquant.cli import main
from blotquant.synth import make_blot, save_blot

distributed = pytest.importorskip("distributed")

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as local:
        with distributed.Client(local) as client:
            yield local, client


@pytest.fixture(scope="module")
def blot_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blots")
    for seed in range(1, 7):
        save_blot(make_blot(shape=(300, 480), n_lanes=6, seed=seed), folder / f"blot{seed}.tif")
    return folder


def tables(out):
    return {name: (out / name).read_bytes() for name in ("bands.csv", "lanes.csv")}


def test_a_cluster_run_writes_the_same_tables_as_a_local_run(cluster, blot_folder, tmp_path):
    _, client = cluster
    local, remote = tmp_path / "local", tmp_path / "remote"
    quantify_batch([blot_folder], local, jobs=2, progress=False, lanes=6)
    result = quantify_batch([blot_folder], remote, executor=client, progress=False, lanes=6)
    assert tables(local) == tables(remote)
    assert sorted(p.name for p in remote.glob("*.overlay.png")) == sorted(p.name for p in local.glob("*.overlay.png"))
    record = json.loads((remote / "run.json").read_text())
    assert record["executor"] == {"kind": "dask distributed", "scheduler": client.scheduler.address, "workers": 2}
    assert json.loads((local / "run.json").read_text())["executor"] == {"kind": "process pool", "workers": 2}
    assert result.failures.empty


def test_a_bad_file_on_the_cluster_is_a_failure_and_the_batch_goes_on(cluster, blot_folder, tmp_path):
    _, client = cluster
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 20)
    result = quantify_batch([blot_folder / "blot1.tif", corrupt, blot_folder / "blot2.tif"], tmp_path / "out",
                            executor=client, progress=False, lanes=6)
    assert result.failures["file"].tolist() == [str(corrupt)]
    assert set(result.bands["image"]) == {"blot1.tif", "blot2.tif"}
    assert (tmp_path / "out" / "failures.csv").exists()


def test_a_killed_worker_costs_nothing_its_images_are_retried(blot_folder, tmp_path):
    # A cluster of its own: a worker is killed (as the out-of-memory killer would) mid-batch.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as local, \
            distributed.Client(local) as client:
        pids = list(client.run(os.getpid).values())
        images = [blot_folder] * 3  # 18 images, so the kill lands while work is queued on both workers

        killed = threading.Event()

        def kill_one_worker():
            while not any(tmp_path.glob(".out*/*.overlay.png")) and not (tmp_path / "out").exists():
                threading.Event().wait(0.02)
            os.kill(pids[0], signal.SIGKILL)
            killed.set()

        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        result = quantify_batch(images, tmp_path / "out", executor=client, progress=False, lanes=6)
        assert killed.is_set()  # the kill fell inside the batch, not after it
        killer.join(timeout=30)
    assert result.failures.empty
    assert len(result.bands["image"].unique()) == 6 and len(result.lanes) == 18 * 6


def test_the_study_on_a_cluster_gives_the_local_numbers(cluster, tmp_path):
    _, client = cluster
    from blotquant.study import run_study

    study_dir = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study_dir, ignore=shutil.ignore_patterns("*.py"))
    local = run_study(study_dir / "study.toml", tmp_path / "local", progress=False, overlays=False, jobs=2)
    remote = run_study(study_dir / "study.toml", tmp_path / "remote", progress=False, overlays=False,
                       executor=client)
    for name in ("bands.csv", "normalized.csv", "timecourse.csv", "sensitivity.csv", "flags.csv"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "remote" / name).read_bytes(), name
    assert remote.executor["kind"] == "dask distributed" and local.executor["kind"] == "process pool"


def test_the_cli_takes_a_scheduler_address_from_the_option_or_the_environment(cluster, blot_folder, tmp_path,
                                                                              monkeypatch, capsys):
    local, _ = cluster
    out = tmp_path / "out"
    assert main(["quantify", str(blot_folder / "blot1.tif"), "--out", str(out), "--lanes", "6",
                 "--scheduler", local.scheduler_address]) == 0
    assert json.loads((out / "run.json").read_text())["executor"]["scheduler"] == local.scheduler_address
    monkeypatch.setenv("BLOTQUANT_SCHEDULER", local.scheduler_address)
    assert main(["study", str(SAMPLE_DATA / "study.toml"), "--out", str(tmp_path / "study")]) == 0
    assert json.loads((tmp_path / "study" / "run.json").read_text())["executor"]["workers"] == 2


def test_an_unreachable_scheduler_is_one_line_and_nothing_is_written(blot_folder, tmp_path, capsys, monkeypatch):
    import blotquant.executors

    monkeypatch.setattr(blotquant.executors, "CONNECT_TIMEOUT_S", 2)
    out = tmp_path / "out"
    code = main(["quantify", str(blot_folder / "blot1.tif"), "--out", str(out), "--scheduler",
                 "tcp://127.0.0.1:9", "--lanes", "6"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert pd.Series(list(tmp_path.iterdir())).empty
