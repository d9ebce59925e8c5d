"""fade.ops.carafe against a naive float64 loop reference, on both the native and the pure-PyTorch path.

The reference implements the facts-file formula literally, one output value at a time:
``out[b,c,y,x] = sum_{i,j} x[b, c, sy+i-r, sx+j-r] * k[b, i*K+j, y, x]`` with ``sy = min(y//s, H-1)``,
``sx = min(x//s, W-1)``, ``r = K//2`` and zero outside x; its gradients are accumulated in the same loops.
"""

import ctypes
import math
import warnings

import numpy as np
import pytest
import torch

from fade.ops import _native, carafe, carafe_lerp

D = torch.float64

# (B, C, H, W, H_out, W_out, K, scale): floor-mode, ceil-mode, exact, 1x1, scales 1-4, K 1-7.
CASES = [
    (2, 3, 7, 5, 15, 11, 5, 2),  # floor mode: 15x11 from 7x5
    (1, 2, 8, 6, 15, 11, 3, 2),  # ceil mode: 15 from 8, 11 from 6
    (1, 3, 1, 1, 2, 2, 3, 2),  # 1x1 map
    (2, 2, 1, 1, 1, 1, 5, 1),  # 1x1 map, scale 1
    (1, 2, 4, 5, 12, 15, 7, 3),  # scale 3, K 7
    (1, 5, 4, 5, 14, 16, 3, 3),  # scale 3, floor mode in both dimensions, 5 channels (block + rest)
    (1, 2, 3, 2, 12, 8, 1, 4),  # scale 4, K 1
    (1, 1, 2, 3, 9, 11, 5, 4),  # scale 4, floor and ceil mode, K larger than the map
    (1, 6, 3, 20, 6, 40, 5, 2),  # wide rows: full vector tiles plus remainder columns
    (1, 21, 3, 4, 7, 9, 3, 2),  # more channels than one native task group (16)
    (2, 27, 5, 20, 10, 40, 5, 2),  # wide, narrow and single channel blocks, each over whole-vector tiles
    (2, 13, 3, 23, 6, 47, 5, 2),  # every channel block over whole and part vectors (float32 and 64), floor mode
]


def case_id(case):
    b, c, h, w, ho, wo, k, s = case
    return f"b{b}c{c}_{h}x{w}to{ho}x{wo}_k{k}_s{s}"


