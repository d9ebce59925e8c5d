"""The shared low-to-high mapping: hand-computed cases."""

import numpy as np
import pytest
import torch

from fade.ops.resize import (
    check_scale,
    check_sizes,
    compatible_size,
    effective_scale,
    fit_to_size,
    infer_scale,
    nearest_upsample,
    source_index,
)


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


def test_nearest_upsample_is_exact_at_every_scale():
    # F.interpolate's float scale factor reads row y // s - 1 at some scales (41, 47, 55, ...).
    x = torch.arange(3, dtype=torch.float32).view(1, 1, 3, 1)
    for s in (2, 3, 41, 47, 55, 61, 97):
        out = nearest_upsample(x, (3 * s, s), s)
        assert out[0, 0, :, 0].tolist() == [float(y // s) for y in range(3 * s)]


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.uint8, torch.float16, torch.complex64])
def test_nearest_upsample_any_dtype(dtype):
    x = torch.tensor([[1, 0], [0, 1]]).to(dtype).view(1, 1, 2, 2)
    assert torch.equal(nearest_upsample(x, (4, 5), 2), x[..., [0, 0, 1, 1], :][..., [0, 0, 1, 1, 1]])


@pytest.mark.parametrize(
    ("x", "size", "scale", "error", "message"),
    [
        (torch.zeros(1, 1, 4, 4), (20, 20), 2, ValueError, r"size vs x: .*\(8, 8\) at scale 2, got \(20, 20\)"),
        (torch.zeros(1, 1, 4, 4), (8, 8), 0, ValueError, r"scale must be a positive integer, got 0"),
        (torch.zeros(1, 1, 4, 4), (8, 8), -2, ValueError, r"scale must be a positive integer, got -2"),
        (torch.zeros(1, 1, 4, 4), (8, 8), 2.0, ValueError, r"scale must be a positive integer, got 2.0"),
        (torch.zeros(1, 1, 4, 4), (8, 8), True, TypeError, r"scale must be a positive integer, got True"),
        (torch.zeros(1, 1, 4, 4), (8, 8), "2", TypeError, r"scale must be a positive integer, got '2'"),
        (torch.zeros(1, 1, 4, 4), (8, 8), None, TypeError, r"scale must be a positive integer, got None"),
        (torch.zeros(1, 1, 0, 4), (0, 8), 2, ValueError, r"x: expected a spatial size .*positive.*got \(0, 4\)"),
        (torch.zeros(1, 1, 4, 4), (-8, 8), 2, ValueError, r"size: expected .*positive extents, got \(-8, 8\)"),
        (torch.zeros(1, 1, 4, 4), (0, 8), 2, ValueError, r"size: expected .*positive extents, got \(0, 8\)"),
        (torch.zeros(1, 1, 4, 4), (8,), 2, ValueError, r"size: expected \(H_out, W_out\), two integers, got \(8,\)"),
        (torch.zeros(1, 1, 4, 4), (8.0, 8), 2, TypeError, r"size: expected \(H_out, W_out\), two integers"),
        (torch.zeros(1, 1, 4, 4), None, 2, TypeError, r"size: expected \(H_out, W_out\), two integers, got None"),
        (torch.zeros(1, 1, 4, 4), (True, 8), 2, TypeError, r"size: expected \(H_out, W_out\), two integers"),
        (torch.zeros(4, 4), (8, 8), 2, ValueError, r"x: expected a 4-D tensor \(B, C, H, W\), got 2-D shape"),
        (np.zeros((1, 1, 4, 4)), (8, 8), 2, TypeError, r"x: expected a torch.Tensor .*got numpy.ndarray"),
        (torch.zeros(1, 1, 4, 4).to_sparse(), (8, 8), 2, TypeError, r"x: expected a dense .*sparse_coo"),
    ],
)
def test_nearest_upsample_rejects_bad_input(x, size, scale, error, message):
    with pytest.raises(error, match=message):
        nearest_upsample(x, size, scale)


