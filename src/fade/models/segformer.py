"""SegFormer (Xie et al., NeurIPS 2021) with a pluggable upsampler in its all-MLP head.

Encoder: the Mix Transformer (MiT). Stage i embeds overlapping patches (conv 7x7/4 for the first
stage, 3x3/2 after, each + LayerNorm), runs ``depths[i]`` blocks of efficient self-attention (keys
and values from a map reduced by a ``sr_ratios[i]`` x ``sr_ratios[i]`` strided conv + LayerNorm) and
Mix-FFN (Linear, 3x3 depthwise conv, GELU, Linear), pre-norm with residuals and optional
stochastic depth, then a LayerNorm. Outputs at strides 4, 8, 16, 32. Defaults are MiT-B1.

Head (embed dim E = 256 for B1): each level is projected to E channels by a Linear, brought to the
stride-4 size, concatenated as [c4, c3, c2, c1], fused by 1x1 conv + BN + ReLU, dropped out
(Dropout2d 0.1) and classified by a 1x1 conv. How levels reach stride 4 is ``layout``:

- ``"chain"`` (FADE's plug-in): chains of x2 upsamplers, 3 + 2 + 1 = 6 modules; the guide ``en``
  of each step is the projected feature of the next finer level.
- ``"direct"`` (the stock head's layout): one upsampler per level at scale 2, 4, 8, guided by the
  projected stride-4 feature. With ``upsampler="bilinear"`` this is exactly the stock SegFormer
  head (one ``F.interpolate(size=c1's size, mode="bilinear", align_corners=False)`` per level)
  whenever the stride-4 map is an exact multiple of the coarser ones, i.e. for inputs whose
  sides are multiples of 32, as the authors' test pipeline makes them. A chain of x2 bilinear
  steps is not the same function as one x8 bilinear step (it blurs more), so ``"chain"`` with
  bilinear equals the stock head on the c2 level only.

Sizes: convs with padding ``k // 2`` give ceil-mode sizes (ceil(H/4), then halved with ceil), so
each level is within one pixel of twice the next and every upsampler's odd-size support applies;
no padding or cropping of the input. Logits come at ceil(H/4) x ceil(W/4); :meth:`SegFormer.predict`
resizes them to the input size (bilinear, align_corners=False) for losses and evaluation.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..upsamplers import create_upsampler
from ..upsamplers._checks import check_input
from .layers import DropPath, ModuleFactory, check_widths, conv_norm_act, init_conv
from .registry import register_model

__all__ = [
    "EfficientSelfAttention",
    "MixFFN",
    "MixTransformer",
    "MixTransformerBlock",
    "OverlapPatchEmbed",
    "SegFormer",
    "SegFormerHead",
]

Layout = Literal["chain", "direct"]
TokenNorm = partial(nn.LayerNorm, eps=1e-6)


def _linear(in_features: int, out_features: int, device=None, dtype=None) -> nn.Linear:
    """Linear layer with MiT's init: truncated normal (std 0.02) weights, zero bias."""
    layer = nn.Linear(in_features, out_features, device=device, dtype=dtype)
    nn.init.trunc_normal_(layer.weight, std=0.02)
    nn.init.zeros_(layer.bias)
    return layer


def _to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def _to_map(tokens: Tensor, hw: tuple[int, int]) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *hw)


