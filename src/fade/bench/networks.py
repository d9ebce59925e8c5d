"""What each upsampler adds to the paper's two networks: parameters and counted GFLOPs.

For SegFormer-B1 (segmentation) and A2U-R34 (matting), built by :func:`fade.models.create_model`
with every upsampling step done by one upsampler (configured as in the paper's presets), this counts
the network's parameters, the multiply-adds and the element-wise products of one inference call
(torch's flop counter, :func:`fade.bench.measure.count_flops`), and the difference to the same
network with bilinear upsampling: the "extra" cost the paper reports.

The published figures are those of the tables in the FADE repository's README (parameters as in
the paper; GFLOPs at a 512x512 input). Multiply-adds plus element-wise products reproduce its
extra GFLOPs of FADE, CARAFE, IndexNet and A2U in SegFormer-B1 and of FADE and CARAFE in A2U-R34 to
the printed digit. Its "IndexNet" in SegFormer-B1 (+12.60M, +30.65) is the holistic index network
(``indexnet_holistic``); in A2U-R34 (+12.26M) it is the depthwise M2O network at ``expansion=2``.
"""

from __future__ import annotations

from typing import TextIO

import torch

from ..models import create_model
from ..progress import Progress
from .cases import Case
from .measure import count_flops

__all__ = [
    "NETWORKS",
    "NETWORK_COLUMNS",
    "PAPER_EXTRA_GFLOPS",
    "PAPER_EXTRA_PARAMS",
    "PAPER_TOTAL_GFLOPS",
    "PAPER_TOTAL_PARAMS",
    "PAPER_UPSAMPLER_OPTIONS",
    "matches_published",
    "network_table",
    "run_network_suite",
]

NETWORKS = ("segformer_b1", "a2u_matting")

PAPER_TOTAL_PARAMS = {"segformer_b1": "13.7M", "a2u_matting": "8.05M"}
"""Published totals of the bilinear baselines (paper tables), as printed."""

PAPER_EXTRA_PARAMS = {
    ("segformer_b1", "carafe"): "0.44M",
    ("segformer_b1", "indexnet_holistic"): "12.60M",
    ("segformer_b1", "a2u"): "0.12M",
    ("segformer_b1", "fade"): "0.29M",
    ("a2u_matting", "carafe"): "0.26M",
    ("a2u_matting", "indexnet"): "12.26M",
    ("a2u_matting", "a2u"): "38K",
    ("a2u_matting", "fade"): "0.12M",
    ("a2u_matting", "fade_lite"): "27K",
}
"""Published extra parameters over bilinear (paper tables), as printed, where the paper gives them."""

PAPER_TOTAL_GFLOPS = {"segformer_b1": "15.91", "a2u_matting": "8.61"}
"""Published GFLOPs of the bilinear baselines (FADE repository README), as printed."""

PAPER_EXTRA_GFLOPS = {
    ("segformer_b1", "carafe"): "1.45",
    ("segformer_b1", "indexnet_holistic"): "30.65",
    ("segformer_b1", "a2u"): "0.41",
    ("segformer_b1", "fade"): "2.65",
    ("a2u_matting", "carafe"): "6.00",
    ("a2u_matting", "indexnet"): "31.70",
    ("a2u_matting", "a2u"): "0.66",
    ("a2u_matting", "fade"): "8.85",
}
"""Published extra GFLOPs over bilinear (FADE repository README), as printed."""

PAPER_UPSAMPLER_OPTIONS = {"a2u_matting": {"indexnet": {"expansion": 2}}}
"""Upsampler options of the paper's networks (as the ``matting/paper`` preset of :mod:`fade.train`)."""

_UNITS = {"K": 1e3, "M": 1e6}


def matches_published(value: float, printed: str) -> bool:
    """True when ``value`` rounds to ``printed`` ("0.29M", "27K" or a plain "2.65") at its precision."""
    number, unit = (printed[:-1], _UNITS[printed[-1]]) if printed[-1] in _UNITS else (printed, 1)
    decimals = len(number.partition(".")[2])
    return round(value / unit, decimals) == float(number)


NETWORK_COLUMNS = [
    "network",
    "upsampler",
    "input",
    "params",
    "extra_params",
    "paper_params",
    "params_match_paper",
    "gflops",
    "gproducts",
    "extra_gflops",
    "extra_gflops_with_products",
    "paper_gflops",
    "gflops_match_paper",
    "uncounted_ops",
    "notes",
]
"""Columns of the network table (gflops: 1e9 multiply-adds of one inference call, counted ops;
gproducts: 1e9 element-wise products; paper_*: as printed, extra over bilinear except for bilinear's
own row, which holds the published total; *_match_paper: our count rounds to the printed one)."""


