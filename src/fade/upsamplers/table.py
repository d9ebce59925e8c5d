"""The table of registered upsamplers: ``python -m fade.upsamplers.table`` prints it as markdown.

Every column but the description is measured, not typed: parameters are counted on the module
built at C = 256, s = 2; "uses en" runs it twice with two different encoder features of the same
size; scales and channel support are tried on tiny tensors.
"""

from __future__ import annotations

import torch
from torch import nn

from . import create_pair, create_upsampler, list_pairs, list_upsamplers

__all__ = ["DESCRIPTIONS", "describe", "markdown_table"]

DESCRIPTIONS = {
    "nearest": "nearest neighbour",
    "bilinear": "bilinear, half-pixel centres",
    "deconv": "transposed conv (4x4/2 at s=2)",
    "pixelshuffle": "3x3 conv + pixel shuffle (Shi et al. 2016)",
    "unpool": "max-unpooling (SegNet, Badrinarayanan et al. 2017)",
    "carafe": "CARAFE (Wang et al. ICCV 2019); FADE Table 4 B2",
    "carafe_gate": "CARAFE + gate (FADE Table 2)",
    "nn_gate": "nearest + gate (FADE Table 2)",
    "indexnet": "IndexNet M2O DIN, nonlinear + context (Lu et al. ICCV 2019)",
    "indexnet_holistic": "IndexNet HIN, nonlinear + context (Lu et al. ICCV 2019)",
    "a2u": "A2U (Dai et al. CVPR 2021)",
    "sapa": "SAPA-B (Lu et al. NeurIPS 2022)",
    "dysample": "DySample-S 'lp', G=4 (Liu et al. ICCV 2023)",
    "fade": "FADE (Lu et al. ECCV 2022); Table 4 B6",
    "fade_lite": "FADE-Lite (journal version)",
    "encoder_kernels": "FADE Table 4 B1: encoder-only kernels",
    "naive_kernels": "FADE Table 4 B3: interpolate + concat kernels",
    "semi_shift": "FADE Table 4 B4: semi-shift, no gate",
    "semi_shift_skip": "FADE Table 4 B5: semi-shift + skip",
}

_PROBE_CHANNELS = 8
_PROBE_SCALES = (2, 3, 4)


def _probe_sizes(scale: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """A non-square low-resolution size and a floor-mode high-resolution size for ``scale``."""
    low = (5, 4)
    return low, (scale * low[0] + 1, scale * low[1])


def _runs(name: str, en_channels: int, de_channels: int, scale: int) -> bool:
    """Whether ``name`` builds and upsamples a tiny input at these channels and scale."""
    low, high = _probe_sizes(scale)
    try:
        module = create_upsampler(name, en_channels, de_channels, scale).eval()
        with torch.no_grad():
            out = module(torch.randn(2, en_channels, *high), torch.randn(2, de_channels, *low))
    except ValueError:
        return False
    return tuple(out.shape) == (2, de_channels, *high)


def _uses_en_content(name: str) -> bool:
    """Whether the output changes when en's values change (its size staying the same)."""
    module = create_upsampler(name, _PROBE_CHANNELS, scale=2).eval()
    low, high = _probe_sizes(2)
    de = torch.randn(2, _PROBE_CHANNELS, *low)
    with torch.no_grad():
        a = module(torch.randn(2, _PROBE_CHANNELS, *high), de)
        b = module(torch.randn(2, _PROBE_CHANNELS, *high), de)
    return not torch.equal(a, b)


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(name: str, channels: int = 256) -> dict[str, object]:
    """One row of the table for upsampler ``name``."""
    down, up = create_pair(name, channels, scale=2)
    c = _PROBE_CHANNELS
    return {
        "name": name,
        "operator": DESCRIPTIONS.get(name, "-"),
        "parameters": _parameters(create_upsampler(name, channels, scale=2)),
        "pair_parameters": _parameters(down) + _parameters(up),
        "uses_en": "content" if _uses_en_content(name) else "size only",
        "pair": "own down/up" if name in list_pairs() else "max-pool + up",
        "scales": [s for s in _PROBE_SCALES if _runs(name, c, c, s)],
        "channels_differ": _runs(name, c, c + 4, 2),
    }


def markdown_table(channels: int = 256) -> str:
    """The markdown table of every registered upsampler."""
    lines = [
        (
            f"| name | operator | params alone (C={channels}, s=2) | params as pair | uses en | "
            "pair (`create_pair`) | scales tried | C_en != C_de |"
        ),
        "|---|---|---:|---:|---|---|---|---|",
    ]
    for name in list_upsamplers():
        row = describe(name, channels)
        scales = ", ".join(str(s) for s in row["scales"]) or "none"
        lines.append(
            f"| `{name}` | {row['operator']} | {row['parameters']:,} | {row['pair_parameters']:,} | "
            f"{row['uses_en']} | {row['pair']} | "
            f"{scales} | {'yes' if row['channels_differ'] else 'no'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
