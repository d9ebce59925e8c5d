"""Property tests of fade.ops (hypothesis): the native kernel, the pure-PyTorch path and a float64
reference agree, forward and backward, over shapes, scales, kernel sizes, dtypes, strides, memory
formats and thread counts; every bad size is a ValueError; sizes the native kernel cannot hold fall
back to the pure-PyTorch path or are refused before anything is allocated.

The reference follows the definition one tap at a time in float64,
``out[b,c,y,x] = sum_{i,j} x[b,c, sy+i-r, sx+j-r] * k[b, i*K+j, y, x]`` with ``sy = min(y // s, H-1)``
computed per pixel in Python integers and taps outside ``x`` masked out; its gradients come from
torch's autograd through that formula. Run longer with ``HYPOTHESIS_PROFILE=long``.
"""

import ctypes
import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from fade.ops import _native, carafe, nearest_upsample
from fade.ops.resize import compatible_size, effective_scale, fit_to_size

D = torch.float64
# (rtol, atol) against the float64 reference: the half types are rounded once at the end.
TOLERANCE = {D: (1e-10, 1e-10), torch.float32: (1e-4, 1e-4), torch.bfloat16: (2e-2, 2e-2), torch.float16: (4e-3, 4e-3)}
LAYOUTS = ["contiguous", "channels_last", "transposed", "strided", "batch_expanded"]


