"""Compare upsamplers on one task: every upsampler x every seed, same data and batch order.

:func:`compare` trains each (upsampler, seed) run in ``out/runs/<upsampler>/seed<k>/`` (resumable,
finished runs are reused), then writes ``out/results.json`` (every run; the mean, sample
standard deviation and values over seeds of every metric; the task's trivial baseline on the same
test set; paired per-seed differences against FADE and against the best), ``out/table.md`` and
``out/compare.png``. :func:`write_summary` puts several tasks side by side (``summary.md``,
``summary.png``) with the reading the paper's claim needs: who ranks first per task, and whom the
first does not beat on every seed. Results not clearly above the trivial baseline are flagged and
never ranked (:mod:`fade.train.stats`). The final weights of every upsampler's first-seed run are
kept as ``runs/<upsampler>/seed<k>/model.pt`` for ``fade visualize``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import torch
from torch.utils.data import Dataset

from ..io import atomic_write, lock_folder, write_checked_json, write_file
from ..progress import Progress
from .presets import Preset
from .record import data_record, describe_data
from .stats import clearly_above, paired_differences, separated
from .tasks import create_task
from .checkpoint import load_checkpoint, save_checkpoint
from .trainer import CHECKPOINT, SEED_MAX, build_data, check_run_arguments, check_upsampler, resolve_device, train

__all__ = [
    "FORMATS",
    "MODEL",
    "aggregate",
    "check_comparison",
    "compare",
    "mark_trivial",
    "markdown_table",
    "paired_statistics",
    "paired_tables",
    "plot_task",
    "write_summary",
]

Log = Callable[[str], None]

FORMATS: dict[str, tuple[str, float, int]] = {
    "miou": ("mIoU (%)", 100.0, 2),
    "biou": ("bIoU (%)", 100.0, 2),
    "pixel_accuracy": ("pixel acc. (%)", 100.0, 2),
    "sad": ("SAD", 1.0, 4),
    "mse": ("MSE", 1.0, 5),
    "grad": ("Grad", 1.0, 4),
    "conn": ("Conn", 1.0, 4),
    "psnr": ("PSNR (dB)", 1.0, 2),
    "ssim": ("SSIM (%)", 100.0, 2),
    "mae": ("MAE", 1.0, 4),
}
"""Per metric: column label, display scale and decimals (matting in the meters' Composition-1K units)."""
MODEL = "model.pt"
"""The final weights kept in every upsampler's first-seed run folder (a checkpoint without the optimiser)."""
FLAG = "†"
"""Marks a result that is not clearly above the trivial baseline."""
FLAG_NOTE = (
    f"{FLAG} not clearly above the trivial baseline (worse than it on some seed, or closing under 10 % of its "
    "distance to the ideal value; PSNR: under 0.46 dB above it): not ranked."
)


def _stats(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for one value) and the values."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "values": values,
    }


def aggregate(runs: list[dict], upsamplers: Sequence[str], metrics: Sequence[str]) -> list[dict]:
    """One row per upsampler: statistics over its completed runs of every metric."""
    rows = []
    for name in upsamplers:
        done = [r for r in runs if r["upsampler"] == name and r["status"] == "complete"]
        failed = [r for r in runs if r["upsampler"] == name and r["status"] != "complete"]
        row = {"upsampler": name, "seeds": [r["seed"] for r in done], "failed_seeds": [r["seed"] for r in failed]}
        if done:
            row["metrics"] = {m: _stats([r["metrics"][m] for r in done]) for m in metrics}
            row["parameters_added"] = done[0]["parameters"]["added"]
            row["parameters_total"] = done[0]["parameters"].get("total")
            row["train_seconds"] = statistics.fmean(r["train_seconds"] for r in done)
        rows.append(row)
    return rows


def _parameters_cell(row: dict) -> str:
    """``11,796 (+6.5 %)``: parameters added over bilinear, and as a share of the bilinear network."""
    added, total = row["parameters_added"], row.get("parameters_total")
    if total is None or added == 0:
        return f"{added:,}"
    return f"{added:,} (+{100 * added / (total - added):.1f} %)"


