"""Every ``fade::`` custom operator passes ``torch.library.opcheck``: its schema, its autograd
registration, its fake (meta) implementation against the real one, and AOT dispatch with dynamic
shapes, on the native kernel and on the pure-PyTorch fallback."""

import pytest
import torch
from torch.library import opcheck


def _operators():
    gen = torch.Generator().manual_seed(0)
    f64 = {"dtype": torch.float64}

    def randn(*shape, grad=False):
        return torch.randn(*shape, generator=gen, **f64).requires_grad_(grad)

    x, end, grad = randn(2, 3, 5, 6, grad=True), randn(2, 3, 10, 12, grad=True), randn(2, 3, 10, 12)
    kernels = randn(2, 25, 10, 12).softmax(1).requires_grad_()
    weight = torch.rand(2, 1, 10, 12, generator=gen, **f64).requires_grad_()
    w, b = randn(4, 3, grad=True), randn(4, grad=True)
    cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    high = randn(2, 25, 10, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    low = randn(2, 25, 5, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad_k = randn(2, 25, 10, 12)
    conv_w = randn(4, 3, 3, 5, grad=True)
    ops = torch.ops.fade
    return {
        "carafe": (ops.carafe.default, (x, kernels, 2)),
        "carafe_lerp": (ops.carafe_lerp.default, (x, kernels, end, weight, 2)),
        "carafe_backward": (ops.carafe_backward.default, (grad, x.detach(), kernels.detach(), 2)),
        "blend_grads": (ops.blend_grads.default, (grad, end.detach(), weight.detach())),
        "pointwise_conv": (ops.pointwise_conv.default, (x, w, b, False)),
        "pointwise_conv_channels_last": (ops.pointwise_conv.default, (cl, w, None, True)),
        "semi_shift_softmax": (ops.semi_shift_softmax.default, (high, low, 2)),
        "semi_shift_softmax_contiguous": (ops.semi_shift_softmax.default, (high.detach().contiguous(), low, 2)),
        "semi_shift_softmax_backward": (ops.semi_shift_softmax_backward.default, (grad_k, kernels.detach(), 5, 6, 2)),
        "same_conv2d": (ops.same_conv2d.default, (x, conv_w, b)),
        "same_conv2d_channels_last": (ops.same_conv2d.default, (cl, conv_w, None)),
        "same_conv2d_weight_grad": (ops.same_conv2d_weight_grad.default, (x, randn(2, 4, 5, 6, grad=True), 3, 5)),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_opcheck(path, name):
    op, args = _operators()[name]
    assert all(result == "SUCCESS" for result in opcheck(op, args).values())
