"""Every model x every registered upsampler: output sizes on awkward inputs, gradients everywhere."""

import pytest
import torch

import fade
from fade.models import create_model

# tiny configurations; sides that are not multiples of any model's total stride, non-square
MODELS = {
    "segformer_tiny": ({"num_classes": 5}, (3, 67, 45), (5, 17, 12)),
    "a2u_matting_tiny": ({}, (4, 67, 45), (1, 67, 45)),
    "segnet": ({"channels": (8, 8, 16, 16)}, (3, 67, 45), (2, 67, 45)),
    "autoencoder": ({"channels": (8, 16)}, (1, 29, 23), (1, 29, 23)),
}


@pytest.mark.parametrize("upsampler", fade.list_upsamplers())
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_output_size_and_gradients_reach_every_parameter(model_name, upsampler):
    options, (c, h, w), out_shape = MODELS[model_name]
    model = create_model(model_name, upsampler, **options).train()
    x = torch.randn(2, c, h, w)
    out = model(x)
    assert out.shape == (2, *out_shape)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
