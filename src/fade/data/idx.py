"""Reader for the idx format of (Fashion-)MNIST, gzipped or raw.

An idx file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the array in C order, big-endian. Every way a file can be damaged (bad
magic, unknown dtype, truncated or over-long data, a broken gzip stream) raises a ValueError that
names the file, what was expected and what was found.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

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


def _file_bytes(path: Path) -> bytes:
    """The decompressed content of ``path``; gzip is recognised by its magic bytes, not its name."""
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(
            f"{path}: expected a complete gzip stream, got a truncated or corrupt one "
            f"({len(raw)} compressed bytes: {err})"
        ) from err


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (``.gz`` or raw) into a native-endian numpy array.

    Args:
        path: the idx file.

    Returns:
        np.ndarray of the header's dims and dtype (e.g. uint8 (N, 28, 28) images, uint8 (N,) labels),
        read-only.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: on a bad magic number, an unknown dtype code, a broken gzip stream, or data whose
            byte count does not match the header (names the file and expected vs got bytes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"idx file not found: expected a file at {path}")
    data = _file_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path}: expected an idx magic number 0x0000<dtype><ndim>, got {data[:4].hex() or 'an empty file'}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: expected an idx dtype code in ({known}), got 0x{code:02X}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: expected a {header}-byte header for {ndim} dims, got {len(data)} bytes in all")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        raise ValueError(
            f"{path}: header says dims {dims} of {dtype.name}, expected {expected} data bytes, got {got} "
            f"({'truncated' if got < expected else 'trailing bytes'})"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    array.flags.writeable = False
    return array
