"""The fresh-process memory probe: peaks track the tensors a call allocates; budgets skip cleanly."""

from fade.bench.memory import MemoryJob, probe_memory

MIB = 2**20


def test_bilinear_peak_is_its_output_and_failures_are_reported_per_case():
    big, small, bad = (1, 16, 256, 256), (1, 16, 128, 128), (1, 4, 4, 4)
    cases = [("op:bilinear", big), ("no_such_upsampler", bad), ("op:bilinear", small)]
    results = probe_memory(MemoryJob(cases, threads=1))
    assert [(r.name, r.size) for r in results] == cases
    # the kernel's resident-set counters are per-CPU approximations: a few hundred KiB either way
    slack = MIB / 2
    out_big = 16 * 512 * 512 * 4  # 16 MiB output; the call allocates nothing else that large
    assert out_big - slack <= results[0].fwd_bytes <= 1.1 * out_big + slack
    assert out_big / 4 - slack <= results[2].fwd_bytes <= 1.1 * out_big / 4 + slack
    # forward+backward: the output, then the input gradient (a quarter of it), nothing retained
    assert out_big - slack <= results[0].fwdbwd_bytes <= 2.5 * out_big
    assert not results[0].notes and not results[2].notes
    assert results[1].fwd_bytes is None and "KeyError" in results[1].notes[0]


def test_a_call_over_the_memory_budget_is_skipped_with_the_reason():
    (result,) = probe_memory(MemoryJob([("op:bilinear", (1, 16, 256, 256))], threads=1, budget_bytes=4 * MIB))
    assert result.fwd_bytes is None and result.fwdbwd_bytes is None
    assert result.notes == ["inference exceeds the 0.00390625 GiB memory budget"]
