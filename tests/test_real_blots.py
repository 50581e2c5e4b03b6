"""Real gels and blots that nobody on this project made (see shared/real_blots/PROVENANCE.md).

Every image is read and quantified without error; where ground truth exists
blotquant is compared with it:

* the eLife Coomassie gel (Harman et al. 2020): band areas relative to lane 1,
  published with gelquant;
* the 16-bit DNA gel of the gel-lanes-fit Fiji plugin: its reference lane
  profiles (exact) and its banded-fit ladder peaks (a peer tool's output).

The images are not copied into the repository (several carry a GPL or unknown
licence); the module skips when the folder is absent. Point
``BLOTQUANT_REAL_BLOTS`` at a copy to run it elsewhere.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from real_blot_inventory import GROUND_TRUTH_POLARITY

from blotquant import quantify
from blotquant.io import read_image

REAL_BLOTS = Path(
    os.environ.get("BLOTQUANT_REAL_BLOTS", Path(__file__).resolve().parents[2] / "shared" / "real_blots")
)
if not REAL_BLOTS.is_dir():
    pytest.skip(
        f"real blot images not found at {REAL_BLOTS}; set BLOTQUANT_REAL_BLOTS",
        allow_module_level=True,
    )

IMAGE_SUFFIXES = {".png", ".gif", ".jpeg", ".jpg", ".tif", ".tiff", ".scn"}

#: Polarity of each image as PROVENANCE.md describes it (relative path -> polarity).
#: The two .scn files are the raw chemiluminescence counts of the light-on-dark
#: AKT / pAKT exports, so they are light-on-dark too.
EXPECTED_POLARITY = {
    "coomassie_gelquant_elife/gel-example.png": "dark_on_light",
    "dna_gel_16bit_gellanesfit/Long_5s.tif": "light_on_dark",
    "stained_gel_doublets_gelbox/test_gel_image.tif": "dark_on_light",
    "wb_biorad_chemidoc_akt_pakt/05-03-2019-WB0-AKTAK9272_2.scn": "light_on_dark",
    "wb_biorad_chemidoc_akt_pakt/2019-03-01-WB0-pAKT4060.scn": "light_on_dark",
    "wb_biorad_chemidoc_akt_pakt/WB0-AKT.png": "light_on_dark",
    "wb_biorad_chemidoc_akt_pakt/WB0-pAKT.png": "light_on_dark",
    "wb_chemi_crops_facuperezt/img.jpeg": "dark_on_light",
    "wb_chemi_crops_facuperezt/img_2band.jpeg": "dark_on_light",
    "wb_chemi_crops_facuperezt/img_shadow.jpeg": "dark_on_light",
    "wb_chemi_crops_facuperezt/wide_pic_bands.jpeg": "dark_on_light",
    "wb_imagej_sample_gel/gel.gif": "dark_on_light",
    **GROUND_TRUTH_POLARITY,
}

#: Lane counts PROVENANCE.md states, empty lanes included.
KNOWN_LANE_COUNTS = {
    "wb_chemi_crops_facuperezt/img.jpeg": 3,
    "wb_chemi_crops_facuperezt/img_2band.jpeg": 3,
    "wb_chemi_crops_facuperezt/img_shadow.jpeg": 3,
    "wb_chemi_crops_facuperezt/wide_pic_bands.jpeg": 8,
    "wb_biorad_chemidoc_akt_pakt/WB0-AKT.png": 10,
    "wb_biorad_chemidoc_akt_pakt/WB0-pAKT.png": 10,
    "wb_biorad_chemidoc_akt_pakt/05-03-2019-WB0-AKTAK9272_2.scn": 10,
    "wb_biorad_chemidoc_akt_pakt/2019-03-01-WB0-pAKT4060.scn": 10,
    "stained_gel_doublets_gelbox/test_gel_image.tif": 6,
}

#: Approximate centre column of each lane's band, measured here from each image's column
#: profile across its strongest band row (+-10 px; the near-empty lane of wide_pic_bands
#: and the faint first lane of img_shadow by eye). The .scn files are framed like their exports.
_AKT_CENTRES = (131, 176, 220, 262, 307, 352, 398, 442, 487, 531)
_PAKT_CENTRES = (124, 168, 211, 255, 299, 343, 389, 433, 477, 522)
LANE_CENTRES = {
    "wb_chemi_crops_facuperezt/img.jpeg": (75, 245, 412),
    "wb_chemi_crops_facuperezt/img_2band.jpeg": (93, 262, 422),
    "wb_chemi_crops_facuperezt/img_shadow.jpeg": (75, 252, 409),
    "wb_chemi_crops_facuperezt/wide_pic_bands.jpeg": (325, 428, 531, 637, 741, 842, 944, 1087),
    "wb_biorad_chemidoc_akt_pakt/WB0-AKT.png": _AKT_CENTRES,
    "wb_biorad_chemidoc_akt_pakt/05-03-2019-WB0-AKTAK9272_2.scn": _AKT_CENTRES,
    "wb_biorad_chemidoc_akt_pakt/WB0-pAKT.png": _PAKT_CENTRES,
    "wb_biorad_chemidoc_akt_pakt/2019-03-01-WB0-pAKT4060.scn": _PAKT_CENTRES,
    "stained_gel_doublets_gelbox/test_gel_image.tif": (195, 577, 963, 1344, 1725, 2111),
}

#: Automatic lanes that are wrong today, with what blotquant finds. Common cause: each band
#: curves up at its lane's edges (a smile within the lane), so the column projection has two
#: humps per lane and the periodicity analysis takes the humps for lanes.
#: strict=True: when detection improves the test turns red, so the mark gets removed.
LANE_COUNT_XFAIL = {
    "wb_chemi_crops_facuperezt/img.jpeg": "11 lanes at a ~44 px pitch found for 3 lanes ~165 px apart: "
    "the dark band ends and the light middle of each wide band are taken for lanes",
    "wb_chemi_crops_facuperezt/img_2band.jpeg": "4 lanes at a ~75 px pitch found for 3 lanes ~165 px apart",
    "wb_chemi_crops_facuperezt/img_shadow.jpeg": "11 lanes at a ~40 px pitch found for 3 lanes ~165 px apart",
    "wb_chemi_crops_facuperezt/wide_pic_bands.jpeg": "2 lanes at a ~204 px pitch found for 8 lanes ~103 px "
    "apart: the humps at each lane's edges carry the projection's periodic power",
}

#: Images on which no band is found today although PROVENANCE.md lists bands.
BAND_XFAIL = {}


def _image_files():
    return sorted(p for p in REAL_BLOTS.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _key(path):
    return Path(path).relative_to(REAL_BLOTS).as_posix()


@functools.lru_cache(maxsize=None)
def _auto_result(key):
    """quantify() of one real image with every setting automatic (cached: several tests use it)."""
    with warnings.catch_warnings():
        # Lossy JPEG and 8-bit exports warn, rightly; the warning is not under test here.
        warnings.simplefilter("ignore")
        return quantify(REAL_BLOTS / key, review=None)


def _param(key, xfails):
    marks = [pytest.mark.xfail(strict=True, reason=xfails[key])] if key in xfails else []
    return pytest.param(key, marks=marks, id=key)


# ---------------------------------------------------------------------------
# 1. Every image is read and quantified


def test_every_real_image_is_listed():
    """The folder holds exactly the images PROVENANCE.md describes: none is silently left untested."""
    assert sorted(_key(p) for p in _image_files()) == sorted(EXPECTED_POLARITY)


@pytest.mark.parametrize("key", [_param(k, BAND_XFAIL) for k in sorted(EXPECTED_POLARITY)])
def test_real_image_is_quantified(key):
    result = _auto_result(key)
    assert len(result.lanes) >= 1
    assert result.image["polarity"] == EXPECTED_POLARITY[key]
    assert np.isfinite(result.bands["volume"]).all()
    assert len(result.bands) >= 1, f"{key}: no band found"


@pytest.mark.parametrize("key", [_param(k, LANE_COUNT_XFAIL) for k in sorted(KNOWN_LANE_COUNTS)])
def test_automatic_lane_count(key):
    """The right number of lanes, and each lane's band inside its own lane."""
    lanes = _auto_result(key).lanes
    assert len(lanes) == KNOWN_LANE_COUNTS[key], lanes["x_center"].round(0).astype(int).tolist()
    _assert_each_lane_found(lanes, LANE_CENTRES[key])


