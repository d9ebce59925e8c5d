"""One pair API for every upsampler: create_pair(name, ...) -> (down, up), and models never branch."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fade
from fade.upsamplers import PairedUpsampler

NAMES = fade.list_upsamplers()
PAIRED = {"a2u", "indexnet", "indexnet_holistic", "unpool"}


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_exactly_the_operators_that_change_downsampling_are_paired():
    assert set(fade.upsamplers.list_pairs()) == PAIRED
    built = {name: fade.create_upsampler(name, 8) for name in NAMES}
    assert {name for name, m in built.items() if isinstance(m, PairedUpsampler)} == PAIRED


@pytest.mark.parametrize("name", NAMES)
def test_every_name_gives_a_down_up_pair_on_odd_sizes(name):
    down, up = fade.create_pair(name, 8, scale=2)
    down.eval(), up.eval()
    x = torch.randn(2, 8, 15, 11)
    y, context = down(x)
    assert y.shape == (2, 8, 7, 5)
    de = torch.randn(2, 8, 7, 5)
    out = up(x, de, context)
    assert out.shape == (2, 8, 15, 11)
    if name not in PAIRED:
        assert context is None
        torch.testing.assert_close(y, F.max_pool2d(x, 2), rtol=0, atol=0)
        torch.testing.assert_close(out, up.upsampler(x, de), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(PAIRED))
@pytest.mark.parametrize("s, high", [(2, (15, 11)), (2, (8, 6)), (3, (17, 13))])
def test_alone_equals_the_pair_path(name, s, high):
    """create_upsampler(name)(en, de) computes from en exactly the context that down(en) passes."""
    down, up = fade.create_pair(name, 8, scale=s)
    alone = fade.create_upsampler(name, 8, scale=s)
    loaded = alone.load_state_dict({f"down.{k}": v for k, v in down.state_dict().items()}, strict=False)
    assert not loaded.missing_keys
    down.eval(), alone.eval()
    x = torch.randn(2, 8, *high)
    y, context = down(x)
    de = torch.randn(2, 8, *y.shape[-2:])
    torch.testing.assert_close(alone(x, de), up(x, de, context))


@pytest.mark.parametrize("name", sorted(PAIRED))
def test_parameters_live_in_down_only(name):
    down, up = fade.create_pair(name, 16)
    alone = fade.create_upsampler(name, 16)
    assert n_params(up) == 0 and n_params(alone.up) == 0
    assert n_params(alone.down) == n_params(alone) <= n_params(down)


def test_a2u_alone_has_no_downsampling_kernels():
    alone = fade.create_upsampler("a2u", 4)
    assert alone.down.kernels.down_weights is None
    with pytest.raises(ValueError, match="predicts no downsampling kernels.*create_pair"):
        alone.down(torch.randn(1, 4, 8, 6))


def test_indexnet_pooling_is_index_weighted_window_sum():
    down, _ = fade.create_pair("indexnet", 4, scale=2)
    down.eval()
    x = torch.randn(2, 4, 9, 7)
    y, _ = down(x)
    idx_en = fade.upsamplers.indexnet.index_maps(down.index_block(x, (4, 3)))[0]
    windows = (x[..., :8, :6] * idx_en).unfold(2, 2, 2).unfold(3, 2, 2)
    torch.testing.assert_close(y, windows.sum(dim=(-1, -2)))
    # the encoder index is a softmax over each window: constant input pools to itself
    torch.testing.assert_close(down(torch.ones(2, 4, 8, 6))[0], torch.ones(2, 4, 4, 3))


def test_a2u_down_is_a2d_with_its_own_kernels():
    down, _ = fade.create_pair("a2u", 4, scale=2)
    x = torch.randn(2, 4, 9, 7)
    y, kernels = down(x)
    gen = down.kernels
    a = gen.affinity(x, (4, 3))
    torch.testing.assert_close(y, fade.upsamplers.a2u.a2d(x, gen.down_kernels(x, a), 2))
    torch.testing.assert_close(kernels, gen.up_kernels(x, a))
    torch.testing.assert_close(kernels.sum(dim=1), torch.ones(2, 8, 6))


@pytest.mark.parametrize("name", sorted(PAIRED))
def test_paired_up_requires_its_context(name):
    _, up = fade.create_pair(name, 4)
    with pytest.raises(ValueError, match="context: expected the .* returned by the paired"):
        up(torch.randn(1, 4, 8, 6), torch.randn(1, 4, 4, 3), None)


def test_plain_up_rejects_a_context():
    _, up = fade.create_pair("bilinear", 4)
    with pytest.raises(ValueError, match="context: expected None for BilinearUpsample"):
        up(torch.randn(1, 4, 8, 6), torch.randn(1, 4, 4, 3), torch.zeros(1))


def test_context_shape_and_dtype_errors():
    en, de = torch.randn(1, 4, 8, 6), torch.randn(1, 4, 4, 3)
    _, up = fade.create_pair("unpool", 4)
    with pytest.raises(ValueError, match=r"indices: expected shape \(1, 4, 4, 3\)"):
        up(en, de, torch.zeros(1, 4, 4, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="indices: expected dtype torch.int64, got torch.float32"):
        up(en, de, torch.zeros(1, 4, 4, 3))
    _, up = fade.create_pair("indexnet", 4)
    with pytest.raises(ValueError, match="idx_de: expected a"):
        up(en, de, torch.rand(1, 3, 8, 6))
    with pytest.raises(ValueError, match=r"idx_de: expected spatial size \(8, 6\)"):
        up(en, de, torch.rand(1, 4, 8, 8))
    _, up = fade.create_pair("a2u", 4)
    with pytest.raises(ValueError, match=r"context: expected kernels of shape"):
        up(en, de, torch.rand(1, 9, 4, 3))


@pytest.mark.parametrize("name", ["bilinear", "unpool", "indexnet", "a2u"])
def test_down_input_errors(name):
    down, _ = fade.create_pair(name, 4, scale=2)
    with pytest.raises(ValueError, match="x: expected a 4-D tensor"):
        down(torch.randn(4, 8, 6))
    with pytest.raises(ValueError, match=r"x: expected a spatial size of at least 2"):
        down(torch.randn(1, 4, 1, 6))


@pytest.mark.parametrize("name", ["indexnet", "a2u"])
def test_learned_down_checks_channels(name):
    down, _ = fade.create_pair(name, 4, scale=2)
    with pytest.raises(ValueError, match="x: expected 4 channels, got 5"):
        down(torch.randn(1, 5, 8, 6))


def test_unknown_pair_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match="unknown upsampler 'bicubic'; valid names: a2u, bilinear"):
        fade.create_pair("bicubic", 4)


class TinyEncoderDecoder(nn.Module):
    """A two-level encoder-decoder written once for every upsampler: no branch on the name."""

    def __init__(self, name: str, channels: int = 8, levels: int = 2) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(levels))
        pairs = [fade.create_pair(name, channels, scale=2) for _ in range(levels)]
        self.downs = nn.ModuleList(down for down, _ in pairs)
        self.ups = nn.ModuleList(up for _, up in pairs)
        self.head = nn.Conv2d(channels, 1, 1)

    def forward(self, image):
        x, skips = self.stem(image), []
        for block, down in zip(self.blocks, self.downs):
            x = torch.relu(block(x))
            pooled, context = down(x)
            skips.append((x, context))
            x = pooled
        for up, (skip, context) in zip(reversed(self.ups), reversed(skips)):
            x = up(skip, x, context) + skip
        return self.head(x)


@pytest.mark.parametrize("name", NAMES)
def test_one_model_definition_runs_every_upsampler(name):
    net = TinyEncoderDecoder(name)
    image = torch.randn(2, 3, 15, 13)
    out = net(image)
    assert out.shape == (2, 1, 15, 13)
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
