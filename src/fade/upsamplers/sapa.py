"""SAPA (Lu, Liu, Ye, Fu, Liu, Cao, NeurIPS 2022): similarity-aware point affiliation.

Each high-resolution output point attends to the K x K decoder points around its source:
``out[Y, X] = sum_t softmax_t(q[Y, X] . k[sy + i - K//2, sx + j - K//2]) * de[same point]`` with the
encoder feature as query, ``q = Linear(LayerNorm(en))``, and the decoder feature as key,
``k = Linear(LayerNorm(de))`` (the "bilinear" similarity, SAPA-B, of the authors' release). Keys
outside the map are zero (similarity 0), values outside are zero, as in the authors' CUDA kernels.
The weighted sum is a CARAFE reassembly of ``de`` with the attention as kernels, so it reuses
:func:`fade.ops.carafe`; the similarity is built one key-row tap at a time (no K*K x d intermediate).

Defaults K = 5 and embedding dimension d = 32: the released module defaults to d = 64, but the
published parameter counts (+0.1M in SegFormer-B1 with six upsamplers at C = 256, +0.04M in A2U
matting at C = 256/128/64/64) are those of d = 32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.carafe import carafe
from ..ops.resize import check_sizes, effective_scale, source_index
from ._checks import check_ints, check_tensors, factory_kwargs, linear
from .base import Upsampler
from .registry import options_of, register_upsampler

__all__ = ["SAPA", "local_similarity", "sapa_attention"]


def local_similarity(query: Tensor, key: Tensor, kernel_size: int, scale: int) -> Tensor:
    """Dot products of each query with the K x K keys around its source point.

    ``sim[b, i*K + j, Y, X] = sum_d query[b, d, Y, X] * key[b, d, sy + i - K//2, sx + j - K//2]``,
    ``sy = min(Y // scale, h - 1)`` (likewise sx), zero outside the key map.

    One key-row tap at a time: the key rows are gathered to the query rows, the K column taps are a
    sliding-window view, and the s queries that share a key column meet their K keys in one batched
    product. Memory O(d * K * H * W / s) beyond the output.

    Args:
        query: Tensor[B, d, H, W], high resolution.
        key: Tensor[B, d, h, w], low resolution, |H - s*h| < s and |W - s*w| < s.
        kernel_size: K, odd.
        scale: positive integer s.

    Returns:
        Tensor[B, K*K, H, W].
    """
    check_tensors(4, query=query, key=key)
    if query.shape[:2] != key.shape[:2]:
        raise ValueError(
            f"query and key: expected (B, d, H, W) and (B, d, h, w) with the same B and d, "
            f"got {tuple(query.shape)} and {tuple(key.shape)}"
        )
    check_ints(odd=True, kernel_size=kernel_size)
    (ho, wo), (h, w) = query.shape[-2:], key.shape[-2:]
    check_sizes((h, w), (ho, wo), scale, "query spatial size vs key")
    b, d = query.shape[:2]
    # the same mapping at any scale past the query's size (keeps s * w small; see effective_scale)
    k, r, s = kernel_size, kernel_size // 2, effective_scale(scale, (ho, wo))
    rows = source_index(ho, h, s, query.device)
    q = query.permute(0, 2, 3, 1)
    core = min(wo, s * w)
    q_core = F.pad(q[:, :, :core], (0, 0, 0, s * w - core)).reshape(b, ho, w, s, d)
    keys = F.pad(key, (r, r, r, r)).permute(0, 2, 3, 1)
    row_taps = []
    for i in range(k):
        windows = keys.index_select(1, rows + i).unfold(2, k, 1)
        sim = torch.einsum("bywsd,bywdk->bywsk", q_core, windows).reshape(b, ho, s * w, k)[:, :, :core]
        if wo > core:
            extra = torch.einsum("byxd,bydk->byxk", q[:, :, core:], windows[:, :, w - 1])
            sim = torch.cat([sim, extra], dim=2)
        row_taps.append(sim)
    return torch.stack(row_taps, dim=3).reshape(b, ho, wo, k * k).permute(0, 3, 1, 2).contiguous()


def sapa_attention(query: Tensor, key: Tensor, value: Tensor, kernel_size: int, scale: int) -> Tensor:
    """Local attention upsampling: softmax of :func:`local_similarity`, then reassembly of ``value``.

    Args:
        query: Tensor[B, d, H, W]; key: Tensor[B, d, h, w]; value: Tensor[B, C, h, w].
        kernel_size: K, odd. scale: positive integer s.

    Returns:
        Tensor[B, C, H, W].
    """
    check_tensors(4, query=query, key=key, value=value)
    if value.shape[0] != key.shape[0] or value.shape[-2:] != key.shape[-2:]:
        raise ValueError(f"value: expected batch and spatial size of key {tuple(key.shape)}, got {tuple(value.shape)}")
    attention = local_similarity(query, key, kernel_size, scale).softmax(dim=1)
    return carafe(value, attention, scale)


class SAPA(Upsampler):
    """SAPA-B: encoder queries, decoder keys, softmax over a K x K window, reassembly of ``de``.

    Args:
        en_channels: C_en. de_channels: C_de. scale: s.
        kernel_size: K (paper: 5). embedding_dim: d (see the module notes: 32).

    Shape:
        en: (B, C_en, H_en, W_en); de: (B, C_de, H, W) -> (B, C_de, H_en, W_en).
    """

    def __init__(
        self,
        en_channels: int,
        de_channels: int,
        scale: int = 2,
        kernel_size: int = 5,
        embedding_dim: int = 32,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(en_channels, de_channels, scale)
        check_ints(embedding_dim=embedding_dim)
        check_ints(odd=True, kernel_size=kernel_size)
        f = factory_kwargs(device, dtype)
        self.kernel_size = kernel_size
        self.norm_en = nn.LayerNorm(en_channels, **f)
        self.norm_de = nn.LayerNorm(de_channels, **f)
        self.query = linear(en_channels, embedding_dim, **f)
        self.key = linear(de_channels, embedding_dim, **f)
        for m in (self.query, self.key):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    @staticmethod
    def _embed(x: Tensor, norm: nn.LayerNorm, projection: nn.Linear) -> Tensor:
        """Per-pixel LayerNorm then Linear over channels: (B, C, H, W) -> (B, d, H, W)."""
        return projection(norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        self.check_inputs(en, de)
        query = self._embed(en, self.norm_en, self.query)
        key = self._embed(de, self.norm_de, self.key)
        return sapa_attention(query, key, de, self.kernel_size, self.scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}"


@register_upsampler("sapa", options_of(SAPA))
def _sapa(en_channels: int, de_channels: int, scale: int, **options) -> SAPA:
    return SAPA(en_channels, de_channels, scale, **options)