def _assert_each_lane_found(lanes, centres):
    """Each known lane centre lies inside a found lane of its own."""
    found = lanes["x_center"].round(0).astype(int).tolist()
    covering = []
    for centre in centres:
        inside = np.flatnonzero((lanes["x_left"] - 2 <= centre) & (centre <= lanes["x_right"] + 2))
        assert inside.size, f"the lane at x~{centre} lies in no lane found ({found})"
        covering.append(int(inside[0]))
    assert len(set(covering)) == len(covering), f"two lanes at {centres} share one lane ({found})"


#: Lanes still misplaced when the count is given (bands curving up at the lane edges).
GIVEN_COUNT_XFAIL = {
    "wb_chemi_crops_facuperezt/img_shadow.jpeg": "with lanes=3 the lanes come out 14-16 px wide at x~193, "
    "310, 436 for 165-px lanes at 75, 252, 409",
    "wb_chemi_crops_facuperezt/wide_pic_bands.jpeg": "with lanes=8 the grid (pitch ~92 px for ~103 px) "
    "is fitted to the seven loaded lanes and misses the near-empty lane at x~1087",
}


@pytest.mark.parametrize("key", [_param(k, GIVEN_COUNT_XFAIL) for k in sorted(KNOWN_LANE_COUNTS)])
def test_lanes_placed_when_count_given(key):
    """With the lane count given (--lanes N), each known lane centre lies in its own lane."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lanes = quantify(REAL_BLOTS / key, lanes=KNOWN_LANE_COUNTS[key], review=None).lanes
    _assert_each_lane_found(lanes, LANE_CENTRES[key])


def test_imagej_sample_gel_is_one_gel_with_its_bands():
    """ImageJ's "Gel" sample: one gel, about 6 lanes with 2-4 bands each (PROVENANCE.md)."""
    result = _auto_result("wb_imagej_sample_gel/gel.gif")
    assert result.lanes["strip"].nunique() == 1
    assert len(result.bands) >= 10, result.bands[["strip", "lane", "y"]]