def _value(value: float, metric: str) -> str:
    """``value`` in the metric's display units."""
    _, scale, decimals = FORMATS[metric]
    return f"{value * scale:.{decimals}f}"


def _cell(stats: dict, metric: str) -> str:
    """The mean ± std in the metric's display units (the mean alone for one seed)."""
    text = _value(stats["mean"], metric)
    return text if stats["std"] is None else f"{text} ± {_value(stats['std'], metric)}"


def mark_trivial(rows: list[dict], baseline: dict[str, float], metrics: dict[str, str]) -> None:
    """Set ``row["above_trivial"][metric]``: whether the row is clearly above ``baseline`` (:mod:`.stats`)."""
    for row in rows:
        if "metrics" in row:
            row["above_trivial"] = {
                m: clearly_above(row["metrics"][m]["values"], baseline[m], m, d) for m, d in metrics.items()
            }


def _flagged(row: dict, metric: str) -> bool:
    """Whether the row's ``metric`` is not clearly above the trivial baseline (False where none was computed)."""
    return not row.get("above_trivial", {}).get(metric, True)


def ranking(rows: list[dict], metric: str, direction: str) -> list[str]:
    """Upsamplers with results clearly above the trivial baseline, best mean first."""
    scored = [r for r in rows if "metrics" in r and not _flagged(r, metric)]
    scored.sort(key=lambda r: r["metrics"][metric]["mean"], reverse=direction == "max")
    return [r["upsampler"] for r in scored]


