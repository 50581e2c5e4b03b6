"""The command line: batch quantification, outputs, bad input, reviews."""

import json

import numpy as np
import pandas as pd
import pytest

from blotquant.cli import main
from blotquant.output import sha256_of_file
from blotquant.review import Review, load_review, review_path_for, save_review
from blotquant.synth import make_blot, save_blot


@pytest.fixture(scope="module")
def blot_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blots")
    for seed in (1, 2):
        save_blot(make_blot(shape=(400, 600), n_lanes=6, seed=seed), folder / f"blot{seed}.tif")
    return folder


def test_quantify_writes_tables_overlays_and_provenance(blot_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["quantify", str(blot_folder), "--out", str(out), "--lanes", "6", "--jobs", "2"]) == 0
    bands = pd.read_csv(out / "bands.csv")
    lanes = pd.read_csv(out / "lanes.csv")
    assert set(bands["image"]) == {"blot1.tif", "blot2.tif"}
    assert len(lanes) == 12
    assert (out / "blot1.tif.overlay.png").stat().st_size > 1000
    record = json.loads((out / "run.json").read_text())
    hashes = {item["image"]: item["sha256"] for item in record["inputs"]}
    assert hashes["blot1.tif"] == sha256_of_file(blot_folder / "blot1.tif")
    assert record["blotquant_version"]
    assert record["parameters"]["lanes"] == 6
    assert "2 image(s) quantified" in capsys.readouterr().out


