"""A hostile study folder: user text must never become markup; bad images give clear errors."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from blotquant.errors import OutputExistsError, StudyError
from blotquant.report import escape, html_table
from blotquant.study import run_study
from blotquant.synth import make_blot, save_blot
from study_helpers import sample_rows, write_study

EVIL_ID = "<script>alert(1)</script>"
EVIL_NAME = '<img src=x onerror="alert(2)">'


def _tiny_study(folder, *, sample_id=EVIL_ID, name=EVIL_NAME, images=None):
    """One blot of 6 lanes (calibrator + 5 samples) drawn with the synthetic-blot generator."""
    samples = sample_rows([("vehicle", 30, 2), ("<i>drug</i>", 30, 3)])
    samples[2]["sample_id"] = sample_id
    layout = [{"blot": "B1", "lane": 1, "sample_id": "calibrator"}]
    layout += [{"blot": "B1", "lane": i + 2, "sample_id": s["sample_id"]} for i, s in enumerate(samples)]
    amounts = np.array([1.0, 1.0, 1.1, 2.0, 2.1, 1.9])
    folder.mkdir(parents=True, exist_ok=True)
    for target, amount, row in (("GAPDH", np.ones(6), 0.75), ("X&Y", amounts, 0.3)):
        blot = make_blot(shape=(200, 420), n_lanes=6, band_rows=((row, 1.0),), amounts=amount, seed=4)
        save_blot(blot, folder / f"{target}.tif")
    images = images or [
        {"file": "GAPDH.tif", "blot": "B1", "target": "GAPDH", "role": "loading_control", "band_rows": [130, 170]},
        {"file": "X&Y.tif", "blot": "B1", "target": "X&Y", "role": "target", "band_rows": [40, 80],
         "note": "<b>re-probed</b>"},
    ]
    return write_study(folder, samples=samples, layout=layout, images=images,
                       settings={"name": name, "description": "</p><script>alert(3)</script>"})


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    study_file = _tiny_study(folder / "study")
    result = run_study(study_file, folder / "out", jobs=1, progress=False, overlays=False)
    return result, (folder / "out" / "report.html").read_text(encoding="utf-8"), folder


def test_user_text_is_escaped_everywhere(hostile_run):
    result, html, _ = hostile_run
    assert EVIL_ID in set(result.normalized["sample_id"])  # the value itself is kept in the tables
    assert "<script" not in html.lower()
    assert "<img src=x" not in html and "<i>drug</i>" not in html and "<b>re-probed</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html  # study name in <h1> and <title>
    assert "&lt;i&gt;drug&lt;/i&gt;" in html
    assert "X&amp;Y" in html
    assert "default-src 'none'" in html and "http://" not in html and "https://" not in html


def test_output_folder_is_not_overwritten_without_force(hostile_run):
    _, _, folder = hostile_run
    with pytest.raises(OutputExistsError, match="--force"):
        run_study(folder / "study" / "study.toml", folder / "out", jobs=1, progress=False, overlays=False)
    again = run_study(folder / "study" / "study.toml", folder / "out", force=True, jobs=1, progress=False, overlays=False)
    assert again.out_dir == folder / "out"


def test_html_table_escapes_cells_headers_and_row_classes():
    table = pd.DataFrame({"<h>": ['"q" & <t>'], "n": [3], "x": [np.nan], "severity": ["warning\" onclick=\"x"]})
    text = html_table(table, row_class="severity")
    assert "<h>" not in text and "&lt;h&gt;" in text
    assert "&quot;q&quot; &amp; &lt;t&gt;" in text
    assert 'class="warning&quot; onclick=&quot;x"' in text
    assert '<td class="num">3</td>' in text and '<td class="num"></td>' in text
    assert escape(None) == "" and escape(float("nan")) == ""


def test_two_colour_image_needs_a_channel(tmp_path):
    study_file = _tiny_study(tmp_path, sample_id="s1", name="two colour")
    stack = np.stack([tifffile.imread(tmp_path / "X&Y.tif"), tifffile.imread(tmp_path / "GAPDH.tif")])
    tifffile.imwrite(tmp_path / "two.tif", stack, compression="zlib")
    images = [{"file": "two.tif", "blot": "B1", "target": "GAPDH", "role": "loading_control",
               "band_rows": [130, 170], "channel": 1},
              {"file": "two.tif", "blot": "B1", "target": "X&Y", "role": "target", "band_rows": [40, 80]}]
    study_file = write_study(tmp_path, samples=pd.read_csv(tmp_path / "samples.csv").to_dict("records"),
                             layout=pd.read_csv(tmp_path / "layout.csv").to_dict("records"), images=images)
    with pytest.raises(StudyError, match=r"\[\[image\]\] 2 \(two.tif\): the image holds 2 channels .*channel ="):
        run_study(study_file, tmp_path / "out", jobs=1, progress=False, overlays=False)
    images[1]["channel"] = 0
    write_study(tmp_path, samples=pd.read_csv(tmp_path / "samples.csv").to_dict("records"),
                layout=pd.read_csv(tmp_path / "layout.csv").to_dict("records"), images=images)
    result = run_study(study_file, tmp_path / "out2", jobs=1, progress=False, overlays=False)
    assert result.images[1]["lanes_from"] == "two.tif (same file)"
    assert result.normalized["value"].notna().all()


def test_band_rows_below_the_image(tmp_path):
    images = [{"file": "GAPDH.tif", "blot": "B1", "target": "GAPDH", "role": "loading_control",
               "band_rows": [130, 250]},
              {"file": "X&Y.tif", "blot": "B1", "target": "X&Y", "role": "target", "band_rows": [40, 80]}]
    study_file = _tiny_study(tmp_path, sample_id="s1", name="rows", images=images)
    with pytest.raises(StudyError, match=r"band_rows \[130, 250\] reach below the image, which has rows 0-199"):
        run_study(study_file, tmp_path / "out", jobs=1, progress=False, overlays=False)
