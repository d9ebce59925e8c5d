"""Paired statistics, trivial-baseline flags and the tables and figures built from them, on hand-made runs."""

import math

import pytest

from fade.train.compare import (
    aggregate,
    mark_trivial,
    markdown_table,
    near_best,
    paired_statistics,
    paired_tables,
    plot_task,
    ranking,
    _panels,
    _ranking_lines,
)
from fade.train.stats import clear_threshold, clearly_above, paired_differences, separated


def _runs(table: dict[str, list[float]], metric: str = "miou") -> list[dict]:
    return [
        {
            "upsampler": name,
            "seed": seed,
            "status": "complete",
            "metrics": {metric: value},
            "parameters": {"added": 1},
            "train_seconds": 1.0,
        }
        for name, values in table.items()
        for seed, value in enumerate(values)
    ]


def test_paired_differences_by_hand():
    # fade 0.30 0.32 0.34; a 0.28 0.31 0.35 -> a - fade = -0.02, -0.01, +0.01: mean -0.00667,
    # sample std sqrt(((-0.01333)^2 + (-0.00333)^2 + 0.01667^2) / 2) = 0.01528; a wins on seed 2 only.
    rows = aggregate(_runs({"fade": [0.30, 0.32, 0.34], "a": [0.28, 0.31, 0.35]}), ["fade", "a"], ["miou"])
    paired = paired_differences(rows, "fade", "miou", "max")["a"]
    assert paired["seeds"] == [0, 1, 2] and paired["n"] == 3 and paired["wins"] == 1
    assert paired["differences"] == pytest.approx([-0.02, -0.01, 0.01])
    assert paired["mean"] == pytest.approx(-0.02 / 3)
    assert paired["std"] == pytest.approx(math.sqrt((0.04**2 + 0.01**2 + 0.05**2) / 9 / 2))
    assert separated(paired) is False
    # For an error metric lower is better: the same numbers give a two wins.
    assert paired_differences(rows, "fade", "miou", "min")["a"]["wins"] == 2


def test_pairing_uses_only_shared_seeds_and_sees_what_unpaired_bands_miss():
    # b is behind fade by 0.01 on every seed although the seed spread (0.1) dwarfs the gap.
    runs = _runs({"fade": [0.5, 0.6, 0.7], "b": [0.49, 0.59, 0.69]})
    runs.append({"upsampler": "c", "seed": 1, "status": "complete", "metrics": {"miou": 0.9},
                 "parameters": {"added": 1}, "train_seconds": 1.0})
    rows = aggregate(runs, ["fade", "b", "c"], ["miou"])
    paired = paired_differences(rows, "fade", "miou", "max")
    assert paired["b"]["wins"] == 0 and separated(paired["b"]) is True
    assert paired["b"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert paired["c"]["seeds"] == [1] and paired["c"]["std"] is None and separated(paired["c"]) is None
    near = near_best(rows, "miou", "max")
    assert near == {"c": True, "fade": None, "b": None}
    rows = aggregate(runs[:6], ["fade", "b"], ["miou"])
    assert near_best(rows, "miou", "max") == {"fade": True, "b": False}


def test_clearly_above_the_trivial_baseline():
    # mIoU baseline 0.0686: the threshold closes 10 % of the way to 1: 0.0686 + 0.09314 = 0.16174.
    assert clear_threshold("miou", "max", 0.0686) == pytest.approx(0.16174)
    assert clearly_above([0.17, 0.19], 0.0686, "miou", "max")
    assert not clearly_above([0.087, 0.088], 0.0686, "miou", "max")  # above, but not clearly
    assert not clearly_above([0.30, 0.06], 0.0686, "miou", "max")  # mean far above, one seed below
    # Errors: 10 % of the way to 0, i.e. at most 0.9 x the baseline.
    assert clear_threshold("sad", "min", 0.5) == pytest.approx(0.45)
    assert clearly_above([0.44, 0.45], 0.5, "sad", "min") and not clearly_above([0.46], 0.5, "sad", "min")
    # PSNR: the same 10 % of the MSE, 10 log10(1 / 0.9) = 0.4576 dB.
    assert clear_threshold("psnr", "max", 20.0) == pytest.approx(20.4576, abs=1e-4)
    with pytest.raises(ValueError, match="metric: expected one of psnr"):
        clear_threshold("bogus", "max", 0.0)


def test_flagged_results_are_never_ranked_and_tables_say_so(tmp_path):
    runs = _runs({"fade": [0.30, 0.32], "a": [0.40, 0.50], "b": [0.08, 0.09]})
    rows = aggregate(runs, ["fade", "a", "b"], ["miou"])
    trivial = {"predictor": "all-background", "metrics": {"miou": 0.07}}
    mark_trivial(rows, trivial["metrics"], {"miou": "max"})
    assert [r["above_trivial"]["miou"] for r in rows] == [True, True, False]
    assert ranking(rows, "miou", "max") == ["a", "fade"]
    table = markdown_table(rows, {"miou": "max"}, trivial)
    assert "| `b` | 1 | 8.50 ± 0.71 † | 1 |" in table
    assert "| `a` | 1 | **45.00 ± 7.07** | 1 |" in table
    assert "| trivial: all-background | — | 7.00 | — |" in table and "† not clearly above" in table
    paired = paired_statistics(rows, {"miou": "max"})
    assert paired["reference"] == "fade" and paired["best"] == {"miou": "a"}
    # a - fade: +0.10, +0.18 -> +14.00 ± 5.66 (2/2); fade - a: -14.00 ± 5.66 (0/2).
    text = paired_tables(rows, {"miou": "max"}, paired)
    assert "| `a` | +14.00 ± 5.66 (2/2) |" in text
    assert "| `fade` | -14.00 ± 5.66 (0/2) |" in text and "| `a` | best |" in text
    for row in rows:  # the segmentation ranking reads mIoU and bIoU: give bIoU the same values
        row["metrics"]["biou"], row["above_trivial"]["biou"] = row["metrics"]["miou"], row["above_trivial"]["miou"]
    lines = _ranking_lines("segmentation", rows, {"miou": "max", "biou": "max"})
    assert "- mIoU (%): a > fade (not separated from the first: none; not clearly above the trivial" in lines
    assert "not ranked: b)" in lines
    panels = _panels(rows, {"miou": "max"}, trivial)
    assert panels[0]["flagged"] == [False, False, True] and panels[0]["baseline"] == pytest.approx(7.0)
    assert panels[0]["values"][1] == pytest.approx([40.0, 50.0])
    path = plot_task(panels, tmp_path / "p.png", "test")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_nothing_ranked_when_every_result_is_at_the_baseline():
    rows = aggregate(_runs({"fade": [0.07, 0.08], "a": [0.08, 0.07]}), ["fade", "a"], ["miou"])
    mark_trivial(rows, {"miou": 0.0696}, {"miou": "max"})
    assert ranking(rows, "miou", "max") == [] and near_best(rows, "miou", "max") == {}
    paired = paired_statistics(rows, {"miou": "max"})
    assert paired["best"] == {"miou": None}
    assert "no best to compare with" in paired_tables(rows, {"miou": "max"}, paired)
