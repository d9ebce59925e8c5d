import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from fade.data import denormalize_image
from fade.data.matting_synth import HairMatting, blob_alpha, strand_coverage, trimap_radius


def test_a_straight_strand_covers_its_width_by_hand():
    """A horizontal stroke along y = 10.5 (row 10's centre), x from 3 to 20. At S = 5 the sub-pixel
    rows of row 10 sit 0.4, 0.2, 0, 0.2, 0.4 from the line: width 1.0 covers all five (1.0), width
    0.6 three of five (0.6), width 0.3 one of five (0.2); rows 9 and 11 are untouched."""
    control = np.array([[10.5, 3.0], [10.5, 11.5], [10.5, 20.0]])
    for width, expected in ((1.0, 1.0), (0.6, 0.6), (0.3, 0.2)):
        coverage, (top, left) = strand_coverage((24, 30), control, width, 5)
        full = np.zeros((24, 30))
        full[top : top + coverage.shape[0], left : left + coverage.shape[1]] = coverage
        np.testing.assert_allclose(full[10, 5:18], expected)
        assert full[9].sum() == 0 and full[11].sum() == 0


def test_blob_without_harmonics_or_band_is_a_disc():
    size, centre, radius = (21, 25), (10.2, 12.7), 6.3
    alpha = blob_alpha(size, centre, radius, np.zeros((0, 3)), (0.0, 0.0, 1.0), 4)
    expected = np.zeros(size)
    for i in range(size[0]):
        for j in range(size[1]):
            ys = i + (np.arange(4) + 0.5) / 4 - centre[0]
            xs = j + (np.arange(4) + 0.5) / 4 - centre[1]
            expected[i, j] = np.mean([math.hypot(y, x) <= radius for y in ys for x in xs])
    np.testing.assert_allclose(alpha, expected)
    assert alpha.sum() == pytest.approx(math.pi * radius**2, rel=0.02)


def test_soft_band_ramps_linearly_across_the_boundary():
    """Constant band width 4 (power 0): along a radius alpha = clip((R - rho) / 4 + 1/2)."""
    alpha = blob_alpha((41, 41), (20.5, 20.5), 12.0, np.zeros((0, 3)), (4.0, 0.0, 0.0), 1)
    rho = np.arange(21, 41) + 0.5 - 20.5
    np.testing.assert_allclose(alpha[20, 21:], np.clip((12.0 - rho) / 4.0 + 0.5, 0.0, 1.0))


def test_trimap_radius_scales_with_the_image():
    assert trimap_radius((64, 64), 0.03) == 2
    assert trimap_radius((512, 640), 0.03) == 15
    assert trimap_radius((16, 16), 0.01) == 1


def test_samples_are_composites_with_composition_1k_trimaps():
    data = HairMatting("test", size=(48, 56), seed=1, length=4)
    for i in range(4):
        sample = data[i]
        alpha, trimap = sample["alpha"][0].numpy(), sample["trimap"][0].numpy()
        assert alpha.min() >= 0 and alpha.max() <= 1
        assert (alpha == 1).sum() > 50, "an opaque interior"
        fractional = (alpha > 0) & (alpha < 1)
        assert fractional.sum() > 30 and (trimap[fractional] == 128).all()
        assert (alpha[trimap == 255] == 1).all() and (alpha[trimap == 0] == 0).all()
        # unknown = dilate(alpha > 0) minus erode(alpha == 1), by a square window of some radius r
        matches = []
        for r in (1, 2):
            window = np.ones((2 * r + 1, 2 * r + 1), dtype=bool)
            near = ndimage.binary_dilation(alpha > 0, window)
            sure = ~ndimage.binary_dilation(alpha < 1, window)
            matches.append(np.array_equal(trimap == 128, near & ~sure))
        assert any(matches)
        composite = sample["alpha"] * sample["fg"] + (1 - sample["alpha"]) * sample["bg"]
        torch.testing.assert_close(denormalize_image(sample["image"]), composite, atol=1e-5, rtol=0)
        torch.testing.assert_close(sample["input"][3:], sample["trimap"].float() / 255)
        assert not torch.equal(sample["fg"], sample["bg"])


def test_hair_gives_thin_fractional_structure_outside_the_body():
    with_hair = HairMatting("train", strands=(40, 40), seed=0, length=1)[0]["alpha"][0].numpy()
    bald = HairMatting("train", strands=(0, 0), seed=0, length=1)[0]["alpha"][0].numpy()
    hair = with_hair - bald
    assert (hair >= -1e-6).all() and ((hair > 0) & (bald == 0)).sum() > 40
    assert np.median(with_hair[(hair > 0) & (bald == 0)]) < 0.8


def test_same_seed_same_bytes_and_bad_arguments():
    a, b = HairMatting("test", seed=2, length=3), HairMatting("test", seed=2, length=3)
    assert a[2]["alpha"].numpy().tobytes() == b[2]["alpha"].numpy().tobytes()
    assert a[1]["alpha"].numpy().tobytes() != a[2]["alpha"].numpy().tobytes()
    with pytest.raises(ValueError, match="strands"):
        HairMatting(strands=(5, 2))
    with pytest.raises(ValueError, match="trimap_band"):
        HairMatting(trimap_band=(0.05, 0.01))
    with pytest.raises(ValueError, match="strand_width"):
        HairMatting(strand_width=(0.0, 1.0))
    with pytest.raises(IndexError, match="index"):
        HairMatting(length=2)[-1]
