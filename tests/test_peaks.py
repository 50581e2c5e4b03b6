"""blotquant.peaks gives exactly the peaks, properties and widths of scipy.signal."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import signal

from blotquant import peaks as bq_peaks


def _profiles():
    rng = np.random.default_rng(7)
    cases = []
    for _ in range(60):
        n = int(rng.integers(3, 400))
        cases.append(rng.integers(0, 4, n).astype(float))  # plateaus and ties everywhere
        cases.append(ndi.gaussian_filter1d(rng.normal(size=n), rng.uniform(0.5, 4)))
        bands = np.zeros(n)
        for centre in rng.uniform(0, n, 4):
            bands += rng.uniform(1, 20) * np.exp(-0.5 * ((np.arange(n) - centre) / rng.uniform(1, 8)) ** 2)
        cases.append(bands + rng.normal(0, 0.3, n))
    cases += [np.zeros(5), np.arange(10.0), np.arange(10.0)[::-1], np.array([0, 2, 2, 2, 0, 1, 1]),
              np.array([1.0, 3, 3, 1, 3, 3]), np.array([0.0, 1, 0])]
    return cases


CONDITIONS = [
    {},
    {"height": 0.5},
    {"prominence": 0.8},
    {"prominence": 0.3, "width": 1.5},
    {"height": 0.2, "prominence": 0.5, "width": 1.5},
    {"distance": 5, "prominence": 0.2},
    {"distance": 2.5},
    {"height": (0.1, 2.0), "width": (1.0, 30.0), "rel_height": 0.9},
]


@pytest.mark.parametrize("conditions", CONDITIONS, ids=lambda c: ",".join(c) or "plain")
def test_find_peaks_matches_scipy(conditions):
    for x in _profiles():
        expected, expected_props = signal.find_peaks(x, **conditions)
        found, props = bq_peaks.find_peaks(x, **conditions)
        np.testing.assert_array_equal(found, expected)
        assert set(props) == set(expected_props)
        for key in expected_props:
            np.testing.assert_allclose(props[key], expected_props[key], rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("rel_height", [0.0, 0.5, 0.9, 1.0])
def test_peak_widths_and_prominences_match_scipy(rel_height):
    for x in _profiles():
        found, _ = signal.find_peaks(x)
        np.testing.assert_allclose(bq_peaks.peak_widths(x, found, rel_height=rel_height),
                                   signal.peak_widths(x, found, rel_height=rel_height), rtol=1e-12, atol=1e-12)
        for mine, theirs in zip(bq_peaks.peak_prominences(x, found), signal.peak_prominences(x, found)):
            np.testing.assert_array_equal(mine, theirs)


def test_importing_what_quantify_needs_loads_no_scipy_signal_stats_interpolate_or_matplotlib():
    import subprocess
    import sys

    # scipy.signal and scipy.stats cost 0.7 s of a one-image run, matplotlib 0.4 s, scipy.interpolate (ladders) 0.15 s.
    code = ("import sys, blotquant.cli, blotquant.batch, blotquant.pipeline, blotquant.overlay; "
            "print(sorted(m for m in ('scipy.signal', 'scipy.stats', 'scipy.interpolate', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