def markdown_table(rows: list[dict], metrics: dict[str, str], trivial: dict | None = None) -> str:
    """The comparison table: one row per upsampler, the best ranked mean of each metric in bold.

    With ``trivial`` (``{"predictor", "metrics"}``), a last row holds the trivial baseline and results
    not clearly above it are marked :data:`FLAG`.
    """
    arrows = {"max": "↑", "min": "↓"}
    header = ["upsampler", "params added"] + [f"{FORMATS[m][0]} {arrows[d]}" for m, d in metrics.items()]
    header.append("train s")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    best = {m: ranking(rows, m, d)[:1] for m, d in metrics.items()}
    for row in rows:
        cells = [f"`{row['upsampler']}`"]
        if "metrics" not in row:
            cells += ["failed"] * (len(header) - 1)
        else:
            cells.append(_parameters_cell(row))
            for m in metrics:
                text = _cell(row["metrics"][m], m) + (f" {FLAG}" if _flagged(row, m) else "")
                cells.append(f"**{text}**" if row["upsampler"] in best[m] else text)
            cells.append(f"{row['train_seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    if trivial is not None:
        cells = [f"trivial: {trivial['predictor']}", "—"] + [_value(trivial["metrics"][m], m) for m in metrics]
        lines.append("| " + " | ".join(cells + ["—"]) + " |")
        lines += ["", FLAG_NOTE]
    return "\n".join(lines) + "\n"


def curve_lines(runs: list[dict], upsamplers: Sequence[str], metric: str) -> str:
    """Markdown: per upsampler, how much ``metric`` moved over the last 20 % of the steps (the run's
    early evaluation to its end; mean and largest change over seeds), i.e. whether training had flattened."""
    _, scale, decimals = FORMATS[metric]
    cells = []
    for name in upsamplers:
        changes = [
            run["curve"][-1]["metrics"][metric] - run["curve"][-2]["metrics"][metric]
            for run in runs
            if run["upsampler"] == name and run["status"] == "complete" and len(run.get("curve") or []) >= 2
        ]
        if changes:
            largest = max(changes, key=abs)
            mean = sum(changes) / len(changes)
            cells.append(f"`{name}` {mean * scale:+.{decimals}f} (largest {largest * scale:+.{decimals}f})")
    if not cells:
        return ""
    return (
        f"\nLearning curves: change of {FORMATS[metric][0]} over the last 20 % of the steps, mean over seeds "
        f"(largest): {'; '.join(cells)}.\n"
    )


def _difference(paired: dict, metric: str) -> str:
    """``+1.23 ± 0.45 (2/3)``: mean ± std of the paired differences, seeds won of seeds paired."""
    _, scale, decimals = FORMATS[metric]
    text = f"{paired['mean'] * scale:+.{decimals}f}"
    if paired["std"] is not None:
        text += f" ± {paired['std'] * scale:.{decimals}f}"
    return f"{text} ({paired['wins']}/{paired['n']})"


def paired_statistics(rows: list[dict], metrics: dict[str, str], reference: str = "fade") -> dict:
    """Paired per-seed differences against ``reference`` and against each metric's best ranked upsampler.

    Returns:
        ``{"reference": name or None, "against_reference": {metric: {upsampler: paired}},
        "best": {metric: name or None}, "against_best": {metric: {upsampler: paired}}}``, each
        ``paired`` as :func:`fade.train.stats.paired_differences` gives it.
    """
    has_reference = any(r["upsampler"] == reference and "metrics" in r for r in rows)
    best = {m: next(iter(ranking(rows, m, d)), None) for m, d in metrics.items()}
    return {
        "reference": reference if has_reference else None,
        "against_reference": {
            m: paired_differences(rows, reference, m, d) if has_reference else {} for m, d in metrics.items()
        },
        "best": best,
        "against_best": {
            m: paired_differences(rows, best[m], m, d) if best[m] else {} for m, d in metrics.items()
        },
    }


def paired_tables(rows: list[dict], metrics: dict[str, str], paired: dict) -> str:
    """Markdown tables of :func:`paired_statistics`: against the reference, then against each metric's best."""
    names = [r["upsampler"] for r in rows if "metrics" in r]
    explain = (
        "upsampler − reference on the same seed (same batches), in the table's units, mean ± sample std over "
        "seeds; in brackets the seeds on which the upsampler is better, of those paired"
    )
    parts = []
    if paired["reference"] is not None:
        reference = paired["reference"]
        header = ["upsampler"] + [f"{FORMATS[m][0]} vs `{reference}`" for m in metrics]
        lines = [f"Paired differences against `{reference}`: {explain}.", ""]
        lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(metrics)]
        for name in names:
            if name != reference:
                cells = [_difference(paired["against_reference"][m][name], m)
                         if name in paired["against_reference"][m] else "—" for m in metrics]
                lines.append("| " + " | ".join([f"`{name}`", *cells]) + " |")
        parts.append("\n".join(lines) + "\n")
    if not any(paired["best"].values()):
        parts.append("No upsampler is clearly above the trivial baseline on any metric: no best to compare with.\n")
        return "\n".join(parts)
    header = ["upsampler"] + [
        f"{FORMATS[m][0]} vs `{paired['best'][m]}`" if paired["best"][m] else f"{FORMATS[m][0]} (none ranked)"
        for m in metrics
    ]
    lines = [f"Paired differences against the best ranked upsampler of each metric: {explain}.", ""]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(metrics)]
    for name in names:
        cells = []
        for m in metrics:
            if name == paired["best"][m]:
                cells.append("best")
            else:
                found = paired["against_best"][m].get(name)
                cells.append(_difference(found, m) if found else "—")
        lines.append("| " + " | ".join([f"`{name}`", *cells]) + " |")
    parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _describe_machine(m: dict) -> str:
    return f"{m['cpu']}, {m['cores']} cores, {m['threads']} torch thread(s), torch {m['torch']}, device {m['device']}"


def _machines(runs: list[dict]) -> Counter[str]:
    """Runs per machine description (a resumed comparison may have runs from several machines)."""
    return Counter(_describe_machine(r["machine"]) for r in runs if r["machine"])


def _run_counts(counts: dict[str, int]) -> str:
    """``X (n runs); Y (1 run)``."""
    return "; ".join(f"{what} ({n} run{'s' * (n > 1)})" for what, n in counts.items())


def _machines_text(counts: dict[str, int]) -> str:
    """`Machine: X` for one machine, else `Machines: X (n runs); Y (m runs)`."""
    if len(counts) == 1:
        return f"Machine: {next(iter(counts))}"
    return "Machines: " + _run_counts(counts)


