"""A2U-R34 (Dai et al. CVPR 2021), the matting network of the FADE paper, with pluggable up/downsampling.

Layout as in the A2U / FADE matting code (``resnet.py`` there), defaults at A2U-R34's widths:

- input (B, 4, H, W): RGB + trimap, reflect-padded at the bottom/right to a multiple of 16 and the
  prediction cropped back (the authors' test protocol), so every pooling halves exactly;
- stem: 7x7 conv, stride 1, 4 -> 64, BN + act, at full resolution (``l0``);
- two downsamplings ``l0 -> l0p`` (1/2) and ``l0p -> l0pp`` (1/4);
- "the first 11 layers of ResNet-34": its first three stages truncated to 3 + 4 + 4 = 11 basic
  residual blocks, widths 64 / 128 / 256 at 1/4, 1/8, 1/16. In the first block of stages 2 and 3
  the stride-2 3x3 conv becomes a stride-1 conv + BN + act (the 128- / 256-channel "pre-pool"
  feature ``l10`` / ``l20``), a downsampling, then the second conv; the shortcut keeps ResNet's 1x1
  conv of stride 2 + BN;
- ASPP on the 1/16 feature (output stride 16: dilations 1, 6, 12, 18; depthwise-separable 3x3
  branches; image pooling; 5 x 256 -> 256; dropout 0.5);
- decoder, 4 stages, each ``two residual blocks(up(en, de, context) + shortcut conv(skip))``:

  ====== ================ ================================ ============================ ==========
  stage  de (channels)    en = pre-pool feature            skip (3x3 conv + BN + act)   out
  ====== ================ ================================ ============================ ==========
  4      ASPP, 256, 1/16  ``l20``, 256, 1/8                stage-2 output, 128 -> 256   128
  3      128, 1/8         ``l10``, 128, 1/4                stage-1 output, 64 -> 128    64
  2      64, 1/4          ``l0p``, 64, 1/2                 ``l0p``, 64 -> 64            64
  1      64, 1/2          ``l0``, 64, 1/1                  input, 4 -> 64               32
  ====== ================ ================================ ============================ ==========

- prediction: 3x3 conv 32 -> 1 + BN + act, then a 3x3 conv 1 -> 1 without bias. :meth:`forward`
  returns this raw map (the authors train on it); :meth:`A2UMatting.predict` clamps it to [0, 1]
  as their evaluation does.

Each of the four downsamplings and the matching upsampling is one ``fade.create_pair(upsampler,
C)`` pair (C = 64, 64, 128, 256): max-pooling + the upsampler for plain operators, the operator's
own pooling for max-unpooling, IndexNet and A2U, whose context (indices, index maps, kernels)
reaches the decoder stage of the same resolution. Norm: BatchNorm; activation: LeakyReLU(0.01)
(the authors' InPlaceABN defaults); both injectable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..upsamplers import create_pair
from .layers import ModuleFactory, ResidualBlock, check_image_batch, check_widths, conv_norm_act, init_conv
from .registry import register_model

__all__ = ["ASPP", "A2UMatting", "MattingDecoderStage", "PoolingResidualBlock"]


class PoolingResidualBlock(nn.Module):
    """First block of a ResNet stage with its stride moved into a pluggable downsampling.

    ``en = act(norm(conv3x3(x)))``; ``y, context = down(en)``; ``out = act(norm(conv3x3(y)) +
    shortcut(x))`` with a 1x1 stride-2 conv + norm shortcut.

    Shape:
        x (B, C_in, H, W), H and W even -> (out (B, C_out, H/2, W/2), en (B, C_out, H, W), context).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        down: nn.Module,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.LeakyReLU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype, "norm_layer": norm_layer}
        self.conv1 = conv_norm_act(in_channels, out_channels, 3, act_layer=act_layer, **f)
        self.down = down
        self.conv2 = conv_norm_act(out_channels, out_channels, 3, act_layer=None, **f)
        self.shortcut = conv_norm_act(in_channels, out_channels, 1, 2, act_layer=None, **f)
        self.act = act_layer()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, object]:
        en = self.conv1(x)
        y, context = self.down(en)
        return self.act(self.conv2(y) + self.shortcut(x)), en, context


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling as in the A2U / IndexNet matting code.

    Branches (each ``branch_channels`` wide, norm + act): 1x1 conv; three depthwise-separable 3x3
    convs (depthwise dilated conv + norm + act, 1x1 conv + norm + act) at ``dilations``; global
    average pooling + 1x1 conv, broadcast back. Concatenated, 1x1 conv to ``out_channels`` + norm +
    act, dropout.

    Shape:
        (B, C_in, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        branch_channels: int = 256,
        dilations: tuple[int, int, int] = (6, 12, 18),
        dropout: float = 0.5,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.LeakyReLU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype, "norm_layer": norm_layer, "act_layer": act_layer}
        self.branches = nn.ModuleList([conv_norm_act(in_channels, branch_channels, 1, **f)])
        for d in dilations:
            self.branches.append(
                nn.Sequential(
                    conv_norm_act(in_channels, in_channels, 3, dilation=d, groups=in_channels, **f),
                    conv_norm_act(in_channels, branch_channels, 1, **f),
                )
            )
        self.image_pool = conv_norm_act(in_channels, branch_channels, 1, **f)
        self.project = conv_norm_act((len(dilations) + 2) * branch_channels, out_channels, 1, **f)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        norms = [m for m in self.image_pool.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
        if norms and x.shape[0] == 1:  # the pooled map is one value per channel and sample
            raise ValueError(
                "x: expected a batch of at least 2 while training (the ASPP's image pooling is batch-normalised "
                "over the batch), got 1; train with a batch of 2 or more, or with BatchNorm frozen (eval)"
            )
        pooled = self.image_pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, *x.shape[-2:])
        out = torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1)
        return self.dropout(self.project(out))


