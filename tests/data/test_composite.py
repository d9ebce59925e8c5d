import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.transform import resize

from fade.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CompositeMatting,
    CompositeSegmentation,
    denormalize_image,
    load_fashion_mnist,
    normalize_image,
    trimap_from_alpha,
)

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"


def as_bytes(sample: dict) -> dict:
    return {k: v.numpy().tobytes() for k, v in sample.items()}


def reference_grey(images: np.ndarray, index: int, side: int) -> np.ndarray:
    """Bilinear (half-pixel, edge) upscaling by scikit-image, independent of torch."""
    assert side >= 28, "the reference is exact only for upscaling"
    return resize(images[index] / 255.0, (side, side), order=1, mode="edge", anti_aliasing=False)


def test_normalisation_round_trip():
    x = torch.rand(2, 3, 5, 4)
    y = normalize_image(x)
    torch.testing.assert_close(y[:, 1], (x[:, 1] - IMAGENET_MEAN[1]) / IMAGENET_STD[1])
    torch.testing.assert_close(denormalize_image(y), x)


@pytest.mark.parametrize("cls", [CompositeSegmentation, CompositeMatting])
def test_same_seed_same_bytes_in_any_order(cls):
    a = cls("test", seed=3, length=20)
    b = cls("test", seed=3, length=20)
    forward = [as_bytes(a[i]) for i in (0, 7, 19)]
    backward = [as_bytes(b[i]) for i in (19, 7, 0)][::-1]
    assert forward == backward
    other_seed = cls("test", seed=4, length=20)
    other_split = cls("train", seed=3, length=20)
    for i in (0, 7):
        assert as_bytes(other_seed[i])["image"] != forward[0 if i == 0 else 1]["image"]
        assert as_bytes(other_split[i])["image"] != forward[0 if i == 0 else 1]["image"]
    assert as_bytes(a[1])["image"] != forward[0]["image"]


def test_segmentation_labels_agree_with_items():
    ds = CompositeSegmentation("test", seed=1, length=12)
    images, labels = load_fashion_mnist(SYSTEM_DIR, "test")
    assert len(ds.labels) == 10_000  # the test split draws its items from the Fashion-MNIST test set
    for i in range(len(ds)):
        layout, sample = ds.layout(i), ds[i]
        expected_label = np.zeros(ds.size, dtype=np.int64)
        expected_image = layout.background.permute(1, 2, 0).numpy().astype(np.float64).copy()
        for item, tint in zip(layout.items, layout.tints.numpy()):
            side = item.grey.shape[-1]
            grey = reference_grey(images, item.index, side)
            np.testing.assert_allclose(item.grey.numpy(), grey, atol=1e-5)
            assert item.label == labels[item.index]
            mask = grey > ds.mask_threshold
            window = np.s_[item.top : item.top + side, item.left : item.left + side]
            expected_label[window][mask] = 1 + item.label
            expected_image[window][mask] = (0.4 + 0.6 * grey[mask][:, None]) * tint
        label = sample["label"].numpy()
        assert sample["label"].dtype == torch.int64 and label.min() >= 0 and label.max() <= 10
        assert (label == 0).any() and (label > 0).any()
        np.testing.assert_array_equal(label, expected_label)
        image = denormalize_image(sample["image"]).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(image, expected_image, atol=1e-5)


def test_segmentation_layout_ranges():
    ds = CompositeSegmentation("train", size=(96, 160), num_items=(2, 3), item_scale=(0.4, 0.6), length=30)
    counts = set()
    for i in range(len(ds)):
        layout = ds.layout(i)
        counts.add(len(layout.items))
        for item in layout.items:
            side = item.grey.shape[-1]
            assert round(0.4 * 96) <= side <= round(0.6 * 96)
            assert 0 <= item.top <= 96 - side and 0 <= item.left <= 160 - side
        assert ((layout.tints >= 0.3) & (layout.tints <= 1.0)).all()
        sample = ds[i]
        assert sample["image"].shape == (3, 96, 160) and sample["label"].shape == (96, 160)
    assert counts == {2, 3}


