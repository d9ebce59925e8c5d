"""What each upsampler adds to the paper's two networks: parameters and counted GFLOPs.

For SegFormer-B1 (segmentation) and A2U-R34 (matting), built by :func:`fade.models.create_model`
with every upsampling step done by one upsampler, this counts the network's parameters and the
multiply-adds of one inference call (torch's flop counter, counted operators only, as in
:func:`fade.bench.measure.count_flops`), and the difference to the same network with bilinear
upsampling: the "extra" cost the paper reports.
"""

from __future__ import annotations

import torch

from ..models import create_model
from .cases import Case
from .measure import count_flops

__all__ = [
    "NETWORKS",
    "NETWORK_COLUMNS",
    "PAPER_EXTRA_PARAMS",
    "PAPER_TOTAL_PARAMS",
    "matches_published",
    "network_table",
    "run_network_suite",
]

NETWORKS = ("segformer_b1", "a2u_matting")

PAPER_TOTAL_PARAMS = {"segformer_b1": "13.7M", "a2u_matting": "8.05M"}
"""Published totals of the bilinear baselines (paper tables), as printed."""

PAPER_EXTRA_PARAMS = {
    ("segformer_b1", "fade"): "0.29M",
    ("a2u_matting", "carafe"): "0.26M",
    ("a2u_matting", "indexnet"): "12.26M",
    ("a2u_matting", "a2u"): "38K",
    ("a2u_matting", "fade"): "0.12M",
    ("a2u_matting", "fade_lite"): "27K",
}
"""Published extra parameters over bilinear (paper tables), as printed, where the paper gives them."""

_UNITS = {"K": 1e3, "M": 1e6}


def matches_published(count: int, printed: str) -> bool:
    """True when ``count`` rounds to ``printed`` (e.g. "0.29M", "27K") at the printed precision."""
    number, unit = printed[:-1], _UNITS[printed[-1]]
    decimals = len(number.partition(".")[2])
    return round(count / unit, decimals) == float(number)


NETWORK_COLUMNS = [
    "network",
    "upsampler",
    "input",
    "params",
    "extra_params",
    "paper_params",
    "matches_paper",
    "gflops",
    "extra_gflops",
    "uncounted_ops",
    "notes",
]
"""Columns of the network table (gflops: 1e9 multiply-adds of one inference call, counted ops)."""


def _input_channels(model: torch.nn.Module) -> int:
    """Image channels a model takes (A2U: RGB + trimap; SegFormer: RGB, on its encoder)."""
    return getattr(model, "in_channels", None) or model.encoder.in_channels


def run_network_suite(
    upsamplers: list[str],
    networks: tuple[str, ...] = NETWORKS,
    size: int = 512,
    device: str | torch.device = "cpu",
) -> list[dict]:
    """One row per (network, upsampler): parameters and GFLOPs, and their excess over bilinear.

    Args:
        upsamplers: upsampler names; "bilinear" is measured too, as the reference.
        networks: model names of :func:`fade.models.list_models`.
        size: the input image is (1, C_in, size, size).
        device: where the networks run.

    Returns:
        Rows over :data:`NETWORK_COLUMNS` (None where not measured or not published).
    """
    device = torch.device(device)
    rows = []
    for network in networks:
        measured: dict[str, dict] = {}
        for name in dict.fromkeys(["bilinear", *upsamplers]):
            row = dict.fromkeys(NETWORK_COLUMNS)
            row.update(network=network, upsampler=name, notes="")
            try:
                torch.manual_seed(0)
                model = create_model(network, name).to(device).eval()
                x = torch.randn(1, _input_channels(model), size, size, device=device)
                row["input"] = "x".join(map(str, x.shape))
                row["params"] = sum(p.numel() for p in model.parameters())
                macs, uncounted = count_flops(Case(network, model, (x,), ()))
                row.update(gflops=macs / 1e9, uncounted_ops=" ".join(uncounted))
            except Exception as err:  # noqa: BLE001  (an upsampler that cannot serve a network is recorded)
                row["notes"] = f"failed: {type(err).__name__}: {str(err)[:200]}"
            measured[name] = row
        base = measured["bilinear"]
        for name, row in measured.items():
            for key in ("params", "gflops"):
                if row[key] is not None and base[key] is not None:
                    row[f"extra_{key}"] = row[key] - base[key]
            if name == "bilinear":
                row["paper_params"], count = PAPER_TOTAL_PARAMS.get(network), row["params"]
            else:
                row["paper_params"], count = PAPER_EXTRA_PARAMS.get((network, name)), row["extra_params"]
            if row["paper_params"] is not None and count is not None:
                row["matches_paper"] = matches_published(count, row["paper_params"])
            rows.append(row)
    return rows


def network_table(rows: list[dict]) -> str:
    """The rows as a markdown table, parameters in millions next to the paper's (extra; total for bilinear)."""

    def m(v: float | None, digits: int = 3) -> str:
        return "" if v is None else f"{v / 1e6:.{digits}f}M"

    def g(v: float | None) -> str:
        return "" if v is None else f"{v:.2f}"

    lines = [
        "| network | upsampler | input | params | extra params | paper | GFLOPs (counted) | extra GFLOPs | notes |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        paper = r["paper_params"] or ""
        if paper:
            total = " total" if r["upsampler"] == "bilinear" else ""
            paper = f"{paper}{total} ({'matches' if r['matches_paper'] else 'differs'})"
        lines.append(
            f"| {r['network']} | {r['upsampler']} | {r['input'] or ''} | {m(r['params'])} | {m(r['extra_params'])} | "
            f"{paper} | {g(r['gflops'])} | {g(r['extra_gflops'])} | {r['notes']} |"
        )
    return "\n".join(lines) + "\n"
