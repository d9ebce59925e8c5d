"""Adobe Image Matting / Composition-1K loaders and the A2U pipeline pieces, on tiny datasets in the real layout."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

pytest.importorskip("PIL")

from fade.data.adobe_matting import (  # noqa: E402
    AdobeMattingTrain,
    Composition1K,
    affine_matrix,
    random_trimap,
    unknown_centred_crop,
    warp_nearest,
)
from fade.data.fixtures import write_adobe_matting, write_image  # noqa: E402
from fade.data.transforms import (  # noqa: E402
    IMAGENET_MEAN_255,
    IMAGENET_STD_255,
    DataError,
    ellipse_kernel,
    erode,
    pad_to_multiple,
    predict_padded,
)
from fade.train.tasks import MattingTask  # noqa: E402


class ScriptedIntegers:
    """A Generator stand-in whose ``integers`` returns scripted values."""

    def __init__(self, values):
        self.values = list(values)

    def integers(self, *args):
        return self.values.pop(0)


@pytest.fixture
def adobe(tmp_path) -> Path:
    return write_adobe_matting(tmp_path)


def read(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path))


# ------------------------------------------------------------------------------- morphology


def test_ellipse_kernels_match_opencv_by_hand():
    np.testing.assert_array_equal(ellipse_kernel(1), [[1]])
    np.testing.assert_array_equal(ellipse_kernel(3), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    np.testing.assert_array_equal(ellipse_kernel(4), [[0, 0, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    np.testing.assert_array_equal(
        ellipse_kernel(5),
        [[0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]],
    )
    seven = ellipse_kernel(7)  # rows dx = round(3 sqrt(1 - dy^2 / 9)): 0, 2, 3, 3, 3, 2, 0
    np.testing.assert_array_equal(seven.sum(axis=1), [1, 5, 7, 7, 7, 5, 1])


def naive_erode(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """out[y, x] = AND of mask[y + i - ay, x + j - ax] over kernel[i, j], out-of-image terms ignored."""
    ay, ax = kernel.shape[0] // 2, kernel.shape[1] // 2
    out = np.ones(mask.shape, dtype=bool)
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            for i, j in zip(*np.nonzero(kernel)):
                yy, xx = y + i - ay, x + j - ax
                if 0 <= yy < mask.shape[0] and 0 <= xx < mask.shape[1] and not mask[yy, xx]:
                    out[y, x] = False
    return out


@pytest.mark.parametrize("size", [1, 3, 4, 6, 9])
def test_erode_matches_the_naive_loop(size):
    mask = np.random.default_rng(size).random((13, 17)) < 0.8
    mask[4:10, 5:14] = True
    kernel = ellipse_kernel(size)
    np.testing.assert_array_equal(erode(mask, kernel), naive_erode(mask, kernel))


def test_random_trimap_on_a_hand_made_alpha():
    alpha = np.zeros((12, 12), dtype=np.float32)
    alpha[3:9, 3:9] = 0.5
    alpha[4:8, 4:8] = 1.0
    alpha[4, 4] = 1 - 1e-6  # counts as foreground: alpha + 1e-5 >= 1
    alpha[0, 0] = 1e-6  # counts as background
    trimap = random_trimap(ScriptedIntegers([1, 3]), alpha)  # fg kernel 1 (no erosion), bg kernel 3 (cross)
    expected = np.zeros((12, 12), dtype=np.uint8)
    expected[3:9, 3:9] = 128
    expected[4:8, 4:8] = 255
    # background pixels with a 4-neighbour of the ring become unknown (cross erosion)
    expected[2, 3:9] = expected[9, 3:9] = expected[3:9, 2] = expected[3:9, 9] = 128
    np.testing.assert_array_equal(trimap, expected)


# --------------------------------------------------------------------------------- geometry


def test_unknown_centred_crop_centres_an_unknown_pixel():
    trimap = np.zeros((20, 24), dtype=np.uint8)
    trimap[10:13, 6:10] = 128  # 12 unknown pixels, all inside the inner region for crop 8 (margin 4)
    trimap[0, 0] = 128  # outside the inner region: never a centre
    for seed in range(20):
        top, left = unknown_centred_crop(np.random.default_rng(seed), trimap, (8, 8))
        assert trimap[top + 4, left + 4] == 128 and (top + 4, left + 4) != (0, 0)
        assert 0 <= top <= 12 and 0 <= left <= 16


def test_unknown_centred_crop_with_few_or_no_unknown_pixels():
    trimap = np.zeros((20, 24), dtype=np.uint8)
    assert unknown_centred_crop(np.random.default_rng(0), trimap, (8, 8)) is None
    trimap[10, 10:15] = 128  # 5 < 10 unknown pixels: a uniform crop anywhere
    corners = {unknown_centred_crop(np.random.default_rng(seed), trimap, (8, 8)) for seed in range(40)}
    assert all(0 <= top <= 12 and 0 <= left <= 16 for top, left in corners)
    assert len(corners) > 5


def test_affine_identity_flip_and_scale_by_hand():
    np.testing.assert_allclose(affine_matrix((2.5, 1.5), 0.0, (1.0, 1.0), 0.0, (1, 1)), [[1, 0, 0], [0, 1, 0]])
    row = np.array([[1, 2, 3, 4]], dtype=np.uint8)
    # flip about x = cols / 2 + 0.5 = 2.5 (A2U / GCA's centre): x_src = 5 - x
    flipped = warp_nearest(row, affine_matrix((2.5, 1.0), 0.0, (1.0, 1.0), 0.0, (-1, 1)))
    np.testing.assert_array_equal(flipped, [[0, 0, 4, 3]])
    # scale 2 about x = 2.5: x_src = (x - 2.5) / 2 + 2.5, rounded half up
    scaled = warp_nearest(row, affine_matrix((2.5, 1.0), 0.0, (2.0, 1.0), 0.0, (1, 1)))
    np.testing.assert_array_equal(scaled, [[2, 3, 3, 4]])


def test_pad_to_multiple_and_crop_back():
    x = torch.arange(2 * 37 * 45, dtype=torch.float32).reshape(1, 2, 37, 45)
    padded = pad_to_multiple(x, 32)
    assert padded.shape == (1, 2, 64, 64)
    torch.testing.assert_close(padded[..., :37, :45], x)
    torch.testing.assert_close(padded[..., 37, :45], x[..., 35, :])  # reflect: the edge row is not repeated
    torch.testing.assert_close(padded[..., :37, 45], x[..., :, 43])
    assert pad_to_multiple(x[..., :32, :32], 32).shape[-2:] == (32, 32)

    class Checked(nn.Module):
        def forward(self, inputs):
            assert inputs.shape[-2] % 32 == 0 and inputs.shape[-1] % 32 == 0
            return inputs[:, :1] * 2

    torch.testing.assert_close(predict_padded(Checked(), x, 32), x[:, :1] * 2)
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(x, 0)


# ---------------------------------------------------------------------------------- training


def denormalise(image: torch.Tensor) -> torch.Tensor:
    return image * torch.tensor(IMAGENET_STD_255).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN_255).view(3, 1, 1)


def test_training_samples_are_consistent_composites(adobe):
    dataset = AdobeMattingTrain(adobe.parent, crop_size=(32, 32), seed=1)
    assert len(dataset) == 10  # one sample per background name, as A2U
    for index in range(len(dataset)):
        sample = dataset[index]
        assert {k: tuple(v.shape) for k, v in sample.items()} == {
            "input": (4, 32, 32), "image": (3, 32, 32), "trimap": (1, 32, 32),
            "alpha": (1, 32, 32), "fg": (3, 32, 32), "bg": (3, 32, 32),
        }
        alpha, trimap = sample["alpha"], sample["trimap"]
        composite = sample["fg"] * alpha + sample["bg"] * (1 - alpha)
        torch.testing.assert_close(denormalise(sample["image"]) / 255, composite, atol=1e-4, rtol=0)
        torch.testing.assert_close(sample["input"][:3], sample["image"])
        torch.testing.assert_close(sample["input"][3:], trimap.float() / 255)
        assert set(trimap.unique().tolist()) <= {0, 128, 255}
        # the trimap rule: foreground where alpha + 1e-5 >= 1, background where alpha <= 1e-5 (before erosion)
        assert (alpha[trimap == 255] >= 1 - 1e-5).all() and (alpha[trimap == 0] <= 1e-5).all()
        assert 0 <= sample["fg"].min() and sample["fg"].max() <= 1 and 0 <= sample["bg"].min() and sample["bg"].max() <= 1


def test_training_samples_are_reproducible_and_vary_with_epoch(adobe):
    dataset = AdobeMattingTrain(adobe, crop_size=(32, 32))
    first, again, later = dataset[3], dataset[3], dataset[(3, 2)]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["image"], later["image"])


@pytest.mark.parametrize("side", [2, 9, 100])
def test_any_crop_size_including_ones_larger_than_the_images(adobe, side):
    dataset = AdobeMattingTrain(adobe, crop_size=(side, side))
    for key in ((0, 0), (4, 1), (7, 2)):
        assert all(value.shape[-2:] == (side, side) for value in dataset[key].values())


def test_big_foregrounds_get_trimaps_with_known_regions(tmp_path):
    root = write_adobe_matting(tmp_path, train_sizes=((160, 200),), backgrounds=2, seed=4)
    dataset = AdobeMattingTrain(root, crop_size=(64, 64))
    trimaps = [dataset[i]["trimap"] for i in range(len(dataset))]
    assert any((t == 128).any() for t in trimaps)
    assert any(((t == 0) | (t == 255)).any() for t in trimaps)


# ------------------------------------------------------------------------------- evaluation


def test_composition1k_samples_are_the_files(adobe):
    dataset = Composition1K(adobe.parent)
    assert len(dataset) == 4
    merged = sorted((adobe / "Test_set" / "merged").iterdir())
    for index, path in enumerate(merged):
        sample = dataset[index]
        stem = path.stem.rsplit("_", 1)[0]
        np.testing.assert_allclose(sample["alpha"][0].numpy(), read(adobe / "Test_set" / "alpha" / f"{stem}.png") / 255.0, atol=1e-7)
        np.testing.assert_array_equal(sample["trimap"][0].numpy(), read(adobe / "Test_set" / "trimaps" / path.name))
        torch.testing.assert_close(denormalise(sample["image"]), torch.from_numpy(read(path)).permute(2, 0, 1).float(), atol=1e-4, rtol=0)


def test_composition1k_testset_layout_with_alpha_copy(adobe, tmp_path):
    testset = tmp_path / "Composition-1k-testset"
    shutil.copytree(adobe / "Test_set" / "merged", testset / "merged")
    shutil.copytree(adobe / "Test_set" / "trimaps", testset / "trimaps")
    for path in sorted((testset / "merged").iterdir()):
        stem = path.stem.rsplit("_", 1)[0]
        write_image(testset / "alpha_copy" / path.name, read(adobe / "Test_set" / "alpha" / f"{stem}.png"))
    dataset = Composition1K(testset)
    torch.testing.assert_close(dataset[2]["alpha"], Composition1K(adobe)[2]["alpha"])


class HalfEverywhere(nn.Module):
    """Predicts alpha 0.5 everywhere through :func:`predict_padded` (its inner net needs sides % 32 == 0)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        def inner(padded):
            assert padded.shape[-2] % 32 == 0 and padded.shape[-1] % 32 == 0
            return torch.full((padded.shape[0], 1, *padded.shape[-2:]), 0.5)

        return predict_padded(inner, x, 32)


