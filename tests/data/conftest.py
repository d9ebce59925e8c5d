import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# idx dtype codes from the format's definition (LeCun's MNIST page), written out independently here.
IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise ``array`` as an idx file: magic, big-endian uint32 dims, big-endian data."""
    code = IDX_CODES[array.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def write_idx() -> Callable[[Path, np.ndarray, bool], Path]:
    """Write an idx file (gzipped when ``gz``) and return its path."""

    def write(path: Path, array: np.ndarray, gz: bool = False) -> Path:
        data = idx_bytes(array)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    return write


@pytest.fixture
def fake_fashion_mnist(write_idx):
    """Write a tiny Fashion-MNIST split (7 train items, 3 test items) under a directory."""

    def write(directory: Path, gz: bool = False, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng(seed)
        arrays = {}
        for split, prefix, n in (("train", "train", 7), ("test", "t10k", 3)):
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, size=n, dtype=np.uint8)
            suffix = ".gz" if gz else ""
            write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
            write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
            arrays[split] = (images, labels)
        return arrays

    return write
