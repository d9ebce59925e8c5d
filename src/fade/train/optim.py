"""Optimisers with per-parameter learning-rate multipliers, and step-indexed learning-rate schedules.

The schedule is a pure function of the step, so a resumed run recomputes the learning rate from the
step stored in its checkpoint and needs no scheduler object of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "SCHEDULES", "Schedule", "build_optimizer", "set_learning_rate"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
"""Optimiser names a preset may use."""

SCHEDULES = ("constant", "poly", "cosine", "step")
"""Schedule kinds: constant; poly ``(1 - t / T)^power``; cosine; step (``gamma`` at each milestone)."""


@dataclass(frozen=True)
class Schedule:
    """Learning-rate factor of step t (0-based) of a run of ``total_steps`` steps.

    ``factor(t) = main(t) * warmup(t)``. ``main`` decays from 1 to ``min_ratio``: poly
    ``min + (1 - min) (1 - t / T)^power``, cosine ``min + (1 - min) (1 + cos(pi t / T)) / 2``, or
    step ``gamma^k`` after k of the ``milestones`` (fractions of T). The linear warm-up, as mmcv's,
    scales it by ``1 - (1 - t / W)(1 - warmup_ratio)`` for t < W = ``warmup_steps``.
    """

    kind: str
    total_steps: int
    warmup_steps: int = 0
    warmup_ratio: float = 1e-6
    power: float = 1.0
    min_ratio: float = 0.0
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {self.kind!r}")
        if self.total_steps < 1 or self.warmup_steps < 0:
            raise ValueError(
                f"schedule: expected total_steps >= 1 and warmup_steps >= 0, got {self.total_steps} and "
                f"{self.warmup_steps}"
            )
        if any(not 0.0 < m < 1.0 for m in self.milestones):
            raise ValueError(f"milestones: expected fractions of the run in (0, 1), got {self.milestones}")

    def factor(self, step: int) -> float:
        """The multiplier of every base learning rate at step ``step``."""
        progress = min(step, self.total_steps) / self.total_steps
        low = self.min_ratio
        if self.kind == "poly":
            main = low + (1.0 - low) * (1.0 - progress) ** self.power
        elif self.kind == "cosine":
            main = low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
        elif self.kind == "step":
            main = self.gamma ** sum(progress >= m for m in self.milestones)
        else:
            main = 1.0
        if step < self.warmup_steps:
            main *= 1.0 - (1.0 - step / self.warmup_steps) * (1.0 - self.warmup_ratio)
        return main


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    lr_mult: tuple[tuple[str, float], ...] = (),
    no_decay: tuple[str, ...] = (),
) -> torch.optim.Optimizer:
    """An optimiser over ``model``'s trainable parameters, grouped by learning rate and decay.

    Args:
        name: a key of :data:`OPTIMIZERS`.
        lr_mult: (name prefix, multiplier) pairs; a parameter takes the first whose prefix starts
            its name (mmcv's ``lr_mult``), else 1.
        no_decay: substrings; a parameter whose name holds one gets no weight decay (mmcv's
            ``decay_mult=0``).

    Each group stores its multiplier as ``"lr_mult"``; :func:`set_learning_rate` uses it.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {name!r}")
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for pname, param in model.named_parameters():
        if not param.requires_grad:
            continue
        mult = next((m for prefix, m in lr_mult if pname.startswith(prefix)), 1.0)
        decay = 0.0 if any(key in pname for key in no_decay) else weight_decay
        groups.setdefault((mult, decay), []).append(param)
    param_groups = [
        {"params": params, "lr": lr * mult, "lr_mult": mult, "weight_decay": decay}
        for (mult, decay), params in groups.items()
    ]
    return OPTIMIZERS[name](param_groups, lr=lr, betas=betas, weight_decay=weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    """Set every group's learning rate to ``base_lr * factor * group["lr_mult"]``."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor * group["lr_mult"]