def _encoders(runs: list[dict]) -> Counter[str]:
    """Runs per pretrained encoder they started from (``name sha256[:12]``), empty when no run records
    one; runs without the record count as ``"not recorded"`` (no pretrained encoder, or an older run)."""
    counts = Counter(
        f"{e['name']} {e['weights_sha256'][:12]}" if (e := r.get("pretrained_encoder")) else "not recorded"
        for r in runs
        if r["status"] == "complete"
    )
    return counts if set(counts) - {"not recorded"} else Counter()


def _encoders_lines(counts: dict[str, int]) -> list[str]:
    """``Pretrained encoder: ...`` (every run's start, by weights hash), or nothing without a record."""
    if not counts:
        return []
    label = "Pretrained encoder" if len(counts) == 1 else "Pretrained encoders (runs started from different weights)"
    return [f"{label}: {_run_counts(counts)}.  "]


def _setup_lines(meta: dict) -> list[str]:
    """Command, machine and preset of a comparison, as markdown lines."""
    p = meta["preset"]
    seeds = meta["seeds"]
    spread = "mean ± sample std over seeds" if len(seeds) > 1 else "one seed: no spread, differences not tested"
    samples = f"{meta['train_samples']:,} train / {meta['test_samples']:,} test samples"
    return [
        f"Command: `{meta['command']}`  ",
        f"{_machines_text(meta['machines'])}; {meta['date']}; {meta['train_seconds_total']:.0f} s of training in all.  ",
        (
            f"Preset `{p['task']}/{p['name']}`: {p['description']}; `{p['model']}` {p['model_options'] or ''} on "
            f"`{p['data']}` {p['size'][0]}x{p['size'][1]}, {samples}; {p['steps']} steps of {p['batch_size']}, "
            f"{p['optimizer']} lr {p['lr']:g}, {p['schedule']} schedule.  "
        ),
        *([f"{describe_data(meta['data'])}.  "] if "data" in meta else []),
        *_encoders_lines(meta.get("encoders", {})),
        f"Seeds {', '.join(map(str, seeds))} ({spread}).",
    ]


