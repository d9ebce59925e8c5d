"""The fused CPU reassembly kernel (``csrc/carafe_cpu.cpp``): built on first use, called by ctypes.

The C++ source has no torch headers, so the system C++ compiler builds it in seconds. The shared
library is cached in ``$FADE_CACHE_DIR`` (default ``~/.cache/fade``) under a name that hashes the
source, the compiler, the flags and the CPU, so a cache shared between machines never loads a
binary built for another instruction set. It is compiled to a temporary file and moved into place
with ``os.replace``, so concurrent processes (pytest-xdist workers) may build it at the same time.

If no compiler works, a warning is issued once and :func:`available` is False; callers then use the
pure-PyTorch path. ``FADE_DISABLE_NATIVE=1`` forces that path (read at every call).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["CACHE_ENV", "DISABLE_ENV", "available", "backward", "forward", "supports"]

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
# Multiply-adds that make starting one more thread worthwhile (a thread start costs ~20-50 us).
_MIN_WORK_PER_THREAD = 1 << 20


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
    """``$FADE_CACHE_DIR``, else ``~/.cache/fade``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fade")


def _build(compiler: str) -> Path:
    """Compile the kernel into the cache (if not there yet) and return the library's path.

    Tries ``-march=native`` first, then portable flags; raises the last compiler error if both fail.
    """
    cache = _cache_dir()
    error: subprocess.SubprocessError | None = None
    for arch in _ARCH_FLAGS:
        flags = (*_FLAGS, *arch)
        key = hashlib.sha256()
        for part in (_SOURCE.read_bytes(), compiler.encode(), " ".join(flags).encode(), _cpu_signature().encode()):
            key.update(part)
            key.update(b"\0")
        target = cache / f"carafe_cpu-{key.hexdigest()[:20]}.so"
        if target.exists():
            return target
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".carafe_cpu-", suffix=".so")
        os.close(fd)
        try:
            cmd = [compiler, *flags, str(_SOURCE), "-o", tmp]
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=_COMPILE_TIMEOUT_S)
            os.replace(tmp, target)
            return target
        except subprocess.SubprocessError as err:
            error = err
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise error


def _declare(lib: ctypes.CDLL) -> None:
    """Set the argument types of the four entry points."""
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    shape = [i64] * 8
    for suffix in _SUFFIX.values():
        fwd = getattr(lib, f"fade_carafe_forward_{suffix}")
        fwd.argtypes, fwd.restype = [p, p, p, *shape, ctypes.c_int], ctypes.c_int
        bwd = getattr(lib, f"fade_carafe_backward_{suffix}")
        bwd.argtypes, bwd.restype = [p, p, p, p, p, *shape, ctypes.c_int], ctypes.c_int


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None (with one warning) when it cannot be built or loaded."""
    compiler = _compiler()
    if compiler is None:
        warnings.warn("fade: no C++ compiler found; carafe uses the pure-PyTorch path", RuntimeWarning, stacklevel=2)
        return None
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
        _declare(lib)
    except (OSError, subprocess.SubprocessError, AttributeError) as err:
        detail = str(getattr(err, "stderr", None) or err)[-_MAX_DETAIL_CHARS:]
        warnings.warn(
            f"fade: building the native carafe kernel with {compiler} failed, using the pure-PyTorch path: {detail}",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return lib


def available() -> bool:
    """True unless FADE_DISABLE_NATIVE=1 or the kernel could not be built."""
    return os.environ.get(DISABLE_ENV, "0") != "1" and _library() is not None


def supports(x: Tensor) -> bool:
    """True when the native kernel can reassemble ``x`` (a CPU floating tensor) right now."""
    return x.device.type == "cpu" and x.dtype in _NATIVE_DTYPES + _CONVERTED_DTYPES and available()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32/float64 run as they are; half types run in float32 (converted back afterwards)."""
    return dtype if dtype in _NATIVE_DTYPES else torch.float32


def _shape_args(x: Tensor, kernels: Tensor, k: int, scale: int) -> tuple[int, ...]:
    """(B, C, H, W, H_out, W_out, K, s), the shape arguments of the entry points."""
    b, c, h, w = x.shape
    return b, c, h, w, kernels.shape[-2], kernels.shape[-1], k, scale


def _threads(x: Tensor, kernels: Tensor) -> int:
    """Threads for one call: torch.get_num_threads(), fewer for small problems."""
    b, k2, ho, wo = kernels.shape
    work = b * x.shape[1] * k2 * ho * wo
    return max(1, min(torch.get_num_threads(), work // _MIN_WORK_PER_THREAD))


def _check_status(status: int, what: str) -> None:
    """Raise MemoryError when an entry point reports that it could not allocate its scratch."""
    if status != 0:
        raise MemoryError(f"fade native carafe {what}: could not allocate scratch memory")


def forward(x: Tensor, kernels: Tensor, k: int, scale: int) -> Tensor:
    """Native reassembly (arguments already validated by ``carafe``).

    Args:
        x: Tensor[B, C, H, W] on the CPU. kernels: Tensor[B, K*K, H_out, W_out], same dtype.
        k: kernel size K. scale: integer scale s.

    Returns:
        Tensor[B, C, H_out, W_out], contiguous, in x's dtype.
    """
    dtype = _compute_dtype(x.dtype)
    xc, kc = x.to(dtype).contiguous(), kernels.to(dtype).contiguous()
    out = xc.new_empty((x.shape[0], x.shape[1], kernels.shape[-2], kernels.shape[-1]))
    fn = getattr(_library(), f"fade_carafe_forward_{_SUFFIX[dtype]}")
    status = fn(xc.data_ptr(), kc.data_ptr(), out.data_ptr(), *_shape_args(x, kernels, k, scale), _threads(x, kernels))
    _check_status(status, "forward")
    return out.to(x.dtype)


def backward(grad: Tensor, x: Tensor, kernels: Tensor, k: int, scale: int) -> tuple[Tensor, Tensor]:
    """Native gradients of the reassembly w.r.t. x and kernels.

    Args:
        grad: Tensor[B, C, H_out, W_out], gradient of the output. x, kernels, k, scale: as in
            :func:`forward`.

    Returns:
        (Tensor[B, C, H, W], Tensor[B, K*K, H_out, W_out]), contiguous, in x's dtype.
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
    )
    _check_status(status, "backward")
    return gx.to(x.dtype), gk.to(kernels.dtype)
