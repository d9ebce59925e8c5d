"""The argument checks every upsampler shares: constructor numbers, factory dtype/device, (en, de) inputs.

Each check raises TypeError for a value of the wrong type and ValueError for a value out of range,
with a message naming the argument, what was expected and what came; nothing is allocated first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..ops.carafe import autocast_enabled
from ..ops.resize import check_output, check_sizes

__all__ = [
    "check_bool",
    "check_choice",
    "check_context",
    "check_context_input",
    "check_en_de",
    "check_input",
    "check_ints",
    "check_module",
    "check_pool_input",
    "check_positive_real",
    "check_tensors",
    "conv2d",
    "conv_transpose2d",
    "factory_kwargs",
    "linear",
]

# The most elements one layer's weight may have (1 GiB in float32): arguments asking for more are
# refused before anything is allocated, instead of exhausting memory while initialising.
MAX_WEIGHT_ELEMENTS = 2**28


def check_ints(odd: bool = False, **named: int) -> None:
    """Raise unless every named value is a positive integer (an odd one with ``odd=True``) of at most
    ``MAX_WEIGHT_ELEMENTS`` (every size here is at least one weight's size).

    Example: ``check_ints(en_channels=c_en, compressed_channels=d)``; bool is not an integer.
    """
    expected = "a positive odd integer" if odd else "a positive integer"
    for name, value in named.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
        if value < 1 or (odd and value % 2 == 0):
            raise ValueError(f"{name}: expected {expected}, got {value!r}")
        if value > MAX_WEIGHT_ELEMENTS:
            raise ValueError(f"{name}: expected {expected} of at most {MAX_WEIGHT_ELEMENTS:,}, got {value!r}")


def check_positive_real(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a finite real number > 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a finite positive real number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite positive real number, got {value!r}")
    return float(value)


def check_bool(name: str, value: bool) -> None:
    """Raise TypeError unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{name}: expected {listed}, got {value!r}")


def check_module(name: str, value: object, kind: type[nn.Module]) -> None:
    """Raise TypeError unless ``value`` is an instance of ``kind``."""
    if not isinstance(value, kind):
        raise TypeError(f"{name}: expected a {kind.__name__}, got {type(value).__name__}")


def factory_kwargs(device: torch.device | str | int | None, dtype: torch.dtype | None) -> dict[str, object]:
    """``{"device": device, "dtype": dtype}`` for torch layers, after checking both.

    Raises:
        TypeError: dtype not a torch.dtype, or device not a str, int or torch.device.
        ValueError: a non-floating dtype, an unknown device string or CUDA where there is none.
    """
    if dtype is not None:
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype: expected a floating torch.dtype or None, got {type(dtype).__name__} {dtype!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating torch.dtype (e.g. torch.float32), got {dtype}")
    if device is not None:
        if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
            raise TypeError(f"device: expected a str, int or torch.device, got {type(device).__name__} {device!r}")
        try:
            kind = torch.device(device).type
        except RuntimeError as error:
            raise ValueError(f"device: expected a device such as 'cpu' or 'cuda:0', got {device!r} ({error})") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: expected an available device, got {device!r} (torch.cuda.is_available() is False)")
    return {"device": device, "dtype": dtype}


def _check_weight(layer: str, elements: int) -> None:
    if elements > MAX_WEIGHT_ELEMENTS:
        raise ValueError(
            f"{layer}: expected a weight of at most {MAX_WEIGHT_ELEMENTS:,} elements, got {elements:,}; "
            "reduce the channels, kernel size or scale"
        )


def conv2d(in_channels: int, out_channels: int, kernel_size: int, groups: int = 1, **kwargs) -> nn.Conv2d:
    """``nn.Conv2d`` after checking the size of its weight (at most ``MAX_WEIGHT_ELEMENTS``)."""
    layer = f"Conv2d({in_channels}, {out_channels}, kernel_size={kernel_size}, groups={groups})"
    _check_weight(layer, in_channels // groups * out_channels * kernel_size**2)
    return nn.Conv2d(in_channels, out_channels, kernel_size, groups=groups, **kwargs)


def conv_transpose2d(in_channels: int, out_channels: int, kernel_size: int, **kwargs) -> nn.ConvTranspose2d:
    """``nn.ConvTranspose2d`` after checking the size of its weight."""
    _check_weight(
        f"ConvTranspose2d({in_channels}, {out_channels}, kernel_size={kernel_size})",
        in_channels * out_channels * kernel_size**2,
    )
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size, **kwargs)


def linear(in_features: int, out_features: int, **kwargs) -> nn.Linear:
    """``nn.Linear`` after checking the size of its weight."""
    _check_weight(f"Linear({in_features}, {out_features})", in_features * out_features)
    return nn.Linear(in_features, out_features, **kwargs)


def _module_tensor(module: nn.Module) -> Tensor | None:
    """The module's first parameter or floating buffer: it fixes the dtype and device the module accepts."""
    for t in module.parameters():
        return t
    return next((b for b in module.buffers() if b.is_floating_point()), None)


def check_input(name: str, t: object, module: nn.Module, like: Tensor | None = None) -> None:
    """Raise unless ``t`` is a floating tensor that ``module`` can take (and matches ``like``).

    It must have the dtype and device of the module's parameters (a module without any takes every
    floating dtype and device) and, when ``like`` is given, those of ``like`` (named "de"). Under
    autocast the dtypes are left to torch.

    Raises:
        TypeError: not a tensor, not floating, not dense, or the wrong dtype.
        ValueError: the wrong device.
    """
    _check_dense_float(name, t)
    reference, what = like, "de"
    if reference is None:
        reference, what = _module_tensor(module), f"{type(module).__name__}'s parameters"
    if reference is not None:
        _check_like(name, t, reference, what)


def _check_dense_float(name: str, t: object) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
    if t.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense (strided) tensor, got layout {t.layout}")


def _check_like(name: str, t: Tensor, reference: Tensor, what: str) -> None:
    """Raise unless t has the dtype (TypeError; not checked under autocast) and device (ValueError) of
    ``reference``, described as ``what``."""
    if t.dtype != reference.dtype and not autocast_enabled(t.device.type):
        raise TypeError(f"{name}: expected dtype {reference.dtype} (that of {what}), got {t.dtype}")
    if t.device != reference.device:
        raise ValueError(f"{name}: expected a tensor on {reference.device} (that of {what}), got {t.device}")


def check_tensors(dim: int, **named: Tensor) -> None:
    """Raise unless every named value is a dense floating ``dim``-D tensor of the first one's dtype
    and device (the arguments of the operators' functional forms)."""
    first = None
    for name, t in named.items():
        _check_dense_float(name, t)
        if t.dim() != dim:
            raise ValueError(f"{name}: expected a {dim}-D tensor, got {t.dim()}-D shape {tuple(t.shape)}")
        if first is None:
            first = name, t
        else:
            _check_like(name, t, first[1], first[0])


def check_en_de(en: Tensor, de: Tensor, en_channels: int, de_channels: int, scale: int, module: nn.Module) -> None:
    """Raise unless (en, de) are valid inputs of ``module``.

    de as :func:`check_input`, en of de's dtype and device; both 4-D, batch-aligned, of the given
    channels, de's spatial size positive and en's within ``scale - 1`` of ``scale`` times it, an
    output (and an en-sized map of max(C_en, C_de) channels) a tensor can hold.

    Raises:
        TypeError: a non-tensor, a non-floating dtype or a dtype mismatch.
        ValueError: a device mismatch or a wrong shape.
    """
    check_input("de", de, module)
    check_input("en", en, module, like=de)
    for name, t, c in (("en", en, en_channels), ("de", de, de_channels)):
        if t.dim() != 4:
            raise ValueError(f"{name}: expected a 4-D tensor (B, C, H, W), got {t.dim()}-D shape {tuple(t.shape)}")
        if t.shape[1] != c:
            raise ValueError(f"{name}: expected {c} channels, got {t.shape[1]} (shape {tuple(t.shape)})")
    if en.shape[0] != de.shape[0]:
        raise ValueError(f"batch mismatch: en has batch {en.shape[0]}, de has batch {de.shape[0]}")
    if min(de.shape[-2:]) < 1:
        raise ValueError(f"de: expected a positive spatial size (H, W), got {tuple(de.shape[-2:])}")
    check_sizes(tuple(de.shape[-2:]), tuple(en.shape[-2:]), scale, "en spatial size vs de")
    check_output((de.shape[0], max(en_channels, de_channels), *en.shape[-2:]), de.dtype)


def check_pool_input(x: Tensor, scale: int, module: nn.Module, channels: int | None = None) -> None:
    """Raise unless ``x`` is a (B, C, H, W) input of the down half ``module``, H, W >= scale.

    As :func:`check_input`, and C == channels when given.
    """
    _check_map_input(x, module, channels)
    if min(x.shape[-2:]) < scale:
        raise ValueError(f"x: expected a spatial size of at least {scale} (the scale), got {tuple(x.shape[-2:])}")


def check_context_input(
    x: Tensor, low_hw: tuple[int, int], scale: int, module: nn.Module, channels: int | None = None
) -> None:
    """Raise unless ``x`` is a (B, C, H, W) input of the down half ``module``'s ``context(x, low_hw)``:
    as :func:`check_pool_input`, with (H, W) within ``scale - 1`` of ``scale * low_hw`` (floor or ceil mode)."""
    _check_map_input(x, module, channels)
    check_sizes(low_hw, tuple(x.shape[-2:]), scale, "x spatial size vs the pooled size")


def _check_map_input(x: Tensor, module: nn.Module, channels: int | None) -> None:
    check_input("x", x, module)
    if x.dim() != 4:
        raise ValueError(f"x: expected a 4-D tensor (B, C, H, W), got {x.dim()}-D shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"x: expected {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)})")


def check_context(name: str, context: object, de: Tensor, what: str) -> None:
    """Raise unless a pair's context (argument ``name``) is a tensor on de's device; ``what`` says
    what it should be."""
    if context is None:
        raise ValueError(f"{name}: expected {what}, got None")
    if not isinstance(context, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor ({what}), got {type(context).__name__}")
    if context.device != de.device:
        raise ValueError(f"{name}: expected a tensor on {de.device} (that of de), got {context.device}")
