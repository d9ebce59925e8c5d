"""Peak memory of a call, measured in a fresh process: ``python -m fade.bench.memory``.

The probe reads a JSON job on stdin and writes one JSON line per case on stdout. Each case is built
from its name and size (:func:`fade.bench.cases.build_case`) and measured twice, after a warm-up
of both calls at a tiny size once per name: an inference call and a forward+backward call. The reported peak is the extra memory over what was resident just before
the call (module, inputs and the output gradient excluded; the output and everything the call
allocates included).

- CPU (Linux): resident set size. The peak counter (VmHWM) is reset before each call by writing
  ``5`` to ``/proc/self/clear_refs``; glibc is told to serve every block >= 64 KiB by mmap
  (``MALLOC_MMAP_THRESHOLD_``), so freed tensors leave the resident set at once and the baseline is
  the live memory. A budget is enforced with RLIMIT_AS: a call that needs more fails cleanly.
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, with the budget as
  the per-process memory fraction.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace

import torch

from ..progress import Progress
from .cases import build_case
from .measure import NotDifferentiable, case_label, forward_backward_call, forward_call, synchronize

__all__ = ["MemoryJob", "MemoryResult", "probe_memory"]

_MMAP_THRESHOLD = 64 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class MemoryJob:
    """Cases to probe in one fresh process: (name, decoder shape (batch, C, H, W)) pairs."""

    cases: list[tuple[str, tuple[int, int, int, int]]]
    scale: int = 2
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    budget_bytes: int = 4 * 2**30


@dataclass
class MemoryResult:
    """Peak extra bytes of one case (None where not measured) and why not."""

    name: str
    size: tuple[int, int, int, int]
    fwd_bytes: int | None = None
    fwdbwd_bytes: int | None = None
    notes: list[str] = field(default_factory=list)


def probe_memory(job: MemoryJob, progress: Progress | None = None) -> list[MemoryResult]:
    """Run ``job`` in a fresh Python process and return one result per case, in order.

    ``progress`` (total: the number of cases) is shown the case being probed and advanced as each
    result arrives. If the process dies (killed, crashed), the case it was on is reported as failed
    and a new process takes the remaining cases.
    """
    progress = progress or Progress(len(job.cases))
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(_MMAP_THRESHOLD))
    results: list[MemoryResult] = []
    while len(results) < len(job.cases):
        rest = replace(job, cases=job.cases[len(results) :])
        with tempfile.TemporaryFile(mode="w+") as stderr:
            with subprocess.Popen(
                [sys.executable, "-m", "fade.bench.memory"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            ) as proc:
                proc.stdin.write(json.dumps(asdict(rest)))
                proc.stdin.close()
                progress.begin(case_label(*job.cases[len(results)]))
                for line in proc.stdout:
                    r = json.loads(line)
                    results.append(
                        MemoryResult(r["name"], tuple(r["size"]), r["fwd_bytes"], r["fwdbwd_bytes"], r["notes"])
                    )
                    progress.advance()
                    if len(results) < len(job.cases):
                        progress.begin(case_label(*job.cases[len(results)]))
            if len(results) < len(job.cases):
                stderr.seek(0)
                name, size = job.cases[len(results)]
                failure = f"memory probe died (rc={proc.returncode}): {stderr.read()[-300:]}"
                results.append(MemoryResult(name, tuple(size), notes=[failure]))
                progress.advance()
    return results


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not found in /proc/self/status")


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class _Meter:
    """Peak extra memory of a call on one device, with the budget enforced."""

    def __init__(self, device: torch.device, budget_bytes: int) -> None:
        self.device = device
        if device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, budget_bytes / total), device)
        elif device.type == "cpu":
            limit = _status_bytes("VmSize") + budget_bytes
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        else:
            raise ValueError(f"memory: no peak-memory meter for device type {device.type!r}")

    def peak_extra(self, call) -> int:
        gc.collect()
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            call()
            synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - base
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _resident_bytes()
        call()
        return max(0, _status_bytes("VmHWM") - base)  # a page of bookkeeping may come and go


def _is_out_of_memory(err: Exception) -> bool:
    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in str(err)


def _run(job: MemoryJob) -> None:
    torch.set_num_threads(job.threads)
    device = torch.device(job.device)
    dtype = getattr(torch, job.dtype)
    for name in dict.fromkeys(name for name, _ in job.cases):
        try:
            tiny = build_case(name, 1, 16, 8, 8, job.scale, device, dtype)
            forward_call(tiny)()
            forward_backward_call(tiny)()
        except Exception:  # noqa: BLE001, S110  (warm-up only; a name that fails here is reported below)
            pass
    tiny = None
    gc.collect()
    gc.freeze()  # what exists now is never garbage: keeps the per-call collections short
    meter = _Meter(device, job.budget_bytes)
    for name, size in job.cases:
        result = MemoryResult(name, tuple(size))
        try:
            case = build_case(name, *size, job.scale, device, dtype)
            result.fwd_bytes = meter.peak_extra(forward_call(case))
            result.fwdbwd_bytes = meter.peak_extra(forward_backward_call(case))
        except NotDifferentiable as err:
            result.notes.append(f"no backward: {err}")
        except Exception as err:  # noqa: BLE001  (any upsampler's failure is recorded, not raised)
            call = "inference" if result.fwd_bytes is None else "forward+backward"
            if _is_out_of_memory(err):
                result.notes.append(f"{call} exceeds the {job.budget_bytes / 2**30:g} GiB memory budget")
            else:
                result.notes.append(f"{call} failed: {type(err).__name__}: {str(err)[:200]}")
        case = None
        print(json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    _run(MemoryJob(**json.loads(sys.stdin.read())))
