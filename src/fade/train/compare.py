"""Compare upsamplers on one task: every upsampler x every seed, same data and batch order.

:func:`compare` trains each (upsampler, seed) run in ``out/runs/<upsampler>/seed<k>/`` (resumable,
finished runs are reused), then writes ``out/results.json`` (every run and the mean, sample
standard deviation and values over seeds of every metric), ``out/table.md`` and ``out/compare.png``.
:func:`write_summary` puts several tasks side by side (``summary.md``, ``summary.png``) with the
reading the paper's claim needs: who ranks first per task, and who is within seed noise of it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..io import atomic_write, lock_folder, write_checked_json, write_file
from .presets import Preset
from .tasks import create_task
from .trainer import SEED_MAX, build_data, check_upsampler, resolve_device, train

__all__ = ["FORMATS", "aggregate", "compare", "markdown_table", "plot_task", "write_summary"]

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
            row["train_seconds"] = statistics.fmean(r["train_seconds"] for r in done)
        rows.append(row)
    return rows


def _cell(stats: dict, metric: str) -> str:
    """The mean ± std in the metric's display units (the mean alone for one seed)."""
    _, scale, decimals = FORMATS[metric]
    text = f"{stats['mean'] * scale:.{decimals}f}"
    return text if stats["std"] is None else f"{text} ± {stats['std'] * scale:.{decimals}f}"


def within_noise(a: dict, b: dict) -> bool | None:
    """|mean_a - mean_b| <= sqrt(std_a^2 + std_b^2); None without a spread (one seed)."""
    if a["std"] is None or b["std"] is None:
        return None
    return abs(a["mean"] - b["mean"]) <= math.hypot(a["std"], b["std"])


def ranking(rows: list[dict], metric: str, direction: str) -> list[str]:
    """Upsamplers with results, best mean first."""
    scored = [r for r in rows if "metrics" in r]
    scored.sort(key=lambda r: r["metrics"][metric]["mean"], reverse=direction == "max")
    return [r["upsampler"] for r in scored]


def markdown_table(rows: list[dict], metrics: dict[str, str]) -> str:
    """The comparison table: one row per upsampler, the best mean of each metric in bold."""
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
            cells.append(f"{row['parameters_added']:,}")
            for m in metrics:
                text = _cell(row["metrics"][m], m)
                cells.append(f"**{text}**" if row["upsampler"] in best[m] else text)
            cells.append(f"{row['train_seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _describe_machine(m: dict) -> str:
    return f"{m['cpu']}, {m['cores']} cores, {m['threads']} torch thread(s), torch {m['torch']}, device {m['device']}"


def _machines(runs: list[dict]) -> Counter[str]:
    """Runs per machine description (a resumed comparison may have runs from several machines)."""
    return Counter(_describe_machine(r["machine"]) for r in runs if r["machine"])


def _machines_text(counts: dict[str, int]) -> str:
    """`Machine: X` for one machine, else `Machines: X (n runs); Y (m runs)`."""
    if len(counts) == 1:
        return f"Machine: {next(iter(counts))}"
    return "Machines: " + "; ".join(f"{m} ({n} run{'s' * (n > 1)})" for m, n in counts.items())


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
        f"Seeds {', '.join(map(str, seeds))} ({spread}).",
    ]


