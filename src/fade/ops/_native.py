"""The native CPU kernels (``csrc/carafe_cpu.cpp``): built on first use, called by ctypes.

:func:`forward` and :func:`backward` reassemble (CARAFE); :func:`pointwise` is the 1x1 convolution
with few output (or input) channels of FADE's kernel generators; :func:`blend_grads` gives the
gradients of the gate's blend that involve the encoder feature.

The C++ source has no torch headers, so the system C++ compiler builds it in seconds. The shared
library is cached in ``$FADE_CACHE_DIR`` (default ``~/.cache/fade``) under a name that hashes the
source, the compiler, the flags and the CPU, so a cache shared between machines never loads a
binary built for another instruction set.

Trust: a library is loaded only from a folder owned by the current user and not writable by group
or others (a missing one is created with mode 0700), and only when the file itself is owned by the
current user and not writable by group or others. The file is checked once opened, and the bytes
read from it are loaded from a fresh copy in the same folder, so it cannot be swapped in between. A cached file that
fails these checks or does not load is rebuilt over, with a warning. When the cache folder itself
cannot be trusted (another owner, group- or other-writable, not a folder, cannot be created), a
warning names it and the kernel is built in a private temporary folder that is removed once the
library is loaded (so each process rebuilds until the folder is fixed).

A build is compiled to a temporary file in the folder, checked to be a loadable library with the
six entry points, and only then moved into place with ``os.replace``: a compiler that exits 0
without a valid output leaves nothing in the cache, and concurrent processes (pytest-xdist workers)
may build at the same time.

With more than one thread the kernel runs on torch's OpenMP threads where it can
(:func:`_openmp_runner`), else on threads it starts per call.

If no compiler works, a warning is issued once and :func:`available` is False; callers then use the
pure-PyTorch path. ``FADE_DISABLE_NATIVE=1`` (or true, yes, on) forces that path (read at every
call). Callers also take that path when :func:`supports` refuses sizes whose indices or scratch
lengths would not fit int64 (decided before anything is allocated), and when :func:`forward` /
:func:`backward` return None because the kernel could not allocate its scratch.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "CACHE_ENV",
    "DISABLE_ENV",
    "POINTWISE_INPUTS",
    "POINTWISE_OUTPUTS",
    "available",
    "backward",
    "blend_grads",
    "empty_map",
    "forward",
    "pointwise",
    "supports",
    "supports_blend_grads",
    "supports_pointwise",
]

DISABLE_ENV = "FADE_DISABLE_NATIVE"
CACHE_ENV = "FADE_CACHE_DIR"
_SOURCE = Path(__file__).with_name("csrc") / "carafe_cpu.cpp"
_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", "-Wno-psabi")
# Tuned for this CPU if the compiler can, else portable code.
_ARCH_FLAGS = (("-march=native",), ())
_COMPILE_TIMEOUT_S = 300
_MAX_DETAIL_CHARS = 2000
_NATIVE_DTYPES = (torch.float32, torch.float64)
_CONVERTED_DTYPES = (torch.float16, torch.bfloat16)
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
# :func:`pointwise` takes 2 to 64 output channels (a matrix-vector product is as fast for one, a
# general matrix product beyond 64), or more from at most 64 input channels.
POINTWISE_OUTPUTS = range(2, 65)
POINTWISE_INPUTS = range(1, 65)
# Multiply-adds that make starting one more thread worthwhile (a thread start costs ~20-50 us).
_MIN_WORK_PER_THREAD = 1 << 20
# Largest element count the kernel indexes, so that byte offsets of 8-byte elements fit int64
# (the C++ entry points check the same bound, kMaxElements, and return 2 beyond it).
_MAX_ELEMENTS = (2**63 - 1) // 8
# Channels per forward / grad_x task, and the most per channel block (kGroupChannels, and
# kWideChannelBlock with AVX-512, in C++; it is 4 on other targets, so the count below is an upper bound).
_GROUP_CHANNELS, _CHANNEL_BLOCK = 16, 8
# Elements after each worker's scratch (kScratchSlack: kVectorBytes, at most 64).
_SCRATCH_SLACK = 64
_PRIVATE_MODE = 0o700
_FOREIGN_WRITE = stat.S_IWGRP | stat.S_IWOTH


class _BuildError(Exception):
    """The compiler failed or produced no loadable library."""


def _compiler() -> str | None:
    """The C++ compiler: ``$CXX``, else the first of c++, g++, clang++ on PATH."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    return next((p for p in map(shutil.which, candidates) if p), None)


