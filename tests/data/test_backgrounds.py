import numpy as np
import pytest
import torch

from fade.data.backgrounds import BACKGROUND_NAMES, background_region, load_background, random_background
from fade.data.photos import PHOTO_NAMES, TEST_FRACTION


def test_every_image_loads_offline_as_rgb_in_unit_range():
    assert len(BACKGROUND_NAMES) == 20 and set(PHOTO_NAMES) < set(BACKGROUND_NAMES)
    for name in BACKGROUND_NAMES:
        image = load_background(name)
        assert image.dtype == torch.float32 and image.shape[0] == 3 and min(image.shape[1:]) >= 172
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.02, name


def test_train_and_test_regions_split_the_columns():
    image = load_background("coffee")
    train, test = background_region("coffee", "train"), background_region("coffee", "test")
    assert train.shape[-1] + test.shape[-1] == image.shape[-1]
    assert test.shape[-1] == pytest.approx(TEST_FRACTION * image.shape[-1], abs=1)
    assert torch.equal(torch.cat([train, test], -1), image)
    with pytest.raises(ValueError, match="background"):
        load_background("eagle")


def test_random_backgrounds_are_reproducible_varied_and_in_range():
    first = [random_background(np.random.default_rng(i), "train", (24, 24)) for i in range(30)]
    again = [random_background(np.random.default_rng(i), "train", (24, 24)) for i in range(30)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(x.shape == (3, 24, 24) and 0 <= x.min() and x.max() <= 1 for x in first)
    means = torch.stack([x.mean(dim=(1, 2)) for x in first])
    assert len({tuple(m.tolist()) for m in means}) == 30 and means.std(0).min() > 0.05
    assert random_background(np.random.default_rng(0), "test", (10, 17)).shape == (3, 10, 17)
