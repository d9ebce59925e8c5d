"""The operator suite: every check against its target, the module rows at each setting and where their time goes."""

import io

import pytest
import torch

from fade.bench.measure import Timing
from fade.bench.operator import (
    MODULE_TARGETS,
    MODULES,
    TARGETS,
    _operator_profile,
    _ratio_quartiles,
    module_check_name,
    operator_tables,
    run_operator_suite,
)

# Multiply-adds of the convolutions of one forward at C=16, 32x32 -> 64x64 (the reassembly's left
# out): compressors (16 -> 64 at 64x64 and 32x32, or 16 -> 25), the content encoder (3x3, 64 -> 25,
# or depthwise over 25) at both resolutions, the gate (16 -> 1 at 32x32).
MATRIX_MACS = {
    "fade": 16 * 64 * 4096 + 16 * 64 * 1024 + 64 * 25 * 9 * (4096 + 1024) + 16 * 1024,
    "fade_lite": 16 * 25 * 4096 + 16 * 25 * 1024 + 25 * 9 * (4096 + 1024) + 16 * 1024,
}

SETTINGS = [(1, 2), (2, 1)]
"""(batch, threads) of the module rows: the suite sets the threads of each itself (the tests run at 1)."""


@pytest.fixture(scope="module")
def suite():
    """The suite's result and what it showed as progress (plain lines: not a terminal), run at 1 thread."""
    log, threads = io.StringIO(), torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the autouse one-thread fixture
    try:
        result = run_operator_suite(
            batch=1,
            channels=16,
            size=32,
            warmup=1,
            repeats=1,
            fast_repeats=2,
            module_settings=SETTINGS,
            profile_calls=1,
            progress=log,
        )
    finally:
        torch.set_num_threads(threads)
    return result, log.getvalue()


@pytest.fixture(scope="module")
def result(suite):
    return suite[0]


def test_progress_counts_timings_probes_and_module_settings(suite):
    lines = suite[1].splitlines()
    # 1 timing step + 4 operator probes at 1 thread + 3 module probes per (batch, threads) + 2 settings
    assert lines[0].startswith("bench operator 1/13 carafe, bilinear, FADE and the authors' FADE | 0:00 elapsed")
    assert lines[-1].startswith("bench operator 13/13 done in ")


def test_each_check_is_reported_against_its_target(result):
    module_checks = {
        module_check_name(m, check, b, t): MODULE_TARGETS[check]
        for b, t in SETTINGS
        for m in MODULES
        for check in MODULE_TARGETS
    }
    targets = TARGETS | module_checks
    assert set(result["checks"]) == set(targets)
    for name, check in result["checks"].items():
        op, target = targets[name]
        assert check["target"] == f"{op} {target:g}"
        assert check["value"] > 0 and check["pass"] == (
            check["value"] <= target if op == "<=" else check["value"] >= target
        )
    assert result["fade_vs_authors_max_abs_diff"] < 1e-5
    assert result["output_mib"] == 16 * 64 * 64 * 4 / 2**20
    assert set(result["latency_ms"]) == {
        "carafe_fwd",
        "bilinear_fwd",
        "carafe_odd_fwd",
        "bilinear_odd_fwd",
        "fade_fwdbwd",
        "fade_authors_fwdbwd",
        "carafe_fwdbwd",
    }
    assert all(v is not None for v in result["peak_extra_mib"].values())


def test_module_rows_hold_times_memory_parts_and_profiles(result):
    settings = [(s["batch"], s["threads"]) for s in result["modules"]]
    assert settings == SETTINGS
    for setting in result["modules"]:
        b, t = setting["batch"], setting["threads"]
        assert setting["output_mib"] == b * 16 * 64 * 64 * 4 / 2**20
        for m in MODULES:
            for call in ("fwd", "fwdbwd"):
                assert setting["latency_ms"][f"{m}_{call}"] > 0 and setting["latency_ms"][f"bilinear_{call}"] > 0
                assert setting["peak_extra_mib"][f"{m}_{call}"] > 0
                profile = setting["profile_ms"][f"{m}_{call}"]
                assert profile["other"] >= 0 and sum(profile.values()) > 0
            # the checks are the ratios of the numbers of the row
            ratio = setting["latency_ms"][f"{m}_fwd"] / setting["latency_ms"]["bilinear_fwd"]
            assert result["checks"][module_check_name(m, "fwd_over_bilinear_fwd", b, t)]["value"] == ratio
            peak = setting["peak_extra_mib"][f"{m}_fwdbwd"] / setting["output_mib"]
            assert result["checks"][module_check_name(m, "fwdbwd_peak_over_output", b, t)]["value"] == peak
            for call in ("fwd", "fwdbwd"):
                q1, q3 = setting["ratio_quartiles"][f"{m}_{call}"]
                assert 0 < q1 <= q3
                low, high = setting["bilinear_quartiles_ms"][call]  # bilinear's own spread
                assert 0 < low <= setting["latency_ms"][f"bilinear_{call}"] <= high
            assert setting["output_fill_ms"]["fresh"] > 0 and setting["output_fill_ms"]["reused"] > 0
            parts = setting["parts_ms"][m]
            assert parts["whole"] == setting["latency_ms"][f"{m}_fwd"]
            assert parts["kernels"] > 0 and parts["reassembly"] > 0
            assert parts["rest"] == pytest.approx(parts["whole"] - parts["kernels"] - parts["reassembly"])
        assert setting["gemm_gmacs_per_s"] > 0
        for m in MODULES:
            # the hand counts at C=16, 32x32 -> 64x64, per sample: the forward; the forward+backward
            # computes both gradients of every convolution (the inputs require grad), each at its cost
            assert setting["matrix_gmacs"][m]["fwd"] * 1e9 == pytest.approx(b * MATRIX_MACS[m])
            assert setting["matrix_gmacs"][m]["fwdbwd"] * 1e9 == pytest.approx(3 * b * MATRIX_MACS[m])
            for call in ("fwd", "fwdbwd"):
                floor = 1e3 * setting["matrix_gmacs"][m][call] / setting["gemm_gmacs_per_s"]
                assert setting["gemm_floor_ms"][m][call] == pytest.approx(floor)


