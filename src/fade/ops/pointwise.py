"""1x1 convolution as a matrix product at every pixel: the compressors and gates of the FADE family.

:func:`pointwise_conv` dispatches to the custom operator ``fade::pointwise_conv`` (opaque to
``torch.compile``), which runs the native kernel (:func:`fade.ops._native.pointwise`) for a
float32/float64 CPU input, contiguous or channels-last, with 2 to 64 output channels or at most
64 input channels (the compressors' input gradients), a broadcast multiply for one input channel
(a gate's input gradient), and one batched matrix product otherwise.
Under autocast and during ONNX export it is the matrix product itself (so autocast casts it, and
the exporter sees standard operators). The operator's autograd formula returns the input's
gradient in the input's own memory layout, computed by the operator again.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _native
from .carafe import _check_companions, _check_tensor, autocast_enabled

__all__ = ["pointwise_conv"]


def pointwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None, channels_last: bool = False) -> Tensor:
    """``weight @ x`` at every pixel, plus ``bias``: a 1x1 convolution (stride 1, one group), differentiable.

    Args:
        x: Tensor[B, C_in, H, W], any memory layout. weight: Tensor[C_out, C_in].
        bias: Tensor[C_out] or None.
        channels_last: return the result in the channels-last layout instead of the contiguous one.

    Returns:
        Tensor[B, C_out, H, W].

    Raises:
        TypeError: a non-tensor or a sparse one, a non-floating ``x``, or a dtype other than x's
            (outside autocast).
        ValueError: ``x`` not 4-D, a weight not (C_out, C_in) for x's C_in channels, a bias not
            (C_out,), or mismatched devices.
    """
    _check_inputs(x, weight, bias)
    if autocast_enabled(x.device.type) or torch.onnx.is_in_onnx_export():
        return _matrix_product(x, weight, bias, channels_last)
    return torch.ops.fade.pointwise_conv(x, weight, bias, channels_last)


def _check_inputs(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """Validate pointwise_conv's inputs before anything runs (TypeError / ValueError)."""
    _check_tensor("x", x, "(B, C_in, H, W)")
    _check_companions(x, {"weight": (weight, "(C_out, C_in)"), "bias": (bias, "(C_out,)")})
    if weight.dim() != 2 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight: expected shape (C_out, {x.shape[1]}) for x's channels, got {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias: expected shape ({weight.shape[0]},), got {tuple(bias.shape)}")


def _matrix_product(x: Tensor, weight: Tensor, bias: Tensor | None, channels_last: bool) -> Tensor:
    """:func:`pointwise_conv` as one batched matrix product, from either layout of x without copying it."""
    b, _, h, w = x.shape
    flat = x.flatten(2)  # (B, C_in, H*W), a view in both layouts
    if channels_last:  # (B, H*W, C_in) @ (C_in, C_out)
        operands = (flat.transpose(1, 2), weight.t().expand(b, -1, -1))
        bias = None if bias is None else bias.view(1, 1, -1)
    else:  # (C_out, C_in) @ (B, C_in, H*W)
        operands = (weight.expand(b, -1, -1), flat)
        bias = None if bias is None else bias.view(1, -1, 1)
    out = torch.bmm(*operands) if bias is None else torch.baddbmm(bias, *operands)
    if channels_last:
        return out.view(b, h, w, weight.shape[0]).permute(0, 3, 1, 2)
    return out.view(b, weight.shape[0], h, w)


def _outer_product(x: Tensor, weight: Tensor, bias: Tensor | None, channels_last: bool) -> Tensor:
    """:func:`pointwise_conv` of a one-channel x: ``weight[:, 0]`` times x at every pixel, one
    broadcast multiply (e.g. the input gradient of a gate's C -> 1 conv)."""
    b, _, h, w = x.shape
    o = weight.shape[0]
    out = _native.empty_map(x, (b, o, h, w), channels_last)
    torch.mul(x, weight.view(1, o, 1, 1), out=out)
    return out if bias is None else out.add_(bias.view(1, o, 1, 1))


@torch.library.custom_op("fade::pointwise_conv", mutates_args=())
def _pointwise_op(x: Tensor, weight: Tensor, bias: Tensor | None, channels_last: bool) -> Tensor:
    """fade::pointwise_conv: a broadcast multiply for one input channel, else the native kernel
    where it applies, else the matrix product."""
    if x.shape[1] == 1:
        return _outer_product(x, weight, bias, channels_last)
    out = _native.pointwise(x, weight, bias, channels_last) if _native.supports_pointwise(x, weight, bias) else None
    return _matrix_product(x, weight, bias, channels_last) if out is None else out


@_pointwise_op.register_fake
def _pointwise_fake(x: Tensor, weight: Tensor, bias: Tensor | None, channels_last: bool) -> Tensor:
    b, _, h, w = x.shape
    return _native.empty_map(x, (b, weight.shape[0], h, w), channels_last)


def _setup_context(ctx, inputs: tuple[Tensor, Tensor, Tensor | None, bool], output: Tensor) -> None:
    x, weight, _, _ = inputs
    ctx.save_for_backward(x, weight)


def _backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
    """Gradients of the 1x1 convolution; the input's comes in the input's own memory layout (so
    adding it to another gradient of x needs no transposition; the conv's backward on CPU also
    builds an input-sized buffer)."""
    x, weight = ctx.saved_tensors
    grad_x = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        x_channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        grad_x = torch.ops.fade.pointwise_conv(grad, weight.t(), None, x_channels_last)
    if ctx.needs_input_grad[1]:  # sum over the batch of (x (C_in, H*W) @ grad^T (H*W, C_out))^T
        # (this order reads both operands of a contiguous x and a channels-last grad row by row,
        # the compressors' case: about 20% faster than grad @ x^T)
        grad_weight = torch.bmm(x.flatten(2), grad.flatten(2).transpose(1, 2)).sum(0).t()
    if ctx.needs_input_grad[2]:
        grad_bias = grad.sum((0, 2, 3))
    return grad_x, grad_weight, grad_bias, None


_pointwise_op.register_autograd(_backward, setup_context=_setup_context)
