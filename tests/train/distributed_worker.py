"""One process of the distributed tests (started by torchrun): argv[1] is a JSON spec.

Spec: {"preset": Preset fields, "upsampler": name, "runs": [{"out": folder, "stop_after": N,
"kill_at": N}, ...], "checks": folder or ""}. Every run is :func:`fade.train.train` inside
:func:`fade.train.distributed.distributed_from_env`; ``kill_at``: rank 0 kills itself (SIGKILL) when
step N is logged, before that step's checkpoint is written; ``checks`` saves what this rank computes
on its share of fixed batches (GlobalBatchNorm output and gradients; the segmentation loss and its
gradient with unevenly ignored pixels) in rank-suffixed files for the parent to compare.
"""

import json
import os
import signal
import sys
from pathlib import Path

import torch

from fade.train import Preset, train
from fade.train.distributed import GlobalBatchNorm, distributed_from_env, shard
from fade.train.tasks import SegmentationTask


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


def segmentation_share(folder: Path, rank: int, processes) -> None:
    torch.manual_seed(1)
    image = torch.randn(4, 3, 6, 5)
    label = torch.randint(0, 4, (4, 6, 5))
    label[0, :4] = 255  # rank 0's share: one image partly ignored
    label[3] = 255  # rank 1's share: one image wholly ignored
    model = torch.nn.Conv2d(3, 4, 1)
    rows = shard(list(range(4)), processes)
    loss = SegmentationTask().loss(model, {"image": image[rows], "label": label[rows]})
    loss.backward()
    torch.save({"loss": loss.detach(), "dw": model.weight.grad}, folder / f"segmentation{rank}.pt")


def main() -> None:
    spec = json.loads(sys.argv[1])
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["preset"].items()}
    preset = Preset(**options)
    with distributed_from_env("cpu") as processes:
        if spec.get("checks"):
            batchnorm_share(Path(spec["checks"]), processes.rank, processes)
            segmentation_share(Path(spec["checks"]), processes.rank, processes)
        for run in spec["runs"]:
            log = None
            if run.get("kill_at") and processes.main:
                mark = f"step {run['kill_at']}/"
                log = lambda message: os.kill(os.getpid(), signal.SIGKILL) if mark in message else None  # noqa: E731
            train(preset, spec["upsampler"], run["out"], seed=0, stop_after=run.get("stop_after"), threads=1, log=log)


if __name__ == "__main__":
    main()
