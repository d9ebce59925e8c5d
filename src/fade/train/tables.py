"""The paper's Tables 1-4 as comparisons: which tasks (with which preset) and which upsamplers.

``fade compare --table N`` runs table ``N`` (:data:`PAPER_TABLES`) into ``OUT/tableN/TASK``; Table 3
is the default comparison of ``fade compare`` and writes to ``OUT/TASK``, as a plain ``fade compare``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPER_TABLES", "PaperTable", "TABLE3_UPSAMPLERS"]

TABLE3_UPSAMPLERS = ("bilinear", "carafe", "indexnet_holistic", "a2u", "sapa", "dysample", "fade", "fade_lite")
"""The paper's Table 3 with the newer peers. IndexNet is its holistic form (HIN), the one the FADE
authors plugged into SegFormer: the M2O form cannot fit the 10 % parameter budget of the CPU networks
(see :mod:`fade.train.presets`)."""


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables, run on this project's CPU presets.

    Attributes:
        title: what the table compares. runs: (task, preset name) pairs, one per task.
        upsamplers: the rows, in the paper's order. folder: the subfolder of ``--out`` it writes to.
    """

    title: str
    runs: tuple[tuple[str, str], ...]
    upsamplers: tuple[str, ...]
    folder: str


PAPER_TABLES: dict[int, PaperTable] = {
    1: PaperTable(
        "kernels from the decoder only (CARAFE), the encoder only (B1) and both (semi-shift, B4); no gate",
        (("reconstruction", "cpu"), ("segmentation", "binary")),
        ("carafe", "encoder_kernels", "semi_shift"),
        "table1",
    ),
    2: PaperTable(
        "the decoder-conditioned gate: nearest vs nearest + gate, CARAFE vs CARAFE + gate (SegNet, binary)",
        (("segmentation", "segnet"), ("matting", "cpu")),
        ("nearest", "nn_gate", "carafe", "carafe_gate"),
        "table2",
    ),
    3: PaperTable(
        "FADE against the upsamplers it is measured against, on a task of each kind",
        (("segmentation", "cpu"), ("matting", "cpu"), ("reconstruction", "cpu")),
        TABLE3_UPSAMPLERS,
        "",
    ),
    4: PaperTable(
        "ablation B1-B6: encoder-only, decoder-only, naive and semi-shift kernels, plain skip, gate",
        (("segmentation", "binary"), ("matting", "cpu")),
        ("encoder_kernels", "carafe", "naive_kernels", "semi_shift", "semi_shift_skip", "fade"),
        "table4",
    ),
}
"""The paper's tables by number."""
