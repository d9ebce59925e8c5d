"""The ``fade`` command line: one subcommand per job (``fade bench``; others add theirs).

Each subcommand is a ``configure_*(subparsers)`` that adds its parser and a function taking the
parsed arguments and returning an exit status.

Errors: a malformed or out-of-range option is refused while parsing (numeric options use
:func:`int_range` and :func:`float_range`); while a command runs, a user error (:data:`USER_ERRORS`:
ValueError for bad values or bad files, OSError for paths, disks, devices and locked folders,
MemoryError, CUDA out-of-memory and torch's failed CPU allocations, a diverged run's FloatingPointError)
becomes one line on stderr and exit status 2; Ctrl-C one line and status 130, SIGTERM 143.
Any other exception is a bug in fade and shows its traceback; ``--debug`` shows it for all.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .io import FolderLockedError

__all__ = ["USER_ERRORS", "Terminated", "bench", "float_range", "folder_path", "int_range", "main"]

USER_ERRORS = (ValueError, OSError, MemoryError, FloatingPointError, torch.cuda.OutOfMemoryError)
"""Exceptions a command reports as the user's mistake or the machine's state (one line, exit status 2);
FloatingPointError is a training run that diverged (a non-finite loss)."""
ON_INTERRUPT = {
    "train": "run the same command again to resume from the last checkpoint",
    "compare": "run the same command again: finished runs are reused, the interrupted one resumes",
}
"""Per subcommand: what to do after an interruption (Ctrl-C)."""


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [low, high] (no upper bound when ``high`` is None)."""
    span = f">= {low}" if high is None else f"in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {text!r}")
        return value

    return parse


def float_range(low: float, high: float = math.inf, low_inclusive: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number above ``low`` (or at it when ``low_inclusive``), at most ``high``."""
    span = f"{'>=' if low_inclusive else '>'} {low:g}" + ("" if high == math.inf else f" and <= {high:g}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {span}, got {text!r}") from None
        above = value >= low if low_inclusive else value > low
        if not (math.isfinite(value) and above and value <= high):
            raise argparse.ArgumentTypeError(f"expected a finite number {span}, got {text!r}")
        return value

    return parse


def folder_path(text: str) -> str:
    """An argparse ``type``: a non-empty path (an empty --out would silently mean the default or ".")."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a folder path, got {text!r}")
    return text


def _bench_name(text: str) -> str:
    """An argparse ``type``: a name :func:`fade.bench.cases.benchmark_names` knows."""
    from .bench.cases import benchmark_names

    if text not in benchmark_names():
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(benchmark_names())}, got {text!r}")
    return text