def naive_carafe(x, kernels, scale, grad=None):
    """Forward (and, given grad, the gradients w.r.t. x and kernels) by explicit loops in float64."""
    bsz, chans, h, w = x.shape
    _, kk, ho, wo = kernels.shape
    k = math.isqrt(kk)
    r = k // 2
    xs, ks = x.double().tolist(), kernels.double().tolist()
    gs = grad.double().tolist() if grad is not None else None
    out = torch.zeros(bsz, chans, ho, wo, dtype=D).tolist()
    gx = torch.zeros(bsz, chans, h, w, dtype=D).tolist()
    gk = torch.zeros(bsz, kk, ho, wo, dtype=D).tolist()
    for b in range(bsz):
        for c in range(chans):
            for y in range(ho):
                sy = min(y // scale, h - 1)
                for xo in range(wo):
                    sx = min(xo // scale, w - 1)
                    acc = 0.0
                    for i in range(k):
                        for j in range(k):
                            yy, xx = sy + i - r, sx + j - r
                            if 0 <= yy < h and 0 <= xx < w:
                                acc += xs[b][c][yy][xx] * ks[b][i * k + j][y][xo]
                                if gs is not None:
                                    gx[b][c][yy][xx] += gs[b][c][y][xo] * ks[b][i * k + j][y][xo]
                                    gk[b][i * k + j][y][xo] += gs[b][c][y][xo] * xs[b][c][yy][xx]
                    out[b][c][y][xo] = acc
    if grad is None:
        return torch.tensor(out, dtype=D)
    return torch.tensor(out, dtype=D), torch.tensor(gx, dtype=D), torch.tensor(gk, dtype=D)


_NAIVE = {}


def inputs(case, dtype=D):
    """Deterministic (x, kernels, grad) for a case, and the naive results (computed once per case)."""
    bsz, chans, h, w, ho, wo, k, scale = case
    gen = torch.Generator().manual_seed(hash(case) % (2**31))
    x = torch.randn(bsz, chans, h, w, generator=gen, dtype=D)
    kernels = torch.randn(bsz, k * k, ho, wo, generator=gen, dtype=D).softmax(dim=1)
    grad = torch.randn(bsz, chans, ho, wo, generator=gen, dtype=D)
    if case not in _NAIVE:
        _NAIVE[case] = naive_carafe(x, kernels, scale, grad)
    return x.to(dtype), kernels.to(dtype), grad.to(dtype), _NAIVE[case]


def forward_and_grads(x, kernels, scale, grad):
    x = x.detach().requires_grad_()
    kernels = kernels.detach().requires_grad_()
    out = carafe(x, kernels, scale)
    gx, gk = torch.autograd.grad(out, (x, kernels), grad)
    return out.detach(), gx, gk


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_and_gradients_match_naive_float64(path, case):
    x, kernels, grad, (ref, ref_gx, ref_gk) = inputs(case)
    out, gx, gk = forward_and_grads(x, kernels, case[-1], grad)
    assert out.dtype == D and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gk, ref_gk, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_float32_matches_naive(path, case):
    x, kernels, grad, (ref, ref_gx, ref_gk) = inputs(case, torch.float32)
    out, gx, gk = forward_and_grads(x, kernels, case[-1], grad)
    assert out.dtype == gx.dtype == gk.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx.double(), ref_gx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gk.double(), ref_gk, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [CASES[0], CASES[4]], ids=case_id)
def test_native_and_fallback_agree_in_float32(monkeypatch, case):
    x, kernels, grad, _ = inputs(case, torch.float32)
    monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
    native = forward_and_grads(x, kernels, case[-1], grad)
    monkeypatch.setenv(_native.DISABLE_ENV, "1")
    fallback = forward_and_grads(x, kernels, case[-1], grad)
    for a, b in zip(native, fallback):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("value", "native"), [("1", False), ("true", False), (" Yes ", False), ("on", False),
                                               ("0", True), ("", True), ("false", True), ("off", True)])
def test_environment_switch_values(monkeypatch, value, native):
    monkeypatch.setenv(_native.DISABLE_ENV, value)
    assert _native.available() is native


def test_dispatch_follows_the_environment_switch(monkeypatch):
    calls = []
    native_forward = _native.forward

    def spy(*args):
        calls.append(args[-1])
        return native_forward(*args)

    monkeypatch.setattr(_native, "forward", spy)
    x, kernels, _, _ = inputs(CASES[0], torch.float32)
    monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
    carafe(x, kernels, 2)
    assert calls == [2]
    monkeypatch.setenv(_native.DISABLE_ENV, "1")
    carafe(x, kernels, 2)
    assert calls == [2]


@pytest.mark.parametrize("case", [(1, 2, 3, 4, 7, 9, 3, 2), (2, 1, 2, 2, 5, 4, 3, 2)], ids=case_id)
def test_gradcheck(path, case):
    x, kernels, _, _ = inputs(case)
    x.requires_grad_()
    kernels.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: carafe(a, b, case[-1]), (x, kernels))


def test_scale_is_inferred_for_exact_multiples(path):
    x, kernels, _, (ref, _, _) = inputs((1, 2, 4, 3, 12, 9, 3, 3))
    torch.testing.assert_close(carafe(x, kernels), ref, rtol=1e-12, atol=1e-12)


