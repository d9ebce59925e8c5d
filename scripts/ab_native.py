"""Time two builds of the native kernel against each other, in alternation in one process.

On the project's shared VMs a run's speed drifts by 10-40% from minute to minute, so builds timed
in separate processes cannot be compared. This compiles ``src/fade/ops/csrc/carafe_cpu.cpp`` as it
is in each git revision (``WORKTREE`` for the working tree) with the flags fade uses, loads both,
and calls each entry point of each build in turn, round after round, on the same tensors. Medians
over the rounds, and the median of the per-round ratios, go to stdout.

    python scripts/ab_native.py HEAD~1 WORKTREE [--threads 2] [--rounds 30]

Both builds must have the entry points' present signatures (`fade_carafe_forward_f32`,
`fade_carafe_backward_f32`, `fade_pointwise_f32`). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fade.ops import _native

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "src/fade/ops/csrc/carafe_cpu.cpp"
P, I64, INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int


def build(revision: str, folder: Path) -> ctypes.CDLL:
    """The kernel library of ``revision`` (a git revision, or WORKTREE), compiled into ``folder``."""
    source = folder / f"{revision.replace('/', '_')}.cpp"
    if revision == "WORKTREE":
        source.write_bytes((ROOT / SOURCE).read_bytes())
    else:
        source.write_bytes(subprocess.run(["git", "show", f"{revision}:{SOURCE}"], cwd=ROOT, check=True,
                                          capture_output=True).stdout)
    target = source.with_suffix(".so")
    flags = (*_native._FLAGS, *_native._ARCH_FLAGS[0])
    subprocess.run([_native._compiler(), *flags, str(source), "-o", str(target)], check=True, capture_output=True)
    lib = ctypes.CDLL(str(target))
    reassembly = [P] * 5 + [I64] * 8 + [INT, P]
    for name, args in (("fade_carafe_forward_f32", reassembly), ("fade_carafe_backward_f32", reassembly),
                       ("fade_pointwise_f32", [P] * 4 + [I64] * 4 + [INT] * 3 + [P])):
        getattr(lib, name).argtypes, getattr(lib, name).restype = args, INT
    return lib


def calls(lib: ctypes.CDLL, threads: int) -> dict[str, object]:
    """One call per measured case, on FADE's shapes at C = 256, 64x64 -> 128x128."""
    g = torch.Generator().manual_seed(0)
    b, c, h, w, s, k = 1, 256, 64, 64, 2, 5
    x = torch.randn(b, c, h, w, generator=g)
    en, grad = (torch.randn(b, c, 2 * h, 2 * w, generator=g) for _ in range(2))
    kernels = torch.randn(b, k * k, 2 * h, 2 * w, generator=g).softmax(1)
    gate = torch.rand(b, 1, 2 * h, 2 * w, generator=g)
    out, gx, gk = torch.empty_like(en), torch.empty_like(x), torch.empty_like(kernels)
    shape, runner = (b, c, h, w, 2 * h, 2 * w, k, s), _native._openmp_runner()
    ptr = torch.Tensor.data_ptr

    def pointwise(inputs: int, outputs: int, x_channels_last: bool, channels_last: bool):
        src = torch.randn(b, inputs, 2 * h, 2 * w, generator=g)
        src = src.contiguous(memory_format=torch.channels_last) if x_channels_last else src
        weight_t = torch.randn(inputs, outputs, generator=g)
        dst = torch.empty(b * outputs * 4 * h * w)
        return lambda: lib.fade_pointwise_f32(ptr(src), ptr(weight_t), None, ptr(dst), b, inputs, outputs, 4 * h * w,
                                              int(x_channels_last), int(channels_last), threads, runner)

    return {
        "carafe forward": lambda: lib.fade_carafe_forward_f32(ptr(x), ptr(kernels), ptr(out), None, None, *shape,
                                                              threads, runner),
        "carafe_lerp forward": lambda: lib.fade_carafe_forward_f32(ptr(x), ptr(kernels), ptr(out), ptr(en), ptr(gate),
                                                                   *shape, threads, runner),
        "carafe backward": lambda: lib.fade_carafe_backward_f32(ptr(grad), ptr(x), ptr(kernels), ptr(gx), ptr(gk),
                                                                *shape, threads, runner),
        "1x1 256 -> 64, channels-last out": pointwise(256, 64, False, True),
        "1x1 256 -> 25, channels-last out": pointwise(256, 25, False, True),
        "1x1 64 -> 256, channels-last in": pointwise(64, 256, True, False),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        try:
            builds = {name: calls(build(name, Path(folder)), args.threads) for name in (args.a, args.b)}
        except subprocess.CalledProcessError as err:  # an unknown revision, or a source that does not compile
            detail = (err.stderr or b"").decode(errors="replace").strip().splitlines()
            command = " ".join(map(str, err.cmd[:3]))
            print(f"ab_native: {command} failed: {detail[-1] if detail else err}", file=sys.stderr)
            return 2
        except AttributeError as err:  # a build without the entry points' present names
            print(f"ab_native: {err}", file=sys.stderr)
            return 2
        print(f"median ms over {args.rounds} rounds, {args.threads} threads; "
              f"ratio = {args.b} / {args.a}, median of rounds")
        for case in builds[args.a]:
            times = {name: [] for name in builds}
            for name in builds:  # warm-up
                builds[name][case]()
            for _ in range(args.rounds):
                for name in builds:
                    start = time.perf_counter()
                    if builds[name][case]() != 0:
                        raise SystemExit(f"{name}: {case} returned a non-zero status")
                    times[name].append(time.perf_counter() - start)
            ratio = statistics.median(tb / ta for ta, tb in zip(times[args.a], times[args.b]))
            medians = "  ".join(f"{name} {statistics.median(t) * 1e3:7.2f}" for name, t in times.items())
            print(f"{case:34s} {medians}  ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
