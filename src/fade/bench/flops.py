"""Flop formulas for fade's own operators, for ``torch.utils.flop_counter.FlopCounterMode``.

torch counts 2 FLOPs per multiply-add (as for convolutions). The reassembly ``fade::carafe`` does
one multiply-add per output element and kernel tap; its backward ``fade::carafe_backward`` does
one for the input gradient and one for the kernel gradient; ``fade::carafe_lerp`` does the
reassembly's and the blend's (:func:`blend_flop`). The 1x1 convolution
``fade::pointwise_conv`` does one per output element and input channel, as the conv it computes;
the content encoder ``fade::same_conv2d`` one per output element and weight element of a filter,
and its weight gradient ``fade::same_conv2d_weight_grad`` as many (its input gradient is torch's
``aten.convolution_backward``).

torch's formula for ``aten.convolution_backward`` ignores groups for the input's gradient; the one
here (:func:`convolution_backward_flop`) counts each gradient asked for at the forward's cost.

torch's registry has formulas for the CUDA attention kernels but not for the CPU one that
``F.scaled_dot_product_attention`` dispatches to on CPU (SegFormer's attention); it gets torch's
own attention formula here, so the count does not depend on the device.

Element-wise products (``aten.mul``) count one FLOP per output element (:func:`product_flop`),
kept apart from the multiply-adds by :func:`fade.bench.measure.count_flops`: the GFLOPs published
with FADE (its repository's tables) count them too, and multiply-adds plus products reproduce those
figures (``fade bench --suite networks``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils.flop_counter import sdpa_flop_count

from ..ops import carafe as _carafe  # noqa: F401  (defines the fade:: operators)
from ..ops import conv as _conv  # noqa: F401
from ..ops import pointwise as _pointwise  # noqa: F401

__all__ = [
    "blend_flop",
    "carafe_backward_flop",
    "carafe_flop",
    "carafe_lerp_flop",
    "convolution_backward_flop",
    "cpu_attention_flop",
    "custom_flop_formulas",
    "pointwise_conv_flop",
    "product_flop",
    "same_conv2d_flop",
    "same_conv2d_weight_grad_flop",
]


def carafe_flop(x_shape, kernels_shape, scale, *, out_shape, **kwargs) -> int:
    """FLOPs of ``fade::carafe``: 2 * numel(output) * K*K."""
    return 2 * math.prod(out_shape) * kernels_shape[1]


def carafe_backward_flop(grad_shape, x_shape, kernels_shape, scale, *, out_shape, **kwargs) -> int:
    """FLOPs of ``fade::carafe_backward``: 2 * 2 * numel(grad) * K*K (input and kernel gradients)."""
    return 4 * math.prod(grad_shape) * kernels_shape[1]


def pointwise_conv_flop(x_shape, weight_shape, *args, out_shape, **kwargs) -> int:
    """FLOPs of ``fade::pointwise_conv``: 2 * numel(output) * C_in (the bias not counted, as for a conv)."""
    return 2 * math.prod(out_shape) * x_shape[1]


def same_conv2d_flop(x_shape, w_shape, *args, out_shape, **kwargs) -> int:
    """FLOPs of ``fade::same_conv2d``: 2 * numel(output) * C * K_h * K_w (the bias not counted)."""
    return 2 * math.prod(out_shape) * math.prod(w_shape[1:])


def same_conv2d_weight_grad_flop(x_shape, grad_shape, kernel_h, kernel_w, *, out_shape, **kwargs) -> int:
    """FLOPs of ``fade::same_conv2d_weight_grad``: the forward's, 2 * numel(grad) * C * K_h * K_w."""
    return 2 * math.prod(grad_shape) * x_shape[1] * kernel_h * kernel_w


def carafe_lerp_flop(x_shape, kernels_shape, end_shape, weight_shape, scale, *, out_shape, **kwargs) -> int:
    """FLOPs of ``fade::carafe_lerp``: :func:`carafe_flop` plus :func:`blend_flop` of the output."""
    return carafe_flop(x_shape, kernels_shape, scale, out_shape=out_shape) + blend_flop(out_shape=out_shape)


def convolution_backward_flop(
    grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups,
    output_mask, *, out_shape, **kwargs
) -> int:
    """FLOPs of ``aten.convolution_backward``: each gradient asked for (input, weight) costs the
    multiply-adds of the forward. (torch's own formula ignores ``groups`` for the input's gradient,
    so it counts a depthwise convolution's C times over.)"""
    # Forward multiply-adds: weight.shape[1] * kernel per element of a conv's output, and of a
    # transposed conv's input (its weight is (C_in, C_out / groups, kernel...)).
    macs = math.prod(x_shape if transposed else grad_out_shape) * math.prod(w_shape[1:])
    return 2 * macs * (int(output_mask[0]) + int(output_mask[1]))


def cpu_attention_flop(query_shape, key_shape, value_shape, *args, out_shape, **kwargs) -> int:
    """FLOPs of ``aten._scaled_dot_product_flash_attention_for_cpu``, by torch's attention formula."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def product_flop(*args, out_shape, **kwargs) -> int:
    """FLOPs of ``aten.mul`` (tensor by tensor or by a number): one per output element."""
    return math.prod(out_shape)


def blend_flop(*args, out_shape, **kwargs) -> int:
    """FLOPs of ``aten.lerp`` (FADE's gate blend ``en * G + up * (1 - G)``): two per output element.

    ``lerp`` computes the blend with one product, but the published figures count the two of the
    paper's formula; counting two keeps the figure a property of the operator, not of its code.
    """
    return 2 * math.prod(out_shape)


def custom_flop_formulas() -> dict[object, Callable[..., int]]:
    """Formulas keyed by operator, to pass as ``FlopCounterMode(custom_mapping=...)``."""
    return {
        torch.ops.fade.carafe: carafe_flop,
        torch.ops.fade.carafe_backward: carafe_backward_flop,
        torch.ops.fade.carafe_lerp: carafe_lerp_flop,
        torch.ops.fade.pointwise_conv: pointwise_conv_flop,
        torch.ops.fade.same_conv2d: same_conv2d_flop,
        torch.ops.fade.same_conv2d_weight_grad: same_conv2d_weight_grad_flop,
        torch.ops.aten.convolution_backward: convolution_backward_flop,
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flop,
    }