def test_same_command_gives_same_numbers(blot_folder, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert main(["quantify", str(blot_folder / "blot1.tif"), "--out", str(out), "--no-overlay"]) == 0
    assert (first / "bands.csv").read_bytes() == (second / "bands.csv").read_bytes()


def test_existing_results_are_not_overwritten_without_force(blot_folder, tmp_path, capsys):
    out = tmp_path / "out"
    image = str(blot_folder / "blot1.tif")
    assert main(["quantify", image, "--out", str(out), "--no-overlay"]) == 0
    before = (out / "bands.csv").read_bytes()
    assert main(["quantify", image, "--out", str(out), "--no-overlay", "--lanes", "3"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "bands.csv").read_bytes() == before
    assert main(["quantify", image, "--out", str(out), "--no-overlay", "--force"]) == 0


def test_batch_goes_on_past_bad_files(blot_folder, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 20)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.tif"
    save_blot_array = np.zeros((50, 60), np.uint16)
    import tifffile

    tifffile.imwrite(blank, save_blot_array)
    out = tmp_path / "out"
    code = main(["quantify", str(blot_folder / "blot1.tif"), str(corrupt), str(empty), str(blank),
                 "--out", str(out), "--no-overlay", "--jobs", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failures = pd.read_csv(out / "failures.csv")
    assert len(failures) == 3
    for name in ("corrupt.tif", "empty.png", "blank.tif"):
        assert failures["error"].str.contains(name).any()
        assert name in err
    assert set(pd.read_csv(out / "bands.csv")["image"]) == {"blot1.tif"}


def test_missing_file_and_huge_image_are_one_line_errors(tmp_path, capsys):
    assert main(["quantify", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err
    assert "nope.tif" in err and "Traceback" not in err
    image = tmp_path / "big.tif"
    save_blot(make_blot(shape=(300, 400), n_lanes=4, seed=1), image)
    assert main(["quantify", str(image), "--out", str(tmp_path / "o2"), "--max-pixels", "1000"]) == 2
    err = capsys.readouterr().err
    assert "max-pixels" in err or "BLOTQUANT_MAX_PIXELS" in err


def test_review_next_to_image_is_used_and_a_stale_one_refused(tmp_path, capsys):
    image = tmp_path / "blot.tif"
    save_blot(make_blot(shape=(400, 600), n_lanes=6, seed=3), image)
    auto = tmp_path / "auto"
    assert main(["quantify", str(image), "--out", str(auto), "--lanes", "6", "--no-overlay"]) == 0
    lanes = pd.read_csv(auto / "lanes.csv")
    reviewed_lanes = lanes[lanes["lane"] != 6][["strip", "lane", "x_left", "x_right", "y_top", "y_bottom", "slope"]]
    review = Review(image_name="blot.tif", image_sha256=sha256_of_file(image), reviewer="A. Tester",
                    lanes=reviewed_lanes.to_dict("records"),
                    exclusions=[{"strip": 1, "lane": 2, "band": None, "reason": "bubble"}])
    saved, previous = save_review(review, image)
    assert saved == review_path_for(image) and previous is None

    reviewed = tmp_path / "reviewed"
    assert main(["quantify", str(image), "--out", str(reviewed), "--no-overlay"]) == 0
    assert "using lane review" in capsys.readouterr().err
    bands = pd.read_csv(reviewed / "bands.csv")
    assert sorted(bands["lane"].unique()) == [1, 2, 3, 4, 5]
    assert bands.loc[bands["lane"] == 2, "excluded"].all()
    assert (bands.loc[bands["lane"] == 2, "exclusion_reason"] == "bubble").all()
    assert json.loads((reviewed / "run.json").read_text())["inputs"][0]["review"] == str(saved)

    # Saving again keeps the earlier review.
    _, previous = save_review(load_review(saved), image)
    assert previous is not None and previous.exists()

    # The image changes: the review no longer belongs to it.
    save_blot(make_blot(shape=(400, 600), n_lanes=6, seed=4), image)
    code = main(["quantify", str(image), "--out", str(tmp_path / "stale"), "--no-overlay"])
    assert code == 2
    assert "review" in capsys.readouterr().err.lower()


def test_lanes_from_an_earlier_run_can_be_given_back(blot_folder, tmp_path):
    first = tmp_path / "first"
    assert main(["quantify", str(blot_folder), "--out", str(first), "--lanes", "6", "--no-overlay"]) == 0
    lanes = pd.read_csv(first / "lanes.csv")
    # Drop lane 6 of blot2 only: the table's image column keeps each image's own lanes.
    lanes = lanes[~((lanes["image"] == "blot2.tif") & (lanes["lane"] == 6))]
    lanes.to_csv(tmp_path / "lanes.csv", index=False)
    second = tmp_path / "second"
    assert main(["quantify", str(blot_folder), "--out", str(second), "--no-overlay",
                 "--lane-geometry", str(tmp_path / "lanes.csv")]) == 0
    again = pd.read_csv(second / "lanes.csv")
    assert (again["source"] == "given").all()
    assert again.groupby("image").size().to_dict() == {"blot1.tif": 6, "blot2.tif": 5}
    before = pd.read_csv(first / "bands.csv").set_index(["image", "lane", "band"])["volume"]
    after = pd.read_csv(second / "bands.csv").set_index(["image", "lane", "band"])["volume"]
    shared = before.index.intersection(after.index)
    assert len(shared) >= 10
    assert np.allclose(before[shared], after[shared])
    record = json.loads((second / "run.json").read_text())
    assert record["parameters"]["lane_geometry"] == f"table of {len(lanes)} lanes"


def test_unreadable_lane_geometry_is_a_one_line_error(blot_folder, tmp_path, capsys):
    bad = tmp_path / "lanes.csv"
    bad.write_text("left,right\n1,2\n")
    code = main(["quantify", str(blot_folder), "--out", str(tmp_path / "out"), "--lane-geometry", str(bad)])
    assert code == 2
    assert "x_left" in capsys.readouterr().err


def test_a_one_image_run_imports_no_process_pool_progress_bar_or_plotting(blot_folder, tmp_path):
    import subprocess
    import sys

    # A one-image run works in this process: multiprocessing (which even a disabled
    # tqdm bar imports for its lock), matplotlib and scipy.stats are start-up it need not pay.
    code = ("import sys\n"
            "from blotquant.cli import main\n"
            "assert main(['quantify', sys.argv[1], '--out', sys.argv[2]]) == 0\n"
            "print(sorted(m for m in ('multiprocessing', 'concurrent.futures.process', 'tqdm', 'matplotlib',\n"
            "                         'scipy.stats', 'scipy.signal', 'scipy.interpolate') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code, str(blot_folder / "blot1.tif"), str(tmp_path / "out")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "bands.csv").exists()


def test_help_reads_no_package_metadata_and_the_version_is_the_installed_one():
    import importlib.metadata
    import subprocess
    import sys

    import blotquant

    # The version is written in the package (pyproject.toml reads it there): `--help` and
    # `--version` need not import importlib.metadata and email to look it up.
    code = ("import sys\n"
            "from blotquant.cli import main\n"
            "try:\n"
            "    main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('importlib.metadata' in sys.modules, 'email' in sys.modules, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == "False False"
    try:
        installed = importlib.metadata.version("blotquant")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("blotquant is not installed: no metadata to compare with")
    assert blotquant.__version__ == installed
