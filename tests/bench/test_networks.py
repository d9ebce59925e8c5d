"""What FADE adds to the paper's networks, against the published parameter counts."""

import io
import re

import pytest
import torch

import fade
from fade.bench.networks import PAPER_UPSAMPLER_OPTIONS, matches_published, network_table, run_network_suite
from fade.train import get_preset


def test_fade_extra_parameters_in_both_networks_match_the_paper():
    rows = {(r["network"], r["upsampler"]): r for r in run_network_suite(["fade", "fade_lite"], size=32)}
    assert set(rows) == {(n, u) for n in ("segformer_b1", "a2u_matting") for u in ("bilinear", "fade", "fade_lite")}
    seg, mat = rows["segformer_b1", "fade"], rows["a2u_matting", "fade"]
    assert seg["extra_params"] == 6 * sum(p.numel() for p in fade.FADE(256).parameters()) == 285_084
    assert mat["extra_params"] == 124_008 and rows["a2u_matting", "fade_lite"]["extra_params"] == 27_216
    for r in rows.values():
        assert r["notes"] == "" and r["gflops"] > 0
    published = {k: r["paper_params"] for k, r in rows.items() if r["paper_params"]}
    assert published == {
        ("segformer_b1", "bilinear"): "13.7M",
        ("segformer_b1", "fade"): "0.29M",
        ("a2u_matting", "bilinear"): "8.05M",
        ("a2u_matting", "fade"): "0.12M",
        ("a2u_matting", "fade_lite"): "27K",
    }
    assert all(rows[k]["params_match_paper"] is True for k in published)
    assert {k: r["paper_gflops"] for k, r in rows.items() if r["paper_gflops"]} == {
        ("segformer_b1", "bilinear"): "15.91",
        ("segformer_b1", "fade"): "2.65",
        ("a2u_matting", "bilinear"): "8.61",
        ("a2u_matting", "fade"): "8.85",
    }
    # a 32x32 input is 256 times fewer pixels than the published 512x512
    assert not any(r["gflops_match_paper"] for r in rows.values())
    for network in ("segformer_b1", "a2u_matting"):
        base = rows[network, "bilinear"]
        assert base["extra_params"] == 0 and base["extra_gflops"] == 0 == base["extra_gflops_with_products"]
        assert rows[network, "fade"]["extra_gflops"] > rows[network, "fade_lite"]["extra_gflops"] > 0
        assert rows[network, "fade"]["gproducts"] > base["gproducts"]
        for r in (rows[network, "fade"], rows[network, "fade_lite"]):
            extra_products = r["gproducts"] - base["gproducts"]
            assert r["extra_gflops_with_products"] == pytest.approx(r["extra_gflops"] + extra_products, abs=1e-12)
    assert rows["segformer_b1", "bilinear"]["input"] == "1x3x32x32" and mat["input"] == "1x4x32x32"
    table = network_table(list(rows.values()))
    assert "| segformer_b1 | fade | 1x3x32x32 | 14.001M | 0.285M | 0.29M (matches) |" in table
    assert "| a2u_matting | bilinear | 1x4x32x32 | 8.049M | 0.000M | 8.05M total (matches) |" in table
    assert "| 8.61 total (differs) |" in table and "| 2.65 (differs) |" in table


def test_published_extra_gflops_of_fade_and_carafe_are_reproduced_at_512():
    """Multiply-adds plus element-wise products: the convention of the GFLOPs published with FADE."""
    rows = run_network_suite(["fade", "carafe"], size=512)
    assert all(r["gflops_match_paper"] for r in rows if r["upsampler"] != "bilinear")
    extra = {(r["network"], r["upsampler"]): round(r["extra_gflops_with_products"], 2) for r in rows}
    assert extra == {
        ("segformer_b1", "bilinear"): 0.0,
        ("segformer_b1", "fade"): 2.65,
        ("segformer_b1", "carafe"): 1.45,
        ("a2u_matting", "bilinear"): 0.0,
        ("a2u_matting", "fade"): 8.85,
        ("a2u_matting", "carafe"): 6.00,
    }


def test_paper_upsampler_options_are_those_of_the_paper_presets():
    assert PAPER_UPSAMPLER_OPTIONS == {"a2u_matting": get_preset("matting", "paper").upsampler_options}
    (_, indexnet) = run_network_suite(["indexnet"], networks=("a2u_matting",), size=32)
    assert indexnet["extra_params"] == 12_263_424 and indexnet["params_match_paper"] is True


def test_matches_published_uses_the_printed_precision():
    assert matches_published(13_715_798, "13.7M") and not matches_published(13_715_798, "13.71M")
    assert matches_published(2.6532, "2.65") and not matches_published(2.6233, "2.65")
    assert matches_published(6.0023, "6.00") and not matches_published(6.0023, "6.01")
    assert matches_published(27_216, "27K") and not matches_published(27_616, "27K")
    assert matches_published(285_084, "0.29M") and not matches_published(275_084, "0.29M")


def test_an_upsampler_that_fails_in_a_network_is_recorded_and_progress_is_shown():
    progress = io.StringIO()
    (base, bad) = run_network_suite(["no_such_upsampler"], networks=("a2u_matting",), size=32, progress=progress)
    assert base["upsampler"] == "bilinear" and base["params"] > 0
    assert bad["params"] is None and bad["extra_params"] is None and bad["notes"].startswith("failed: KeyError")
    # not a terminal: the first step and the closing line (further lines at most one per 10 s)
    lines = progress.getvalue().splitlines()
    assert lines[0] == "bench networks 1/2 a2u_matting + bilinear | 0:00 elapsed, ETA ?"
    assert re.fullmatch(r"bench networks 2/2 done in \d+:\d\d", lines[-1]) and len(lines) <= 3
    assert torch.get_num_threads() == 1
