"""``fade train`` / ``fade compare`` facing bad files, full disks, busy folders and Ctrl-C: one line, the right status,
and a run that can be resumed."""

import errno
import os
import signal
from pathlib import Path

import pytest
import torch

from fade.cli import main
from fade.train import create_task
from fade.io import read_checked_json, write_checked_json
from fade.train.checkpoint import CHECKPOINT_ADVICE, load_checkpoint, save_checkpoint
from fade.train.presets import PRESETS
from fade.train.trainer import RESULTS_ADVICE, build_model

from .conftest import TINY


@pytest.fixture
def tiny_presets(monkeypatch):
    for task, preset in TINY.items():
        monkeypatch.setitem(PRESETS, (task, "tiny"), preset)


def _train(out, *extra) -> list[str]:
    run = ["--task", "reconstruction", "--upsampler", "nearest", "--preset", "tiny", "--out", str(out)]
    return ["train", *run, *extra]


def _one_line_error(capsys, command: str = "train") -> str:
    err = capsys.readouterr().err.splitlines(keepends=True)
    errors = [line for line in err if line.startswith(f"fade {command}: ")]
    assert len(errors) == 1 and "Traceback" not in "".join(err), err
    return errors[0]


class _NotWeights:
    """A pickled object in a weights file: torch.load(weights_only=True) refuses it."""


def _init_files(tmp_path) -> dict:
    model = build_model(TINY["reconstruction"], "nearest")
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.ndim == 4)
    torch.save({**state, name: torch.zeros(1, 2, 3, 4)}, tmp_path / "wrong_shape.pt")
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    (tmp_path / "text.pt").write_text("these are not weights\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"weight": torch.ones(2), "hook": _NotWeights()}, tmp_path / "pickled_object.pt")
    return {
        "pickled object": tmp_path / "pickled_object.pt",
        "missing": tmp_path / "missing.pt",
        "tensor": tmp_path / "tensor.pt",
        "wrong shape": tmp_path / "wrong_shape.pt",
        "text": tmp_path / "text.pt",
        "empty": tmp_path / "empty.pt",
        "folder": tmp_path,
        "special file": Path("/dev/zero"),
    }


@pytest.mark.parametrize(
    "kind, why",
    [
        ("missing", "which does not exist"),
        ("pickled object", "it holds a pickled object that is not a tensor (tests.train.test_cli_errors._NotWeights)"),
        ("tensor", "got a Tensor without one"),
        ("wrong shape", "do not fit"),
        ("text", "could not read"),
        ("empty", "could not read"),
        ("folder", "which is a folder"),
        ("special file", "which is not a regular file"),
    ],
)
def test_a_bad_init_file_is_one_line_naming_it_and_status_2(kind, why, tiny_presets, tmp_path, capsys):
    """Every bad --init names the file and why; the refused run leaves no --out folder behind."""
    path = _init_files(tmp_path)[kind]
    assert main(_train(tmp_path / "run", "--init", str(path))) == 2
    line = _one_line_error(capsys)
    assert line.startswith("fade train: error: init: expected ") or line.startswith("fade train: error: init: the ")
    assert repr(str(path)) in line and why in line, line
    assert "weights_only" not in line and len(line) - len(str(path)) < 200, line  # not torch's paragraphs
    assert not (tmp_path / "run").exists()


def test_damaged_run_files_name_the_file_and_what_to_do(tiny_presets, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train(out, "--stop-after", "2")) == 0
    checkpoint = out / "checkpoint.pt"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[:-10])
    assert main(_train(out)) == 2
    assert _one_line_error(capsys).startswith(f"fade train: error: {checkpoint}: expected ")
    checkpoint.write_bytes(good)
    assert main(_train(out)) == 0
    results = out / "results.json"
    results.write_text(results.read_text()[:-40])
    assert main(_train(out)) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"fade train: error: {results}: expected a JSON file written by fade, got invalid JSON")
    assert line.endswith(f"; {RESULTS_ADVICE}\n")


@pytest.mark.parametrize(
    "name, record",
    [
        ("results.json", {"status": "complete", "metrics": {"psnr": 1.0}}),
        ("results.json", {"status": "complete", "metrics": {}, "config": ["not", "a", "dict"]}),
        ("results.json", {"config": {"preset": "x"}, "status": "complete", "metrics": {}}),
        ("checkpoint.pt", {"step": 2}),
        ("checkpoint.pt", {"step": 2, "config": "{", "model": {}, "optimizer": {}, "history": [], "window": []}),
    ],
)
def test_a_verified_run_file_without_a_run_record_names_the_file(name, record, tiny_presets, tmp_path, capsys):
    """A file with a valid checksum but not what fade writes (a hand-made or foreign record) is one line
    naming it and what to do, not a KeyError."""
    out = tmp_path / "run"
    out.mkdir()
    if name == "results.json":
        write_checked_json(out / name, record)
    else:
        save_checkpoint(out / name, record)
    assert main(_train(out)) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"fade train: error: {out / name}: expected a fade run record with config ("), line
    assert line.endswith(f"; {RESULTS_ADVICE if name == 'results.json' else CHECKPOINT_ADVICE}\n"), line


