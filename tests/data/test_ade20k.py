"""ADE20K loader and the mmseg pipeline pieces, on tiny datasets written in the real layout."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

pytest.importorskip("PIL")

from fade.data.ade20k import ADE20K, IGNORE_INDEX, find_ade20k, list_ade20k, reduce_zero_label  # noqa: E402
from fade.data.fixtures import write_ade20k, write_image  # noqa: E402
from fade.data.transforms import (  # noqa: E402
    DataError,
    aligned_size,
    cat_max_ratio_crop,
    hsv_to_rgb_u8,
    normalize_to_tensor,
    photometric_distortion,
    random_ratio_scale,
    rescale_size,
    resize,
    rgb_to_hsv_u8,
)
from fade.train.tasks import SegmentationTask  # noqa: E402


class ScriptedRng:
    """Stands in for numpy's Generator: returns scripted values, records the calls."""

    def __init__(self, random=(), integers=(), uniform=()):
        self.queues = {"random": list(random), "integers": list(integers), "uniform": list(uniform)}
        self.calls = []

    def _next(self, name, args):
        self.calls.append((name, args))
        return self.queues[name].pop(0)

    def random(self, *args):
        return self._next("random", args)

    def integers(self, *args):
        return self._next("integers", args)

    def uniform(self, *args):
        return self._next("uniform", args)


@pytest.fixture
def ade(tmp_path) -> Path:
    return write_ade20k(tmp_path)


def raw_labels(root: Path, split: str, index: int) -> np.ndarray:
    from PIL import Image

    folder = {"train": "training", "val": "validation"}[split]
    return np.array(Image.open(sorted((root / "annotations" / folder).iterdir())[index]))


# ------------------------------------------------------------------------------------ labels


def test_reduce_zero_label_by_hand():
    raw = np.array([[0, 1, 150], [2, 0, 5]], dtype=np.uint8)
    np.testing.assert_array_equal(reduce_zero_label(raw), [[255, 0, 149], [1, 255, 4]])


def test_samples_carry_the_shifted_labels(ade):
    dataset = ADE20K(ade.parent, "val", scale=(128, 32))
    for index in range(len(dataset)):
        raw = raw_labels(ade, "val", index).astype(np.int64)
        expected = np.where(raw == 0, 255, raw - 1)
        np.testing.assert_array_equal(dataset[index]["label"].numpy(), expected)


# ------------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("size", "scale", "expected"),
    [
        ((375, 500), (2048, 512), (512, 683)),  # short side bound: 512/375
        ((100, 1000), (2048, 512), (205, 2048)),  # long side bound: 2.048
        ((512, 512), (2048, 512), (512, 512)),
        ((44, 60), (128, 32), (32, 44)),  # int(60 * 32/44 + 0.5) = int(44.14)
    ],
)
def test_rescale_size_by_hand(size, scale, expected):
    assert rescale_size(*size, scale) == expected


def test_aligned_size_rounds_up():
    assert aligned_size(512, 683, 32) == (512, 704)
    assert aligned_size(205, 2048, 32) == (224, 2048)
    assert aligned_size(32, 44, 32) == (32, 64)


def test_random_ratio_scale_by_hand():
    rng = ScriptedRng(random=[0.5])
    # ratio = 0.5 * (2.0 - 0.5) + 0.5 = 1.25
    assert random_ratio_scale(rng, (2048, 512), (0.5, 2.0)) == (2560, 640)


def test_resize_nearest_takes_floor_of_scaled_index():
    label = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    # 3 -> 5 columns: source column floor(x * 3/5) = 0, 0, 1, 1, 2; rows 2 -> 3: 0, 0, 1
    expected = np.array([[1, 1, 2, 2, 3], [1, 1, 2, 2, 3], [4, 4, 5, 5, 6]])
    np.testing.assert_array_equal(resize(label, (3, 5), "nearest"), expected)


def test_resize_bilinear_uses_half_pixel_centres():
    row = np.array([[0.0, 100.0]], dtype=np.float32)
    # 2 -> 4 columns, centres at (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_allclose(resize(row, (1, 4), "bilinear"), [[0.0, 25.0, 75.0, 100.0]], atol=1e-5)


def test_eval_sample_sizes(ade):
    dataset = ADE20K(ade, "val", scale=(128, 32))
    sample = dataset[0]  # (44, 60) -> rescale (32, 44) -> aligned (32, 64)
    assert sample["image"].shape == (3, 32, 64)
    assert sample["label"].shape == (44, 60)
    assert dataset[1]["image"].shape == (3, 64, 32)  # (37, 29): factor 32/29 -> (41, 32) -> (64, 32)
    assert dataset[1]["label"].shape == (37, 29)


# ------------------------------------------------------------------------------- random crop


