"""What the benchmark measures: a module and its inputs, built by name and size alone.

Names are the registered upsamplers (:func:`fade.list_upsamplers`), the bench baselines (the
authors' FADE formulation, never registered as a public upsampler) and two bare operators for the
operator suite. Building by name lets a fresh process (the memory probe) rebuild the exact case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.carafe import carafe
from ..upsamplers import FADE, create_upsampler, list_upsamplers
from .authors import FADEAuthors

__all__ = ["BASELINES", "OPERATORS", "Case", "benchmark_names", "build_case"]


def _fade_authors(en_channels: int, de_channels: int, scale: int) -> nn.Module:
    return FADEAuthors(FADE(en_channels, de_channels, scale))


BASELINES: dict[str, Callable[[int, int, int], nn.Module]] = {"fade_authors": _fade_authors}
"""Bench-only upsamplers: same ``factory(en_channels, de_channels, scale)`` as the registry."""


class _Function(nn.Module):
    """A parameter-free module around a function, so operators are measured like upsamplers."""

    def __init__(self, fn: Callable[..., Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.fn(*inputs)


OPERATORS: dict[str, str] = {
    "op:carafe": "fade.ops.carafe(x, kernels, scale) with softmax-normalised kernels (B, 25, sH, sW)",
    "op:bilinear": 'F.interpolate(x, scale_factor=scale, mode="bilinear")',
}
"""Bare operators (issue 2.2), measured on x (B, C, H, W)."""


@dataclass
class Case:
    """A module, the inputs of one measured call ``module(*inputs)`` and the output's shape."""

    name: str
    module: nn.Module
    inputs: tuple[Tensor, ...]
    output_shape: tuple[int, ...]

    def params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.module.parameters())


def benchmark_names() -> list[str]:
    """Every registered upsampler, then the bench baselines."""
    return list_upsamplers() + sorted(BASELINES)


def build_case(
    name: str,
    batch: int,
    channels: int,
    height: int,
    width: int,
    scale: int = 2,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    out_size: tuple[int, int] | None = None,
) -> Case:
    """Build ``name`` for a decoder feature (batch, channels, height, width) and its inputs.

    Upsamplers get ``en`` (batch, channels, *out_size) and ``de``; the operators of
    :data:`OPERATORS` get x = de (and normalised 5x5 kernels for ``op:carafe``) and upsample it to
    ``out_size``. ``out_size`` defaults to (scale*height, scale*width); e.g. (2H+1, 2W+1) is the
    floor-mode size of a stride-2 encoder.

    Raises:
        KeyError: for an unknown name.
    """
    gen = torch.Generator().manual_seed(seed)
    f = {"device": device, "dtype": dtype}
    hi = (scale * height, scale * width) if out_size is None else tuple(out_size)
    out = (batch, channels, *hi)
    de = torch.randn(batch, channels, height, width, generator=gen).to(**f)
    if name in OPERATORS:
        if name == "op:bilinear":
            resize = {"scale_factor": scale} if out_size is None else {"size": hi}
            return Case(name, _Function(partial(F.interpolate, mode="bilinear", **resize)), (de,), out)
        kernels = torch.randn(batch, 25, *hi, generator=gen).softmax(dim=1).to(**f)
        return Case(name, _Function(partial(carafe, scale=scale)), (de, kernels), out)
    torch.manual_seed(seed)
    if name in BASELINES:
        module = BASELINES[name](channels, channels, scale)
    else:
        module = create_upsampler(name, channels, channels, scale=scale)
    en = torch.randn(batch, channels, *hi, generator=gen).to(**f)
    return Case(name, module.to(**f), (en, de), out)
