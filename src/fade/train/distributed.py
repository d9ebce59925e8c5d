"""Training on several processes (``torchrun``) and in mixed precision.

``torchrun --nproc_per_node N -m fade train ...`` starts N processes with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address in their environment; :func:`distributed_from_env` joins
them into one process group (NCCL on CUDA, gloo on the CPU), across nodes too (torchrun's
``--nnodes``/``--rdzv_endpoint``: nothing else is needed here). :func:`fade.train.train` then:

- splits each step's global batch of ``batch_size`` samples into ``world_size`` equal contiguous
  shares (:func:`shard`), one per rank, so the union of the shares is the one-process batch;
- wraps the model in DistributedDataParallel, which averages the gradients of the per-rank
  losses: with equal shares that is the gradient of the one-process loss when the loss is a mean
  over samples or pixels (matting, reconstruction); segmentation, whose shares hold unequal numbers
  of ignored pixels, divides each rank's sum by the ranks' mean valid count (:mod:`fade.train.tasks`),
  so it too is the one-process mean over every valid pixel (per-GPU means, as mmseg takes, are not);
- replaces every BatchNorm by :class:`GlobalBatchNorm`, whose training statistics are those of the
  global batch (the recipes' SyncBN; torch's SyncBatchNorm refuses CPU tensors, this one runs on
  both and is what the 2-process CPU tests check against one process);
- seeds each rank's generator (dropout, stochastic depth) differently, so a run on N processes
  equals the one-process run to float rounding only when the model draws no random numbers;
- lets rank 0 alone read and write the run's folder (it hands the checkpoint to the others, so
  nodes need no shared folder) and evaluate; the checkpoint carries every rank's generator state,
  so a resumed run continues each rank's stream (same process count only).

Mixed precision: ``amp="bf16"`` or ``"fp16"`` runs forward and loss under ``torch.autocast``; fp16
also scales the loss (GradScaler) and is CUDA-only.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "AMP_DTYPES",
    "GlobalBatchNorm",
    "Processes",
    "ShardedBatches",
    "autocast",
    "broadcast_from_main",
    "check_amp",
    "convert_batchnorm",
    "current_processes",
    "distributed_from_env",
    "gather_objects",
    "grad_scaler",
    "mean_over_processes",
    "shard",
]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""``--amp`` names and their autocast dtypes."""


@dataclass(frozen=True)
class Processes:
    """Where this process stands: its rank among ``world_size`` and its rank on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes and evaluates."""
        return self.rank == 0


