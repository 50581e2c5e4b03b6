"""The profile fit's own Jacobian: the steps least_squares takes itself, so the same fits."""

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.optimize._numdiff import approx_derivative

from blotquant import profile_fit
from blotquant.profile_fit import emg, fit_lane_bands, forward_difference_jacobian


def _residuals(x):
    rows = np.arange(40.0)
    return np.concatenate([emg(rows, 3.0, x[0], x[1], x[2]) - emg(rows, 3.0, 20.0, 2.0, 1.5), [x[0] * x[1] - x[2]]])


def test_forward_differences_are_least_squares_own_to_the_bit():
    rng = np.random.default_rng(5)
    lower, upper = np.array([15.0, 0.7, 0.3]), np.array([25.0, 7.0, 9.0])
    points = [lower + rng.random(3) * (upper - lower) for _ in range(50)]
    # On a bound, and within a step of one: the step is turned back or shortened there.
    points += [lower.copy(), upper.copy(), upper - 1e-9, lower + 1e-12, np.array([15.0, 7.0, 0.3 + 1e-10])]
    for x in points:
        at_x = _residuals(x)
        expected = approx_derivative(_residuals, x, method="2-point", f0=at_x, bounds=(lower, upper))
        got = forward_difference_jacobian(_residuals, x, at_x, lower, upper)
        assert got.shape == expected.shape
        assert got.tobytes() == np.ascontiguousarray(expected).tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_lane_fits_are_those_of_least_squares_own_differences(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    rows = np.arange(240.0)
    # Neighbours close enough to share a fit region, a tail, a sloping baseline, noise.
    truth = (emg(rows, 6000.0, 70.0, 3.5, 4.0) + emg(rows, 2500.0, 84.0, 3.0, 2.0)
             + emg(rows, 4000.0, 170.0, 4.0, 1.0))
    signal = 500 + 0.8 * rows + truth + rng.normal(0, 15.0, rows.size)
    bands = [(70, 58, 78), (84, 79, 100), (170, 156, 186)]
    fits = fit_lane_bands(signal, truth / 20, bands, noise=3.0, width=25)

    def scipy_differences(fun, x0, jac=None, **options):
        return least_squares(fun, x0, jac="2-point", **options)

    monkeypatch.setattr(profile_fit, "least_squares", scipy_differences)
    expected = fit_lane_bands(signal, truth / 20, bands, noise=3.0, width=25)
    assert fits == expected