def test_check_scale_types_and_values():
    assert check_scale(3) == 3 and type(check_scale(np.int64(3))) is int
    for bad in (0, -1, 1.5, 2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be a positive integer"):
            check_scale(bad)
    for bad in (True, "2", None, [2], torch.tensor(2), 2j):
        with pytest.raises(TypeError, match="scale must be a positive integer"):
            check_scale(bad)


def test_zero_extents_are_named_as_such():
    with pytest.raises(ValueError, match=r"x: expected a low-resolution size \(H, W\) of positive .*\(0, 10\)"):
        check_sizes((0, 10), (0, 10), 2, "x")
    with pytest.raises(ValueError, match=r"expected a high-resolution size .* got \(4, 0\)"):
        check_sizes((2, 1), (4, 0), 2, "x")
    with pytest.raises(ValueError, match=r"cannot infer an integer scale: expected a low-resolution .*\(0, 3\)"):
        infer_scale((0, 3), (0, 6))


def test_scales_beyond_the_output_read_the_same_pixels():
    # Over a 1-pixel map every scale >= the output extent maps all pixels to pixel 0.
    assert effective_scale(2**70, (3, 5)) == 5 and effective_scale(2, (3, 5)) == 2
    assert source_index(3, 1, 2**70).tolist() == [0, 0, 0]
    x = torch.tensor([[[[7.0]]]])
    assert nearest_upsample(x, (3, 1), 2**70).flatten().tolist() == [7.0, 7.0, 7.0]


def test_fit_to_size_crops_or_repeats_an_upsampled_map():
    up = torch.arange(6 * 4, dtype=torch.float64).view(1, 1, 6, 4)  # 3x2 upsampled at s = 2
    assert fit_to_size(up, (6, 4), 2) is up
    out = fit_to_size(up, (7, 3), 2)
    assert torch.equal(out, up[..., [0, 1, 2, 3, 4, 5, 5], :][..., [0, 1, 2]])
    with pytest.raises(ValueError, match=r"size vs x: .*\(6, 4\) at scale 2, got \(8, 4\)"):
        fit_to_size(up, (8, 4), 2)
    with pytest.raises(ValueError, match=r"x: expected a spatial size that is a multiple of scale 4, got \(6, 4\)"):
        fit_to_size(up, (6, 4), 4)


def test_mapping_helpers_refuse_bad_arguments():
    for high, low, scale in [(-1, 3, 2), (4, 0, 2), (4, -2, 2)]:
        expected = rf"source_index: expected high >= 0 and low >= 1, got high={high}, low={low}"
        with pytest.raises(ValueError, match=expected):
            source_index(high, low, scale)
    with pytest.raises(ValueError, match="scale must be a positive integer, got 0"):
        source_index(4, 2, 0)
    assert source_index(0, 2, 2).tolist() == []
    with pytest.raises(ValueError, match="scale must be a positive integer, got 0"):
        check_sizes((2, 2), (4, 4), 0, "x")
    with pytest.raises(ValueError, match=r"x: expected a low-resolution size \(H, W\), got \(4,\)"):
        check_sizes((4,), (8,), 2, "x")
    with pytest.raises(ValueError, match=r"expected a high-resolution size \(H, W\), got \(8, 8, 8\)"):
        infer_scale((4, 4), (8, 8, 8))


@pytest.mark.parametrize("shape", [(1, 0, 1, 1), (0, 3, 2, 2)])
def test_nearest_upsample_empty_maps(shape):
    size = (2 * shape[2], 2 * shape[3])
    assert nearest_upsample(torch.zeros(shape), size, 2).shape == (*shape[:2], *size)


def test_outputs_beyond_a_tensor_are_refused_before_allocating():
    x = torch.zeros(1, 1, 1, 1).expand(1, 2**20, 1, 1)
    with pytest.raises(ValueError, match=r"output: shape \(1, 1048576, 4194304, 4194304\) of torch.float32 needs more"):
        nearest_upsample(x, (2**22, 2**22), 2**22)
    with pytest.raises(ValueError, match=r"output: shape \(1, 1048576, 2097153, 2097152\) of torch.float32 needs more"):
        fit_to_size(torch.zeros(1, 1, 1, 1).expand(1, 2**20, 2**21, 2**21), (2**21 + 1, 2**21), 2)