def test_gelbox_doublets_are_resolved():
    """The GelBox strip: 6 lanes, each with a closely spaced doublet."""
    result = _auto_result("stained_gel_doublets_gelbox/test_gel_image.tif")
    counts = result.bands.groupby("lane").size()
    assert counts.reindex(range(1, 7), fill_value=0).tolist() == [2] * 6, counts.to_dict()


# ---------------------------------------------------------------------------
# 2. eLife Coomassie gel: band areas relative to lane 1 (gelquant, Harman et al. 2020)

COOMASSIE = REAL_BLOTS / "coomassie_gelquant_elife"


@functools.lru_cache(maxsize=None)
def _coomassie_image():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_image(COOMASSIE / "gel-example.png")


def _coomassie_crops():
    truth = pd.read_csv(COOMASSIE / "ground_truth_relative_band_area.csv")
    crops = []
    for (protein, replicate), group in truth.groupby(["protein", "replicate"]):
        group = group.sort_values("lane_in_group")
        first = group.iloc[0]
        top, bottom = (int(v) for v in first["integration_rows_in_crop"].split("-"))
        crops.append(
            {
                "id": f"{protein}{replicate}",
                "box": tuple(int(first[c]) for c in ("crop_x1", "crop_y1", "crop_x2", "crop_y2")),
                "n_lanes": int(first["n_lanes_in_crop"]),
                "window": (int(first["crop_y1"]) + top, int(first["crop_y1"]) + bottom),
                "truth": group["relative_band_area"].to_numpy(float),
            }
        )
    return crops


def _crop_geometry(crop):
    """gelquant's lanes: the crop box split into equal-width lanes, over the crop's rows."""
    x1, y1, x2, y2 = crop["box"]
    edges = np.linspace(x1, x2, crop["n_lanes"] + 1)  # PIL crop box: x2, y2 exclusive
    return pd.DataFrame(
        {
            "lane": np.arange(1, crop["n_lanes"] + 1),
            "x_left": edges[:-1],
            "x_right": edges[1:] - 1,
            "y_top": y1,
            "y_bottom": y2 - 1,
            "slope": 0.0,
        }
    )


def _relative_volumes(result):
    volumes = result.bands.sort_values("lane")["volume"].to_numpy(float)
    assert volumes.size == len(result.lanes), "expected exactly one band per lane"
    return volumes / volumes[0]


def _coomassie_window_measurement(crop, background):
    """Relative volumes with gelquant's integration window as each lane's band box."""
    result = quantify(_coomassie_image(), lane_geometry=_crop_geometry(crop), channel="luminance",
                      band_rows=crop["window"], band_rows_mode="window", background=background, review=None)
    assert result.bands["detected"].all()
    return _relative_volumes(result)


