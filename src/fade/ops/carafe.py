"""Content-aware reassembly (CARAFE semantics): the upsampling step shared by FADE and CARAFE.

:func:`carafe` is the entry point; :func:`carafe_lerp` blends its result with a second tensor as it
is written (FADE's gate), in one pass. :func:`carafe` dispatches to the custom operator
``fade::carafe`` (``torch.library.custom_op`` with a fake kernel and an autograd formula whose
backward is the second operator ``fade::carafe_backward``), :func:`carafe_lerp` to
``fade::carafe_lerp`` (whose autograd formula uses the same backward), so
``torch.compile(fullgraph=True)`` sees one opaque node. Each operator runs

- the fused native CPU kernel (:mod:`fade.ops._native`) for float32/float64 CPU tensors (float16
  and bfloat16 are converted to float32 and back), or
- the pure-PyTorch path everywhere else (CUDA, no C++ compiler, ``FADE_DISABLE_NATIVE=1``, sizes
  whose scratch the native kernel cannot index or allocate): one tap at a time, with a backward
  that recomputes the taps. Both paths give the same values (to rounding).

Neither path builds a K*K-fold intermediate, forward or backward: the native forward allocates
only its output and the native backward only the two gradients (plus O(C*K*W) scratch per thread);
the pure-PyTorch path peaks at a few output-sized temporaries. During ONNX export (TorchScript or
dynamo exporter) :func:`carafe` traces the pure-PyTorch forward into standard ONNX operators.
Second-order gradients are not supported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _native
from .resize import (
    check_extents,
    check_map,
    check_output,
    check_scale,
    check_sizes,
    effective_scale,
    infer_scale,
    source_index,
)

__all__ = ["autocast_enabled", "carafe", "carafe_lerp"]


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_tensor(name: str, t: object, dims: str) -> None:
    """Raise unless ``t`` is a dense 4-D tensor of a supported floating dtype (TypeError / ValueError)."""
    check_map(name, t, dims)
    if t.dtype not in _FLOAT_DTYPES:
        supported = ", ".join(map(str, _FLOAT_DTYPES))
        raise TypeError(f"{name}: expected a floating dtype ({supported}), got {t.dtype}")


def _check_companions(x: Tensor, companions: dict[str, tuple[Tensor | None, str]]) -> None:
    """Raise unless each named tensor (None skipped) is dense, on x's device and, outside autocast,
    of x's dtype (TypeError / ValueError); ``dims`` describes its expected shape in the message."""
    for name, (t, dims) in companions.items():
        if t is None:
            continue
        if not isinstance(t, Tensor) or t.layout != torch.strided:
            raise TypeError(f"{name}: expected a dense torch.Tensor {dims}, got {type(t).__name__}")
        if t.device != x.device:
            raise ValueError(f"device mismatch: x is on {x.device}, {name} on {t.device}")
        if t.dtype != x.dtype and not autocast_enabled(x.device.type):
            raise TypeError(f"{name}: expected dtype {x.dtype} (that of x), got {t.dtype}")


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (never on meta and other devices it does not serve):
    fade::carafe then runs in float32 (its autocast rule), and mixed input dtypes are torch's to cast."""
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def _check_inputs(x: Tensor, kernels: Tensor, scale: int | None) -> tuple[int, int]:
    """Validate carafe's inputs before anything is allocated; return (kernel_size, effective scale)."""
    _check_tensor("x", x, "(B, C, H, W)")
    _check_tensor("kernels", kernels, "(B, K*K, H_out, W_out)")
    if x.dtype != kernels.dtype and not autocast_enabled(x.device.type):
        raise TypeError(f"kernels: expected dtype {x.dtype} (that of x), got {kernels.dtype}")
    if x.device != kernels.device:
        raise ValueError(f"device mismatch: x is on {x.device}, kernels on {kernels.device}")
    if x.shape[0] != kernels.shape[0]:
        raise ValueError(f"batch mismatch: x has batch {x.shape[0]}, kernels has batch {kernels.shape[0]}")
    k2 = kernels.shape[1]
    k = math.isqrt(k2)
    if k * k != k2 or k % 2 == 0:
        raise ValueError(f"kernels: expected K*K channels with K odd (1, 9, 25, 49, ...), got {k2} channels")
    low, high = tuple(x.shape[-2:]), tuple(kernels.shape[-2:])
    check_extents("x", "spatial", low)
    check_extents("kernels", "spatial", high)
    if scale is None:
        scale = infer_scale(low, high)
    else:
        scale = check_scale(scale)
        check_sizes(low, high, scale, "kernels spatial size vs x")
    check_output((x.shape[0], x.shape[1], *high), x.dtype)
    return k, effective_scale(scale, high)


