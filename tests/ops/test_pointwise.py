"""fade.ops.pointwise_conv: the native 1x1 kernel and the matrix product against a float64 loop."""

import ctypes
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from fade.ops import _native, pointwise_conv
from fade.ops.pointwise import _matrix_product

# (B, C_in, C_out, H, W): output blocks of equal and of unequal widths, pixel counts with a partial
# vector and a scalar tail, one pixel, many outputs from few inputs (the compressors' input
# gradient), an empty batch, C_out outside the native range (one, or many from many inputs), one
# input channel (a broadcast multiply: a gate's input gradient), several tasks of several panels
# each, the last ones partial (1,517 pixels: runs are 256 or 1,024 pixels, panels 64 or 256).
CASES = [
    (2, 7, 25, 5, 9),
    (1, 33, 64, 17, 13),
    (3, 3, 2, 1, 1),
    (2, 16, 6, 8, 8),
    (1, 9, 13, 31, 29),
    (2, 64, 70, 9, 11),
    (0, 4, 5, 3, 3),
    (2, 5, 1, 6, 7),
    (1, 65, 66, 4, 6),
    (2, 1, 40, 5, 7),
    (1, 1, 1, 3, 4),
    (2, 5, 7, 37, 41),
]


def loop_reference(x, weight, bias):
    """out[b, o, y, x] = bias[o] + sum_c weight[o, c] * x[b, c, y, x], one output at a time, float64."""
    x, weight = x.double(), weight.double()
    b, c, h, w = x.shape
    out = torch.zeros(b, weight.shape[0], h, w, dtype=torch.float64)
    for o in range(weight.shape[0]):
        acc = torch.zeros(b, h, w, dtype=torch.float64) + (0.0 if bias is None else bias[o].item())
        for ci in range(c):
            acc += weight[o, ci] * x[:, ci]
        out[:, o] = acc
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_layout", [torch.contiguous_format, torch.channels_last])
def test_matches_the_loop_reference(path, case, dtype, channels_last, bias, x_layout):
    b, c, o, h, w = case
    x = torch.randn(b, c, h, w, dtype=dtype).contiguous(memory_format=x_layout)
    weight = torch.randn(o, c, dtype=dtype)
    bias_ = torch.randn(o, dtype=dtype) if bias else None
    out = pointwise_conv(x, weight, bias_, channels_last)
    assert out.shape == (b, o, h, w) and out.dtype == dtype
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=layout)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.double(), loop_reference(x, weight, bias_), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES[:6], ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("x_layout", [torch.contiguous_format, torch.channels_last])
def test_native_kernel_is_used_and_agrees_with_the_matrix_product(case, x_layout, monkeypatch):
    monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
    b, c, o, h, w = case
    x, weight, bias = torch.randn(b, c, h, w).contiguous(memory_format=x_layout), torch.randn(o, c), torch.randn(o)
    assert _native.supports_pointwise(x, weight, bias)
    for channels_last in (False, True):
        native = _native.pointwise(x, weight, bias, channels_last)
        torch.testing.assert_close(native, _matrix_product(x, weight, bias, channels_last), rtol=1e-5, atol=1e-5)


def test_what_the_native_kernel_takes():
    x, weight = torch.randn(1, 4, 3, 3), torch.randn(8, 4)
    assert _native.supports_pointwise(x, weight, None)
    assert _native.supports_pointwise(x.contiguous(memory_format=torch.channels_last), weight, None)
    assert _native.supports_pointwise(x, torch.randn(300, 4), None)  # many outputs from few inputs
    assert not _native.supports_pointwise(x[..., ::2], weight, None)  # neither layout
    assert not _native.supports_pointwise(x, torch.randn(1, 4), None)  # one output: a matrix-vector product
    assert not _native.supports_pointwise(torch.randn(1, 65, 3, 3), torch.randn(65, 65), None)
    assert not _native.supports_pointwise(x.half(), weight.half(), None)
    assert not _native.supports_pointwise(x, weight, torch.randn(8, dtype=torch.float64))


@pytest.mark.parametrize("threads_from", ["torch's OpenMP", "started per call"])
def test_two_threads_give_the_single_thread_result(threads_from, monkeypatch):
    monkeypatch.setattr(_native, "_MIN_WORK_PER_THREAD", 1)
    if threads_from == "started per call":
        monkeypatch.setattr(_native, "_openmp_runner", lambda: None)
    x, weight, bias = torch.randn(3, 11, 9, 21), torch.randn(25, 11), torch.randn(25)
    inputs = (x, x.contiguous(memory_format=torch.channels_last))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = [_native.pointwise(xx, weight, bias, cl) for xx in inputs for cl in (False, True)]
        torch.set_num_threads(2)
        double = [_native.pointwise(xx, weight, bias, cl) for xx in inputs for cl in (False, True)]
    finally:
        torch.set_num_threads(before)
    for a, b in zip(single, double):
        assert torch.equal(a, b)


