"""Small pooled encoder-decoders whose only varied part is the down/upsampling pair.

:class:`SegNet` (paper Table 2, Weizmann Horse) and :class:`ReconstructionAutoencoder` (paper Table 1,
Fashion-MNIST reconstruction) share one layout, sized to train on a 2-core CPU in minutes:

- encoder: L stages of ``convs_per_stage`` x (3x3 conv + BN + ReLU) to width ``channels[i]``, the
  last output of which (``en_i``, the pre-pool feature) is downsampled by the pair's ``down``;
- decoder, mirrored: stage i upsamples with the pair's ``up(en_i, de, context_i)`` (so max-unpooling
  gets SegNet's indices, IndexNet / A2U their index maps / kernels, and FADE ``en_i`` as guide),
  then ``convs_per_stage`` x (conv + BN + ReLU), the last one narrowing to ``channels[i - 1]``;
- a 3x3 conv to the outputs.

Downsampling is floor-mode (``nn.MaxPool2d`` sizes) and each ``up`` restores the pre-pool size
exactly, so any input with sides >= 2^L works without padding (67x45 included).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ..upsamplers import create_pair
from .layers import ModuleFactory, check_image_batch, check_widths, conv_norm_act, init_conv
from .registry import register_model

__all__ = ["PooledEncoderDecoder", "ReconstructionAutoencoder", "SegNet"]


def _conv_stack(widths: list[int], layers: dict) -> nn.Sequential:
    """3x3 conv + norm + act layers from ``widths[i]`` to ``widths[i + 1]`` channels."""
    return nn.Sequential(*(conv_norm_act(a, b, 3, **layers) for a, b in itertools.pairwise(widths)))


class PooledEncoderDecoder(nn.Module):
    """Encoder-decoder with one ``fade.create_pair(upsampler, channels[i])`` pair per stage.

    Args:
        upsampler: any name of :func:`fade.list_upsamplers`.
        in_channels: input channels. out_channels: output channels.
        channels: widths of the L stages, finest first.
        convs_per_stage: conv + BN + ReLU layers per encoder and per decoder stage.
        upsampler_options: keyword arguments for every pair.
        norm_layer, act_layer: layer factories (BatchNorm2d, ReLU).

    Shape:
        (B, in_channels, H, W), H, W >= 2^L -> (B, out_channels, H, W), raw (no final activation).
    """

    def __init__(
        self,
        upsampler: str,
        in_channels: int,
        out_channels: int,
        channels: tuple[int, ...],
        convs_per_stage: int = 2,
        upsampler_options: dict | None = None,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.ReLU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not channels or convs_per_stage < 1:
            raise ValueError(
                f"channels, convs_per_stage: expected at least one stage and one conv per stage, got "
                f"channels={channels}, convs_per_stage={convs_per_stage}"
            )
        check_widths(in_channels=in_channels, out_channels=out_channels, channels=channels)
        check_widths(convs_per_stage=convs_per_stage)
        f = {"device": device, "dtype": dtype}
        layers = {"norm_layer": norm_layer, "act_layer": act_layer, **f}
        self.in_channels = in_channels
        self.encoder, self.downs, self.ups, self.decoder = (nn.ModuleList() for _ in range(4))
        previous = in_channels
        for c in channels:
            self.encoder.append(_conv_stack([previous] + [c] * convs_per_stage, layers))
            down, up = create_pair(upsampler, c, **dict(upsampler_options or {}))
            self.downs.append(down.to(**f))
            self.ups.append(up.to(**f))
            previous = c
        for i, c in enumerate(channels):
            self.decoder.append(_conv_stack([c] * convs_per_stage + [channels[max(i - 1, 0)]], layers))
        self.head = init_conv(nn.Conv2d(channels[0], out_channels, 3, padding=1, **f))

    @property
    def smallest_input(self) -> int:
        """The least H and W it takes: 2^L, one pixel after the L poolings."""
        return 2 ** len(self.encoder)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.in_channels, self.smallest_input, self)
        saved = []
        for stage, down in zip(self.encoder, self.downs):
            en = stage(x)
            x, context = down(en)
            saved.append((en, context))
        for up, stage, (en, context) in zip(self.ups[::-1], self.decoder[::-1], saved[::-1]):
            x = stage(up(en, x, context))
        return self.head(x)


class SegNet(PooledEncoderDecoder):
    """SegNet-style segmenter (paper Table 2): logits (B, num_classes, H, W).

    Defaults: RGB input, 2 classes (Weizmann Horse: background / horse), four stages of widths
    16 / 32 / 64 / 128 with two convs each.
    """

    def __init__(
        self,
        upsampler: str = "fade",
        num_classes: int = 2,
        in_channels: int = 3,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        convs_per_stage: int = 2,
        upsampler_options: dict | None = None,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.ReLU,
        device=None,
        dtype=None,
    ) -> None:
        check_widths(num_classes=num_classes)
        super().__init__(
            upsampler,
            in_channels,
            num_classes,
            channels,
            convs_per_stage,
            upsampler_options,
            norm_layer,
            act_layer,
            device,
            dtype,
        )


class ReconstructionAutoencoder(PooledEncoderDecoder):
    """Image reconstruction autoencoder (paper Table 1 toy): sigmoid output in [0, 1].

    Defaults: one grey channel (Fashion-MNIST 28x28), two stages of widths 16 / 32 (28 -> 14 -> 7).
    """

    def __init__(
        self,
        upsampler: str = "fade",
        in_channels: int = 1,
        channels: tuple[int, ...] = (16, 32),
        convs_per_stage: int = 2,
        upsampler_options: dict | None = None,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.ReLU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            upsampler,
            in_channels,
            in_channels,
            channels,
            convs_per_stage,
            upsampler_options,
            norm_layer,
            act_layer,
            device,
            dtype,
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(super().forward(x))


@register_model("segnet")
def _segnet(upsampler: str = "fade", **options) -> SegNet:
    """:class:`SegNet`, 2 classes by default."""
    return SegNet(upsampler, **options)


@register_model("autoencoder")
def _autoencoder(upsampler: str = "fade", **options) -> ReconstructionAutoencoder:
    """:class:`ReconstructionAutoencoder` for 28x28 grey images."""
    return ReconstructionAutoencoder(upsampler, **options)
