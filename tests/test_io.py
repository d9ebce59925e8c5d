"""Atomic files, checksummed files, writable folders and the one-run-per-folder lock."""

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fade.io import (
    LOCK_FILE,
    CorruptFileError,
    FolderLockedError,
    check_writable_folder,
    lock_folder,
    read_checked_bytes,
    read_checked_json,
    write_checked_bytes,
    write_checked_json,
    write_file,
    write_json,
)


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    write_file(tmp_path / "a.txt", "text")
    (tmp_path / "b.txt").write_text("text")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.txt")


def test_text_bytes_and_json_round_trip_and_leave_no_temporary_file(tmp_path):
    write_file(tmp_path / "t", "é")
    write_file(tmp_path / "b", b"\x00\x01")
    write_json(tmp_path / "j.json", {"a": [1, 2]})
    assert (tmp_path / "t").read_text(encoding="utf-8") == "é"
    assert (tmp_path / "b").read_bytes() == b"\x00\x01"
    assert (tmp_path / "j.json").read_text() == '{\n "a": [\n  1,\n  2\n ]\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "j.json", "t"]


# ---- checksummed files ---------------------------------------------------------------------------

ADVICE = "delete it to start over"
RECORD = {"metrics": {"psnr": 21.123456789012345, "ssim": 0.5}, "seed": 3, "name": "fadé", "history": [1, 2.5]}


def test_checked_json_round_trips_and_stores_the_sha256_of_its_canonical_content(tmp_path):
    write_checked_json(tmp_path / "r.json", RECORD)
    raw = json.loads((tmp_path / "r.json").read_text())
    canonical = json.dumps(RECORD, sort_keys=True, separators=(",", ":")).encode()
    assert raw.pop("sha256") == hashlib.sha256(canonical).hexdigest()
    assert raw == RECORD
    assert read_checked_json(tmp_path / "r.json", ADVICE) == RECORD


def test_checked_json_ignores_formatting_but_not_content(tmp_path):
    path = tmp_path / "r.json"
    write_checked_json(path, RECORD)
    compact = json.dumps(json.loads(path.read_text()), separators=(",", ":"))
    path.write_text(compact)
    assert read_checked_json(path, ADVICE) == RECORD
    path.write_text(compact.replace('"ssim":0.5', '"ssim":0.6'))
    with pytest.raises(CorruptFileError, match=r"r\.json: content does not match its checksum.*; delete it to start"):
        read_checked_json(path, ADVICE)


def _damaged(data: bytes, how: str) -> bytes:
    if how == "empty":
        return b""
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "random":
        return bytes((i * 7919 + 13) % 256 for i in range(len(data)))
    position = int(how)
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


@pytest.mark.parametrize("how", ["empty", "truncated", "random", *[str(p) for p in range(0, 160, 7)]])
def test_any_damaged_checked_json_is_refused_naming_the_file_and_the_remedy(tmp_path, how):
    """Every single-bit flip in the first 160 bytes, as well as empty, truncated and random files."""
    path = tmp_path / "results.json"
    write_checked_json(path, RECORD)
    data = _damaged(path.read_bytes(), how)
    path.write_bytes(data)
    with pytest.raises(CorruptFileError) as error:
        read_checked_json(path, ADVICE)
    assert str(error.value).startswith(f"{path}: ") and str(error.value).endswith(ADVICE)
    assert error.value.path == path and isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"a": 1}\n', "expected a 'sha256' checksum, got none"),
        ("[1, 2]\n", "expected a JSON object, got a JSON list"),
        ("   \n", "got an empty file"),
        ("\xff\xfe{}", "got invalid JSON"),
    ],
)
def test_checked_json_refuses_files_it_did_not_write(tmp_path, text, problem):
    path = tmp_path / "x.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(CorruptFileError, match=rf"x\.json: .*{problem}"):
        read_checked_json(path, ADVICE)