def carafe(x: Tensor, kernels: Tensor, scale: int | None = None) -> Tensor:
    """Reassemble ``x`` with per-pixel kernels (CARAFE).

    ``out[b, c, y, x] = sum_{i, j} x[b, c, sy + i - K//2, sx + j - K//2] * kernels[b, i*K + j, y, x]``
    with ``sy = min(y // scale, H - 1)`` (likewise ``sx``; see :mod:`fade.ops.resize`) and zero
    padding outside ``x``. The kernels are used as given (normalise them first, e.g. softmax).
    Differentiable w.r.t. ``x`` and ``kernels``; any memory layout is accepted, the result is
    contiguous. Half-precision inputs are accumulated in float32 and returned in their own dtype;
    under ``torch.autocast`` both inputs are cast to float32 and the result is float32.

    Args:
        x: Tensor[B, C, H, W], the low-resolution feature.
        kernels: Tensor[B, K*K, H_out, W_out] with K odd, same dtype and device as ``x``.
        scale: integer upsampling factor; inferred when (H_out, W_out) is an exact multiple of (H, W),
            required otherwise (e.g. H_out = 2*H + 1 from floor-mode pooling).

    Returns:
        Tensor[B, C, H_out, W_out]; on the meta device, its shape only.

    Raises:
        TypeError: ``x`` or ``kernels`` is not a dense tensor of float16, bfloat16, float32 or
            float64, their dtypes differ (outside autocast), or ``scale`` is not a number.
        ValueError: wrong ranks, batch, K*K or spatial sizes (every extent must be positive),
            mismatched devices, ``scale`` not a positive integer, or an output larger
            than a tensor can hold. Checked before anything is allocated.

    Example:
        >>> x = torch.randn(2, 16, 7, 5)
        >>> k = torch.randn(2, 25, 14, 10).softmax(dim=1)
        >>> carafe(x, k).shape
        torch.Size([2, 16, 14, 10])
    """
    k, scale = _check_inputs(x, kernels, scale)
    if torch.onnx.is_in_onnx_export():
        return _carafe_reference(x, kernels, k, scale)
    return torch.ops.fade.carafe(x, kernels, scale)


