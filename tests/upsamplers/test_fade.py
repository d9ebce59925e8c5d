"""FADE, FADE-Lite and the ablation variants against independent float64 references."""

import math

import pytest
import torch
import torch.nn.functional as F

import fade
from fade.upsamplers.kernels import SemiShiftKernels

# ---------------------------------------------------------------------------------------------
# Independent references: explicit loops over pixels in float64, written from the paper's text.
# ---------------------------------------------------------------------------------------------


def conv_loop(z, weight, bias, groups=1):
    """Same-padded convolution, one output pixel at a time. z: (D, H, W) -> (K, H, W)."""
    d, h, w = z.shape
    k_out, d_per_group, kh, kw = weight.shape
    out_per_group = k_out // groups
    out = torch.zeros(k_out, h, w, dtype=z.dtype)
    for o in range(k_out):
        g = o // out_per_group
        for y in range(h):
            for x in range(w):
                acc = bias[o].item() if bias is not None else 0.0
                for a in range(kh):
                    for b in range(kw):
                        yy, xx = y + a - kh // 2, x + b - kw // 2
                        if 0 <= yy < h and 0 <= xx < w:
                            zin = z[g * d_per_group : (g + 1) * d_per_group, yy, xx]
                            acc += float((weight[o, :, a, b] * zin).sum().detach())
                out[o, y, x] = acc
    return out


