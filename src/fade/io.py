"""Files a run can trust: atomic writes, checksummed payloads, one run per folder.

- :func:`atomic_write`: a reader (or a resumed run) sees the previous complete file or the new one,
  never a part. Every file fade writes goes through it.
- :func:`write_checked_json` / :func:`read_checked_json` and :func:`write_checked_bytes` /
  :func:`read_checked_bytes`: result files and checkpoints carry the SHA-256 of their content,
  verified at load; a damaged file raises :class:`CorruptFileError` naming the file and what to do.
- :func:`lock_folder`: an OS lock (``flock``) on ``FOLDER/.fade.lock`` held for a whole run, after a
  check that the folder can be written; a second run on the folder is refused, naming the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "LOCK_FILE",
    "CorruptFileError",
    "FolderLockedError",
    "atomic_write",
    "check_writable_folder",
    "is_checked_file",
    "lock_folder",
    "read_checked_bytes",
    "read_checked_json",
    "write_checked_bytes",
    "write_checked_json",
    "write_file",
    "write_json",
]

LOCK_FILE = ".fade.lock"
CHECKSUM_KEY = "sha256"
"""The key of a checked JSON file that holds the SHA-256 of the rest of its content."""
_MAGIC = b"FADE-CHECKED-1"
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")
"""Names of :func:`atomic_write`'s temporary files (``tempfile.mkstemp``: 8 random characters)."""
_HEADER_MAX = 128


class CorruptFileError(ValueError):
    """A file that fails its check (truncated, empty, not fade's format, or altered since it was written)."""

    def __init__(self, path: str | os.PathLike, problem: str, advice: str) -> None:
        super().__init__(f"{path}: {problem}; {advice}")
        self.path = Path(path)


class FolderLockedError(OSError):
    """The folder is in use by another run (the lock is held)."""

    def __init__(self, folder: Path, holder: str) -> None:
        message = f"{folder} is in use by another run ({holder}); wait for it to end or use another folder"
        super().__init__(errno.EBUSY, message)
        self.folder = folder

    def __str__(self) -> str:
        return self.strerror


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, flush it to disk, move it over ``path``.

    The file gets the permissions a plain ``open`` would give. If ``write`` raises, ``path`` keeps its
    previous content and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_file(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(data.encode() if isinstance(data, str) else data))