def test_evaluation_loop_sad_and_mse_by_hand(adobe):
    dataset = Composition1K(adobe)
    metrics = MattingTask().evaluate(HalfEverywhere(), DataLoader(dataset, batch_size=1), torch.device("cpu"))
    sads, mses = [], []
    for path in sorted((adobe / "Test_set" / "merged").iterdir()):
        gt = read(adobe / "Test_set" / "alpha" / f"{path.stem.rsplit('_', 1)[0]}.png") / 255.0
        unknown = read(adobe / "Test_set" / "trimaps" / path.name) == 128
        sads.append(np.abs(0.5 - gt)[unknown].sum() / 1000)
        mses.append(((0.5 - gt) ** 2)[unknown].sum() / unknown.sum())
    assert metrics["sad"] == pytest.approx(np.mean(sads), rel=1e-6)
    assert metrics["mse"] == pytest.approx(np.mean(mses), rel=1e-6)
    assert metrics["grad"] > 0 and metrics["conn"] > 0


# ----------------------------------------------------------------------------------- errors


def test_layout_errors_name_the_path(tmp_path, adobe):
    with pytest.raises(DataError, match="no such folder"):
        AdobeMattingTrain(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=rf"{empty / 'Training_set'}: expected the Training_set folder"):
        AdobeMattingTrain(empty)
    (adobe / "Training_set" / "alpha" / "fg_001.jpg").unlink()
    with pytest.raises(DataError, match=rf"{adobe / 'Training_set' / 'alpha' / 'fg_001.jpg'}: expected the alpha mattes"):
        AdobeMattingTrain(adobe)
    (adobe / "Training_set" / "training_bg_names.txt").unlink()
    with pytest.raises(DataError, match="training_bg_names.txt: expected a list of file names"):
        AdobeMattingTrain(adobe)


