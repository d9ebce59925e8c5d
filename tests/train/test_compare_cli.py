import json

import pytest

from fade.cli import main
from fade.train.compare import (
    _encoders,
    _encoders_lines,
    _machines,
    _machines_text,
    aggregate,
    markdown_table,
)
from fade.train.presets import PRESETS

from .conftest import TINY


def _run(upsampler: str, seed: int, psnr: float) -> dict:
    return {
        "upsampler": upsampler,
        "seed": seed,
        "status": "complete",
        "metrics": {"psnr": psnr},
        "parameters": {"added": 7},
        "train_seconds": 2.0,
    }


def test_aggregate_mean_sample_std_and_failures():
    runs = [_run("a", 0, 20.0), _run("a", 1, 22.0), _run("a", 2, 27.0), _run("b", 0, 30.0)]
    runs.append({"upsampler": "b", "seed": 1, "status": "failed"})
    rows = aggregate(runs, ["a", "b"], ["psnr"])
    a, b = rows
    assert a["metrics"]["psnr"]["mean"] == pytest.approx(23.0)
    assert a["metrics"]["psnr"]["std"] == pytest.approx(((9 + 1 + 16) / 2) ** 0.5)
    assert b["metrics"]["psnr"] == {"mean": 30.0, "std": None, "values": [30.0]}
    assert (b["seeds"], b["failed_seeds"]) == ([0], [1])
    table = markdown_table(rows, {"psnr": "max"})
    assert "| `a` | 7 | 23.00 ± 3.61 | 2 |" in table
    assert "| `b` | 7 | **30.00** | 2 |" in table


def test_a_comparison_resumed_on_another_machine_names_both():
    xeon = {"cpu": "Xeon", "cores": 2, "threads": 1, "torch": "2.13.0", "device": "cpu"}
    epyc = {**xeon, "cpu": "EPYC"}
    runs = [{"machine": xeon}, {"machine": xeon}, {"machine": epyc}, {"machine": None}]
    counts = _machines(runs)
    assert counts == {
        "Xeon, 2 cores, 1 torch thread(s), torch 2.13.0, device cpu": 2,
        "EPYC, 2 cores, 1 torch thread(s), torch 2.13.0, device cpu": 1,
    }
    assert _machines_text(counts) == (
        "Machines: Xeon, 2 cores, 1 torch thread(s), torch 2.13.0, device cpu (2 runs); "
        "EPYC, 2 cores, 1 torch thread(s), torch 2.13.0, device cpu (1 run)"
    )
    assert _machines_text({"EPYC, 2 cores": 3}) == "Machine: EPYC, 2 cores"


def test_runs_from_different_pretrained_encoders_are_told_apart():
    """The summary names each encoder start by hash; runs without a record are counted, not hidden."""
    a, b = {"name": "shapes", "weights_sha256": "a" * 64}, {"name": "shapes", "weights_sha256": "b" * 64}
    runs = [
        {"status": "complete", "pretrained_encoder": a},
        {"status": "complete", "pretrained_encoder": a},
        {"status": "complete", "pretrained_encoder": b},
        {"status": "complete"},  # made before results recorded it
        {"status": "failed", "pretrained_encoder": None},
    ]
    counts = _encoders(runs)
    assert counts == {f"shapes {'a' * 12}": 2, f"shapes {'b' * 12}": 1, "not recorded": 1}
    assert _encoders_lines(counts) == [
        (
            "Pretrained encoders (runs started from different weights): "
            f"shapes {'a' * 12} (2 runs); shapes {'b' * 12} (1 run); not recorded (1 run).  "
        )
    ]
    assert _encoders([{"status": "complete", "pretrained_encoder": a}]) == {f"shapes {'a' * 12}": 1}
    assert _encoders_lines(_encoders([{"status": "complete", "pretrained_encoder": a}])) == [
        f"Pretrained encoder: shapes {'a' * 12} (1 run).  "
    ]
    assert _encoders([{"status": "complete", "pretrained_encoder": None}]) == {}
    assert _encoders_lines({}) == []


@pytest.fixture
def tiny_presets(monkeypatch):
    for task, preset in TINY.items():
        monkeypatch.setitem(PRESETS, (task, "tiny"), preset.replace(steps=2, checkpoint_every=2))


