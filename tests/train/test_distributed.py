"""Training on several processes: 2 CPU processes (torchrun, gloo on 127.0.0.1) against one process
with the same global batch, a clean stop and a kill mid-way resumed, BatchNorm over the global batch,
and mixed-precision options."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from fade.io import read_checked_json
from fade.train import train
from fade.train.checkpoint import load_checkpoint
from fade.train.distributed import Processes, check_amp, convert_batchnorm, shard

from .conftest import TINY

WORKER = Path(__file__).with_name("distributed_worker.py")
# No dropout, so that the runs draw no random numbers and 2 processes can equal one.
PRESET = TINY["segmentation"].replace(
    model_options={"num_classes": 11, "dropout": 0.0}, steps=12, checkpoint_every=1, log_every=1
)


# torchrun --standalone: its rendezvous store binds a free port itself and the workers use that store,
# so two launches at once (pytest -n 2) cannot race for a port picked in advance.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# Gloo on the loopback interface, one thread per rank (the two ranks share the machine's cores).
TORCHRUN_ENV = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def _torchrun(spec: dict) -> subprocess.Popen:
    """2 processes of the worker under torchrun, in a session of their own (so they can be killed)."""
    command = [*TORCHRUN, str(WORKER), json.dumps(spec)]
    return subprocess.Popen(
        command, env=TORCHRUN_ENV, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _finish(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output.decode()[-3000:]


def _spec(runs: list[dict], checks: Path | None = None) -> dict:
    return {"preset": PRESET.to_dict(), "upsampler": "fade", "runs": runs, "checks": str(checks or "")}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """One torchrun launch: the BatchNorm and loss shares, an uninterrupted run, a run stopped then resumed."""
    root = tmp_path_factory.mktemp("ddp")
    stopped = str(root / "stopped")
    runs = [{"out": str(root / "full")}, {"out": stopped, "stop_after": 5}, {"out": stopped}]
    _finish(_torchrun(_spec(runs, root)))
    return root


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return train(PRESET, "fade", tmp_path_factory.mktemp("single"), threads=1)


def _results(folder: Path) -> dict:
    return read_checked_json(folder / "results.json", "test")


def test_two_processes_follow_the_one_process_loss_curve_and_metrics(two_processes, one_process):
    two = _results(two_processes / "full")
    assert two["processes"] == 2 and one_process["processes"] == 1
    losses_two = [h["loss"] for h in two["history"]]
    losses_one = [h["loss"] for h in one_process["history"]]
    assert len(losses_two) == len(losses_one) == PRESET.steps
    assert losses_two[-1] < losses_two[0]  # it learned something
    torch.testing.assert_close(torch.tensor(losses_two), torch.tensor(losses_one), rtol=1e-5, atol=1e-6)
    for name, value in one_process["metrics"].items():
        assert two["metrics"][name] == pytest.approx(value, abs=1e-4), name


def test_two_process_run_stopped_and_resumed_equals_the_uninterrupted_one(two_processes):
    full, resumed = _results(two_processes / "full"), _results(two_processes / "stopped")
    assert resumed["history"] == full["history"] and resumed["metrics"] == full["metrics"]
    a = load_checkpoint(two_processes / "full" / "checkpoint.pt", torch.device("cpu"))
    b = load_checkpoint(two_processes / "stopped" / "checkpoint.pt", torch.device("cpu"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["processes"] == 2 and len(a["rng_ranks"]) == 2


def test_two_process_run_killed_mid_way_resumes_to_the_same_weights(two_processes, tmp_path):
    out = tmp_path / "killed"
    killed = _torchrun(_spec([{"out": str(out), "kill_at": 6}]))
    killed.communicate(timeout=300)
    assert killed.returncode != 0 and not (out / "results.json").exists()
    assert load_checkpoint(out / "checkpoint.pt", torch.device("cpu"))["step"] == 5
    _finish(_torchrun(_spec([{"out": str(out)}])))
    full = load_checkpoint(two_processes / "full" / "checkpoint.pt", torch.device("cpu"))
    resumed = load_checkpoint(out / "checkpoint.pt", torch.device("cpu"))
    assert all(torch.equal(full["model"][k], resumed["model"][k]) for k in full["model"])
    assert _results(out)["history"] == _results(two_processes / "full")["history"]


def test_global_batchnorm_on_two_processes_is_batchnorm_over_the_whole_batch(two_processes):
    torch.manual_seed(0)
    batch = (torch.randn(4, 3, 5, 6) * 3 + 1).double()  # as the workers draw it
    upstream = torch.randn(4, 3, 5, 6).double()
    norm = nn.BatchNorm2d(3, momentum=0.3).double()
    shares = [torch.load(two_processes / f"batchnorm{r}.pt") for r in range(2)]
    with torch.no_grad():  # the same affine parameters as the workers drew
        norm.weight.copy_(shares[0]["state"]["weight"].double())
        norm.bias.copy_(shares[0]["state"]["bias"].double())
    x = batch.clone().requires_grad_(True)
    y = norm(x)
    (y * upstream).sum().div(4).backward()
    got_y = torch.cat([s["y"] for s in shares]).double()
    torch.testing.assert_close(got_y, y.detach(), rtol=1e-5, atol=1e-5)
    # DDP averages parameter gradients over ranks; input gradients are of the sum of the rank losses.
    torch.testing.assert_close(sum(s["dw"] for s in shares).double() / 2, norm.weight.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(sum(s["db"] for s in shares).double() / 2, norm.bias.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.cat([s["dx"] for s in shares]).double() / 2, x.grad, rtol=1e-4, atol=1e-6)
    for share in shares:
        for name in ("running_mean", "running_var"):
            torch.testing.assert_close(share["state"][name].double(), getattr(norm, name), rtol=1e-5, atol=1e-6)
        assert int(share["state"]["num_batches_tracked"]) == 1


def test_segmentation_loss_on_two_processes_is_the_mean_over_every_valid_pixel(two_processes):
    """Shares with unequal numbers of ignored pixels: each rank divides its sum by the ranks' mean
    valid count, so the ranks' mean loss and mean gradient are the one-process ones."""
    torch.manual_seed(1)
    image = torch.randn(4, 3, 6, 5)
    label = torch.randint(0, 4, (4, 6, 5))
    label[0, :4] = 255
    label[3] = 255
    model = nn.Conv2d(3, 4, 1)
    loss = torch.nn.functional.cross_entropy(model(image), label, ignore_index=255)
    loss.backward()
    shares = [torch.load(two_processes / f"segmentation{r}.pt") for r in range(2)]
    torch.testing.assert_close((shares[0]["loss"] + shares[1]["loss"]) / 2, loss.detach())
    torch.testing.assert_close((shares[0]["dw"] + shares[1]["dw"]) / 2, model.weight.grad)
    with torch.no_grad():  # the plain per-rank means would not be: the test can tell
        halves = ([0, 1], [2, 3])
        per_rank = [torch.nn.functional.cross_entropy(model(image[h]), label[h], ignore_index=255) for h in halves]
    assert abs((per_rank[0] + per_rank[1]) / 2 - loss) > 1e-4  # 100 times the tolerance above


