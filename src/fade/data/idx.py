"""Reader for the idx format of (Fashion-)MNIST, gzipped or raw.

An idx file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the array in C order, big-endian. Every way a file can be damaged (bad
magic, unknown dtype, truncated or over-long data, a broken gzip stream) raises a ValueError that
names the file, what was expected and what was found.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ._checks import check_path

__all__ = ["IDX_DTYPES", "read_idx"]

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""idx dtype code -> numpy dtype of the stored (big-endian) values."""

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _read_data(f: BinaryIO, expected: int) -> tuple[bytes | None, int]:
    """(the rest of ``f``, its length) when it holds at most ``expected`` bytes, else (None, its length).

    Reads in chunks: memory follows what the file holds, not what a (possibly damaged) header claims.
    """
    chunks, got = [], 0
    while got <= expected:
        chunk = f.read(min(_CHUNK, expected + 1 - got))
        if not chunk:
            return b"".join(chunks), got
        chunks.append(chunk)
        got += len(chunk)
    while chunk := f.read(_CHUNK):
        got += len(chunk)
    return None, got


def _parse(path: Path, f: BinaryIO) -> np.ndarray:
    """The array in the idx stream ``f`` (of the file ``path``), checked against its header."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        got = magic.hex() or "an empty file"
        raise ValueError(f"{path}: expected an idx magic number 0x0000<dtype><ndim>, got {got}")
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: expected an idx dtype code in ({known}), got 0x{code:02X}")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        header, got = 4 + 4 * ndim, 4 + len(raw_dims)
        raise ValueError(f"{path}: expected a {header}-byte header for {ndim} dims, got {got} bytes in all")
    dims = tuple(int.from_bytes(raw_dims[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # a Python int: no overflow, however large the header's dims
    data, got = _read_data(f, expected)
    if got != expected:
        raise ValueError(
            f"{path}: header says dims {dims} of {dtype.name}, expected {expected} data bytes, got {got} "
            f"({'truncated' if got < expected else 'trailing bytes'})"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(dims)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    array.flags.writeable = False
    return array


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (``.gz`` or raw; gzip is recognised by its magic bytes, not its name).

    Args:
        path: the idx file.

    Returns:
        np.ndarray of the header's dims and dtype (e.g. uint8 (N, 28, 28) images, uint8 (N,) labels),
        read-only.

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        FileNotFoundError: when ``path`` is not a file.
        ValueError: on a bad magic number, an unknown dtype code, a short header, a broken gzip
            stream, or data whose byte count does not match the header (names the file and expected
            vs got bytes), decided before the array is allocated.
    """
    path = check_path("path", path)
    if not path.is_file():
        raise FileNotFoundError(f"idx file not found: expected a file at {path}")
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not compressed:
            return _parse(path, f)
        try:
            with gzip.GzipFile(fileobj=f) as stream:
                return _parse(path, stream)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise ValueError(
                f"{path}: expected a complete gzip stream, got a truncated or corrupt one "
                f"({path.stat().st_size} compressed bytes: {err})"
            ) from err