@pytest.mark.parametrize("command", ["train", "compare", "bench", "visualize"])
def test_an_empty_out_is_refused_not_taken_for_the_default(command, tiny_presets, tmp_path, capsys):
    """--out '' used to mean the default folder (train) or the current folder (the others)."""
    argv = {
        "train": _train(""),
        "compare": ["compare", "--preset", "tiny", "--task", "matting", "--out", ""],
        "bench": ["bench", "--out", ""],
        "visualize": ["visualize", str(tmp_path), "--out", " "],
    }[command]
    with pytest.raises(SystemExit) as stop:  # a usage error, refused while parsing
        main(argv)
    assert stop.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fade {command}: error: argument --out: expected a folder path, got ")


@pytest.mark.parametrize(
    "problem, extra, expected",
    [
        ("foreign init", ["--init", "FOREIGN"], "init: expected weights in one of the formats"),
        ("batch larger than the data", ["--batch-size", "1000"], "batch_size: expected 1.."),
        ("a size the model refuses", ["--size", "3", "3"], "size: expected H, W >= 29 for the segformer_tiny network"),
    ],
)
def test_a_run_refused_after_loading_the_data_prints_one_line(problem, extra, expected, tiny_presets, tmp_path, capsys):
    """The data line is logged once the first step ran: a run its settings refuse prints its error alone."""
    torch.save({"other.weight": torch.ones(2)}, tmp_path / "foreign.pt")
    extra = [str(tmp_path / "foreign.pt") if arg == "FOREIGN" else arg for arg in extra]
    argv = _train(tmp_path / "run", *extra)
    if "size" in problem:  # the segmentation network's first stage needs more than 3x3
        argv[argv.index("reconstruction")] = "segmentation"
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fade train: error: {expected}"), line
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_is_one_line_saying_what_to_do(monkeypatch, tmp_path, capsys):
    """A non-finite loss stops the run: one line (was a FloatingPointError traceback), status 2."""
    monkeypatch.setitem(PRESETS, ("reconstruction", "tiny"), TINY["reconstruction"].replace(lr=1e30))
    assert main(_train(tmp_path / "run")) == 2
    line = _one_line_error(capsys)
    assert "expected a finite loss, got nan (the run diverged; the last checkpoint is kept: lower the" in line, line

def test_a_full_disk_is_one_line_and_the_run_resumes_afterwards(tiny_presets, tmp_path, capsys, monkeypatch):
    calls = []
    real_fsync = os.fsync

    def full_after_first_checkpoint(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full_after_first_checkpoint)
        assert main(_train(tmp_path / "run")) == 2
    line = _one_line_error(capsys)
    assert line.startswith("fade train: error: No space left on device (free some space, then run the same command")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt", torch.device("cpu"))["step"] == 2
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]
    assert main(_train(tmp_path / "run")) == 0
    assert "resuming at step 2" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["a file", "below a file", "unwritable"])