def src(i, n, s):
    return min(i // s, n - 1)


def semi_shift_logits_loop(gen, en, de, s):
    """Eq. 3 read literally for one image: conv(compress_en(en))[Y, X] + conv(compress_de(de))[y, x]."""
    ce, cd, enc = gen.compress_en, gen.compress_de, gen.content_encoder
    cen = conv_loop(en, ce.weight, ce.bias)
    cde = conv_loop(de, cd.weight, cd.bias)
    high = conv_loop(cen, enc.weight, enc.bias, enc.groups)
    low = conv_loop(cde, enc.weight, enc.bias, enc.groups)
    ho, wo = en.shape[-2:]
    h, w = de.shape[-2:]
    out = torch.empty_like(high)
    for y in range(ho):
        for x in range(wo):
            out[:, y, x] = high[:, y, x] + low[:, src(y, h, s), src(x, w, s)]
    return out


def fade_loop(module, en, de):
    """FADE end to end for a batch, from the facts file's definition, with pixel loops."""
    s = module.scale
    outs = []
    for b in range(en.shape[0]):
        logits = semi_shift_logits_loop(module.kernel_generator, en[b], de[b], s)
        k2, ho, wo = logits.shape
        k = math.isqrt(k2)
        r = k // 2
        c, h, w = de[b].shape
        out = torch.zeros(c, ho, wo, dtype=en.dtype)
        for y in range(ho):
            for x in range(wo):
                kern = torch.softmax(logits[:, y, x], dim=0)
                sy, sx = src(y, h, s), src(x, w, s)
                up = torch.zeros(c, dtype=en.dtype)
                for i in range(k):
                    for j in range(k):
                        yy, xx = sy + i - r, sx + j - r
                        if 0 <= yy < h and 0 <= xx < w:
                            up += de[b, :, yy, xx] * kern[i * k + j]
                gate_logit = (module.gate.weight[0, :, 0, 0] * de[b, :, sy, sx]).sum() + module.gate.bias[0]
                g = torch.sigmoid(gate_logit)
                guide = en[b, :, y, x]
                if module.aligner is not None:
                    guide = module.aligner.weight[:, :, 0, 0] @ guide
                out[:, y, x] = guide * g + up * (1 - g)
        outs.append(out)
    return torch.stack(outs)


def semi_shift_high_to_low(gen, en, de, s):
    """The paper's high-to-low form (Fig. 5b): for each of the s*s sub-positions (p, q), a stride-s
    conv over en shifted by (p, q), plus the stride-1 conv over de, reassembled in pixel-shuffle
    layout. Exact multiples only (en = s * de)."""
    enc = gen.content_encoder
    pad = enc.kernel_size[0] // 2
    cen, cde = gen.compress_en(en), gen.compress_de(de)
    h, w = de.shape[-2:]
    low = enc(cde)
    subs = []
    for p in range(s):
        for q in range(s):
            shifted = F.pad(cen, (pad - q, pad + s, pad - p, pad + s))
            high = F.conv2d(shifted, enc.weight, enc.bias, stride=s, groups=enc.groups)[..., :h, :w]
            subs.append(high + low)
    stacked = torch.stack(subs, dim=2)  # (B, K*K, s*s, H, W), sub-position index p*s + q
    return F.pixel_shuffle(stacked.flatten(1, 2), s)


def params(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "c_en, c_de, de_hw, en_hw, s, k",
    [
        (3, 3, (3, 2), (6, 4), 2, 3),  # non-square, exact
        (2, 4, (3, 2), (7, 5), 2, 3),  # floor-mode odd encoder size, C_en != C_de
        (3, 3, (2, 3), (5, 9), 3, 5),  # scale 3, odd sizes
        (2, 2, (1, 1), (2, 2), 2, 1),  # 1x1 decoder map, K = 1
        (2, 2, (2, 1), (3, 2), 2, 3),  # ceil-mode encoder size
    ],
)
def test_fade_matches_pixel_loop_reference(c_en, c_de, de_hw, en_hw, s, k):
    torch.manual_seed(1)
    m = fade.FADE(c_en, c_de, scale=s, kernel_size=k, compressed_channels=4).double()
    for p in m.parameters():  # the reference init has zero biases: randomise to test them too
        torch.nn.init.normal_(p, std=0.5)
    en = torch.randn(2, c_en, *en_hw, dtype=torch.float64)
    de = torch.randn(2, c_de, *de_hw, dtype=torch.float64)
    torch.testing.assert_close(m(en, de), fade_loop(m, en, de), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("s, de_hw, h", [(2, (3, 2), 3), (2, (4, 5), 5), (3, (2, 3), 3), (4, (2, 2), 1)])
def test_semi_shift_low_to_high_equals_high_to_low(s, de_hw, h):
    torch.manual_seed(2)
    gen = SemiShiftKernels(3, 5, kernel_size=3, compressed_channels=4, encoder_kernel_size=h).double()
    for p in gen.parameters():
        torch.nn.init.normal_(p)
    de = torch.randn(2, 5, *de_hw, dtype=torch.float64)
    en = torch.randn(2, 3, s * de_hw[0], s * de_hw[1], dtype=torch.float64)
    torch.testing.assert_close(gen(en, de, s), semi_shift_high_to_low(gen, en, de, s), rtol=1e-10, atol=1e-10)


def test_semi_shift_logits_match_loop_and_bias_counts_twice():
    torch.manual_seed(3)
    gen = SemiShiftKernels(2, 3, kernel_size=3, compressed_channels=4).double()
    for p in gen.parameters():
        torch.nn.init.normal_(p)
    en, de = torch.randn(1, 2, 7, 5, dtype=torch.float64), torch.randn(1, 3, 3, 2, dtype=torch.float64)
    torch.testing.assert_close(gen(en, de, 2)[0], semi_shift_logits_loop(gen, en[0], de[0], 2))
    zero = gen(torch.zeros_like(en), torch.zeros_like(de), 2)
    # compress_en has a bias, so a zero input gives conv(b_en) + 2 * b_content at interior pixels
    inner = F.conv2d(gen.compress_en.bias.view(1, -1, 1, 1).expand(1, -1, 3, 3), gen.content_encoder.weight)
    torch.testing.assert_close(zero[0, :, 3, 2], inner[0, :, 0, 0] + 2 * gen.content_encoder.bias)


def test_gate_formula():
    """out = en * G + up * (1 - G) with G = sigmoid(nearest_up(conv1x1(de)))."""
    m = fade.FADE(4, scale=2, compressed_channels=4).double()
    torch.nn.init.normal_(m.gate.weight)
    torch.nn.init.constant_(m.gate.bias, 0.3)
    en, de = torch.randn(1, 4, 6, 4, dtype=torch.float64), torch.randn(1, 4, 3, 2, dtype=torch.float64)
    up = fade.ops.carafe(de, m.kernels(en, de))
    g_low = torch.sigmoid(torch.einsum("c,bchw->bhw", m.gate.weight[0, :, 0, 0], de) + 0.3)
    g = g_low.repeat_interleave(2, 1).repeat_interleave(2, 2).unsqueeze(1)
    torch.testing.assert_close(m(en, de), en * g + up * (1 - g))


def test_fade_gradcheck():
    m = fade.FADE(2, 3, scale=2, kernel_size=3, compressed_channels=2).double()
    en = torch.randn(1, 2, 5, 3, dtype=torch.float64, requires_grad=True)
    de = torch.randn(1, 3, 2, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (en, de))
    lite = fade.FADELite(2, 2, scale=3, kernel_size=3).double()
    en3 = torch.randn(2, 2, 6, 3, dtype=torch.float64, requires_grad=True)
    de3 = torch.randn(2, 2, 2, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lite, (en3, de3))


@pytest.mark.parametrize(
    "factory, count",
    [
        (lambda: fade.FADE(256), 47_514),
        (lambda: fade.FADELite(256), 13_332),
        (lambda: fade.create_upsampler("carafe", 256), 74_148),
    ],
)
def test_published_parameter_counts(factory, count):
    assert params(factory()) == count


def test_parameter_counts_in_the_papers_networks():
    # SegFormer-B1 head: 6 x FADE(256) = +0.29M; CARAFE 6 x 74,148 = 0.44M
    assert 6 * params(fade.FADE(256)) == 285_084
    # A2U matting decoder: one upsampler per stage at 256, 128, 64, 64 channels
    stages = (256, 128, 64, 64)
    assert sum(params(fade.FADE(c)) for c in stages) == 124_008
    assert sum(params(fade.FADELite(c)) for c in stages) == 27_216


def test_fade_layers_are_the_authors_when_channels_match():
    m = fade.FADE(256)
    names = {n for n, _ in m.named_parameters()}
    assert names == {
        "kernel_generator.compress_en.weight",
        "kernel_generator.compress_en.bias",
        "kernel_generator.compress_de.weight",
        "kernel_generator.content_encoder.weight",
        "kernel_generator.content_encoder.bias",
        "gate.weight",
        "gate.bias",
    }
    assert m.aligner is None
    assert params(fade.FADE(128, 64)) == params(fade.FADE(64)) - 64 * 64 + 128 * 64 + 128 * 64


def test_reference_initialisation():
    m = fade.FADE(32)
    for conv in (m.kernel_generator.compress_en, m.kernel_generator.content_encoder, m.gate):
        assert torch.count_nonzero(conv.bias) == 0
        fan_in = conv.weight[0].numel()
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        assert conv.weight.abs().max() <= math.sqrt(6.0 / (fan_in + fan_out))
    # the kernels are a probability distribution over the K*K taps at every pixel
    k = m.kernels(torch.randn(1, 32, 6, 4), torch.randn(1, 32, 3, 2))
    torch.testing.assert_close(k.sum(1), torch.ones(1, 6, 4))


@pytest.mark.parametrize("name", ["semi_shift", "semi_shift_skip", "encoder_kernels", "naive_kernels"])
def test_ablation_variants_share_fades_parts(name):
    torch.manual_seed(4)
    v = fade.create_upsampler(name, 3, scale=2, kernel_size=3, compressed_channels=4).double()
    en, de = torch.randn(2, 3, 6, 4, dtype=torch.float64), torch.randn(2, 3, 3, 2, dtype=torch.float64)
    up = fade.ops.carafe(de, v.kernels(en, de))
    expected = up + en if name == "semi_shift_skip" else up
    torch.testing.assert_close(v(en, de), expected)
    if name == "encoder_kernels":  # kernels must not depend on de at all
        torch.testing.assert_close(v.kernels(en, de), v.kernels(en, torch.randn_like(de)))


def test_naive_kernels_read_concatenation():
    torch.manual_seed(5)
    v = fade.create_upsampler("naive_kernels", 2, 3, kernel_size=3, compressed_channels=4).double()
    gen = v.kernel_generator
    en, de = torch.randn(1, 2, 5, 3, dtype=torch.float64), torch.randn(1, 3, 2, 1, dtype=torch.float64)
    rows, cols = torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 0, 0])
    cat = torch.cat([en, de[:, :, rows][:, :, :, cols]], 1)
    torch.testing.assert_close(gen(en, de, 2), gen.content_encoder(gen.compress(cat)))


