"""Input conversion and checks shared by the metrics, a valid 1-D correlation, and the per-image
averaging of the streaming meters.

Every metric takes numpy arrays or torch tensors and computes in numpy: float64 for values,
int64 for label maps, bool for masks. A wrong type (not an array, a wrong dtype, a bool or float
where an integer belongs) raises TypeError; a wrong value (shape, empty map, range, NaN) raises
ValueError; both name the argument, what was expected and what came.
"""

from __future__ import annotations

from typing import Union

import math
import numbers

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a numpy array; torch tensors are detached and copied to the CPU."""
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided or x.device.type == "meta":
            raise ValueError(f"{name}: expected a dense tensor holding data, got layout {x.layout} on {x.device}")
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{name}: expected a numpy array or a torch tensor, got {type(x).__name__}")


def as_values(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a finite float64 array; bool, integer and float inputs are accepted."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "buif":
        raise TypeError(f"{name}: expected a real-valued array, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return a


def as_labels(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as an int64 label map; only integer (or bool) inputs are accepted."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected an integer label map, got dtype {a.dtype}")
    if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: expected labels that fit int64, got {a.max()}")
    return a.astype(np.int64)


def check_ndim(a: np.ndarray, ndims: tuple[int, ...], name: str, layout: str) -> None:
    """Raise ValueError unless ``a.ndim`` is one of ``ndims``; ``layout`` names the expected axes."""
    if a.ndim not in ndims:
        raise ValueError(f"{name}: expected a {layout} array, got {a.ndim}-D shape {a.shape}")


def check_spatial(a: np.ndarray, name: str) -> None:
    """Raise ValueError unless the last two axes (H, W) of ``a`` are non-empty."""
    if a.shape[-2] == 0 or a.shape[-1] == 0:
        raise ValueError(f"{name}: expected H and W >= 1, got shape {a.shape}")


def check_real(value: object, name: str, low: float, high: float = math.inf, *, open_low: bool = True) -> float:
    """``value`` as a float if it is a real number in (low, high] ([low, high] when not ``open_low``).

    Raises:
        TypeError: for a bool or a non-number. ValueError: for NaN, infinity or a value out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    number = float(value)
    inside = (number > low if open_low else number >= low) and number <= high
    if not math.isfinite(number) or not inside:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"
        raise ValueError(f"{name}: expected a finite number in {interval}, got {value!r}")
    return number


def check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    """``value`` if it is an integer (not bool) in [low, high].

    Raises:
        TypeError: for a bool or a non-integer. ValueError: for a value out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name}: expected an integer {bound}, got {value!r}")
    return int(value)


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {name_a} has shape {a.shape}, {name_b} has shape {b.shape}")


def correlate_valid(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Valid correlation along one axis: ``out[..., i] = sum_t kernel[t] * x[..., i + t]``.

    Args:
        x: array whose ``axis`` has length n >= len(kernel).
        kernel: 1-D array of length K.

    Returns:
        array of ``x``'s shape with ``axis`` of length n - K + 1.
    """
    moved = np.moveaxis(x, axis, -1)
    n_out = moved.shape[-1] - kernel.shape[0] + 1
    out = np.zeros(moved.shape[:-1] + (n_out,), dtype=np.float64)
    for t, weight in enumerate(kernel):
        out += weight * moved[..., t : t + n_out]
    return np.moveaxis(out, -1, axis)


class ImageMeans:
    """Base of the streaming meters that score every image and report the means over the images.

    A subclass names its scores in ``score_names`` and passes each batch's per-image scores to
    :meth:`add_images` from its ``update``.
    """

    score_names: tuple[str, ...] = ()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._sums = dict.fromkeys(self.score_names, 0.0)
        self._images = 0

    def add_images(self, scores: list[dict[str, float]]) -> None:
        """Add the scores of a batch: one ``{score name: value}`` per image."""
        for score in scores:
            for name, value in score.items():
                self._sums[name] += value
        self._images += len(scores)

    def compute(self) -> dict[str, float]:
        """Means over the images seen, one per score name, and ``"images"``: how many were seen."""
        if self._images == 0:
            raise ValueError(f"{type(self).__name__}: expected at least one image before compute(), got none")
        summary: dict[str, float] = {k: v / self._images for k, v in self._sums.items()}
        summary["images"] = self._images
        return summary