def test_bad_training_files_are_named_when_read(adobe):
    dataset = AdobeMattingTrain(adobe, crop_size=(32, 32))
    alpha_path = adobe / "Training_set" / "alpha" / "fg_000.jpg"
    write_image(alpha_path, np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match=rf"{alpha_path}: expected an alpha matte of its foreground's size \(48, 64\), found size \(10, 10\)"):
        dataset.load_foreground(0)
    fg_path = adobe / "Training_set" / "fg" / "fg_000.jpg"
    fg_path.write_bytes(b"garbage")
    with pytest.raises(DataError, match=rf"{fg_path}: expected a readable image, found a corrupt"):
        dataset[0]


def test_bad_test_files_are_named(adobe):
    trimap = sorted((adobe / "Test_set" / "trimaps").iterdir())[0]
    values = read(trimap)
    values[0, 0] = 77
    write_image(trimap, values)
    with pytest.raises(DataError, match=rf"{trimap}: expected trimap values 0, 128 and 255 only, found the value 77"):
        Composition1K(adobe)[0]
    write_image(trimap, values[:10])
    with pytest.raises(DataError, match=rf"{trimap}: expected a trimap of its image's size"):
        Composition1K(adobe)[0]
    trimap.unlink()
    with pytest.raises(DataError, match=rf"{trimap}: expected the trimaps"):
        Composition1K(adobe)
    write_image(trimap, np.zeros_like(values))
    merged = sorted((adobe / "Test_set" / "merged").iterdir())[2]  # test_001_0, the first composite of test_001
    alpha = adobe / "Test_set" / "alpha" / f"{merged.stem.rsplit('_', 1)[0]}.png"
    alpha.unlink()
    with pytest.raises(DataError, match=rf"{alpha}: expected the alpha matte of {merged}, found no such file"):
        Composition1K(adobe)