def current_processes() -> Processes:
    """The process group's view of this process (one process when none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Processes()
    return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _env_int(name: str, low: int) -> int:
    text = os.environ.get(name, "")
    try:
        value = int(text)
    except ValueError:
        expected = f"an integer >= {low} in the environment (torchrun sets it)"
        raise ValueError(f"{name}: expected {expected}, got {text!r}") from None
    if value < low:
        raise ValueError(f"{name}: expected an integer >= {low} in the environment (torchrun sets it), got {text!r}")
    return value


@contextlib.contextmanager
def distributed_from_env(device: str) -> Iterator[Processes]:
    """Join torchrun's process group for the body when ``WORLD_SIZE`` > 1; one process otherwise.

    Args:
        device: the run's device name; ``cuda`` (or ``cuda:N``) uses NCCL and ``cuda:LOCAL_RANK``,
            anything else gloo.

    Yields:
        this process's :class:`Processes`. The group is destroyed on exit.
    """
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE", 1) == 1:
        yield Processes()
        return
    rank, world_size, local_rank = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    if rank >= world_size:
        raise ValueError(f"RANK: expected 0..{world_size - 1} (WORLD_SIZE {world_size}), got {rank}")
    cuda = str(device).startswith("cuda")
    if cuda:
        if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"LOCAL_RANK: expected a CUDA device index below {count}, got {local_rank}")
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield Processes(rank, world_size, local_rank)
        _leave_together(cuda)
    finally:
        dist.destroy_process_group()


# How long the other ranks wait at the end for the main one, which evaluates and writes the results
# after training; torchrun stops them anyway if it fails.
_FINISH_TIMEOUT = datetime.timedelta(hours=24)


def _leave_together(cuda: bool) -> None:
    """Wait for every rank before the group is destroyed.

    The main rank evaluates after training while the others are done; a rank that destroyed its
    end of a gloo group and exited meanwhile could abort in gloo's teardown ("terminate called
    without an active exception", seen once in CI). NCCL has no monitored barrier; its barrier
    waits up to the group's timeout.
    """
    if cuda:
        dist.barrier()
    else:
        dist.monitored_barrier(timeout=_FINISH_TIMEOUT)


def shard(indices: list[int], processes: Processes) -> list[int]:
    """This rank's contiguous share of a global batch (equal shares: the batch must divide evenly)."""
    size, world = len(indices), processes.world_size
    if size % world:
        raise ValueError(f"batch_size: expected a multiple of the {world} processes, got {size}")
    share = size // world
    return indices[processes.rank * share : (processes.rank + 1) * share]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is the sum over processes of the incoming gradients."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span every process's batch (SyncBN, on any device).

    Out of training mode, or with one process, it is ``nn.BatchNorm2d``. In training mode it sums
    per-channel counts, sums and sums of squares over processes (float32), normalises with the
    global mean and biased variance, and updates the running statistics with the unbiased variance
    (as BatchNorm2d does on one process). Gradients flow through the global statistics.

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        values = x.float()
        count = values.new_tensor([x.numel() // channels])
        stats = torch.cat([values.sum(dim=(0, 2, 3)), values.square().sum(dim=(0, 2, 3)), count])
        stats = _AllReduceSum.apply(stats)
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean.square()).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp_min(1.0)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        out = (values - mean[:, None, None]) * torch.rsqrt(var + self.eps)[:, None, None]
        if self.affine:
            out = out * self.weight.float()[:, None, None] + self.bias.float()[:, None, None]
        return out.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.BatchNorm2d`` replaced by a :class:`GlobalBatchNorm` holding the
    same parameters, buffers and mode (the state dict's names and values are unchanged)."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm):
        replacement = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        ).to(device=module.weight.device if module.affine else None)
        replacement.load_state_dict(module.state_dict())
        replacement.train(module.training)
        return replacement
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child))
    return module


def mean_over_processes(value: Tensor, processes: Processes) -> Tensor:
    """The mean of a scalar over the processes (itself with one process)."""
    if processes.world_size == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / processes.world_size


def check_amp(amp: str | None, device: torch.device) -> None:
    """ValueError unless ``amp`` is None, ``bf16``, or ``fp16`` on CUDA."""
    if amp is None:
        return
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp: expected one of {', '.join(AMP_DTYPES)} or None, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"amp: fp16 needs a CUDA device (loss scaling), got {str(device)!r}; use bf16 on the CPU")


def autocast(amp: str | None, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` on ``device``'s type (a no-op context for None)."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(amp: str | None, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled for fp16 only (disabled, it passes the loss and the step through)."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")


class ShardedBatches:
    """This rank's shares (:func:`shard`) of a batch sampler's global batches, for a DataLoader."""

    def __init__(self, batches, processes: Processes) -> None:
        self.batches, self.processes = batches, processes

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield shard(batch, self.processes)


def gather_objects(value: object, processes: Processes) -> list:
    """``value`` of every rank, in rank order (a collective: every rank must call it)."""
    if processes.world_size == 1:
        return [value]
    values = [None] * processes.world_size
    dist.all_gather_object(values, value)
    return values


def broadcast_from_main(value: object, processes: Processes) -> object:
    """Rank 0's ``value`` on every rank (a collective: every rank must call it)."""
    if processes.world_size == 1:
        return value
    values = [value]
    dist.broadcast_object_list(values, src=0)
    return values[0]