def test_coomassie_relative_band_areas_match_gelquant():
    """Same lanes, same integration rows, straight baseline between the window's ends.

    gelquant weights the columns of a lane with a Gaussian (the lane's middle
    counts most); blotquant sums every column equally. Recomputing gelquant's
    numbers with equal column weights moves them by up to 0.09 (median 0.035),
    which is about the difference measured here: median |difference| 0.034,
    11 of 16 bands within 0.05, all within 0.061, every crop in the same rank
    order.
    """
    differences = []
    for crop in _coomassie_crops():
        relative = _coomassie_window_measurement(crop, "valley")
        rho = spearmanr(relative, crop["truth"])[0]
        assert rho == pytest.approx(1.0), (crop["id"], relative.round(3), crop["truth"].round(3))
        differences.extend(np.abs(relative[1:] - crop["truth"][1:]))
    differences = np.array(differences)
    assert np.median(differences) <= 0.04, differences.round(3)
    assert np.mean(differences <= 0.05) >= 0.65, differences.round(3)
    assert differences.max() <= 0.07, differences.round(3)


def test_coomassie_default_background_keeps_rank_order_of_single_band_crops():
    """The default background (rolling ball + valley) on the same windows: measured, looser.

    It gives median |difference| 0.054, 90th percentile 0.17, worst 0.26, and
    the rank order of gelquant in 3 of 4 crops (B1's near-equal lanes 2-4 swap).
    """
    differences = []
    for crop in _coomassie_crops():
        relative = _coomassie_window_measurement(crop, "auto")
        differences.extend(np.abs(relative[1:] - crop["truth"][1:]))
        if crop["id"].startswith("A"):  # one band per lane, fading with time: order must hold
            assert spearmanr(relative, crop["truth"])[0] == pytest.approx(1.0), crop["id"]
    differences = np.array(differences)
    assert np.median(differences) <= 0.07, differences.round(3)
    assert differences.max() <= 0.30, differences.round(3)


BAND_ROWS_XFAIL = {
    "A1": "the window holds the band and its degradation products below it; measured over the window "
    "blotquant's lanes 2-5 are 0.62, 0.42, 0.26, 0.15 where gelquant has 0.55, 0.30, 0.13, 0.02 (the backgrounds "
    "under the smear differ; not yet explained)",
    "B1": "protein B runs as a doublet; over the window blotquant has 1.17, 1.24, 1.17 for lanes 2-4 where "
    "gelquant has 1.02, 1.07, 1.03 (differences up to 0.15)",
}


@pytest.mark.parametrize("crop_id", [_param(c, BAND_ROWS_XFAIL) for c in ("A1", "A2", "B1", "B2")])
def test_coomassie_band_rows_match_gelquant(crop_id):
    """gelquant's lanes and integration rows, measured as gelquant does: over the whole window.

    ``band_rows_mode="window"`` integrates every row of the window, as
    gelquant does, where the default mode measures the strongest band in it
    (and the profile fit splits a smear or a doublet into its peaks, which
    gelquant does not). On A2 blotquant agrees within 0.03 and on B2 within
    0.07 (measured), and keeps the rank order.
    """
    crop = next(c for c in _coomassie_crops() if c["id"] == crop_id)
    result = quantify(_coomassie_image(), lane_geometry=_crop_geometry(crop), channel="luminance",
                      band_rows=crop["window"], band_rows_mode="window", review=None)
    relative = _relative_volumes(result)
    assert spearmanr(relative, crop["truth"])[0] == pytest.approx(1.0), (relative.round(3), crop["truth"])
    np.testing.assert_allclose(relative, crop["truth"], atol=0.07)


# ---------------------------------------------------------------------------
# 3. 16-bit DNA gel (gel-lanes-fit regression references)

DNA = REAL_BLOTS / "dna_gel_16bit_gellanesfit"


@functools.lru_cache(maxsize=None)
def _dna_result():
    reference = pd.read_csv(DNA / "reference_lane_profiles.csv")
    geometry = pd.DataFrame(
        {
            "lane": reference["lane"],
            "x_left": reference["roi_x0"],
            "x_right": reference["roi_x0"] + reference["lane_width"] - 1,
            "y_top": reference["roi_top"],
            "y_bottom": reference["roi_bottom_exclusive"] - 1,
            "slope": 0.0,
        }
    )
    result = quantify(DNA / "Long_5s.tif", lane_geometry=geometry, polarity="light_on_dark", review=None)
    return reference, result


def test_dna_gel_lane_profiles_match_imagej():
    reference, result = _dna_result()
    assert result.image["polarity"] == "light_on_dark"
    for row in reference.itertuples():
        profile = result.profiles[("gray", 1, int(row.lane))]
        assert profile.width == row.lane_width
        assert profile.rows[0] == row.roi_top and profile.rows[-1] == row.roi_bottom_exclusive - 1
        assert profile.rows.size == row.n_rows
        # ImageJ's ProfilePlot: the mean across the lane's width in each row, summed over rows.
        assert (profile.signal / profile.width).sum() == pytest.approx(row.profile_L1_norm, rel=1e-6)