def _input_channels(model: torch.nn.Module) -> int:
    """Image channels a model takes (A2U: RGB + trimap; SegFormer: RGB, on its encoder)."""
    return getattr(model, "in_channels", None) or model.encoder.in_channels


def run_network_suite(
    upsamplers: list[str],
    networks: tuple[str, ...] = NETWORKS,
    size: int = 512,
    device: str | torch.device = "cpu",
    progress: TextIO | None = None,
) -> list[dict]:
    """One row per (network, upsampler): parameters and GFLOPs, and their excess over bilinear.

    Args:
        upsamplers: upsampler names; "bilinear" is measured too, as the reference.
        networks: model names of :func:`fade.models.list_models`.
        size: the input image is (1, C_in, size, size); the published GFLOPs are for 512.
        device: where the networks run.
        progress: stream on which the network being counted, how many remain and the time left are
            drawn (:class:`fade.progress.Progress`; None: silent).

    Returns:
        Rows over :data:`NETWORK_COLUMNS` (None where not measured or not published).
    """
    device = torch.device(device)
    names = list(dict.fromkeys(["bilinear", *upsamplers]))
    rows = []
    with Progress(len(networks) * len(names), "bench networks", progress) as bar:
        for network in networks:
            measured: dict[str, dict] = {}
            for name in names:
                bar.begin(f"{network} + {name}")
                row = dict.fromkeys(NETWORK_COLUMNS)
                row.update(network=network, upsampler=name, notes="")
                options = PAPER_UPSAMPLER_OPTIONS.get(network, {})
                try:
                    torch.manual_seed(0)
                    model = create_model(network, name, upsampler_options=options.get(name, {})).to(device).eval()
                    x = torch.randn(1, _input_channels(model), size, size, device=device)
                    row["input"] = "x".join(map(str, x.shape))
                    row["params"] = sum(p.numel() for p in model.parameters())
                    flops = count_flops(Case(network, model, (x,), ()))
                    row.update(gflops=flops.macs / 1e9, gproducts=flops.products / 1e9)
                    row["uncounted_ops"] = " ".join(flops.uncounted)
                except Exception as err:  # noqa: BLE001  (an upsampler that cannot serve a network is recorded)
                    row["notes"] = f"failed: {type(err).__name__}: {str(err)[:200]}"
                measured[name] = row
                bar.advance()
            base = measured["bilinear"]
            for name, row in measured.items():
                if row["params"] is not None and base["params"] is not None:
                    row["extra_params"] = row["params"] - base["params"]
                if row["gflops"] is not None and base["gflops"] is not None:
                    row["extra_gflops"] = row["gflops"] - base["gflops"]
                    row["extra_gflops_with_products"] = row["extra_gflops"] + row["gproducts"] - base["gproducts"]
                if name == "bilinear":
                    published = PAPER_TOTAL_PARAMS.get(network), PAPER_TOTAL_GFLOPS.get(network)
                    ours = row["params"], None if row["gflops"] is None else row["gflops"] + row["gproducts"]
                else:
                    published = PAPER_EXTRA_PARAMS.get((network, name)), PAPER_EXTRA_GFLOPS.get((network, name))
                    ours = row["extra_params"], row["extra_gflops_with_products"]
                row["paper_params"], row["paper_gflops"] = published
                for key, printed, value in zip(("params_match_paper", "gflops_match_paper"), published, ours):
                    if printed is not None and value is not None:
                        row[key] = matches_published(value, printed)
                rows.append(row)
    return rows


def network_table(rows: list[dict]) -> str:
    """The rows as a markdown table, each count next to the paper's (extra over bilinear; totals for bilinear).

    GFLOPs here are multiply-adds plus element-wise products, the convention of the published figures.
    """

    def m(v: float | None) -> str:
        return "" if v is None else f"{v / 1e6:.3f}M"

    def g(v: float | None) -> str:
        return "" if v is None else f"{v:.2f}"

    def paper(printed: str | None, matches: bool | None, total: bool) -> str:
        if printed is None:
            return ""
        return f"{printed}{' total' if total else ''} ({'matches' if matches else 'differs'})"

    lines = [
        "| network | upsampler | input | params | extra params | paper | GFLOPs | extra GFLOPs | paper | notes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        total = r["upsampler"] == "bilinear"
        gflops = None if r["gflops"] is None else r["gflops"] + r["gproducts"]
        lines.append(
            f"| {r['network']} | {r['upsampler']} | {r['input'] or ''} | {m(r['params'])} | {m(r['extra_params'])} | "
            f"{paper(r['paper_params'], r['params_match_paper'], total)} | {g(gflops)} | "
            f"{g(r['extra_gflops_with_products'])} | {paper(r['paper_gflops'], r['gflops_match_paper'], total)} | "
            f"{r['notes']} |"
        )
    return "\n".join(lines) + "\n"
