"""The same checklist for every registered upsampler: sizes, scales, gradients, determinism, errors."""

import itertools

import pytest
import torch

import fade

NAMES = fade.list_upsamplers()
C = 8

# (scale, low-resolution size, high-resolution size): floor-mode, ceil-mode, exact; non-square.
CASES = [
    (2, (7, 5), (15, 11)),
    (2, (7, 5), (13, 9)),
    (2, (4, 6), (8, 12)),
    (3, (5, 4), (17, 13)),
    (3, (5, 4), (13, 10)),
    (4, (3, 2), (15, 8)),
    (4, (3, 2), (9, 5)),
]

# operators whose output depends on en only through its size
SIZE_ONLY = {"bilinear", "carafe", "deconv", "dysample", "nearest", "pixelshuffle"}
# operators that keep one index per encoder channel, so the decoder must have as many
SAME_CHANNELS = {"indexnet", "unpool"}


def inputs(low, high, c_en=C, c_de=C, batch=2):
    return torch.randn(batch, c_en, *high), torch.randn(batch, c_de, *low)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("s, low, high", CASES)
def test_output_is_de_at_en_size(name, s, low, high):
    up = fade.create_upsampler(name, C, scale=s)
    en, de = inputs(low, high)
    assert up(en, de).shape == (2, C, *high)


@pytest.mark.parametrize("name", NAMES)
def test_encoder_and_decoder_channels_may_differ_unless_indices_are_per_channel(name):
    if name in SAME_CHANNELS:
        with pytest.raises(ValueError, match="expected de_channels == en_channels, got en_channels=8, de_channels=12"):
            fade.create_upsampler(name, C, 12)
    else:
        en, de = inputs((7, 5), (15, 11), c_de=12)
        assert fade.create_upsampler(name, C, 12)(en, de).shape == (2, 12, 15, 11)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter_and_de(name):
    up = fade.create_upsampler(name, C, scale=2).train()
    en, de = inputs((7, 5), (15, 11))
    de.requires_grad_(True)
    out = up(en, de)
    (out * torch.randn_like(out)).sum().backward()
    assert de.grad is not None and de.grad.abs().sum() > 0
    for pname, p in up.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic_and_per_sample(name):
    up = fade.create_upsampler(name, C, scale=2).eval()
    en, de = inputs((7, 5), (15, 11), batch=3)
    with torch.no_grad():
        first, second = up(en, de), up(en, de)
        alone = up(en[1:2], de[1:2])
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(alone, first[1:2])


@pytest.mark.parametrize("name", NAMES)
def test_uses_en_content_exactly_when_declared(name):
    up = fade.create_upsampler(name, C, scale=2).eval()
    en, de = inputs((7, 5), (15, 11))
    with torch.no_grad():
        changed = not torch.equal(up(en, de), up(torch.randn_like(en), de))
    assert changed == (name not in SIZE_ONLY)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_value_error_naming_the_problem(name):
    up = fade.create_upsampler(name, C, scale=2)
    en, de = inputs((7, 5), (15, 11))
    with pytest.raises(ValueError, match=r"en: expected a 4-D tensor \(B, C, H, W\), got 3-D"):
        up(en[0], de)
    with pytest.raises(ValueError, match=r"de: expected a 4-D tensor \(B, C, H, W\), got 5-D"):
        up(en, de.unsqueeze(0))
    with pytest.raises(ValueError, match="en: expected 8 channels, got 9"):
        up(torch.randn(2, C + 1, 15, 11), de)
    with pytest.raises(ValueError, match="de: expected 8 channels, got 7"):
        up(en, torch.randn(2, C - 1, 7, 5))
    with pytest.raises(ValueError, match="batch mismatch: en has batch 2, de has batch 3"):
        up(en, torch.randn(3, C, 7, 5))
    with pytest.raises(ValueError, match=r"en spatial size vs de: .* got \(16, 11\)"):
        up(torch.randn(2, C, 16, 11), de)
    with pytest.raises(ValueError, match=r"en spatial size vs de: .* got \(15, 8\)"):
        up(torch.randn(2, C, 15, 8), de)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale, error", [(0, ValueError), (-2, ValueError), (2.5, ValueError), (True, TypeError), ("2", TypeError)])
def test_bad_scale_raises_a_clear_error(name, scale, error):
    with pytest.raises(error, match="scale must be a positive integer, got"):
        fade.create_upsampler(name, C, scale=scale)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match="unknown upsampler 'bicubic'; valid names: " + ", ".join(NAMES)):
        fade.create_upsampler("bicubic", C)


def test_every_required_operator_is_registered():
    required = {
        "nearest", "bilinear", "deconv", "pixelshuffle", "unpool", "carafe", "indexnet", "a2u", "sapa",
        "dysample", "fade", "fade_lite", "encoder_kernels", "naive_kernels", "semi_shift", "semi_shift_skip",
        "nn_gate", "carafe_gate",
    }
    assert required <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_follows_its_inputs_device(name):
    """On the meta device, a tensor made on the CPU by mistake fails arithmetic with the inputs:
    a CPU-only stand-in for running on CUDA (no GPU on the test machine)."""
    up = fade.create_upsampler(name, C, scale=2).to("meta")
    en, de = torch.empty(2, C, 15, 11, device="meta"), torch.empty(2, C, 7, 5, device="meta")
    out = up(en, de)
    assert out.device.type == "meta" and out.shape == (2, C, 15, 11)
    down, up = fade.create_pair(name, C, scale=2)
    down.to("meta"), up.to("meta")
    pooled, context = down(en)
    assert up(en, pooled, context).shape == (2, C, 15, 11)


@pytest.mark.parametrize("doc", ["README.md", "docs/upsamplers.md"])
def test_docs_table_lists_every_upsampler_with_its_parameter_count(doc):
    """The table is generated by `python -m fade.upsamplers.table`; a new name must appear."""
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[2] / doc).read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| `"))  # the doc's first table of names
    block = itertools.takewhile(lambda line: line.startswith("| `"), lines[first:])
    rows = {line.split("|")[1].strip(" `"): line.split("|") for line in block}
    assert set(rows) == set(NAMES)
    for name in NAMES:
        count = sum(p.numel() for p in fade.create_upsampler(name, 256).parameters())
        assert rows[name][3].strip() == f"{count:,}", name