class OverlapPatchEmbed(nn.Module):
    """Overlapping patch embedding: conv k x k, stride s, padding k // 2, then LayerNorm (eps 1e-5).

    Shape:
        (B, C_in, H, W) -> tokens (B, h*w, C_out) and (h, w) = (ceil(H / s), ceil(W / s)) for k > s.
    """

    def __init__(self, in_channels: int, out_channels: int, patch_size: int, stride: int, device=None, dtype=None):
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.proj = init_conv(nn.Conv2d(in_channels, out_channels, patch_size, stride, patch_size // 2, **f))
        self.norm = nn.LayerNorm(out_channels, **f)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        x = self.proj(x)
        return self.norm(_to_tokens(x)), (x.shape[-2], x.shape[-1])


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a spatially reduced map.

    With ``sr_ratio`` R > 1 the (h, w) map is reduced by a conv R x R, stride R, + LayerNorm
    (eps 1e-5) before the key/value projection, so attention costs N * N / R^2.

    Shape:
        tokens (B, h*w, C), hw = (h, w) with h, w >= R -> (B, h*w, C).
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, device=None, dtype=None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads: expected a divisor of the width {dim}, got {num_heads}")
        f = {"device": device, "dtype": dtype}
        self.num_heads, self.sr_ratio = num_heads, sr_ratio
        self.q = _linear(dim, dim, **f)
        self.kv = _linear(dim, 2 * dim, **f)
        self.proj = _linear(dim, dim, **f)
        self.reduce = self.norm = None
        if sr_ratio > 1:
            self.reduce = init_conv(nn.Conv2d(dim, dim, sr_ratio, sr_ratio, **f))
            self.norm = nn.LayerNorm(dim, **f)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        q = self.q(x).view(b, n, heads, c // heads).transpose(1, 2)
        source = x
        if self.reduce is not None:
            source = self.norm(_to_tokens(self.reduce(_to_map(x, hw))))
        k, v = self.kv(source).view(b, source.shape[1], 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    """Mix-FFN: Linear C -> hidden, 3x3 depthwise conv (with bias), GELU, Linear hidden -> C.

    Shape:
        tokens (B, h*w, C), hw = (h, w) -> (B, h*w, C).
    """

    def __init__(self, dim: int, hidden: int, act_layer: ModuleFactory = nn.GELU, device=None, dtype=None) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.fc1 = _linear(dim, hidden, **f)
        self.dwconv = init_conv(nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, **f))
        self.act = act_layer()
        self.fc2 = _linear(hidden, dim, **f)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = _to_tokens(self.dwconv(_to_map(self.fc1(x), hw)))
        return self.fc2(self.act(x))


class MixTransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + ffn(norm2(x))``, with drop path.

    Shape:
        tokens (B, h*w, C), hw = (h, w) -> (B, h*w, C).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        sr_ratio: int,
        mlp_ratio: int = 4,
        drop_path: float = 0.0,
        norm_layer: ModuleFactory = TokenNorm,
        act_layer: ModuleFactory = nn.GELU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.norm1 = norm_layer(dim, **f)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio, **f)
        self.norm2 = norm_layer(dim, **f)
        self.ffn = MixFFN(dim, mlp_ratio * dim, act_layer, **f)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.ffn(self.norm2(x), hw))


class MixTransformer(nn.Module):
    """MiT encoder (defaults: MiT-B1), four stages at strides 4, 8, 16, 32.

    Args:
        in_channels: image channels.
        embed_dims, depths, num_heads, sr_ratios: per stage widths, block counts, attention heads
            and key/value reduction ratios.
        mlp_ratio: Mix-FFN hidden width in multiples of the stage width.
        drop_path_rate: stochastic depth, rising linearly from 0 over all blocks to this rate
            (MiT-B1: 0.1; 0 turns it off).
        norm_layer, act_layer: token norm (blocks and stage ends) and FFN activation factories.

    Shape:
        (B, in_channels, H, W) with H, W >= 29 (B1's reduction ratios) -> four maps
        (B, embed_dims[i], H_i, W_i), H_0 = ceil(H / 4), H_{i+1} = ceil(H_i / 2).
    """

    def __init__(
        self,
        in_channels: int = 3,
        embed_dims: tuple[int, ...] = (64, 128, 320, 512),
        depths: tuple[int, ...] = (2, 2, 2, 2),
        num_heads: tuple[int, ...] = (1, 2, 5, 8),
        sr_ratios: tuple[int, ...] = (8, 4, 2, 1),
        mlp_ratio: int = 4,
        drop_path_rate: float = 0.1,
        norm_layer: ModuleFactory = TokenNorm,
        act_layer: ModuleFactory = nn.GELU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_widths(
            in_channels=in_channels, embed_dims=embed_dims, depths=depths, num_heads=num_heads, sr_ratios=sr_ratios
        )
        check_widths(mlp_ratio=mlp_ratio)
        lengths = {len(embed_dims), len(depths), len(num_heads), len(sr_ratios)}
        if len(lengths) != 1:
            raise ValueError(
                "embed_dims, depths, num_heads, sr_ratios: expected one entry per stage each, got lengths "
                f"{len(embed_dims)}, {len(depths)}, {len(num_heads)}, {len(sr_ratios)}"
            )
        f = {"device": device, "dtype": dtype}
        self.in_channels, self.embed_dims, self.sr_ratios = in_channels, tuple(embed_dims), tuple(sr_ratios)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.patch_embeds, self.stages, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        previous, first = in_channels, 0
        for i, (dim, depth, heads, ratio) in enumerate(zip(embed_dims, depths, num_heads, sr_ratios)):
            patch, stride = (7, 4) if i == 0 else (3, 2)
            self.patch_embeds.append(OverlapPatchEmbed(previous, dim, patch, stride, **f))
            self.stages.append(
                nn.ModuleList(
                    MixTransformerBlock(dim, heads, ratio, mlp_ratio, rates[first + j], norm_layer, act_layer, **f)
                    for j in range(depth)
                )
            )
            self.norms.append(norm_layer(dim, **f))
            previous, first = dim, first + depth

    @property
    def smallest_input(self) -> int:
        """The least H and W it takes: stage i (stride 4 * 2^i) must see at least its reduction
        ratio r_i of rows, ceil(H / (4 * 2^i)) >= r_i (29 for MiT-B1's ratios 8, 4, 2, 1)."""
        return max((ratio - 1) * 4 * 2**i + 1 for i, ratio in enumerate(self.sr_ratios))

    def forward(self, x: Tensor) -> list[Tensor]:
        check_input("x", x, self)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected a (B, {self.in_channels}, H, W) image batch, got shape {tuple(x.shape)}")
        size, features = tuple(x.shape[-2:]), []
        for i, (embed, blocks, norm) in enumerate(zip(self.patch_embeds, self.stages, self.norms)):
            tokens, hw = embed(x)
            if min(hw) < self.sr_ratios[i]:
                raise ValueError(
                    f"x: expected an input large enough for stage {i + 1}'s reduction ratio {self.sr_ratios[i]}, "
                    f"got {size}, which that stage sees at {hw[0]}x{hw[1]}"
                )
            for block in blocks:
                tokens = block(tokens, hw)
            x = _to_map(norm(tokens), hw)
            features.append(x)
        return features


class SegFormerHead(nn.Module):
    """SegFormer's all-MLP head with every upsampling step done by upsampler ``upsampler``.

    Args:
        in_channels: channels of the encoder levels, finest first.
        num_classes: K, output channels.
        upsampler: any name of :func:`fade.list_upsamplers`, built with ``create_upsampler``.
        embed_dim: E, the common width of the projected levels (B1: 256).
        layout: ``"chain"`` (x2 steps, guided by the next finer level) or ``"direct"`` (one step
            per level at scale 2^i, guided by the finest level); see the module docstring.
        dropout: Dropout2d rate before the classifier.
        upsampler_options: keyword arguments for every upsampler.
        norm_layer, act_layer: the fuse layer's norm and activation.

    Shape:
        levels (B, in_channels[i], H_i, W_i) with |H_i - 2 H_{i+1}| < 2 -> (B, K, H_0, W_0).
    """

    def __init__(
        self,
        in_channels: tuple[int, ...] = (64, 128, 320, 512),
        num_classes: int = 150,
        upsampler: str = "fade",
        embed_dim: int = 256,
        layout: Layout = "chain",
        dropout: float = 0.1,
        upsampler_options: dict | None = None,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.ReLU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_widths(in_channels=in_channels, num_classes=num_classes, embed_dim=embed_dim)
        if layout not in ("chain", "direct"):
            raise ValueError(f"layout: expected 'chain' or 'direct', got {layout!r}")
        f = {"device": device, "dtype": dtype}
        options = dict(upsampler_options or {})
        self.layout = layout
        self.projections = nn.ModuleList(nn.Linear(c, embed_dim, **f) for c in in_channels)
        self.chains = nn.ModuleList()
        self.guides: list[list[int]] = []
        for level in range(1, len(in_channels)):
            if layout == "chain":
                steps = [(2, guide) for guide in range(level - 1, -1, -1)]
            else:
                steps = [(2**level, 0)]
            self.chains.append(
                nn.ModuleList(create_upsampler(upsampler, embed_dim, embed_dim, s, **f, **options) for s, _ in steps)
            )
            self.guides.append([guide for _, guide in steps])
        self.fuse = conv_norm_act(
            len(in_channels) * embed_dim, embed_dim, 1, norm_layer=norm_layer, act_layer=act_layer, **f
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1, **f)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: list[Tensor]) -> Tensor:
        if len(features) != len(self.projections):
            raise ValueError(f"features: expected {len(self.projections)} levels, got {len(features)}")
        projected = [_to_map(proj(_to_tokens(x)), x.shape[-2:]) for proj, x in zip(self.projections, features)]
        levels = [projected[0]]
        for chain, guides, x in zip(self.chains, self.guides, projected[1:]):
            for up, guide in zip(chain, guides):
                x = up(projected[guide], x)
            levels.append(x)
        fused = self.fuse(torch.cat(levels[::-1], dim=1))
        return self.classifier(self.dropout(fused))


class SegFormer(nn.Module):
    """SegFormer: MiT encoder + all-MLP head with a pluggable upsampler (defaults: B1, ADE20K).

    Args:
        upsampler: any name of :func:`fade.list_upsamplers`.
        num_classes: K (ADE20K: 150).
        in_channels, embed_dims, depths, num_heads, sr_ratios, mlp_ratio, drop_path_rate: the
            encoder (:class:`MixTransformer`).
        decoder_dim, layout, dropout, upsampler_options: the head (:class:`SegFormerHead`).

    Shape:
        (B, in_channels, H, W) -> logits (B, K, ceil(H / 4), ceil(W / 4)); :meth:`predict` gives
        (B, K, H, W).
    """

    def __init__(
        self,
        upsampler: str = "fade",
        num_classes: int = 150,
        in_channels: int = 3,
        embed_dims: tuple[int, ...] = (64, 128, 320, 512),
        depths: tuple[int, ...] = (2, 2, 2, 2),
        num_heads: tuple[int, ...] = (1, 2, 5, 8),
        sr_ratios: tuple[int, ...] = (8, 4, 2, 1),
        mlp_ratio: int = 4,
        drop_path_rate: float = 0.1,
        decoder_dim: int = 256,
        layout: Layout = "chain",
        dropout: float = 0.1,
        upsampler_options: dict | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.encoder = MixTransformer(
            in_channels, embed_dims, depths, num_heads, sr_ratios, mlp_ratio, drop_path_rate, **f
        )
        self.head = SegFormerHead(
            tuple(embed_dims), num_classes, upsampler, decoder_dim, layout, dropout, upsampler_options, **f
        )

    @classmethod
    def tiny(cls, upsampler: str = "fade", **options) -> SegFormer:
        """A narrow SegFormer for CPU tests and experiments: widths 16/32/40/64, one block per stage,
        heads 1/1/2/2, head width 32, no stochastic depth (each overridable)."""
        defaults = {
            "embed_dims": (16, 32, 40, 64),
            "depths": (1, 1, 1, 1),
            "num_heads": (1, 1, 2, 2),
            "decoder_dim": 32,
            "drop_path_rate": 0.0,
        }
        return cls(upsampler, **{**defaults, **options})

    @property
    def smallest_input(self) -> int:
        """The least H and W it takes (its encoder's)."""
        return self.encoder.smallest_input

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))

    def predict(self, x: Tensor) -> Tensor:
        """Logits at the input size: the stride-4 logits resized bilinearly (align_corners=False)."""
        return F.interpolate(self(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("segformer_b1")
def _segformer_b1(upsampler: str = "fade", **options) -> SegFormer:
    """SegFormer-B1 (MiT-B1, head width 256), 150 classes by default."""
    return SegFormer(upsampler, **options)


@register_model("segformer_tiny")
def _segformer_tiny(upsampler: str = "fade", **options) -> SegFormer:
    """:meth:`SegFormer.tiny`."""
    return SegFormer.tiny(upsampler, **options)
