"""Down/up pairs: one explicit API for every upsampler, including those that also downsample.

Max-unpooling, IndexNet and A2U change the encoder's downsampling as well: the pooling step computes
something (max indices, index maps, upsampling kernels) that the matching upsampling step consumes.
:func:`create_pair` gives every registered name as such a pair, so a model asks for a pair by name
and never special-cases one:

    down, up = create_pair(name, en_channels, de_channels, scale)
    y, context = down(x)           # x: the pre-pool encoder feature; y: floor-mode pooled
    ...
    out = up(x, de, context)       # de upsampled to x's size

Protocol: ``down(x) -> (y, context)`` and ``down.context(x, low_hw)`` (the context alone, for a
given low-resolution size); ``up(en, de, context) -> out``. For a plain upsampler ``down`` is
max-pooling, ``context`` is None and ``up`` wraps the upsampler. For a paired operator
``create_upsampler(name, ...)`` returns a :class:`PairedUpsampler`, whose ``forward(en, de)`` is
``up(en, de, down.context(en, de's size))``: en IS the pre-pool feature, so computing the context
from it gives exactly what the pair passes. Parameters live in ``down`` only, so a model holding
both halves counts each parameter once. Paired operators register their pair factory with
:func:`register_pair` and their stand-alone form with ``register_upsampler``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.resize import check_scale
from ._checks import check_module, check_pool_input, factory_kwargs
from .base import Upsampler
from .registry import check_name, check_options, create_upsampler, list_upsamplers, registrar

__all__ = [
    "MaxPoolDown",
    "PairedUpsampler",
    "PlainUp",
    "create_pair",
    "list_pairs",
    "pooled_size",
    "register_pair",
]

PairFactory = Callable[..., tuple[nn.Module, nn.Module]]
_PAIRS: dict[str, tuple[PairFactory, tuple[str, ...]]] = {}


def register_pair(name: str, options: Sequence[str] = ()) -> Callable[[PairFactory], PairFactory]:
    """Decorator: register ``factory(en_channels, de_channels, scale, **options) -> (down, up)``.

    ``options``: the keyword options the factory takes; others are refused.
    """
    return registrar(_PAIRS, "pair", name, options)


def list_pairs() -> list[str]:
    """The names whose operator comes with its own downsampling, sorted."""
    return sorted(_PAIRS)


def pooled_size(x: Tensor, scale: int) -> tuple[int, int]:
    """Floor-mode pooled size of x, as ``nn.MaxPool2d(scale)`` gives: (H // s, W // s)."""
    h, w = x.shape[-2:]
    return h // scale, w // scale


class MaxPoolDown(nn.Module):
    """Max-pooling by s (floor mode) for a plain upsampler: ``forward(x) -> (y, None)``."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = check_scale(scale)

    def context(self, x: Tensor, low_hw: tuple[int, int]) -> None:
        """Plain upsamplers need no context."""

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        check_pool_input(x, self.scale, self)
        return F.max_pool2d(x, self.scale, self.scale), None

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class PlainUp(nn.Module):
    """The up half of a plain pair: ``forward(en, de, context=None) = upsampler(en, de)``."""

    def __init__(self, upsampler: nn.Module) -> None:
        super().__init__()
        check_module("upsampler", upsampler, nn.Module)
        self.upsampler = upsampler

    def forward(self, en: Tensor, de: Tensor, context: None = None) -> Tensor:
        if context is not None:
            raise ValueError(
                f"context: expected None for {type(self.upsampler).__name__} (a plain upsampler paired "
                f"with max-pooling), got {type(context).__name__}"
            )
        return self.upsampler(en, de)


class PairedUpsampler(nn.Module):
    """An upsampler with its own downsampling, used alone: ``forward(en, de)``.

    ``forward(en, de) = up(en, de, down.context(en, de.shape[-2:]))``: the context comes from en, the
    pre-pool feature, for de's size (floor- or ceil-mode). ``down`` and ``up`` are the pair halves
    returned by :func:`create_pair`.

    Shape:
        en: (B, C_en, H_en, W_en); de: (B, C_de, H, W) -> (B, C_de, H_en, W_en).
    """

    def __init__(self, down: nn.Module, up: nn.Module) -> None:
        super().__init__()
        check_module("down", down, nn.Module)
        check_module("up", up, Upsampler)
        self.down, self.up = down, up

    def forward(self, en: Tensor, de: Tensor) -> Tensor:
        self.up.check_inputs(en, de, self)
        return self.up(en, de, self.down.context(en, tuple(de.shape[-2:])))


def create_pair(
    name: str,
    en_channels: int,
    de_channels: int | None = None,
    scale: int = 2,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **options,
) -> tuple[nn.Module, nn.Module]:
    """The (down, up) pair for upsampler ``name``; valid for every name in ``list_upsamplers()``.

    Args and Raises: as :func:`fade.create_upsampler` (``en_channels`` are the channels of the
    feature that ``down`` pools). Names in :func:`list_pairs` get their own pair; every other name
    gets max-pooling and the upsampler.

    Returns:
        ``down`` with ``forward(x) -> (y, context)``, ``up`` with ``forward(en, de, context)``.
    """
    check_name(name, list_upsamplers())
    if name not in _PAIRS:
        up = create_upsampler(name, en_channels, de_channels, scale, device, dtype, **options)
        return MaxPoolDown(scale), PlainUp(up)
    factory, accepted = _PAIRS[name]
    check_options(name, options, accepted)
    f = factory_kwargs(device, dtype)
    down, up = factory(en_channels, en_channels if de_channels is None else de_channels, scale, **options)
    return down.to(**f), up.to(**f)
