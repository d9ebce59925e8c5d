"""The paper's budget: in every CPU preset's network the upsamplers add at most 10 % of its parameters."""

import pytest

from fade.train.presets import PRESETS
from fade.train.trainer import build_model

BUDGET = 0.10
COMPARED = ("carafe", "indexnet_holistic", "a2u", "sapa", "dysample", "fade", "fade_lite")
"""Every upsampler of the paper's comparison (Table 3, with SAPA and DySample), IndexNet as its holistic form."""
CPU_PRESETS = sorted(key for key in PRESETS if key[1] != "paper")


def _parameters(preset, upsampler: str) -> int:
    return sum(p.numel() for p in build_model(preset, upsampler, device="meta").parameters())


@pytest.mark.parametrize(("task", "name"), CPU_PRESETS, ids=[f"{t}/{n}" for t, n in CPU_PRESETS])
def test_upsamplers_add_at_most_ten_percent(task, name):
    preset = PRESETS[(task, name)]
    base = _parameters(preset, "bilinear")
    added = {u: _parameters(preset, u) - base for u in COMPARED}
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
