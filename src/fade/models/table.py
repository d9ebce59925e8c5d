"""Parameter counts of the full-size reference networks per upsampler, against the published ones.

``python -m fade.models.table`` prints the markdown table of docs/models.md. Models are built on
the ``meta`` device (no memory, no init cost); counts are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .registry import create_model

__all__ = ["ROWS", "Row", "count_parameters", "markdown_table"]


@dataclass(frozen=True)
class Row:
    """One table row: ``create_model(model, upsampler, **options)`` and the published number."""

    model: str
    upsampler: str
    published: str
    source: str
    options: dict = field(default_factory=dict)


ROWS = (
    Row("segformer_b1", "bilinear", "13.7M total", "FADE paper (stock SegFormer-B1)"),
    Row("segformer_b1", "fade", "+0.29M", "FADE paper"),
    Row("segformer_b1", "fade_lite", "", ""),
    Row("segformer_b1", "carafe", "+0.44M", "6 x 74,148 (CARAFE's published module count)"),
    Row("segformer_b1", "indexnet_holistic", "+12.60M", "SAPA tables"),
    Row("segformer_b1", "a2u", "+0.06M", "SAPA tables"),
    Row("segformer_b1", "sapa", "+0.1M", "SAPA tables"),
    Row("a2u_matting", "bilinear", "8.05M total", "FADE paper"),
    Row("a2u_matting", "fade", "+0.12M", "FADE paper"),
    Row("a2u_matting", "fade_lite", "+27K", "FADE paper (journal version)"),
    Row("a2u_matting", "carafe", "+0.26M", "FADE paper"),
    Row("a2u_matting", "indexnet", "+12.26M", "FADE paper", {"expansion": 2}),
    Row("a2u_matting", "a2u", "+38K", "FADE paper"),
    Row("a2u_matting", "sapa", "+0.04M", "SAPA tables"),
    Row("segnet", "bilinear", "", ""),
    Row("segnet", "fade", "", ""),
    Row("autoencoder", "bilinear", "", ""),
    Row("autoencoder", "fade", "", ""),
)


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements of ``module``."""
    return sum(p.numel() for p in module.parameters())


def _count(row: Row) -> int:
    with torch.device("meta"):
        return count_parameters(create_model(row.model, row.upsampler, upsampler_options=row.options))


def markdown_table(rows: tuple[Row, ...] = ROWS) -> str:
    """The markdown table: total parameters and the difference to the same model with bilinear."""
    lines = [
        "| model | upsampler | options | total params | vs bilinear | published | source |",
        "|---|---|---|---:|---:|---|---|",
    ]
    baselines: dict[str, int] = {}
    for row in rows:
        total = _count(row)
        if row.model not in baselines:
            baselines[row.model] = _count(Row(row.model, "bilinear", "", ""))
        extra = total - baselines[row.model]
        options = ", ".join(f"{k}={v!r}" for k, v in row.options.items())
        lines.append(
            f"| `{row.model}` | `{row.upsampler}` | {options} | {total:,} | {extra:+,} | {row.published} | {row.source} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
