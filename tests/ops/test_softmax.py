"""fade.ops.semi_shift_softmax: the native kernel and the PyTorch operators against a float64 loop."""

import ctypes
import math

import pytest
import torch

from fade.ops import _native, nearest_upsample, semi_shift_softmax

D = torch.float64

# (B, N, H, W, H_out, W_out, scale): exact, floor and ceil mode, scales 1-4, one channel, rows of
# whole vectors only (float32 and float64), of whole and part vectors, of part of one vector.
CASES = [
    (2, 25, 7, 5, 15, 11, 2),
    (1, 9, 8, 6, 15, 11, 2),
    (1, 4, 3, 3, 9, 8, 3),
    (1, 3, 2, 3, 9, 11, 4),
    (2, 5, 4, 6, 4, 6, 1),
    (1, 1, 2, 2, 4, 4, 2),
    (1, 25, 3, 8, 6, 16, 2),
    (3, 25, 4, 23, 8, 47, 2),
]


def case_id(case):
    b, n, h, w, ho, wo, s = case
    return f"b{b}n{n}_{h}x{w}to{ho}x{wo}_s{s}"


def loop_reference(high, low, scale, grad):
    """Kernels and the gradients w.r.t. high and low, one pixel at a time, in float64."""
    high, low, grad = high.double(), low.double(), grad.double()
    b, _, ho, wo = high.shape
    h, w = low.shape[-2:]
    out, grad_high, grad_low = torch.zeros_like(high), torch.zeros_like(high), torch.zeros_like(low)
    for bb in range(b):
        for y in range(ho):
            sy = min(y // scale, h - 1)
            for x in range(wo):
                sx = min(x // scale, w - 1)
                logits = high[bb, :, y, x] + low[bb, :, sy, sx]
                e = torch.exp(logits - logits.max())
                k = e / e.sum()
                out[bb, :, y, x] = k
                g = grad[bb, :, y, x]
                dl = k * (g - (k * g).sum())
                grad_high[bb, :, y, x] = dl
                grad_low[bb, :, sy, sx] += dl
    return out, grad_high, grad_low


def inputs(case, dtype, layout=torch.channels_last, seed=0):
    b, n, h, w, ho, wo, _ = case
    gen = torch.Generator().manual_seed(seed)
    high = (3 * torch.randn(b, n, ho, wo, generator=gen, dtype=D)).to(dtype).contiguous(memory_format=layout)
    low = (3 * torch.randn(b, n, h, w, generator=gen, dtype=D)).to(dtype).contiguous(memory_format=layout)
    grad = torch.randn(b, n, ho, wo, generator=gen, dtype=D).to(dtype)
    return high, low, grad


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_matches_the_loop_reference(path, case, dtype, layout):
    high, low, grad = inputs(case, dtype, layout)
    ref, ref_high, ref_low = loop_reference(high, low, case[-1], grad)
    high.requires_grad_(), low.requires_grad_()
    out = semi_shift_softmax(high, low, case[-1])
    assert out.dtype == dtype and out.shape == high.shape and out.is_contiguous()
    grad_high, grad_low = torch.autograd.grad(out, (high, low), grad)
    tol = 2e-6 if dtype == torch.float32 else 1e-12
    for got, expected in ((out, ref), (grad_high, ref_high), (grad_low, ref_low)):
        torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol)


def test_the_native_kernel_takes_channels_last_and_gives_channels_last_gradients():
    high, low, grad = inputs(CASES[-1], torch.float32)
    assert _native.supports_semi_shift_softmax(high, low, 2)
    assert not _native.supports_semi_shift_softmax(high.contiguous(), low, 2)  # not channels-last
    assert not _native.supports_semi_shift_softmax(high.half(), low.half(), 2)
    high.requires_grad_(), low.requires_grad_()
    grad_high, grad_low = torch.autograd.grad(semi_shift_softmax(high, low, 2), (high, low), grad)
    assert grad_high.is_contiguous(memory_format=torch.channels_last)
    assert grad_low.is_contiguous(memory_format=torch.channels_last)


def test_non_finite_logits_give_what_torch_softmax_gives(path):
    """A NaN or +inf logit makes its pixel NaN, -inf gives exactly 0; far-apart logits neither
    overflow nor underflow to NaN; logits down to -100 below the maximum keep float32 accuracy."""
    high, low, _ = inputs(CASES[-1], torch.float32)
    high = high.clone()
    high[0, 3, 1, 2] = float("nan")
    high[1, 0, 2, 40] = float("inf")
    high[1, 7, 5, 46] = float("-inf")
    high[2, :, 3, 10] = torch.linspace(-100, 0, 25)
    high[2, 5, 7, 45] = 1e4
    expected = (high + nearest_upsample(low, high.shape[-2:], 2)).softmax(1)
    out = semi_shift_softmax(high, low, 2)
    torch.testing.assert_close(out, expected, rtol=2e-6, atol=1e-7, equal_nan=True)
    assert out[0, :, 1, 2].isnan().all() and out[1, :, 2, 40].isnan().all()
    assert out[1, 7, 5, 46] == 0 and not out.isnan()[1:, :, 5:].any()
    logits = (high[2, :, 3, 10] + low[2, :, 1, 5]).double()  # as rounded in float32
    reference = torch.exp(logits - logits.max())
    # (float32's rounding of a logit minus the maximum, about 100 apart, is up to 2e-6 relative)
    torch.testing.assert_close(out[2, :, 3, 10].double(), reference / reference.sum(), rtol=4e-6, atol=1e-30)


@pytest.mark.parametrize("threads_from", ["torch's OpenMP", "started per call"])
def test_two_threads_give_the_single_thread_result(threads_from, monkeypatch):
    monkeypatch.setattr(_native, "_MIN_WORK_PER_THREAD", 1)
    if threads_from == "started per call":
        monkeypatch.setattr(_native, "_openmp_runner", lambda: None)
    high, low, grad = inputs(CASES[-1], torch.float32)
    kernels = (high + nearest_upsample(low, high.shape[-2:], 2)).softmax(1)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(
                (_native.semi_shift_softmax(high, low, 2), *_native.semi_shift_softmax_backward(grad, kernels, (4, 23), 2))
            )
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_the_entry_points_refuse_invalid_shapes():
    lib, null = _native._library(), ctypes.c_void_p()
    # (B, N, H, W, H_out, W_out, s): negative batch, no channel, no row, output not within s - 1 of
    # s times the input, scale 0, counts beyond int64 byte offsets.
    shapes = [
        (-1, 1, 1, 1, 2, 2, 2),
        (1, 0, 1, 1, 2, 2, 2),
        (1, 1, 0, 1, 2, 2, 2),
        (1, 1, 2, 2, 6, 4, 2),
        (1, 1, 2, 2, 2, 2, 0),
        (2**40, 2**20, 2**10, 2, 2**11, 4, 2),
    ]
    for shape in shapes:
        assert lib.fade_semi_shift_softmax_f32(null, null, null, *shape, 1, null) == 2
        assert lib.fade_semi_shift_softmax_backward_f64(null, null, null, null, *shape, 2, null) == 2
    assert lib.fade_semi_shift_softmax_f32(null, null, null, 0, 3, 2, 2, 4, 4, 2, 1, null) == 0  # empty batch


def test_gradcheck(path):
    high, low, _ = inputs((1, 4, 3, 3, 7, 5, 2), D)
    assert torch.autograd.gradcheck(lambda a, b: semi_shift_softmax(a, b, 2), (high.requires_grad_(), low.requires_grad_()))


def test_each_input_alone():
    high, low, grad = inputs(CASES[0], D)
    both = torch.autograd.grad(semi_shift_softmax(high.requires_grad_(), low.requires_grad_(), 2), (high, low), grad)
    alone_high = torch.autograd.grad(semi_shift_softmax(high, low.detach(), 2), high, grad)[0]
    alone_low = torch.autograd.grad(semi_shift_softmax(high.detach(), low, 2), low, grad)[0]
    torch.testing.assert_close(alone_high, both[0], rtol=0, atol=0)
    torch.testing.assert_close(alone_low, both[1], rtol=0, atol=0)


def test_torch_compile_fullgraph_same_values():
    high, low, _ = inputs(CASES[0], torch.float32)
    compiled = torch.compile(semi_shift_softmax, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(high, low, 2), semi_shift_softmax(high, low, 2))


def test_half_precision_and_autocast():
    high, low, _ = inputs(CASES[0], torch.float32)
    expected = semi_shift_softmax(high, low, 2)
    half = semi_shift_softmax(high.bfloat16(), low.bfloat16(), 2)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), expected, rtol=0.05, atol=0.02)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = semi_shift_softmax(high.bfloat16(), low, 2)
    assert mixed.dtype == torch.float32  # the PyTorch operators, cast by autocast's own rules
    torch.testing.assert_close(mixed, expected, rtol=0.05, atol=0.02)


