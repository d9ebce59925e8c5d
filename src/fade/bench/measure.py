"""Measurement primitives: calls to time, latency, FLOPs by torch's own counter.

Every call is device-agnostic: the device of the case's inputs decides where it runs, and
accelerators are synchronised before a clock is read.
"""

from __future__ import annotations

import ctypes
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from .cases import Case
from .flops import blend_flop, custom_flop_formulas, product_flop

__all__ = [
    "BudgetExceeded",
    "FlopCount",
    "NotDifferentiable",
    "Timing",
    "case_label",
    "count_flops",
    "forward_backward_call",
    "forward_call",
    "synchronize",
    "time_call",
    "time_interleaved",
]


class BudgetExceeded(RuntimeError):
    """A single call took longer than the time budget."""


class NotDifferentiable(RuntimeError):
    """The output does not depend differentiably on the inputs or parameters."""


def case_label(name: str, shape: tuple[int, int, int, int]) -> str:
    """How progress names a case: ``"fade B=1 C=256 64x64"`` for decoder shape (B, C, H, W)."""
    batch, channels, height, width = shape
    return f"{name} B={batch} C={channels} {height}x{width}"


def synchronize(device: torch.device) -> None:
    """Wait for all work queued on ``device`` (no-op on CPU)."""
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def forward_call(case: Case) -> Callable[[], Tensor]:
    """Inference call: ``module(*inputs)`` under ``torch.no_grad``."""

    def call() -> Tensor:
        with torch.no_grad():
            return case.module(*case.inputs)

    return call


def forward_backward_call(case: Case) -> Callable[[], tuple]:
    """Training call: forward, then gradients w.r.t. the floating inputs and all parameters.

    The gradient of the output is a fixed random tensor of ``case.output_shape`` made here (it comes
    from downstream in a network), and gradients are returned rather than accumulated, so repeated
    calls do the same work.

    Raises:
        NotDifferentiable: when the output does not require grad.
    """
    inputs = tuple(t.detach().requires_grad_(t.is_floating_point()) for t in case.inputs)
    wrt = [t for t in inputs if t.requires_grad] + [p for p in case.module.parameters() if p.requires_grad]
    ref = case.inputs[0]
    grad_out = torch.randn(case.output_shape, generator=torch.Generator().manual_seed(1)).to(ref)

    def call() -> tuple:
        out = case.module(*inputs)
        if not out.requires_grad:
            raise NotDifferentiable(f"{case.name}: the output does not require grad")
        return torch.autograd.grad(out, wrt, grad_out, allow_unused=True)

    return call


