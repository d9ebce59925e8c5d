"""Upsamplers by name: one factory, one signature, no branching on names in user code."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from ._checks import factory_kwargs

__all__ = ["create_upsampler", "list_options", "list_upsamplers", "options_of", "register_upsampler"]

UpsamplerFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, tuple[UpsamplerFactory, tuple[str, ...]]] = {}

# Arguments every factory receives itself, never as an option.
_STRUCTURAL = {"self", "en_channels", "de_channels", "channels", "scale", "device", "dtype", "kernel_generator"}


def options_of(target: Callable, *fixed: str) -> tuple[str, ...]:
    """The option names a factory passes on to ``target``: its parameters but the structural ones
    (channels, scale, device, dtype) and those the factory ``fixed`` itself."""
    return tuple(p for p in inspect.signature(target).parameters if p not in _STRUCTURAL and p not in fixed)


def register_upsampler(name: str, options: Sequence[str] = ()) -> Callable[[UpsamplerFactory], UpsamplerFactory]:
    """Decorator: register ``factory(en_channels, de_channels, scale, **options) -> nn.Module``.

    ``options``: the keyword options the factory takes (see :func:`options_of`); others are refused.
    """
    return registrar(_REGISTRY, "upsampler", name, options)


def registrar(
    table: dict[str, tuple[Callable, tuple[str, ...]]], kind: str, name: str, options: Sequence[str]
) -> Callable[[Callable], Callable]:
    """The decorator that stores ``(factory, tuple(options))`` in ``table`` under ``name`` and returns
    the factory; ValueError naming the ``kind`` when the name is taken."""

    def register(factory: Callable) -> Callable:
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered")
        table[name] = (factory, tuple(options))
        return factory

    return register


def list_upsamplers() -> list[str]:
    """The registered upsampler names, sorted."""
    return sorted(_REGISTRY)


def list_options(name: str) -> list[str]:
    """The keyword options upsampler ``name`` takes (beyond channels, scale, device, dtype), sorted."""
    check_name(name, list_upsamplers())
    return sorted(_REGISTRY[name][1])


def check_name(name: str, valid: Sequence[str]) -> None:
    """Raise TypeError for a name that is not a str, KeyError listing ``valid`` for an unknown one."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, one of {', '.join(valid)}; got {type(name).__name__} {name!r}")
    if name not in valid:
        raise KeyError(f"unknown upsampler {name!r}; valid names: {', '.join(valid)}")


def check_options(name: str, options: Mapping[str, object], accepted: Sequence[str]) -> None:
    """Raise TypeError naming the options upsampler ``name`` does not take, and those it takes."""
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        listed = ", ".join(sorted(accepted)) or "none"
        raise TypeError(f"upsampler {name!r}: unknown option(s) {', '.join(unknown)}; accepted options: {listed}")


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
        TypeError: for an option the operator does not take (listing those it takes) or an argument
            of the wrong type.
        ValueError: for an argument out of range.
    """
    check_name(name, list_upsamplers())
    factory, accepted = _REGISTRY[name]
    check_options(name, options, accepted)
    f = factory_kwargs(device, dtype)
    de_channels = en_channels if de_channels is None else de_channels
    return factory(en_channels, de_channels, scale, **options).to(**f)
