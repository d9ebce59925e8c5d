"""One process of the distributed tests (started by torchrun): argv[1] is a JSON spec.

Spec: {"preset": Preset fields, "upsampler": name, "runs": [{"out": folder, "stop_after": N,
"kill_at": N}, ...], "batchnorm": folder or ""}. Every run is :func:`fade.train.train` inside
:func:`fade.train.distributed.distributed_from_env`; ``kill_at``: rank 0 kills itself (SIGKILL) when
step N is logged, before that step's checkpoint is written; ``batchnorm`` saves this rank's
GlobalBatchNorm output and gradients on its share of a fixed batch (rank-suffixed files) for the
parent to compare.
"""

import json
import os
import signal
import sys
from pathlib import Path

import torch

from fade.train import Preset, train
from fade.train.distributed import GlobalBatchNorm, distributed_from_env, shard


def batchnorm_share(folder: Path, rank: int, processes) -> None:
    torch.manual_seed(0)
    batch = torch.randn(4, 3, 5, 6) * 3 + 1
    upstream = torch.randn(4, 3, 5, 6)
    norm = GlobalBatchNorm(3, momentum=0.3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    rows = shard(list(range(4)), processes)
    x = batch[rows].clone().requires_grad_(True)
    y = norm(x)
    # The one-process loss is sum(y * upstream) / 4 over the batch; each rank's share of it, as DDP sees it.
    (y * upstream[rows]).sum().div(len(rows)).backward()
    torch.save(
        {"y": y.detach(), "dx": x.grad, "dw": norm.weight.grad, "db": norm.bias.grad, "state": norm.state_dict()},
        folder / f"batchnorm{rank}.pt",
    )


def main() -> None:
    spec = json.loads(sys.argv[1])
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["preset"].items()}
    preset = Preset(**options)
    with distributed_from_env("cpu") as processes:
        if spec.get("batchnorm"):
            batchnorm_share(Path(spec["batchnorm"]), processes.rank, processes)
        for run in spec["runs"]:
            log = None
            if run.get("kill_at") and processes.main:
                mark = f"step {run['kill_at']}/"
                log = lambda message: os.kill(os.getpid(), signal.SIGKILL) if mark in message else None  # noqa: E731
            train(preset, spec["upsampler"], run["out"], seed=0, stop_after=run.get("stop_after"), threads=1, log=log)


if __name__ == "__main__":
    main()
