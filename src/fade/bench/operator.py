"""The operator suite (issue 2.2): the reassembly and FADE against their alternatives, side by side.

At C=256, decoder 64x64 -> 128x128, fp32, batch 1 (by default), in one run:

1. ``carafe`` inference time / ``F.interpolate(bilinear)`` time on the same tensor: target <= 3;
2. authors' FADE formulation forward+backward time / ``fade.FADE`` forward+backward time (same
   parameters): target >= 30;
3. peak extra memory of ``carafe`` forward+backward / bytes of its output: target <= 6.

Latencies are timed in alternation (one call of each per round, median over rounds), so a change in
machine load hits the compared calls alike. Memory comes from a fresh process
(:mod:`fade.bench.memory`).
"""

from __future__ import annotations

import torch

from .authors import FADEAuthors
from .cases import Case, build_case
from .measure import forward_backward_call, forward_call, time_interleaved
from .memory import MemoryJob, probe_memory

__all__ = ["TARGETS", "run_operator_suite"]

TARGETS = {
    "carafe_fwd_over_bilinear_fwd": ("<=", 3.0),
    "authors_fwdbwd_over_fade_fwdbwd": (">=", 30.0),
    "carafe_fwdbwd_peak_over_output": ("<=", 6.0),
}
"""Check name -> (comparison, target)."""


def _passes(value: float | None, op: str, target: float) -> bool | None:
    if value is None:
        return None
    return value <= target if op == "<=" else value >= target


def run_operator_suite(
    batch: int = 1,
    channels: int = 256,
    size: int = 64,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    warmup: int = 2,
    repeats: int = 7,
    fast_repeats: int = 50,
    memory_budget_gib: float = 8.0,
) -> dict:
    """Measure the three checks of issue 2.2 and return them with the raw numbers.

    ``repeats`` rounds time the forward+backward calls (the authors' formulation takes seconds),
    ``fast_repeats`` rounds the carafe and bilinear inference calls.

    Returns:
        ``{"setting", "latency_ms" (medians), "latency_min_ms", "peak_extra_mib", "output_mib", "fade_vs_authors_max_abs_diff",
        "checks": {name: {"value", "target", "pass"}}}``; ``pass`` is None where a number is missing.
    """
    device = torch.device(device)
    shape = (batch, channels, size, size)
    carafe_op = build_case("op:carafe", *shape, device=device, dtype=dtype)
    bilinear = build_case("op:bilinear", *shape, device=device, dtype=dtype)
    fade_case = build_case("fade", *shape, device=device, dtype=dtype)
    authors = Case("fade_authors", FADEAuthors(fade_case.module), fade_case.inputs, fade_case.output_shape)
    with torch.no_grad():
        diff = (fade_case.module(*fade_case.inputs) - authors.module(*authors.inputs)).abs().max().item()

    fwd = time_interleaved(
        {"carafe_fwd": forward_call(carafe_op), "bilinear_fwd": forward_call(bilinear)}, device, warmup, fast_repeats
    )
    fwdbwd = time_interleaved(
        {
            "fade_fwdbwd": forward_backward_call(fade_case),
            "fade_authors_fwdbwd": forward_backward_call(authors),
            "carafe_fwdbwd": forward_backward_call(carafe_op),
        },
        device,
        warmup,
        repeats,
    )
    latency = {k: t.median_ms for k, t in (fwd | fwdbwd).items()}
    fastest = {k: t.min_ms for k, t in (fwd | fwdbwd).items()}

    budget = int(memory_budget_gib * 2**30)
    threads = torch.get_num_threads()
    dt = str(dtype).removeprefix("torch.")
    peak, notes = {}, []
    names = ("op:carafe", "op:bilinear", "fade", "fade_authors")
    for mem in probe_memory(MemoryJob([(name, shape) for name in names], 2, str(device), dt, threads, budget)):
        name, key = mem.name, mem.name.removeprefix("op:")
        peak[f"{key}_fwd"] = None if mem.fwd_bytes is None else mem.fwd_bytes / 2**20
        peak[f"{key}_fwdbwd"] = None if mem.fwdbwd_bytes is None else mem.fwdbwd_bytes / 2**20
        notes += [f"{name}: {n}" for n in mem.notes]
    output_mib = batch * channels * (2 * size) ** 2 * carafe_op.inputs[0].element_size() / 2**20

    values = {
        "carafe_fwd_over_bilinear_fwd": latency["carafe_fwd"] / latency["bilinear_fwd"],
        "authors_fwdbwd_over_fade_fwdbwd": latency["fade_authors_fwdbwd"] / latency["fade_fwdbwd"],
        "carafe_fwdbwd_peak_over_output": None if peak["carafe_fwdbwd"] is None else peak["carafe_fwdbwd"] / output_mib,
    }
    checks = {
        name: {"value": values[name], "target": f"{op} {target:g}", "pass": _passes(values[name], op, target)}
        for name, (op, target) in TARGETS.items()
    }
    return {
        "setting": {
            "batch": batch,
            "channels": channels,
            "size": [size, size],
            "out_size": [2 * size, 2 * size],
            "dtype": dt,
            "device": str(device),
            "threads": threads,
            "warmup": warmup,
            "repeats": repeats,
            "fast_repeats": fast_repeats,
        },
        "latency_ms": latency,
        "latency_min_ms": fastest,
        "peak_extra_mib": peak,
        "output_mib": output_mib,
        "fade_vs_authors_max_abs_diff": diff,
        "checks": checks,
        "notes": notes,
    }
