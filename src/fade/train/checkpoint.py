"""Training checkpoints, written atomically (:mod:`fade.io`), and the RNG states they carry."""

from __future__ import annotations

import os

import torch

from ..io import atomic_write

__all__ = ["load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save(state)`` to ``path`` atomically."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, device: torch.device) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors only, no pickled code)."""
    return torch.load(path, map_location=device, weights_only=True)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The generator states a training step can draw from: torch's CPU one, and the device's."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
