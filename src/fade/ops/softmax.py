"""The semi-shift generators' normalised kernels: ``softmax(high + nearest_up(low), dim=1)`` in one pass.

FADE's kernel logits are the sum of the content encoder applied at the encoder's resolution
(``high``) and at the decoder's, upsampled by nearest neighbour (``low``). :func:`semi_shift_softmax`
dispatches to the custom operator ``fade::semi_shift_softmax`` (opaque to ``torch.compile``, with a
fake kernel and an autograd formula whose backward is ``fade::semi_shift_softmax_backward``). For
float32/float64 CPU tensors in the channels-last layout (what a conv gives from a channels-last
input) the native kernel reads both halves once and writes the contiguous kernels the reassembly
reads, and its backward writes both gradients channels-last (what the conv's backward takes), so no
layout conversion, sum or upsampled copy is left between the convolutions and the reassembly. Any
other input runs the same formula in PyTorch operators. Under autocast and during ONNX export it is
those operators themselves.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _native
from .carafe import _check_tensor, autocast_enabled
from .resize import check_sizes, effective_scale, nearest_upsample, source_index

__all__ = ["semi_shift_softmax"]


def semi_shift_softmax(high: Tensor, low: Tensor, scale: int) -> Tensor:
    """``softmax(high + nearest_upsample(low, high's size, scale), dim=1)``, differentiable.

    Args:
        high: Tensor[B, N, H_out, W_out], the logits at the high resolution, any memory layout.
        low: Tensor[B, N, H, W], the logits at the low resolution; ``(H_out, W_out)`` within
            ``scale - 1`` of ``scale * (H, W)``, as for :func:`fade.ops.nearest_upsample`.
        scale: positive integer.

    Returns:
        Tensor[B, N, H_out, W_out], contiguous.

    Raises:
        TypeError: a non-tensor or a sparse one, a non-floating dtype, dtypes that differ (outside
            autocast), or ``scale`` not a number.
        ValueError: wrong ranks, batch or channels that differ, sizes that do not match ``scale``,
            mismatched devices.

    Example:
        >>> high, low = torch.randn(1, 9, 7, 8), torch.randn(1, 9, 3, 4)
        >>> k = semi_shift_softmax(high, low, 2)
        >>> torch.allclose(k, (high + nearest_upsample(low, (7, 8), 2)).softmax(1), atol=1e-6)
        True
    """
    _check_inputs(high, low, scale)
    if autocast_enabled(high.device.type) or torch.onnx.is_in_onnx_export():
        return _reference(high, low, scale)
    return torch.ops.fade.semi_shift_softmax(high, low, effective_scale(scale, tuple(high.shape[-2:])))


def _check_inputs(high: Tensor, low: Tensor, scale: int) -> None:
    """Validate the inputs before anything runs (TypeError / ValueError)."""
    _check_tensor("high", high, "(B, N, H_out, W_out)")
    _check_tensor("low", low, "(B, N, H, W)")
    if low.device != high.device:
        raise ValueError(f"device mismatch: high is on {high.device}, low on {low.device}")
    if low.dtype != high.dtype and not autocast_enabled(high.device.type):
        raise TypeError(f"low: expected dtype {high.dtype} (that of high), got {low.dtype}")
    if low.shape[:2] != high.shape[:2]:
        raise ValueError(
            f"low: expected batch and channels {tuple(high.shape[:2])} (those of high), got {tuple(low.shape[:2])}"
        )
    check_sizes(tuple(low.shape[-2:]), tuple(high.shape[-2:]), scale, "high spatial size vs low")


def _reference(high: Tensor, low: Tensor, scale: int) -> Tensor:
    """The formula in PyTorch operators (differentiable by autograd)."""
    return (high + nearest_upsample(low, tuple(high.shape[-2:]), scale)).softmax(dim=1).contiguous()


def _reference_backward(grad: Tensor, kernels: Tensor, low_hw: tuple[int, int], scale: int) -> tuple[Tensor, Tensor]:
    """Gradients w.r.t. high and low from the output's gradient and the output, in PyTorch operators.

    Returns:
        (Tensor[B, N, H_out, W_out], Tensor[B, N, H, W]), channels-last as the native kernel's: the
        softmax's gradient, and its sum over the high-resolution pixels that read each low one.
    """
    grad_logits = kernels * (grad - (kernels * grad).sum(1, keepdim=True))
    (b, n, ho, wo), (h, w) = grad.shape, low_hw
    rows = grad_logits.new_zeros((b, n, h, wo)).index_add_(2, source_index(ho, h, scale, grad.device), grad_logits)
    grad_low = rows.new_zeros((b, n, h, w)).index_add_(3, source_index(wo, w, scale, grad.device), rows)
    return _channels_last_copy(grad_logits), _channels_last_copy(grad_low)


def _channels_last_copy(t: Tensor) -> Tensor:
    """``t`` copied into a new tensor whose memory is (B, H, W, N)."""
    return _native.empty_map(t, tuple(t.shape), True).copy_(t)


@torch.library.custom_op("fade::semi_shift_softmax", mutates_args=())
def _softmax_op(high: Tensor, low: Tensor, scale: int) -> Tensor:
    """fade::semi_shift_softmax: the native kernel where it applies, else the PyTorch operators."""
    native = _native.supports_semi_shift_softmax(high, low, scale)
    out = _native.semi_shift_softmax(high, low, scale) if native else None
    return _reference(high, low, scale) if out is None else out


@_softmax_op.register_fake
def _softmax_fake(high: Tensor, low: Tensor, scale: int) -> Tensor:
    return torch.empty_like(high, memory_format=torch.contiguous_format)


@torch.library.custom_op("fade::semi_shift_softmax_backward", mutates_args=())
def _softmax_backward_op(grad: Tensor, kernels: Tensor, low_height: int, low_width: int, scale: int) -> tuple[Tensor, Tensor]:
    """fade::semi_shift_softmax_backward: (grad_high, grad_low) of fade::semi_shift_softmax, both
    channels-last from the native kernel."""
    low_hw = (low_height, low_width)
    native = _native.supports_semi_shift_softmax_backward(grad, kernels, low_hw, scale)
    grads = _native.semi_shift_softmax_backward(grad, kernels, low_hw, scale) if native else None
    return _reference_backward(grad, kernels, low_hw, scale) if grads is None else grads


@_softmax_backward_op.register_fake
def _softmax_backward_fake(
    grad: Tensor, kernels: Tensor, low_height: int, low_width: int, scale: int
) -> tuple[Tensor, Tensor]:
    b, n, ho, wo = grad.shape
    return _native.empty_map(grad, (b, n, ho, wo), True), _native.empty_map(grad, (b, n, low_height, low_width), True)


def _setup_context(ctx, inputs: tuple[Tensor, Tensor, int], output: Tensor) -> None:
    _, low, scale = inputs
    ctx.save_for_backward(output)
    ctx.low_hw, ctx.scale = tuple(low.shape[-2:]), scale


def _backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
    (kernels,) = ctx.saved_tensors
    grad_high, grad_low = torch.ops.fade.semi_shift_softmax_backward(grad, kernels, *ctx.low_hw, ctx.scale)
    need_high, need_low = ctx.needs_input_grad[:2]
    return grad_high if need_high else None, grad_low if need_low else None, None


def _no_double_backward(ctx, grad_high: Tensor, grad_low: Tensor) -> None:
    raise NotImplementedError("fade.ops.semi_shift_softmax: second-order gradients are not supported")


_softmax_op.register_autograd(_backward, setup_context=_setup_context)
_softmax_backward_op.register_autograd(_no_double_backward)
