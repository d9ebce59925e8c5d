"""Upsamplers by name: one factory, one signature, no branching on names in user code."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["create_upsampler", "list_upsamplers", "register_upsampler"]

UpsamplerFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, UpsamplerFactory] = {}


def register_upsampler(name: str) -> Callable[[UpsamplerFactory], UpsamplerFactory]:
    """Decorator: register ``factory(en_channels, de_channels, scale, **options) -> nn.Module``."""

    def register(factory: UpsamplerFactory) -> UpsamplerFactory:
        if name in _REGISTRY:
            raise ValueError(f"upsampler {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return register


def list_upsamplers() -> list[str]:
    """The registered upsampler names, sorted."""
    return sorted(_REGISTRY)


def create_upsampler(
    name: str,
    en_channels: int,
    de_channels: int | None = None,
    scale: int = 2,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **options,
) -> nn.Module:
    """Build the upsampler ``name``: a module with ``forward(en, de)`` -> de at en's spatial size.

    Args:
        name: one of :func:`list_upsamplers`.
        en_channels: C_en, channels of the high-resolution guide (operators that ignore it accept it).
        de_channels: C_de, channels of the feature to upsample (default C_en).
        scale: integer upsampling factor.
        device, dtype: where and in which floating type the parameters and buffers live.
        **options: operator-specific keyword arguments (e.g. ``kernel_size``).

    Raises:
        KeyError: for an unknown name, listing the valid ones.
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown upsampler {name!r}; valid names: {', '.join(list_upsamplers())}")
    de_channels = en_channels if de_channels is None else de_channels
    return _REGISTRY[name](en_channels, de_channels, scale, **options).to(device=device, dtype=dtype)