def test_non_contiguous_and_channels_last_inputs(path):
    case = CASES[0]
    x, kernels, grad, (ref, ref_gx, ref_gk) = inputs(case)
    # channels_last x; kernels as a transposed view of a (B, K*K, W_out, H_out) tensor.
    x_cl = x.contiguous(memory_format=torch.channels_last)
    k_view = kernels.transpose(2, 3).contiguous().transpose(2, 3)
    assert not x_cl.is_contiguous() and not k_view.is_contiguous()
    out, gx, gk = forward_and_grads(x_cl, k_view, 2, grad)
    assert out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gk, ref_gk, rtol=1e-12, atol=1e-12)
    # A strided slice of a larger tensor and a non-contiguous upstream gradient.
    wide = torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:], dtype=D)
    wide[:, ::2] = x
    out, gx, gk = forward_and_grads(wide[:, ::2], kernels, 2, grad.transpose(2, 3).contiguous().transpose(2, 3))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gk, ref_gk, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "case", [(2, 9, 6, 5, 13, 11, 5, 2), (1, 13, 1, 2, 2, 4, 3, 2), (2, 21, 3, 4, 7, 9, 3, 2)], ids=case_id
)
@pytest.mark.parametrize("threads_from", ["torch's OpenMP", "started per call"])
def test_two_threads_give_the_single_thread_result(path, case, threads_from, monkeypatch):
    monkeypatch.setattr(_native, "_MIN_WORK_PER_THREAD", 1)  # thread even these tiny problems
    if threads_from == "started per call":
        monkeypatch.setattr(_native, "_openmp_runner", lambda: None)
    x, kernels, grad, (ref, ref_gx, ref_gk) = inputs(case, torch.float32)
    single = forward_and_grads(x, kernels, case[-1], grad)
    torch.set_num_threads(2)
    assert _native._threads(x, kernels) == 2
    double = forward_and_grads(x, kernels, case[-1], grad)
    for a, b, r in zip(double, single, (ref, ref_gx, ref_gk)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a.double(), r, rtol=1e-5, atol=1e-5)


def test_empty_batch(path):
    x = torch.randn(0, 3, 4, 5, requires_grad=True)
    kernels = torch.randn(0, 9, 8, 10, requires_grad=True)
    out = carafe(x, kernels)
    assert out.shape == (0, 3, 8, 10)
    gx, gk = torch.autograd.grad(out, (x, kernels), torch.ones_like(out))
    assert gx.shape == x.shape and gk.shape == kernels.shape


def test_the_kernel_runs_on_torchs_openmp_threads_when_torch_uses_openmp():
    runner = _native._openmp_runner()
    if "parallel backend: OpenMP" in torch.__config__.parallel_info():
        assert runner == ctypes.cast(ctypes.CDLL(None).GOMP_parallel, ctypes.c_void_p).value
    else:
        assert runner is None


def test_small_problems_run_on_one_thread():
    torch.set_num_threads(2)
    x = torch.empty(2, 16, 32, 32)
    small, large = torch.empty(2, 9, 64, 64), torch.empty(2, 25, 64, 64)
    assert 2 * 16 * 9 * 64 * 64 < _native._MIN_WORK_PER_THREAD * 2 <= 2 * 16 * 25 * 64 * 64
    assert _native._threads(x, small) == 1
    assert _native._threads(x, large) == 2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_close_to_float32(path, dtype):
    case = CASES[0]
    x, kernels, grad, _ = inputs(case, torch.float32)
    ref = forward_and_grads(x, kernels, 2, grad)
    low = forward_and_grads(x.to(dtype), kernels.to(dtype), 2, grad.to(dtype))
    tol = {torch.bfloat16: 3e-2, torch.float16: 5e-3}[dtype]
    for a, b in zip(low, ref):
        assert a.dtype == dtype
        torch.testing.assert_close(a.float(), b, rtol=tol, atol=tol)


