"""The operator suite (issues 2.2 and 11): the reassembly and FADE against their alternatives, side by side.

At C=256, decoder 64x64 -> 128x128, fp32, batch 1 (by default), in one run:

1. ``carafe`` inference time / ``F.interpolate(bilinear)`` time on the same tensor: target <= 3;
   the same at an odd size, (size-1)^2 -> (2 size-1)^2 (rows of partial vectors and a floor-mode
   column: the sizes a stride-2 encoder gives an odd input; 1 -> 3 for size 1);
2. authors' FADE formulation forward+backward time / ``fade.FADE`` forward+backward time (same
   parameters): target >= 30;
3. peak extra memory of ``carafe`` forward+backward / bytes of its output: target <= 6;
4. for ``fade.FADE`` and ``fade.FADELite`` (:data:`MODULES`) at each setting (batch, threads) of
   the default batch, batch 8 and one thread: forward time / bilinear forward time of the same
   ``de`` (<= 3), forward+backward time / bilinear forward+backward (<= 4), peak extra memory of
   the forward and of the forward+backward / bytes of the output (<= 1.5, <= 4), with where the
   time goes: the parts of the forward (kernels, reassembly, the rest) timed side by side, the
   operators of forward and forward+backward by ``torch.profiler``, and the module's multiply-adds
   against the machine's matrix-product rate.

Latencies are timed in alternation (one call of each per round, median over rounds), so a change in
machine load hits the compared calls alike; ``fade bench --suite operator`` first makes its process
keep freed memory (:func:`fade.bench.measure.keep_freed_memory`), so that no call pays page faults
for memory its neighbours freed. Memory comes from a fresh process (:mod:`fade.bench.memory`).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, shape_wrapper

from ..ops.carafe import carafe
from ..progress import Progress
from .authors import FADEAuthors
from .cases import Case, build_case
from .flops import custom_flop_formulas
from .measure import (
    Timing,
    forward_backward_call,
    forward_call,
    synchronize,
    time_interleaved,
)
from .memory import MemoryJob, MemoryResult, probe_memory

__all__ = ["MODULES", "MODULE_TARGETS", "TARGETS", "module_check_name", "operator_tables", "run_operator_suite"]

TARGETS = {
    "carafe_fwd_over_bilinear_fwd": ("<=", 3.0),
    "carafe_odd_fwd_over_bilinear_odd_fwd": ("<=", 3.0),
    "authors_fwdbwd_over_fade_fwdbwd": (">=", 30.0),
    "carafe_fwdbwd_peak_over_output": ("<=", 6.0),
}
"""Check name -> (comparison, target)."""

MODULES = ("fade", "fade_lite")
"""The modules measured against bilinear upsampling at every setting."""

MODULE_TARGETS = {
    "fwd_over_bilinear_fwd": ("<=", 3.0),
    "fwdbwd_over_bilinear_fwdbwd": ("<=", 4.0),
    "fwd_peak_over_output": ("<=", 1.5),
    "fwdbwd_peak_over_output": ("<=", 4.0),
}
"""Per module and setting: check -> (comparison, target), named by :func:`module_check_name`."""


_TIME_CHECK_CALLS = {"fwd_over_bilinear_fwd": "fwd", "fwdbwd_over_bilinear_fwdbwd": "fwdbwd"}
"""The time checks of :data:`MODULE_TARGETS` and the call each compares (its ratio quartiles' key)."""


def module_check_name(module: str, check: str, batch: int, threads: int) -> str:
    """``"fade_fwd_over_bilinear_fwd[B=8,threads=2]"``."""
    return f"{module}_{check}[B={batch},threads={threads}]"


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
    module_settings: Sequence[tuple[int, int]] | None = None,
    profile_calls: int = 3,
    progress: TextIO | None = None,
) -> dict:
    """Measure the checks of issues 2.2 and 11 and return them with the raw numbers.

    ``repeats`` rounds time the forward+backward calls of the first check (the authors' formulation
    takes seconds), ``fast_repeats`` rounds the other calls. ``module_settings`` are the (batch,
    threads) at which :data:`MODULES` are measured (default: ``batch`` and batch 8 at the present
    thread count, and ``batch`` at one thread); ``profile_calls`` calls of each are profiled by
    operator.

    Returns:
        ``{"setting", "latency_ms" (medians), "latency_min_ms", "peak_extra_mib", "output_mib",
        "fade_vs_authors_max_abs_diff", "modules": [one dict per setting, see below],
        "checks": {name: {"value", "target", "pass"}}, "notes"}``; ``pass`` is None where a number
        is missing. Each module setting holds ``"batch", "threads", "latency_ms", "latency_min_ms",
        "peak_extra_mib", "output_mib", "parts_ms"`` (per module: ``whole``, ``kernels``,
        ``reassembly``, ``rest`` = whole - kernels - reassembly, medians of the same rounds),
        ``"ratio_quartiles"`` (``"<module>_fwd"`` and ``"<module>_fwdbwd"``: first and third
        quartiles of the per-round ratios to bilinear, the spread behind the median ratio),
        ``"bilinear_quartiles_ms"`` (``fwd`` and ``fwdbwd``: first and third quartiles of the
        yardstick's own times over the rounds: how much it moved while the modules were timed),
        ``"output_fill_ms"`` (``fresh``: allocating an output-sized tensor and filling it, ``reused``:
        filling one kept from before; their difference is what the first touch of fresh memory
        costs, which a call pays whenever the allocator hands it fresh pages),
        ``"profile_ms"`` (per module and call: ms per call by operator, ``torch.profiler``'s
        self time, those of at least 2% and ``other``), ``"matrix_gmacs"`` (per module and call,
        ``fwd`` and ``fwdbwd``: the multiply-adds of its convolutions and matrix products, 1e9,
        the reassembly's excluded), ``"gemm_gmacs_per_s"`` (this machine's matrix-product rate at
        that thread count and dtype) and ``"gemm_floor_ms"`` (per module and call: those
        multiply-adds at that rate; with the reassembly's own time, a floor for the call on a
        machine where convolutions run no faster than matrix products).

    ``progress`` (a stream, e.g. ``sys.stderr``) is shown each step: the operator timings, each
    memory probe, each module setting (:class:`fade.progress.Progress`).
    """
    if module_settings is not None and any(b < 1 or t < 1 for b, t in module_settings):
        raise ValueError(
            f"module_settings: expected (batch, threads) pairs of positive integers, got {module_settings}"
        )
    device = torch.device(device)
    shape = (batch, channels, size, size)
    carafe_op = build_case("op:carafe", *shape, device=device, dtype=dtype)
    bilinear = build_case("op:bilinear", *shape, device=device, dtype=dtype)
    fade_case = build_case("fade", *shape, device=device, dtype=dtype)
    odd = max(size - 1, 1)  # decoder side of the odd-size check, upsampled in floor mode
    odd_shape, odd_out = (batch, channels, odd, odd), (2 * odd + 1, 2 * odd + 1)
    carafe_odd = build_case("op:carafe", *odd_shape, device=device, dtype=dtype, out_size=odd_out)
    bilinear_odd = build_case("op:bilinear", *odd_shape, device=device, dtype=dtype, out_size=odd_out)
    authors = Case("fade_authors", FADEAuthors(fade_case.module), fade_case.inputs, fade_case.output_shape)
    threads = torch.get_num_threads()
    if module_settings is None:
        module_settings = [(batch, threads), (8, threads), (batch, 1)]
    module_settings = list(dict.fromkeys((int(b), int(t)) for b, t in module_settings))
    dt = str(dtype).removeprefix("torch.")
    operator_names = ("op:carafe", "op:bilinear", "fade", "fade_authors")
    jobs: dict[int, list[tuple[str, tuple[int, int, int, int]]]] = {threads: [(name, shape) for name in operator_names]}
    for b, t in module_settings:
        jobs.setdefault(t, []).extend((name, (b, channels, size, size)) for name in ("op:bilinear", *MODULES))
    probes = sum(len(dict.fromkeys(cases)) for cases in jobs.values())
    bar = Progress(1 + probes + len(module_settings), "bench operator", progress)
    bar.begin("carafe, bilinear, FADE and the authors' FADE")
    with torch.no_grad():
        diff = (fade_case.module(*fade_case.inputs) - authors.module(*authors.inputs)).abs().max().item()

    fwd = time_interleaved(
        {
            "carafe_fwd": forward_call(carafe_op),
            "bilinear_fwd": forward_call(bilinear),
            "carafe_odd_fwd": forward_call(carafe_odd),
            "bilinear_odd_fwd": forward_call(bilinear_odd),
        },
        device,
        warmup,
        fast_repeats,
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
    bar.advance()

    budget = int(memory_budget_gib * 2**30)
    memory: dict[tuple[int, str, tuple[int, ...]], MemoryResult] = {}
    for t, cases in jobs.items():
        cases = list(dict.fromkeys(cases))
        for mem in probe_memory(MemoryJob(cases, 2, str(device), dt, t, budget), bar):
            memory[t, mem.name, tuple(mem.size)] = mem
    peak, notes = _peaks([memory[threads, name, shape] for name in operator_names])
    output_mib = batch * channels * (2 * size) ** 2 * carafe_op.inputs[0].element_size() / 2**20

    values = {
        "carafe_fwd_over_bilinear_fwd": latency["carafe_fwd"] / latency["bilinear_fwd"],
        "carafe_odd_fwd_over_bilinear_odd_fwd": latency["carafe_odd_fwd"] / latency["bilinear_odd_fwd"],
        "authors_fwdbwd_over_fade_fwdbwd": latency["fade_authors_fwdbwd"] / latency["fade_fwdbwd"],
        "carafe_fwdbwd_peak_over_output": None if peak["carafe_fwdbwd"] is None else peak["carafe_fwdbwd"] / output_mib,
    }
    checks = {name: _check(values[name], op, target) for name, (op, target) in TARGETS.items()}
    modules = []
    for b, t in module_settings:
        bar.begin(f"FADE and FADE-Lite modules, B={b}, threads={t}")
        shape_b = (b, channels, size, size)
        setting = _measure_modules(b, t, channels, size, device, dtype, warmup, fast_repeats, profile_calls)
        probed = [memory[t, name, shape_b] for name in ("op:bilinear", *MODULES)]
        setting["peak_extra_mib"], setting_notes = _peaks(probed)
        notes += [f"B={b}, threads={t}: {n}" for n in setting_notes]
        setting["output_mib"] = b / batch * output_mib
        for module in MODULES:
            module_values = _module_values(setting, module)
            for check, (op, target) in MODULE_TARGETS.items():
                checks[module_check_name(module, check, b, t)] = _check(module_values[check], op, target)
        modules.append(setting)
        bar.advance()
    bar.close()
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
        "modules": modules,
        "checks": checks,
        "notes": notes,
    }