def test_cat_max_ratio_is_strict_and_retries():
    label = np.zeros((8, 8), dtype=np.uint8)
    label[:, 4:] = 2
    label[:, :4] = 1
    # windows 8x4: x = 0 all class 1 (rejected), x = 1 shares 3:1 = 0.75 (not < 0.75), x = 2 half-half
    rng = ScriptedRng(integers=[0, 0, 0, 1, 0, 2])
    assert cat_max_ratio_crop(rng, label, (8, 4), 0.75) == (0, 2)
    assert len(rng.calls) == 6


def test_cat_max_ratio_gives_up_after_ten_checks_with_the_last_draw():
    label = np.full((6, 6), 7, dtype=np.uint8)
    offsets = [v for k in range(11) for v in (k % 3, (k + 1) % 3)]
    rng = ScriptedRng(integers=offsets)
    assert cat_max_ratio_crop(rng, label, (4, 4), 0.75) == (offsets[20], offsets[21])
    assert len(rng.calls) == 22


def test_cat_max_ratio_ignores_the_ignore_label():
    label = np.full((4, 4), IGNORE_INDEX, dtype=np.uint8)
    label[0, :] = [1, 1, 1, 1]
    label[1, :] = [1, 1, 2, 2]  # classes 6:2 -> 0.75, rejected
    rng = ScriptedRng(integers=[0, 0] * 11)
    assert cat_max_ratio_crop(rng, label, (4, 4), 0.75) == (0, 0)
    assert len(rng.calls) == 22
    label[1, :] = [1, 2, 2, 2]  # 5:3 -> 0.625, accepted at once
    rng = ScriptedRng(integers=[0, 0])
    assert cat_max_ratio_crop(rng, label, (4, 4), 0.75) == (0, 0)
    assert len(rng.calls) == 2
    only_one = np.full((4, 4), IGNORE_INDEX, dtype=np.uint8)
    only_one[0, 0] = 3  # one class among non-ignored pixels: rejected
    rng = ScriptedRng(integers=[0, 0] * 11)
    cat_max_ratio_crop(rng, only_one, (4, 4), 0.75)
    assert len(rng.calls) == 22


def test_cat_max_ratio_one_draws_once():
    rng = ScriptedRng(integers=[1, 2])
    assert cat_max_ratio_crop(rng, np.zeros((5, 6), np.uint8), (2, 2), 1.0) == (1, 2)


# ------------------------------------------------------------------------------- photometric


def test_brightness_adds_clips_and_truncates():
    image = np.array([[[250, 3, 100]]], dtype=np.uint8)
    # brightness on (+10.7); mode 0; saturation off; hue off; contrast (mode 0, last) off
    rng = ScriptedRng(integers=[1, 0, 0, 0, 0], uniform=[10.7])
    np.testing.assert_array_equal(photometric_distortion(rng, image), [[[255, 13, 110]]])


def test_contrast_comes_first_in_mode_one():
    image = np.array([[[100, 200, 50]]], dtype=np.uint8)
    # brightness off; mode 1; contrast on x1.5 (first); saturation off; hue off
    rng = ScriptedRng(integers=[0, 1, 1, 0, 0], uniform=[1.5])
    np.testing.assert_array_equal(photometric_distortion(rng, image), [[[150, 255, 75]]])
    assert [c[0] for c in rng.calls] == ["integers", "integers", "integers", "uniform", "integers", "integers"]


def test_hue_shift_and_hsv_conversions_by_hand():
    primaries = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(
        rgb_to_hsv_u8(primaries), [[[0, 255, 255], [60, 255, 255], [120, 255, 255], [0, 0, 255]]]
    )
    np.testing.assert_array_equal(hsv_to_rgb_u8(rgb_to_hsv_u8(primaries)), primaries)
    # hue +60 (120 degrees): red -> green, green -> blue, blue -> red (mod 180); white unchanged
    rng = ScriptedRng(integers=[0, 0, 0, 1, 60, 0])
    shifted = photometric_distortion(rng, primaries)
    np.testing.assert_array_equal(shifted, [[[0, 255, 0], [0, 0, 255], [255, 0, 0], [255, 255, 255]]])


def test_hsv_round_trip_within_the_quantisation():
    rgb = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    error = np.abs(hsv_to_rgb_u8(rgb_to_hsv_u8(rgb)).astype(int) - rgb).max(axis=-1)
    # hue is stored in 2-degree steps: half a step moves a channel by (max - min) / 60, plus rounding
    spread = rgb.max(axis=-1).astype(int) - rgb.min(axis=-1)
    assert (error <= spread / 60 + 1.5).all()
    assert error.max() >= 2  # the bound is not vacuous: 8-bit HSV does lose levels