def test_an_output_that_cannot_be_a_folder_is_one_line_before_training(where, tiny_presets, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = {"a file": tmp_path / "file", "below a file": tmp_path / "file" / "run", "unwritable": "/sys/fade-run"}[where]
    for argv in (_train(out), ["compare", "--preset", "tiny", "--task", "matting", "--out", str(out)]):
        assert main(argv) == 2
        assert "error: out: expected a " in _one_line_error(capsys, argv[0])
    assert (tmp_path / "file").read_text() == "x"


def test_a_second_run_on_a_busy_folder_is_refused_at_once_naming_the_first(
    tiny_presets, tmp_path, capsys, held_by_another_process
):
    out = tmp_path / "run"
    compare = ["compare", "--preset", "tiny", "--task", "all", "--out", str(tmp_path / "cmp")]
    for argv, busy in ((_train(out), out), (compare, tmp_path / "cmp" / "reconstruction")):
        with held_by_another_process(busy, "fade train ... (first)") as holder:
            assert main(argv) == 2
            line = _one_line_error(capsys, argv[0])
            assert f"error: {busy} is in use by another run (pid {holder.pid}, host " in line
            assert "command fade train ... (first), started " in line
        assert not busy.exists()  # the holder created it; the refused run wrote nothing, so it went with the lock
    assert not (tmp_path / "cmp").exists()  # refused before the segmentation and matting tasks trained


def test_two_comparisons_of_different_tasks_share_one_out_folder(tiny_presets, tmp_path, capsys, held_by_another_process):
    """Each task's folder is locked while it trains, not the whole --out: a second command trains another task."""
    root = tmp_path / "cmp"
    argv = ["compare", "--preset", "tiny", "--upsamplers", "nearest", "--seeds", "0", "--out", str(root)]
    with held_by_another_process(root / "segmentation", "fade compare --task segmentation (first)"):
        assert main([*argv, "--task", "reconstruction"]) == 0, capsys.readouterr().err
        assert main([*argv, "--task", "segmentation"]) == 2
        assert "is in use by another run" in _one_line_error(capsys, "compare")
    assert (root / "reconstruction" / "results.json").is_file()


def test_ctrl_c_is_one_line_status_130_and_the_run_resumes_bit_identically(tiny_presets, tmp_path, capsys, monkeypatch):
    assert main(_train(tmp_path / "straight")) == 0
    task_type = type(create_task("reconstruction"))
    real_loss, calls = task_type.loss, []

    def interrupted_at_step_3(self, model, batch):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_loss(self, model, batch)

    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(task_type, "loss", interrupted_at_step_3)
        assert main(_train(tmp_path / "run")) == 130
    assert _one_line_error(capsys) == (
        "fade train: interrupted; run the same command again to resume from the last checkpoint\n"
    )
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]
    assert main(_train(tmp_path / "run")) == 0
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt", torch.device("cpu"))["model"]
    resumed = load_checkpoint(tmp_path / "run" / "checkpoint.pt", torch.device("cpu"))["model"]
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved(tiny_presets, tmp_path, capsys, monkeypatch):
    def interrupted(self, model, batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(create_task("reconstruction")), "loss", interrupted)
    compare = ["compare", "--preset", "tiny", "--task", "reconstruction", "--upsamplers", "nearest"]
    for argv in (_train(tmp_path / "run"), [*compare, "--seeds", "0", "--out", str(tmp_path / "cmp")]):
        assert main(argv) == 130
        assert _one_line_error(capsys, argv[0]) == (
            f"fade {argv[0]}: interrupted; nothing was saved yet (no checkpoint had been written)\n"
        )
    assert not (tmp_path / "run").exists() and not (tmp_path / "cmp").exists()


def test_sigterm_is_one_line_status_143_and_leaves_a_resumable_run(tiny_presets, tmp_path, capsys, monkeypatch):
    """`kill PID` (a scheduler ending a job): the files being written are cleaned up, the lock released."""
    task_type = type(create_task("reconstruction"))
    real_loss, calls = task_type.loss, []

    def killed_at_step_3(self, model, batch):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(self, model, batch)

    with monkeypatch.context() as patch:
        patch.setattr(task_type, "loss", killed_at_step_3)
        assert main(_train(tmp_path / "run")) == 143
    assert _one_line_error(capsys) == (
        "fade train: terminated (SIGTERM); run the same command again to resume from the last checkpoint\n"
    )
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # main() restored the handler it replaced
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]
    assert main(_train(tmp_path / "run")) == 0
    assert "resuming at step 2" in capsys.readouterr().err


def test_data_dir_for_a_source_that_reads_no_folder_is_one_line(tiny_presets, monkeypatch, tmp_path, capsys):
    """--data-dir with the shapes or hair-matting presets was a TypeError traceback from the dataset."""
    monkeypatch.setitem(PRESETS, ("matting", "tiny"), TINY["matting"].replace(data="hair_matting", data_options={}))
    argv = _train(tmp_path / "run", "--data-dir", str(tmp_path))
    argv[argv.index("reconstruction")] = "matting"
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert line.startswith("fade train: error: data_options: the 'hair_matting' data source takes radius, "), line
    assert line.endswith("got root; it reads no folder, so drop --data-dir\n"), line
    assert not (tmp_path / "run").exists()


def test_data_naming_another_source_drops_the_presets_data_options(tiny_presets, tmp_path, capsys):
    """--data hair_matting on a preset whose data options belong to composite_matting (alpha_gain) was a
    TypeError traceback; the options are the preset's source's, so the other source runs without them."""
    argv = _train(tmp_path / "run", "--data", "hair_matting", "--steps", "1")
    argv[argv.index("reconstruction")] = "matting"
    assert main(argv) == 0, capsys.readouterr().err
    record = read_checked_json(tmp_path / "run" / "results.json", "test")
    assert record["config"]["preset"]["data"] == "hair_matting"
    assert record["config"]["preset"]["data_options"] == {}


def test_labels_beyond_the_models_classes_are_one_line(tiny_presets, monkeypatch, tmp_path, capsys):
    """Composite labels 0..10 on a 3-class network: was an IndexError traceback from cross_entropy."""
    preset = TINY["segmentation"].replace(model_options={"num_classes": 3})
    monkeypatch.setitem(PRESETS, ("segmentation", "tiny"), preset)
    argv = _train(tmp_path / "run")
    argv[argv.index("reconstruction")] = "segmentation"
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert line.startswith("fade train: error: label: expected classes 0..2 (the model's 3 outputs) or 255, got "), line
