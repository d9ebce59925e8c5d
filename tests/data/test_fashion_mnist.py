import shutil

import numpy as np
import pytest
import torch

from fade.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, FashionMNIST, find_fashion_mnist, load_fashion_mnist
from fade.data import fashion_mnist as fm

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # where the Debian package installs the files


@pytest.fixture(scope="module")
def train():
    return load_fashion_mnist(SYSTEM_DIR, "train")


def test_real_train_split(train):
    images, labels = train
    assert images.shape == (60_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60_000,)
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(labels, minlength=10).tolist() == [6_000] * 10


def test_real_train_pixel_statistics(train):
    counts = np.bincount(train[0].ravel(), minlength=256).astype(np.float64)
    values = np.arange(256) / 255.0
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())
    assert abs(mean - 0.2860) < 1e-3 and abs(std - 0.3530) < 1e-3
    assert abs(mean - FASHION_MNIST_MEAN) < 1e-3 and abs(std - FASHION_MNIST_STD) < 1e-3


def test_real_test_split():
    images, labels = load_fashion_mnist(SYSTEM_DIR, "test")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [1_000] * 10


def test_default_search_finds_debian_files(monkeypatch):
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    images_path, labels_path = find_fashion_mnist(split="test")
    assert str(images_path) == f"{SYSTEM_DIR}/t10k-images-idx3-ubyte.gz"
    assert str(labels_path) == f"{SYSTEM_DIR}/t10k-labels-idx1-ubyte.gz"


def test_dataset_items(train):
    ds = FashionMNIST(SYSTEM_DIR, "train")
    raw = FashionMNIST(SYSTEM_DIR, "train", normalize=False)
    assert len(ds) == 60_000
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label == 9
    expected = torch.from_numpy(train[0][0].astype(np.float32) / 255.0)[None]
    torch.testing.assert_close(raw[0][0], expected)
    torch.testing.assert_close(image, (expected - 0.2860) / 0.3530)


@pytest.mark.parametrize("gz", [False, True])
def test_files_directly_in_root(tmp_path, fake_fashion_mnist, gz):
    arrays = fake_fashion_mnist(tmp_path, gz=gz)
    for split in ("train", "test"):
        images, labels = load_fashion_mnist(tmp_path, split)
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])
    ds = FashionMNIST(tmp_path, "test", normalize=False)
    assert len(ds) == 3 and ds[2][1] == int(arrays["test"][1][2])


def test_torchvision_layout(tmp_path, fake_fashion_mnist):
    arrays = fake_fashion_mnist(tmp_path / "FashionMNIST" / "raw")
    images, labels = load_fashion_mnist(tmp_path, "train")
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(labels, arrays["train"][1])


def test_dpkg_extracted_tree_via_env(tmp_path, fake_fashion_mnist, monkeypatch):
    arrays = fake_fashion_mnist(tmp_path / "usr/share/datasets/fashion-mnist", gz=True, seed=3)
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    images, _ = load_fashion_mnist(split="test")
    np.testing.assert_array_equal(images, arrays["test"][0])
    assert len(FashionMNIST(split="train")) == 7  # the env directory wins over the system one


def test_missing_dataset_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        FashionMNIST(tmp_path, "train")
    message = str(info.value)
    assert "train-images-idx3-ubyte[.gz]" in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb DIR" in message
    searched = [line.strip() for line in message.splitlines() if line.startswith("  ")]
    assert searched == [  # an explicit root is the only place searched
        str(tmp_path / "."),
        str(tmp_path / "FashionMNIST" / "raw"),
        str(tmp_path / "usr/share/datasets/fashion-mnist"),
    ]


def test_missing_everywhere_lists_env_and_system(tmp_path, monkeypatch):
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "system")
    with pytest.raises(FileNotFoundError, match=r"(?s)t10k-labels.*env.*system.*apt-get install dataset-fashion-mnist"):
        find_fashion_mnist(split="test")


def test_half_a_split_is_missing(tmp_path, fake_fashion_mnist):
    fake_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    assert len(load_fashion_mnist(tmp_path, "train")[0]) == 7
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path, "test")


def test_truncated_copy_of_real_file_names_it(tmp_path):
    shutil.copy(f"{SYSTEM_DIR}/t10k-labels-idx1-ubyte.gz", tmp_path)
    real = (tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(real[: len(real) - 1000])
    shutil.copy(f"{SYSTEM_DIR}/t10k-images-idx3-ubyte.gz", tmp_path)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: expected a complete gzip stream"):
        FashionMNIST(tmp_path, "test")


def test_corrupt_magic_in_split_names_it(tmp_path, fake_fashion_mnist):
    fake_fashion_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34" + path.read_bytes()[2:])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: expected an idx magic number"):
        FashionMNIST(tmp_path, "train")


def test_inconsistent_split_rejected(tmp_path, write_idx):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected uint8 labels of shape \(3,\).*got uint8 \(4,\)"):
        load_fashion_mnist(tmp_path, "test")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(3, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected labels in 0..9, got 10"):
        load_fashion_mnist(tmp_path, "test")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 27), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, 28, 28\), got uint8 \(3, 28, 27\)"):
        load_fashion_mnist(tmp_path, "test")


def test_bad_split():
    with pytest.raises(ValueError, match="split: expected 'train' or 'test', got 'val'"):
        FashionMNIST(SYSTEM_DIR, "val")
    with pytest.raises(ValueError, match=r"split: expected 'train' or 'test', got \['test'\]"):
        FashionMNIST(SYSTEM_DIR, ["test"])


def test_bad_root_normalize_and_index():
    with pytest.raises(TypeError, match=r"root: expected a path \(str or os.PathLike\), got int 5"):
        FashionMNIST(5, "test")
    with pytest.raises(TypeError, match="normalize: expected True or False, got str 'yes'"):
        FashionMNIST(SYSTEM_DIR, "test", normalize="yes")
    dataset = FashionMNIST(SYSTEM_DIR, "test")
    for index in (-1, 10_000, 1.5, "0", None, True):
        with pytest.raises(IndexError, match=r"index: expected an integer in \[0, 10000\), got "):
            dataset[index]
    assert torch.equal(dataset[np.int64(3)][0], dataset[torch.tensor(3)][0])
