"""A run on any folder of idx files in the Fashion-MNIST naming records the folder and a digest of what it read."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from fade.train import train
from fade.train.record import data_record, describe_data

from .conftest import TINY


def _idx(array: np.ndarray) -> bytes:
    """uint8 idx: magic 0x00000800 + ndim, big-endian uint32 dims, the bytes."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_set(folder, images, labels, gz):
    folder.mkdir()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        for kind, array in (("images-idx3", images[split]), ("labels-idx1", labels[split])):
            data = _idx(array)
            name = f"{prefix}-{kind}-ubyte"
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    """The same 20 train / 6 test random 28x28 images in two folders: gzipped and raw."""
    rng = np.random.default_rng(5)
    images = {split: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for split, n in (("train", 20), ("test", 6))}
    labels = {split: rng.integers(0, 10, len(a), dtype=np.uint8) for split, a in images.items()}
    base = tmp_path_factory.mktemp("idx")
    _write_set(base / "gz", images, labels, gz=True)
    _write_set(base / "raw", images, labels, gz=False)
    return base, images


def _expected_digest(images: np.ndarray) -> str:
    """The cached "image" tensor, float32 in [0, 1] as (N, 1, 28, 28), hashed as the record documents."""
    pixels = (images.astype(np.float32) / np.float32(255.0))[:, None]
    return hashlib.sha256(f"image torch.float32 {pixels.shape}\n".encode() + pixels.tobytes()).hexdigest()


def test_a_run_on_a_folder_of_idx_files_records_it(tiny_sets, tmp_path):
    base, images = tiny_sets
    preset = TINY["reconstruction"].replace(
        data_options={"root": str(base / "gz")}, train_length=16, test_length=4, steps=2, batch_size=4
    )
    lines = []
    result = train(preset, "bilinear", tmp_path / "run", log=lines.append)
    record = result["data"]
    assert record["source"] == "fashion_mnist" and record["root"] == str(base / "gz")
    assert [f.rsplit("/", 1)[1] for f in record["files"]] == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert all(f.startswith(str((base / "gz").resolve())) for f in record["files"])
    assert (record["train_samples"], record["test_samples"]) == (16, 4)
    assert record["train_sha256"] == _expected_digest(images["train"][:16])
    assert record["test_sha256"] == _expected_digest(images["test"][:4])
    message = next(line for line in lines if line.startswith("data: "))
    assert f"data: fashion_mnist from {(base / 'gz').resolve()} (train-images-idx3-ubyte.gz," in message
    assert f"16 train / 4 test samples; train sha256 {record['train_sha256'][:12]}" in message
    assert describe_data(record) == message


def test_the_same_data_raw_or_gzipped_has_the_same_digest(tiny_sets):
    from fade.train import build_data

    base, _ = tiny_sets
    preset = TINY["reconstruction"].replace(train_length=8, test_length=2)
    gz, raw = (
        data_record(p, *build_data(p))
        for p in (preset.replace(data_options={"root": str(base / d)}) for d in ("gz", "raw"))
    )
    assert gz["root"] != raw["root"] and gz["files"] != raw["files"]
    assert (gz["train_sha256"], gz["test_sha256"]) == (raw["train_sha256"], raw["test_sha256"])
    other = data_record(preset.replace(data_options={"root": str(base / "raw")}, train_length=9), *build_data(
        preset.replace(data_options={"root": str(base / "raw")}, train_length=9)
    ))
    assert other["train_sha256"] != raw["train_sha256"]


def test_a_folder_without_the_files_names_where_it_looked(tmp_path):
    from fade.train import build_data

    with pytest.raises(FileNotFoundError, match=f"(?s)Fashion-MNIST train files not found.*{tmp_path}"):
        build_data(TINY["reconstruction"].replace(data_options={"root": str(tmp_path)}))
