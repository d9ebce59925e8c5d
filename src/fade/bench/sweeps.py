"""The sweeps of ``fade bench``: every upsampler measured the same way, one row per setting.

Settings (paper Fig. 7): channels C at a fixed decoder size (64x64 -> 128x128), and decoder size
at a fixed C (256), each at batch 1 and at a training batch. Each name is measured at each distinct
(batch, C, H, W) once: parameters, multiply-adds (torch's flop counter, counted operators only),
median latency of inference and of forward+backward, and peak extra memory of both (a fresh
process, :mod:`fade.bench.memory`). Names that exceed a time or memory budget are recorded
as skipped with the reason, never dropped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import torch

from ..io import write_file
from ..progress import Progress
from .cases import build_case
from .measure import (
    BudgetExceeded,
    NotDifferentiable,
    case_label,
    count_flops,
    forward_backward_call,
    forward_call,
    time_call,
)
from .memory import MemoryJob, MemoryResult, probe_memory

__all__ = [
    "COLUMNS",
    "FULL",
    "NOTES",
    "QUICK",
    "Setting",
    "SweepConfig",
    "csv_text",
    "machine_info",
    "markdown_tables",
    "run_sweep",
    "settings",
    "write_results",
]

COLUMNS = [
    "name",
    "sweep",
    "batch",
    "channels",
    "height",
    "width",
    "out_height",
    "out_width",
    "params",
    "gflops",
    "gproducts",
    "uncounted_ops",
    "fwd_ms",
    "fwd_min_ms",
    "fwd_repeats",
    "fwdbwd_ms",
    "fwdbwd_min_ms",
    "fwdbwd_repeats",
    "peak_fwd_mib",
    "peak_fwdbwd_mib",
    "status",
    "notes",
    "device",
    "dtype",
    "threads",
    "torch",
]
"""Columns of the result table. gflops: 1e9 multiply-adds of one inference call, counted
operators only; gproducts: 1e9 element-wise products (uncounted_ops lists what ran and counted 0); *_ms: median milliseconds (*_min_ms:
the fastest call, less sensitive to a busy machine);
peak_*_mib: peak extra memory in MiB; status: ok, partial or skipped (notes say why)."""

NOTES = [
    (
        "gflops: multiply-adds / 1e9 of one inference call (one multiply-add = one FLOP, as in the GFLOPs "
        "published with FADE), counted by torch.utils.flop_counter; only operators with a flop formula count, "
        "the operators listed in uncounted_ops ran and counted 0. gproducts: element-wise products / 1e9, "
        "one per output element; the published figures count them too (gflops + gproducts reproduces them "
        "in the paper's networks: fade bench --suite networks)."
    ),
    (
        "fwd_ms: median of repeated inference calls (torch.no_grad) after warm-up; fwdbwd_ms: forward plus "
        "gradients w.r.t. inputs and parameters for a fixed output gradient; devices synchronised."
    ),
    (
        "peak_*_mib: peak extra memory over what was resident before the call (module, inputs, output "
        "gradient excluded), in a fresh process after warm-up; CPU: resident set (VmHWM), "
        "CUDA: max_memory_allocated."
    ),
]


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: decoder feature (batch, channels, size, size), upsampled by ``scale``."""

    sweep: str
    batch: int
    channels: int
    size: int

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The decoder feature's shape (B, C, H, W)."""
        return (self.batch, self.channels, self.size, self.size)


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how hard to measure each point."""

    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    batches: tuple[int, ...] = (1, 8)
    base_channels: int = 256
    base_size: int = 64
    scale: int = 2
    warmup: int = 2
    min_repeats: int = 3
    max_repeats: int = 30
    target_s: float = 1.0
    max_call_s: float = 30.0
    memory_budget_gib: float = 6.0


FULL = SweepConfig()
"""The README sweep: paper Fig. 7's ranges, batch 1 and a training batch of 8."""

QUICK = replace(
    FULL,
    channels=(16, 64, 256),
    sizes=(16, 32, 64),
    batches=(1,),
    warmup=1,
    target_s=0.2,
    max_call_s=10.0,
    memory_budget_gib=4.0,
)
"""``fade bench --quick``: three points per sweep at batch 1, fewer repeats."""


def settings(config: SweepConfig) -> list[Setting]:
    """The channel sweep then the resolution sweep, for each batch."""
    out = []
    for b in config.batches:
        out += [Setting("channels", b, c, config.base_size) for c in config.channels]
        out += [Setting("resolution", b, config.base_channels, s) for s in config.sizes]
    return out


@dataclass
class _Point:
    """Measurements of one name at one decoder shape (shared by the sweeps that contain it)."""

    values: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _covers(smaller: tuple[int, ...], larger: tuple[int, ...]) -> bool:
    """True when every dimension of ``smaller`` is at most that of ``larger``."""
    return all(a <= b for a, b in zip(smaller, larger))