def plot_task(panels: list[dict], path: Path, title: str) -> Path:
    """Bar charts from 0, one panel per metric, FADE variants highlighted.

    Each panel is a dict: ``label``, ``direction``, ``names``, ``means``, ``stds`` (None entries
    without a spread), ``values`` (per-seed values, drawn as dots), ``flagged`` (bars hatched and
    pale: not clearly above the trivial baseline) and ``baseline`` (a dashed line; None: none).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        names, means = panel["names"], panel["means"]
        positions = range(len(names))
        colours = ["tab:red" if n.startswith("fade") else "tab:grey" for n in names]
        spread = any(s is not None for s in panel["stds"])
        errors = [s or 0.0 for s in panel["stds"]] if spread else None
        bars = ax.bar(positions, means, yerr=errors, color=colours, capsize=3)
        for bar, flagged in zip(bars, panel["flagged"]):
            if flagged:
                bar.set_alpha(0.35)
                bar.set_hatch("//")
        for x, values in zip(positions, panel["values"]):
            ax.plot([x] * len(values), values, "k.", markersize=3)
        if panel["baseline"] is not None and math.isfinite(panel["baseline"]):
            ax.axhline(panel["baseline"], color="tab:blue", linestyle="--", linewidth=1, label="trivial baseline")
            ax.legend(fontsize=6, loc="lower right")
        ax.set_xticks(list(positions), names, rotation=45, ha="right", fontsize=8)
        better = "higher" if panel["direction"] == "max" else "lower"
        hatched = "; hatched: not above trivial" if any(panel["flagged"]) else ""
        ax.set_title(f"{panel['label']}\n({better} is better; axis from 0{hatched})", fontsize=7)
        ax.set_ylim(bottom=0.0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return path


def _panels(rows: list[dict], metrics: dict[str, str], trivial: dict | None, prefix: str = "") -> list[dict]:
    """:func:`plot_task` panels of ``metrics`` over the rows with results, labels starting with ``prefix``."""
    scored = [r for r in rows if "metrics" in r]
    panels = []
    for m, direction in metrics.items():
        label, scale, _ = FORMATS[m]
        stats = [r["metrics"][m] for r in scored]
        panels.append(
            {
                "label": prefix + label,
                "direction": direction,
                "names": [r["upsampler"] for r in scored],
                "means": [s["mean"] * scale for s in stats],
                "stds": [None if s["std"] is None else s["std"] * scale for s in stats],
                "values": [[v * scale for v in s["values"]] for s in stats],
                "flagged": [_flagged(r, m) for r in scored],
                "baseline": None if trivial is None else trivial["metrics"][m] * scale,
            }
        )
    return panels


def check_comparison(upsamplers: Sequence[str], seeds: Sequence[int], device: str | torch.device) -> None:
    """ValueError unless the upsamplers are known, the seeds in range, neither empty nor repeated, the device here."""
    if not upsamplers or not seeds:
        raise ValueError(f"upsamplers, seeds: expected at least one of each, got {list(upsamplers)}, {list(seeds)}")
    for name in upsamplers:
        check_upsampler(name)
    if len(set(upsamplers)) != len(upsamplers) or len(set(seeds)) != len(seeds):
        raise ValueError(f"upsamplers, seeds: expected no repeats, got {list(upsamplers)}, {list(seeds)}")
    if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in seeds):
        raise ValueError(f"seeds: expected integers in [0, {SEED_MAX}], got {list(seeds)}")
    resolve_device(device)


def compare(
    preset: Preset,
    upsamplers: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    data: tuple[Dataset, Dataset] | None = None,
    command: str = "",
    plots: bool = True,
    log: Log | None = None,
    progress: TextIO | None = None,
) -> dict:
    """Train and evaluate every upsampler with every seed; write results.json, table.md, compare.png.

    Args:
        preset: the runs' settings. upsamplers: names of :func:`fade.list_upsamplers`.
        seeds: one run per seed and upsampler (same seed: same batches, for every upsampler).
        out_dir: the comparison's folder (runs go to ``out_dir/runs``).
        device, threads: as :func:`fade.train.train`. data: (train, test) to reuse (else built once here).
        command: the command line to record. plots: draw compare.png (needs matplotlib).
        log: called with progress lines. progress: a stream for ``run i/N (task, upsampler, seed)``
            with elapsed time and ETA (a bar on a terminal, plain lines elsewhere; :class:`fade.progress.Progress`);
            ``log`` lines then go through it.

    Returns:
        The dict written to results.json.
    """
    log = log or (lambda message: None)
    check_run_arguments(preset, out_dir)
    check_comparison(upsamplers, seeds, device)
    with lock_folder(out_dir, command=command or None, name="out_dir") as out:
        options = {"device": device, "threads": threads, "data": data, "command": command, "plots": plots, "log": log}
        options["progress"] = progress
        return _compare_in_locked_folder(preset, upsamplers, seeds, out, **options)


def _compare_in_locked_folder(
    preset: Preset,
    upsamplers: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    *,
    device: str | torch.device,
    threads: int | None,
    data: tuple[Dataset, Dataset] | None,
    command: str,
    plots: bool,
    log: Log,
    progress: TextIO | None,
) -> dict:
    """:func:`compare`'s work, its arguments checked, in ``out``, whose lock the caller holds."""
    task = create_task(preset.task, **preset.task_options)
    started = time.perf_counter()
    data = data or build_data(preset, task)
    runs = []
    with Progress(len(seeds) * len(upsamplers), "run", progress) as bar:
        run_log = bar.message if progress is not None else log
        for seed in seeds:
            for name in upsamplers:
                bar.begin(f"({preset.task}, {name}, seed {seed})")
                run_dir = out / "runs" / name / f"seed{seed}"
                try:
                    result = train(
                        preset, name, run_dir, seed=seed, device=device, data=data, threads=threads, log=run_log
                    )
                except (RuntimeError, FloatingPointError) as error:
                    run_log(f"{name} seed {seed}: failed: {error}")
                    result = {"status": "failed", "error": str(error)}
                if result["status"] == "complete" and seed == min(seeds):
                    _keep_model(run_dir, run_log)
                record = {k: result.get(k) for k in _RUN_KEYS}
                runs.append({"upsampler": name, "seed": seed, **record, "status": result["status"]})
                bar.advance()
    rows = aggregate(runs, upsamplers, list(task.metrics))
    trivial = {"predictor": task.trivial, "metrics": task.trivial_baseline(*data)}
    mark_trivial(rows, trivial["metrics"], task.metrics)
    paired = paired_statistics(rows, task.metrics)
    meta = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": next((r["machine"] for r in runs if r["machine"]), None),
        "machines": _machines(runs),
        "encoders": _encoders(runs),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "train_seconds_total": round(sum(r["train_seconds"] or 0.0 for r in runs), 1),
        "preset": preset.to_dict(),
        "upsamplers": list(upsamplers),
        "seeds": list(seeds),
        "train_samples": len(data[0]),
        "test_samples": len(data[1]),
        "data": data_record(preset, *data),
    }
    results = {
        "meta": meta,
        "task": preset.task,
        "metrics": task.metrics,
        "trivial": trivial,
        "rows": rows,
        "paired": paired,
        "runs": runs,
    }
    write_checked_json(out / "results.json", results)
    if meta["machine"] is not None:
        text = [f"# {preset.task}: {len(upsamplers)} upsamplers x {len(seeds)} seed(s)", ""]
        text += _setup_lines(meta) + ["", markdown_table(rows, task.metrics, trivial)]
        text.append(_ranking_lines(preset.task, rows, task.metrics))
        text.append(paired_tables(rows, task.metrics, paired))
        text.append(curve_lines(runs, upsamplers, task.primary[0]))
        write_file(out / "table.md", "\n".join(text))
        if plots:
            title = f"{preset.task}/{preset.name}, seeds {list(seeds)}"
            plot_task(_panels(rows, task.metrics, trivial), out / "compare.png", title)
    return results


