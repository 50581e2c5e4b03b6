"""The private numeric helpers the pipeline's speed rests on give the same numbers as numpy's own."""

import numpy as np
import pytest

from blotquant._shared import block_mean, median, robust_sigma


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_is_numpys_median_to_the_bit(dtype):
    rng = np.random.default_rng(3)
    for trial in range(400):
        shape = tuple(int(n) for n in rng.integers(1, 10, size=rng.integers(1, 4)))
        values = rng.normal(size=shape).astype(dtype)
        if trial % 5 == 0:
            values = np.round(values)  # ties
        if trial % 9 == 0:
            values[...] = -0.0  # the sign of a zero survives
        for axis in [None, *range(values.ndim)]:
            expected = np.median(values, axis=axis)
            for overwrite in (False, True):
                work = values.copy()
                got = median(work, axis=axis, overwrite_input=overwrite)
                assert type(got) is type(expected)
                assert np.asarray(got).dtype == np.asarray(expected).dtype
                assert np.asarray(got).tobytes() == np.asarray(expected).tobytes()
                if not overwrite:
                    np.testing.assert_array_equal(work, values)


def test_median_leaves_nans_integers_and_empty_arrays_to_numpy():
    with_nan = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(median(with_nan, axis=1), [np.nan, 2.0])
    assert median(np.array([1, 2, 3, 4])) == 2.5
    with pytest.warns(RuntimeWarning):
        assert np.isnan(median(np.array([], dtype=float)))


def test_robust_sigma_is_the_scaled_mad():
    values = np.random.default_rng(4).normal(5.0, 2.0, size=(200, 49))
    expected = float(1.4826 * np.median(np.abs(values.ravel() - np.median(values))))
    assert robust_sigma(values) == expected
    assert robust_sigma(values.astype(np.float32)) == float(
        1.4826 * np.median(np.abs(values.astype(np.float32).astype(np.float64).ravel()
                                  - np.median(values.astype(np.float32).astype(np.float64)))))


@pytest.mark.parametrize("factor", range(1, 13))
def test_block_mean_is_the_mean_of_each_block_summed_as_numpy_sums(factor):
    rng = np.random.default_rng(factor)
    for dtype, scale in ((np.float32, 6e4), (np.uint16, 6e4), (np.uint8, 255)):
        image = (rng.random((factor * 9 + 2, factor * 11 + 1)) * scale).astype(dtype)
        rows, cols = image.shape[0] // factor, image.shape[1] // factor
        trimmed = image[: rows * factor, : cols * factor].astype(np.float32)
        # The reference: rows of each block summed, then its columns, by numpy's own reductions.
        expected = (trimmed.reshape(rows, factor, cols * factor).sum(axis=1)
                    .reshape(rows, cols, factor).sum(axis=2) / np.float32(factor * factor))
        got = block_mean(image, factor)
        assert got.dtype == np.float32
        assert got.tobytes() == expected.tobytes()