def test_normalisation_constants():
    image = np.full((2, 3, 3), (200, 100, 50), dtype=np.uint8)
    expected = [(200 - 123.675) / 58.395, (100 - 116.28) / 57.12, (50 - 103.53) / 57.375]
    out = normalize_to_tensor(image)
    assert out.shape == (3, 2, 3)
    np.testing.assert_allclose(out[:, 1, 2].numpy(), expected, rtol=1e-6)


# ------------------------------------------------------------------------------ train pipeline


def test_train_flip_moves_image_and_labels_together(ade):
    dataset = ADE20K(ade, "train", crop_size=(24, 24), scale=(64, 16), cat_max_ratio=1.0)
    image, label = dataset.load(0)  # (40, 56)
    for flip_draw, flipped in ((0.2, True), (0.8, False)):
        # ratio draw 0.5 -> 1.25 -> scale (80, 20); crop at (0, 3); flip; no photometric step
        rng = ScriptedRng(random=[0.5, flip_draw], integers=[0, 3, 0, 0, 0, 0, 0])
        sample = dataset.train_transform(rng, image, label)
        size = rescale_size(40, 56, (80, 20))  # (20, 28): factor min(80/56, 20/40) = 0.5
        assert size == (20, 28)
        expected_label = resize(label, size, "nearest")[:, 3:27]
        expected_image = resize(image, size, "bilinear")[:, 3:27]
        if flipped:
            expected_label, expected_image = expected_label[:, ::-1], expected_image[:, ::-1]
        got_label = sample["label"].numpy()
        np.testing.assert_array_equal(got_label[:20, :24], expected_label)
        np.testing.assert_allclose(
            sample["image"][:, :20, :24].numpy(), normalize_to_tensor(expected_image.copy()).numpy(), atol=1e-6
        )
        # padding to the crop size: label 255, image 0 (after normalisation)
        assert (got_label[20:] == IGNORE_INDEX).all() and (sample["image"][:, 20:] == 0).all()


def test_train_samples_are_reproducible_and_vary_with_epoch(ade):
    dataset = ADE20K(ade, "train", crop_size=(16, 16), scale=(64, 16), seed=3)
    first, again, other = dataset[1], dataset[1], dataset[(1, 1)]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["label"], again["label"])
    assert not torch.equal(first["image"], other["image"])
    assert first["image"].dtype == torch.float32 and first["label"].dtype == torch.int64
    assert first["image"].shape == (3, 16, 16)
    valid = first["label"][first["label"] != IGNORE_INDEX]
    assert ((valid >= 0) & (valid < 150)).all()


def test_small_images_are_padded_to_the_crop(ade):
    # scale (16, 8) x ratio <= 2: short side <= 16, long side <= 32: rows and columns >= 32 are padding
    dataset = ADE20K(ade, "train", crop_size=(40, 40), scale=(16, 8))
    for index in range(len(dataset)):
        sample = dataset[index]
        assert (sample["label"][32:] == IGNORE_INDEX).all() and (sample["label"][:, 32:] == IGNORE_INDEX).all()
        assert (sample["image"][:, 32:] == 0).all() and (sample["image"][:, :, 32:] == 0).all()


# ------------------------------------------------------------------------------- evaluation


class ConstantClass(nn.Module):
    """Predicts class ``c`` everywhere; asserts the input sides are multiples of 32."""

    def __init__(self, classes: int, c: int):
        super().__init__()
        self.classes, self.c = classes, c
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image):
        assert image.shape[-2] % 32 == 0 and image.shape[-1] % 32 == 0
        logits = torch.zeros(image.shape[0], self.classes, *image.shape[-2:])
        logits[:, self.c] = 1.0
        return logits


def test_evaluation_loop_mean_iou_by_hand(tmp_path):
    root = write_ade20k(tmp_path, {"training": [(20, 20)], "validation": [(44, 60), (37, 29), (50, 41)]}, seed=5)
    dataset = ADE20K(root, "val", scale=(128, 32))
    labels = [np.where(raw == 0, 255, raw.astype(np.int64) - 1) for raw in (raw_labels(root, "val", i) for i in range(3))]
    c = int(labels[0][0, 0])
    metrics = SegmentationTask().evaluate(ConstantClass(150, c), DataLoader(dataset, batch_size=1), torch.device("cpu"))
    valid = sum(int((lab != 255).sum()) for lab in labels)
    hits = sum(int((lab == c).sum()) for lab in labels)
    present = set().union(*(set(np.unique(lab[lab != 255]).tolist()) for lab in labels)) | {c}
    # class c: TP = hits, union = every valid pixel; every other present class: IoU 0
    assert metrics["miou"] == pytest.approx(hits / valid / len(present), abs=1e-12)
    assert metrics["pixel_accuracy"] == pytest.approx(hits / valid, abs=1e-12)


