import numpy as np
import pytest
import skimage.data
import torch

from fade.data import PHOTO_NAMES, load_photo, photo_region
from fade.data.photos import TEST_FRACTION, random_crop


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_photo_matches_skimage_and_splits_disjointly(name):
    photo = load_photo(name)
    reference = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
    if reference.ndim == 2:
        reference = np.stack([reference] * 3, axis=-1)
    assert photo.shape == (3, *reference.shape[:2]) and photo.dtype == torch.float32
    np.testing.assert_allclose(photo.permute(1, 2, 0).numpy(), reference[..., :3], atol=1e-7)
    train, test = photo_region(name, "train"), photo_region(name, "test")
    assert torch.equal(torch.cat([train, test], dim=-1), photo)
    assert abs(test.shape[-1] - TEST_FRACTION * photo.shape[-1]) <= 1


def test_unknown_photo():
    with pytest.raises(ValueError, match="photo: expected one of .*got 'eagle'"):
        load_photo("eagle")


def test_random_crop_non_square_stays_in_range():
    region = torch.linspace(0.2, 0.6, 90).expand(3, 50, 90)  # brightness encodes the column
    crops = [random_crop(np.random.default_rng(s), region, (24, 40)) for s in range(20)]
    assert all(c.shape == (3, 24, 40) for c in crops)
    assert all(c.min() >= 0.2 - 1e-6 and c.max() <= 0.6 + 1e-6 for c in crops)
    assert len({round(float(c.mean()), 4) for c in crops}) > 10  # positions and scales vary