def carafe_lerp(x: Tensor, kernels: Tensor, end: Tensor, weight: Tensor, scale: int | None = None) -> Tensor:
    """``torch.lerp(carafe(x, kernels, scale), end, weight)``: the reassembly blended with ``end``.

    Where the native kernel applies, each value is blended as it is written (``fade::carafe_lerp``),
    with no second pass over the output; otherwise it is the two steps. Differentiable w.r.t. all
    four inputs; autograd keeps no output-sized tensor (the backward reassembles nothing again: the
    blend's gradient w.r.t. ``weight`` needs ``sum_c grad * carafe(x, kernels)``, which is
    ``sum_t kernels_t * grad_kernels_t``). FADE's gate blend ``en * G + up * (1 - G)`` is
    ``carafe_lerp(de, kernels, en, G)``. Under ``torch.autocast`` all four inputs are cast to
    float32 and the result is float32.

    Args:
        x, kernels, scale: as :func:`carafe`.
        end: Tensor[B, C, H_out, W_out], the reassembly's shape. weight: Tensor[B, 1, H_out, W_out],
            one blend weight per pixel, shared by the channels. Both of x's dtype and device.

    Returns:
        Tensor[B, C, H_out, W_out].

    Raises:
        TypeError / ValueError: as :func:`carafe`, and for an ``end`` or ``weight`` of another
            shape, dtype (outside autocast) or device.

    Example:
        >>> x, k = torch.randn(1, 8, 4, 4), torch.randn(1, 9, 8, 8).softmax(dim=1)
        >>> end, g = torch.randn(1, 8, 8, 8), torch.rand(1, 1, 8, 8)
        >>> torch.allclose(carafe_lerp(x, k, end, g), torch.lerp(carafe(x, k), end, g), atol=1e-6)
        True
    """
    _, scale = _check_inputs(x, kernels, scale)
    _check_blend(x, kernels, end, weight)
    if torch.onnx.is_in_onnx_export():
        up = carafe(x, kernels, scale)
        return torch.lerp(up, end.to(up.dtype), weight.to(up.dtype))
    return torch.ops.fade.carafe_lerp(x, kernels, end, weight, scale)


def _check_blend(x: Tensor, kernels: Tensor, end: Tensor, weight: Tensor) -> None:
    """Validate carafe_lerp's ``end`` and ``weight`` against the reassembly (TypeError / ValueError)."""
    out = (x.shape[0], x.shape[1], *kernels.shape[-2:])
    for name, t, shape, dims in (
        ("end", end, out, "(B, C, H_out, W_out)"),
        ("weight", weight, (out[0], 1, *out[2:]), "(B, 1, H_out, W_out)"),
    ):
        _check_tensor(name, t, dims)
        if tuple(t.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape} {dims} for this reassembly, got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"device mismatch: x is on {x.device}, {name} on {t.device}")
        if t.dtype != x.dtype and not autocast_enabled(x.device.type):
            raise TypeError(f"{name}: expected dtype {x.dtype} (that of x), got {t.dtype}")


