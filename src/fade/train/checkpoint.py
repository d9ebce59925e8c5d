"""Training checkpoints (checksummed, written atomically: :mod:`fade.io`) and the RNG states they carry.

A checkpoint file is :func:`fade.io.write_checked_bytes`'s format around a ``torch.save`` payload: a
one-line header with the payload's length and SHA-256, verified before anything is unpickled.
"""

from __future__ import annotations

import io
import os

import torch

from ..io import CorruptFileError, read_checked_bytes, write_checked_bytes

__all__ = ["load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

CHECKPOINT_ADVICE = "delete it to restart the run from step 0 (it cannot be resumed from this file)"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save(state)`` to ``path`` atomically, behind a checksum header."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_checked_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, device: torch.device, advice: str = CHECKPOINT_ADVICE) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors only, no pickled code).

    Raises:
        CorruptFileError: the file is empty, truncated, altered, from an older fade without a
            checksum, or not a checkpoint; the message names the file and ends with ``advice``
            (what to do; default: for a run that resumes from it).
    """
    payload = read_checked_bytes(path, advice)
    try:
        state = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
    except (MemoryError, OSError, torch.cuda.OutOfMemoryError):
        raise  # the machine's state, not the file's: the checkpoint may be fine
    except Exception as error:  # noqa: BLE001  (verified bytes torch cannot read: the file's fault, not ours)
        reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]}"
        problem = f"expected a torch checkpoint inside, got one torch cannot load ({reason})"
        raise CorruptFileError(path, problem, advice) from None
    if not isinstance(state, dict) or "step" not in state:
        raise CorruptFileError(path, f"expected a checkpoint dict, got {type(state).__name__}", advice)
    return state


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
