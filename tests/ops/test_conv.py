"""fade.ops.same_conv2d: values and every gradient against a float64 loop and torch's convolution."""

import pytest
import torch
import torch.nn.functional as F

from fade.ops import same_conv2d
from fade.ops.conv import _shifted_products

# (B, C, O, H, W, K_h, K_w): FADE's 3x3 encoder shape (small), a batch whose windows run into the
# next image, maps smaller than the kernel (one pixel, one row), non-square kernels, a 1x1 kernel,
# one channel in and out, an empty batch.
CASES = [
    (1, 8, 25, 9, 10, 3, 3),
    (3, 4, 5, 6, 7, 3, 3),
    (2, 3, 2, 1, 1, 3, 3),
    (2, 2, 3, 1, 6, 5, 3),
    (1, 3, 4, 5, 4, 1, 5),
    (2, 5, 6, 4, 3, 1, 1),
    (2, 1, 1, 7, 2, 5, 5),
    (0, 3, 2, 4, 4, 3, 3),
]


def loop_weight_grad(x, grad, kh, kw):
    """dW[o, c, i, j] = sum_{b, y, x} grad[b, o, y, x] * x[b, c, y + i - K_h // 2, x + j - K_w // 2], float64."""
    x, grad = x.double(), grad.double()
    b, c, h, w = x.shape
    rh, rw = kh // 2, kw // 2
    padded = F.pad(x, (rw, rw, rh, rh))
    out = torch.zeros(grad.shape[1], c, kh, kw, dtype=torch.float64)
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i : i + h, j : j + w]
            out[:, :, i, j] = torch.einsum("boyx,bcyx->oc", grad, window)
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_values_and_gradients_match_torch_and_the_loop(case, dtype, layout):
    b, c, o, h, w, kh, kw = case
    gen = torch.Generator().manual_seed(sum(case))
    x = torch.randn(b, c, h, w, generator=gen, dtype=dtype).contiguous(memory_format=layout).requires_grad_()
    weight = torch.randn(o, c, kh, kw, generator=gen, dtype=dtype, requires_grad=True)
    bias = torch.randn(o, generator=gen, dtype=dtype, requires_grad=True)
    out = same_conv2d(x, weight, bias)
    expected = F.conv2d(x, weight, bias, padding=(kh // 2, kw // 2))
    tol = {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-10}
    torch.testing.assert_close(out, expected, **tol)
    assert out.stride() == expected.stride()
    grad = torch.randn(out.shape, generator=gen, dtype=dtype)
    ours = torch.autograd.grad(out, (x, weight, bias), grad)
    theirs = torch.autograd.grad(expected, (x, weight, bias), grad)
    for a, e in zip(ours, theirs):
        torch.testing.assert_close(a, e, **tol)
    torch.testing.assert_close(ours[1].double(), loop_weight_grad(x, grad, kh, kw), **tol)
    assert ours[1].is_contiguous()


def test_weight_grad_of_the_fade_encoder_shape_in_float32():
    """64 -> 25 channels at 33x40, batch 2: long sums (2,640 pixels per weight) against float64."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 33, 40, generator=gen).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(2, 25, 33, 40, generator=gen).contiguous(memory_format=torch.channels_last)
    got = _shifted_products(x, grad, 3, 3)
    torch.testing.assert_close(got.double(), loop_weight_grad(x, grad, 3, 3), atol=2e-3, rtol=1e-4)


def test_first_and_second_order_gradients():
    gen = torch.Generator().manual_seed(1)
    f64 = {"dtype": torch.float64, "generator": gen}
    x = torch.randn(2, 3, 4, 5, **f64).requires_grad_()
    weight = torch.randn(2, 3, 3, 5, **f64).requires_grad_()
    bias = torch.randn(2, **f64).requires_grad_()
    assert torch.autograd.gradcheck(same_conv2d, (x, weight, bias))
    assert torch.autograd.gradgradcheck(same_conv2d, (x, weight, bias))
    assert torch.autograd.gradcheck(lambda a, w: same_conv2d(a, w), (x.contiguous(memory_format=torch.channels_last), weight))


def test_torch_compile_fullgraph_same_values_and_gradients():
    x = torch.randn(2, 4, 6, 7, requires_grad=True)
    weight = torch.randn(3, 4, 3, 3, requires_grad=True)
    compiled = torch.compile(same_conv2d, fullgraph=True, backend="eager")
    out = compiled(x, weight)
    torch.testing.assert_close(out, same_conv2d(x, weight))
    grads = torch.autograd.grad(out.sum(), (x, weight))
    expected = torch.autograd.grad(F.conv2d(x, weight, padding=1).sum(), (x, weight))
    for a, e in zip(grads, expected):
        torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-4)


def test_autocast_and_half_precision():
    x, weight = torch.randn(1, 4, 5, 5), torch.randn(3, 4, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = same_conv2d(x, weight)
        expected = F.conv2d(x, weight, padding=1)
    assert mixed.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(mixed, expected)
    half = x.bfloat16().requires_grad_()
    out = same_conv2d(half, weight.bfloat16())
    assert out.dtype == torch.bfloat16
    (grad,) = torch.autograd.grad(out.float().sum(), half)
    assert grad.dtype == torch.bfloat16 and grad.shape == half.shape


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.randn(1, 4, 5, 5), torch.randn(3, 4, 2, 3)), ValueError, r"K_h and K_w odd, got \(3, 4, 2, 3\)"),
        ((torch.randn(1, 4, 5, 5), torch.randn(3, 5, 3, 3)), ValueError, r"expected shape \(O, 4, K_h, K_w\)"),
        ((torch.randn(1, 4, 5, 5), torch.randn(3, 4, 3)), ValueError, r"expected shape \(O, 4, K_h, K_w\)"),
        ((torch.randn(4, 5, 5), torch.randn(3, 4, 3, 3)), ValueError, r"x: expected a 4-D tensor"),
        ((torch.randn(1, 4, 5, 5), torch.randn(3, 4, 3, 3), torch.randn(4)), ValueError, r"bias: expected shape \(3,\)"),
        ((torch.randn(1, 4, 5, 5), torch.randn(3, 4, 3, 3).double()), TypeError, r"weight: expected dtype torch.float32"),
        ((torch.ones(1, 4, 5, 5, dtype=torch.long), torch.ones(3, 4, 3, 3)), TypeError, r"x: expected a floating dtype"),
        ((torch.randn(1, 4, 5, 5), [[0.0]]), TypeError, r"weight: expected a dense torch.Tensor"),
        ((torch.randn(1, 4, 5, 5), torch.randn(3, 4, 3, 3, device="meta")), ValueError, r"device mismatch"),
    ],
)
def test_bad_inputs_are_refused_with_what_was_expected(args, error, match):
    with pytest.raises(error, match=match):
        same_conv2d(*args)