def _measure_point(
    name: str,
    shape: tuple[int, int, int, int],
    mem: MemoryResult,
    over_budget: dict[str, list[tuple[int, ...]]],
    config: SweepConfig,
    device: torch.device,
    dtype: torch.dtype,
) -> _Point:
    """Build, count and time ``name`` at one decoder shape, given its memory result.

    The shape is not timed when its memory probe ran over budget, or when a shape no larger in any
    dimension is in ``over_budget`` (shapes per mode that ran over the time budget; this one is added
    when it does); failures become notes.
    """
    point = _Point()
    point.notes += mem.notes
    point.values["peak_fwd_mib"] = None if mem.fwd_bytes is None else mem.fwd_bytes / 2**20
    point.values["peak_fwdbwd_mib"] = None if mem.fwdbwd_bytes is None else mem.fwdbwd_bytes / 2**20
    try:
        case = build_case(name, *shape, config.scale, device, dtype)
    except Exception as err:  # noqa: BLE001  (any upsampler's failure is recorded, not raised)
        point.notes.append(f"cannot build: {type(err).__name__}: {str(err)[:200]}")
        return point
    out_shape = (config.scale * shape[2], config.scale * shape[3])
    point.values.update(params=case.params(), out_height=out_shape[0], out_width=out_shape[1])
    over_memory = any("memory budget" in n for n in mem.notes)
    if mem.fwd_bytes is None and over_memory:
        return point
    try:
        flops = count_flops(case)
        point.values.update(
            gflops=flops.macs / 1e9, gproducts=flops.products / 1e9, uncounted_ops=" ".join(flops.uncounted)
        )
    except Exception as err:  # noqa: BLE001  (any upsampler's failure is recorded, not raised)
        point.notes.append(f"inference failed: {type(err).__name__}: {str(err)[:200]}")
        return point
    no_backward = any(n.startswith("no backward") for n in mem.notes)
    for mode, make_call in (("fwd", forward_call), ("fwdbwd", forward_backward_call)):
        if mode == "fwdbwd" and mem.fwdbwd_bytes is None and (over_memory or no_backward):
            break
        if any(_covers(s, shape) for s in over_budget[mode]):
            point.notes.append(f"{mode} not timed: a smaller setting exceeded the time budget")
            continue
        try:
            t = time_call(
                make_call(case),
                device,
                config.warmup,
                config.min_repeats,
                config.max_repeats,
                config.target_s,
                config.max_call_s,
            )
        except BudgetExceeded as err:
            over_budget[mode].append(shape)
            point.notes.append(f"{mode} not timed: {err}")
            continue
        except NotDifferentiable as err:
            point.notes.append(f"no backward: {err}")
            continue
        except Exception as err:  # noqa: BLE001  (any upsampler's failure is recorded, not raised)
            point.notes.append(f"{mode} failed: {type(err).__name__}: {str(err)[:200]}")
            continue
        point.values.update({f"{mode}_ms": t.median_ms, f"{mode}_min_ms": t.min_ms, f"{mode}_repeats": t.repeats})
    return point