def test_checked_json_takes_dicts_without_a_sha256_key():
    with pytest.raises(TypeError, match="data: expected a dict, got list"):
        write_checked_json("unused.json", [1])
    with pytest.raises(ValueError, match="data: expected no 'sha256' key"):
        write_checked_json("unused.json", {"sha256": "x"})


PAYLOAD = bytes(range(256)) * 5


def test_checked_bytes_round_trip_behind_a_header_of_length_and_sha256(tmp_path):
    write_checked_bytes(tmp_path / "c.pt", PAYLOAD)
    data = (tmp_path / "c.pt").read_bytes()
    header = b"FADE-CHECKED-1 sha256=%s bytes=%d\n" % (hashlib.sha256(PAYLOAD).hexdigest().encode(), len(PAYLOAD))
    assert data == header + PAYLOAD
    assert read_checked_bytes(tmp_path / "c.pt", ADVICE) == PAYLOAD
    write_checked_bytes(tmp_path / "empty.pt", b"")
    assert read_checked_bytes(tmp_path / "empty.pt", ADVICE) == b""


@pytest.mark.parametrize(
    "how, problem",
    [
        ("empty", "got an empty file"),
        ("truncated", r"expected 1280 bytes after the header, got \d+ \(truncated\)"),
        ("random", "expected a checksummed fade file"),
        ("long", r"expected 1280 bytes after the header, got 1281 \(trailing bytes\)"),
        ("huge count", r"expected 99999999999999999999 bytes after the header, got 1280 \(truncated\)"),
        ("legacy", r"expected a checksummed fade file \(FADE-CHECKED-1 header\), got a file starting with b'PK"),
        *[(str(p), "") for p in (0, 20, 40, 80, 95, 120, 700, 1360)],
    ],
)
def test_any_damaged_checked_file_is_refused_naming_the_file_and_the_remedy(tmp_path, how, problem):
    """Bit flips in the header and in the payload, and files cut, padded, random or of the old format."""
    path = tmp_path / "checkpoint.pt"
    write_checked_bytes(path, PAYLOAD)
    data = path.read_bytes()
    if how == "long":
        data += b"\x00"
    elif how == "huge count":
        data = data.replace(b"bytes=1280", b"bytes=99999999999999999999")
    elif how == "legacy":
        data = b"PK\x03\x04" + PAYLOAD
    else:
        data = _damaged(data, how)
    path.write_bytes(data)
    with pytest.raises(CorruptFileError, match=rf"^{path}: .*{problem}.*; {ADVICE}$"):
        read_checked_bytes(path, ADVICE)


# ---- writable folders and the run lock ----------------------------------------------------------


def test_checking_a_new_folder_leaves_nothing_behind(tmp_path):
    assert check_writable_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    (tmp_path / "a").mkdir()
    check_writable_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a").is_dir() and not (tmp_path / "a" / "b").exists()


def test_the_lock_creates_the_folder_and_removes_it_when_nothing_was_written(tmp_path):
    """A run refused or failed before writing leaves no empty folder; one that wrote keeps its files."""
    with pytest.raises(RuntimeError, match="failed"), lock_folder(tmp_path / "a" / "b") as folder:
        assert folder.is_dir() and (folder / LOCK_FILE).exists()
        raise RuntimeError("failed")
    assert not (tmp_path / "a").exists()
    with lock_folder(tmp_path / "a" / "b") as folder:
        (folder / "results.json").write_text("{}")
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["results.json"]
    with lock_folder(tmp_path):
        pass
    assert tmp_path.is_dir()


def test_a_file_where_the_folder_or_a_parent_should_be_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"out: expected a folder, got .*file \(it is not a folder\)"):
        check_writable_folder(tmp_path / "file")
    with pytest.raises(NotADirectoryError, match=r"run: expected a folder, got .*file/sub \(its parent .*file is not"):
        check_writable_folder(tmp_path / "file" / "sub", name="run")
    with pytest.raises(NotADirectoryError, match=r"out: expected a folder, got /dev/null \(it is not a folder\)"):
        check_writable_folder("/dev/null")