def operator_tables(result: dict) -> str:
    """The result of :func:`run_operator_suite` as two markdown tables (the README's): the operator
    checks, then the modules against bilinear at each setting; a missed target is marked "(no)"."""
    checks, latency = result["checks"], result["latency_ms"]

    def met(name: str) -> str:
        return {True: "yes", False: "no", None: "not measured"}[checks[name]["pass"]]

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:,.1f} ms"

    peak = result["peak_extra_mib"]["carafe_fwdbwd"]
    odd = max(result["setting"]["size"][0] - 1, 1)
    rows = [
        ("reassembly forward (`fade.ops.carafe`) vs `F.interpolate(bilinear)`", "carafe_fwd_over_bilinear_fwd",
         ms(latency["carafe_fwd"]), ms(latency["bilinear_fwd"]), "x"),
        (f"the same at an odd size ({odd}x{odd} -> {2 * odd + 1}x{2 * odd + 1})",
         "carafe_odd_fwd_over_bilinear_odd_fwd", ms(latency["carafe_odd_fwd"]), ms(latency["bilinear_odd_fwd"]), "x"),
        ("FADE forward+backward vs the authors' formulation", "authors_fwdbwd_over_fade_fwdbwd",
         ms(latency["fade_fwdbwd"]), ms(latency["fade_authors_fwdbwd"]), "x faster"),
        (f"peak extra memory of carafe forward+backward vs its {result['output_mib']:g} MiB output",
         "carafe_fwdbwd_peak_over_output", "" if peak is None else f"{peak:.1f} MiB", "", "x"),
    ]
    text = [
        "| measurement | ours | alternative | ratio | target | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for what, name, ours, alternative, unit in rows:
        value = checks[name]["value"]
        ratio = "" if value is None else f"{value:.2f}{unit}"
        text.append(f"| {what} | {ours} | {alternative} | {ratio} | {checks[name]['target']} | {met(name)} |")
    text += [
        "",
        (
            "| setting | module | fwd (q1-q3) | fwd+bwd (q1-q3) | fwd peak | fwd+bwd peak | GEMM floor fwd / fwd+bwd "
            "| kernels / reassembly / rest (ms) | bilinear fwd / fwd+bwd (q1-q3) (ms) | output fill fresh / reused (ms) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for setting in result["modules"]:
        b, t = setting["batch"], setting["threads"]
        label = f"batch {b}, {t} thread{'s' if t > 1 else ''}"
        bilinear = setting["latency_ms"]
        for module in MODULES:
            cells = []
            for check in MODULE_TARGETS:
                entry = checks[module_check_name(module, check, b, t)]
                cell = "" if entry["value"] is None else f"{entry['value']:.2f}x"
                call = _TIME_CHECK_CALLS.get(check)
                if cell and call is not None:
                    q1, q3 = setting["ratio_quartiles"][f"{module}_{call}"]
                    cell += f" ({q1:.2f}-{q3:.2f})"
                cells.append(cell + (" (no)" if entry["pass"] is False else ""))
            floor = " / ".join(
                f"{setting['gemm_floor_ms'][module][call] / bilinear[f'bilinear_{call}']:.1f}x" for call in ("fwd", "fwdbwd")
            )
            parts = setting["parts_ms"][module]
            split = " / ".join(f"{parts[k]:,.1f}" for k in ("kernels", "reassembly", "rest"))
            name = {"fade": "FADE", "fade_lite": "FADE-Lite"}.get(module, module)
            times = " / ".join(
                f"{bilinear[f'bilinear_{call}']:,.1f} ({q1:,.1f}-{q3:,.1f})"
                for call, (q1, q3) in setting["bilinear_quartiles_ms"].items()
            )
            fill = f"{setting['output_fill_ms']['fresh']:,.1f} / {setting['output_fill_ms']['reused']:,.1f}"
            text.append(f"| {label} | {name} | {' | '.join(cells)} | {floor} | {split} | {times} | {fill} |")
            label = ""
    return "\n".join(text) + "\n"


def _check(value: float | None, op: str, target: float) -> dict:
    return {"value": value, "target": f"{op} {target:g}", "pass": _passes(value, op, target)}


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else num / den


def _peaks(results: list[MemoryResult]) -> tuple[dict[str, float | None], list[str]]:
    """``{"<name>_fwd": MiB, "<name>_fwdbwd": MiB}`` (``op:`` dropped from names) and the notes."""
    peak, notes = {}, []
    for mem in results:
        key = mem.name.removeprefix("op:")
        peak[f"{key}_fwd"] = None if mem.fwd_bytes is None else mem.fwd_bytes / 2**20
        peak[f"{key}_fwdbwd"] = None if mem.fwdbwd_bytes is None else mem.fwdbwd_bytes / 2**20
        notes += [f"{mem.name}: {n}" for n in mem.notes]
    return peak, notes


def _module_values(setting: dict, module: str) -> dict[str, float | None]:
    """The values of :data:`MODULE_TARGETS` for ``module`` at one measured setting."""
    latency, peak, output = setting["latency_ms"], setting["peak_extra_mib"], setting["output_mib"]
    return {
        "fwd_over_bilinear_fwd": _ratio(latency[f"{module}_fwd"], latency["bilinear_fwd"]),
        "fwdbwd_over_bilinear_fwdbwd": _ratio(latency[f"{module}_fwdbwd"], latency["bilinear_fwdbwd"]),
        "fwd_peak_over_output": _ratio(peak[f"{module}_fwd"], output),
        "fwdbwd_peak_over_output": _ratio(peak[f"{module}_fwdbwd"], output),
    }


def _measure_modules(
    batch: int,
    threads: int,
    channels: int,
    size: int,
    device: torch.device,
    dtype: torch.dtype,
    warmup: int,
    fast_repeats: int,
    profile_calls: int,
) -> dict:
    """Times, parts, operator profiles and multiply-adds of :data:`MODULES` and bilinear at one setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        shape = (batch, channels, size, size)
        cases = {"bilinear": build_case("op:bilinear", *shape, device=device, dtype=dtype)}
        cases |= {name: build_case(name, *shape, device=device, dtype=dtype) for name in MODULES}
        fwd_calls = {f"{name}_fwd": forward_call(case) for name, case in cases.items()}
        for name in MODULES:
            fwd_calls |= _part_calls(name, cases[name])
        out = cases["bilinear"].output_shape
        kept = torch.empty(out, device=device, dtype=dtype)
        fwd_calls |= {  # writing the output's bytes into fresh memory, and into memory written before
            "fill_fresh": lambda: torch.empty(out, device=device, dtype=dtype).fill_(1.0),
            "fill_reused": lambda: kept.fill_(1.0),
        }
        fwd = time_interleaved(fwd_calls, device, warmup, fast_repeats)
        fill = {k: fwd.pop(f"fill_{k}").median_ms for k in ("fresh", "reused")}
        fwdbwd_calls = {f"{name}_fwdbwd": forward_backward_call(case) for name, case in cases.items()}
        fwdbwd = time_interleaved(fwdbwd_calls, device, warmup, fast_repeats)
        quartiles = {
            f"{name}_{call}": _ratio_quartiles(timings[f"{name}_{call}"], timings[f"bilinear_{call}"])
            for name in MODULES
            for call, timings in (("fwd", fwd), ("fwdbwd", fwdbwd))
        }
        parts = {}
        for name in MODULES:
            whole, kernels, reassembly = (fwd[f"{name}_{part}"].median_ms for part in ("fwd", "kernels", "reassembly"))
            parts[name] = {"whole": whole, "kernels": kernels, "reassembly": reassembly}
            parts[name]["rest"] = whole - kernels - reassembly
        gmacs = {
            name: {"fwd": _matrix_gmacs(fwd_calls[f"{name}_fwd"]), "fwdbwd": _matrix_gmacs(fwdbwd_calls[f"{name}_fwdbwd"])}
            for name in MODULES
        }
        rate = _gemm_rate(device, dtype)
        profiles = {}
        for name in MODULES:
            profiles[f"{name}_fwd"] = _operator_profile(fwd_calls[f"{name}_fwd"], device, profile_calls)
            profiles[f"{name}_fwdbwd"] = _operator_profile(fwdbwd_calls[f"{name}_fwdbwd"], device, profile_calls)
        return {
            "batch": batch,
            "threads": threads,
            "latency_ms": {k: fwd[k].median_ms for k in fwd if not k.endswith(("_kernels", "_reassembly"))}
            | {k: t.median_ms for k, t in fwdbwd.items()},
            "latency_min_ms": {k: fwd[k].min_ms for k in fwd if not k.endswith(("_kernels", "_reassembly"))}
            | {k: t.min_ms for k, t in fwdbwd.items()},
            "ratio_quartiles": quartiles,
            "bilinear_quartiles_ms": {
                call: _quartiles(list(timings[f"bilinear_{call}"].samples_ms))
                for call, timings in (("fwd", fwd), ("fwdbwd", fwdbwd))
            },
            "parts_ms": parts,
            "output_fill_ms": fill,
            "profile_ms": profiles,
            "matrix_gmacs": gmacs,
            "gemm_gmacs_per_s": rate,
            "gemm_floor_ms": {name: {call: 1e3 * m / rate for call, m in macs.items()} for name, macs in gmacs.items()},
        }
    finally:
        torch.set_num_threads(previous)


def _ratio_quartiles(ours: Timing, bilinear: Timing) -> list[float]:
    """First and third quartiles of the per-round ratios ours / bilinear (the calls ran in alternation)."""
    return _quartiles([a / b for a, b in zip(ours.samples_ms, bilinear.samples_ms)])


def _quartiles(values: list[float]) -> list[float]:
    """[first quartile, third quartile] of the values (the value twice when there is one)."""
    if len(values) < 2:
        return list(values) * 2
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return [q1, q3]


def _part_calls(name: str, case: Case) -> dict[str, Callable[[], object]]:
    """Inference calls of the parts of a kernel upsampler: its kernels, and the reassembly with them."""
    module, (en, de) = case.module, case.inputs
    with torch.no_grad():
        kernels = module.kernels(en, de)

    def make_kernels() -> torch.Tensor:
        with torch.no_grad():
            return module.kernels(en, de)

    return {f"{name}_kernels": make_kernels, f"{name}_reassembly": lambda: carafe(de, kernels, module.scale)}


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's native library logs its start and stop there)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _operator_profile(call: Callable[[], object], device: torch.device, calls: int) -> dict[str, float]:
    """Milliseconds per call by operator (``torch.profiler`` self time), those of at least 2% and ``other``."""
    call()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with _stderr_to_devnull(), profile(activities=activities) as prof:
        for _ in range(calls):
            call()
        synchronize(device)
    attribute = "self_cpu_time_total" if device.type == "cpu" else "self_device_time_total"
    ms = {event.key: getattr(event, attribute) / 1e3 / calls for event in prof.key_averages()}
    total = sum(ms.values())
    top = {key: value for key, value in sorted(ms.items(), key=lambda kv: -kv[1]) if value >= 0.02 * total}
    return top | {"other": total - sum(top.values())}


def _matrix_gmacs(call: Callable[[], object]) -> float:
    """Multiply-adds (1e9) of the convolutions and matrix products of one ``call`` (a forward, or a
    forward+backward), by ``torch.utils.flop_counter``'s formulas; the reassembly's are left out (it
    is timed on its own) and element-wise operators count nothing."""
    counter = _MatrixProducts()
    with counter:
        call()
    return counter.flops / 2 / 1e9


class _MatrixProducts(TorchDispatchMode):
    """Sums the FLOPs of the operators with a formula (torch's, and :mod:`fade.bench.flops`' but the
    reassembly's) that run inside it, the backward's included. (``FlopCounterMode``'s module tracker refuses
    ``torch.autograd.grad`` with respect to leaf tensors, which the timed calls use.)"""

    def __init__(self) -> None:
        super().__init__()
        reassembly = {torch.ops.fade.carafe, torch.ops.fade.carafe_lerp, torch.ops.fade.carafe_backward}
        ours = {op: shape_wrapper(f) for op, f in custom_flop_formulas().items() if op not in reassembly}
        self.formulas = flop_registry | ours
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func.overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def _gemm_rate(device: torch.device, dtype: torch.dtype, n: int = 1024, calls: int = 5) -> float:
    """Multiply-adds per second (1e9) of an n x n matrix product, fastest of ``calls``."""
    a, b = (torch.randn(n, n, generator=torch.Generator().manual_seed(i)).to(device, dtype) for i in (0, 1))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(calls):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return n**3 / best / 1e9