def test_the_entry_points_refuse_invalid_shapes():
    lib, null = _native._library(), ctypes.c_void_p()
    # (B, C, O, P): negative batch, no channel, no output, no pixel, counts beyond int64 byte offsets.
    for shape in [(-1, 1, 1, 1), (1, 0, 1, 1), (1, 1, 0, 1), (1, 1, 1, 0), (2**40, 2**20, 2, 2**10)]:
        assert lib.fade_pointwise_f32(null, null, null, null, *shape, 0, 0, 1, null) == 2
        assert lib.fade_pointwise_f64(null, null, null, null, *shape, 1, 1, 2, null) == 2
    assert lib.fade_pointwise_f32(null, null, null, null, 0, 3, 4, 5, 1, 0, 1, null) == 0  # empty batch: no work


def _call_op(x, weight, bias, channels_last):
    return torch.ops.fade.pointwise_conv(x, weight, bias, channels_last)


@pytest.mark.parametrize("x_layout", [torch.contiguous_format, torch.channels_last])
def test_gradients_and_second_order_gradients(path, x_layout):
    """The operator's own autograd formula (its input gradient is the operator again), directly
    and through the module helper fade.upsamplers.kernels.pointwise."""
    from fade.upsamplers.kernels import pointwise

    x = torch.randn(2, 2, 3, 2, dtype=torch.float64).contiguous(memory_format=x_layout).requires_grad_()
    for outputs in (66, 3):  # many outputs from few inputs; few outputs
        weight = torch.randn(outputs, 2, dtype=torch.float64, requires_grad=True)
        bias = torch.randn(outputs, dtype=torch.float64, requires_grad=True)
        for channels_last in (False, True):
            fn = partial(_call_op, channels_last=channels_last)
            assert torch.autograd.gradcheck(fn, (x, weight, bias))
            if outputs == 3:  # second order (its cost grows with the outputs)
                assert torch.autograd.gradgradcheck(fn, (x, weight, bias))
    x = torch.randn(1, 12, 3, 4, dtype=torch.float64).contiguous(memory_format=x_layout).requires_grad_()
    grad_x = torch.autograd.grad(pointwise_conv(x, torch.randn(25, 12, dtype=torch.float64)).sum(), x)[0]
    assert grad_x.is_contiguous(memory_format=x_layout)
    conv = torch.nn.Conv2d(12, 25, 1).double()
    assert torch.autograd.gradcheck(lambda t: pointwise(conv, t, True), (x,))


def test_torch_compile_fullgraph_same_values():
    x, weight, bias = torch.randn(2, 8, 5, 7), torch.randn(25, 8), torch.randn(25)
    compiled = torch.compile(pointwise_conv, fullgraph=True, backend="eager")
    for channels_last in (False, True):
        torch.testing.assert_close(compiled(x, weight, bias, channels_last), F.conv2d(x, weight[..., None, None], bias))


def test_autocast_runs_the_matrix_product_in_the_autocast_dtype():
    x, weight = torch.randn(1, 8, 4, 4), torch.randn(25, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pointwise_conv(x, weight)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), F.conv2d(x, weight[..., None, None]), rtol=0.05, atol=0.1)


def test_bad_inputs_are_refused_before_anything_runs():
    x, weight, bias = torch.randn(1, 4, 3, 3), torch.randn(8, 4), torch.randn(8)
    with pytest.raises(ValueError, match=r"weight: expected shape \(C_out, 4\) for x's channels, got \(8, 5\)"):
        pointwise_conv(x, torch.randn(8, 5))
    with pytest.raises(ValueError, match=r"weight: expected shape \(C_out, 4\)"):
        pointwise_conv(x, weight[..., None, None])
    with pytest.raises(ValueError, match=r"bias: expected shape \(8,\), got \(7,\)"):
        pointwise_conv(x, weight, bias[:7])
    with pytest.raises(TypeError, match="weight: expected dtype torch.float32 \\(that of x\\), got torch.float64"):
        pointwise_conv(x, weight.double())
    with pytest.raises(TypeError, match="bias: expected a dense torch.Tensor"):
        pointwise_conv(x, weight, [0.0] * 8)
    with pytest.raises(ValueError, match="x: expected a 4-D tensor"):
        pointwise_conv(x[0], weight)
    with pytest.raises(TypeError, match="x: expected a floating dtype"):
        pointwise_conv(x.long(), weight)
    with pytest.raises(ValueError, match="device mismatch: x is on cpu, weight on meta"):
        pointwise_conv(x, weight.to("meta"))
    assert not _native.supports_pointwise(x, torch.randn(8, 5), None)  # the kernel's own guard
