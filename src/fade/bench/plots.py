"""Figures of a sweep: the paper's Fig. 7 (GFLOPs vs channels and vs resolution) redrawn from the
measurements, and the same two panels for latency and peak memory. Needs matplotlib (``plot`` extra).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from ..io import write_file

__all__ = ["FIGURES", "plot_sweep"]

FIGURES = {
    "gflops": ("gflops", "GFLOPs (multiply-adds, counted ops)"),
    "latency_fwd": ("fwd_ms", "inference latency (ms)"),
    "latency_fwdbwd": ("fwdbwd_ms", "forward+backward latency (ms)"),
    "memory_fwd": ("peak_fwd_mib", "inference peak extra memory (MiB)"),
    "memory_fwdbwd": ("peak_fwdbwd_mib", "forward+backward peak extra memory (MiB)"),
}
"""File stem -> (column, axis label)."""

_HIGHLIGHT = {"fade": ("black", 2.5, "-", 3), "fade_authors": ("tab:red", 2.5, "--", 2)}
"""Drawn over the others: ours solid black on top, the authors' formulation dashed red under it."""


def plot_sweep(rows: list[dict], meta: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Draw one PNG per entry of :data:`FIGURES` into ``out_dir``; return their paths.

    Each figure has a row per batch and two log-log panels: against channels (fixed decoder size)
    and against decoder size (fixed channels). Missing and zero values are not drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["name"] for r in rows))
    batches = sorted({r["batch"] for r in rows})
    cmap = plt.get_cmap("tab20")
    markers = "os^vD<>phX*"
    style = {
        n: _HIGHLIGHT.get(n, (cmap(i % 20), 1.2, "-", 1)) + (markers[i % len(markers)],) for i, n in enumerate(names)
    }
    machine = meta["machine"]
    where = f"{machine['cpu']}, {machine['device']}, {machine['threads']} threads, torch {machine['torch']}"
    config = meta["config"]
    paths = []
    for stem, (column, label) in FIGURES.items():
        fig, axes = plt.subplots(len(batches), 2, figsize=(12, 4.2 * len(batches)), squeeze=False)
        for bi, batch in enumerate(batches):
            for si, (sweep, x_key, x_label) in enumerate(
                (
                    ("channels", "channels", f"channels C (decoder {config['base_size']}x{config['base_size']})"),
                    ("resolution", "height", f"decoder size H=W (C={config['base_channels']}, x{config['scale']})"),
                )
            ):
                ax = axes[bi][si]
                for name in names:
                    pts = sorted(
                        (r[x_key], r[column])
                        for r in rows
                        if r["name"] == name
                        and r["sweep"] == sweep
                        and r["batch"] == batch
                        and r[column] is not None
                        and r[column] > 0
                    )
                    if pts:
                        color, width, line, z, marker = style[name]
                        ax.plot(
                            *zip(*pts),
                            label=name,
                            color=color,
                            linewidth=width,
                            linestyle=line,
                            zorder=z,
                            marker=marker,
                            markersize=4,
                        )
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_xlabel(x_label)
                ax.set_ylabel(label)
                ax.set_title(f"batch {batch}")
                ax.grid(True, which="both", alpha=0.3)
        handles, labels = [], []
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        fig.suptitle(f"{label}\n{where}", fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        path = Path(out_dir) / f"{stem}.png"
        write_file(path, buf.getvalue())
        paths.append(path)
    return paths
