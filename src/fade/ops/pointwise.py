"""1x1 convolution as a matrix product at every pixel: the compressors and gates of the FADE family.

:func:`pointwise_conv` dispatches to the custom operator ``fade::pointwise_conv`` (opaque to
``torch.compile``), which runs the native kernel (:func:`fade.ops._native.pointwise`) for a
contiguous float32/float64 CPU input and 2 to 64 output channels, and one batched matrix
product otherwise. Under autocast and during ONNX export it is the matrix
product itself (so autocast casts it, and the exporter sees standard operators). It has no autograd
formula: the caller (``fade.upsamplers.kernels.pointwise``) supplies the backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _native
from .carafe import autocast_enabled

__all__ = ["pointwise_conv"]


def pointwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None, channels_last: bool = False) -> Tensor:
    """``weight @ x`` at every pixel, plus ``bias``: a 1x1 convolution (stride 1, one group).

    Args:
        x: Tensor[B, C_in, H, W], any memory layout. weight: Tensor[C_out, C_in].
        bias: Tensor[C_out] or None.
        channels_last: return the result in the channels-last layout instead of the contiguous one.

    Returns:
        Tensor[B, C_out, H, W].
    """
    if autocast_enabled(x.device.type) or torch.onnx.is_in_onnx_export():
        return _matrix_product(x, weight, bias, channels_last)
    return torch.ops.fade.pointwise_conv(x, weight, bias, channels_last)


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


@torch.library.custom_op("fade::pointwise_conv", mutates_args=())
def _pointwise_op(x: Tensor, weight: Tensor, bias: Tensor | None, channels_last: bool) -> Tensor:
    """fade::pointwise_conv: the native kernel where it applies, else the matrix product."""
    out = _native.pointwise(x, weight, bias, channels_last) if _native.supports_pointwise(x, weight, bias) else None
    return _matrix_product(x, weight, bias, channels_last) if out is None else out


@_pointwise_op.register_fake
def _pointwise_fake(x: Tensor, weight: Tensor, bias: Tensor | None, channels_last: bool) -> Tensor:
    b, _, h, w = x.shape
    if channels_last:
        return x.new_empty((b, h, w, weight.shape[0])).permute(0, 3, 1, 2)
    return x.new_empty((b, weight.shape[0], h, w))