# ----------------------------------------------------------------------------------- errors


def test_layout_errors_name_the_first_missing_path(tmp_path, ade):
    with pytest.raises(DataError, match="no such folder"):
        find_ade20k(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=str(empty / "images")):
        ADE20K(empty)
    import shutil

    shutil.rmtree(ade / "annotations" / "validation")
    with pytest.raises(DataError, match=str(ade / "annotations" / "validation")):
        ADE20K(ade, "val")


def test_image_without_annotation_and_annotation_without_image(ade):
    first = sorted((ade / "annotations" / "training").iterdir())[0]
    first.unlink()
    with pytest.raises(DataError, match=rf"{first}: expected the annotation of .*no such file"):
        list_ade20k(ade, "train")
    write_image(first, np.zeros((40, 56), np.uint8))
    stray = ade / "annotations" / "training" / "ADE_train_99999999.png"
    write_image(stray, np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=rf"{stray}: .*annotation without image"):
        list_ade20k(ade, "train")
    stray.unlink()
    other = ade / "images" / "training" / "notes.txt"
    other.write_text("x")
    with pytest.raises(DataError, match=rf"{other}: expected only \.jpg files"):
        list_ade20k(ade, "train")


def test_bad_samples_are_named_when_read(ade):
    dataset = ADE20K(ade, "train", crop_size=(16, 16), scale=(64, 16))
    image_path, label_path = dataset.files[0]
    write_image(label_path, np.ones((10, 10), np.uint8))
    with pytest.raises(DataError, match=rf"{label_path}: expected an annotation of the image's size \(40, 56\), found size \(10, 10\)"):
        dataset[0]
    write_image(label_path, np.full((40, 56), 151, np.uint8))
    with pytest.raises(DataError, match=rf"{label_path}: expected labels in 0\.\.150, found the value 151"):
        dataset[0]
    write_image(label_path, np.ones((40, 56, 3), np.uint8))
    with pytest.raises(DataError, match=rf"{label_path}: expected an 8-bit single-channel label map .*found mode RGB"):
        dataset[0]
    write_image(label_path, np.ones((40, 56), np.uint8))
    data = image_path.read_bytes()
    image_path.write_bytes(data[: len(data) // 2])  # a cut download
    with pytest.raises(DataError, match=rf"{image_path}: expected a readable image, found a corrupt"):
        dataset[0]
    image_path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=rf"{image_path}: expected a readable image, found a corrupt"):
        dataset[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "test"}, "split: expected one of train, val"),
        ({"crop_size": (0, 4)}, "crop_size"),
        ({"ratio_range": (2.0, 1.0)}, "ratio_range"),
        ({"cat_max_ratio": 0.0}, "cat_max_ratio"),
        ({"size_divisor": 0}, "size_divisor"),
        ({"seed": -1}, "seed"),
        ({"crop_size": (2**40, 2**40)}, r"crop_size: expected \(H, W\) of two integers in \[1, 32768\]"),
        ({"scale": (2**40, 512)}, r"scale: expected \(long, short\) of two integers in \[1, 32768\]"),
        ({"ratio_range": (float("nan"), 1.0)}, "ratio_range: expected a finite number, got nan"),
    ],
)
def test_bad_arguments(ade, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ADE20K(ade, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"root": None}, r"data_dir: expected a path \(str or os.PathLike\), got NoneType None"),
        ({"crop_size": "32"}, "crop_size: expected a pair of integers"),
        ({"crop_size": (32.5, 32)}, r"crop_size: expected \(H, W\) of two integers, got \(32.5, 32\)"),
        ({"ratio_range": ("a", 1)}, "ratio_range: expected a real number, got str 'a'"),
        ({"ratio_range": None}, "ratio_range: expected a pair of numbers"),
        ({"cat_max_ratio": "x"}, "cat_max_ratio: expected a real number, got str 'x'"),
        ({"size_divisor": 2.0}, "size_divisor: expected an integer >= 1, got float 2.0"),
        ({"seed": "0"}, "seed: expected an integer >= 0, got str '0'"),
    ],
)
def test_arguments_of_the_wrong_type_are_type_errors(ade, kwargs, match):
    """Not Python's "'<' not supported between instances" from a comparison."""
    with pytest.raises(TypeError, match=match):
        ADE20K(**{"root": ade, **kwargs})


def test_index_out_of_range(ade):
    dataset = ADE20K(ade, "val")
    with pytest.raises(IndexError):
        dataset[len(dataset)]
    with pytest.raises(IndexError):
        dataset[(0, -1)]
    for key in [(0,), (0, 0, 0)]:  # were Python's unpacking ValueErrors
        with pytest.raises(IndexError, match=r"key: expected an index or an \(index, epoch\) pair, got \(0"):
            dataset[key]
