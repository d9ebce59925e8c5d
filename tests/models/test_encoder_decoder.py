"""SegNet and the reconstruction autoencoder: the pair is the only varied part, wiring, outputs, errors."""

import pytest
import torch
import torch.nn.functional as F

import fade
from fade.models import ReconstructionAutoencoder, SegNet


def shapes_outside_the_pairs(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith(("downs.", "ups."))}


@pytest.mark.parametrize("upsampler", fade.list_upsamplers())
def test_the_pair_is_the_only_varied_component(upsampler):
    with torch.device("meta"):
        for cls in (SegNet, ReconstructionAutoencoder):
            assert shapes_outside_the_pairs(cls(upsampler)) == shapes_outside_the_pairs(cls("bilinear"))


@pytest.mark.parametrize("upsampler", ["unpool", "indexnet", "a2u", "fade"])
def test_each_stage_upsamples_with_the_pooled_feature_and_context_of_its_pooling(upsampler):
    model = SegNet(upsampler, channels=(4, 8, 8)).eval()
    pooled, upsampled = {}, {}
    for i, (down, up) in enumerate(zip(model.downs, model.ups)):
        down.register_forward_hook(lambda m, args, out, i=i: pooled.__setitem__(i, (args[0], out[1])))
        up.register_forward_hook(lambda m, args, out, i=i: upsampled.__setitem__(i, (args[0], args[2], out)))
    model(torch.randn(1, 3, 37, 22))
    for i in range(3):
        en, context, out = upsampled[i]
        assert en is pooled[i][0] and context is pooled[i][1]
        assert out.shape == en.shape  # back to the exact pre-pool size (37 -> 18 -> 9 -> 4 and back)


def test_unpooling_segnet_places_decoder_values_at_the_encoder_maxima():
    model = SegNet("unpool", channels=(4, 8)).eval()
    captured = {}
    model.ups[0].register_forward_hook(lambda m, args, out: captured.update(en=args[0], de=args[1], out=out))
    model(torch.randn(1, 3, 9, 7))
    en, de, out = captured["en"], captured["de"], captured["out"]
    _, indices = F.max_pool2d(en[..., :8, :6], 2, return_indices=True)  # floor mode pools the 8 x 6 part
    expected = torch.zeros_like(en)
    expected[..., :8, :6] = F.max_unpool2d(de, indices, 2, output_size=(8, 6))
    assert torch.equal(out, expected)


def test_autoencoder_reconstructs_in_unit_range_at_the_input_size():
    model = ReconstructionAutoencoder("fade").eval()
    out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 1, 28, 28)
    assert (out > 0).all() and (out < 1).all()


def test_bad_input_is_refused():
    with pytest.raises(
        ValueError, match=r"x: expected a \(B, 3, H, W\) batch with H, W >= 16, got shape \(1, 3, 15, 40\)"
    ):
        SegNet("fade")(torch.randn(1, 3, 15, 40))
    with pytest.raises(
        ValueError, match=r"x: expected a \(B, 1, H, W\) batch with H, W >= 4, got shape \(1, 3, 28, 28\)"
    ):
        ReconstructionAutoencoder("fade")(torch.randn(1, 3, 28, 28))
    with pytest.raises(
        ValueError, match=r"expected at least one stage and one conv per stage, got channels=\(\), convs_per_stage=2"
    ):
        SegNet("fade", channels=())