def test_nn_gate_is_gated_nearest():
    v = fade.create_upsampler("nn_gate", 3).double()
    en, de = torch.randn(1, 3, 4, 6, dtype=torch.float64), torch.randn(1, 3, 2, 3, dtype=torch.float64)
    near = de.repeat_interleave(2, 2).repeat_interleave(2, 3)
    g = torch.sigmoid(F.interpolate(v.gate(de), scale_factor=2, mode="nearest"))
    torch.testing.assert_close(v(en, de), en * g + near * (1 - g))


def test_carafe_module_kernels_follow_pixel_shuffle_layout():
    v = fade.create_upsampler("carafe", 4, scale=2, kernel_size=3).double()
    gen = v.kernel_generator
    de = torch.randn(1, 4, 3, 2, dtype=torch.float64)
    low = gen.content_encoder(gen.compress(de))  # (1, (2*3)^2, 3, 2)
    logits = gen(torch.zeros(1, 4, 6, 4, dtype=torch.float64), de, 2)
    # channel t*4 + p*2 + q of the low-res map is tap t at sub-position (p, q)
    for t in range(9):
        for p in range(2):
            for q in range(2):
                torch.testing.assert_close(logits[0, t, p::2, q::2], low[0, t * 4 + p * 2 + q])
    odd = gen(torch.zeros(1, 4, 7, 5, dtype=torch.float64), de, 2)
    torch.testing.assert_close(odd[..., :6, :4], logits)
    torch.testing.assert_close(odd[..., 6, :4], logits[..., 5, :])  # extra row repeats the last