def test_cli_compare_writes_tables_figures_and_summary(tiny_presets, tmp_path, capsys):
    out = tmp_path / "compare"
    args = ["compare", "--preset", "tiny", "--upsamplers", "bilinear,fade", "--seeds", "0,1", "--out", str(out)]
    assert main(args) == 0
    for task in TINY:
        results = json.loads((out / task / "results.json").read_text())
        assert results["meta"]["command"] == "fade " + " ".join(args)
        assert [r["upsampler"] for r in results["rows"]] == ["bilinear", "fade"]
        assert [(r["upsampler"], r["seed"]) for r in results["runs"]] == [
            ("bilinear", 0),
            ("fade", 0),
            ("bilinear", 1),
            ("fade", 1),
        ]
        for row in results["rows"]:
            assert set(row["metrics"]) == set(results["metrics"]) and row["seeds"] == [0, 1]
            assert all(len(m["values"]) == 2 and m["std"] is not None for m in row["metrics"].values())
        table = (out / task / "table.md").read_text()
        assert (
            "Command: `fade compare --preset tiny" in table
            and " ± " in table
            and "Seeds 0, 1 (mean ± sample std" in table
        )
        assert (out / task / "compare.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / task / "runs" / "fade" / "seed1" / "results.json").exists()
        assert "| trivial: " in table and "Paired differences against `fade`" in table
        assert set(results["trivial"]["metrics"]) == set(results["metrics"])
        assert (out / task / "runs" / "fade" / "seed0" / "model.pt").exists()
        assert not (out / task / "runs" / "fade" / "seed1" / "model.pt").exists()
    summary = (out / "summary.md").read_text()
    assert (
        "segmentation mIoU (%) ↑" in summary and "matting SAD ↓" in summary and "reconstruction PSNR (dB) ↑" in summary
    )
    assert "| trivial baseline | " in summary and "Trivial baselines, on the same test sets: segmentation: all-" in summary
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr()
    assert str(out / "summary.md") in printed.out
    assert "run 1/4 (segmentation, bilinear, seed 0)" in printed.err and "run 4/4 done in" in printed.err


def test_cli_train_then_resume_message(tiny_presets, tmp_path, capsys):
    args = ["train", "--task", "reconstruction", "--upsampler", "nearest", "--preset", "tiny", "--out", str(tmp_path)]
    assert main([*args, "--stop-after", "1"]) == 0
    assert "stopped after step 1 (run again to resume)" in capsys.readouterr().out
    assert main(args) == 0
    assert str(tmp_path / "results.json") in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--task", "matting", "--upsampler", "magic"], "upsampler: expected one of a2u, bilinear"),
        (["train", "--task", "matting", "--upsampler", "fade", "--preset", "huge"], "preset: expected one of cpu"),
        (["train", "--task", "matting", "--upsampler", "fade", "--device", "cuda:7"], "device: expected"),
        (["train", "--task", "segmentation", "--upsampler", "fade", "--preset", "paper"], "pass --data-dir"),
        (["compare", "--task", "matting", "--upsamplers", "fade,fade"], "expected no repeats"),
    ],
)
def test_cli_bad_values_exit_2_with_a_message(args, message, capsys, tmp_path):
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "--seeds", "1,x"],
        ["train", "--task", "depth", "--upsampler", "fade"],
        ["compare", "--steps", "0"],
        ["compare", "--steps", "1000000001"],
        ["train", "--task", "matting", "--upsampler", "fade", "--stop-after", "99999999999999999999"],
    ],
)
def test_cli_malformed_arguments_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "error:" in err, err


def test_rerun_into_a_folder_of_another_run_names_the_difference(tiny_presets, tmp_path, capsys):
    base = ["train", "--task", "reconstruction", "--upsampler", "nearest", "--preset", "tiny", "--out", str(tmp_path)]
    assert main([*base, "--stop-after", "1"]) == 0
    assert main([*base, "--seed", "3"]) == 2
    assert "belongs to another run (seed: expected 3, got 0)" in capsys.readouterr().err


def test_paper_tables_name_existing_presets_and_registered_upsamplers():
    import fade
    from fade.train.cli import UPSAMPLERS
    from fade.train.tables import PAPER_TABLES

    assert sorted(PAPER_TABLES) == [1, 2, 3, 4]
    for table in PAPER_TABLES.values():
        assert all((task, name) in PRESETS for task, name in table.runs)
        assert len({task for task, _ in table.runs}) == len(table.runs)  # one folder per task
        assert set(table.upsamplers) <= set(fade.list_upsamplers())
    assert PAPER_TABLES[3].upsamplers == UPSAMPLERS and PAPER_TABLES[3].folder == ""


def test_cli_compare_table_runs_its_tasks_presets_and_upsamplers(tiny_presets, tmp_path, monkeypatch, capsys):
    from fade.train.tables import PAPER_TABLES, PaperTable

    table = PaperTable("gate", (("reconstruction", "tiny"), ("matting", "tiny")), ("nearest", "nn_gate"), "table2")
    monkeypatch.setitem(PAPER_TABLES, 2, table)
    assert main(["compare", "--table", "2", "--out", str(tmp_path)]) == 0
    for task in ("reconstruction", "matting"):
        results = json.loads((tmp_path / "table2" / task / "results.json").read_text())
        assert [r["upsampler"] for r in results["rows"]] == ["nearest", "nn_gate"]
        assert results["meta"]["preset"]["name"] == "tiny"
    assert (tmp_path / "table2" / "summary.md").exists() and not (tmp_path / "table2" / "segmentation").exists()
    assert "== matting/tiny: nearest, nn_gate" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--task", "matting"], ["--preset", "cpu"], ["--upsamplers", "fade"], ["--quick"]])
def test_cli_compare_table_refuses_what_it_sets(extra, tmp_path, capsys):
    assert main(["compare", "--table", "1", *extra, "--out", str(tmp_path)]) == 2
    assert "--table 1 sets tasks, presets and upsamplers" in capsys.readouterr().err


def test_curve_lines_give_the_change_over_the_last_fifth_per_upsampler():
    from fade.train.compare import curve_lines

    def run(name, seed, early, end, status="complete"):
        curve = [{"step": 80, "metrics": {"miou": early}}, {"step": 100, "metrics": {"miou": end}}]
        return {"upsampler": name, "seed": seed, "status": status, "curve": curve}

    runs = [run("a", 0, 0.50, 0.51), run("a", 1, 0.50, 0.47), run("b", 0, 0.6, 0.6), run("b", 1, 0.1, 0.9, "failed")]
    runs.append({"upsampler": "c", "seed": 0, "status": "complete", "curve": None})  # written before curves
    text = curve_lines(runs, ["a", "b", "c"], "miou")
    assert "change of mIoU (%) over the last 20 % of the steps" in text
    assert "`a` -1.00 (largest -3.00); `b` +0.00 (largest +0.00)." in text  # (+1 - 3) / 2; the failed run ignored
    assert "`c`" not in text
    assert curve_lines(runs[-1:], ["c"], "miou") == ""
