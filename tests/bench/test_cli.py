"""`fade bench` on a tiny sweep: the files, their columns, and the rows they hold."""

import csv
import json
import re
import subprocess
import sys
import types
from dataclasses import replace

import pytest

from fade.bench import measure
from fade.bench.operator import operator_tables
from fade.bench.plots import FIGURES
from fade.bench.sweeps import COLUMNS, QUICK, run_sweep
from fade.cli import main

NUMERIC = ["params", "gflops", "gproducts", "fwd_ms", "fwdbwd_ms", "peak_fwd_mib", "peak_fwdbwd_mib"]


def test_bench_tiny_sweep_writes_csv_json_table_and_figures(tmp_path, capsys):
    argv = ["bench", "--names", "fade", "fade_authors", "--channels", "4", "8", "--sizes", "2", "4"]
    argv += ["--batches", "1", "--base-channels", "8", "--base-size", "4", "--repeats", "1", "--warmup", "1"]
    argv += ["--malloc", "default"]  # in this process: keep would change the test process's allocator for good
    assert main(argv + ["--out", str(tmp_path)]) == 0
    out = tmp_path / "full"
    assert json.loads((out / "bench.json").read_text())["meta"]["allocator"] == "the C library's default"
    assert "Allocator: the C library's default." in (out / "table.md").read_text().splitlines()[0]
    with open(out / "bench.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    # 2 names x (2 channel points + 2 resolution points)
    assert [(r["name"], r["sweep"], r["channels"], r["height"]) for r in rows] == [
        (n, sweep, c, s)
        for n in ("fade", "fade_authors")
        for sweep, c, s in (
            ("channels", "4", "4"),
            ("channels", "8", "4"),
            ("resolution", "8", "2"),
            ("resolution", "8", "4"),
        )
    ]
    for r in rows:
        assert r["status"] == "ok", r["notes"]
        assert r["out_height"] == str(2 * int(r["height"])) and r["device"] == "cpu" and r["threads"] == "1"
        assert float(r["params"]) > 0 and float(r["gflops"]) > 0 and float(r["fwd_ms"]) > 0
        assert float(r["gproducts"]) > 0  # the gate
        assert float(r["fwdbwd_ms"]) > 0 and float(r["peak_fwd_mib"]) >= 0 and float(r["peak_fwdbwd_mib"]) >= 0
        assert r["fwd_repeats"] == "1" and r["fwd_min_ms"] == r["fwd_ms"]  # one timed call
    # one measurement per distinct shape: the shared point is the same in both sweeps
    shared = [r for r in rows if r["name"] == "fade" and r["channels"] == "8" and r["height"] == "4"]
    assert len(shared) == 2 and all(shared[0][k] == shared[1][k] for k in NUMERIC)
    # the authors' formulation has FADE's parameters and multiply-adds
    for ours, theirs in zip(rows[:4], rows[4:]):
        assert ours["params"] == theirs["params"] and ours["gflops"] == theirs["gflops"]

    data = json.loads((out / "bench.json").read_text())
    assert data["columns"] == COLUMNS and len(data["rows"]) == len(rows)
    assert data["meta"]["command"].startswith("fade bench --names fade fade_authors")
    assert data["meta"]["machine"]["cores"] >= 1 and data["meta"]["config"]["base_size"] == 4
    assert all(str(data["rows"][i][k]) == rows[i][k] for i in range(len(rows)) for k in ("name", "params", "status"))
    table = (out / "table.md").read_text()
    assert "| fade |" in table and "| fade_authors |" in table and "C=8, 4x4 -> 8x8" in table
    for stem in FIGURES:
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    # progress on stderr (not a terminal: plain lines, at most one per 10 s besides the first and last)
    # for each phase over the 2 names x 3 distinct shapes, smallest first
    log = capsys.readouterr().err.splitlines()
    for phase in ("memory", "timing"):
        lines = [line for line in log if line.startswith(f"bench {phase} ")]
        assert lines[0] == f"bench {phase} 1/6 fade B=1 C=8 2x2 | 0:00 elapsed, ETA ?"
        step = rf"bench {phase} [2-6]/6 (fade|fade_authors) B=1 C=[48] [24]x[24] \| \d+:\d\d elapsed, ETA \d+:\d\d"
        assert all(re.fullmatch(step, line) for line in lines[1:-1]), lines
        assert re.fullmatch(rf"bench {phase} 6/6 done in \d+:\d\d", lines[-1])
    phases = [line.split()[1] for line in log if line.startswith("bench ")]
    assert phases == sorted(phases)  # memory first, then timing


def test_settings_over_the_time_budget_are_recorded_as_skipped():
    config = replace(QUICK, channels=(4, 8), sizes=(), base_size=4, max_call_s=1e-9, warmup=1)
    rows = run_sweep(["nn_gate"], config, memory=False)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert "fwd not timed: two calls took" in rows[0]["notes"]
    assert "fwd not timed: a smaller setting exceeded the time budget" in rows[1]["notes"]
    assert rows[1]["params"] == 9 and rows[1]["peak_fwd_mib"] is None
    assert rows[1]["notes"].startswith("memory not measured")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_zero_warmup_is_honoured_not_dropped(tmp_path):
    """`--warmup 0` was taken for "not given" (falsy) and silently replaced by the default."""
    argv = ["bench", "--names", "nearest", "--channels", "4", "--sizes", "2", "--batches", "1", "--base-channels", "4"]
    argv += ["--base-size", "2", "--repeats", "1", "--warmup", "0", "--no-plots", "--no-memory", "--out", str(tmp_path)]
    assert main([*argv, "--malloc", "default"]) == 0
    config = json.loads((tmp_path / "full" / "bench.json").read_text())["meta"]["config"]
    assert (config["warmup"], config["min_repeats"], config["channels"], config["sizes"]) == (0, 1, [4], [2])


def test_networks_suite_refuses_names_that_are_not_upsamplers(tmp_path, capsys):
    assert main(["bench", "--suite", "networks", "--names", "fade_authors", "--out", str(tmp_path)]) == 2
    assert "error: names: expected upsamplers of fade.list_upsamplers() for --suite networks, got ['fade_authors']" in (
        _one_line_error(capsys)
    )


def test_an_output_that_is_a_file_is_refused_before_measuring(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("fade.bench.sweeps.run_sweep", lambda *a, **k: pytest.fail("measured"))
    (tmp_path / "file").write_text("x")
    assert main(["bench", "--out", str(tmp_path / "file" / "bench")]) == 2
    assert "error: out: expected a folder, got " in _one_line_error(capsys)


def test_a_second_bench_on_a_busy_folder_is_refused_naming_the_first(
    tmp_path, capsys, monkeypatch, held_by_another_process
):
    monkeypatch.setattr("fade.bench.sweeps.run_sweep", lambda *a, **k: pytest.fail("measured"))
    with held_by_another_process(tmp_path, "fade bench --quick (first)") as holder:
        assert main(["bench", "--quick", "--out", str(tmp_path)]) == 2
        line = _one_line_error(capsys)
        assert f"error: {tmp_path} is in use by another run (pid {holder.pid}, " in line
        assert "command fade bench --quick (first), started " in line


def test_table_puts_the_batches_side_by_side_with_fade_in_bold():
    """table.md ends with the README's table: per upsampler, each batch's times and peak in one row."""
    from fade.bench.sweeps import markdown_tables

    def row(name, batch, fwd):
        return dict.fromkeys(COLUMNS) | {
            "name": name, "sweep": "channels", "batch": batch, "channels": 8, "height": 4, "params": 1234,
            "gflops": 0.5, "fwd_ms": fwd, "fwdbwd_ms": 2 * fwd, "peak_fwd_mib": 1.0, "peak_fwdbwd_mib": 3.0,
            "notes": "",
        }

    rows = [row("bilinear", 1, 1.0), row("fade", 1, 2.0), row("bilinear", 8, 8.0), row("fade", 8, 16.0)]
    machine = {"cpu": "cpu", "cores": 2, "device": "cpu", "threads": 2, "torch": "2"}
    meta = {"config": {"batches": [1, 8], "base_channels": 8, "base_size": 4, "scale": 2}, "machine": machine}
    lines = markdown_tables(rows, meta).splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Batches 1, 8 side by side, C=8, 4x4 -> 8x8")))
    assert lines[start + 2] == (
        "| upsampler | params | GFLOPs | fwd ms (b=1) | fwd+bwd ms (b=1) | peak fwd+bwd MiB (b=1) "
        "| fwd ms (b=8) | fwd+bwd ms (b=8) | peak fwd+bwd MiB (b=8) |"
    )
    assert lines[start + 4 :] == [
        "| bilinear | 1,234 | 0.500 | 1.0 | 2.0 | 3.0 | 8.0 | 16.0 | 3.0 |",
        "| **fade** | 1,234 | 0.500 | 2.0 | 4.0 | 3.0 | 16.0 | 32.0 | 3.0 |",
    ]


def test_bench_operator_suite_writes_json_and_its_tables_in_a_kept_memory_process(tmp_path):
    """``fade bench --suite operator`` (tiny, in its own process: it sets the allocator process-wide)."""
    argv = ["--suite", "operator", "--base-channels", "8", "--base-size", "8", "--repeats", "1", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "fade", "bench", *argv], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "operator.json").read_text())
    assert result["meta"]["command"] == "fade bench " + " ".join(argv)
    assert result["meta"]["allocator"].startswith("glibc malloc keeps freed memory")
    result.pop("meta")
    assert (tmp_path / "operator.md").read_text() == operator_tables(result)


