"""Composition-1K matting errors: closed-form cases and independent scipy references."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from fade.metrics.matting import (
    MattingMeter,
    connectivity_error,
    gaussian_derivative_kernels,
    gaussian_gradient,
    gradient_error,
    mat2gray,
    mse_error,
    sad_error,
    unknown_region,
)


def _reference_kernel(sigma: float, half: int) -> np.ndarray:
    """The 2-D kernel h[i, j] = G(i) G'(j) by a double loop, scaled to unit L2 norm."""
    h = np.zeros((2 * half + 1, 2 * half + 1))
    for i in range(-half, half + 1):
        for j in range(-half, half + 1):
            g_i = math.exp(-(i**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            g_j = math.exp(-(j**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            h[i + half, j + half] = g_i * (-j * g_j / sigma**2)
    return h / np.sqrt((h**2).sum())


def _reference_gradient_error(p, g, unknown, sigma=1.4, normalize=True):
    """Grad with scipy.ndimage.convolve (mode='nearest' = replicate) and the loop-built kernel;
    ``normalize``: each matte first stretched to [0, 1] by its peak-to-peak range (mat2gray)."""
    h = _reference_kernel(sigma, gaussian_derivative_kernels(sigma)[0].size // 2)
    if normalize:
        p, g = ((a - a.min()) / np.ptp(a) if np.ptp(a) else np.zeros_like(a) for a in (p, g))

    def magnitude(a):
        return np.hypot(ndimage.convolve(a, h, mode="nearest"), ndimage.convolve(a, h.T, mode="nearest"))

    return ((magnitude(p) - magnitude(g)) ** 2)[unknown].sum() / 1000


def _reference_connectivity_error(p, g, unknown):
    """Conn written from the definition with scipy.ndimage.label; ties by column-major order."""
    level = np.full(p.shape, -1.0)
    for i in range(1, 11):
        labels, count = ndimage.label((p >= i / 10) & (g >= i / 10))
        omega = np.zeros(p.shape, dtype=bool)
        if count:
            keys = []
            for k in range(1, count + 1):
                component = labels == k
                keys.append((-component.sum(), np.flatnonzero(component.T.ravel())[0], k))
            omega = labels == min(keys)[2]
        level[(level == -1) & ~omega] = (i - 1) / 10
    level[level == -1] = 1.0
    dp, dg = p - level, g - level
    phi_p, phi_g = 1 - dp * (dp >= 0.15), 1 - dg * (dg >= 0.15)
    return np.abs(phi_p - phi_g)[unknown].sum() / 1000


def _random_case(rng, shape=(23, 31)):
    """A smooth-ish ground truth, a noisy prediction and a uint8 trimap with all three values."""
    g = np.clip(ndimage.gaussian_filter(rng.random(shape), 2) * 3 - 1, 0, 1)
    p = np.clip(g + 0.3 * rng.standard_normal(shape), 0, 1)
    trimap = np.choose(rng.integers(0, 3, shape), [0, 128, 255]).astype(np.uint8)
    return p, g, trimap


def test_kernel_half_size_and_norms():
    # sigma 1.4: sqrt(2 pi) * 1.4 * 0.01 = 0.0350929; -2 ln(.) = 6.69912; sqrt = 2.58827;
    # times 1.4 = 3.62358 -> ceil 4, a 9-tap kernel.
    gauss, derivative = gaussian_derivative_kernels(1.4)
    assert gauss.shape == derivative.shape == (9,)
    # sigma 1: sqrt(-2 ln 0.0250663) = 2.71524 -> 3; sigma 2: 2 * sqrt(-2 ln 0.0501326) = 4.8933 -> 5.
    assert gaussian_derivative_kernels(1.0)[0].shape == (7,)
    assert gaussian_derivative_kernels(2.0)[0].shape == (11,)
    assert np.linalg.norm(gauss) == pytest.approx(1.0) and np.linalg.norm(derivative) == pytest.approx(1.0)
    np.testing.assert_allclose(gauss, gauss[::-1])
    np.testing.assert_allclose(derivative, -derivative[::-1])
    assert derivative[0] > 0  # -x G(x) is positive left of the centre
    np.testing.assert_allclose(np.outer(gauss, derivative), _reference_kernel(1.4, 4), rtol=1e-12)
    assert np.linalg.norm(np.outer(gauss, derivative)) == pytest.approx(1.0)


def test_gaussian_gradient_matches_scipy_convolve():
    image = np.random.default_rng(1).random((13, 17))
    h = _reference_kernel(1.4, 4)
    gx, gy = gaussian_gradient(image)
    np.testing.assert_allclose(gx, ndimage.convolve(image, h, mode="nearest"), atol=1e-12)
    np.testing.assert_allclose(gy, ndimage.convolve(image, h.T, mode="nearest"), atol=1e-12)


def test_gradient_error_matches_reference():
    rng = np.random.default_rng(2)
    p, g, trimap = _random_case(rng)
    expected = _reference_gradient_error(p, g, trimap == 128)
    assert expected > 0
    assert gradient_error(p, g, trimap) == pytest.approx(expected, rel=1e-10)


def test_perfect_prediction_scores_zero():
    p, g, trimap = _random_case(np.random.default_rng(3))
    for error in (sad_error, mse_error, gradient_error, connectivity_error):
        assert error(g, g, trimap) == 0.0


def test_constant_shift():
    # g in [0, 0.8], p = g + 0.2 everywhere; 20 unknown pixels (a 5x4 block).
    rng = np.random.default_rng(4)
    g = 0.8 * rng.random((12, 10))
    p = g + 0.2
    trimap = np.zeros((12, 10), dtype=np.uint8)
    trimap[:, 7:] = 255
    trimap[3:8, 2:6] = 128
    assert sad_error(p, g, trimap) == pytest.approx(0.2 * 20 / 1000)
    assert mse_error(p, g, trimap) == pytest.approx(0.2**2)
    # Derivative filters sum to zero along their axis, so a constant shift leaves gradients as
    # they are (the replicate border keeps the shift constant outside too).
    assert gradient_error(p, g, trimap) == pytest.approx(0.0, abs=1e-20)


def test_connectivity_partially_connected_region():
    # gt: a block of ones (cols 0..3), a region R (rows 2..5, cols 4..5, 8 pixels) of 0.8 touching
    # it, zeros elsewhere; pred equals gt but has 0.45 on R.
    # (p >= t) & (g >= t) holds on the block for every t and on R for t <= 0.4, always as one
    # component with the block, so R drops out at t = 0.5: l = 0.4 on R.
    # On R: d_g = 0.8 - 0.4 = 0.4 >= 0.15 -> phi_g = 0.6; d_p = 0.05 < 0.15 -> phi_p = 1.
    # Block: l = 1, d = 0; background: l = 0, d = 0 -> phi = 1 for both. Conn = 8 * 0.4 / 1000.
    g = np.zeros((8, 8))
    g[:, :4] = 1.0
    g[2:6, 4:6] = 0.8
    p = g.copy()
    p[2:6, 4:6] = 0.45
    everywhere = np.ones((8, 8), dtype=bool)
    assert connectivity_error(p, g, everywhere) == pytest.approx(8 * 0.4 / 1000)
    assert sad_error(p, g, everywhere) == pytest.approx(8 * 0.35 / 1000)


def test_connectivity_single_flipped_component():
    # gt: a block of ones and a separate 2x2 island of ones; pred keeps the block but has 0.1 on
    # the island. The intersection never reaches the island, so l = 0 there (it leaves the
    # largest component at t = 0.1). phi_g = 1 - (1 - 0) = 0; d_p = 0.1 < 0.15 -> phi_p = 1.
    # Conn = 4 * 1 / 1000, while SAD = 4 * 0.9 / 1000.
    g = np.zeros((8, 9))
    g[:, :3] = 1.0
    g[5:7, 6:8] = 1.0
    p = g.copy()
    p[5:7, 6:8] = 0.1
    trimap = np.full((8, 9), 0.5)
    assert connectivity_error(p, g, trimap) == pytest.approx(4 / 1000)
    assert sad_error(p, g, trimap) == pytest.approx(3.6 / 1000)
    # Only unknown pixels count: mark the island known.
    trimap[5:7, 6:8] = 1.0
    assert connectivity_error(p, g, trimap) == 0.0


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_connectivity_matches_reference(seed):
    p, g, trimap = _random_case(np.random.default_rng(seed), shape=(29, 26))
    expected = _reference_connectivity_error(p, g, trimap == 128)
    assert expected > 0
    assert connectivity_error(p, g, trimap) == pytest.approx(expected, rel=1e-12)


def test_trimap_conventions_agree():
    p, g, trimap = _random_case(np.random.default_rng(8))
    as_float = np.where(trimap == 128, 0.5, trimap / 255).astype(np.float32)
    as_bool = trimap == 128
    np.testing.assert_array_equal(unknown_region(trimap), as_bool)
    np.testing.assert_array_equal(unknown_region(as_float), as_bool)
    np.testing.assert_array_equal(unknown_region(torch.from_numpy(trimap)), as_bool)
    for error in (sad_error, mse_error, gradient_error, connectivity_error):
        values = {error(p, g, t) for t in (trimap, as_float, as_bool)}
        assert len(values) == 1
        assert error(torch.from_numpy(p).float(), torch.from_numpy(g).float(), trimap) == pytest.approx(
            error(p.astype(np.float32), g.astype(np.float32), trimap)
        )


def test_meter_equals_per_image_means():
    rng = np.random.default_rng(9)
    cases = [_random_case(rng, shape=(17, 19)) for _ in range(5)]
    p, g, t = (np.stack(x) for x in zip(*cases))
    meter = MattingMeter()
    meter.update(p[:2], g[:2], t[:2])
    meter.update(torch.from_numpy(p[2:, None]), torch.from_numpy(g[2:, None]), torch.from_numpy(t[2:, None]))
    summary = meter.compute()
    assert summary["images"] == 5
    errors = {"sad": sad_error, "mse": mse_error, "grad": gradient_error, "conn": connectivity_error}
    for key, error in errors.items():
        assert summary[key] == pytest.approx(np.mean([error(*c) for c in cases]), rel=1e-12)
    meter.reset()
    with pytest.raises(ValueError, match=r"expected at least one image before compute\(\), got none"):
        meter.compute()


def test_meter_is_unchanged_by_a_rejected_batch():
    p, g, t = _random_case(np.random.default_rng(10))
    meter = MattingMeter()
    meter.update(p[None], g[None], t[None])
    before = meter.compute()
    bad_t = np.stack([t, np.full_like(t, 7)])
    with pytest.raises(ValueError, match="trimap"):
        meter.update(np.stack([p, p]), np.stack([g, g]), bad_t)
    assert meter.compute() == before


def test_bad_input():
    a = np.zeros((4, 5))
    known = np.full((4, 5), 128, dtype=np.uint8)
    ramp = np.arange(20, dtype=np.uint8).reshape(4, 5) * 13
    with pytest.raises(ValueError, match=r"pred: expected alpha values in \[0, 1\], got values in \[0, 247\]"):
        sad_error(ramp, a, known)
    with pytest.raises(ValueError, match=r"gt: expected alpha values in \[0, 1\], got .* \[-0.5, -0.5\]"):
        mse_error(a, a - 0.5, known)
    with pytest.raises(ValueError, match=r"shape mismatch: pred has shape \(4, 5\), gt has shape \(5, 4\)"):
        sad_error(a, a.T, known)
    with pytest.raises(ValueError, match=r"mismatch: pred has shape \(4, 5\), trimap has shape \(5, 4\)"):
        sad_error(a, a, known.T)
    with pytest.raises(ValueError, match=r"trimap: expected values in \(0, 128, 255\) for dtype uint8, got 127"):
        sad_error(a, a, known - 1)
    with pytest.raises(ValueError, match=r"trimap: expected values in \(0.0, 0.5, 1.0\) .* float64, got 128.0"):
        sad_error(a, a, known.astype(np.float64))
    with pytest.raises(ValueError, match=r"pred: expected finite values, got NaN or infinity"):
        sad_error(a + np.nan, a, known)
    with pytest.raises(ValueError, match=r"trimap: expected at least one unknown pixel for MSE, got none"):
        mse_error(a, a, np.zeros((4, 5), dtype=bool))
    with pytest.raises(ValueError, match=r"step: expected 1/step to be a positive integer, got step=0.3"):
        connectivity_error(a, a, known, step=0.3)
    with pytest.raises(ValueError, match=r"sigma: expected a finite number in \(0, inf\), got 0"):
        gradient_error(a, a, known, sigma=0)
    with pytest.raises(ValueError, match=r"pred: expected a 2-D \(H, W\) array, got 3-D shape \(1, 4, 5\)"):
        sad_error(a[None], a, known)
    pair = np.stack([a, a])[None]
    with pytest.raises(ValueError, match=r"pred: expected one channel in \(B, 1, H, W\), got shape \(1, 2, 4, 5\)"):
        MattingMeter().update(pair, pair, np.stack([known, known])[None])


def test_mat2gray_by_hand():
    np.testing.assert_allclose(mat2gray(np.array([[0.2, 0.4], [0.6, 0.2]])), [[0.0, 0.5], [1.0, 0.0]])
    np.testing.assert_array_equal(mat2gray(np.full((2, 3), 0.7)), np.zeros((2, 3)))
    np.testing.assert_allclose(mat2gray(torch.tensor([[1, 3], [5, 1]])), [[0.0, 0.5], [1.0, 0.0]])


@pytest.mark.parametrize(
    "image, error, match",
    [
        ([[0.2, 0.4]], TypeError, "image: expected a numpy array or a torch tensor, got list"),
        (np.array([[np.nan, 1.0]]), ValueError, "image: expected finite values, got NaN or infinity"),
        (np.zeros((0, 3)), ValueError, r"image: expected H and W >= 1, got shape \(0, 3\)"),
        (np.zeros((2, 2, 2)), ValueError, r"image: expected a 2-D \(H, W\) array, got 3-D"),
        (np.array([["a"]]), TypeError, "image: expected a real-valued array, got dtype <U1"),
    ],
)
def test_mat2gray_refuses_what_it_cannot_normalise(image, error, match):
    """A list was an AttributeError, NaN a silent all-NaN result, an empty image numpy's reduction error."""
    with pytest.raises(error, match=match):
        mat2gray(image)


def _semi_transparent_case():
    """A ground truth spanning [0, 0.5] (a semi-transparent item), its x2 version, an unknown band."""
    rng = np.random.default_rng(21)
    h = ndimage.gaussian_filter(rng.random((19, 23)), 2)
    h = (h - h.min()) / (h.max() - h.min())  # spans exactly [0, 1]
    trimap = np.full(h.shape, 128, dtype=np.uint8)
    trimap[:3] = 0
    return h, 0.5 * h, trimap


def test_grad_normalises_both_mattes_as_the_published_script():
    h, g, trimap = _semi_transparent_case()
    unknown = trimap == 128
    # mat2gray(g) = h: a prediction that is g scaled to [0, 1] (or g itself) is perfect for Grad.
    assert gradient_error(h, g, trimap) == pytest.approx(0.0, abs=1e-20)
    assert gradient_error(g, g, trimap) == 0.0
    # Without normalisation the gradients of h are twice those of g: (2|dg| - |dg|)^2 = |dg|^2.
    unnormalised = gradient_error(h, g, trimap, normalize=False)
    assert unnormalised > 0
    assert unnormalised == pytest.approx(_reference_gradient_error(h, g, unknown, normalize=False), rel=1e-10)
    zero = np.zeros_like(g)
    assert unnormalised == pytest.approx(_reference_gradient_error(g, zero, unknown, normalize=False), rel=1e-10)
    # A prediction spanning about [0.1, 0.8] against g: both are stretched to [0, 1] first.
    p = np.clip(g + 0.3 * np.random.default_rng(22).random(g.shape), 0, 1)
    stretched = (p - p.min()) / (p.max() - p.min())
    expected = _reference_gradient_error(stretched, h, unknown, normalize=False)
    assert gradient_error(p, g, trimap) == pytest.approx(expected, rel=1e-10)
    # A constant prediction has no gradient whatever mat2gray makes of it: Grad = sum_U |grad h|^2.
    flat = np.full(g.shape, 0.3)
    expected = _reference_gradient_error(zero, h, unknown, normalize=False)
    assert gradient_error(flat, g, trimap) == pytest.approx(expected, rel=1e-10)
    meter = MattingMeter()
    meter.update(h[None], g[None], trimap[None])
    assert meter.compute()["grad"] == pytest.approx(0.0, abs=1e-20)
    meter = MattingMeter(normalize=False)
    meter.update(h[None], g[None], trimap[None])
    assert meter.compute()["grad"] == pytest.approx(unnormalised)


def test_validation_of_every_argument():
    a = np.zeros((4, 5))
    known = np.full((4, 5), 128, dtype=np.uint8)
    empty = np.zeros((0, 0))
    for error in (sad_error, mse_error, gradient_error, connectivity_error):
        with pytest.raises(ValueError, match=r"pred: expected H and W >= 1, got shape \(0, 0\)"):
            error(empty, empty, np.zeros((0, 0), np.uint8))
    with pytest.raises(ValueError, match=r"image: expected H and W >= 1, got shape \(3, 0\)"):
        gaussian_gradient(np.zeros((3, 0)))
    with pytest.raises(ValueError, match=r"trimap: expected H and W >= 1, got shape \(0, 4\)"):
        unknown_region(np.zeros((0, 4), np.uint8))
    with pytest.raises(TypeError, match=r"trimap: expected an integer, float or bool array, got dtype complex128"):
        unknown_region(np.zeros((2, 2), complex))
    for sigma in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match=r"sigma: expected a finite number in \(0, inf\), got"):
            gradient_error(a, a, known, sigma=sigma)
    with pytest.raises(TypeError, match=r"sigma: expected a real number, got str '1.4'"):
        MattingMeter(sigma="1.4")
    for step in (math.nan, 0.0, 1.5):
        with pytest.raises(ValueError, match=r"step: expected a finite number in \(0, 1\], got"):
            connectivity_error(a, a, known, step=step)
    with pytest.raises(TypeError, match=r"step: expected a real number, got bool True"):
        MattingMeter(step=True)
    with pytest.raises(TypeError, match=r"normalize: expected True or False, got int 1"):
        gradient_error(a, a, known, normalize=1)
    with pytest.raises(TypeError, match=r"normalize: expected True or False, got str 'no'"):
        MattingMeter(normalize="no")
    with pytest.raises(ValueError, match=r"pred: expected a dense tensor holding data, got layout .* on meta"):
        sad_error(torch.zeros(4, 5, device="meta"), a, known)
    with pytest.raises(TypeError, match=r"gt: expected a numpy array or a torch tensor, got list"):
        sad_error(a, a.tolist(), known)
    # An empty batch is no image: the meter stays empty.
    meter = MattingMeter()
    meter.update(np.zeros((0, 4, 5)), np.zeros((0, 4, 5)), np.zeros((0, 4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"expected at least one image before compute\(\), got none"):
        meter.compute()


@pytest.mark.parametrize("sigma", [1e-300, 0.01, 0.0259])
def test_a_sigma_too_small_for_a_derivative_kernel_is_refused(sigma):
    """Below 0.026 G'(1) = exp(-1 / (2 sigma^2)) underflows: a ValueError, not a NaN Grad."""
    a = np.linspace(0, 1, 20).reshape(4, 5)
    with pytest.raises(ValueError, match=rf"sigma: expected at least 0.026 .*, got {sigma}"):
        gradient_error(a, a, np.full((4, 5), 128, np.uint8), sigma=sigma)


def test_a_small_sigma_keeps_a_unit_derivative_kernel():
    """At sigma 0.03 G'(1) is about 1e-241: its squares would underflow, the kernel is still [s, 0, -s]."""
    gauss, derivative = gaussian_derivative_kernels(0.03)
    np.testing.assert_allclose(derivative, [math.sqrt(0.5), 0.0, -math.sqrt(0.5)], rtol=1e-12)
    np.testing.assert_allclose(gauss, [0.0, 1.0, 0.0], atol=1e-200)


def test_a_step_past_the_threshold_limit_is_refused_at_once():
    """step = 1e-9 would label the image a billion times: refused (at most 1000 thresholds)."""
    a = np.linspace(0, 1, 20).reshape(4, 5)
    with pytest.raises(ValueError, match=r"step: expected a step of at least 1/1000 \(one labelling each\), got 1e-09"):
        connectivity_error(a, a, np.full((4, 5), 128, np.uint8), step=1e-9)
    assert connectivity_error(a, a, np.full((4, 5), 128, np.uint8), step=0.001) == 0.0