def test_a_folder_that_cannot_be_written_is_refused():
    """/sys refuses new entries even to root (a chmod-ed folder would not stop root)."""
    with pytest.raises(PermissionError, match="out: expected a writable folder, got /sys/fade-test"):
        check_writable_folder("/sys/fade-test")


HOLD_LOCK = Path(__file__).parent / "hold_lock.py"


def _hold(folder: Path) -> subprocess.Popen:
    """A second process that takes the lock and holds it until its stdin closes (or it is killed)."""
    command = [sys.executable, HOLD_LOCK, folder, "holder-command --x 1"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "locked\n"
    return process


def test_a_folder_locked_by_another_process_is_refused_naming_the_holder(tmp_path):
    holder = _hold(tmp_path)
    try:
        with pytest.raises(FolderLockedError) as error:
            with lock_folder(tmp_path):
                pytest.fail("two runs held one folder")
        message = str(error.value)
        assert message.startswith(f"{tmp_path} is in use by another run (pid {holder.pid}, host {socket.gethostname()}")
        assert "command holder-command --x 1, started 20" in message and message.endswith("use another folder")
        assert isinstance(error.value, OSError)
    finally:
        holder.communicate("")
    assert holder.returncode == 0 and not (tmp_path / LOCK_FILE).exists()
    with lock_folder(tmp_path):  # free again once the holder has ended
        pass


def test_a_killed_holder_releases_the_lock(tmp_path):
    holder = _hold(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # left behind by the killed process, but no longer locked
    with lock_folder(tmp_path, command="after the crash"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["command"] == "after the crash"
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_lock_is_per_run_even_within_one_process(tmp_path):
    with lock_folder(tmp_path):
        with pytest.raises(FolderLockedError, match=rf"pid {os.getpid()}, host"):
            with lock_folder(tmp_path):
                pass
    with lock_folder(tmp_path):
        pass


def test_the_lock_is_released_when_the_run_raises(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with lock_folder(tmp_path):
            raise RuntimeError("boom")
    with lock_folder(tmp_path):
        pass
    assert not list(tmp_path.iterdir())


def test_committed_results_carry_valid_checksums():
    """Every results.json under results/ verifies (they were migrated when checksums were introduced)."""
    root = Path(__file__).resolve().parents[1] / "results"
    paths = sorted(root.rglob("results.json"))
    assert paths, root
    for path in paths:
        assert isinstance(read_checked_json(path, ADVICE), dict)


def test_locking_removes_what_a_killed_writer_left_half_written(tmp_path):
    """kill -9 during atomic_write leaves its temporary file; the next run in the folder removes it."""
    names = [".checkpoint.pt.k3j_x9a2.tmp", ".results.json.abcdefgh.tmp", ".fade-write-check.zz9_1abc.tmp"]
    kept = [".notes.tmp", "checkpoint.pt", "results.json.tmp", ".x.toolongname.tmp"]
    for name in names + kept:
        (tmp_path / name).write_text("x")
    with lock_folder(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_run_file_that_is_not_a_regular_file_is_refused_without_waiting(kind, tmp_path):
    """A FIFO planted as results.json would block the read forever; /dev/zero would never end."""
    path = {"fifo": tmp_path / "results.json", "device": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    what = "a folder" if kind == "folder" else "a FIFO, socket or device"
    with pytest.raises(CorruptFileError, match=rf"{path}: expected a regular file, got {what}; {ADVICE}"):
        read_checked_bytes(path, ADVICE)


def test_the_lock_recreates_its_folder_if_another_runs_write_check_removed_it(tmp_path, monkeypatch):
    """A second run's check_writable_folder may remove the first run's new folder before its lock file
    exists (both saw it missing): the first run creates it again instead of failing."""
    real_open, calls = os.open, []

    def open_after_removal(path, flags, *args):
        if str(path).endswith(LOCK_FILE) and not calls:
            calls.append(path)
            os.rmdir(os.path.dirname(path))  # what the other run's check did
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", open_after_removal)
    with lock_folder(tmp_path / "run") as folder:
        assert (folder / LOCK_FILE).exists() and calls
