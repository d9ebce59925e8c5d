"""4-connected labelling against hand-labelled maps and scipy.ndimage.label."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from fade.metrics.components import label_components, largest_component


def _spiral(n: int) -> np.ndarray:
    """One long corridor winding inward: components join only through long run chains."""
    m = np.zeros((n, n), dtype=bool)
    top, left, bottom, right = 0, 0, n - 1, n - 1
    while top + 2 <= bottom and left + 2 <= right:
        m[top, left : right + 1] = True
        m[top : bottom + 1, right] = True
        m[bottom, left : right + 1] = True
        m[top + 2 : bottom + 1, left] = True
        m[top + 2, left : right - 1] = True
        top, left, bottom, right = top + 4, left + 4, bottom - 4, right - 4
    return m


def test_hand_labelled_map():
    mask = np.array(
        [
            [1, 0, 1, 1, 0],
            [1, 0, 0, 1, 0],
            [1, 1, 1, 1, 0],
            [0, 0, 0, 0, 1],
            [1, 0, 1, 0, 1],
        ],
        dtype=bool,
    )
    # The U joins through row 2; (3, 4) touches (2, 3) only diagonally, so it starts a new
    # component; labels follow raster order of each component's first pixel.
    expected = np.array(
        [
            [1, 0, 1, 1, 0],
            [1, 0, 0, 1, 0],
            [1, 1, 1, 1, 0],
            [0, 0, 0, 0, 2],
            [3, 0, 4, 0, 2],
        ]
    )
    labels, count = label_components(mask)
    assert count == 4
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize("density", [0.2, 0.45, 0.5, 0.6, 0.8])
@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (11, 1), (37, 53), (96, 80)])
def test_matches_scipy_on_random_maps(density, shape):
    mask = np.random.default_rng(7).random(shape) < density
    labels, count = label_components(mask)
    expected, expected_count = ndimage.label(mask)
    assert count == expected_count
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize(
    "mask",
    [
        _spiral(61),
        np.tile(np.arange(40) % 2 == 0, (40, 1)) | (np.arange(40)[:, None] == 39),  # comb
        np.eye(9, dtype=bool) | np.eye(9, k=1, dtype=bool),  # staircase
        np.zeros((5, 6), dtype=bool),
        np.ones((5, 6), dtype=bool),
    ],
    ids=["spiral", "comb", "staircase", "empty", "full"],
)
def test_matches_scipy_on_awkward_shapes(mask):
    labels, count = label_components(torch.from_numpy(mask))
    expected, expected_count = ndimage.label(mask)
    assert count == expected_count
    np.testing.assert_array_equal(labels, expected)


def test_largest_component_and_column_major_tie_break():
    mask = np.zeros((6, 7), dtype=bool)
    mask[0:2, 5:7] = True  # A: 4 pixels, first in raster order
    mask[4:6, 0:2] = True  # B: 4 pixels, first in column-major order (MATLAB's choice)
    mask[3, 3] = True  # a smaller one
    b = np.zeros_like(mask)
    b[4:6, 0:2] = True
    np.testing.assert_array_equal(largest_component(mask), b)
    mask[2, 5] = True  # A grows to 5 pixels and wins
    a = np.zeros_like(mask)
    a[0:2, 5:7] = True
    a[2, 5] = True
    np.testing.assert_array_equal(largest_component(mask), a)
    assert not largest_component(np.zeros((3, 4), dtype=bool)).any()


def test_bad_input():
    with pytest.raises(TypeError, match=r"mask: expected a bool array, got dtype int64"):
        label_components(np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"mask: expected a 2-D \(H, W\) array, got 3-D shape \(1, 3, 3\)"):
        label_components(np.zeros((1, 3, 3), dtype=bool))
    with pytest.raises(TypeError, match=r"mask: expected a numpy array or a torch tensor, got list"):
        label_components([[True]])