def test_channels_last_and_non_contiguous_inputs():
    m = fade.FADE(8, 4, scale=2)
    en, de = torch.randn(2, 8, 10, 6), torch.randn(2, 4, 5, 3)
    ref = m(en, de)
    torch.testing.assert_close(
        m(en.to(memory_format=torch.channels_last), de.to(memory_format=torch.channels_last)), ref
    )
    en_t, de_t = en.transpose(2, 3).contiguous().transpose(2, 3), de.transpose(2, 3).contiguous().transpose(2, 3)
    assert not en_t.is_contiguous()
    torch.testing.assert_close(m(en_t, de_t), ref)


def test_batch_elements_are_independent():
    m = fade.FADE(4, scale=3, kernel_size=3)
    en, de = torch.randn(3, 4, 7, 8), torch.randn(3, 4, 2, 3)
    full = m(en, de)
    for b in range(3):
        torch.testing.assert_close(full[b : b + 1], m(en[b : b + 1], de[b : b + 1]))


@pytest.mark.parametrize(
    "en_shape, de_shape, match",
    [
        ((1, 4, 8, 8), (4, 4, 4), "de: expected a 4-D tensor"),
        ((4, 8, 8), (1, 4, 4, 4), "en: expected a 4-D tensor"),
        ((2, 4, 8, 8), (1, 4, 4, 4), "batch mismatch: en has batch 2, de has batch 1"),
        ((1, 3, 8, 8), (1, 4, 4, 4), "en: expected 4 channels, got 3"),
        ((1, 4, 8, 8), (1, 5, 4, 4), "de: expected 4 channels, got 5"),
        ((1, 4, 10, 8), (1, 4, 4, 4), r"en spatial size vs de: .* got \(10, 8\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(en_shape, de_shape, match):
    m = fade.FADE(4)
    with pytest.raises(ValueError, match=match):
        m(torch.randn(en_shape), torch.randn(de_shape))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 4}, "kernel_size: expected a positive odd integer, got 4"),
        ({"encoder_kernel_size": 2}, "encoder_kernel_size: expected a positive odd integer, got 2"),
        ({"scale": 0}, "scale must be a positive integer, got 0"),
        ({"scale": 1.5}, "scale must be a positive integer, got 1.5"),
        ({"fusion": "add"}, "fusion: expected 'none', 'skip' or 'gate', got 'add'"),
    ],
)
def test_bad_construction_raises_clear_errors(kwargs, match):
    for cls in (fade.FADE, fade.FADELite):
        with pytest.raises(ValueError, match=match):
            cls(4, **kwargs)


