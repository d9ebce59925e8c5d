"""Shared input conversion and the valid 1-D correlation."""

import numpy as np
import pytest
import torch

from fade.metrics._common import as_labels, as_values, correlate_valid, to_numpy


def test_correlate_valid_matches_numpy_correlate():
    rng = np.random.default_rng(0)
    x, kernel = rng.random((3, 10, 7)), rng.random(4)
    along_rows = correlate_valid(x, kernel, axis=1)
    assert along_rows.shape == (3, 7, 7)
    for c in range(3):
        for j in range(7):
            np.testing.assert_allclose(along_rows[c, :, j], np.correlate(x[c, :, j], kernel, mode="valid"))
    np.testing.assert_allclose(correlate_valid(x, kernel, axis=-1)[1, 4], np.correlate(x[1, 4], kernel, "valid"))


def test_tensor_inputs():
    t = torch.arange(6, dtype=torch.bfloat16).view(2, 3)
    np.testing.assert_array_equal(as_values(t, "x"), np.arange(6.0).reshape(2, 3))
    noncontiguous = torch.arange(12).view(3, 4).t()
    np.testing.assert_array_equal(as_labels(noncontiguous, "y"), np.arange(12).reshape(3, 4).T)
    assert to_numpy(torch.ones(2, requires_grad=True), "z").dtype == np.float32


def test_bad_input():
    with pytest.raises(TypeError, match=r"x: expected a numpy array or a torch tensor, got list"):
        to_numpy([1.0], "x")
    with pytest.raises(TypeError, match=r"x: expected a real-valued array, got dtype complex128"):
        as_values(np.zeros(2, dtype=complex), "x")
