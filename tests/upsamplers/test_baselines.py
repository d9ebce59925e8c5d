"""The baseline upsamplers against independent float64 references and published parameter counts.

References are explicit loops over pixels written from the papers' definitions (or torch's own
functions where the operator IS a library function); the operators under test are vectorised.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import fade
from fade.upsamplers.a2u import A2UKernels, a2d
from fade.upsamplers.dysample import DySample
from fade.upsamplers.indexnet import (
    IndexBlock,
    index_maps,
    indexed_pool,
    indexed_upsample,
)
from fade.upsamplers.interpolation import bilinear_upsample
from fade.upsamplers.sapa import SAPA, sapa_attention

D = torch.float64

# (scale, low-resolution size, high-resolution size): floor-mode, ceil-mode and exact, non-square.
SIZES = [
    (2, (7, 5), (15, 11)),
    (2, (7, 5), (13, 9)),
    (2, (4, 3), (8, 6)),
    (3, (5, 4), (17, 13)),
    (3, (5, 4), (13, 11)),
]


def src(i, n, s):
    """The shared mapping: high-resolution index i reads low-resolution index min(i // s, n - 1)."""
    return min(i // s, n - 1)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------
# nearest, bilinear, deconv, pixel shuffle
# ------------------------------------------------------------------------------------------------


def nearest_loop(de, size, s):
    h, w = de.shape[-2:]
    out = de.new_empty(*de.shape[:2], *size)
    for y in range(size[0]):
        for x in range(size[1]):
            out[:, :, y, x] = de[:, :, src(y, h, s), src(x, w, s)]
    return out


def bilinear_taps(i, n, s):
    """Half-pixel-centre bilinear: source (i + 0.5) / s - 0.5, clamped at the borders."""
    u = max((i + 0.5) / s - 0.5, 0.0)
    i0 = math.floor(u)
    lam = u - i0
    return min(i0, n - 1), min(i0 + 1, n - 1), lam


def bilinear_loop(de, size, s):
    h, w = de.shape[-2:]
    out = de.new_empty(*de.shape[:2], *size)
    for y in range(size[0]):
        y0, y1, ly = bilinear_taps(y, h, s)
        for x in range(size[1]):
            x0, x1, lx = bilinear_taps(x, w, s)
            out[:, :, y, x] = (
                (1 - ly) * (1 - lx) * de[:, :, y0, x0]
                + (1 - ly) * lx * de[:, :, y0, x1]
                + ly * (1 - lx) * de[:, :, y1, x0]
                + ly * lx * de[:, :, y1, x1]
            )
    return out


@pytest.mark.parametrize("s, low, high", SIZES)
def test_nearest_matches_loop(s, low, high):
    en, de = torch.randn(2, 3, *high, dtype=D), torch.randn(2, 4, *low, dtype=D)
    out = fade.create_upsampler("nearest", 3, 4, scale=s)(en, de)
    torch.testing.assert_close(out, nearest_loop(de, high, s), rtol=0, atol=0)


@pytest.mark.parametrize("s, low, high", SIZES)
def test_bilinear_matches_half_pixel_formula(s, low, high):
    en, de = torch.randn(2, 3, *high, dtype=D), torch.randn(2, 4, *low, dtype=D)
    out = fade.create_upsampler("bilinear", 3, 4, scale=s)(en, de)
    torch.testing.assert_close(out, bilinear_loop(de, high, s))


def test_bilinear_equals_interpolate_for_exact_multiples():
    de = torch.randn(2, 4, 6, 5, dtype=D)
    for s in (2, 3, 4):
        size = (s * 6, s * 5)
        expected = F.interpolate(de, size=size, mode="bilinear", align_corners=False)
        torch.testing.assert_close(bilinear_upsample(de, size, s), expected)


# transposed-conv geometry: 4x4, stride 2, padding 1 at s = 2 (IndexNet/A2U papers' baseline)
DECONV_GEOMETRY = {2: (4, 1), 3: (5, 1), 4: (8, 2)}


def deconv_loop(de, weight, bias, s, pad, size):
    """Transposed conv as a scatter: de[y, x] * W[:, :, ky, kx] lands on (s*y - pad + ky, s*x - pad + kx)."""
    b, _, h, w = de.shape
    k = weight.shape[-1]
    full = torch.zeros(b, weight.shape[1], s * h, s * w, dtype=D) + bias.view(1, -1, 1, 1)
    for y in range(h):
        for x in range(w):
            for ky in range(k):
                for kx in range(k):
                    yy, xx = s * y - pad + ky, s * x - pad + kx
                    if 0 <= yy < s * h and 0 <= xx < s * w:
                        full[:, :, yy, xx] += de[:, :, y, x] @ weight[:, :, ky, kx]
    rows = [min(i, s * h - 1) for i in range(size[0])]
    cols = [min(i, s * w - 1) for i in range(size[1])]
    return full[:, :, rows][:, :, :, cols]


@pytest.mark.parametrize("s, low, high", [SIZES[0], SIZES[1], SIZES[3]])
def test_deconv_matches_scatter_loop(s, low, high):
    up = fade.create_upsampler("deconv", 3, 4, scale=s).double()
    k, pad = DECONV_GEOMETRY[s]
    assert up.deconv.kernel_size == (k, k) and up.deconv.stride == (s, s) and up.deconv.padding == (pad, pad)
    en, de = torch.randn(2, 3, *high, dtype=D), torch.randn(2, 4, *low, dtype=D)
    expected = deconv_loop(de, up.deconv.weight.detach(), up.deconv.bias.detach(), s, pad, high)
    torch.testing.assert_close(up(en, de), expected)


@pytest.mark.parametrize("s, low, high", [SIZES[0], SIZES[1], SIZES[3]])
def test_pixelshuffle_matches_loop(s, low, high):
    up = fade.create_upsampler("pixelshuffle", 3, 4, scale=s).double()
    en, de = torch.randn(2, 3, *high, dtype=D), torch.randn(2, 4, *low, dtype=D)
    z = F.conv2d(de, up.conv.weight, up.conv.bias, padding=1)
    h, w = low
    expected = torch.empty(2, 4, *high, dtype=D)
    for y in range(high[0]):
        ys = min(y, s * h - 1)
        for x in range(high[1]):
            xs = min(x, s * w - 1)
            channels = [c * s * s + (ys % s) * s + xs % s for c in range(4)]
            expected[:, :, y, x] = z[:, channels, ys // s, xs // s]
    torch.testing.assert_close(up(en, de), expected)


# ------------------------------------------------------------------------------------------------
# max-unpooling
# ------------------------------------------------------------------------------------------------


def unpool_loop(en, de, s):
    """Each de value goes to the first maximum (row-major) of en's s x s window (partial at edges)."""
    b, c, hh, ww = en.shape
    h, w = de.shape[-2:]
    out = torch.zeros(b, c, hh, ww, dtype=D)
    for i in range(b):
        for j in range(c):
            for y in range(h):
                for x in range(w):
                    best = None
                    for yy in range(s * y, min(s * y + s, hh)):
                        for xx in range(s * x, min(s * x + s, ww)):
                            if best is None or en[i, j, yy, xx] > en[i, j, best[0], best[1]]:
                                best = (yy, xx)
                    out[i, j, best[0], best[1]] = de[i, j, y, x]
    return out


@pytest.mark.parametrize("s, low, high", SIZES)
def test_unpool_alone_matches_argmax_loop(s, low, high):
    en, de = torch.randn(2, 3, *high, dtype=D), torch.randn(2, 3, *low, dtype=D)
    out = fade.create_upsampler("unpool", 3, scale=s)(en, de)
    torch.testing.assert_close(out, unpool_loop(en, de, s), rtol=0, atol=0)


@pytest.mark.parametrize("s, high", [(2, (15, 11)), (2, (8, 6)), (3, (17, 13))])
def test_unpool_pair_matches_torch_max_pool_and_unpool(s, high):
    down, up = fade.create_pair("unpool", 3, scale=s)
    x = torch.randn(2, 3, *high, dtype=D)
    y, indices = down(x)
    y_ref, idx_ref = F.max_pool2d(x, s, s, return_indices=True)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    assert torch.equal(indices, idx_ref)
    de = torch.randn_like(y)
    torch.testing.assert_close(up(x, de, indices), F.max_unpool2d(de, idx_ref, s, s, output_size=high))


# ------------------------------------------------------------------------------------------------
# IndexNet
# ------------------------------------------------------------------------------------------------


def test_index_maps_place_each_window_position_and_normalise_per_window():
    s, g, h, w = 2, 3, 3, 4
    z = torch.randn(2, g, s * s, h, w, dtype=D)
    idx_en, idx_de = index_maps(z)
    assert idx_en.shape == idx_de.shape == (2, g, s * h, s * w)
    for y in range(h):
        for x in range(w):
            sig = torch.sigmoid(z[:, :, :, y, x])
            soft = torch.exp(sig) / torch.exp(sig).sum(dim=2, keepdim=True)
            for i in range(s):
                for j in range(s):
                    torch.testing.assert_close(idx_de[:, :, s * y + i, s * x + j], sig[:, :, i * s + j])
                    torch.testing.assert_close(idx_en[:, :, s * y + i, s * x + j], soft[:, :, i * s + j])


@pytest.mark.parametrize("maps", [1, 3])
def test_indexed_pool_and_upsample_match_loops(maps):
    s, (h, w), (hh, ww) = 2, (3, 4), (7, 9)
    x = torch.randn(2, 3, hh, ww, dtype=D)
    idx = torch.rand(2, maps, s * h, s * w, dtype=D)
    pooled = indexed_pool(x, idx, s)
    de = torch.randn(2, 3, h, w, dtype=D)
    up = indexed_upsample(de, idx, (hh, ww), s)
    for c in range(3):
        g = c if maps > 1 else 0
        for y in range(h):
            for xq in range(w):
                acc = sum(x[:, c, s * y + i, s * xq + j] * idx[:, g, s * y + i, s * xq + j] for i in range(s) for j in range(s))
                torch.testing.assert_close(pooled[:, c, y, xq], acc)
        for yy in range(hh):
            for xx in range(ww):
                expected = de[:, c, src(yy, h, s), src(xx, w, s)] * idx[:, g, min(yy, s * h - 1), min(xx, s * w - 1)]
                torch.testing.assert_close(up[:, c, yy, xx], expected)


def randomise_batch_norm(module):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def test_m2o_depthwise_block_is_s2_independent_sub_blocks():
    """Paper/authors: s*s sub-blocks, each conv(4x4/2, pad 1) C->C, BN, ReLU6, conv1x1 C->C."""
    c, s = 3, 2
    block = IndexBlock(c, s, "depthwise", nonlinear=True, context=True).double().eval()
    randomise_batch_norm(block)
    conv1, bn, _, conv2 = block.layers
    assert conv1.kernel_size == (4, 4) and conv1.stride == (2, 2)
    x = torch.randn(2, c, 8, 6, dtype=D)
    logits = block(x, (4, 3))
    assert logits.shape == (2, c, s * s, 4, 3)
    for k in range(s * s):
        sl = slice(k * c, (k + 1) * c)
        hidden = F.conv2d(x, conv1.weight[sl], stride=2, padding=1)
        hidden = F.batch_norm(hidden, bn.running_mean[sl], bn.running_var[sl], bn.weight[sl], bn.bias[sl], eps=bn.eps)
        expected = F.conv2d(F.relu6(hidden), conv2.weight[sl])
        torch.testing.assert_close(logits[:, :, k], expected)


def test_holistic_block_predicts_one_map_with_2c_hidden():
    c, s = 3, 2
    block = IndexBlock(c, s, "holistic", nonlinear=True, context=True, expansion=2).double().eval()
    randomise_batch_norm(block)
    conv1, bn, _, conv2 = block.layers
    assert conv1.out_channels == 2 * c and conv2.out_channels == s * s
    x = torch.randn(2, c, 8, 6, dtype=D)
    hidden = F.batch_norm(F.conv2d(x, conv1.weight, stride=2, padding=1), bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)
    expected = F.conv2d(F.relu6(hidden), conv2.weight)
    torch.testing.assert_close(block(x, (4, 3))[:, 0], expected)


def test_indexnet_parameter_counts():
    """M2O DIN, nonlinear + context: s^2 x (16C^2 + 2C + C^2) = 68C^2 + 8C per stage."""
    assert n_params(fade.create_upsampler("indexnet", 256)) == 68 * 256**2 + 8 * 256 == 4_458_496
    r34 = (256, 128, 64, 64)  # A2U-R34 matting decoder stages
    default = sum(n_params(fade.create_upsampler("indexnet", c)) for c in r34)
    assert default == 6_131_712
    # the published +12.26M (A2U, SAPA, FADE tables) is exactly this network with 2C hidden width
    doubled = sum(n_params(fade.create_upsampler("indexnet", c, expansion=2)) for c in r34)
    assert doubled == 2 * default and round(doubled / 1e6, 2) == 12.26
    # SAPA's SegFormer-B1 table (+12.60M): six holistic blocks at C = 256
    hin = n_params(fade.create_upsampler("indexnet_holistic", 256))
    assert hin == 32 * 256**2 + 12 * 256 and round(6 * hin / 1e6, 2) == 12.60


# ------------------------------------------------------------------------------------------------
# A2U
# ------------------------------------------------------------------------------------------------


def a2d_loop(x, kernels, s):
    b, c, hh, ww = x.shape
    k = math.isqrt(kernels.shape[1])
    m = (k - s) // 2
    h, w = kernels.shape[-2:]
    out = torch.zeros(b, c, h, w, dtype=D)
    for p in range(h):
        for q in range(w):
            for i in range(k):
                for j in range(k):
                    yy, xx = s * p + i - m, s * q + j - m
                    if 0 <= yy < hh and 0 <= xx < ww:
                        out[:, :, p, q] += x[:, :, yy, xx] * kernels[:, i * k + j, p, q].unsqueeze(1)
    return out


@pytest.mark.parametrize("s, k, low, high", [(2, 6, (7, 5), (15, 11)), (2, 6, (7, 5), (13, 9)), (3, 5, (5, 4), (16, 13))])
def test_a2d_matches_loop(s, k, low, high):
    x = torch.randn(2, 3, *high, dtype=D)
    kernels = torch.rand(2, k * k, *low, dtype=D)
    torch.testing.assert_close(a2d(x, kernels, s), a2d_loop(x, kernels, s))


def a2u_kernels_loop(gen, x, low):
    """A2U's kernels from the paper's definition, with loops over windows (float64)."""
    b, c, hh, ww = x.shape
    s, d, ke, kk = gen.scale, gen.rank, gen.encoder_kernel_size, gen.kernel_size
    m = (ke - s) // 2
    h, w = low

    def filtered(filter_conv, norm):
        pooled = F.adaptive_avg_pool2d(x, ke)
        u = torch.einsum("rc,bcij->brij", filter_conv.weight[:, :, 0, 0], pooled) + filter_conv.bias.view(1, d, 1, 1)
        f = torch.zeros(b, d, c, h, w, dtype=D)
        for p in range(h):
            for q in range(w):
                for i in range(ke):
                    for j in range(ke):
                        yy, xx = s * p + i - m, s * q + j - m
                        if 0 <= yy < hh and 0 <= xx < ww:
                            f[:, :, :, p, q] += u[:, :, i, j].unsqueeze(2) * x[:, :, yy, xx].unsqueeze(1)
        f = F.group_norm(f.reshape(b * d, c, h, w), norm.num_groups, norm.weight, norm.bias, norm.eps)
        return F.leaky_relu(f).view(b, d, c, h, w)

    a = (filtered(gen.filter_u, gen.norm_u) * filtered(gen.filter_v, gen.norm_v)).sum(dim=2) / math.sqrt(c)
    mean = x.mean(dim=(2, 3))

    def mix(conv):
        p = (mean @ conv.weight[:, :, 0, 0].T + conv.bias).view(b, -1, d)
        return torch.einsum("bor,brpq->bopq", p, a)

    up_logits, down_logits = mix(gen.up_weights), mix(gen.down_weights)
    up = torch.zeros(b, kk * kk, s * h, s * w, dtype=D)
    for p in range(h):
        for q in range(w):
            for i in range(s):
                for j in range(s):
                    taps = [t * s * s + i * s + j for t in range(kk * kk)]
                    up[:, :, s * p + i, s * q + j] = torch.sigmoid(up_logits[:, taps, p, q]).softmax(dim=1)
    return up, down_logits.softmax(dim=1)


@pytest.mark.parametrize("s, low, high, rank", [(2, (4, 3), (9, 7), 2), (2, (4, 3), (7, 6), 1), (3, (3, 2), (10, 6), 1)])
def test_a2u_kernels_match_definition(s, low, high, rank):
    gen = A2UKernels(4, s, rank=rank).double()
    for p in gen.parameters():
        p.data.normal_(0, 0.5)
    x = torch.randn(2, 4, *high, dtype=D)
    a = gen.affinity(x, low)
    up_ref, down_ref = a2u_kernels_loop(gen, x, low)
    torch.testing.assert_close(gen.up_kernels(x, a), up_ref)
    torch.testing.assert_close(gen.down_kernels(x, a), down_ref)


def test_a2u_defaults_and_parameter_counts():
    """Authors' matting config at s = 2: K = 3, k_e = k_d = 6, rank 1, GroupNorm(32)."""
    down, up = fade.create_pair("a2u", 256)
    gen = down.kernels
    assert (gen.kernel_size, gen.encoder_kernel_size, gen.down_kernel_size, gen.rank) == (3, 6, 6, 1)
    assert gen.norm_u.num_groups == 32
    # pair: 2 GN (4C) + 2 dynamic 1x1 (C->36, +bias) + U, V (C->1, +bias) = 78C + 74;
    # alone: no downsampling weights, 42C + 38
    for c in (64, 128, 256):
        down, up = fade.create_pair("a2u", c)
        assert n_params(down) + n_params(up) == 78 * c + 74
        assert n_params(fade.create_upsampler("a2u", c)) == 42 * c + 38
    r34 = (64, 64, 128, 256)
    down_ups = [fade.create_pair("a2u", c) for c in r34]
    assert sum(n_params(d) + n_params(u) for d, u in down_ups) == 40_232
    # published upsampling-only counts (SAPA tables): A2U-R34 +0.02M, SegFormer-B1 (6 x 256) +0.06M
    assert round(sum(n_params(fade.create_upsampler("a2u", c)) for c in r34) / 1e6, 2) == 0.02
    assert round(6 * n_params(fade.create_upsampler("a2u", 256)) / 1e6, 2) == 0.06


# ------------------------------------------------------------------------------------------------
# SAPA
# ------------------------------------------------------------------------------------------------


def sapa_loop(q, k, v, kernel_size, s):
    b, _, hh, ww = q.shape
    h, w = k.shape[-2:]
    r = kernel_size // 2
    out = torch.zeros(b, v.shape[1], hh, ww, dtype=D)
    for i in range(b):
        for y in range(hh):
            for x in range(ww):
                sy, sx = src(y, h, s), src(x, w, s)
                sims, vals = [], []
                for a in range(kernel_size):
                    for c in range(kernel_size):
                        yy, xx = sy + a - r, sx + c - r
                        inside = 0 <= yy < h and 0 <= xx < w
                        sims.append(float(q[i, :, y, x] @ k[i, :, yy, xx]) if inside else 0.0)
                        vals.append(v[i, :, yy, xx] if inside else torch.zeros(v.shape[1], dtype=D))
                weights = torch.softmax(torch.tensor(sims, dtype=D), dim=0)
                out[i, :, y, x] = sum(wt * val for wt, val in zip(weights, vals))
    return out


@pytest.mark.parametrize("s, low, high", [SIZES[0], SIZES[1], SIZES[3], (2, (7, 5), (15, 9)), (3, (4, 5), (11, 17))])
def test_sapa_attention_matches_loop(s, low, high):
    q, k = torch.randn(2, 5, *high, dtype=D), torch.randn(2, 5, *low, dtype=D)
    v = torch.randn(2, 3, *low, dtype=D)
    torch.testing.assert_close(sapa_attention(q, k, v, 5, s), sapa_loop(q, k, v, 5, s))


def test_sapa_module_queries_encoder_and_keys_decoder():
    up = SAPA(6, 4, 2).double()
    for p in up.parameters():
        p.data.normal_(0, 0.5)
    en, de = torch.randn(2, 6, 9, 7, dtype=D), torch.randn(2, 4, 4, 3, dtype=D)

    def embed(x, norm, lin):
        z = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), norm.weight, norm.bias, norm.eps)
        return F.linear(z, lin.weight, lin.bias).permute(0, 3, 1, 2)

    with torch.no_grad():
        q, k = embed(en, up.norm_en, up.query), embed(de, up.norm_de, up.key)
        torch.testing.assert_close(up(en, de), sapa_loop(q, k, de, 5, 2))


def test_sapa_parameter_counts_match_published():
    one = n_params(fade.create_upsampler("sapa", 256))
    assert one == 2 * 2 * 256 + 2 * (256 * 32 + 32) == 17_472
    assert round(6 * one / 1e6, 2) == 0.10  # SegFormer-B1, six upsamplers: +0.1M
    r34 = sum(n_params(fade.create_upsampler("sapa", c)) for c in (256, 128, 64, 64))
    assert round(r34 / 1e6, 2) == 0.04  # A2U-R34 matting: +0.04M


# ------------------------------------------------------------------------------------------------
# DySample
# ------------------------------------------------------------------------------------------------


def sample_loop(img, px, py):
    """Bilinear sample of img (C, h, w) at (px, py), pixel centres at integers, border clamping."""
    h, w = img.shape[-2:]
    px, py = min(max(px, 0.0), w - 1.0), min(max(py, 0.0), h - 1.0)
    x0, y0 = math.floor(px), math.floor(py)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    lx, ly = px - x0, py - y0
    return (
        (1 - ly) * (1 - lx) * img[:, y0, x0]
        + (1 - ly) * lx * img[:, y0, x1]
        + ly * (1 - lx) * img[:, y1, x0]
        + ly * lx * img[:, y1, x1]
    )


def dysample_loop(up, de, size):
    b, c, h, w = de.shape
    s, g = up.scale, up.groups
    weight, bias = up.offset.weight.detach()[:, :, 0, 0], up.offset.bias.detach()
    off = 0.25 * (torch.einsum("oc,bchw->bohw", weight, de) + bias.view(1, -1, 1, 1))
    out = torch.zeros(b, c, *size, dtype=D)
    per = c // g
    for n in range(b):
        for gg in range(g):
            for yy in range(size[0]):
                ys = min(yy, s * h - 1)
                for xx in range(size[1]):
                    xs = min(xx, s * w - 1)
                    i, j, y, x = ys % s, xs % s, ys // s, xs // s
                    dx = off[n, ((0 * g + gg) * s + i) * s + j, y, x]
                    dy = off[n, ((1 * g + gg) * s + i) * s + j, y, x]
                    px = x + (j + 0.5) / s - 0.5 + float(dx)
                    py = y + (i + 0.5) / s - 0.5 + float(dy)
                    out[n, gg * per : (gg + 1) * per, yy, xx] = sample_loop(de[n, gg * per : (gg + 1) * per], px, py)
    return out


@pytest.mark.parametrize("s, low, high", [SIZES[0], SIZES[1], SIZES[3]])
def test_dysample_matches_bilinear_sampling_loop(s, low, high):
    up = DySample(3, 8, s).double()
    up.offset.weight.data.normal_(0, 1.0)  # offsets of a pixel or more: crosses cells and borders
    up.offset.bias.data.normal_(0, 1.0)
    en, de = torch.randn(2, 3, *high, dtype=D), torch.randn(2, 8, *low, dtype=D)
    torch.testing.assert_close(up(en, de), dysample_loop(up, de, high))


@pytest.mark.parametrize("s, low, high", SIZES)
def test_dysample_with_zero_offsets_is_bilinear(s, low, high):
    up = DySample(3, 8, s).double()
    torch.nn.init.zeros_(up.offset.weight)
    en, de = torch.randn(2, 3, *high, dtype=D), torch.randn(2, 8, *low, dtype=D)
    torch.testing.assert_close(up(en, de), bilinear_loop(de, high, s))


# ------------------------------------------------------------------------------------------------
# parameter counts of the others
# ------------------------------------------------------------------------------------------------


def test_published_and_derived_parameter_counts():
    assert n_params(fade.create_upsampler("carafe", 256)) == 74_148  # CARAFEPack, facts file
    assert n_params(fade.create_upsampler("dysample", 256)) == 256 * 32 + 32 == 8_224  # DySample 'lp', G=4
    assert n_params(fade.create_upsampler("deconv", 256)) == 256 * 256 * 16 + 256
    assert n_params(fade.create_upsampler("pixelshuffle", 256)) == 256 * 1024 * 9 + 1024
    for name in ("nearest", "bilinear", "unpool"):
        assert n_params(fade.create_upsampler(name, 256)) == 0


def test_operator_specific_option_errors():
    with pytest.raises(ValueError, match="groups: expected a positive integer dividing de_channels=6"):
        fade.create_upsampler("dysample", 6)
    with pytest.raises(ValueError, match="kind: expected 'depthwise' or 'holistic', got 'both'"):
        IndexBlock(4, 2, "both")
    with pytest.raises(ValueError, match="encoder_kernel_size: expected an integer >= scale"):
        fade.create_upsampler("a2u", 4, encoder_kernel_size=5)
    with pytest.raises(ValueError, match="kernel_size: expected a positive odd integer, got 4"):
        fade.create_upsampler("sapa", 4, kernel_size=4)
    with pytest.raises(ValueError, match="kernel_size: expected a positive odd integer, got 2"):
        fade.create_upsampler("pixelshuffle", 4, kernel_size=2)