def test_items_not_separable_by_brightness():
    """Items and background have the same mean brightness; no brightness cut separates them well."""
    ds = CompositeSegmentation("test", seed=0, length=30)
    bins = 256
    item, back = torch.zeros(bins), torch.zeros(bins)
    for i in range(len(ds)):
        sample = ds[i]
        brightness = denormalize_image(sample["image"]).mean(0).clamp(0, 1)
        item += torch.histc(brightness[sample["label"] > 0], bins=bins, min=0, max=1)
        back += torch.histc(brightness[sample["label"] == 0], bins=bins, min=0, max=1)
    centres = (torch.arange(bins) + 0.5) / bins
    assert abs((item * centres).sum() / item.sum() - (back * centres).sum() / back.sum()) < 0.05
    # balanced accuracy of "item above the cut" (or below) for every cut between bins; 0.5 = chance
    balanced = (back.cumsum(0) / back.sum() + 1 - item.cumsum(0) / item.sum()) / 2
    assert torch.maximum(balanced, 1 - balanced).max() < 0.65


def test_matting_sample_is_a_valid_composite():
    ds = CompositeMatting("test", size=(112, 80), seed=2, length=10)
    images, _ = load_fashion_mnist(SYSTEM_DIR, "test")
    for i in range(len(ds)):
        layout, sample = ds.layout(i), ds[i]
        alpha, trimap = sample["alpha"], sample["trimap"]
        assert alpha.shape == (1, 112, 80) and alpha.dtype == torch.float32
        assert trimap.shape == (1, 112, 80) and trimap.dtype == torch.uint8
        assert alpha.min() >= 0 and alpha.max() <= 1
        # alpha is the item's grey level / 255, upscaled, at its place; zero elsewhere
        side = layout.item.grey.shape[-1]
        expected = np.zeros((112, 80))
        expected[layout.item.top : layout.item.top + side, layout.item.left : layout.item.left + side] = (
            reference_grey(images, layout.item.index, side)
        )
        np.testing.assert_allclose(alpha[0].numpy(), expected, atol=1e-5)
        assert ((alpha > 0) & (alpha < 1)).sum() > 100  # soft detail
        # the composite equation
        fg, bg = sample["fg"], sample["bg"]
        assert not torch.equal(fg, bg)
        torch.testing.assert_close(denormalize_image(sample["image"]), alpha * fg + (1 - alpha) * bg, atol=1e-5, rtol=0)
        # trimap: values, unknown covers every fractional alpha, and the 4-channel network input
        assert set(trimap.unique().tolist()) <= {0, 128, 255}
        assert (trimap[(alpha > 0) & (alpha < 1)] == 128).all()
        assert (trimap[alpha == 0][trimap[alpha == 0] == 255]).numel() == 0
        assert sample["input"].shape == (4, 112, 80)
        torch.testing.assert_close(sample["input"][:3], sample["image"])
        torch.testing.assert_close(sample["input"][3:], trimap.float() / 255)


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_trimap_matches_scipy_morphology(radius):
    rng = np.random.default_rng(radius)
    alpha = np.clip(ndimage.gaussian_filter(rng.random((40, 33)), 2) * 6 - 2.5, 0, 1)
    alpha[:, :12] = 0.0
    alpha[5:15, 5:15] = 1.0
    alpha[30:, 25:] = 1.0  # touches the border: the outside does not erode it
    footprint = np.ones((2 * radius + 1,) * 2, dtype=bool)
    unknown_or_fg = ndimage.binary_dilation(alpha > 0, footprint)
    fg = ndimage.binary_erosion(alpha >= 1, footprint, border_value=1)
    expected = np.where(fg, 255, np.where(unknown_or_fg, 128, 0))
    assert fg.any() and (expected == 128).any() and (expected == 0).any()
    got = trimap_from_alpha(torch.from_numpy(alpha).float()[None, None], radius)
    assert got.shape == (1, 1, 40, 33) and got.dtype == torch.uint8
    np.testing.assert_array_equal(got[0, 0].numpy(), expected)


def test_alpha_gain_makes_opaque_cores():
    plain = CompositeMatting("train", size=(64, 64), seed=5, length=8)
    opaque = CompositeMatting("train", size=(64, 64), seed=5, length=8, alpha_gain=2.0)
    sure = 0
    for i in range(len(plain)):
        a, b = plain[i], opaque[i]
        torch.testing.assert_close(b["alpha"], (2 * a["alpha"]).clamp(max=1), atol=1e-6, rtol=0)
        assert (b["alpha"][b["trimap"] == 255] == 1).all()
        sure += int((b["trimap"] == 255).sum())
    assert sure > 100


