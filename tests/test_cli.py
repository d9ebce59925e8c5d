"""The ``fade`` command's handling of mistakes: parse-time range checks, one-line errors, exit statuses."""

import argparse
import subprocess
import sys

import pytest
import torch

from fade.cli import _Parser, configure_bench, float_range, int_range, main
from fade.data.transforms import DataError


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    return err


TRAIN = ["train", "--task", "matting", "--upsampler", "fade"]
BAD_OPTIONS = [
    *[(TRAIN + [option, value], option) for option in ("--steps", "--stop-after") for value in ("0", "-3", "x", "1.5")],
    *[(TRAIN + ["--seed", value], "--seed") for value in ("-1", "4294967296", "1e3", "")],
    *[(TRAIN + ["--threads", value], "--threads") for value in ("0", "1025", "10000000")],
    *[(["compare", "--seeds", value], "--seeds") for value in ("-1", "0,,1", "4294967296", "a")],
    *[(["compare", option, "0"], option) for option in ("--steps", "--threads")],
    *[(["bench", option, "0"], option) for option in ("--channels", "--sizes", "--batches", "--batch", "--repeats")],
    *[(["bench", option, "-4"], option) for option in ("--channels", "--base-channels", "--base-size", "--warmup")],
    (["bench", "--channels", "8", "-4"], "--channels"),
    (["bench", "--names", "fade", "bogus"], "--names"),
    (["bench", "--threads", "0"], "--threads"),
    *[(["bench", "--input-size", value], "--input-size") for value in ("0", "33", "-32", "512.0")],
    *[(["bench", o, v], o) for o in ("--max-call-s", "--memory-budget-gib") for v in ("0", "-1", "nan", "inf")],
]


@pytest.mark.parametrize("argv, option", BAD_OPTIONS)
def test_out_of_range_options_are_refused_while_parsing_in_one_line(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"fade {argv[0]}: error: argument {option}: expected ") and "--help" in err


def _numeric_actions():
    """Every option of every subcommand whose value is parsed into a number."""
    parser = _Parser(prog="fade")
    subparsers = parser.add_subparsers(dest="command")
    configure_bench(subparsers)
    from fade.train.cli import configure_training

    configure_training(subparsers)
    for name, subparser in subparsers.choices.items():
        for action in subparser._actions:
            if action.type is not None:
                yield name, action


def test_no_option_parses_a_bare_int_or_float():
    """A bare ``type=int`` accepts 0 and -4: every numeric option must use a range-checked type."""
    actions = list(_numeric_actions())
    assert len(actions) >= 20
    assert [(name, a.option_strings) for name, a in actions if a.type in (int, float)] == []


@pytest.mark.parametrize("text", ["-1", "nan", "-inf", "1e400", "x", ""])
def test_every_numeric_option_refuses_negative_non_finite_and_malformed_values(text):
    for name, action in _numeric_actions():
        try:
            value = action.type(text)
        except argparse.ArgumentTypeError:
            continue
        if isinstance(value, (int, float)):
            pytest.fail(f"fade {name} {action.option_strings[0]} accepted {text!r} as {value!r}")


def test_range_types_accept_their_bounds_and_say_what_they_expect():
    assert int_range(0)("0") == 0 and int_range(1, 3)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected an integer in \[1, 3\], got '4'"):
        int_range(1, 3)("4")
    assert float_range(0.0)("1e-9") == 1e-9 and float_range(0.0, low_inclusive=True)("0") == 0.0
    with pytest.raises(argparse.ArgumentTypeError, match="expected a finite number > 0, got '0'"):
        float_range(0.0)("0")


