"""The argument checks the data sets and loaders share.

Each raises TypeError for a value of the wrong type and ValueError for one out of range, with a
message naming the argument, what was expected and what came.
"""

from __future__ import annotations

import math
import operator
import os
from numbers import Integral, Real
from pathlib import Path

import torch

__all__ = [
    "MAX_SIDE",
    "check_flag",
    "check_float_tensor",
    "check_index",
    "check_key",
    "check_int",
    "check_pair",
    "check_path",
    "check_real",
    "check_size",
]

MAX_SIDE = 2**15
"""The largest image side a data set renders or crops (a 3 x 32768 x 32768 float32 image is 12 GiB)."""


def check_path(name: str, value: object) -> Path:
    """``value`` as a Path if it is a str or an os.PathLike of str, else TypeError."""
    if isinstance(value, str) or (isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)):
        return Path(value)
    raise TypeError(f"{name}: expected a path (str or os.PathLike), got {type(value).__name__} {value!r}")


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is True or False, else TypeError."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return value


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int if it is an integer (not a bool) of at least ``low`` (and at most ``high``)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name}: expected an integer >= {low}, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"an integer >= {low}" if value < low else f"an integer in [{low}, {high}]"
        raise ValueError(f"{name}: expected {bound}, got {value!r}")
    return int(value)


def check_real(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real number (not a bool), else TypeError / ValueError."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def check_pair(name: str, value: object, kind: str = "numbers") -> tuple[object, object]:
    """``value`` as a 2-tuple if it is a tuple or list of two items, else TypeError (``kind`` says of what)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name}: expected a pair of {kind}, got {type(value).__name__} {value!r}")
    return value[0], value[1]


def check_size(name: str, value: object, low: int = 1, layout: str = "(H, W)") -> tuple[int, int]:
    """``value`` as ``layout`` of two integers in [low, MAX_SIDE]."""
    first, second = check_pair(name, value, f"integers {layout}")
    if any(isinstance(v, bool) or not isinstance(v, Integral) for v in (first, second)):
        raise TypeError(f"{name}: expected {layout} of two integers, got {value!r}")
    if not all(low <= v <= MAX_SIDE for v in (first, second)):
        raise ValueError(f"{name}: expected {layout} of two integers in [{low}, {MAX_SIDE}], got {tuple(value)!r}")
    return int(first), int(second)


def check_key(key: object, length: int) -> tuple[int, int]:
    """(index, epoch) of a sample key: an index (epoch 0) or an (index, epoch) pair, index in [0, length),
    epoch >= 0; IndexError otherwise (the Dataset protocol)."""
    if isinstance(key, tuple) and len(key) != 2:
        raise IndexError(f"key: expected an index or an (index, epoch) pair, got {key!r}")
    index, epoch = key if isinstance(key, tuple) else (key, 0)
    index = check_index(index, length)
    if isinstance(epoch, bool) or not isinstance(epoch, Integral) or epoch < 0:
        raise IndexError(f"epoch: expected an integer >= 0, got {epoch!r}")
    return index, int(epoch)


def check_float_tensor(name: str, value: object) -> None:
    """TypeError unless ``value`` is a floating-point torch tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")


def check_index(index: object, length: int) -> int:
    """``index`` as an int if it is an integer (an int, numpy or 0-d tensor one; not a bool) in
    [0, length), else IndexError (the Dataset protocol)."""
    try:
        value = None if isinstance(index, bool) else operator.index(index)
    except TypeError:
        value = None
    if value is None or not 0 <= value < length:
        raise IndexError(f"index: expected an integer in [0, {length}), got {index!r}")
    return value


def check_range(name: str, value: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    """Return ``value`` if it is a pair of reals ``low <= a <= b <= high``, else raise."""
    a, b = (check_real(name, v) for v in check_pair(name, value, "numbers (a, b)"))
    if not low <= a <= b <= high:
        raise ValueError(f"{name}: expected a pair (a, b) with {low} <= a <= b <= {high}, got {value!r}")
    return a, b


def check_int_range(name: str, value: tuple[int, int], low: int) -> tuple[int, int]:
    """Return ``value`` if it is a pair of integers ``low <= a <= b``, else raise."""
    a, b = check_pair(name, value, "integers (min, max)")
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (a, b)):
        raise TypeError(f"{name}: expected integers (min, max), got {value!r}")
    if not low <= a <= b:
        raise ValueError(f"{name}: expected integers (min, max) with {low} <= min <= max, got {value!r}")
    return a, b