@pytest.mark.parametrize(
    ("accepts", "expected"),
    [
        ({-4, -1}, "glibc malloc keeps freed memory (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2**31-1)"),
        (
            {-4},
            "glibc malloc keeps only part of freed memory (mallopt M_MMAP_MAX=0; refused M_TRIM_THRESHOLD=2**31-1)",
        ),
        (set(), None),
    ],
)
def test_keep_freed_memory_says_what_glibc_took(monkeypatch, accepts, expected):
    """Each setting is asked for and reported on its own (mallopt returns 0 for one it refuses)."""
    asked = []

    def mallopt(option, value):
        asked.append((option, value))
        return int(option in accepts)

    monkeypatch.setattr(measure.platform, "system", lambda: "Linux")
    monkeypatch.setattr(measure.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(measure.ctypes, "CDLL", lambda name: types.SimpleNamespace(mallopt=mallopt))
    assert measure.keep_freed_memory() == expected
    assert asked == [(-4, 0), (-1, 2**31 - 1)]


@pytest.mark.parametrize("keep", [False, True])
def test_keep_freed_memory_keeps_a_freed_block_in_the_process(keep):
    """A freed 64 MiB tensor leaves the resident set by default (glibc unmaps it) and stays after
    keep_freed_memory() (it goes back to the heap, which is not trimmed)."""
    code = (
        "import sys, torch\n"
        "from fade.bench.measure import keep_freed_memory\n"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "assert (keep_freed_memory() is not None) if sys.argv[1] == 'keep' else True\n"
        "x = torch.ones(64 * 2**18)\n"
        "before = rss()\n"
        "del x\n"
        "print((before - rss()) / 2**20)\n"
    )
    mode = "keep" if keep else "default"
    done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True)
    released_mib = float(done.stdout)
    assert released_mib < 8 if keep else released_mib > 56