def _cpu_signature() -> str:
    """Machine architecture plus the CPU feature flags that ``-march=native`` compiles for."""
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _cache_dir() -> Path:
    """``$FADE_CACHE_DIR`` (``~`` expanded), else ``~/.cache/fade`` (RuntimeError without a home folder)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fade").expanduser()


def _distrust(st: os.stat_result) -> str | None:
    """Why a file or folder with this status could hold another user's code, or None."""
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by the current user (uid {os.geteuid()})"
    if st.st_mode & _FOREIGN_WRITE:
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _cache_folder() -> tuple[Path, str | None]:
    """The cache folder (created with mode 0700 if missing) and why it cannot be trusted, or None."""
    try:
        folder = _cache_dir()
    except RuntimeError as err:
        return Path(f"${CACHE_ENV}"), f"is unset and there is no home folder ({err})"
    try:
        if not os.path.lexists(folder):
            folder.mkdir(mode=_PRIVATE_MODE, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError as err:
        return folder, f"cannot be created or read ({err.strerror or err})"
    if not stat.S_ISDIR(st.st_mode):
        return folder, "is not a folder"
    return folder, _distrust(st)


def _declare(lib: ctypes.CDLL) -> None:
    """Set the argument types of the twelve entry points (AttributeError if one is missing)."""
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    shape = [i64] * 8
    for suffix in _SUFFIX.values():
        conv = getattr(lib, f"fade_pointwise_{suffix}")
        conv.argtypes, conv.restype = [p, p, p, p, *shape[:4], ctypes.c_int, ctypes.c_int, ctypes.c_int, p], ctypes.c_int
        fwd = getattr(lib, f"fade_carafe_forward_{suffix}")
        fwd.argtypes, fwd.restype = [p, p, p, p, p, *shape, ctypes.c_int, p], ctypes.c_int
        bwd = getattr(lib, f"fade_carafe_backward_{suffix}")
        bwd.argtypes, bwd.restype = [p, p, p, p, p, *shape, ctypes.c_int, p], ctypes.c_int
        blend = getattr(lib, f"fade_blend_grads_{suffix}")
        blend.argtypes, blend.restype = [p, p, p, p, p, *shape[:3], ctypes.c_int, p], ctypes.c_int
        softmax = getattr(lib, f"fade_semi_shift_softmax_{suffix}")
        softmax.argtypes, softmax.restype = [p, p, p, *shape[:7], ctypes.c_int, p], ctypes.c_int
        softmax_bwd = getattr(lib, f"fade_semi_shift_softmax_backward_{suffix}")
        softmax_bwd.argtypes, softmax_bwd.restype = [p, p, p, p, *shape[:7], ctypes.c_int, p], ctypes.c_int


def _load(path: Path) -> ctypes.CDLL:
    """Load the library at ``path`` if the current user alone can have written it.

    The open file is checked, and the bytes read from it are loaded from a fresh copy in the same
    (trusted) folder, so the file cannot be swapped between the check and the load.

    Raises:
        OSError: not a regular file (symbolic links included), not trusted, or not loadable.
        AttributeError: an entry point is missing.
    """
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as file:
        st = os.fstat(file.fileno())
        reason = "is not a regular file" if not stat.S_ISREG(st.st_mode) else _distrust(st)
        if reason is not None:
            raise OSError(f"{path} {reason}")
        content = file.read()
    fd, copy = tempfile.mkstemp(dir=path.parent, prefix=".load-", suffix=".so")
    try:
        with open(fd, "wb") as out:
            out.write(content)
        lib = ctypes.CDLL(copy)
    finally:
        os.unlink(copy)
    _declare(lib)
    return lib


def _compile(compiler: str, flags: tuple[str, ...], target: Path) -> ctypes.CDLL:
    """Compile into a temporary file beside ``target``, load it, then move it to ``target``.

    Raises:
        _BuildError: the compiler failed, or its output is not a loadable library.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".carafe_cpu-", suffix=".so")
    os.close(fd)
    try:
        try:
            cmd = [compiler, *flags, str(_SOURCE), "-o", tmp]
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_S)
        except subprocess.CalledProcessError as err:
            raise _BuildError(f"exit status {err.returncode}: {err.stderr or ''}") from None
        except (subprocess.TimeoutExpired, OSError) as err:
            raise _BuildError(str(err)) from None
        try:
            os.chmod(tmp, _PRIVATE_MODE)  # the linker creates its output with the umask's mode
            lib = _load(Path(tmp))
        except (OSError, AttributeError) as err:
            raise _BuildError(f"exit status 0 but no loadable library came out ({err})") from None
        os.replace(tmp, target)
        return lib
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _build_in(compiler: str, folder: Path) -> ctypes.CDLL:
    """The library cached in ``folder``, compiled there first if missing, untrusted or broken.

    Tries ``-march=native`` first, then portable flags.

    Raises:
        _BuildError: when both fail.
    """
    error = _BuildError("nothing was tried")
    for arch in _ARCH_FLAGS:
        flags = (*_FLAGS, *arch)
        key = hashlib.sha256()
        for part in (_SOURCE.read_bytes(), compiler.encode(), " ".join(flags).encode(), _cpu_signature().encode()):
            key.update(part)
            key.update(b"\0")
        target = folder / f"carafe_cpu-{key.hexdigest()[:20]}.so"
        if os.path.lexists(target):
            try:
                return _load(target)
            except (OSError, AttributeError) as err:
                message = f"fade: rebuilding the cached native kernel {target}: {err}"
                warnings.warn(message, RuntimeWarning, stacklevel=2)
        try:
            return _compile(compiler, flags, target)
        except _BuildError as err:
            error = err
        except OSError as err:
            error = _BuildError(f"cannot write to {folder}: {err}")
    raise error


def _build(compiler: str) -> ctypes.CDLL:
    """The loaded kernel library: from the cache folder, or from a private one if that is not trusted.

    Raises:
        _BuildError: the kernel could not be compiled into a loadable library.
    """
    folder, reason = _cache_folder()
    if reason is None:
        return _build_in(compiler, folder)
    warnings.warn(
        f"fade: the native kernel cache folder {folder} {reason}; building in a private temporary "
        f"folder instead (set {CACHE_ENV} to a folder only you can write to)",
        RuntimeWarning,
        stacklevel=2,
    )
    with tempfile.TemporaryDirectory(prefix="fade-native-") as private:
        return _build_in(compiler, Path(private))


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None (with one warning) when it cannot be built or loaded."""
    compiler = _compiler()
    if compiler is None:
        warnings.warn("fade: no C++ compiler found; carafe uses the pure-PyTorch path", RuntimeWarning, stacklevel=2)
        return None
    try:
        return _build(compiler)
    except (_BuildError, OSError) as err:
        warnings.warn(
            f"fade: building the native carafe kernel with {compiler} failed, using the pure-PyTorch path: "
            f"{str(err)[-_MAX_DETAIL_CHARS:]}",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def available() -> bool:
    """True unless FADE_DISABLE_NATIVE is 1 (true, yes, on) or the kernel could not be built."""
    disabled = os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    return not disabled and _library() is not None


def _fits(shape: tuple[int, ...], threads: int) -> bool:
    """True when every element count the kernel derives from ``shape`` fits _MAX_ELEMENTS.

    Counts the tensors, the scaled row extents, the row split and the scratch of ``threads``
    workers in each phase (forward, grad_kernels, grad_x), as the C++ entry points do (with the
    widest channel block, so never fewer).
    """
    b, c, h, w, ho, wo, k, s = shape
    row_len = (w + k - 1) * s
    ring_rows = k * ho
    counts = (
        b * c * h * w,
        b * k * k * ho * wo,
        b * c * ho * wo,
        s * (h + 1),
        4 * threads * (h + 1),
        s * (w + k),
        threads * (_GROUP_CHANNELS * k * row_len + _SCRATCH_SLACK),
        threads * (c * k * row_len + 2 * c * (wo + _SCRATCH_SLACK) + _SCRATCH_SLACK),
        threads * (ring_rows * (_GROUP_CHANNELS + k) * row_len + _CHANNEL_BLOCK * s * w + _SCRATCH_SLACK),
        threads * ring_rows,
    )
    return max(counts) <= _MAX_ELEMENTS


def supports(x: Tensor, kernels: Tensor, k: int, scale: int) -> bool:
    """True when the native kernel can reassemble these (validated) inputs right now.

    They must be CPU floating tensors whose sizes the kernel can index (:func:`_fits`).
    """
    return (
        x.device.type == "cpu"
        and x.dtype in _NATIVE_DTYPES + _CONVERTED_DTYPES
        and _fits(_shape_args(x, kernels, k, scale), _threads(x, kernels))
        and available()
    )


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32/float64 run as they are; half types run in float32 (converted back afterwards)."""
    return dtype if dtype in _NATIVE_DTYPES else torch.float32


def _shape_args(x: Tensor, kernels: Tensor, k: int, scale: int) -> tuple[int, ...]:
    """(B, C, H, W, H_out, W_out, K, s), the shape arguments of the entry points."""
    b, c, h, w = x.shape
    return b, c, h, w, kernels.shape[-2], kernels.shape[-1], k, scale


@functools.cache
def _openmp_runner() -> int | None:
    """Address of ``GOMP_parallel`` when torch's ops run on OpenMP and the process exports it, else None.

    The kernel then runs on torch's own OpenMP threads. Threads it started itself would share the
    cores with those, which spin for a while after each torch op: at 2 threads, a reassembly that
    follows a torch op ran at 1-thread speed. (GNU, LLVM and Intel OpenMP all export this entry.)
    """
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        return ctypes.cast(ctypes.CDLL(None).GOMP_parallel, ctypes.c_void_p).value
    except (AttributeError, OSError, TypeError):  # not exported, or no process-wide namespace
        return None


def _threads(x: Tensor, kernels: Tensor) -> int:
    """Threads for one reassembly call (its multiply-adds, :func:`_threads_for`)."""
    b, k2, ho, wo = kernels.shape
    return _threads_for(b * x.shape[1] * k2 * ho * wo)


def _threads_for(work: int) -> int:
    """Threads for a call of ``work`` multiply-adds: torch.get_num_threads(), fewer for small problems."""
    return max(1, min(torch.get_num_threads(), work // _MIN_WORK_PER_THREAD))


def empty_map(like: Tensor, shape: tuple[int, int, int, int], channels_last: bool) -> Tensor:
    """An uninitialised Tensor[B, C, H, W] of ``like``'s dtype and device, channels-last or contiguous."""
    b, c, h, w = shape
    return like.new_empty((b, h, w, c)).permute(0, 3, 1, 2) if channels_last else like.new_empty(shape)


def forward(
    x: Tensor, kernels: Tensor, k: int, scale: int, blend: tuple[Tensor, Tensor] | None = None
) -> Tensor | None:
    """Native reassembly (arguments validated by ``carafe`` and accepted by :func:`supports`).

    Args:
        x: Tensor[B, C, H, W] on the CPU. kernels: Tensor[B, K*K, H_out, W_out], same dtype.
        k: kernel size K. scale: integer scale s.
        blend: (end Tensor[B, C, H_out, W_out], weight Tensor[B, 1, H_out, W_out]) on the CPU, or
            None: each reassembled value v is written as ``torch.lerp(v, end, weight)``.

    Returns:
        Tensor[B, C, H_out, W_out], contiguous, in x's dtype; None when the kernel could not
        allocate its scratch memory.
    """
    dtype = _compute_dtype(x.dtype)
    xc, kc = x.to(dtype).contiguous(), kernels.to(dtype).contiguous()
    end, weight = (None, None) if blend is None else (t.to(dtype).contiguous() for t in blend)
    out = xc.new_empty((x.shape[0], x.shape[1], kernels.shape[-2], kernels.shape[-1]))
    fn = getattr(_library(), f"fade_carafe_forward_{_SUFFIX[dtype]}")
    shape, threads = _shape_args(x, kernels, k, scale), _threads(x, kernels)
    blend_pointers = (None, None) if blend is None else (end.data_ptr(), weight.data_ptr())
    status = fn(xc.data_ptr(), kc.data_ptr(), out.data_ptr(), *blend_pointers, *shape, threads, _openmp_runner())
    return out.to(x.dtype) if status == 0 else None


def backward(grad: Tensor, x: Tensor, kernels: Tensor, k: int, scale: int) -> tuple[Tensor, Tensor] | None:
    """Native gradients of the reassembly w.r.t. x and kernels.

    Args:
        grad: Tensor[B, C, H_out, W_out], gradient of the output. x, kernels, k, scale: as in
            :func:`forward`.

    Returns:
        (Tensor[B, C, H, W], Tensor[B, K*K, H_out, W_out]), contiguous, in x's dtype; None when
        the kernel could not allocate its scratch memory.
    """
    dtype = _compute_dtype(x.dtype)
    gc, xc, kc = (t.to(dtype).contiguous() for t in (grad, x, kernels))
    gx, gk = torch.empty_like(xc), torch.empty_like(kc)
    fn = getattr(_library(), f"fade_carafe_backward_{_SUFFIX[dtype]}")
    status = fn(
        gc.data_ptr(),
        xc.data_ptr(),
        kc.data_ptr(),
        gx.data_ptr(),
        gk.data_ptr(),
        *_shape_args(x, kernels, k, scale),
        _threads(x, kernels),
        _openmp_runner(),
    )
    return (gx.to(x.dtype), gk.to(kernels.dtype)) if status == 0 else None


def supports_pointwise(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    """True when :func:`pointwise` can take these inputs right now.

    x: float32/float64 Tensor[B, C_in, H, W] on the CPU, contiguous or channels-last, with
    C_in, H, W >= 1; weight: Tensor[C_out, C_in] with C_out in POINTWISE_OUTPUTS, or C_in in
    POINTWISE_INPUTS and C_out >= 2; bias: Tensor[C_out] or None; all three of one dtype on the
    CPU; element counts within the kernel's indexing.
    """
    tensors = (x, weight) if bias is None else (x, weight, bias)
    b, c, h, w = x.shape
    o = weight.shape[0]
    return (
        all(t.device.type == "cpu" and t.dtype == x.dtype for t in tensors)
        and x.dtype in _NATIVE_DTYPES
        and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))
        and weight.shape == (o, c)
        and (bias is None or bias.shape == (o,))
        and (o in POINTWISE_OUTPUTS or (o >= 2 and c in POINTWISE_INPUTS))
        and min(c, h, w) >= 1
        and max(b * c * h * w, b * o * h * w) <= _MAX_ELEMENTS
        and available()
    )


def pointwise(x: Tensor, weight: Tensor, bias: Tensor | None, channels_last: bool) -> Tensor | None:
    """Native 1x1 convolution: ``weight @ x`` at every pixel, plus ``bias`` (inputs accepted by
    :func:`supports_pointwise`).

    Args:
        x: Tensor[B, C_in, H, W], contiguous or channels-last. weight: Tensor[C_out, C_in].
            bias: Tensor[C_out] or None.
        channels_last: write the result in the channels-last layout instead of the contiguous one.

    Returns:
        Tensor[B, C_out, H, W] in x's dtype; None when the kernel refused the shape.
    """
    b, c, h, w = x.shape
    o = weight.shape[0]
    out = empty_map(x, (b, o, h, w), channels_last)
    transposed = weight.t().contiguous()  # (C_in, C_out): one input channel's outputs side by side
    bias = None if bias is None else bias.contiguous()
    threads = _threads_for(b * c * o * h * w)
    fn = getattr(_library(), f"fade_pointwise_{_SUFFIX[x.dtype]}")
    pointers = (x.data_ptr(), transposed.data_ptr(), None if bias is None else bias.data_ptr(), out.data_ptr())
    x_channels_last = not x.is_contiguous()
    status = fn(*pointers, b, c, o, h * w, int(x_channels_last), int(channels_last), threads, _openmp_runner())
    return out if status == 0 else None


def supports_blend_grads(grad: Tensor, end: Tensor, weight: Tensor) -> bool:
    """True when :func:`blend_grads` can take these inputs right now: contiguous float32/float64
    CPU tensors of one dtype, grad and end Tensor[B, C, H, W] alike, weight Tensor[B, 1, H, W]."""
    b, _, h, w = grad.shape
    return (
        all(t.device.type == "cpu" and t.dtype == grad.dtype and t.is_contiguous() for t in (grad, end, weight))
        and grad.dtype in _NATIVE_DTYPES
        and end.shape == grad.shape
        and weight.shape == (b, 1, h, w)
        and min(grad.shape[1:]) >= 1
        and grad.numel() <= _MAX_ELEMENTS
        and available()
    )


def blend_grads(grad: Tensor, end: Tensor, weight: Tensor) -> tuple[Tensor, Tensor] | None:
    """``grad * weight`` and ``(grad * end).sum(1, keepdim=True)`` in one pass over grad (inputs
    accepted by :func:`supports_blend_grads`): the gradients of ``torch.lerp(up, end, weight)``
    that involve ``end``.

    Args:
        grad, end: Tensor[B, C, H, W]. weight: Tensor[B, 1, H, W].

    Returns:
        (Tensor[B, C, H, W], Tensor[B, 1, H, W]); None when the kernel refused the shape.
    """
    b, c, h, w = grad.shape
    grad_end, dot = torch.empty_like(grad), torch.empty_like(weight)
    threads = _threads_for(grad.numel())
    fn = getattr(_library(), f"fade_blend_grads_{_SUFFIX[grad.dtype]}")
    pointers = (grad.data_ptr(), end.data_ptr(), weight.data_ptr(), grad_end.data_ptr(), dot.data_ptr())
    status = fn(*pointers, b, c, h * w, threads, _openmp_runner())
    return (grad_end, dot) if status == 0 else None


def _channels_last(t: Tensor) -> bool:
    """True when the memory of t (B, N, H, W) is laid out (B, H, W, N) without gaps."""
    return t.permute(0, 2, 3, 1).is_contiguous()


def _softmax_fits(shape: tuple[int, ...], threads: int) -> bool:
    """True when the softmax kernels can index ``shape`` (B, N, H, W, H_out, W_out, s), as the C++
    entry points check (softmax_fits)."""
    b, n, h, w, ho, wo, s = shape
    return max(b * n * ho * wo, b * n * h * w, s * h, s * w, threads * n * (wo + _SCRATCH_SLACK)) <= _MAX_ELEMENTS


def supports_semi_shift_softmax(high: Tensor, low: Tensor, scale: int) -> bool:
    """True when :func:`semi_shift_softmax` can take these (validated) inputs right now: float32 or
    float64 CPU tensors of one dtype, both channels-last."""
    b, n, ho, wo = high.shape
    return (
        all(t.device.type == "cpu" and t.dtype == high.dtype and _channels_last(t) for t in (high, low))
        and high.dtype in _NATIVE_DTYPES
        and min(n, ho, wo) >= 1
        and _softmax_fits((b, n, *low.shape[-2:], ho, wo, scale), _softmax_threads(high))
        and available()
    )


def _softmax_threads(t: Tensor) -> int:
    """Threads for a softmax call on t (B, N, H_out, W_out): fewer for small problems."""
    return _threads_for(16 * t.numel())


def semi_shift_softmax(high: Tensor, low: Tensor, scale: int) -> Tensor | None:
    """Native ``softmax(high + nearest_upsample(low), dim=1)`` (inputs accepted by
    :func:`supports_semi_shift_softmax`; ``scale`` the effective one).

    Returns:
        Tensor[B, N, H_out, W_out], contiguous; None when the kernel refused the shape.
    """
    b, n, ho, wo = high.shape
    out = torch.empty_like(high, memory_format=torch.contiguous_format)
    threads = _softmax_threads(high)
    fn = getattr(_library(), f"fade_semi_shift_softmax_{_SUFFIX[high.dtype]}")
    status = fn(high.data_ptr(), low.data_ptr(), out.data_ptr(), b, n, *low.shape[-2:], ho, wo, scale, threads, _openmp_runner())
    return out if status == 0 else None


def supports_semi_shift_softmax_backward(grad: Tensor, kernels: Tensor, low_hw: tuple[int, int], scale: int) -> bool:
    """True when :func:`semi_shift_softmax_backward` can take these inputs right now: contiguous
    float32 or float64 CPU tensors of one dtype and shape, positive sizes."""
    b, n, ho, wo = grad.shape
    return (
        all(t.device.type == "cpu" and t.dtype == grad.dtype and t.is_contiguous() for t in (grad, kernels))
        and grad.dtype in _NATIVE_DTYPES
        and kernels.shape == grad.shape
        and min(n, ho, wo, *low_hw) >= 1
        and _softmax_fits((b, n, *low_hw, ho, wo, scale), _softmax_threads(grad))
        and available()
    )


def semi_shift_softmax_backward(
    grad: Tensor, kernels: Tensor, low_hw: tuple[int, int], scale: int
) -> tuple[Tensor, Tensor] | None:
    """Gradients of :func:`semi_shift_softmax` w.r.t. high and low from the output's gradient and the
    output (inputs accepted by :func:`supports_semi_shift_softmax_backward`).

    Returns:
        (Tensor[B, N, H_out, W_out], Tensor[B, N, H, W]), both channels-last; None when the kernel
        refused the shape.
    """
    b, n, ho, wo = grad.shape
    h, w = low_hw
    grad_high, grad_low = empty_map(grad, (b, n, ho, wo), True), empty_map(grad, (b, n, h, w), True)
    threads = _softmax_threads(grad)
    fn = getattr(_library(), f"fade_semi_shift_softmax_backward_{_SUFFIX[grad.dtype]}")
    pointers = (grad.data_ptr(), kernels.data_ptr(), grad_high.data_ptr(), grad_low.data_ptr())
    status = fn(*pointers, b, n, h, w, ho, wo, scale, threads, _openmp_runner())
    return (grad_high, grad_low) if status == 0 else None