def run_sweep(
    names: list[str],
    config: SweepConfig,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: TextIO | None = None,
    memory: bool = True,
) -> list[dict]:
    """Measure every name at every setting of ``config``; one row (dict over COLUMNS) each.

    Peak memory comes first, from one fresh process for the whole sweep (``memory=False`` skips it);
    then each name is timed here, in this process, at each distinct decoder shape in increasing size.
    Both phases draw their progress (the case on, how many remain, time left) on the stream
    ``progress`` (:class:`fade.progress.Progress`; None: silent).
    """
    device = torch.device(device)
    points = settings(config)
    shapes = sorted({p.shape for p in points}, key=lambda s: (s[0] * s[1] * s[2] * s[3], s))
    common = {
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    job = MemoryJob(
        [(name, shape) for name in names for shape in shapes],
        config.scale,
        str(device),
        common["dtype"],
        torch.get_num_threads(),
        int(config.memory_budget_gib * 2**30),
    )
    if memory:
        with Progress(len(job.cases), "bench memory", progress) as bar:
            probed = {(r.name, r.size): r for r in probe_memory(job, bar)}
    else:
        probed = {(n, s): MemoryResult(n, s, notes=["memory not measured"]) for n, s in job.cases}
    measured: dict[tuple[str, tuple[int, int, int, int]], _Point] = {}
    with Progress(len(job.cases), "bench timing", progress) as bar:
        for name in names:
            over_budget: dict[str, list[tuple[int, ...]]] = {"fwd": [], "fwdbwd": []}
            for shape in shapes:
                bar.begin(case_label(name, shape))
                measured[name, shape] = _measure_point(
                    name, shape, probed[name, shape], over_budget, config, device, dtype
                )
                bar.advance()
    rows = []
    for name in names:
        for p in points:
            m = measured[name, p.shape]
            row = dict.fromkeys(COLUMNS)
            row.update(common, name=name, sweep=p.sweep, batch=p.batch, channels=p.channels)
            row.update(height=p.size, width=p.size, **m.values)
            timed = [row["fwd_ms"], row["fwdbwd_ms"], row["peak_fwd_mib"], row["peak_fwdbwd_mib"]]
            row["status"] = "ok" if None not in timed else ("skipped" if row["fwd_ms"] is None else "partial")
            row["notes"] = "; ".join(m.notes)
            rows.append(row)
    return rows


def machine_info(device: str | torch.device = "cpu") -> dict:
    """Where the numbers were measured: CPU model, cores, OS, Python, torch, accelerator."""
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["accelerator"] = torch.cuda.get_device_name(device)
    return info


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """``rows`` as CSV with a header, missing values empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_results(rows: list[dict], meta: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``bench.csv``, ``bench.json`` and ``table.md`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / "bench.csv", out_dir / "bench.json", out_dir / "table.md"]
    write_file(paths[0], csv_text(rows, COLUMNS))
    write_file(paths[1], json.dumps({"meta": meta, "columns": COLUMNS, "rows": rows}, indent=1) + "\n")
    write_file(paths[2], markdown_tables(rows, meta))
    return paths


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def markdown_tables(rows: list[dict], meta: dict) -> str:
    """The setting both sweeps share (paper: C=256, 64 -> 128): one markdown table per batch, then,
    with several batches, their times and peaks side by side (the README's table)."""
    config, machine = meta["config"], meta["machine"]
    where = f"{machine['cpu']} ({machine['cores']} cores), {machine['device']}, {machine['threads']} threads"
    allocator = f" Allocator: {meta['allocator']}." if "allocator" in meta else ""
    text = [f"Measured on {where}, torch {machine['torch']}.{allocator}\n"]
    size, out = config["base_size"], config["scale"] * config["base_size"]
    setting = f"C={config['base_channels']}, {size}x{size} -> {out}x{out}"
    shared = {}
    for batch in config["batches"]:
        sel = [
            r
            for r in rows
            if r["sweep"] == "channels"
            and r["batch"] == batch
            and r["channels"] == config["base_channels"]
            and r["height"] == config["base_size"]
        ]
        if not sel:
            text.append(f"\nBatch {batch}: the shared setting ({setting}) was not in this sweep.\n")
            continue
        shared[batch] = {r["name"]: r for r in sel}
        text.append(f"\nBatch {batch}, {setting}:\n")
        text.append(
            "| upsampler | params | GFLOPs (counted) | fwd ms | fwd+bwd ms | peak fwd MiB | peak fwd+bwd MiB | notes |"
        )
        text.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in sel:
            text.append(
                f"| {r['name']} | {_params(r)} | {_fmt(r['gflops'], 3)} | {_fmt(r['fwd_ms'], 1)} | "
                f"{_fmt(r['fwdbwd_ms'], 1)} | {_fmt(r['peak_fwd_mib'], 1)} | {_fmt(r['peak_fwdbwd_mib'], 1)} | "
                f"{r['notes']} |"
            )
    if len(shared) > 1:
        text += _side_by_side(shared, setting)
    return "\n".join(text) + "\n"


def _params(row: dict) -> str:
    return "" if row["params"] is None else f"{row['params']:,}"


def _side_by_side(shared: dict[int, dict[str, dict]], setting: str) -> list[str]:
    """Markdown lines: per upsampler, its times and forward+backward peak at each batch of ``shared``
    (GFLOPs of the first batch); FADE and FADE-Lite in bold."""
    batches = list(shared)
    names = list(dict.fromkeys(name for by_name in shared.values() for name in by_name))
    cells = {"fwd_ms": "fwd ms", "fwdbwd_ms": "fwd+bwd ms", "peak_fwdbwd_mib": "peak fwd+bwd MiB"}
    header = " | ".join(f"{label} (b={b})" for b in batches for label in cells.values())
    lines = [
        (
            f"\nBatches {', '.join(map(str, batches))} side by side, {setting} "
            f"(GFLOPs at batch {batches[0]}, multiply-adds only):\n"
        ),
        f"| upsampler | params | GFLOPs | {header} |",
        "|---|---:|---:|" + "---:|" * (len(cells) * len(batches)),
    ]
    for name in names:
        first = next(by_name[name] for by_name in shared.values() if name in by_name)
        values = []
        for b in batches:
            r = shared[b].get(name)
            values += ["" if r is None else _fmt(r[k], 1) for k in cells]
        label = f"**{name}**" if name in ("fade", "fade_lite") else name
        lines.append(f"| {label} | {_params(first)} | {_fmt(first['gflops'], 3)} | " + " | ".join(values) + " |")
    return lines