def test_cuda_without_a_cuda_device_is_one_line_not_an_assertion(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for argv in (["bench", "--device", "cuda"], [*TRAIN, "--device", "cuda"], ["compare", "--device", "cuda:1"]):
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2
        assert "error: device: expected an available device, got 'cuda" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:-1", ""])
def test_unknown_devices_are_one_line(device, tmp_path, capsys):
    assert main(["bench", "--device", device, "--out", str(tmp_path)]) == 2
    assert "error: device: expected cpu, cuda or cuda:N" in _one_line_error(capsys)


def test_debug_shows_the_traceback_of_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for argv in (["--debug", "bench", "--device", "cuda"], ["bench", "--device", "cuda", "--debug"]):
        with pytest.raises(ValueError, match="device: expected an available device"):
            main([*argv, "--out", str(tmp_path)])


def test_a_program_bug_is_not_disguised_as_a_user_error(monkeypatch, tmp_path):
    """Only user errors become one line: an internal KeyError keeps its traceback."""

    def bug(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr("fade.bench.sweeps.machine_info", bug)
    with pytest.raises(KeyError, match="internal"):
        main(["bench", "--names", "nearest", "--out", str(tmp_path)])


@pytest.mark.parametrize(
    "error, line",
    [
        (MemoryError(), "fade bench: error: MemoryError\n"),
        (torch.cuda.OutOfMemoryError("CUDA out of memory.\nTried to allocate"), "error: CUDA out of memory. Tried to"),
        (OSError(28, "No space left on device"), "error: No space left on device (free some space, then run"),
        (PermissionError(13, "Permission denied", "/x/y"), "fade bench: error: Permission denied: /x/y\n"),
    ],
)
def test_resource_errors_are_one_line_and_status_2(error, line, monkeypatch, tmp_path, capsys):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("fade.bench.sweeps.machine_info", fail)
    assert main(["bench", "--names", "nearest", "--out", str(tmp_path)]) == 2
    assert line in _one_line_error(capsys)


def test_a_failed_cpu_allocation_is_one_line_and_status_2(monkeypatch, tmp_path, capsys):
    """torch reports a CPU allocation it cannot make as a RuntimeError: one line like MemoryError."""

    def allocate(*args, **kwargs):
        return torch.empty(2**45)  # 128 TiB: refused by the allocator at once

    monkeypatch.setattr("fade.bench.sweeps.machine_info", allocate)
    assert main(["bench", "--names", "nearest", "--out", str(tmp_path)]) == 2
    line = _one_line_error(capsys)
    assert line.startswith("fade bench: error: not enough memory: tried to allocate 140737488355328 bytes; use"), line


def test_a_keyboard_interrupt_is_one_line_and_status_130(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fade.bench.sweeps.machine_info", interrupted)
    assert main(["bench", "--names", "nearest", "--out", str(tmp_path)]) == 130
    assert _one_line_error(capsys) == "fade bench: interrupted\n"
    assert not list(tmp_path.iterdir())  # the folder's lock was released


def test_the_console_script_exits_2_with_one_line_and_no_traceback(tmp_path):
    """The real entry point in a separate process: status and stderr as a shell sees them."""
    done = subprocess.run(
        [sys.executable, "-m", "fade.cli", "bench", "--sizes", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    expected = "fade bench: error: argument --sizes: expected an integer >= 1, got '0' (see fade bench --help)\n"
    assert done.stderr == expected


class _BrokenFile(torch.utils.data.Dataset):
    """Item 1 fails as a corrupt file does, in a DataLoader worker process."""

    def __init__(self, error):
        self.error = error

    def __len__(self):
        return 2

    def __getitem__(self, index):
        if index == 1:
            raise self.error
        return torch.zeros(1)


@pytest.mark.parametrize(
    "error",
    [
        DataError("/data/img_1.jpg", "a readable image", "a corrupt or unsupported file"),
        ValueError("/data/img_1.jpg: expected a readable image, found a corrupt or unsupported file"),
    ],
    ids=["DataError", "ValueError"],
)
def test_a_user_error_in_a_data_loader_worker_is_its_own_one_line(error, monkeypatch, tmp_path, capsys):
    """torch re-raises a worker's exception with the worker's traceback as its text (a RuntimeError when
    the type cannot be rebuilt): the line is the original message, without the traceback."""

    def load(*args, **kwargs):
        for _ in torch.utils.data.DataLoader(_BrokenFile(error), batch_size=1, num_workers=1):
            pass

    monkeypatch.setattr("fade.bench.sweeps.machine_info", load)
    assert main(["bench", "--names", "nearest", "--out", str(tmp_path)]) == 2
    message = "/data/img_1.jpg: expected a readable image, found a corrupt or unsupported file"
    assert _one_line_error(capsys) == f"fade bench: error: {message}\n"


def test_a_bug_in_a_data_loader_worker_keeps_its_traceback(monkeypatch, tmp_path):
    def load(*args, **kwargs):
        for _ in torch.utils.data.DataLoader(_BrokenFile(ZeroDivisionError("bug")), batch_size=1, num_workers=1):
            pass

    monkeypatch.setattr("fade.bench.sweeps.machine_info", load)
    with pytest.raises(ZeroDivisionError, match="Caught ZeroDivisionError in DataLoader worker process 0"):
        main(["bench", "--names", "nearest", "--out", str(tmp_path)])
