"""The shared low-to-high mapping: hand-computed cases."""

import pytest
import torch

from fade.ops.resize import check_sizes, compatible_size, infer_scale, nearest_upsample, source_index


def test_source_index_exact_floor_and_ceil_sizes():
    assert source_index(6, 3, 2).tolist() == [0, 0, 1, 1, 2, 2]
    assert source_index(7, 3, 2).tolist() == [0, 0, 1, 1, 2, 2, 2]  # floor-mode: last row repeats
    assert source_index(5, 3, 2).tolist() == [0, 0, 1, 1, 2]  # ceil-mode: cropped
    assert source_index(8, 2, 3).tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert source_index(3, 1, 3).tolist() == [0, 0, 0]


def test_compatible_sizes():
    assert compatible_size(7, 15, 2) and compatible_size(8, 15, 2) and compatible_size(7, 14, 2)
    assert not compatible_size(7, 16, 2) and not compatible_size(7, 12, 2)
    assert compatible_size(2, 8, 3) and not compatible_size(2, 9, 3)
    assert not compatible_size(0, 0, 2)


def test_infer_scale():
    assert infer_scale((7, 5), (14, 10)) == 2
    assert infer_scale((1, 1), (4, 4)) == 4
    for low, high in [((7, 5), (15, 11)), ((4, 4), (8, 12)), ((4, 4), (2, 2))]:
        with pytest.raises(ValueError, match="cannot infer an integer scale .* pass scale="):
            infer_scale(low, high)


def test_check_sizes_message():
    with pytest.raises(ValueError, match=r"x: expected .* scale\*\(3, 2\) = \(6, 4\) at scale 2, got \(9, 4\)"):
        check_sizes((3, 2), (9, 4), 2, "x")


def test_nearest_upsample_matches_loop():
    x = torch.arange(2 * 3 * 2, dtype=torch.float64).view(1, 2, 3, 2)
    for size, s in [((6, 4), 2), ((7, 5), 2), ((5, 3), 2), ((9, 7), 3)]:
        out = nearest_upsample(x, size, s)
        assert out.shape == (1, 2, *size)
        for y in range(size[0]):
            for w in range(size[1]):
                assert torch.equal(out[0, :, y, w], x[0, :, min(y // s, 2), min(w // s, 1)])