def test_bad_inputs_are_refused_before_anything_runs():
    high, low, _ = inputs(CASES[0], D)
    with pytest.raises(ValueError, match=r"low: expected batch and channels \(2, 25\) \(those of high\), got \(2, 24\)"):
        semi_shift_softmax(high, low[:, 1:], 2)
    with pytest.raises(ValueError, match="high spatial size vs low"):
        semi_shift_softmax(high, low, 3)
    with pytest.raises(TypeError, match="low: expected dtype torch.float64"):
        semi_shift_softmax(high, low.float(), 2)
    with pytest.raises(ValueError, match="device mismatch: high is on cpu, low on meta"):
        semi_shift_softmax(high, low.to("meta"), 2)
    with pytest.raises(ValueError, match="low: expected a 4-D tensor"):
        semi_shift_softmax(high, low[0], 2)
    with pytest.raises(TypeError, match="high: expected a floating dtype"):
        semi_shift_softmax(high.long(), low.long(), 2)


@pytest.mark.parametrize("name", ["fade", "fade_lite", "semi_shift"])
def test_the_modules_kernels_are_the_softmax_of_their_logits(name):
    """KernelUpsampler takes the semi-shift generators' fused softmax; it equals softmax(logits)."""
    from fade import create_upsampler

    up = create_upsampler(name, 16, 16, scale=2).double()
    en, de = torch.randn(2, 16, 15, 11, dtype=D), torch.randn(2, 16, 7, 5, dtype=D)
    logits = up.kernel_generator(en, de, 2)
    torch.testing.assert_close(up.kernels(en, de), logits.softmax(1), rtol=1e-12, atol=1e-12)
    assert math.isclose(up.kernels(en, de).sum(1).mean().item(), 1.0, rel_tol=1e-12)


def test_a_generator_subclass_with_its_own_logits_gets_their_softmax():
    """softmax_kernels fuses the semi-shift sum only for the logits it knows: a subclass that
    changes forward (here, a temperature) gets the softmax of what its forward returns."""
    from fade import FADE
    from fade.upsamplers.kernels import SemiShiftKernels

    class Sharper(SemiShiftKernels):
        def forward(self, en, de, scale):
            return 3.0 * super().forward(en, de, scale)

    up = FADE(8).double()
    up.kernel_generator.__class__ = Sharper
    en, de = torch.randn(1, 8, 9, 7, dtype=D), torch.randn(1, 8, 5, 4, dtype=D)
    expected = (3.0 * SemiShiftKernels.forward(up.kernel_generator, en, de, 2)).softmax(1)
    torch.testing.assert_close(up.kernels(en, de), expected, rtol=1e-12, atol=1e-12)