_RUN_KEYS = ("metrics", "parameters", "train_seconds", "final_loss", "machine", "pretrained_encoder", "error", "curve")


def _keep_model(run_dir: Path, log: Log) -> None:
    """Keep the final weights of a finished run as ``run_dir/model.pt`` (once), for ``fade visualize``.

    model.pt is a checkpoint (:func:`~fade.train.checkpoint.save_checkpoint`, checksummed) holding
    only ``config``, ``step`` and ``model``: a fraction of checkpoint.pt, which also holds the optimiser.
    """
    target = run_dir / MODEL
    if target.exists():
        return
    if not (run_dir / CHECKPOINT).exists():
        log(f"{run_dir}: no {CHECKPOINT} to keep the final weights from (trained elsewhere?); fade visualize needs one")
        return
    state = load_checkpoint(run_dir / CHECKPOINT, torch.device("cpu"))
    save_checkpoint(target, {k: state[k] for k in ("config", "step", "model")})


def near_best(rows: list[dict], metric: str, direction: str) -> dict[str, bool | None]:
    """Per ranked upsampler: True for the first, else whether the first fails to beat it on every paired seed.

    None where fewer than two seeds pair it with the first.
    """
    order = ranking(rows, metric, direction)
    if not order:
        return {}
    paired = paired_differences(rows, order[0], metric, direction)
    near: dict[str, bool | None] = {order[0]: True}
    for name in order[1:]:
        split = separated(paired[name]) if name in paired else None
        near[name] = None if split is None else not split
    return near


