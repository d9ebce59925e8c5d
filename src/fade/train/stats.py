"""Statistics of a comparison: paired per-seed differences, and results against a trivial baseline.

Runs of a comparison are paired by seed: a seed fixes the batches and their order for every
upsampler (:mod:`fade.train.data`), so the difference of two upsamplers on the same seed is free of
the variation a seed brings to both alike. :func:`paired_differences` gives, per upsampler, the
per-seed differences to a reference, their mean, sample standard deviation and how many seeds it wins.

A result is *clearly above* its task's trivial baseline (:meth:`fade.train.tasks.Task.trivial_baseline`)
when it beats the baseline on every seed and its mean closes at least :data:`CLEAR_MARGIN` (10 %) of
the distance from the baseline to the metric's ideal value (1 for mIoU, bIoU, accuracy and SSIM, 0 for
the errors); for PSNR, which has no finite ideal, when its mean is at least -10 log10(0.9) = 0.46 dB
above the baseline (the same 10 % of the MSE). A result that is not is flagged and never ranked.
"""

from __future__ import annotations

import math
import statistics

__all__ = ["CLEAR_MARGIN", "IDEALS", "better", "clear_threshold", "clearly_above", "paired_differences", "separated"]

CLEAR_MARGIN = 0.1
"""Fraction of the baseline's distance to the ideal value a result must close to count as clearly above it."""

IDEALS: dict[str, float] = {
    "miou": 1.0,
    "biou": 1.0,
    "pixel_accuracy": 1.0,
    "ssim": 1.0,
    "sad": 0.0,
    "mse": 0.0,
    "grad": 0.0,
    "conn": 0.0,
    "mae": 0.0,
}
"""The best value each metric can take (PSNR has none: see the module docstring)."""


def better(a: float, b: float, direction: str) -> bool:
    """Whether ``a`` is strictly better than ``b`` ("max": higher is better, "min": lower)."""
    if direction not in ("max", "min"):
        raise ValueError(f"direction: expected 'max' or 'min', got {direction!r}")
    return a > b if direction == "max" else a < b


def clear_threshold(metric: str, direction: str, baseline: float) -> float:
    """The mean a result must reach (or pass) to be clearly above ``baseline`` on ``metric``."""
    if metric == "psnr":
        return baseline - 10.0 * math.log10(1.0 - CLEAR_MARGIN)
    if metric not in IDEALS:
        raise ValueError(f"metric: expected one of psnr, {', '.join(IDEALS)}, got {metric!r}")
    return baseline + CLEAR_MARGIN * (IDEALS[metric] - baseline)


def clearly_above(values: list[float], baseline: float, metric: str, direction: str) -> bool:
    """Every value better than ``baseline`` and their mean at or past :func:`clear_threshold`."""
    if not values:
        raise ValueError(f"values: expected at least one run's {metric}, got none")
    threshold = clear_threshold(metric, direction, baseline)
    mean = statistics.fmean(values)
    reaches = mean >= threshold if direction == "max" else mean <= threshold
    return reaches and all(better(v, baseline, direction) for v in values)


def paired_differences(rows: list[dict], reference: str, metric: str, direction: str) -> dict[str, dict]:
    """Per upsampler other than ``reference``: its differences to ``reference`` on the seeds both completed.

    Args:
        rows: :func:`fade.train.compare.aggregate` rows (``seeds`` and ``metrics[metric]["values"]``
            in the same order).

    Returns:
        ``{upsampler: {"seeds", "differences" (upsampler - reference, per seed), "mean", "std"
        (sample; None for one seed), "wins" (seeds on which the upsampler is better), "n"}}``;
        upsamplers sharing no seed with the reference are left out.
    """
    scored = {r["upsampler"]: dict(zip(r["seeds"], r["metrics"][metric]["values"])) for r in rows if "metrics" in r}
    if reference not in scored:
        raise ValueError(f"reference: expected an upsampler with results, got {reference!r}")
    base = scored[reference]
    out = {}
    for name, values in scored.items():
        seeds = [s for s in values if s in base]
        if name == reference or not seeds:
            continue
        differences = [values[s] - base[s] for s in seeds]
        out[name] = {
            "seeds": seeds,
            "differences": differences,
            "mean": statistics.fmean(differences),
            "std": statistics.stdev(differences) if len(differences) > 1 else None,
            "wins": sum(better(values[s], base[s], direction) for s in seeds),
            "n": len(seeds),
        }
    return out


def separated(paired: dict) -> bool | None:
    """Whether the reference beats the upsampler on every paired seed (None with fewer than two seeds).

    Ties count against separation: the reference must be strictly better each time.
    """
    if paired["n"] < 2:
        return None
    losses = sum(d != 0.0 for d in paired["differences"]) - paired["wins"]
    return losses == paired["n"]