def reference(x, kernels, scale):
    """carafe by its definition, in float64, differentiable by autograd."""
    b, c, h, w = x.shape
    k = math.isqrt(kernels.shape[1])
    r = k // 2
    ho, wo = kernels.shape[-2:]
    sy = torch.tensor([min(y // scale, h - 1) for y in range(ho)], dtype=torch.long)
    sx = torch.tensor([min(v // scale, w - 1) for v in range(wo)], dtype=torch.long)
    out = torch.zeros(b, c, ho, wo, dtype=D)
    for i in range(k):
        for j in range(k):
            rows, cols = sy + i - r, sx + j - r
            inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
            taps = x[:, :, rows.clamp(0, h - 1)][:, :, :, cols.clamp(0, w - 1)]
            out = out + torch.where(inside, taps, 0.0) * kernels[:, i * k + j, None]
    return out


def laid_out(t, layout):
    """The values of ``t`` (B, C, H, W) in another memory layout (a view that owns no gradient)."""
    t = t.detach()
    if layout == "channels_last":
        t = t.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed":
        t = t.transpose(2, 3).contiguous().transpose(2, 3)
    elif layout == "strided":
        b, c, h, w = t.shape
        wide = torch.full((b, 2 * c, h + 1, 2 * w), float("nan") if t.is_floating_point() else 1, dtype=t.dtype)
        wide[:, ::2, 1:, ::2] = t
        t = wide[:, ::2, 1:, ::2]
    elif layout == "batch_expanded" and t.shape[0] > 0:
        t = t[:1].expand(t.shape)
    return t


@st.composite
def extent(draw, scale):
    """(low, high) with |high - scale * low| < scale: exact, floor- or ceil-mode."""
    low = draw(st.integers(1, 7))
    high = scale * low + draw(st.integers(-(scale - 1), scale - 1))
    assume(high >= 1)
    return low, high


@st.composite
def problems(draw):
    """(B, C, H, W, H_out, W_out, K, scale)."""
    scale = draw(st.integers(1, 5))
    (h, ho), (w, wo) = draw(extent(scale)), draw(extent(scale))
    k = draw(st.sampled_from([1, 3, 5, 7]))
    b = draw(st.sampled_from([1, 1, 2, 0]))
    c = draw(st.sampled_from([1, 2, 3, 5, 17, 0]))
    return b, c, h, w, ho, wo, k, scale


def forward_and_grads(x, kernels, scale, grad):
    out = carafe(x, kernels, scale)
    return (out.detach(), *torch.autograd.grad(out, (x, kernels), grad))


@given(
    problem=problems(),
    dtype=st.sampled_from([D, torch.float32, torch.bfloat16, torch.float16]),
    layouts=st.tuples(*[st.sampled_from(LAYOUTS)] * 3),
    threads=st.sampled_from([1, 1, 2]),
    infer=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_native_fallback_and_reference_agree(monkeypatch, problem, dtype, layouts, threads, infer, seed):
    b, c, h, w, ho, wo, k, scale = problem
    gen = torch.Generator().manual_seed(seed)
    x, kernels, grad = (torch.randn(shape, generator=gen, dtype=D).to(dtype) for shape in
                        [(b, c, h, w), (b, k * k, ho, wo), (b, c, ho, wo)])
    x, kernels, grad = (laid_out(t, layout) for t, layout in zip((x, kernels, grad), layouts))
    x.requires_grad_()
    kernels.requires_grad_()
    xr, kr = x.detach().double().requires_grad_(), kernels.detach().double().requires_grad_()
    ref_out = reference(xr, kr, scale)
    ref = (ref_out.detach(), *torch.autograd.grad(ref_out, (xr, kr), grad.double()))
    given_scale = None if infer and (ho, wo) == (scale * h, scale * w) else scale
    rtol, atol = TOLERANCE[dtype]
    results = {}
    with monkeypatch.context() as patch:
        patch.setattr(_native, "_MIN_WORK_PER_THREAD", 1)
        torch.set_num_threads(threads)
        for path in ("native", "fallback"):
            patch.setenv(_native.DISABLE_ENV, "1" if path == "fallback" else "0")
            results[path] = forward_and_grads(x, kernels, given_scale, grad)
            for got, want, like in zip(results[path], ref, (grad, x, kernels)):
                assert got.dtype == dtype and got.shape == like.shape
                torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)
    for native, fallback in zip(results["native"], results["fallback"]):
        torch.testing.assert_close(native, fallback, rtol=rtol, atol=atol)


@given(problem=problems(), seed=st.integers(0, 2**31 - 1), limit=st.integers(0, 4000))
def test_sizes_beyond_the_native_limit_take_the_fallback(monkeypatch, problem, seed, limit):
    b, c, h, w, ho, wo, k, scale = problem
    gen = torch.Generator().manual_seed(seed)
    x, kernels, grad = (torch.randn(shape, generator=gen, dtype=D) for shape in
                        [(b, c, h, w), (b, k * k, ho, wo), (b, c, ho, wo)])
    x.requires_grad_()
    kernels.requires_grad_()
    ref_out = reference(x, kernels, scale)
    ref = (ref_out.detach(), *torch.autograd.grad(ref_out, (x, kernels), grad))
    calls = []
    with monkeypatch.context() as patch:
        patch.delenv(_native.DISABLE_ENV, raising=False)
        patch.setattr(_native, "_MAX_ELEMENTS", limit)
        for name in ("forward", "backward"):
            patch.setattr(_native, name, lambda *a, _f=getattr(_native, name), _n=name: calls.append(_n) or _f(*a))
        for got, want in zip(forward_and_grads(x, kernels, scale, grad), ref):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        fits = _native._fits(_native._shape_args(x, kernels, k, effective_scale(scale, (ho, wo))), 1)
    assert calls == (["forward", "backward"] if fits else [])


@given(
    shape=st.tuples(*[st.integers(0, 2**40)] * 2, *[st.integers(1, 2**40)] * 4),
    k=st.sampled_from([1, 3, 5, 7, 2**20 + 1]),
    scale=st.one_of(st.integers(1, 8), st.integers(1, 2**62)),
    threads=st.integers(1, 64),
)
def test_python_and_cpp_size_limits_agree(shape, k, scale, threads):
    b, c, h, w, ho, wo = shape
    lib = _native._library()
    null = ctypes.c_void_p()
    # With B = 0 the kernel has no work: its status is its size check alone.
    empty = (0, c, h, w, ho, wo, k, scale)
    status = lib.fade_carafe_forward_f32(null, null, null, null, null, *empty, threads, null)
    assert status == (0 if _native._fits(empty, threads) else 2)
    assert lib.fade_carafe_backward_f64(null, null, null, null, null, *empty, threads, null) == status
    full = (b, c, h, w, ho, wo, k, scale)
    if not _native._fits(full, threads):  # refused before any memory is touched
        assert lib.fade_carafe_forward_f64(null, null, null, null, null, *full, threads, null) == 2


@given(
    low=st.tuples(st.integers(-1, 6), st.integers(-1, 6)),
    high=st.tuples(st.integers(-2, 40), st.integers(-2, 40)),
    scale=st.integers(-1, 7),
)
def test_every_size_is_upsampled_or_refused_with_a_value_error(low, high, scale):
    valid = scale >= 1 and all(n >= 1 and m >= 1 and compatible_size(n, m, scale) for n, m in zip(low, high))
    x = torch.randn(1, 2, *map(lambda n: max(n, 0), low))
    kernels = torch.rand(1, 9, *map(lambda n: max(n, 0), high)) if min(high) >= 0 else None
    calls = [lambda: nearest_upsample(x, high, scale)]
    if kernels is not None:
        calls.append(lambda: carafe(x, kernels, scale))
    for call in calls:
        if valid:
            assert call().shape == (1, 2, *high)
        else:
            with pytest.raises(ValueError):
                call()


@given(
    problem=problems(),
    dtype=st.sampled_from([torch.float32, D, torch.float16, torch.int64, torch.bool]),
    layout=st.sampled_from(LAYOUTS),
)
def test_nearest_upsample_and_fit_to_size_follow_the_mapping(problem, dtype, layout):
    b, c, h, w, ho, wo, _, scale = problem
    x = laid_out(torch.randint(0, 2, (b, c, h, w)).to(dtype), layout)
    rows = [min(y // scale, h - 1) for y in range(ho)]
    cols = [min(v // scale, w - 1) for v in range(wo)]
    assert torch.equal(nearest_upsample(x, (ho, wo), scale), x[:, :, rows][:, :, :, cols])
    up = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    assert torch.equal(fit_to_size(up, (ho, wo), scale), up[:, :, [min(y, scale * h - 1) for y in range(ho)]][
        :, :, :, [min(v, scale * w - 1) for v in range(wo)]])


@given(shape=st.tuples(*[st.integers(2**21, 2**24)] * 3), scale=st.integers(2**24, 2**70))
def test_outputs_beyond_a_tensor_are_refused_before_allocating(shape, scale):
    c, ho, wo = shape  # at least 2**63 elements of 4 bytes
    x = torch.zeros(1, 1, 1, 1).expand(1, c, 1, 1)
    kernels = torch.zeros(1, 1, 1, 1).expand(1, 1, ho, wo)
    with pytest.raises(ValueError, match=r"output: shape .* needs more bytes than a tensor can hold"):
        carafe(x, kernels, scale)
