"""Training checkpoints (checksummed, written atomically: :mod:`fade.io`), the RNG states they carry, and
the state-dict files ``--init`` loads.

A checkpoint file is :func:`fade.io.write_checked_bytes`'s format around a ``torch.save`` payload: a
one-line header with the payload's length and SHA-256, verified before anything is unpickled.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..io import CorruptFileError, read_checked_bytes, write_checked_bytes

__all__ = ["load_checkpoint", "load_state_dict_file", "rng_state", "save_checkpoint", "set_rng_state"]

_CHECKPOINT_ADVICE = "delete it to restart the run from step 0 (it cannot be resumed from this file)"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save(state)`` to ``path`` atomically, behind a checksum header."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_checked_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, device: torch.device) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors only, no pickled code).

    Raises:
        CorruptFileError: the file is empty, truncated, altered, from an older fade without a
            checksum, or not a checkpoint; the message names the file and says what to do.
    """
    payload = read_checked_bytes(path, _CHECKPOINT_ADVICE)
    try:
        state = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001  (verified bytes torch cannot read: the file's fault, not ours)
        reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]}"
        problem = f"expected a torch checkpoint inside, got one torch cannot load ({reason})"
        raise CorruptFileError(path, problem, _CHECKPOINT_ADVICE) from None
    if not isinstance(state, dict) or "step" not in state:
        raise CorruptFileError(path, f"expected a checkpoint dict, got {type(state).__name__}", _CHECKPOINT_ADVICE)
    return state


def load_state_dict_file(path: str | os.PathLike, name: str = "init") -> dict[str, torch.Tensor]:
    """A state dict (names -> tensors) saved with ``torch.save``, loaded on the CPU without running pickled code.

    Raises:
        FileNotFoundError / IsADirectoryError: ``path`` is not a file.
        ValueError: the file is not a torch file, holds pickled code, or holds anything but a
            mapping of names to tensors (the message names ``name``, the file and what it holds).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name}: expected a state-dict file, got {path} (no such file)")
    if not path.is_file():
        raise IsADirectoryError(f"{name}: expected a state-dict file, got {path} (not a file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as error:  # noqa: BLE001  (torch.load fails in many ways on a file that is not its format)
        reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]}"
        raise ValueError(f"{name}: expected a state dict saved with torch.save, got {path} ({reason})") from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{name}: expected a state dict (names -> tensors), got a {type(state).__name__} in {path}")
    wrong = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if wrong:
        raise ValueError(f"{name}: expected a state dict (names -> tensors), got entries {wrong[:3]} in {path}")
    return dict(state)


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