def _kernel_size(kernels: Tensor) -> int:
    """K from kernels of shape (B, K*K, H_out, W_out) (already validated)."""
    return math.isqrt(kernels.shape[1])


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for the half types, the dtype itself otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _reference_operands(x: Tensor, kernels: Tensor, k: int, scale: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """What the pure-PyTorch reassembly and its gradients read, in the accumulation dtype.

    Args:
        x: Tensor[B, C, H, W]. kernels: Tensor[B, K*K, H_out, W_out]. k: K. scale: s.

    Returns:
        (x zero-padded by K // 2 on every side, kernels, the source row of each output row
        Tensor[H_out], the source column of each output column Tensor[W_out]).
    """
    (h, w), (ho, wo), r = x.shape[-2:], kernels.shape[-2:], k // 2
    acc_dtype = _accumulation_dtype(x.dtype)
    rows = source_index(ho, h, scale, x.device)
    cols = source_index(wo, w, scale, x.device)
    return F.pad(x, (r, r, r, r)).to(acc_dtype), kernels.to(acc_dtype), rows, cols


def _carafe_reference(x: Tensor, kernels: Tensor, k: int, scale: int) -> Tensor:
    """Pure-PyTorch reassembly, one tap at a time; peak extra memory about 2.5x the output.

    Args:
        x: Tensor[B, C, H, W]. kernels: Tensor[B, K*K, H_out, W_out]. k: K. scale: s.

    Returns:
        Tensor[B, C, H_out, W_out], contiguous, in x's dtype.
    """
    padded, weights, rows, cols = _reference_operands(x, kernels, k, scale)
    out = padded.new_zeros((x.shape[0], x.shape[1], *kernels.shape[-2:]))
    for j in range(k):
        col_taps = padded.index_select(3, cols + j)  # whole-row gathers below are cheaper than column ones
        for i in range(k):
            out.addcmul_(col_taps.index_select(2, rows + i), weights[:, i * k + j : i * k + j + 1])
    return out.to(x.dtype)


def _carafe_reference_backward(grad: Tensor, x: Tensor, kernels: Tensor, k: int, scale: int) -> tuple[Tensor, Tensor]:
    """Pure-PyTorch gradients of the reassembly; taps are recomputed, peak extra memory about 4x the output.

    Args:
        grad: Tensor[B, C, H_out, W_out]. x, kernels, k, scale: as in :func:`_carafe_reference`.

    Returns:
        (grad_x Tensor[B, C, H, W], grad_kernels Tensor[B, K*K, H_out, W_out]), contiguous.
    """
    padded, weights, rows, cols = _reference_operands(x, kernels, k, scale)
    g = grad.to(padded.dtype)
    grad_padded = torch.zeros_like(padded)
    grad_kernels = weights.new_empty(weights.shape)
    for j in range(k):
        col_taps = padded.index_select(3, cols + j)
        grad_cols = torch.zeros_like(col_taps)
        for i in range(k):
            tap = col_taps.index_select(2, rows + i)
            grad_kernels[:, i * k + j] = (g * tap).sum(dim=1)
            grad_cols.index_add_(2, rows + i, g * weights[:, i * k + j : i * k + j + 1])
        grad_padded.index_add_(3, cols + j, grad_cols)
    (h, w), r = x.shape[-2:], k // 2
    grad_x = grad_padded[:, :, r : r + h, r : r + w]
    return grad_x.to(x.dtype).contiguous(), grad_kernels.to(kernels.dtype)


@torch.library.custom_op("fade::carafe", mutates_args=())
def _carafe_op(x: Tensor, kernels: Tensor, scale: int) -> Tensor:
    """fade::carafe: the native kernel where it applies, else the pure-PyTorch reassembly."""
    k = _kernel_size(kernels)
    out = _native.forward(x, kernels, k, scale) if _native.supports(x, kernels, k, scale) else None
    return _carafe_reference(x, kernels, k, scale) if out is None else out


@_carafe_op.register_fake
def _carafe_fake(x: Tensor, kernels: Tensor, scale: int) -> Tensor:
    return x.new_empty((x.shape[0], x.shape[1], kernels.shape[2], kernels.shape[3]))


@torch.library.custom_op("fade::carafe_lerp", mutates_args=())
def _carafe_lerp_op(x: Tensor, kernels: Tensor, end: Tensor, weight: Tensor, scale: int) -> Tensor:
    """fade::carafe_lerp: the native kernel blending as it writes where it applies, else two steps."""
    k = _kernel_size(kernels)
    native = _native.supports(x, kernels, k, scale)
    out = _native.forward(x, kernels, k, scale, blend=(end, weight)) if native else None
    if out is None:
        out = _carafe_reference(x, kernels, k, scale)
        out.lerp_(end.to(out.dtype), weight.to(out.dtype))
    return out


@_carafe_lerp_op.register_fake
def _carafe_lerp_fake(x: Tensor, kernels: Tensor, end: Tensor, weight: Tensor, scale: int) -> Tensor:
    return x.new_empty((x.shape[0], x.shape[1], kernels.shape[2], kernels.shape[3]))


@torch.library.custom_op("fade::carafe_backward", mutates_args=())
def _carafe_backward_op(grad: Tensor, x: Tensor, kernels: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """fade::carafe_backward: (grad_x, grad_kernels) of fade::carafe."""
    k = _kernel_size(kernels)
    grads = _native.backward(grad, x, kernels, k, scale) if _native.supports(x, kernels, k, scale) else None
    return _carafe_reference_backward(grad, x, kernels, k, scale) if grads is None else grads


@_carafe_backward_op.register_fake
def _carafe_backward_fake(grad: Tensor, x: Tensor, kernels: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    return x.new_empty(x.shape), kernels.new_empty(kernels.shape)


@torch.library.custom_op("fade::blend_grads", mutates_args=())
def _blend_grads_op(grad: Tensor, end: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """fade::blend_grads: ``grad * weight`` and ``(grad * end).sum(1, keepdim=True)``, the gradients
    of ``torch.lerp(up, end, weight)`` that involve ``end``: by the native kernel in one pass over
    grad where it applies, else with channels summed 16 at a time (no output-sized temporary)."""
    done = _native.blend_grads(grad, end, weight) if _native.supports_blend_grads(grad, end, weight) else None
    return (grad * weight, _channel_dot(grad, end)) if done is None else done


def _channel_dot(grad: Tensor, end: Tensor) -> Tensor:
    """``(grad * end).sum(1, keepdim=True)``, 16 channels at a time (no output-sized temporary)."""
    return sum((g * e).sum(1, keepdim=True) for g, e in zip(grad.split(16, 1), end.split(16, 1)))


@_blend_grads_op.register_fake
def _blend_grads_fake(grad: Tensor, end: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    return torch.empty_like(grad), grad.new_empty((grad.shape[0], 1, *grad.shape[2:]))


def _setup_context(ctx, inputs: tuple[Tensor, Tensor, int], output: Tensor) -> None:
    x, kernels, scale = inputs
    ctx.save_for_backward(x, kernels)
    ctx.scale = scale


def _backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
    x, kernels = ctx.saved_tensors
    grad_x, grad_kernels = torch.ops.fade.carafe_backward(grad, x, kernels, ctx.scale)
    return grad_x, grad_kernels, None


def _lerp_setup_context(ctx, inputs: tuple[Tensor, Tensor, Tensor, Tensor, int], output: Tensor) -> None:
    x, kernels, end, weight, scale = inputs
    ctx.save_for_backward(x, kernels, end, weight)
    ctx.scale = scale


def _lerp_backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
    """Gradients of ``up + weight * (end - up)``, ``up = carafe(x, kernels)``, with no output-sized
    temporary but ``grad * weight``: ``up * (1 - weight)`` is the reassembly with the kernels
    ``kernels * (1 - weight)``, and ``sum_c grad * up = sum_t kernels_t * grad_kernels_t``."""
    x, kernels, end, weight = ctx.saved_tensors
    need_x, need_kernels, need_end, need_weight = ctx.needs_input_grad[:4]
    grad_x = grad_kernels = grad_end = grad_weight = None
    if need_x or need_kernels or need_weight:
        keep = (1 - weight).to(kernels.dtype)
        grad_x, taps = torch.ops.fade.carafe_backward(grad, x, kernels * keep, ctx.scale)
        grad_kernels = taps * keep if need_kernels else None
    if need_end:  # with the channel sum of grad * end in the same pass
        grad_end, dot = torch.ops.fade.blend_grads(grad, end, weight.to(grad.dtype))
    elif need_weight:  # (a frozen end: no output-sized grad * weight is written for nothing)
        dot = _channel_dot(grad, end)
    if need_weight:  # sum over channels of grad * (end - up)
        grad_weight = dot - (taps * kernels).sum(1, keepdim=True)
    return grad_x if need_x else None, grad_kernels, grad_end, grad_weight, None


def _no_double_backward(ctx, grad_x: Tensor, grad_kernels: Tensor) -> None:
    raise NotImplementedError("fade.ops.carafe: second-order gradients (through its backward) are not supported")


_carafe_op.register_autograd(_backward, setup_context=_setup_context)
_carafe_lerp_op.register_autograd(_lerp_backward, setup_context=_lerp_setup_context)
# Under autocast both operators run in float32 (as torch's precision-sensitive ops do): the kernels
# a half-precision conv predicts and a float32 feature meet in one dtype, accumulated in float32.
for _device_type in ("cpu", "cuda"):
    for _op in (_carafe_op, _carafe_backward_op, _carafe_lerp_op, _blend_grads_op):
        _op.register_autocast(_device_type, torch.float32)
_carafe_backward_op.register_autograd(_no_double_backward)
