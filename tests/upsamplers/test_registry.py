"""The registry: one factory signature for every name."""

import pytest
import torch

import fade


@pytest.mark.parametrize("name", fade.list_upsamplers())
def test_every_name_honours_device_and_dtype(name):
    m = fade.create_upsampler(name, 8, dtype=torch.float64, device="meta")
    tensors = list(m.parameters()) + [b for b in m.buffers() if b.is_floating_point()]
    assert all(t.dtype == torch.float64 and t.is_meta for t in tensors)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="upsampler 'fade' is already registered"):
        fade.upsamplers.register_upsampler("fade")(lambda *a, **k: None)