def keep_freed_memory() -> str | None:
    """Make glibc's malloc keep freed memory in the process, as a caching allocator does.

    By default glibc maps every block over its mmap threshold (at most 32 MiB) afresh and unmaps it
    when freed, and hands the top of its heap back to the system once enough of it is free; the
    next allocation then pays a page fault per 4 KiB page on its first write. Whether a call pays
    that depends on what ran before it, so ratios of calls timed in alternation swing with their
    neighbours. After this call no block is mapped on its own and the heap is not trimmed (below
    2 GiB free). Process-wide and permanent: for a benchmark's own process.

    Returns:
        What was set (and what glibc refused, if it took only one of the two settings), or None
        where the C library is not glibc (nothing is changed) or refused both.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = {"M_MMAP_MAX=0": (-4, 0), "M_TRIM_THRESHOLD=2**31-1": (-1, 2**31 - 1)}  # <malloc.h>
    refused = [name for name, (option, value) in settings.items() if not mallopt(option, value)]
    taken = [name for name in settings if name not in refused]
    if not taken:
        return None
    if refused:
        return f"glibc malloc keeps only part of freed memory (mallopt {', '.join(taken)}; refused {', '.join(refused)})"
    return f"glibc malloc keeps freed memory (mallopt {', '.join(taken)})"


@dataclass
class Timing:
    """Median and minimum wall time of one call over ``repeats`` timed calls, and each of them."""

    median_ms: float
    min_ms: float
    repeats: int
    samples_ms: tuple[float, ...] = ()
    """The timed calls in the order they ran (with :func:`time_interleaved`, one per round)."""


def _timed(call: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


def time_call(
    call: Callable[[], object],
    device: torch.device,
    warmup: int = 2,
    min_repeats: int = 3,
    max_repeats: int = 50,
    target_s: float = 1.0,
    max_call_s: float = 30.0,
) -> Timing:
    """Median latency of ``call`` after warm-up.

    The number of timed calls is ``target_s`` divided by the warm-up time per call, clamped to
    [min_repeats, max_repeats].

    Raises:
        BudgetExceeded: when the first call and a second one each take more than ``max_call_s``
            seconds (one slow call alone may be a hiccup of a busy machine).
    """
    first = _timed(call, device)
    if first > max_call_s:
        second = _timed(call, device)
        if second > max_call_s:
            raise BudgetExceeded(f"two calls took {first:.1f} s and {second:.1f} s > the {max_call_s:g} s budget")
        first = second
    per_call = min([first] + [_timed(call, device) for _ in range(warmup - 1)])
    repeats = max(min_repeats, min(max_repeats, int(target_s / max(per_call, 1e-9))))
    times = [_timed(call, device) for _ in range(repeats)]
    return _timing(times)


def _timing(seconds: list[float]) -> Timing:
    ms = tuple(1e3 * t for t in seconds)
    return Timing(statistics.median(ms), min(ms), len(ms), ms)


def time_interleaved(
    calls: dict[str, Callable[[], object]], device: torch.device, warmup: int = 2, repeats: int = 10
) -> dict[str, Timing]:
    """Median latency of several calls timed in alternation, so that load changes hit all alike."""
    for call in calls.values():
        for _ in range(warmup):
            _timed(call, device)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(_timed(call, device))
    return {name: _timing(t) for name, t in times.items()}


class _OpRecorder(TorchDispatchMode):
    """Records every operator overload that runs inside it on tensor arguments, and the element-wise
    products of the fused operators in ``_FUSED_PRODUCTS`` (their formulas count the products too)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[torch._ops.OpOverload] = set()
        self.fused_products = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(isinstance(leaf, Tensor) for leaf in tree_leaves((args, kwargs))):
            self.ops.add(func)
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in _FUSED_PRODUCTS:
            self.fused_products += _FUSED_PRODUCTS[func.overloadpacket](out_shape=out.shape)
        return out


class FlopCount(NamedTuple):
    """What one inference call computes, by ``torch.utils.flop_counter``."""

    macs: int
    """Multiply-adds of the operators with a flop formula (convolutions, matrix products, ``fade::carafe``)."""
    products: int
    """Element-wise multiplications: one per output element of ``aten.mul`` and ``aten.addcmul``, two of
    ``aten.lerp`` and of the blend in ``fade::carafe_lerp`` (a blend ``a * w + b * (1 - w)``)."""
    uncounted: list[str]
    """Operators that ran on tensors and were counted as 0 (views excluded)."""


_PRODUCTS = {
    **dict.fromkeys((torch.ops.aten.mul, torch.ops.aten.addcmul, torch.ops.aten.addcmul_), product_flop),
    **dict.fromkeys((torch.ops.aten.lerp, torch.ops.aten.lerp_), blend_flop),
}
"""Operators counted as element-wise products, with their formulas."""

_FUSED_PRODUCTS = {torch.ops.fade.carafe_lerp: blend_flop}
"""Fused operators whose flop formula includes element-wise products: the formula of those products."""


def count_flops(case: Case) -> FlopCount:
    """Multiply-adds and element-wise products of one inference call, by ``torch.utils.flop_counter``.

    torch counts 2 FLOPs per multiply-add; the GFLOPs published with FADE count one, so ``macs`` is
    torch's count / 2. Those published figures also count one FLOP per element-wise product
    (``macs + products`` reproduces them, :mod:`fade.bench.networks`); other element-wise operators
    (additions, activations, normalisations, resampling) count 0 and are listed in ``uncounted``.
    """
    counter = FlopCounterMode(
        display=False, custom_mapping={**custom_flop_formulas(), **_PRODUCTS}
    )
    recorder = _OpRecorder()
    with torch.no_grad(), counter, recorder:
        case.module(*case.inputs)
    uncounted = sorted(
        {
            str(op.overloadpacket).removeprefix("aten.")
            for op in recorder.ops
            if op.overloadpacket not in counter.flop_registry and not op.is_view
        }
    )
    counts = counter.get_flop_counts().get("Global", {})
    products = sum(counts.get(op, 0) for op in _PRODUCTS) + recorder.fused_products
    return FlopCount((counter.get_total_flops() - products) // 2, products, uncounted)
