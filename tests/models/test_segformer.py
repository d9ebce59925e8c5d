"""SegFormer: the bilinear head against the stock all-MLP head, attention against a float64 reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from fade.models import SegFormer, SegFormerHead
from fade.models.layers import drop_path
from fade.models.segformer import EfficientSelfAttention

WIDTHS = (16, 32, 40, 64)


def stock_head(head, features, upsample):
    """The original all-MLP head, computed from the head's weights with functional ops only.

    ``upsample(x, level, size)`` brings the projected level ``level`` to the stride-4 ``size``.
    """
    size = features[0].shape[-2:]
    levels = []
    for level, (x, proj) in enumerate(zip(features, head.projections)):
        b, c, h, w = x.shape
        y = F.linear(x.reshape(b, c, h * w).permute(0, 2, 1), proj.weight, proj.bias)
        y = y.permute(0, 2, 1).reshape(b, -1, h, w)
        levels.append(y if level == 0 else upsample(y, level, size))
    conv, bn = head.fuse[0], head.fuse[1]
    fused = F.conv2d(torch.cat(levels[::-1], dim=1), conv.weight)
    fused = F.batch_norm(fused, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps).relu()
    return F.conv2d(fused, head.classifier.weight, head.classifier.bias)


def one_bilinear_call(y, level, size):
    return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def chained_x2_calls(y, level, size):
    for _ in range(level):
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
    return y


def random_head(layout, dtype=torch.float64):
    head = SegFormerHead(WIDTHS, 7, "bilinear", embed_dim=24, layout=layout, dtype=dtype)
    bn = head.fuse[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    return head.eval()


def pyramid(h, w, dtype=torch.float64):
    """Encoder-like levels at strides 4, 8, 16, 32 of an h x w stride-4 map (exact halvings)."""
    return [torch.randn(2, c, h // 2**i, w // 2**i, dtype=dtype) for i, c in enumerate(WIDTHS)]


def test_direct_layout_with_bilinear_is_the_stock_head():
    head = random_head("direct")
    features = pyramid(16, 24)
    torch.testing.assert_close(head(features), stock_head(head, features, one_bilinear_call), rtol=1e-12, atol=1e-12)


def test_whole_model_direct_bilinear_equals_stock_head_on_its_encoder_features():
    model = SegFormer.tiny("bilinear", num_classes=7, layout="direct", dtype=torch.float64).eval()
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)  # sides multiples of 32, as the authors' test pipeline
    features = model.encoder(x)
    torch.testing.assert_close(model(x), stock_head(model.head, features, one_bilinear_call), rtol=1e-12, atol=1e-12)


def test_chain_layout_with_bilinear_is_a_chain_of_x2_bilinear_calls_not_the_stock_head():
    head = random_head("chain")
    features = pyramid(16, 24)
    out = head(features)
    torch.testing.assert_close(out, stock_head(head, features, chained_x2_calls), rtol=1e-12, atol=1e-12)
    assert (out - stock_head(head, features, one_bilinear_call)).abs().max() > 1e-3


def test_chain_and_stock_agree_when_only_the_c2_level_is_upsampled():
    head = random_head("chain")
    features = pyramid(16, 24)
    features[2].zero_()
    features[3].zero_()
    # zero levels project to their biases, constant maps that every bilinear path preserves
    torch.testing.assert_close(head(features), stock_head(head, features, one_bilinear_call), rtol=1e-12, atol=1e-12)


def test_chain_steps_are_guided_by_the_next_finer_level():
    head = random_head("chain")
    assert head.guides == [[0], [1, 0], [2, 1, 0]]
    assert [len(chain) for chain in head.chains] == [1, 2, 3]
    assert [[up.scale for up in chain] for chain in random_head("direct").chains] == [[2], [4], [8]]


def test_efficient_attention_against_float64_reference():
    torch.manual_seed(1)
    c, heads, r, (h, w) = 12, 3, 2, (6, 5)  # non-square, odd width: the reduction floors to 3 x 2
    attn = EfficientSelfAttention(c, heads, r, dtype=torch.float64)
    x = torch.randn(2, h * w, c, dtype=torch.float64)
    out = attn(x, (h, w))

    q = x @ attn.q.weight.T + attn.q.bias
    grid = x.transpose(1, 2).reshape(2, c, h, w)
    reduced = F.conv2d(grid, attn.reduce.weight, attn.reduce.bias, stride=r).flatten(2).transpose(1, 2)
    mean, var = reduced.mean(-1, keepdim=True), reduced.var(-1, unbiased=False, keepdim=True)
    reduced = (reduced - mean) / torch.sqrt(var + attn.norm.eps) * attn.norm.weight + attn.norm.bias
    kv = reduced @ attn.kv.weight.T + attn.kv.bias
    k, v = kv[..., :c], kv[..., c:]
    d = c // heads
    expected = torch.empty_like(x)
    for b in range(2):
        for i in range(heads):
            cols = slice(i * d, (i + 1) * d)
            weights = torch.softmax(q[b, :, cols] @ k[b, :, cols].T / math.sqrt(d), dim=-1)
            expected[b, :, cols] = weights @ v[b, :, cols]
    expected = expected @ attn.proj.weight.T + attn.proj.bias
    assert reduced.shape[1] == (h // r) * (w // r)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_output_sizes_are_ceil_quarter_and_predict_resizes_to_the_input():
    model = SegFormer.tiny("fade", num_classes=4).eval()
    x = torch.randn(1, 3, 61, 38)
    logits = model(x)
    assert logits.shape == (1, 4, 16, 10)
    torch.testing.assert_close(model.predict(x), F.interpolate(logits, size=(61, 38), mode="bilinear"))


def test_mit_b1_stage_sizes_and_widths():
    with torch.device("meta"):
        features = SegFormer("bilinear").encoder(torch.empty(1, 3, 100, 75))
    assert [tuple(f.shape[1:]) for f in features] == [(64, 25, 19), (128, 13, 10), (320, 7, 5), (512, 4, 3)]


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(4000, 3, 2, dtype=torch.float64)
    y = drop_path(x, 0.25, training=True)
    kept = y.flatten(1).amax(1)
    assert set(torch.unique(y).tolist()) == {0.0, 1 / 0.75}
    assert (y.flatten(1) == kept[:, None]).all()  # one decision per sample
    assert abs(y.mean().item() - 1.0) < 0.05
    assert torch.equal(drop_path(x, 0.25, training=False), x)


def test_stochastic_depth_is_on_only_in_training():
    model = SegFormer.tiny("bilinear", num_classes=3, drop_path_rate=0.5, depths=(2, 2, 2, 2))
    x = torch.randn(2, 3, 40, 40)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x))


def test_bad_input_is_refused():
    model = SegFormer.tiny("bilinear")
    with pytest.raises(ValueError, match=r"x: expected a \(B, 3, H, W\) image batch, got shape \(1, 4, 40, 40\)"):
        model(torch.randn(1, 4, 40, 40))
    with pytest.raises(ValueError, match=r"stage 1's reduction ratio 8, got \(20, 40\), which that stage sees at 5x10"):
        model(torch.randn(1, 3, 20, 40))
    with pytest.raises(ValueError, match="layout: expected 'chain' or 'direct', got 'pyramid'"):
        SegFormer.tiny("bilinear", layout="pyramid")
    with pytest.raises(ValueError, match="num_heads: expected a divisor of the width 40, got 3"):
        SegFormer.tiny("bilinear", num_heads=(1, 1, 3, 2))
    with pytest.raises(ValueError, match="expected one entry per stage each, got lengths 4, 3, 4, 4"):
        SegFormer.tiny("bilinear", depths=(1, 1, 1))
    with pytest.raises(ValueError, match="features: expected 4 levels, got 3"):
        model.head(model.encoder(torch.randn(1, 3, 40, 40))[:3])