def test_convert_batchnorm_keeps_state_names_and_values():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Sequential(nn.BatchNorm2d(2)))
    model[1].running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    converted = convert_batchnorm(model)
    assert type(converted[1]).__name__ == "GlobalBatchNorm" and type(converted[2][0]).__name__ == "GlobalBatchNorm"
    assert not converted[1].training
    assert before.keys() == converted.state_dict().keys()
    assert all(torch.equal(before[k], v) for k, v in converted.state_dict().items())


def test_shard_splits_the_global_batch_in_equal_contiguous_shares():
    batch = [7, 3, 9, 1, 4, 8]
    shares = [shard(batch, Processes(rank, 3)) for rank in range(3)]
    assert shares == [[7, 3], [9, 1], [4, 8]]
    with pytest.raises(ValueError, match="batch_size: expected a multiple of the 4 processes, got 6"):
        shard(batch, Processes(0, 4))


def test_mixed_precision_options(tmp_path):
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        check_amp("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="amp: expected one of bf16, fp16"):
        check_amp("fp8", torch.device("cpu"))
    result = train(TINY["reconstruction"].replace(steps=2), "bilinear", tmp_path / "bf16", amp="bf16", threads=1)
    assert result["config"]["amp"] == "bf16" and all(h["loss"] > 0 for h in result["history"])


def test_torchrun_fade_train_command(tmp_path):
    """The user's command: ``torchrun -m fade train``; rank 0 alone prints and writes."""
    out = tmp_path / "run"
    command = [
        *TORCHRUN, "-m", "fade", "train", "--task", "reconstruction", "--preset", "quick",
        "--upsampler", "bilinear", "--steps", "2", "--batch-size", "4", "--train-length", "8", "--test-length", "4",
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, check=False, env=TORCHRUN_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("results.json") == 1
    results = _results(out)
    assert results["processes"] == 2 and [h["step"] for h in results["history"]] == [2]
    assert results["config"]["preset"]["batch_size"] == 4