def test_bad_module_settings_are_refused():
    with pytest.raises(ValueError, match=r"module_settings: expected \(batch, threads\) pairs"):
        run_operator_suite(channels=4, size=4, module_settings=[(0, 1)])


def test_operator_profile_names_the_operators_and_is_silent(capfd):
    x = torch.randn(64, 64)
    profile = _operator_profile(lambda: x @ x, torch.device("cpu"), 2)
    assert profile["aten::mm"] > 0 and profile["other"] >= 0
    assert capfd.readouterr().err == ""  # the profiler's native start/stop lines are silenced


def test_tables_show_each_check_with_its_target_and_mark_misses(result):
    """operator.md (the README's tables): one row per check and per module and setting, each ratio
    the one in ``checks``, "(no)" exactly on the missed targets."""
    lines = operator_tables(result).splitlines()
    first = [line for line in lines if line.startswith(("| reassembly", "| the same at an odd size", "| FADE forward+"))]
    assert len(first) == 3
    for line, check in zip(first, ("carafe_fwd_over_bilinear_fwd", "carafe_odd_fwd_over_bilinear_odd_fwd")):
        assert f"| {result['checks'][check]['value']:.2f}x | <= 3 |" in line
    assert "(31x31 -> 63x63)" in first[1]
    module_rows = [line for line in lines if line.count("|") > 3 and line.split("|")[2].strip() in ("FADE", "FADE-Lite")]
    assert len(module_rows) == len(SETTINGS) * len(MODULES)
    for row, ((b, t), module) in zip(module_rows, [(s, m) for s in SETTINGS for m in MODULES]):
        cells = [c.strip() for c in row.split("|")[3:7]]
        setting = next(s for s in result["modules"] if (s["batch"], s["threads"]) == (b, t))
        for cell, check in zip(cells, MODULE_TARGETS):
            entry = result["checks"][module_check_name(module, check, b, t)]
            spread = {"fwd_over_bilinear_fwd": "fwd", "fwdbwd_over_bilinear_fwdbwd": "fwdbwd"}.get(check)
            if spread is not None:  # the times come with the quartiles of their per-round ratios
                q1, q3 = setting["ratio_quartiles"][f"{module}_{spread}"]
                spread = f" ({q1:.2f}-{q3:.2f})"
            expected = f"{entry['value']:.2f}x" + (spread or "") + (" (no)" if not entry["pass"] else "")
            assert cell == expected
        yardstick = row.split("|")[9].strip()  # bilinear's median times with their quartiles
        times = []
        for call in ("fwd", "fwdbwd"):
            q1, q3 = setting["bilinear_quartiles_ms"][call]
            times.append(f"{setting['latency_ms'][f'bilinear_{call}']:,.1f} ({q1:,.1f}-{q3:,.1f})")
        assert yardstick == " / ".join(times)
    assert module_rows[0].startswith(f"| batch {SETTINGS[0][0]}, {SETTINGS[0][1]} threads | FADE |")


def test_ratio_quartiles_are_those_of_the_per_round_ratios():
    ours = Timing(6.0, 2.0, 5, (2.0, 10.0, 6.0, 4.0, 8.0))
    bilinear = Timing(1.0, 1.0, 5, (1.0, 1.0, 1.0, 1.0, 1.0))
    assert _ratio_quartiles(ours, bilinear) == [4.0, 8.0]
    halved = Timing(1.0, 1.0, 5, (2.0, 2.0, 2.0, 2.0, 2.0))
    assert _ratio_quartiles(ours, halved) == [2.0, 4.0]
    assert _ratio_quartiles(Timing(3.0, 3.0, 1, (3.0,)), Timing(1.5, 1.5, 1, (1.5,))) == [2.0, 2.0]


def test_a_one_pixel_decoder_still_has_an_odd_size_check():
    """size 1: the odd-size check upsamples 1x1 to 3x3 (floor mode) instead of an empty map."""
    result = run_operator_suite(
        batch=1, channels=4, size=1, warmup=0, repeats=1, fast_repeats=1, module_settings=[], profile_calls=1
    )
    assert result["checks"]["carafe_odd_fwd_over_bilinear_odd_fwd"]["value"] > 0
    assert "(1x1 -> 3x3)" in operator_tables(result)
