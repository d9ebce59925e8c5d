"""``fade train`` and ``fade compare``: the command-line side of :mod:`fade.train`.

:func:`configure_training` adds both subparsers to the ``fade`` command (:mod:`fade.cli`); the
work is imported when a command runs, so ``fade --help`` needs torch only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli import folder_path, int_range
from ..io import check_writable_folder, lock_folder
from .presets import STEPS_MAX
from .tables import PAPER_TABLES, TABLE3_UPSAMPLERS
from .trainer import SEED_MAX, THREADS_MAX

__all__ = ["QUICK_UPSAMPLERS", "UPSAMPLERS", "compare_command", "configure_training", "train_command"]

TASK_NAMES = ("segmentation", "matting", "reconstruction")
UPSAMPLERS = TABLE3_UPSAMPLERS
"""The default of ``fade compare``: the paper's Table 3 with the newer peers."""
QUICK_UPSAMPLERS = ("bilinear", "carafe", "a2u", "fade")
"""The default of ``fade compare --quick``."""


def _names(text: str) -> list[str]:
    """``a,b,c`` -> ["a", "b", "c"]."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


_positive = int_range(1)
_seed = int_range(0, SEED_MAX)


def _seeds(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2], each in [0, SEED_MAX]."""
    try:
        return [_seed(s) for s in text.split(",")]
    except argparse.ArgumentTypeError:
        expected = f"comma-separated integers in [0, {SEED_MAX}]"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _directory(text: str) -> str:
    """An existing directory."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"expected an existing directory, got {text!r}")
    return text


def _preset(task: str, name: str, args: argparse.Namespace):
    """The preset ``task/name`` with the overrides given on the command line.

    ``--data`` naming another source than the preset's drops the preset's data options (they are
    that source's); ``--data-dir`` becomes the source's option ``root``.
    """
    from .data import check_data_options
    from .presets import get_preset

    preset = get_preset(task, name)
    data = getattr(args, "data", None) or preset.data
    changes = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "size": tuple(args.size) if args.size else None,
        "train_length": args.train_length,
        "test_length": args.test_length,
        "num_workers": args.workers,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    options = preset.data_options
    if data != preset.data:
        changes["data"], options = data, {}
    if args.data_dir:
        options = {**options, "root": args.data_dir}
    if options is not preset.data_options:
        changes["data_options"] = options
    check_data_options(data, options)
    return preset.replace(**changes) if changes else preset


def train_command(args: argparse.Namespace) -> int:
    """``fade train``: one run; prints the results.json path and the metrics."""
    from .distributed import distributed_from_env
    from .trainer import resolve_device, train

    preset = _preset(args.task, args.preset, args)
    default = Path("results/train") / args.task / args.preset / args.upsampler / f"seed{args.seed}"
    args.out = out = Path(args.out or default)  # resolved in args too: an interruption's advice looks there
    resolve_device(args.device)
    check_writable_folder(out, name="out")
    with distributed_from_env(args.device) as processes:
        result = train(
            preset,
            args.upsampler,
            out,
            seed=args.seed,
            device=args.device,
            stop_after=args.stop_after,
            init=args.init,
            threads=args.threads,
            amp=args.amp,
            log=_log if processes.main else None,
        )
    if not processes.main:
        return 0
    if result["status"] == "stopped":
        print(f"{out}: stopped after step {result['step']} (run again to resume)")
    else:
        print(out / "results.json")
        print(", ".join(f"{k} {v:.5g}" for k, v in result["metrics"].items()))
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """``fade compare``: every upsampler x seed per task; tables, figures and a cross-task summary."""
    from .compare import check_comparison, compare, write_summary

    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise ValueError("fade compare runs in one process; under torchrun, run fade train for each upsampler and seed")
    if args.table is not None:
        clashing = [f"--{n}" for n in ("task", "preset", "upsamplers") if getattr(args, n) not in (None, "all")]
        if clashing or args.quick:
            raise ValueError(f"--table {args.table} sets tasks, presets and upsamplers; drop {', '.join(clashing or ['--quick'])}")
        table = PAPER_TABLES[args.table]
        runs, upsamplers, root = table.runs, list(table.upsamplers), Path(args.out) / table.folder
    else:
        preset_name = args.preset or ("quick" if args.quick else "cpu")
        runs = [(task, preset_name) for task in (TASK_NAMES if args.task == "all" else (args.task,))]
        upsamplers = args.upsamplers or list(QUICK_UPSAMPLERS if args.quick else UPSAMPLERS)
        root = Path(args.out) / ("quick" if args.quick else "")
    check_comparison(upsamplers, args.seeds, args.device)
    presets = {task: _preset(task, name, args) for task, name in runs}
    # Each task's folder is locked while it trains (by compare), so two commands can train different
    # tasks in one --out; a busy task is refused now, not after the tasks before it have trained.
    for task in presets:
        with lock_folder(root / task, args.command_line, name="out"):
            pass
    results = []
    for task, preset in presets.items():
        _log(f"== {task}/{preset.name}: {', '.join(upsamplers)}; seeds {args.seeds}")
        result = compare(
            preset,
            upsamplers,
            args.seeds,
            root / task,
            device=args.device,
            threads=args.threads,
            command=args.command_line,
            plots=not args.no_plots,
            log=_log,
            progress=sys.stderr,
        )
        results.append(result)
        print(root / task / "table.md")
    if len(results) > 1:
        with lock_folder(root, args.command_line, name="out"):
            for path in write_summary(results, root, args.command_line, plots=not args.no_plots):
                print(path)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int_range(1, STEPS_MAX), help="training steps (default: the preset's)")
    p.add_argument("--batch-size", type=_positive, help="samples per step over all processes (default: the preset's)")
    p.add_argument(
        "--size", type=_positive, nargs=2, metavar=("H", "W"), help="training crop size (default: the preset's)"
    )
    p.add_argument("--train-length", type=_positive, help="training samples to use (default: the preset's)")
    p.add_argument("--test-length", type=_positive, help="test samples to evaluate on (default: the preset's)")
    p.add_argument(
        "--workers", type=int_range(0, 256), help="data loading processes per training process (default: the preset's)"
    )
    p.add_argument(
        "--data-dir",
        type=_directory,
        help="the data source's folder: ADE20K (ADEChallengeData2016 or its parent) for segmentation/paper, "
        "Adobe Image Matting (Combined_Dataset or its parent) for matting/paper, Fashion-MNIST idx files for the rest",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument(
        "--threads",
        type=int_range(1, THREADS_MAX),
        default=1,
        help="torch intra-op threads (default 1: fastest for the CPU presets on a shared 2-core machine)",
    )


def configure_training(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fade train`` and ``fade compare`` to the ``fade`` command's subparsers."""
    p = subparsers.add_parser(
        "train",
        help="train one network with one upsampler (checkpointed, resumable), evaluate it",
        description="Train the preset's network with UPSAMPLER, evaluate it on the held-out split, write "
        "OUT/results.json. OUT/checkpoint.pt is written every checkpoint_every steps; rerunning the same command "
        "resumes from it.",
    )
    p.add_argument("--task", required=True, choices=TASK_NAMES)
    p.add_argument("--upsampler", required=True, help="any name of fade.list_upsamplers()")
    p.add_argument("--preset", default="cpu", help="quick, cpu, paper (segmentation also: segnet); default cpu")
    p.add_argument("--out", type=folder_path, help="run folder (default results/train/TASK/PRESET/UPSAMPLER/seedS)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of initialisation, dropout and batch order (0)")
    p.add_argument(
        "--stop-after", type=int_range(1, STEPS_MAX), help="stop (with a checkpoint) after this many steps"
    )
    p.add_argument(
        "--data", help="data source instead of the preset's (fade.train.list_data()), without the preset's data options"
    )
    p.add_argument(
        "--init",
        help="weights to start from: ImageNet MiT-B1 (SegFormer, mmseg or Hugging Face file) for segmentation, "
        "ResNet-34 (torchvision or the A2U code's file) for matting, or a state dict of this package's names "
        "(e.g. a run's model.pt or checkpoint.pt)",
    )
    p.add_argument(
        "--amp", choices=("bf16", "fp16"), help="mixed precision (autocast; fp16 with loss scaling, CUDA only)"
    )
    _common(p)
    p.set_defaults(func=train_command)

    p = subparsers.add_parser(
        "compare",
        help="train every upsampler with every seed, tabulate mean ± std, plot",
        description="For each task: train each upsampler with each seed (same data and batch order), evaluate on "
        "the held-out split, write OUT/TASK/{results.json,table.md,compare.png}; with several tasks also "
        "OUT/summary.{md,png}. --quick writes under OUT/quick. Finished runs are reused, interrupted ones resumed.",
    )
    p.add_argument("--task", default="all", choices=("all", *TASK_NAMES), help="a task or all (default)")
    p.add_argument(
        "--upsamplers",
        type=_names,
        help=f"comma-separated (default {','.join(UPSAMPLERS)}; --quick: {','.join(QUICK_UPSAMPLERS)})",
    )
    p.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated seeds (default 0)")
    p.add_argument("--quick", action="store_true", help="the quick presets: all tasks in <= 10 min on 2 cores")
    p.add_argument(
        "--table",
        type=int_range(min(PAPER_TABLES), max(PAPER_TABLES)),
        help="one of the paper's tables (its tasks, presets and upsamplers; fade.train.tables) into OUT/tableN",
    )
    p.add_argument("--preset", help="preset name (default cpu, or quick with --quick)")
    p.add_argument("--out", type=folder_path, default="results/compare", help="output folder (default results/compare)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    _common(p)
    p.set_defaults(func=compare_command)
