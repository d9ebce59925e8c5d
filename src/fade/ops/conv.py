"""The kernel generators' content encoder: a stride-1 "same" convolution with a lean weight gradient.

:func:`same_conv2d` is ``F.conv2d(x, weight, bias, padding=K // 2)`` for an odd kernel and one
group. It dispatches to the custom operator ``fade::same_conv2d`` (opaque to ``torch.compile``),
whose forward and input gradient are torch's own convolutions and whose weight gradient is the
operator ``fade::same_conv2d_weight_grad``. On the CPU that gradient is ``K_h * K_w`` matrix
products over a zero-padded channels-last copy of ``x``: with the gradient padded by zero columns to
the padded width, the window of tap ``(i, j)`` is ``x``'s flattened rows shifted by ``i * W_p + j``,
a view, so no im2col buffer is built. oneDNN's weight gradient for FADE's 64 -> 25 encoder at
128x128 takes about 3x as long on an AVX2 CPU (see the CHANGELOG). Elsewhere (CUDA) it is torch's
weight gradient. Under autocast and during ONNX export :func:`same_conv2d` is ``F.conv2d`` itself.
Second-order gradients are supported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .carafe import _check_companions, _check_tensor, autocast_enabled

__all__ = ["same_conv2d"]


def same_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=(K_h // 2, K_w // 2))``: stride 1, one group, odd kernel, differentiable.

    Args:
        x: Tensor[B, C, H, W], any memory layout. weight: Tensor[O, C, K_h, K_w], K_h and K_w odd.
        bias: Tensor[O] or None.

    Returns:
        Tensor[B, O, H, W], in the layout ``F.conv2d`` gives (channels-last for a channels-last x).

    Raises:
        TypeError: a non-tensor or a sparse one, a non-floating ``x``, or a dtype other than x's
            (outside autocast).
        ValueError: ``x`` not 4-D, a weight not (O, C, K_h, K_w) with odd K_h, K_w for x's C
            channels, a bias not (O,), or mismatched devices.

    Example:
        >>> x, w = torch.randn(2, 8, 5, 7), torch.randn(4, 8, 3, 3)
        >>> torch.allclose(same_conv2d(x, w), F.conv2d(x, w, padding=1), atol=1e-5)
        True
    """
    _check_inputs(x, weight, bias)
    if autocast_enabled(x.device.type) or torch.onnx.is_in_onnx_export():
        return F.conv2d(x, weight, bias, padding=_padding(weight))
    return torch.ops.fade.same_conv2d(x, weight, bias)