def test_dna_gel_ladder_peaks_match_gel_lanes_fit():
    """All 12 ladder peaks of the plugin's banded fit are found, measured within 1.0 px."""
    _, result = _dna_result()
    peaks = pd.read_csv(DNA / "reference_banded_fit_peaks.csv")
    reference = peaks.loc[peaks["lane"] == 1, "peak_row_y"].to_numpy(float)
    assert reference.size == 12
    found = result.bands.loc[result.bands["lane"] == 1, "y"].to_numpy(float)
    offsets = np.abs(reference[:, None] - found[None, :]).min(axis=1) if found.size else np.full(12, np.inf)
    assert np.count_nonzero(offsets <= 3.0) == 12, offsets.round(1)
    assert np.median(offsets) <= 1.0, offsets.round(1)


# ---------------------------------------------------------------------------
# 4. AKT / pAKT: phospho over total, lane by lane

AKT = REAL_BLOTS / "wb_biorad_chemidoc_akt_pakt"


AKT_PAIRS = {
    "png": ("WB0-AKT.png", "WB0-pAKT.png"),
    "scn": ("05-03-2019-WB0-AKTAK9272_2.scn", "2019-03-01-WB0-pAKT4060.scn"),
}


@functools.lru_cache(maxsize=None)
def _akt_pair(kind):
    """Total AKT in 10 lanes, then pAKT in the same lanes; one band of interest per lane."""
    total, phospho = AKT_PAIRS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Two exposures of one membrane: the lane count is known, so say it.
        lanes = quantify(AKT / total, lanes=10, review=None).lanes
        # AKT runs at rows ~250, pAKT at ~200 (two exposures of one membrane, framed alike).
        akt = quantify(AKT / total, lane_geometry=lanes, band_rows=(225, 275), review=None)
        pakt = quantify(AKT / phospho, lane_geometry=lanes, band_rows=(180, 225), review=None)
    return lanes, akt.bands, pakt.bands


@pytest.mark.parametrize("kind", ["png", "scn"])
def test_akt_pakt_ratios_are_finite_for_every_lane(kind):
    lanes, akt, pakt = _akt_pair(kind)
    assert len(lanes) == 10
    assert akt["lane"].tolist() == list(range(1, 11))
    assert pakt["lane"].tolist() == list(range(1, 11))
    ratio = pakt["volume"].to_numpy(float) / akt["volume"].to_numpy(float)
    assert np.isfinite(ratio).all() and (ratio > 0).all(), ratio


@pytest.mark.parametrize("kind", ["png", "scn"])
def test_akt_pakt_band_detected_in_every_lane(kind):
    """Every lane carries a visible AKT band and a visible pAKT band."""
    _, akt, pakt = _akt_pair(kind)
    assert akt["detected"].all(), akt[["lane", "y", "detected"]]
    assert pakt["detected"].all(), pakt[["lane", "y", "detected"]]


def test_akt_pakt_ratios_agree_between_export_and_raw_file():
    """The 8-bit exports and the raw 16-bit .scn files rank the lanes' pAKT/AKT alike (measured rho 0.96)."""
    ratios = {}
    for kind in AKT_PAIRS:
        _, akt, pakt = _akt_pair(kind)
        ratios[kind] = pakt["volume"].to_numpy(float) / akt["volume"].to_numpy(float)
    assert spearmanr(ratios["png"], ratios["scn"])[0] >= 0.9, ratios


def test_damaged_copies_of_real_files_fail_cleanly(tmp_path, capfd):
    """Truncated or bit-flipped copies of every real file: an ImageReadError (or a clean
    quantification when the damage spared the pixels that matter), never another exception,
    and no library log lines on stderr."""
    from blotquant.errors import BlotQuantError
    from blotquant.io import read_image

    rng = np.random.default_rng(3)
    for source in _image_files():
        data = source.read_bytes()
        for mode in range(3):
            damaged = bytearray(data)
            if mode == 0:
                damaged = damaged[: int(rng.integers(8, len(damaged)))]
            else:
                for _ in range(8 if mode == 1 else 50):
                    position = int(rng.integers(0, min(len(damaged), 4096) if mode == 1 else len(damaged)))
                    damaged[position] = int(rng.integers(0, 256))
            path = tmp_path / source.name
            path.write_bytes(bytes(damaged))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    quantify(read_image(path), review=None)
                except BlotQuantError:
                    pass
    assert "tifffile" not in capfd.readouterr().err