def plot_task(
    panels: list[tuple[str, list[str], list[float], list[float | None], str]], path: Path, title: str
) -> Path:
    """Bar charts, one panel per metric: (label, upsamplers, means, stds, direction); FADE variants highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (label, names, means, stds, direction) in zip(axes[0], panels):
        colours = ["tab:red" if n.startswith("fade") else "tab:grey" for n in names]
        errors = [s or 0.0 for s in stds]
        spread = any(s is not None for s in stds)
        ax.bar(range(len(names)), means, yerr=errors if spread else None, color=colours, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{label}\n({'higher' if direction == 'max' else 'lower'} is better; axis not from 0)", fontsize=8)
        low, high = min(m - e for m, e in zip(means, errors)), max(m + e for m, e in zip(means, errors))
        pad = 0.15 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + pad)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return path


def _panels(rows: list[dict], metrics: dict[str, str], prefix: str = "") -> list:
    """Plot panels of ``metrics`` over the rows that have results, labels starting with ``prefix``."""
    scored = [r for r in rows if "metrics" in r]
    panels = []
    for m, direction in metrics.items():
        label, scale, _ = FORMATS[m]
        stats = [r["metrics"][m] for r in scored]
        stds = [None if s["std"] is None else s["std"] * scale for s in stats]
        names = [r["upsampler"] for r in scored]
        panels.append((prefix + label, names, [s["mean"] * scale for s in stats], stds, direction))
    return panels


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
) -> dict:
    """Train and evaluate every upsampler with every seed; write results.json, table.md, compare.png.

    Args:
        preset: the runs' settings. upsamplers: names of :func:`fade.list_upsamplers`.
        seeds: one run per seed and upsampler (same seed: same batches, for every upsampler).
        out_dir: the comparison's folder (runs go to ``out_dir/runs``).
        device, threads: as :func:`fade.train.train`. data: (train, test) to reuse (else built once here).
        command: the command line to record. plots: draw compare.png (needs matplotlib).

    Returns:
        The dict written to results.json.
    """
    log = log or (lambda message: None)
    if not upsamplers or not seeds:
        raise ValueError(f"upsamplers, seeds: expected at least one of each, got {list(upsamplers)}, {list(seeds)}")
    for name in upsamplers:
        check_upsampler(name)
    if len(set(upsamplers)) != len(upsamplers) or len(set(seeds)) != len(seeds):
        raise ValueError(f"upsamplers, seeds: expected no repeats, got {list(upsamplers)}, {list(seeds)}")
    if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in seeds):
        raise ValueError(f"seeds: expected integers in [0, {SEED_MAX}], got {list(seeds)}")
    resolve_device(device)
    with lock_folder(out_dir, command=command or None, name="out_dir") as out:
        options = {"device": device, "threads": threads, "data": data, "command": command, "plots": plots, "log": log}
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
) -> dict:
    """:func:`compare`'s work, its arguments checked, in ``out``, whose lock the caller holds."""
    task = create_task(preset.task, **preset.task_options)
    started = time.perf_counter()
    data = data or build_data(preset, task)
    runs = []
    for seed in seeds:
        for name in upsamplers:
            run_dir = out / "runs" / name / f"seed{seed}"
            try:
                result = train(preset, name, run_dir, seed=seed, device=device, data=data, threads=threads, log=log)
            except (RuntimeError, FloatingPointError) as error:
                log(f"{name} seed {seed}: failed: {error}")
                result = {"status": "failed", "error": str(error)}
            runs.append(
                {"upsampler": name, "seed": seed, **{k: result.get(k) for k in _RUN_KEYS}, "status": result["status"]}
            )
    rows = aggregate(runs, upsamplers, list(task.metrics))
    meta = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": next((r["machine"] for r in runs if r["machine"]), None),
        "machines": _machines(runs),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "train_seconds_total": round(sum(r["train_seconds"] or 0.0 for r in runs), 1),
        "preset": preset.to_dict(),
        "upsamplers": list(upsamplers),
        "seeds": list(seeds),
        "train_samples": len(data[0]),
        "test_samples": len(data[1]),
    }
    results = {"meta": meta, "task": preset.task, "metrics": task.metrics, "rows": rows, "runs": runs}
    write_checked_json(out / "results.json", results)
    if meta["machine"] is not None:
        text = [f"# {preset.task}: {len(upsamplers)} upsamplers x {len(seeds)} seed(s)", ""]
        text += _setup_lines(meta) + ["", markdown_table(rows, task.metrics)]
        text.append(_ranking_lines(preset.task, rows, task.metrics))
        write_file(out / "table.md", "\n".join(text))
        if plots:
            title = f"{preset.task}/{preset.name}, seeds {list(seeds)}"
            plot_task(_panels(rows, task.metrics), out / "compare.png", title)
    return results