class MattingDecoderStage(nn.Module):
    """``blocks(up(en, de, context) + skip_conv(skip))``: upsampling, shortcut, two residual blocks.

    Shape:
        en (B, C, H, W); de (B, C, H/2, W/2); skip (B, C_skip, H, W) -> (B, C_out, H, W).
    """

    def __init__(
        self,
        up: nn.Module,
        channels: int,
        skip_channels: int,
        out_channels: int,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.LeakyReLU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype, "norm_layer": norm_layer, "act_layer": act_layer}
        self.up = up
        self.skip = conv_norm_act(skip_channels, channels, 3, **f)
        self.blocks = nn.Sequential(
            ResidualBlock(channels, out_channels, **f), ResidualBlock(out_channels, out_channels, **f)
        )

    def forward(self, en: Tensor, de: Tensor, context: object, skip: Tensor) -> Tensor:
        return self.blocks(self.up(en, de, context) + self.skip(skip))


class A2UMatting(nn.Module):
    """A2U-R34 matting network with every down/upsampling pair built by name (see module docstring).

    Args:
        upsampler: any name of :func:`fade.list_upsamplers`; each pooling/upsampling pair comes from
            ``fade.create_pair(upsampler, C, **upsampler_options)``.
        in_channels: input channels (RGB + trimap: 4).
        stem_channels: width of the stem and of the 1/2-resolution stages (64).
        widths: widths of the three ResNet stages (64, 128, 256).
        depths: residual blocks per stage (3, 4, 4: "the first 11 layers of ResNet-34").
        aspp_channels: ASPP branch width (256). aspp_dilations: (6, 12, 18) at output stride 16.
        out_channels: width of the last decoder stage (32).
        upsampler_options: keyword arguments for every pair (e.g. IndexNet's ``expansion=2``).
        norm_layer, act_layer: layer factories (BatchNorm2d, LeakyReLU(0.01)).

    Shape:
        (B, in_channels, H, W), H, W >= 16 -> (B, 1, H, W).
    """

    stride = 16
    smallest_input = stride
    """The least H and W it takes (inputs are reflect-padded to multiples of the output stride)."""

    def __init__(
        self,
        upsampler: str = "fade",
        in_channels: int = 4,
        stem_channels: int = 64,
        widths: tuple[int, int, int] = (64, 128, 256),
        depths: tuple[int, int, int] = (3, 4, 4),
        aspp_channels: int = 256,
        aspp_dilations: tuple[int, int, int] = (6, 12, 18),
        out_channels: int = 32,
        upsampler_options: dict | None = None,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.LeakyReLU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if len(widths) != 3 or len(depths) != 3 or min(depths) < 1:
            raise ValueError(
                f"widths, depths: expected three stages with at least one block each, got widths={widths}, "
                f"depths={depths}"
            )
        check_widths(in_channels=in_channels, stem_channels=stem_channels, widths=widths, depths=depths)
        check_widths(aspp_channels=aspp_channels, aspp_dilations=aspp_dilations, out_channels=out_channels)
        f = {"device": device, "dtype": dtype}
        layers = {"norm_layer": norm_layer, "act_layer": act_layer, **f}
        options = dict(upsampler_options or {})
        self.in_channels = in_channels
        pairs = [create_pair(upsampler, c, **options) for c in (stem_channels, stem_channels, widths[1], widths[2])]
        downs, ups = zip(*((down.to(**f), up.to(**f)) for down, up in pairs))
        s, (w1, w2, w3) = stem_channels, widths

        self.stem = conv_norm_act(in_channels, s, 7, **layers)
        self.down0, self.down1 = downs[0], downs[1]
        self.stage1 = nn.Sequential(*(ResidualBlock(s if i == 0 else w1, w1, **layers) for i in range(depths[0])))
        self.stage2_first = PoolingResidualBlock(w1, w2, downs[2], **layers)
        self.stage2 = nn.Sequential(*(ResidualBlock(w2, w2, **layers) for _ in range(depths[1] - 1)))
        self.stage3_first = PoolingResidualBlock(w2, w3, downs[3], **layers)
        self.stage3 = nn.Sequential(*(ResidualBlock(w3, w3, **layers) for _ in range(depths[2] - 1)))
        self.aspp = ASPP(w3, w3, aspp_channels, aspp_dilations, **layers)

        self.decoder4 = MattingDecoderStage(ups[3], w3, w2, w2, **layers)
        self.decoder3 = MattingDecoderStage(ups[2], w2, w1, s, **layers)
        self.decoder2 = MattingDecoderStage(ups[1], s, s, s, **layers)
        self.decoder1 = MattingDecoderStage(ups[0], s, in_channels, out_channels, **layers)
        self.prediction = nn.Sequential(
            conv_norm_act(out_channels, 1, 3, **layers), init_conv(nn.Conv2d(1, 1, 3, padding=1, bias=False, **f))
        )

    @classmethod
    def tiny(cls, upsampler: str = "fade", **options) -> A2UMatting:
        """A narrow A2U matting network for CPU tests and experiments: stem 8, widths 8/16/32, one
        block per stage, ASPP branches 16 wide, last decoder stage 8 (each overridable)."""
        defaults = {
            "stem_channels": 8,
            "widths": (8, 16, 32),
            "depths": (1, 1, 1),
            "aspp_channels": 16,
            "out_channels": 8,
        }
        return cls(upsampler, **{**defaults, **options})

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.in_channels, self.smallest_input, self)
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % self.stride, 0, -height % self.stride), mode="reflect")
        l0 = self.stem(x)
        l0p, c0 = self.down0(l0)
        l0pp, c1 = self.down1(l0p)
        l1 = self.stage1(l0pp)
        l2, l10, c2 = self.stage2_first(l1)
        l2 = self.stage2(l2)
        l3, l20, c3 = self.stage3_first(l2)
        d = self.aspp(self.stage3(l3))
        d = self.decoder4(l20, d, c3, l2)
        d = self.decoder3(l10, d, c2, l1)
        d = self.decoder2(l0p, d, c1, l0p)
        d = self.decoder1(l0, d, c0, x)
        return self.prediction(d)[..., :height, :width]

    def predict(self, x: Tensor) -> Tensor:
        """Alpha matte in [0, 1]: the raw prediction clamped, as the authors evaluate."""
        return self(x).clamp(0.0, 1.0)


@register_model("a2u_matting")
def _a2u_matting(upsampler: str = "fade", **options) -> A2UMatting:
    """A2U-R34 at the published widths."""
    return A2UMatting(upsampler, **options)


@register_model("a2u_matting_tiny")
def _a2u_matting_tiny(upsampler: str = "fade", **options) -> A2UMatting:
    """:meth:`A2UMatting.tiny`."""
    return A2UMatting.tiny(upsampler, **options)
