"""Blocks the reference networks share: conv + norm + activation, residual blocks, stochastic depth.

Every block initialises its own layers (convs: Kaiming normal, fan-out; norms: weight 1, bias 0);
no model re-initialises its children, so the upsamplers keep their authors' initialisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..upsamplers._checks import check_input, check_ints

__all__ = ["DropPath", "ModuleFactory", "ResidualBlock", "conv_norm_act", "drop_path", "init_conv"]

ModuleFactory = Callable[..., nn.Module]


def check_widths(**named: object) -> None:
    """Raise unless every named value is a positive integer, or a non-empty tuple or list of them
    (channels, depths, heads): TypeError for a wrong type, ValueError for a value out of range."""
    for name, value in named.items():
        if isinstance(value, (tuple, list)):
            if not value:
                raise ValueError(f"{name}: expected at least one positive integer, got {value!r}")
            check_ints(**{f"{name}[{i}]": v for i, v in enumerate(value)})
        else:
            check_ints(**{name: value})


def check_image_batch(x: object, in_channels: int, smallest: int, model: nn.Module) -> None:
    """Raise unless ``x`` is a batch that ``model`` can take, Tensor[B, in_channels, H, W] with
    H, W >= ``smallest``: TypeError or ValueError for its type, dtype or device (``check_input``),
    ValueError naming the expected shape for its shape."""
    check_input("x", x, model)
    if x.dim() != 4 or x.shape[1] != in_channels or min(x.shape[-2:]) < smallest:
        raise ValueError(
            f"x: expected a (B, {in_channels}, H, W) batch with H, W >= {smallest}, got shape {tuple(x.shape)}"
        )


def init_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """Normal weights of std sqrt(2 / fan_out) with fan_out = k_h * k_w * C_out / groups (Kaiming,
    fan-out, ReLU gain, counted per group) and zero bias, in place; returns ``conv``."""
    fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    norm_layer: ModuleFactory | None = nn.BatchNorm2d,
    act_layer: ModuleFactory | None = nn.ReLU,
    device=None,
    dtype=None,
) -> nn.Sequential:
    """``Conv2d`` ("same" padding, no bias when normalised) + ``norm_layer`` + ``act_layer``.

    ``norm_layer`` is called as ``norm_layer(channels, device=..., dtype=...)`` and ``act_layer``
    with no arguments; None leaves the layer out (the conv then has a bias).

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride)).
    """
    f = {"device": device, "dtype": dtype}
    padding = dilation * (kernel_size - 1) // 2
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=norm_layer is None, **f
    )
    layers: list[nn.Module] = [init_conv(conv)]
    if norm_layer is not None:
        layers.append(norm_layer(out_channels, **f))
    if act_layer is not None:
        layers.append(act_layer())
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Basic residual block: ``act(conv-norm-act-conv-norm(x) + shortcut(x))``, 3x3 convs.

    The shortcut is the identity, or a 1x1 conv + norm when the channels or the stride change
    (ResNet's basic block; also the A2U matting decoder's "residual_conv").

    Args:
        in_channels, out_channels: channels in and out.
        stride: stride of the first conv and of the shortcut.
        norm_layer, act_layer: layer factories, as in :func:`conv_norm_act`.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm_layer: ModuleFactory = nn.BatchNorm2d,
        act_layer: ModuleFactory = nn.ReLU,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype, "norm_layer": norm_layer}
        self.body = nn.Sequential(
            conv_norm_act(in_channels, out_channels, 3, stride, act_layer=act_layer, **f),
            conv_norm_act(out_channels, out_channels, 3, act_layer=None, **f),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv_norm_act(in_channels, out_channels, 1, stride, act_layer=None, **f)
        self.act = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability p, scale by 1/(1-p).

    Args:
        x: Tensor[B, ...], a residual branch.
        p: drop probability in [0, 1).
        training: the identity unless True.
    """
    if not training or p == 0.0:
        return x
    keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class DropPath(nn.Module):
    """Module form of :func:`drop_path`; no parameters."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path rate: expected a probability in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