def _ranking_lines(task: str, rows: list[dict], metrics: dict[str, str]) -> str:
    """Per headline metric: the order of the ranked results, whom the first does not beat on every seed, the flagged."""
    lines = [
        f"Ranking on {task} (best mean first, among results clearly above the trivial baseline; "
        "not separated: the first is not better on every seed they share):",
        "",
    ]
    for m in create_task(task).primary:
        order = ranking(rows, m, metrics[m])
        flagged = [r["upsampler"] for r in rows if "metrics" in r and _flagged(r, m)]
        notes = []
        if order:
            near = near_best(rows, m, metrics[m])
            if len(order) > 1 and all(near[n] is None for n in order[1:]):
                notes.append("one seed: nothing separated")
            elif len(order) > 1:
                notes.append("not separated from the first: " + (", ".join(n for n in order[1:] if near[n]) or "none"))
        if flagged:
            notes.append(f"not clearly above the trivial baseline, not ranked: {', '.join(flagged)}")
        ranked = " > ".join(order) if order else "none ranked"
        lines.append(f"- {FORMATS[m][0]}: {ranked}" + (f" ({'; '.join(notes)})" if notes else ""))
    return "\n".join(lines) + "\n"


def write_summary(results: list[dict], out_dir: str | Path, command: str, plots: bool = True) -> list[Path]:
    """Several tasks' results side by side: summary.md (+ summary.png) in ``out_dir``."""
    out = Path(out_dir)
    names = list(dict.fromkeys(n for r in results for n in r["meta"]["upsamplers"]))
    columns = [(r, m) for r in results for m in create_task(r["task"]).primary]
    header = ["upsampler"] + [
        f"{r['task']} {FORMATS[m][0]} {'↑' if r['metrics'][m] == 'max' else '↓'}" for r, m in columns
    ]
    header.append("best or not separated from it on")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(columns) + "---|"]
    near = [(r["task"], m, near_best(r["rows"], m, r["metrics"][m])) for r, m in columns]
    for name in names:
        cells = [f"`{name}`"]
        for r, m in columns:
            row = next((x for x in r["rows"] if x["upsampler"] == name), None)
            if row is None or "metrics" not in row:
                cells.append("—")
            elif _flagged(row, m):
                cells.append(f"{_cell(row['metrics'][m], m)} {FLAG}")
            else:
                rank = ranking(r["rows"], m, r["metrics"][m]).index(name) + 1
                cells.append(f"{_cell(row['metrics'][m], m)} ({rank})")
        wins = [f"{task} {FORMATS[m][0].split()[0]}" for task, m, flags in near if flags.get(name)]
        cells.append(", ".join(wins) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    if any("trivial" in r for r in results):
        cells = [_value(r["trivial"]["metrics"][m], m) if "trivial" in r else "—" for r, m in columns]
        lines.append("| " + " | ".join(["trivial baseline", *cells, "—"]) + " |")
    machines = sum((Counter(r["meta"]["machines"]) for r in results), Counter())
    seeds = sorted({s for r in results for s in r["meta"]["seeds"]})
    total = sum(r["meta"]["train_seconds_total"] for r in results)
    spread = "mean ± sample std" if len(seeds) > 1 else "one run (no pairing: only the best is listed as best)"
    presets = ", ".join(f"`{r['meta']['preset']['task']}/{r['meta']['preset']['name']}`" for r in results)
    baselines = "; ".join(f"{r['task']}: {r['trivial']['predictor']}" for r in results if "trivial" in r)
    text = [
        "# Upsamplers across tasks",
        "",
        f"Command: `{command}`  ",
        f"{_machines_text(machines)}; {total:.0f} s of training in all.  ",
        f"Seeds {', '.join(map(str, seeds))}; cells are {spread} (rank among the upsamplers in brackets). Presets: {presets}.",
        f"Trivial baselines, on the same test sets: {baselines or 'none computed'}.",
        "",
        "\n".join(lines),
        "",
        FLAG_NOTE,
        "",
    ]
    text += [_ranking_lines(r["task"], r["rows"], r["metrics"]) for r in results]
    paths = [out / "summary.md"]
    write_file(paths[0], "\n".join(text))
    if plots:
        panels = [
            p
            for r in results
            for p in _panels(
                r["rows"],
                {m: r["metrics"][m] for m in create_task(r["task"]).primary},
                r.get("trivial"),
                f"{r['task']}: ",
            )
        ]
        paths.append(plot_task(panels, out / "summary.png", f"Upsamplers across tasks ({spread}; seeds {seeds})"))
    return paths