def write_json(path: str | os.PathLike, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_file(path, json.dumps(data, indent=1) + "\n")


def _json_digest(data: dict) -> str:
    """SHA-256 of ``data`` in a canonical JSON form (sorted keys, no spaces): formatting does not count."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_checked_json(path: str | os.PathLike, data: dict) -> None:
    """Write the dict ``data`` as indented JSON atomically, with the SHA-256 of its content under ``"sha256"``."""
    if not isinstance(data, dict):
        raise TypeError(f"data: expected a dict, got {type(data).__name__}")
    if CHECKSUM_KEY in data:
        raise ValueError(f"data: expected no {CHECKSUM_KEY!r} key (it holds the checksum), got one")
    write_json(path, {**data, CHECKSUM_KEY: _json_digest(data)})


def read_checked_json(path: str | os.PathLike, advice: str) -> dict:
    """The dict :func:`write_checked_json` wrote to ``path`` (without the checksum), verified.

    Raises:
        CorruptFileError: the file is not UTF-8 JSON of a dict, has no checksum, or its content does
            not match the checksum; the message names ``path`` and ends with ``advice``.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        got = "an empty file" if not raw.strip() else f"invalid JSON ({error}; {len(raw)} bytes)"
        raise CorruptFileError(path, f"expected a JSON file written by fade, got {got}", advice) from None
    if not isinstance(data, dict):
        raise CorruptFileError(path, f"expected a JSON object, got a JSON {type(data).__name__}", advice)
    stored = data.pop(CHECKSUM_KEY, None)
    if stored is None:
        raise CorruptFileError(path, f"expected a {CHECKSUM_KEY!r} checksum, got none (not written by fade)", advice)
    if stored != _json_digest(data):
        raise CorruptFileError(path, "content does not match its checksum (altered or damaged since written)", advice)
    return data


def write_checked_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` atomically behind a one-line header holding its length and SHA-256."""
    header = b"%s sha256=%s bytes=%d\n" % (_MAGIC, hashlib.sha256(payload).hexdigest().encode(), len(payload))

    def write(f: BinaryIO) -> None:
        f.write(header)
        f.write(payload)

    atomic_write(path, write)


def is_checked_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the header of :func:`write_checked_bytes` (a run's checkpoint.pt or
    model.pt); the content is not verified here."""
    with open(path, "rb") as f:
        return f.read(len(_MAGIC) + 1) == _MAGIC + b" "


def read_checked_bytes(path: str | os.PathLike, advice: str) -> bytes:
    """The payload :func:`write_checked_bytes` wrote to ``path``, verified against its length and SHA-256.

    Raises:
        CorruptFileError: not a regular file (a folder, a FIFO, a device), empty, not this format
            (e.g. written by an older fade without a checksum), truncated, over-long or altered; the
            message names ``path`` and ends with ``advice``.
    """
    path = Path(path)
    # O_NONBLOCK: opening a FIFO planted in the folder must not wait for a writer (it is refused below).
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
        raise CorruptFileError(path, f"expected a regular file, got {kind}", advice)
    with open(fd, "rb") as f:
        head = f.read(_HEADER_MAX)
        end = head.find(b"\n")
        fields = head[:end].split(b" ") if end > 0 else []
        prefixes = (_MAGIC, b"sha256=", b"bytes=")
        if len(fields) != 3 or fields[0] != _MAGIC or not all(f.startswith(p) for f, p in zip(fields, prefixes)):
            got = "an empty file" if not head else f"a file starting with {head[:16]!r}"
            expected = f"a checksummed fade file ({_MAGIC.decode()} header)"
            raise CorruptFileError(path, f"expected {expected}, got {got}", advice)
        digest, size = fields[1][7:].decode("ascii", "replace"), fields[2][6:]
        if not size.isdigit():
            raise CorruptFileError(path, f"expected a byte count in the header, got {size!r}", advice)
        expected, got = int(size), os.fstat(f.fileno()).st_size - (end + 1)
        if got != expected:  # decided on the file's size: a damaged count allocates nothing
            state = "truncated" if got < expected else "trailing bytes"
            raise CorruptFileError(path, f"expected {expected} bytes after the header, got {got} ({state})", advice)
        f.seek(end + 1)
        payload = f.read(expected)
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptFileError(path, "content does not match its checksum (altered or damaged since written)", advice)
    return payload


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist, deepest first."""
    missing = []
    for part in (folder, *folder.parents):
        if part.exists():
            break
        missing.append(part)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for part in folders:
        try:
            part.rmdir()
        except OSError:  # not empty (a run wrote into it), or gone
            return


def check_writable_folder(folder: str | os.PathLike, name: str = "out") -> Path:
    """Prove a file can be created in ``folder``, creating it (and parents) for the test only: what
    did not exist before is removed again, so a refused run leaves no empty folder behind.

    Raises:
        NotADirectoryError: ``folder`` or one of its parents exists and is not a folder (a file, a device).
        PermissionError / OSError: the folder cannot be created or written (message names it).
    """
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            what = "it is not a folder" if part == folder else f"its parent {part} is not a folder"
            raise NotADirectoryError(errno.ENOTDIR, f"{name}: expected a folder, got {folder} ({what})")
    missing = _missing_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".fade-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise type(error)(error.errno, f"{name}: expected a writable folder, got {folder} ({error.strerror})") from None
    finally:
        _remove_empty(missing)
    return folder


def _holder(lock_path: Path) -> str:
    """What the lock file says about the run holding it."""
    try:
        text = lock_path.read_text(errors="replace").strip()
        info = json.loads(text) if text else None
    except (OSError, json.JSONDecodeError):
        info = None
    if not isinstance(info, dict):
        return "holder unknown: the lock file has no details yet"
    return ", ".join(f"{k} {info.get(k)}" for k in ("pid", "host", "command", "started"))


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike, command: str | None = None, name: str = "out") -> Iterator[Path]:
    """Hold an exclusive OS lock on ``folder`` (created if needed) for the ``with`` block; the
    folders it created are removed again at the end if nothing was written into them.

    The lock file ``folder/.fade.lock`` records the holder (pid, host, command, start time); it is
    removed when the block ends. A crashed or killed holder releases the lock with its process; the
    temporary files a killed :func:`atomic_write` left in the folder are removed on locking. Locks are
    per open file, so a second lock from the same process is refused too.

    Raises:
        FolderLockedError: another run holds the lock (the message names it).
        NotADirectoryError, PermissionError, OSError: as :func:`check_writable_folder`.
    """
    folder = check_writable_folder(folder, name)
    created = _missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(folder, command) as locked:
            yield locked
    finally:
        _remove_empty(created)


@contextlib.contextmanager
def _locked(folder: Path, command: str | None) -> Iterator[Path]:
    """:func:`lock_folder`'s lock on the existing ``folder``."""
    lock_path = folder / LOCK_FILE
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except FileNotFoundError:  # another run's write check removed the new, still empty folder: again
            folder.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLockedError(folder, _holder(lock_path)) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
    for leftover in folder.iterdir():
        if _TEMPORARY.fullmatch(leftover.name):  # a killed run's half-written file: never read, now removed
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    try:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command or " ".join(sys.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        yield folder
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)