_RUN_KEYS = ("metrics", "parameters", "train_seconds", "final_loss", "machine", "error")


def near_best(rows: list[dict], metric: str, direction: str) -> dict[str, bool | None]:
    """Per upsampler with results: True for the best mean, else :func:`within_noise` of the best."""
    order = ranking(rows, metric, direction)
    stats = {r["upsampler"]: r["metrics"][metric] for r in rows if "metrics" in r}
    return {name: name == order[0] or within_noise(stats[order[0]], stats[name]) for name in order}


def _ranking_lines(task: str, rows: list[dict], metrics: dict[str, str]) -> str:
    """Per headline metric: the order, and who is within seed noise of the first."""
    lines = [f"Ranking on {task} (best first; within noise: |difference| <= sqrt(std1^2 + std2^2)):", ""]
    for m in create_task(task).primary:
        order = ranking(rows, m, metrics[m])
        if not order:
            continue
        near = near_best(rows, m, metrics[m])
        if near[order[-1]] is None:
            noise = "no spread with one seed"
        else:
            noise = "within noise of the first: " + (", ".join(n for n in order[1:] if near[n]) or "none")
        lines.append(f"- {FORMATS[m][0]}: {' > '.join(order)} ({noise})")
    return "\n".join(lines) + "\n"


def write_summary(results: list[dict], out_dir: str | Path, command: str, plots: bool = True) -> list[Path]:
    """Several tasks' results side by side: summary.md (+ summary.png) in ``out_dir``."""
    out = Path(out_dir)
    names = list(dict.fromkeys(n for r in results for n in r["meta"]["upsamplers"]))
    columns = [(r, m) for r in results for m in create_task(r["task"]).primary]
    header = ["upsampler"] + [
        f"{r['task']} {FORMATS[m][0]} {'↑' if r['metrics'][m] == 'max' else '↓'}" for r, m in columns
    ]
    header.append("best or within noise of it on")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(columns) + "---|"]
    near = [(r["task"], m, near_best(r["rows"], m, r["metrics"][m])) for r, m in columns]
    for name in names:
        cells = [f"`{name}`"]
        for r, m in columns:
            row = next((x for x in r["rows"] if x["upsampler"] == name), None)
            if row is None or "metrics" not in row:
                cells.append("—")
                continue
            rank = ranking(r["rows"], m, r["metrics"][m]).index(name) + 1
            cells.append(f"{_cell(row['metrics'][m], m)} ({rank})")
        wins = [f"{task} {FORMATS[m][0].split()[0]}" for task, m, flags in near if flags.get(name)]
        cells.append(", ".join(wins) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    machines = sum((Counter(r["meta"]["machines"]) for r in results), Counter())
    seeds = sorted({s for r in results for s in r["meta"]["seeds"]})
    total = sum(r["meta"]["train_seconds_total"] for r in results)
    spread = "mean ± sample std" if len(seeds) > 1 else "one run (only the best counts as near it)"
    presets = ", ".join(f"`{r['meta']['preset']['task']}/{r['meta']['preset']['name']}`" for r in results)
    text = [
        "# Upsamplers across tasks",
        "",
        f"Command: `{command}`  ",
        f"{_machines_text(machines)}; {total:.0f} s of training in all.  ",
        f"Seeds {', '.join(map(str, seeds))}; cells are {spread} (rank among the upsamplers in brackets). Presets: {presets}.",
        "",
        "\n".join(lines),
        "",
    ]
    text += [_ranking_lines(r["task"], r["rows"], r["metrics"]) for r in results]
    paths = [out / "summary.md"]
    write_file(paths[0], "\n".join(text))
    if plots:
        panels = [
            p
            for r in results
            for p in _panels(r["rows"], {m: r["metrics"][m] for m in create_task(r["task"]).primary}, f"{r['task']}: ")
        ]
        paths.append(plot_task(panels, out / "summary.png", f"Upsamplers across tasks ({spread}; seeds {seeds})"))
    return paths