def test_bad_arguments(adobe):
    with pytest.raises(ValueError, match="crop_size"):
        AdobeMattingTrain(adobe, crop_size=(32, 48))
    with pytest.raises(ValueError, match="seed"):
        AdobeMattingTrain(adobe, seed=-1)
    with pytest.raises(ValueError, match=r"crop_size: expected \(S, S\) of two integers in \[2, 32768\]"):
        AdobeMattingTrain(adobe, crop_size=(2**40, 2**40))
    with pytest.raises(TypeError, match="seed: expected an integer >= 0, got NoneType None"):
        AdobeMattingTrain(adobe, seed=None)
    with pytest.raises(TypeError, match=r"data_dir: expected a path \(str or os.PathLike\), got NoneType"):
        AdobeMattingTrain(None)
    with pytest.raises(IndexError):
        AdobeMattingTrain(adobe)[10]


def test_a_name_list_that_is_not_text_names_the_file(adobe):
    """Random bytes in training_fg_names.txt: a DataError naming it (was a bare UnicodeDecodeError)."""
    names = adobe / "Training_set" / "training_fg_names.txt"
    names.write_bytes(b"\xa5\xff\x00binary")
    with pytest.raises(DataError, match=rf"{names}: expected a list of file names, one per line, found bytes that are not"):
        AdobeMattingTrain(adobe)
