"""Measurement primitives: flop counting (torch's counter + fade's formulas), timing, gradients."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fade.bench.cases import Case, build_case
from fade.bench.flops import custom_flop_formulas
from fade.bench.measure import (
    BudgetExceeded,
    NotDifferentiable,
    count_flops,
    forward_backward_call,
    time_call,
    time_interleaved,
)

CPU = torch.device("cpu")


def test_fade_multiply_adds_match_a_count_by_hand():
    c, h, w, s, k2, d = 8, 4, 5, 2, 25, 64
    macs, products, uncounted = count_flops(build_case("fade", 1, c, h, w, s))
    hi, lo = s * h * s * w, h * w
    by_hand = c * d * hi + c * d * lo + d * k2 * 9 * (hi + lo) + c * lo + k2 * c * hi
    assert macs == by_hand
    # the gate's en * G and up * (1 - G); and the index arithmetic of the gate's nearest upsampling,
    # which torch's counter decomposes into one product per output row and column (the kernel
    # logits' upsampling is inside fade::semi_shift_softmax, with their sum and softmax)
    assert products == 2 * c * hi + (s * h + s * w)
    assert "fade.semi_shift_softmax" in uncounted and "sigmoid" in uncounted
    assert not any("conv" in op or op in ("carafe", "mul") for op in uncounted)


def test_products_count_every_element_wise_multiplication_once():
    class Products(nn.Module):
        def forward(self, x, y):
            return (x * y) * 3.0 + x.mul(2)

    x, y = torch.randn(2, 3, 4), torch.randn(1, 3, 4)
    flops = count_flops(Case("products", Products(), (x, y), ()))
    assert flops == (0, 3 * x.numel(), ["add"])


def test_a_call_that_counts_nothing_counts_zero():
    assert count_flops(build_case("bilinear", 1, 3, 4, 5)) == (0, 0, ["upsample_bilinear2d"])


def test_authors_formulation_counts_the_same_multiply_adds_as_fade():
    ours = count_flops(build_case("fade", 2, 16, 6, 6))
    theirs = count_flops(build_case("fade_authors", 2, 16, 6, 6))
    assert ours.macs == theirs.macs
    assert "im2col" in theirs.uncounted


def test_carafe_formulas_count_forward_and_backward():
    case = build_case("op:carafe", 2, 3, 4, 5)
    numel_out = 2 * 3 * 8 * 10
    x, kernels = (t.requires_grad_() for t in case.inputs)
    with FlopCounterMode(display=False, custom_mapping=custom_flop_formulas()) as counter:
        out = case.module(x, kernels)
        out.backward(torch.ones_like(out))
    assert counter.get_total_flops() == 2 * numel_out * 25 + 4 * numel_out * 25


def test_time_call_enforces_the_budget_and_the_repeat_bounds():
    with pytest.raises(BudgetExceeded, match="two calls took"):
        time_call(lambda: time.sleep(0.02), CPU, max_call_s=0.001)
    durations = iter([0.05] + [0.0] * 20)  # one slow first call is forgiven
    timing = time_call(
        lambda: time.sleep(next(durations)), CPU, warmup=1, min_repeats=2, max_repeats=2, max_call_s=0.04
    )
    assert timing.repeats == 2
    calls = []
    timing = time_call(lambda: calls.append(1), CPU, warmup=2, min_repeats=4, max_repeats=6, target_s=0.0)
    assert timing.repeats == 4 and len(calls) == 2 + 4 and 0 <= timing.min_ms <= timing.median_ms
    timing = time_call(lambda: None, CPU, warmup=1, min_repeats=1, max_repeats=6, target_s=10.0)
    assert timing.repeats == 6


def test_time_interleaved_times_each_call_the_same_number_of_times():
    counts = {"a": 0, "b": 0}

    def make(key):
        def call():
            counts[key] += 1

        return call

    timings = time_interleaved({"a": make("a"), "b": make("b")}, CPU, warmup=1, repeats=3)
    assert set(timings) == {"a", "b"} and counts == {"a": 4, "b": 4}
    assert all(t.repeats == 3 for t in timings.values())


def test_timings_keep_each_round_in_order():
    """One sample per round, in the order of the rounds: the 2nd round of "slow" sleeps longest."""
    naps = iter([0.0, 0.001, 0.03, 0.001])  # warm-up, then the 3 timed rounds

    timings = time_interleaved({"slow": lambda: time.sleep(next(naps)), "fast": lambda: None}, CPU, 1, 3)
    slow = timings["slow"]
    assert len(slow.samples_ms) == 3 and slow.samples_ms[1] >= 30 > max(slow.samples_ms[0], slow.samples_ms[2])
    assert slow.median_ms == sorted(slow.samples_ms)[1] and slow.min_ms == min(slow.samples_ms)
    assert len(timings["fast"].samples_ms) == 3


def test_forward_backward_returns_fresh_gradients_every_call():
    case = build_case("fade", 1, 4, 3, 3)
    call = forward_backward_call(case)
    first, second = call(), call()
    n_params = len(list(case.module.parameters()))
    assert len(first) == 2 + n_params
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert all(p.grad is None for p in case.module.parameters())


class _Detached(nn.Module):
    def forward(self, x):
        return x.detach() * 2


def test_forward_backward_reports_a_non_differentiable_output():
    call = forward_backward_call(Case("detached", _Detached(), (torch.randn(1, 2, 3, 3),), (1, 2, 3, 3)))
    with pytest.raises(NotDifferentiable):
        call()


def test_cpu_attention_is_counted_like_torchs_attention_formula():
    b, h, lq, s, e, ev = 2, 3, 10, 7, 8, 5
    q, k, v = torch.randn(b, h, lq, e), torch.randn(b, h, s, e), torch.randn(b, h, s, ev)
    with FlopCounterMode(display=False, custom_mapping=custom_flop_formulas()) as counter:
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert counter.get_total_flops() == 2 * b * h * lq * s * e + 2 * b * h * lq * s * ev


@pytest.mark.parametrize(
    ("groups", "transposed"), [(1, False), (4, False), (8, False), (1, True), (2, True)]
)
def test_convolution_backward_counts_each_gradient_at_the_forwards_cost(groups, transposed):
    """Input and weight gradients of a (grouped, transposed) conv: each the forward's multiply-adds,
    counted by hand; torch's own formula agrees without groups."""
    conv_type = nn.ConvTranspose2d if transposed else nn.Conv2d
    conv = conv_type(8, 16, 3, padding=1, groups=groups, bias=False)
    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    out = conv(x)
    out_elements = out.numel() if not transposed else x.numel()  # the elements each doing C/g * 9 products
    per_element = (16 if transposed else 8) // groups * 9
    macs = out_elements * per_element
    with FlopCounterMode(display=False, custom_mapping=custom_flop_formulas()) as counter:
        torch.autograd.backward(conv(x), torch.randn_like(out))
    counts = counter.get_flop_counts()["Global"]
    assert counts[torch.ops.aten.convolution_backward] == 2 * 2 * macs
    assert counts[torch.ops.aten.convolution] == 2 * macs
    if groups == 1:
        with FlopCounterMode(display=False) as torchs:
            torch.autograd.backward(conv(x), torch.randn_like(out))
        assert torchs.get_flop_counts()["Global"][torch.ops.aten.convolution_backward] == 2 * 2 * macs


