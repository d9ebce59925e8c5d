"""The ``fade`` command line: one subcommand per job (``fade bench``; others add theirs).

Each subcommand is a ``configure_*(subparsers)`` that adds its parser and a function taking the
parsed arguments and returning an exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

__all__ = ["bench", "main"]


def bench(args: argparse.Namespace) -> int:
    """``fade bench``: the upsampler sweeps, the operator checks of issue 2.2, or the network costs."""
    import torch

    from .bench.sweeps import machine_info

    if args.threads:
        torch.set_num_threads(args.threads)
    meta = {
        "command": args.command_line,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine_info(args.device),
    }
    suites = {"sweep": _bench_sweep, "operator": _bench_operator, "networks": _bench_networks}
    start = time.perf_counter()
    paths = suites[args.suite](args, meta, start)
    print("\n".join(str(p) for p in paths))
    return 0


def _elapsed(start: float) -> float:
    return round(time.perf_counter() - start, 1)


def _bench_operator(args: argparse.Namespace, meta: dict, start: float) -> list[Path]:
    """``--suite operator``: OUT/operator.json."""
    import torch

    from .bench.operator import run_operator_suite
    from .io import write_file

    result = run_operator_suite(
        args.batch or 1,
        args.base_channels or 256,
        args.base_size or 64,
        args.device,
        getattr(torch, args.dtype),
        repeats=args.repeats or 7,
        memory_budget_gib=args.memory_budget_gib or 8.0,
    )
    meta["elapsed_s"] = _elapsed(start)
    path = Path(args.out) / "operator.json"
    write_file(path, json.dumps({"meta": meta, **result}, indent=1) + "\n")
    for name, check in result["checks"].items():
        print(f"{name}: {check['value']} (target {check['target']}): {check['pass']}")
    return [path]


def _bench_networks(args: argparse.Namespace, meta: dict, start: float) -> list[Path]:
    """``--suite networks``: OUT/networks/networks.{csv,json,md}."""
    from .bench.networks import NETWORK_COLUMNS, network_table, run_network_suite
    from .bench.sweeps import csv_text
    from .io import write_file
    from .upsamplers import list_upsamplers

    rows = run_network_suite(args.names or list_upsamplers(), size=args.input_size, device=args.device)
    meta["elapsed_s"] = _elapsed(start)
    out = Path(args.out) / "networks"
    paths = [out / "networks.csv", out / "networks.json", out / "networks.md"]
    write_file(paths[0], csv_text(rows, NETWORK_COLUMNS))
    write_file(paths[1], json.dumps({"meta": meta, "columns": NETWORK_COLUMNS, "rows": rows}, indent=1) + "\n")
    write_file(paths[2], network_table(rows))
    return paths


def _bench_sweep(args: argparse.Namespace, meta: dict, start: float) -> list[Path]:
    """``--suite sweep``: OUT/{quick,full}/bench.{csv,json}, table.md and the figures."""
    import torch

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
    config = replace(config, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v})
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
    p = subparsers.add_parser(
        "bench",
        help="measure every upsampler: parameters, FLOPs, latency, peak memory; figures",
        description="Measure every registered upsampler (and the authors' FADE formulation) the same way. "
        "--suite sweep (default): paper Fig. 7's sweeps, CSV/JSON/markdown/PNG into OUT/full or OUT/quick. "
        "--suite operator: the issue-2.2 checks into OUT/operator.json. "
        "--suite networks: parameters and GFLOPs each upsampler adds to SegFormer-B1 and A2U-R34, into OUT/networks.",
    )
    p.add_argument("--suite", choices=["sweep", "operator", "networks"], default="sweep")
    p.add_argument(
        "--quick", action="store_true", help="reduced sweep (batch 1, 3 points per sweep), <= 5 min on 2 cores"
    )
    p.add_argument("--names", nargs="+", help="upsamplers to measure (default: all registered + fade_authors)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"])
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--out", default="results/bench", help="output folder (default results/bench)")
    p.add_argument("--no-out-subdir", dest="out_subdir", action="store_false", help="sweep: write into OUT itself")
    p.add_argument("--no-plots", action="store_true", help="sweep: skip the figures")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="sweep: skip the peak-memory probe")
    p.add_argument("--channels", type=int, nargs="+", help="sweep: channel values")
    p.add_argument("--sizes", type=int, nargs="+", help="sweep: decoder sizes H=W")
    p.add_argument("--batches", type=int, nargs="+", help="sweep: batch sizes")
    p.add_argument("--batch", type=int, help="operator suite: batch (default 1)")
    p.add_argument("--input-size", type=int, default=512, help="networks suite: input image size (512)")
    p.add_argument("--base-channels", type=int, help="channels of the resolution sweep / operator suite (256)")
    p.add_argument("--base-size", type=int, help="decoder size of the channel sweep / operator suite (64)")
    p.add_argument("--warmup", type=int, help="warm-up calls")
    p.add_argument(
        "--repeats", type=int, help="sweep: timed calls (default adapts to the call duration); operator: rounds (7)"
    )
    p.add_argument("--max-call-s", type=float, help="time budget of one call; slower settings are skipped")
    p.add_argument("--memory-budget-gib", type=float, help="memory budget of one call; larger ones are skipped")
    p.set_defaults(func=bench)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fade`` console script."""
    parser = argparse.ArgumentParser(prog="fade", description="FADE upsampling: benchmarks and experiments")
    subparsers = parser.add_subparsers(dest="command", required=True)
    configure_bench(subparsers)
    from .train.cli import configure_training

    configure_training(subparsers)
    args = parser.parse_args(argv)
    args.command_line = "fade " + " ".join(sys.argv[1:] if argv is None else argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
