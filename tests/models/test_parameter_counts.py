"""Full-size parameter counts against counts derived by hand here and the published ones."""

import pytest
import torch

from fade.models import create_model
from fade.models.table import count_parameters


def params(name, upsampler, **options):
    with torch.device("meta"):
        return count_parameters(create_model(name, upsampler, **options))


# hand-derived layer counts
def conv(k, c_in, c_out, bias=False, groups=1):
    return k * k * c_in // groups * c_out + (c_out if bias else 0)


def bn(c):
    return 2 * c


def basic_block(c_in, c_out, stride=1):
    shortcut = conv(1, c_in, c_out) + bn(c_out) if c_in != c_out or stride != 1 else 0
    return conv(3, c_in, c_out) + bn(c_out) + conv(3, c_out, c_out) + bn(c_out) + shortcut


def mit_b1():
    total, previous = 0, 3
    for i, (c, r) in enumerate(zip((64, 128, 320, 512), (8, 4, 2, 1))):
        total += conv(7 if i == 0 else 3, previous, c, bias=True) + 2 * c  # patch embed + LN
        attention = (
            (c * c + c) + (2 * c * c + 2 * c) + (c * c + c) + ((conv(r, c, c, bias=True) + 2 * c) if r > 1 else 0)
        )
        ffn = (c * 4 * c + 4 * c) + conv(3, 4 * c, 4 * c, bias=True, groups=4 * c) + (4 * c * c + c)
        total += 2 * (2 * c + attention + 2 * c + ffn) + 2 * c  # two blocks + stage norm
        previous = c
    return total


def all_mlp_head(e=256, k=150):
    return sum(c * e + e for c in (64, 128, 320, 512)) + conv(1, 4 * e, e) + bn(e) + conv(1, e, k, bias=True)


def a2u_r34():
    stem = conv(7, 4, 64) + bn(64)
    encoder = 3 * basic_block(64, 64)
    for c_in, c in ((64, 128), (128, 256)):  # pooling first block (conv, pool, conv; strided 1x1 shortcut) + 3 blocks
        encoder += conv(3, c_in, c) + bn(c) + conv(3, c, c) + bn(c) + conv(1, c_in, c) + bn(c) + 3 * basic_block(c, c)
    aspp = conv(1, 256, 256) + bn(256) + 3 * (conv(3, 256, 256, groups=256) + bn(256) + conv(1, 256, 256) + bn(256))
    aspp += conv(1, 256, 256) + bn(256) + conv(1, 5 * 256, 256) + bn(256)
    decoder = 0
    for c, skip, out in ((256, 128, 128), (128, 64, 64), (64, 64, 64), (64, 4, 32)):
        decoder += conv(3, skip, c) + bn(c) + basic_block(c, out) + basic_block(out, out)
    prediction = conv(3, 32, 1) + bn(1) + conv(3, 1, 1)
    return stem + encoder + aspp + decoder + prediction


MATTING_WIDTHS = (256, 128, 64, 64)
SEGFORMER_STEPS = 6


def test_segformer_b1_with_bilinear_is_the_stock_model():
    total = params("segformer_b1", "bilinear")
    assert mit_b1() == 13_151_424  # MiT-B1: 13.1M
    assert total == mit_b1() + all_mlp_head() == 13_715_798
    assert round(total / 1e6, 1) == 13.7  # paper: 13.7M


@pytest.mark.parametrize(
    "upsampler, per_step",
    [("fade", 47_514), ("carafe", 74_148), ("fade_lite", 13_332), ("a2u", 10_790), ("sapa", 17_472)],
)
def test_segformer_b1_adds_six_upsamplers(upsampler, per_step):
    assert params("segformer_b1", upsampler) - params("segformer_b1", "bilinear") == SEGFORMER_STEPS * per_step


def test_segformer_b1_additions_round_to_the_published_ones():
    base = params("segformer_b1", "bilinear")
    assert round((params("segformer_b1", "fade") - base) / 1e6, 2) == 0.29
    assert round((params("segformer_b1", "carafe") - base) / 1e6, 2) == 0.44


def test_a2u_r34_with_bilinear():
    total = params("a2u_matting", "bilinear")
    assert total == a2u_r34() == 8_049_003
    assert round(total / 1e6, 2) == 8.05  # paper: 8.05M


@pytest.mark.parametrize(
    "upsampler, options, per_channel, published",
    [
        ("fade", {}, lambda c: 129 * c + 14_490, 124_008),  # paper +0.12M; facts file 124,008
        ("fade_lite", {}, lambda c: 51 * c + 276, 27_216),  # paper +27K
        ("carafe", {}, lambda c: 64 * c + 57_764, 263_824),  # paper +0.26M
        ("indexnet", {"expansion": 2}, lambda c: 136 * c * c + 16 * c, 12_263_424),  # paper +12.26M
        ("a2u", {}, lambda c: 78 * c + 74, 40_232),  # paper +38K: see the next test
    ],
)
def test_a2u_r34_additions(upsampler, options, per_channel, published):
    extra = params("a2u_matting", upsampler, upsampler_options=options) - params("a2u_matting", "bilinear")
    assert extra == sum(per_channel(c) for c in MATTING_WIDTHS) == published


def test_a2u_published_38k_is_the_count_without_groupnorm_affine_parameters():
    with torch.device("meta"):
        model = create_model("a2u_matting", "a2u")
    norms = sum(count_parameters(m) for m in model.modules() if isinstance(m, torch.nn.GroupNorm))
    base = params("a2u_matting", "bilinear")
    assert norms == 4 * sum(MATTING_WIDTHS)
    assert count_parameters(model) - base - norms == 38_184
