"""Content-aware reassembly (CARAFE semantics): the upsampling step shared by FADE and CARAFE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .resize import check_scale, check_sizes, infer_scale, source_index

__all__ = ["carafe"]


def _check_inputs(x: Tensor, kernels: Tensor, scale: int | None) -> tuple[int, int]:
    """Validate carafe's inputs; return (kernel_size, scale)."""
    if x.dim() != 4:
        raise ValueError(f"x: expected a 4-D tensor (B, C, H, W), got {x.dim()}-D shape {tuple(x.shape)}")
    if kernels.dim() != 4:
        raise ValueError(
            "kernels: expected a 4-D tensor (B, K*K, H_out, W_out), "
            f"got {kernels.dim()}-D shape {tuple(kernels.shape)}"
        )
    if x.shape[0] != kernels.shape[0]:
        raise ValueError(f"batch mismatch: x has batch {x.shape[0]}, kernels has batch {kernels.shape[0]}")
    k2 = kernels.shape[1]
    k = math.isqrt(k2)
    if k * k != k2 or k % 2 == 0:
        raise ValueError(f"kernels: expected K*K channels with K odd (1, 9, 25, 49, ...), got {k2} channels")
    low, high = tuple(x.shape[-2:]), tuple(kernels.shape[-2:])
    if scale is None:
        scale = infer_scale(low, high)
    else:
        check_scale(scale)
        check_sizes(low, high, scale, "kernels spatial size vs x")
    if x.dtype != kernels.dtype:
        raise ValueError(f"dtype mismatch: x is {x.dtype}, kernels is {kernels.dtype}")
    if x.device != kernels.device:
        raise ValueError(f"device mismatch: x is on {x.device}, kernels on {kernels.device}")
    return k, scale


def carafe(x: Tensor, kernels: Tensor, scale: int | None = None) -> Tensor:
    """Reassemble ``x`` with per-pixel kernels (CARAFE).

    ``out[b, c, y, x] = sum_{i, j} x[b, c, sy + i - K//2, sx + j - K//2] * kernels[b, i*K + j, y, x]``
    with ``sy = min(y // scale, H - 1)`` (likewise ``sx``; see :mod:`fade.ops.resize`) and zero
    padding outside ``x``. The kernels are used as given (normalise them first, e.g. softmax).

    Args:
        x: Tensor[B, C, H, W], the low-resolution feature.
        kernels: Tensor[B, K*K, H_out, W_out] with K odd.
        scale: integer upsampling factor; inferred when (H_out, W_out) is an exact multiple of (H, W),
            required otherwise (e.g. H_out = 2*H + 1 from floor-mode pooling).

    Returns:
        Tensor[B, C, H_out, W_out].

    Example:
        >>> x = torch.randn(2, 16, 7, 5)
        >>> k = torch.randn(2, 25, 14, 10).softmax(dim=1)
        >>> carafe(x, k).shape
        torch.Size([2, 16, 14, 10])
    """
    k, scale = _check_inputs(x, kernels, scale)
    return _carafe_reference(x, kernels, k, scale)


def _carafe_reference(x: Tensor, kernels: Tensor, k: int, scale: int) -> Tensor:
    """Pure-PyTorch reassembly, one tap at a time: memory O(output), no K*K-fold intermediate."""
    h, w = x.shape[-2:]
    ho, wo = kernels.shape[-2:]
    r = k // 2
    acc_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    rows = source_index(ho, h, scale, x.device)
    cols = source_index(wo, w, scale, x.device)
    padded = F.pad(x, (r, r, r, r))
    out = x.new_zeros((x.shape[0], x.shape[1], ho, wo), dtype=acc_dtype)
    for i in range(k):
        row_taps = padded.index_select(2, rows + i)
        for j in range(k):
            tap = row_taps.index_select(3, cols + j)
            out = out + tap.to(acc_dtype) * kernels[:, i * k + j : i * k + j + 1].to(acc_dtype)
    return out.to(x.dtype)
