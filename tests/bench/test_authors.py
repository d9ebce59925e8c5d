"""The authors' pure-PyTorch FADE formulation computes exactly what fade.FADE computes."""

import pytest
import torch

import fade
from fade.bench.authors import FADEAuthors, authors_reassembly


def _randomise(module, seed=1):
    """Random weights AND biases, so a dropped or misplaced term cannot hide behind a zero init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


@pytest.mark.parametrize(("channels", "h", "w", "scale"), [(8, 5, 7, 2), (16, 4, 4, 2), (4, 3, 5, 3)])
def test_authors_formulation_equals_fade_float64(channels, h, w, scale):
    up = _randomise(fade.FADE(channels, scale=scale).double())
    authors = FADEAuthors(up)
    en = torch.randn(2, channels, scale * h, scale * w, dtype=torch.float64, requires_grad=True)
    de = torch.randn(2, channels, h, w, dtype=torch.float64, requires_grad=True)
    ours, theirs = up(en, de), authors(en, de)
    assert theirs.shape == (2, channels, scale * h, scale * w)
    assert (ours - theirs).abs().max().item() < 1e-5
    grad = torch.randn_like(ours)
    wrt = [en, de, *up.parameters()]
    for g_ours, g_theirs in zip(torch.autograd.grad(ours, wrt, grad), torch.autograd.grad(theirs, wrt, grad)):
        assert (g_ours - g_theirs).abs().max().item() < 1e-5


def test_authors_shares_the_fade_parameters():
    up = fade.FADE(256)
    authors = FADEAuthors(up)
    assert sum(p.numel() for p in authors.parameters()) == 47_514
    assert all(a is b for a, b in zip(authors.parameters(), up.parameters()))


def test_authors_reassembly_matches_carafe_non_square_k3():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    kernels = torch.randn(2, 9, 10, 12, dtype=torch.float64).softmax(dim=1)
    expected = fade.ops.carafe(x, kernels, 2)
    assert (authors_reassembly(x, kernels, 2) - expected).abs().max().item() < 1e-12


def test_authors_rejects_what_the_authors_code_cannot_do():
    with pytest.raises(ValueError, match="C_en == C_de"):
        FADEAuthors(fade.FADE(8, 16))
    with pytest.raises(ValueError, match="gate"):
        FADEAuthors(fade.FADE(8, fusion="none"))
    with pytest.raises(ValueError, match="spatial size"):
        FADEAuthors(fade.FADE(8))(torch.randn(1, 8, 9, 8), torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="exact multiple"):
        authors_reassembly(torch.randn(1, 2, 4, 4), torch.randn(1, 25, 9, 8), 2)