def _input_size(text: str) -> int:
    """An argparse ``type``: a positive multiple of 32 (the networks' coarsest stride)."""
    value = int_range(32)(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"expected a multiple of 32, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (status 2), pointing at ``--help``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def bench(args: argparse.Namespace) -> int:
    """``fade bench``: the upsampler sweeps, the operator suite, or the network costs."""
    from .bench.measure import keep_freed_memory
    from .bench.sweeps import machine_info
    from .io import lock_folder
    from .train.trainer import resolve_device

    resolve_device(args.device)
    with lock_folder(args.out, args.command_line, name="out"):
        if args.threads:
            torch.set_num_threads(args.threads)
        meta = {
            "command": args.command_line,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "machine": machine_info(args.device),
        }
        if args.suite != "networks":  # the timed suites
            kept = keep_freed_memory() if args.malloc == "keep" else None
            meta["allocator"] = kept or "the C library's default"
        suites = {"sweep": _bench_sweep, "operator": _bench_operator, "networks": _bench_networks}
        start = time.perf_counter()
        paths = suites[args.suite](args, meta, start)
    print("\n".join(str(p) for p in paths))
    return 0


def _elapsed(start: float) -> float:
    return round(time.perf_counter() - start, 1)


def _bench_operator(args: argparse.Namespace, meta: dict, start: float) -> list[Path]:
    """``--suite operator``: OUT/operator.json and its tables, OUT/operator.md."""
    from .bench.operator import operator_tables, run_operator_suite
    from .io import write_file

    result = run_operator_suite(
        args.batch,
        args.base_channels or 256,
        args.base_size or 64,
        args.device,
        getattr(torch, args.dtype),
        repeats=args.repeats or 7,
        memory_budget_gib=args.memory_budget_gib or 8.0,
        progress=sys.stderr,
    )
    meta["elapsed_s"] = _elapsed(start)
    paths = [Path(args.out) / "operator.json", Path(args.out) / "operator.md"]
    write_file(paths[0], json.dumps({"meta": meta, **result}, indent=1) + "\n")
    write_file(paths[1], operator_tables(result))
    for name, check in result["checks"].items():
        print(f"{name}: {check['value']} (target {check['target']}): {check['pass']}")
    return paths


def _bench_networks(args: argparse.Namespace, meta: dict, start: float) -> list[Path]:
    """``--suite networks``: OUT/networks/networks.{csv,json,md}."""
    from .bench.networks import NETWORK_COLUMNS, network_table, run_network_suite
    from .bench.sweeps import csv_text
    from .io import write_file
    from .upsamplers import list_upsamplers

    unknown = sorted(set(args.names or ()) - set(list_upsamplers()))
    if unknown:
        raise ValueError(f"names: expected upsamplers of fade.list_upsamplers() for --suite networks, got {unknown}")
    names = args.names or list_upsamplers()
    rows = run_network_suite(names, size=args.input_size, device=args.device, progress=sys.stderr)
    meta["elapsed_s"] = _elapsed(start)
    out = Path(args.out) / "networks"
    paths = [out / "networks.csv", out / "networks.json", out / "networks.md"]
    write_file(paths[0], csv_text(rows, NETWORK_COLUMNS))
    write_file(paths[1], json.dumps({"meta": meta, "columns": NETWORK_COLUMNS, "rows": rows}, indent=1) + "\n")
    write_file(paths[2], network_table(rows))
    return paths


def _bench_sweep(args: argparse.Namespace, meta: dict, start: float) -> list[Path]:
    """``--suite sweep``: OUT/{quick,full}/bench.{csv,json}, table.md and the figures."""
    from .bench.cases import benchmark_names
    from .bench.sweeps import FULL, NOTES, QUICK, run_sweep, write_results

    overrides = {
        "channels": args.channels,
        "sizes": args.sizes,
        "batches": args.batches,
        "base_channels": args.base_channels,
        "base_size": args.base_size,
        "warmup": args.warmup,
        "min_repeats": args.repeats,
        "max_repeats": args.repeats,
        "max_call_s": args.max_call_s,
        "memory_budget_gib": args.memory_budget_gib,
    }
    config = QUICK if args.quick else FULL
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    config = replace(config, **given)
    names = args.names or benchmark_names()
    rows = run_sweep(names, config, args.device, getattr(torch, args.dtype), sys.stderr, memory=args.memory)
    meta.update(config=asdict(config), notes=NOTES, elapsed_s=_elapsed(start))
    out = Path(args.out)
    out = out / ("quick" if args.quick else "full") if args.out_subdir else out
    paths = write_results(rows, meta, out)
    if not args.no_plots:
        from .bench.plots import plot_sweep

        paths += plot_sweep(rows, meta, out)
    return paths


def configure_bench(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fade bench`` and its options."""
    from .train.trainer import THREADS_MAX

    p = subparsers.add_parser(
        "bench",
        help="measure every upsampler: parameters, FLOPs, latency, peak memory; figures",
        description="Measure every registered upsampler (and the authors' FADE formulation) the same way. "
        "--suite sweep (default): paper Fig. 7's sweeps, CSV/JSON/markdown/PNG into OUT/full or OUT/quick. "
        "--suite operator: the reassembly, FADE and FADE-Lite against bilinear upsampling and the authors' "
        "formulation, with their targets, into OUT/operator.json and OUT/operator.md. "
        "--suite networks: parameters and GFLOPs each upsampler adds to SegFormer-B1 and A2U-R34, into OUT/networks.",
    )
    p.add_argument("--suite", choices=["sweep", "operator", "networks"], default="sweep")
    p.add_argument(
        "--malloc",
        choices=["keep", "default"],
        default="keep",
        help="sweep and operator suites: keep (default) makes glibc keep freed memory, as a caching allocator "
        "does, so that no timed call pays page faults for memory freed before it; default leaves the C library "
        "as it is (peak memory is measured in fresh processes either way)",
    )
    p.add_argument(
        "--quick", action="store_true", help="reduced sweep (batch 1, 3 points per sweep), <= 5 min on 2 cores"
    )
    p.add_argument(
        "--names", type=_bench_name, nargs="+", help="upsamplers to measure (default: all registered + fade_authors)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"])
    p.add_argument("--threads", type=int_range(1, THREADS_MAX), help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", type=folder_path, default="results/bench", help="output folder (default results/bench)")
    p.add_argument("--no-out-subdir", dest="out_subdir", action="store_false", help="sweep: write into OUT itself")
    p.add_argument("--no-plots", action="store_true", help="sweep: skip the figures")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="sweep: skip the peak-memory probe")
    positive = int_range(1)
    p.add_argument("--channels", type=positive, nargs="+", help="sweep: channel values")
    p.add_argument("--sizes", type=positive, nargs="+", help="sweep: decoder sizes H=W")
    p.add_argument("--batches", type=positive, nargs="+", help="sweep: batch sizes")
    p.add_argument("--batch", type=positive, default=1, help="operator suite: batch (default 1)")
    p.add_argument(
        "--input-size", type=_input_size, default=512, help="networks suite: input image size, a multiple of 32 (512)"
    )
    p.add_argument("--base-channels", type=positive, help="channels of the resolution sweep / operator suite (256)")
    p.add_argument("--base-size", type=positive, help="decoder size of the channel sweep / operator suite (64)")
    p.add_argument("--warmup", type=int_range(0), help="warm-up calls")
    p.add_argument(
        "--repeats",
        type=positive,
        help="sweep: timed calls (default adapts to the call duration); operator: rounds (7)",
    )
    p.add_argument(
        "--max-call-s", type=float_range(0.0), help="time budget of one call; slower settings are skipped"
    )
    p.add_argument(
        "--memory-budget-gib", type=float_range(0.0), help="memory budget of one call; larger ones are skipped"
    )
    p.set_defaults(func=bench)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler) as an exception: files being written are cleaned up, locks released."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


_WORKER_ERROR = re.compile(r"Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def _worker_error(error: BaseException) -> tuple[str, str] | None:
    """(type name, message) of the exception a DataLoader worker raised, which torch re-raises with the
    worker's traceback as its text (as a RuntimeError when the type cannot be rebuilt from it); None for others."""
    text = str(error)
    match = _WORKER_ERROR.match(text)
    if match is None:
        return None
    last = [line for line in text.splitlines() if line.strip()][-1]
    return match.group(1), last.split(": ", 1)[-1]


def _user_error_names() -> set[str]:
    """The class names of :data:`USER_ERRORS` and of their subclasses (e.g. fade's DataError)."""
    names, pending = set(), list(USER_ERRORS)
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


def _describe(error: BaseException) -> str:
    """One line for a user error: the message, the file an OSError names, what to do when the disk is full."""
    worker = _worker_error(error)
    if worker is not None:
        return " ".join(worker[1].split())
    if isinstance(error, OSError) and error.strerror and not isinstance(error, FolderLockedError):
        files = [str(f) for f in (error.filename, error.filename2) if f is not None]
        text = error.strerror + "".join(f": {f}" for f in files)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            text += " (free some space, then run the same command again: a run resumes from its last checkpoint)"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _cpu_allocation_failure(error: RuntimeError) -> str | None:
    """What torch's CPU allocator failed to allocate ("tried to allocate N bytes"), None for other errors.

    torch reports a failed CPU allocation as a plain RuntimeError; it is the machine's state, like MemoryError.
    """
    text = " ".join(str(error).split())
    marker = "DefaultCPUAllocator: can't allocate memory: you "
    return text.split(marker, 1)[1].split(". ")[0] if marker in text else None


def _runtime_user_error(error: RuntimeError) -> str | None:
    """The one line for a RuntimeError that is the machine's state or the user's mistake (a CPU
    allocation torch cannot make; a user error raised in a DataLoader worker, e.g. a corrupt image);
    None for any other, a bug."""
    allocation = _cpu_allocation_failure(error)
    if allocation is not None:
        return f"not enough memory: {allocation}; use smaller sizes or batches"
    worker = _worker_error(error)
    return _describe(error) if worker is not None and worker[0] in _user_error_names() else None


def _interrupt_hint(args: argparse.Namespace) -> str:
    """``"; <what to do>"`` after an interruption: :data:`ON_INTERRUPT`'s advice when the command
    left a checkpoint or a finished run under its folder, a note that nothing was saved otherwise."""
    from .train.trainer import CHECKPOINT, RESULTS

    hint = ON_INTERRUPT.get(args.command)
    if hint is None:
        return ""
    folder = None if args.out is None else Path(args.out)  # fade train's default is resolved when it starts
    saved = folder is not None and folder.is_dir()
    saved = saved and any(path.name in (CHECKPOINT, RESULTS) for path in folder.rglob("*") if path.is_file())
    return f"; {hint}" if saved else "; nothing was saved yet (no checkpoint had been written)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fade`` console script: the command's exit status (2 for a user error, 130 interrupted)."""
    parser = _Parser(prog="fade", description="FADE upsampling: benchmarks and experiments")
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    subparsers = parser.add_subparsers(dest="command", required=True)
    configure_bench(subparsers)
    from .train.cli import configure_training
    from .train.visualize import configure_visualize

    configure_training(subparsers)
    configure_visualize(subparsers)
    for subparser in subparsers.choices.values():
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.command_line = "fade " + " ".join(sys.argv[1:] if argv is None else argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except KeyboardInterrupt as stop:
        if args.debug:
            raise
        what, status = ("terminated (SIGTERM)", 143) if isinstance(stop, Terminated) else ("interrupted", 130)
        print(f"fade {args.command}: {what}{_interrupt_hint(args)}", file=sys.stderr)
        return status
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"fade {args.command}: error: {_describe(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        text = _runtime_user_error(error)
        if args.debug or text is None:
            raise
        print(f"fade {args.command}: error: {text}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