def _check_inputs(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """Validate same_conv2d's inputs before anything runs (TypeError / ValueError)."""
    _check_tensor("x", x, "(B, C, H, W)")
    _check_companions(x, {"weight": (weight, "(O, C, K_h, K_w)"), "bias": (bias, "(O,)")})
    if weight.dim() != 4 or weight.shape[1] != x.shape[1] or weight.shape[2] % 2 == 0 or weight.shape[3] % 2 == 0:
        raise ValueError(
            f"weight: expected shape (O, {x.shape[1]}, K_h, K_w) with K_h and K_w odd, got {tuple(weight.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias: expected shape ({weight.shape[0]},), got {tuple(bias.shape)}")


def _padding(weight: Tensor) -> tuple[int, int]:
    return weight.shape[2] // 2, weight.shape[3] // 2


def _output_format(x: Tensor) -> torch.memory_format:
    """The layout of the operator's output: channels-last for a channels-last x (as F.conv2d gives)."""
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


@torch.library.custom_op("fade::same_conv2d", mutates_args=())
def _same_conv2d_op(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """fade::same_conv2d: torch's convolution, in the layout the fake kernel promises."""
    out = F.conv2d(x, weight, bias, padding=_padding(weight))
    return out.contiguous(memory_format=_output_format(x))


@_same_conv2d_op.register_fake
def _same_conv2d_fake(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    shape = (x.shape[0], weight.shape[0], x.shape[2], x.shape[3])
    return x.new_empty(shape).contiguous(memory_format=_output_format(x))


@torch.library.custom_op("fade::same_conv2d_weight_grad", mutates_args=())
def _weight_grad_op(x: Tensor, grad: Tensor, kernel_h: int, kernel_w: int) -> Tensor:
    """fade::same_conv2d_weight_grad: the gradient Tensor[O, C, K_h, K_w] of ``same_conv2d`` w.r.t.
    its weight, from x Tensor[B, C, H, W] and the output's gradient Tensor[B, O, H, W]."""
    if x.device.type != "cpu" or x.numel() == 0 or grad.numel() == 0:
        shape = (grad.shape[1], x.shape[1], kernel_h, kernel_w)
        return torch.nn.grad.conv2d_weight(x, shape, grad, padding=(kernel_h // 2, kernel_w // 2))
    return _shifted_products(x, grad, kernel_h, kernel_w)


def _shifted_products(x: Tensor, grad: Tensor, kernel_h: int, kernel_w: int) -> Tensor:
    """The weight gradient as ``K_h * K_w`` matrix products of shifted row windows.

    ``x`` is copied zero-padded into Tensor[B, H_p, W_p, C] (channels-last, ``H_p = H + K_h - 1``,
    ``W_p = W + K_w - 1``) and ``grad`` into Tensor[B, H_p, W_p, O], zero right of column W and below
    row H; both are then flattened to rows. Row q of grad meets row ``q + i * W_p + j`` of x in tap
    (i, j): for a pixel, its input at that tap; for a zero row of grad, any row (of another image
    too), which adds nothing. So tap (i, j) is ``grad_rows[:N]^T @ x_rows[i * W_p + j:][:N]``; the
    rows past N are all zero rows of grad, so each window fits. The K_w taps of a kernel row are one
    batched product over windows one row apart (overlapping views of the same rows).
    """
    b, c, h, w = x.shape
    o = grad.shape[1]
    rh, rw = kernel_h // 2, kernel_w // 2
    hp, wp = h + 2 * rh, w + 2 * rw
    padded_x = x.new_zeros((b, hp, wp, c))
    padded_x[:, rh : rh + h, rw : rw + w].copy_(x.permute(0, 2, 3, 1))
    padded_grad = grad.new_zeros((b, hp, wp, o))
    padded_grad[:, :h, :w].copy_(grad.permute(0, 2, 3, 1))
    rows = b * hp * wp
    n = rows - 2 * rh * wp - 2 * rw  # the last window, of tap (K_h - 1, K_w - 1), ends at the last row
    grad_rows = padded_grad.view(rows, o)[:n].t().expand(kernel_w, o, n)
    x_rows = padded_x.view(rows, c)
    out = x.new_empty((kernel_h, kernel_w, o, c))
    for i in range(kernel_h):
        torch.bmm(grad_rows, x_rows.as_strided((kernel_w, n, c), (c, c, 1), i * wp * c), out=out[i])
    return out.permute(2, 3, 0, 1).contiguous()


@_weight_grad_op.register_fake
def _weight_grad_fake(x: Tensor, grad: Tensor, kernel_h: int, kernel_w: int) -> Tensor:
    return x.new_empty((grad.shape[1], x.shape[1], kernel_h, kernel_w))


def _setup_context(ctx, inputs: tuple[Tensor, Tensor, Tensor | None], output: Tensor) -> None:
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight)


def _backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
    """The input's gradient by torch's transposed convolution, the weight's by fade::same_conv2d_weight_grad."""
    x, weight = ctx.saved_tensors
    grad_x = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad, padding=_padding(weight))
    if ctx.needs_input_grad[1]:
        grad_weight = torch.ops.fade.same_conv2d_weight_grad(x, grad, weight.shape[2], weight.shape[3])
    if ctx.needs_input_grad[2]:
        grad_bias = grad.sum((0, 2, 3))
    return grad_x, grad_weight, grad_bias


def _weight_grad_setup_context(ctx, inputs: tuple[Tensor, Tensor, int, int], output: Tensor) -> None:
    x, grad, _, _ = inputs
    ctx.save_for_backward(x, grad)


def _weight_grad_backward(ctx, upstream: Tensor) -> tuple[Tensor | None, ...]:
    """The weight gradient is bilinear in (x, grad): its gradients are the two convolutions with
    ``upstream`` as the weight (so second-order gradients of same_conv2d work)."""
    x, grad = ctx.saved_tensors
    padding = _padding(upstream)
    grad_x = torch.nn.grad.conv2d_input(x.shape, upstream, grad, padding=padding) if ctx.needs_input_grad[0] else None
    grad_grad = F.conv2d(x, upstream, padding=padding) if ctx.needs_input_grad[1] else None
    return grad_x, grad_grad, None, None


_same_conv2d_op.register_autograd(_backward, setup_context=_setup_context)
_weight_grad_op.register_autograd(_weight_grad_backward, setup_context=_weight_grad_setup_context)