def test_index_protocol():
    ds = CompositeMatting("test", length=3)
    assert len(ds) == 3
    with pytest.raises(IndexError, match=r"index: expected an integer in \[0, 3\), got 3"):
        ds[3]
    assert len(list(iter(ds))) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": (0, 8)}, ValueError, r"size: expected \(H, W\) of two integers in \[1, 32768\], got \(0, 8\)"),
        ({"size": (2**20, 8)}, ValueError, r"size: expected \(H, W\) of two integers in \[1, 32768\], got \(1048576"),
        ({"size": 64}, TypeError, r"size: expected a pair of integers \(H, W\), got int 64"),
        ({"size": (64.0, 64)}, TypeError, r"size: expected \(H, W\) of two integers, got \(64.0, 64\)"),
        ({"item_scale": (0.5, 1.5)}, ValueError, r"item_scale: expected a pair .*got \(0.5, 1.5\)"),
        ({"item_scale": (0.0, 0.5)}, ValueError, r"item_scale: expected a smallest scale > 0"),
        ({"item_scale": ("a", 0.5)}, TypeError, r"item_scale: expected a real number, got str 'a'"),
        ({"item_scale": (math.nan, 0.5)}, ValueError, r"item_scale: expected a finite number, got nan"),
        ({"seed": -1}, ValueError, "seed: expected an integer >= 0, got -1"),
        ({"seed": "0"}, TypeError, "seed: expected an integer >= 0, got str '0'"),
        ({"length": 0}, ValueError, "length: expected an integer >= 1, got 0"),
        ({"length": 2**70}, ValueError, rf"length: expected an integer in \[1, {2**63 - 1}\], got {2**70}"),
        ({"length": 1.0}, TypeError, "length: expected an integer >= 1, got float 1.0"),
        ({"split": "valid"}, ValueError, "split: expected 'train' or 'test', got 'valid'"),
        ({"split": ["test"]}, ValueError, r"split: expected 'train' or 'test', got \['test'\]"),
        ({"root": 5}, TypeError, r"root: expected a path \(str or os.PathLike\), got int 5"),
    ],
)
@pytest.mark.parametrize("cls", [CompositeSegmentation, CompositeMatting])
def test_bad_arguments(cls, kwargs, error, message):
    """Wrong types are TypeErrors, values out of range (sizes past 32768 included) ValueErrors."""
    with pytest.raises(error, match=message):
        cls(**{"split": "test", **kwargs})


def test_bad_task_arguments():
    with pytest.raises(ValueError, match=r"num_items: expected integers \(min, max\) with 1 <= min <= max, got \(3, 2\)"):
        CompositeSegmentation("test", num_items=(3, 2))
    with pytest.raises(ValueError, match=r"mask_threshold: expected a value in \[0, 1\), got 1.0"):
        CompositeSegmentation("test", mask_threshold=1.0)
    with pytest.raises(ValueError, match=r"trimap_radius: expected integers \(min, max\) with 0 <= min"):
        CompositeMatting("test", trimap_radius=(-1, 2))
    with pytest.raises(ValueError, match="alpha_gain: expected a factor >= 1, got 0.5"):
        CompositeMatting("test", alpha_gain=0.5)
    with pytest.raises(TypeError, match="radius: expected an integer >= 0, got float 1.5"):
        trimap_from_alpha(torch.zeros(4, 4), 1.5)
    with pytest.raises(ValueError, match="radius: expected an integer >= 0, got -1"):
        trimap_from_alpha(torch.zeros(4, 4), -1)


def test_image_and_alpha_helpers_check_their_tensors():
    """numpy, integer or 4-channel input, or a NaN alpha (it would pass for sure foreground): clear errors."""
    with pytest.raises(TypeError, match="x: expected a torch.Tensor, got ndarray"):
        normalize_image(np.zeros((3, 4, 4)))
    with pytest.raises(TypeError, match="x: expected a floating-point tensor, got dtype torch.int64"):
        denormalize_image(torch.zeros(3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x: expected an RGB image tensor \(..., 3, H, W\), got shape \(4, 4, 4\)"):
        normalize_image(torch.zeros(4, 4, 4))
    with pytest.raises(TypeError, match="alpha: expected a torch.Tensor, got ndarray"):
        trimap_from_alpha(np.zeros((4, 4)), 1)
    alpha = torch.zeros(4, 4)
    alpha[1, 1] = math.nan
    with pytest.raises(ValueError, match=r"alpha: expected values in \[0, 1\], got NaN"):
        trimap_from_alpha(alpha, 1)
