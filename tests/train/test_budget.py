"""The paper's budget: in every CPU preset's network the upsamplers add at most 10 % of its parameters."""

import pytest

from fade.train.compare import markdown_table
from fade.train.presets import PRESETS
from fade.train.trainer import build_model

BUDGET = 0.10
COMPARED = ("carafe", "indexnet_holistic", "a2u", "sapa", "dysample", "fade", "fade_lite")
"""Every upsampler of the paper's comparison (Table 3, with SAPA and DySample), IndexNet as its holistic form."""
ABLATIONS = ("encoder_kernels", "naive_kernels", "semi_shift", "semi_shift_skip", "carafe_gate", "nn_gate")
"""The variants of the paper's Tables 1, 2 and 4."""
CPU_PRESETS = sorted(key for key in PRESETS if key[1] != "paper")


def _parameters(preset, upsampler: str) -> int:
    return sum(p.numel() for p in build_model(preset, upsampler, device="meta").parameters())


@pytest.mark.parametrize(("task", "name"), CPU_PRESETS, ids=[f"{t}/{n}" for t, n in CPU_PRESETS])
def test_upsamplers_add_at_most_ten_percent(task, name):
    preset = PRESETS[(task, name)]
    base = _parameters(preset, "bilinear")
    added = {u: _parameters(preset, u) - base for u in COMPARED + ABLATIONS}
    over = {u: f"{a / base:.1%}" for u, a in added.items() if a > BUDGET * base}
    assert not over, f"{task}/{name} ({preset.model}, {base:,} parameters with bilinear): over budget {over}"
    assert all(a > 0 for a in added.values())


@pytest.mark.parametrize(("task", "name"), CPU_PRESETS, ids=[f"{t}/{n}" for t, n in CPU_PRESETS])
def test_indexnet_m2o_cannot_fit_even_at_its_smallest(task, name):
    """The documented exception (presets.py, docs/experiments.md): M2O DIN's index block alone is
    16 C^2 per stage at its smallest (linear, no context), the presets already ask for that form."""
    preset = PRESETS[(task, name)]
    assert preset.upsampler_options["indexnet"] == {"nonlinear": False, "context": False}
    base = _parameters(preset, "bilinear")
    assert _parameters(preset, "indexnet") - base > BUDGET * base


def test_tables_show_added_parameters_as_a_share_of_the_network():
    stats = {"mean": 0.5, "std": None, "values": [0.5]}
    rows = [
        {"upsampler": "bilinear", "metrics": {"miou": stats}, "parameters_added": 0, "parameters_total": 10_000,
         "train_seconds": 3.0},
        {"upsampler": "fade", "metrics": {"miou": stats}, "parameters_added": 500, "parameters_total": 10_500,
         "train_seconds": 4.0},
        {"upsampler": "carafe", "metrics": {"miou": stats}, "parameters_added": 1_234, "train_seconds": 4.0},
    ]
    lines = markdown_table(rows, {"miou": "max"}).splitlines()
    assert lines[0].startswith("| upsampler | params added | mIoU (%)")
    assert lines[2].startswith("| `bilinear` | 0 | ")
    assert lines[3].startswith("| `fade` | 500 (+5.0 %) | ")  # 500 / (10,500 - 500)
    assert lines[4].startswith("| `carafe` | 1,234 | ")  # results written before totals were kept
