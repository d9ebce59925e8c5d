"""A2U matting network: padding protocol, where each pair sits, the alpha prediction, errors."""

import pytest
import torch
import torch.nn.functional as F

from fade.models import A2UMatting, create_model
from fade.upsamplers import A2UDown, IndexedPool, MaxPoolDown, MaxPoolIndices

# pooling that made each resolution, and the decoder stage that upsamples back to it
PAIRS = [
    ("down0", "decoder1"),
    ("down1", "decoder2"),
    ("stage2_first.down", "decoder3"),
    ("stage3_first.down", "decoder4"),
]


def record(model, names, keep):
    seen = {}
    for name in names:
        model.get_submodule(name).register_forward_hook(
            lambda m, args, out, name=name: seen.__setitem__(name, keep(args, out))
        )
    return seen


def test_input_is_reflect_padded_to_a_multiple_of_16_and_cropped_back():
    model = A2UMatting.tiny("fade").eval()
    x = torch.randn(1, 4, 67, 45)
    padded = F.pad(x, (0, 3, 0, 13), mode="reflect")  # 80 x 48
    assert model(x).shape == (1, 1, 67, 45)
    torch.testing.assert_close(model(x), model(padded)[..., :67, :45])


def test_upsamplers_get_the_pre_pool_feature_of_their_resolution():
    model = A2UMatting.tiny("fade").eval()  # stem 8, widths 8 / 16 / 32
    ups = [f"{decoder}.up" for _, decoder in PAIRS]
    seen = record(model, ups, lambda args, out: (tuple(args[0].shape[1:]), tuple(args[1].shape[1:])))
    model(torch.randn(1, 4, 64, 48))
    assert [seen[name] for name in ups] == [
        ((8, 64, 48), (8, 32, 24)),  # l0, full resolution
        ((8, 32, 24), (8, 16, 12)),  # l0p, 1/2
        ((16, 16, 12), (16, 8, 6)),  # l10 = stage 2's pre-pool conv, 1/4
        ((32, 8, 6), (32, 4, 3)),  # l20 = stage 3's pre-pool conv, 1/8; de = ASPP at 1/16
    ]


@pytest.mark.parametrize(
    "upsampler, down_type", [("unpool", MaxPoolIndices), ("indexnet", IndexedPool), ("a2u", A2UDown)]
)
def test_each_pooling_hands_its_context_and_input_to_the_matching_upsampling(upsampler, down_type):
    model = A2UMatting.tiny(upsampler).eval()
    downs = [name for name, _ in PAIRS]
    ups = [f"{decoder}.up" for _, decoder in PAIRS]
    assert all(isinstance(model.get_submodule(name), down_type) for name in downs)
    pooled = record(model, downs, lambda args, out: (args[0], out[1]))
    upsampled = record(model, ups, lambda args, out: (args[0], args[2]))
    model(torch.randn(1, 4, 48, 32))
    for down, up in zip(downs, ups):
        assert upsampled[up][0] is pooled[down][0]  # en = the very feature that was pooled
        assert upsampled[up][1] is pooled[down][1]  # context = what that pooling computed


def test_plain_upsamplers_pool_by_max_pooling():
    model = A2UMatting.tiny("fade")
    assert all(isinstance(model.get_submodule(name), MaxPoolDown) for name, _ in PAIRS)


def test_predict_clamps_the_raw_prediction_to_unit_range():
    model = A2UMatting.tiny("bilinear").eval()
    with torch.no_grad():
        model.prediction[1].weight.fill_(3.0)  # spread the output well past [0, 1]
    x = torch.randn(2, 4, 33, 20)
    raw, alpha = model(x), model.predict(x)
    assert raw.min() < 0 and raw.max() > 1
    torch.testing.assert_close(alpha, raw.clamp(0, 1))


def test_bad_input_is_refused():
    model = A2UMatting.tiny("fade")
    with pytest.raises(
        ValueError, match=r"x: expected a \(B, 4, H, W\) batch with H, W >= 16, got shape \(1, 3, 32, 32\)"
    ):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"H, W >= 16, got shape \(1, 4, 32, 15\)"):
        model(torch.randn(1, 4, 32, 15))
    with pytest.raises(
        ValueError,
        match=r"expected three stages with at least one block each, got widths=\(8, 16, 32\), depths=\(1, 0, 1\)",
    ):
        A2UMatting.tiny("fade", depths=(1, 0, 1))


def test_training_on_one_sample_is_refused_naming_the_batch():
    """The ASPP's image pooling leaves BatchNorm one value per channel at batch 1: a ValueError saying so
    (was torch's 'Expected more than 1 value per channel'); evaluation, frozen BatchNorm or 2 samples work."""
    model = create_model("a2u_matting_tiny", "nearest")
    x = torch.rand(1, 4, 32, 32)
    with pytest.raises(ValueError, match=r"x: expected a batch of at least 2 while training \(the ASPP's image"):
        model.train()(x)
    assert model.eval()(x).shape == (1, 1, 32, 32)
    assert model.train()(torch.rand(2, 4, 32, 32)).shape == (2, 1, 32, 32)