@pytest.mark.parametrize("trainable", ["kernel_generator", "gate", "en", "de", "nothing"])
def test_gradients_reach_whatever_requires_them(trainable):
    """Only one part requires grad at a time (e.g. a frozen gate): gradients equal those of Eq. 4 as written."""
    torch.manual_seed(6)
    m = fade.FADE(4, scale=2, compressed_channels=4).double()
    en, de = torch.randn(1, 4, 6, 4, dtype=torch.float64), torch.randn(1, 4, 3, 2, dtype=torch.float64)
    for p in m.parameters():
        p.requires_grad_(False)
    wrt = {"kernel_generator": list(m.kernel_generator.parameters()), "gate": list(m.gate.parameters())}
    wrt |= {"en": [en], "de": [de], "nothing": []}
    for t in wrt[trainable]:
        t.requires_grad_(True)
    out = m(en, de)
    up = fade.ops.carafe(de, m.kernels(en, de))
    g = torch.sigmoid(F.interpolate(m.gate(de), scale_factor=2, mode="nearest"))
    expected = en * g + up * (1 - g)
    torch.testing.assert_close(out, expected)
    assert out.requires_grad == (trainable != "nothing")
    if wrt[trainable]:
        grad = torch.randn_like(out)
        ours = torch.autograd.grad(out, wrt[trainable], grad)
        for a, b in zip(ours, torch.autograd.grad(expected, wrt[trainable], grad)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("x_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_pointwise_equals_the_conv_with_its_gradients_in_the_inputs_layout(x_format, channels_last, bias):
    """The 1x1 conv as a matrix product: conv2d's values and gradients (float64); the input's gradient
    comes back in the input's layout, the result in the asked one."""
    from fade.upsamplers.kernels import pointwise

    conv = torch.nn.Conv2d(6, 5, 1, bias=bias).double()
    x = torch.randn(3, 6, 4, 7, dtype=torch.float64).contiguous(memory_format=x_format).requires_grad_()
    out = pointwise(conv, x, channels_last=channels_last)
    ref = F.conv2d(x, conv.weight, conv.bias)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)
    expected_format = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=expected_format)
    grad = torch.randn_like(ref)
    params = [x, *conv.parameters()]
    for got, want in zip(torch.autograd.grad(out, params, grad), torch.autograd.grad(ref, params, grad)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    (grad_x,) = torch.autograd.grad(pointwise(conv, x, channels_last), x, grad)
    assert grad_x.is_contiguous(memory_format=x_format)
    with torch.no_grad():
        torch.testing.assert_close(pointwise(conv, x, channels_last), ref, rtol=0, atol=1e-13)
    assert torch.autograd.gradcheck(lambda x: pointwise(conv, x, channels_last), (x,))