def test_torch_compile_fullgraph_same_values_and_grads(path):
    case = CASES[0]
    x, kernels, grad, _ = inputs(case, torch.float32)
    compiled = torch.compile(lambda a, b: carafe(a, b, 2), fullgraph=True)
    xc, kc = x.clone().requires_grad_(), kernels.clone().requires_grad_()
    out = compiled(xc, kc)
    gx, gk = torch.autograd.grad(out, (xc, kc), grad)
    eager = forward_and_grads(x, kernels, 2, grad)
    for a, b in zip((out.detach(), gx, gk), eager):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class _Reassemble(torch.nn.Module):
    def forward(self, x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        return carafe(x, kernels, 2)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_onnx_export_runs_in_onnxruntime(tmp_path, dynamo):
    import onnxruntime as ort

    case = CASES[0]
    x, kernels, _, (ref, _, _) = inputs(case, torch.float32)
    path = tmp_path / "carafe.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(_Reassemble(), (x, kernels), dynamo=True, opset_version=18).save(str(path))
        else:
            torch.onnx.export(_Reassemble(), (x, kernels), str(path), dynamo=False, opset_version=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    (out,) = session.run(None, dict(zip(names, (x.numpy(), kernels.numpy()))))
    torch.testing.assert_close(torch.from_numpy(out).double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("x_shape", "k_shape", "scale", "message"),
    [
        ((2, 3, 4), (2, 9, 8, 8), None, r"x: expected a 4-D tensor \(B, C, H, W\), got 3-D shape \(2, 3, 4\)"),
        ((2, 3, 4, 4), (2, 9, 8), None, r"kernels: expected a 4-D tensor \(B, K\*K, H_out, W_out\), got 3-D"),
        ((2, 3, 4, 4), (3, 9, 8, 8), None, r"batch mismatch: x has batch 2, kernels has batch 3"),
        ((1, 3, 4, 4), (1, 8, 8, 8), None, r"expected K\*K channels with K odd .*got 8 channels"),
        ((1, 3, 4, 4), (1, 4, 8, 8), None, r"expected K\*K channels with K odd .*got 4 channels"),
        ((1, 3, 4, 4), (1, 9, 8, 7), None, r"cannot infer an integer scale .*\(4, 4\) .*\(8, 7\)"),
        ((1, 3, 4, 4), (1, 9, 10, 8), 2, r"kernels spatial size vs x: .*\(8, 8\) at scale 2, got \(10, 8\)"),
        ((1, 3, 4, 4), (1, 9, 8, 8), 0, r"scale must be a positive integer, got 0"),
        ((1, 3, 4, 4), (1, 9, 8, 8), 2.0, r"scale must be a positive integer, got 2.0"),
    ],
)
def test_invalid_inputs_raise(x_shape, k_shape, scale, message):
    with pytest.raises(ValueError, match=message):
        carafe(torch.zeros(x_shape), torch.zeros(k_shape), scale)


def test_dtype_and_device_mismatch_raise():
    x = torch.zeros(1, 2, 3, 3)
    with pytest.raises(TypeError, match=r"kernels: expected dtype torch.float32 \(that of x\), got torch.float64"):
        carafe(x, torch.zeros(1, 9, 6, 6, dtype=D))
    with pytest.raises(ValueError, match=r"device mismatch: x is on cpu, kernels on meta"):
        carafe(x, torch.zeros(1, 9, 6, 6, device="meta"))



@pytest.mark.parametrize("kernels_dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_autocast_runs_the_reassembly_in_float32(kernels_dtype):
    """Under autocast a float32 x meets half-precision kernels (those a conv predicts): both are cast
    to float32, forward and backward, whether through carafe or the operator itself."""
    x = torch.randn(1, 3, 4, 5, requires_grad=True)
    kernels = torch.rand(1, 9, 8, 10).to(kernels_dtype).requires_grad_()
    expected = carafe(x.detach().double(), kernels.detach().double())
    for call in (carafe, lambda a, b: torch.ops.fade.carafe(a, b, 2)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = call(x, kernels)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
        out.sum().backward()
        assert x.grad.dtype == torch.float32 and kernels.grad.dtype == kernels_dtype
        x.grad = kernels.grad = None

def test_meta_tensors_give_shapes_without_computing():
    out = carafe(torch.empty(2, 4, 7, 5, device="meta"), torch.empty(2, 25, 15, 11, device="meta"), 2)
    assert out.device.type == "meta" and out.shape == (2, 4, 15, 11)


def test_broken_compiler_warns_once_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
    monkeypatch.setenv(_native.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    _native._library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=r"building the native carafe kernel with .*false failed"):
            assert not _native.available()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            x, kernels, _, (ref, _, _) = inputs(CASES[0])
            torch.testing.assert_close(carafe(x, kernels, 2), ref, rtol=1e-12, atol=1e-12)
        assert list(tmp_path.iterdir()) == []
    finally:
        _native._library.cache_clear()


def test_concurrent_builds_share_one_cached_library(monkeypatch, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv(_native.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(_native, "_FLAGS", ("-O0", "-std=c++17", "-shared", "-fPIC", "-pthread", "-Wno-psabi"))
    monkeypatch.setattr(_native, "_ARCH_FLAGS", ((),))
    compiler = _native._compiler()
    with ThreadPoolExecutor(2) as pool:
        libs = list(pool.map(lambda _: _native._build(compiler), range(2)))
    assert all(hasattr(lib, "fade_carafe_forward_f32") for lib in libs)
    (cached,) = tmp_path.iterdir()
    assert cached.name.startswith("carafe_cpu-") and cached.suffix == ".so"
    built = cached.stat().st_mtime_ns
    monkeypatch.setattr(_native.subprocess, "run", None)  # a third call must not compile
    assert hasattr(_native._build(compiler), "fade_carafe_backward_f64")
    assert [p.name for p in tmp_path.iterdir()] == [cached.name] and cached.stat().st_mtime_ns == built


@pytest.mark.parametrize(
    ("x", "kernels", "message"),
    [
        (np.zeros((1, 1, 2, 2), np.float32), torch.zeros(1, 9, 4, 4), r"x: expected a torch.Tensor .*numpy.ndarray"),
        (torch.zeros(1, 1, 2, 2), [[0.0]], r"kernels: expected a torch.Tensor \(B, K\*K, H_out, W_out\), got list"),
        (None, torch.zeros(1, 9, 4, 4), r"x: expected a torch.Tensor .*got NoneType"),
        (torch.zeros(1, 1, 2, 2).to_sparse(), torch.zeros(1, 9, 4, 4), r"x: expected a dense .*torch.sparse_coo"),
    ],
)
def test_non_tensor_inputs_raise_type_error(x, kernels, message):
    with pytest.raises(TypeError, match=message):
        carafe(x, kernels)


@pytest.mark.parametrize(
    "dtype", [torch.bool, torch.uint8, torch.int32, torch.int64, torch.complex64, torch.float8_e4m3fn]
)
@pytest.mark.parametrize("argument", ["x", "kernels"])
def test_unsupported_dtypes_raise_type_error(dtype, argument):
    tensors = {"x": torch.zeros(1, 1, 2, 2), "kernels": torch.zeros(1, 9, 4, 4)}
    tensors[argument] = tensors[argument].to(dtype)
    supported = r"\(torch.float16, torch.bfloat16, torch.float32, torch.float64\)"
    with pytest.raises(TypeError, match=rf"{argument}: expected a floating dtype {supported}, got {dtype}"):
        carafe(tensors["x"], tensors["kernels"])


@pytest.mark.parametrize(
    ("x_shape", "k_shape", "scale", "message"),
    [
        ((1, 1, 0, 10), (1, 9, 0, 20), None, r"x: expected a spatial size \(H, W\) of positive extents, got \(0, 10\)"),
        ((1, 1, 0, 10), (1, 9, 0, 20), 2, r"x: expected a spatial size \(H, W\) of positive extents, got \(0, 10\)"),
        ((1, 1, 3, 3), (1, 9, 6, 0), 2, r"kernels: expected a spatial size \(H, W\) of positive extents, got \(6, 0\)"),
    ],
)
def test_zero_spatial_sizes_are_named(x_shape, k_shape, scale, message):
    with pytest.raises(ValueError, match=message):
        carafe(torch.zeros(x_shape), torch.zeros(k_shape), scale)


def test_zero_channels_and_empty_batch(path):
    for x_shape, k_shape in [((2, 0, 3, 4), (2, 9, 7, 8)), ((0, 0, 3, 4), (0, 9, 6, 8))]:
        x = torch.randn(x_shape, requires_grad=True)
        kernels = torch.randn(k_shape, requires_grad=True)
        out = carafe(x, kernels, 2)
        assert out.shape == (x_shape[0], 0, *k_shape[2:])
        gx, gk = torch.autograd.grad(out, (x, kernels), torch.ones_like(out))
        assert gx.shape == x.shape and torch.equal(gk, torch.zeros_like(kernels))


def test_meta_backward_gives_shapes():
    x = torch.empty(2, 4, 7, 5, device="meta", requires_grad=True)
    kernels = torch.empty(2, 25, 15, 11, device="meta", requires_grad=True)
    out = carafe(x, kernels, 2)
    gx, gk = torch.autograd.grad(out, (x, kernels), torch.empty_like(out))
    assert gx.device.type == gk.device.type == "meta" and gx.shape == x.shape and gk.shape == kernels.shape


@pytest.mark.parametrize("scale", [5, 2**31, 2**48, 2**62, 2**63 - 1, 2**64, 10**30])
def test_scales_beyond_the_output_over_a_one_pixel_map(path, scale):
    # Any scale >= the output extent reads pixel 0 everywhere (ceil-mode pooling of a tiny map).
    assert carafe(torch.tensor([[[[1.5]]]]), torch.ones(1, 1, 1, 1), scale).item() == 1.5
    gen = torch.Generator().manual_seed(scale % 1000)
    x = torch.randn(1, 2, 1, 1, generator=gen, dtype=D)
    kernels = torch.randn(1, 9, 3, 5, generator=gen, dtype=D)
    grad = torch.randn(1, 2, 3, 5, generator=gen, dtype=D)
    ref = naive_carafe(x, kernels, scale, grad)
    for got, want in zip(forward_and_grads(x, kernels, scale, grad), ref):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_output_beyond_a_tensor_is_refused_before_allocating():
    x = torch.zeros(1, 1, 1, 1).expand(1, 2**20, 1, 1)
    kernels = torch.zeros(1, 1, 1, 1).expand(1, 1, 2**22, 2**22)
    with pytest.raises(ValueError, match=r"output: shape \(1, 1048576, 4194304, 4194304\) of torch.float32 needs more"):
        carafe(x, kernels, 2**22)


def test_native_refuses_sizes_it_cannot_index(monkeypatch):
    monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
    assert _native._fits((2, 3, 7, 5, 15, 11, 5, 2), 2)
    assert not _native._fits((1, 1, 1, 1, 1, 1, 1, 2**62), 1)
    assert not _native._fits((1, 2**40, 1, 2**20, 1, 2**21, 1, 2), 1)
    lib = _native._library()
    null = ctypes.c_void_p()
    # The C++ entry points check the same bounds (and the shape) before touching memory: status 2.
    huge_scale, even_k, zero_h = (1,) * 7 + (2**62,), (1,) * 6 + (2, 1), (1, 1, 0) + (1,) * 5
    for shape in [huge_scale, even_k, zero_h, (1, 2**62) + (1,) * 6]:
        assert lib.fade_carafe_forward_f32(null, null, null, null, null, *shape, 1, null) == 2
        assert lib.fade_carafe_backward_f64(null, null, null, null, null, *shape, 1, null) == 2
    # Scratch that fits int64 but not in memory: status 1, and forward() returns None.
    x, kernels = torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    assert _native._fits((1, 1, 1, 1, 1, 1, 1, 2**47), 1)
    assert _native.forward(x, kernels, 1, 2**47) is None
    assert _native.backward(x, x, kernels, 1, 2**47) is None


def test_sizes_the_native_kernel_cannot_hold_take_the_fallback(monkeypatch):
    monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
    calls = []
    for name in ("forward", "backward"):
        original = getattr(_native, name)
        monkeypatch.setattr(_native, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    x, kernels, grad, ref = inputs(CASES[0])
    monkeypatch.setattr(_native, "_MAX_ELEMENTS", 1000)  # below this case's scratch
    for got, want in zip(forward_and_grads(x, kernels, 2, grad), ref):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert calls == []
    monkeypatch.setattr(_native, "_MAX_ELEMENTS", 2**60)
    forward_and_grads(x, kernels, 2, grad)
    assert calls == ["forward", "backward"]
    # When the kernel cannot allocate its scratch, the fallback computes the result.
    monkeypatch.setattr(_native, "forward", lambda *a: None)
    monkeypatch.setattr(_native, "backward", lambda *a: None)
    for got, want in zip(forward_and_grads(x, kernels, 2, grad), ref):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_nan_and_inf_weights_outside_x_propagate_alike(monkeypatch):
    # 5x5 from 2x2 at scale 2: row and column 4 are floor-mode, computed by definition natively.
    x = torch.randn(1, 2, 2, 2, dtype=D)
    kernels = torch.rand(1, 9, 5, 5, dtype=D)
    kernels[0, 0, :, 4] = float("nan")  # tap (-1, -1): outside x for every pixel of row 0
    kernels[0, 8, 4, :] = float("inf")  # tap (+1, +1): outside x on the last rows
    grad = torch.randn(1, 2, 5, 5, dtype=D)
    grad[0, 1, 4, 4] = float("nan")
    results = {}
    for flag in ("0", "1"):
        monkeypatch.setenv(_native.DISABLE_ENV, flag)
        results[flag] = forward_and_grads(x, kernels, 2, grad)
    for native, fallback in zip(results["0"], results["1"]):
        assert torch.equal(native.isnan(), fallback.isnan()) and native.isnan().any()
        torch.testing.assert_close(native, fallback, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_second_order_gradients_raise_a_clear_error(path):
    x, kernels, grad, _ = inputs(CASES[2])
    x.requires_grad_()
    kernels.requires_grad_()
    gx, _ = torch.autograd.grad(carafe(x, kernels, 2), (x, kernels), grad, create_graph=True)
    with pytest.raises(NotImplementedError, match=r"fade.ops.carafe: second-order gradients .* are not supported"):
        torch.autograd.grad(gx.sum(), kernels)


def blend_inputs(case, dtype=D):
    """(x, kernels, end, weight) for a case: end of the output's shape, weight in [0, 1] per pixel."""
    x, kernels, _, (ref, _, _) = inputs(case, dtype)
    gen = torch.Generator().manual_seed(7)
    end = torch.randn(ref.shape, generator=gen, dtype=D).to(dtype)
    weight = torch.rand((ref.shape[0], 1, *ref.shape[2:]), generator=gen, dtype=D).to(dtype)
    return x, kernels, end, weight, ref


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_carafe_lerp_matches_the_naive_reassembly_blended(path, case):
    """The fused blend (no gradient needed) against the float64 loop reassembly, blended by hand."""
    x, kernels, end, weight, ref = blend_inputs(case)
    expected = end * weight + ref * (1 - weight)
    out = carafe_lerp(x, kernels, end, weight, case[-1])
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    x32, k32, end32, weight32, _ = blend_inputs(case, torch.float32)
    out32 = carafe_lerp(x32, k32, end32, weight32, case[-1])
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [CASES[0], CASES[-1]], ids=case_id)
def test_carafe_lerp_gradients_are_those_of_carafe_then_lerp(path, case):
    x, kernels, end, weight, _ = blend_inputs(case)
    leaves = [t.detach().requires_grad_() for t in (x, kernels, end, weight)]
    out = carafe_lerp(*leaves, case[-1])
    expected = torch.lerp(carafe(*leaves[:2], case[-1]), leaves[2], leaves[3])
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    expected_grads = torch.autograd.grad(expected, leaves, grad)
    for a, b in zip(torch.autograd.grad(out, leaves, grad), expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # Each input alone: the others' gradients are not computed, the one asked for is the same.
    for i, leaf in enumerate(leaves):
        inputs = [t if j == i else t.detach() for j, t in enumerate(leaves)]
        alone = torch.autograd.grad(carafe_lerp(*inputs, case[-1]), leaf, grad)[0]
        torch.testing.assert_close(alone, expected_grads[i], rtol=1e-12, atol=1e-12)


def test_carafe_lerp_takes_any_layout_and_half_precision(path):
    case = (1, 6, 3, 20, 6, 40, 5, 2)
    x, kernels, end, weight, _ = blend_inputs(case, torch.float32)
    expected = carafe_lerp(x, kernels, end, weight)
    cl = [t.contiguous(memory_format=torch.channels_last) for t in (x, kernels, end, weight)]
    torch.testing.assert_close(carafe_lerp(*cl), expected, rtol=1e-6, atol=1e-6)
    half = carafe_lerp(*(t.bfloat16() for t in (x, kernels, end, weight)))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), expected, rtol=0.05, atol=0.05)


def test_carafe_lerp_under_autocast_is_float32():
    x, kernels, end, weight, _ = blend_inputs(CASES[0], torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = carafe_lerp(x, kernels.bfloat16(), end.bfloat16(), weight, 2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.lerp(carafe(x, kernels, 2), end, weight), rtol=0.02, atol=0.02)


def test_carafe_lerp_refuses_a_wrong_end_or_weight():
    x, kernels, end, weight, _ = blend_inputs(CASES[0])
    with pytest.raises(ValueError, match=r"end: expected shape \(2, 3, 15, 11\)"):
        carafe_lerp(x, kernels, end[:, :2], weight, 2)
    with pytest.raises(ValueError, match=r"weight: expected shape \(2, 1, 15, 11\)"):
        carafe_lerp(x, kernels, end, weight.expand(-1, 3, -1, -1), 2)
    with pytest.raises(TypeError, match="end: expected dtype torch.float64"):
        carafe_lerp(x, kernels, end.float(), weight, 2)
    with pytest.raises(ValueError, match="weight: expected a 4-D tensor"):
        carafe_lerp(x, kernels, end, weight[0], 2)
    with pytest.raises(ValueError, match="device mismatch: x is on cpu, end on meta"):
        carafe_lerp(x, kernels, end.to("meta"), weight, 2)


def test_carafe_lerp_compiles_fullgraph(path):
    x, kernels, end, weight, _ = blend_inputs(CASES[8], torch.float32)
    compiled = torch.compile(carafe_lerp, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, kernels, end, weight), carafe_lerp(x, kernels, end, weight))


# (B, C, H, W) for the blend gradients: channel counts off the kernel's 4-channel sweep, pixel
# counts with partial vectors and beyond one 1024-pixel task, one pixel, an empty batch, no channel.
BLEND_SHAPES = [(2, 5, 3, 7), (1, 1, 1, 1), (3, 9, 33, 35), (1, 4, 1, 17), (0, 3, 2, 2), (2, 0, 3, 2)]


@pytest.mark.parametrize("shape", BLEND_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blend_grads_match_a_float64_loop(path, shape, dtype):
    b, c, h, w = shape
    grad, end = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
    weight = torch.rand(b, 1, h, w, dtype=dtype)
    grad_end, dot = torch.ops.fade.blend_grads(grad, end, weight)
    expected_dot = torch.zeros(b, 1, h, w, dtype=torch.float64)
    for ci in range(c):
        expected_dot[:, 0] += grad[:, ci].double() * end[:, ci].double()
    assert grad_end.dtype == dot.dtype == dtype and dot.shape == (b, 1, h, w)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(grad_end.double(), grad.double() * weight.double(), rtol=tol, atol=tol)
    torch.testing.assert_close(dot.double(), expected_dot, rtol=tol, atol=tol)


def test_blend_grads_native_kernel_is_used_and_any_layout_takes_the_fallback(monkeypatch):
    monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
    grad, end, weight = torch.randn(2, 6, 9, 40), torch.randn(2, 6, 9, 40), torch.rand(2, 1, 9, 40)
    assert _native.supports_blend_grads(grad, end, weight)
    native = _native.blend_grads(grad, end, weight)
    cl = end.contiguous(memory_format=torch.channels_last)
    assert not _native.supports_blend_grads(grad, cl, weight)
    for a, b in zip(torch.ops.fade.blend_grads(grad, cl, weight), native):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert not _native.supports_blend_grads(grad, end.double(), weight)
    monkeypatch.setattr(_native, "_MIN_WORK_PER_THREAD", 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        double = _native.blend_grads(grad, end, weight)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(double, native))  # each pixel's sum in one order


def test_blend_grads_entry_points_refuse_invalid_shapes():
    lib, null = _native._library(), ctypes.c_void_p()
    for shape in [(-1, 1, 1), (1, 0, 1), (1, 1, 0), (2**40, 2**20, 2**10)]:  # (B, C, P)
        assert lib.fade_blend_grads_f32(null, null, null, null, null, *shape, 1, null) == 2
        assert lib.fade_blend_grads_f64(null, null, null, null, null, *shape, 2, null) == 2
    assert lib.fade_blend_grads_f32(null, null, null, null, null, 0, 3, 5, 1, null) == 0  # empty batch