def test_same_conv2d_formulas_equal_torchs_count_of_the_same_conv():
    """fade::same_conv2d and its weight gradient count what torch counts for F.conv2d and its backward."""
    from fade.ops import same_conv2d

    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    weight = torch.randn(6, 8, 3, 5, requires_grad=True)
    totals = []
    for conv, mapping in ((same_conv2d, custom_flop_formulas()), (lambda a, w: F.conv2d(a, w, padding=(1, 2)), {})):
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            out = conv(x, weight)
            out.backward(torch.ones_like(out))
        totals.append(counter.get_total_flops())
    assert totals[0] == totals[1] == 3 * 2 * out.numel() * 8 * 15


@pytest.mark.parametrize("name", ["op:bilinear", "op:carafe", "fade"])
def test_build_case_upsamples_to_a_given_output_size(name):
    """out_size: the floor-mode sizes of a stride-2 encoder (2H+1), for operators and upsamplers alike."""
    case = build_case(name, 1, 3, 4, 5, out_size=(9, 11))
    assert case.output_shape == (1, 3, 9, 11)
    assert case.module(*case.inputs).shape == (1, 3, 9, 11)
    if name == "op:bilinear":
        (de,) = case.inputs
        expected = torch.nn.functional.interpolate(de, size=(9, 11), mode="bilinear")
        torch.testing.assert_close(case.module(de), expected, rtol=0, atol=0)
