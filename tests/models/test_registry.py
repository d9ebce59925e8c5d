"""The model registry: names, errors, options, device and dtype."""

from pathlib import Path

import pytest
import torch

import fade
from fade.models import A2UMatting, ReconstructionAutoencoder, SegFormer, SegNet, create_model, list_models
from fade.models.registry import register_model
from fade.models.table import markdown_table


def test_names():
    assert list_models() == [
        "a2u_matting",
        "a2u_matting_tiny",
        "autoencoder",
        "segformer_b1",
        "segformer_tiny",
        "segformer_tiny_pretrained",
        "segnet",
    ]


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(KeyError, match="unknown model 'unet'; valid names: a2u_matting, a2u_matting_tiny, autoencoder"):
        create_model("unet")


def test_unknown_upsampler_lists_the_valid_upsamplers():
    with pytest.raises(KeyError, match="unknown upsampler 'lanczos'; valid names: a2u, bilinear"):
        create_model("segnet", "lanczos")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="model 'segnet' is already registered"):
        register_model("segnet")(lambda *a, **k: None)


@pytest.mark.parametrize(
    "name, cls",
    [
        ("segformer_tiny", SegFormer),
        ("a2u_matting_tiny", A2UMatting),
        ("segnet", SegNet),
        ("autoencoder", ReconstructionAutoencoder),
    ],
)
def test_factories_build_their_class_and_pass_options(name, cls):
    model = create_model(name, "fade", upsampler_options={"kernel_size": 3}, device="meta")
    assert isinstance(model, cls)
    fades = [m for m in model.modules() if isinstance(m, fade.KernelUpsampler)]
    assert fades and all(m.kernel_generator.content_encoder.out_channels == 3 * 3 for m in fades)


def test_num_classes_reaches_the_classifier():
    assert create_model("segformer_b1", "bilinear", num_classes=19, device="meta").head.classifier.out_channels == 19
    assert create_model("segnet", "bilinear", num_classes=7, device="meta").head.out_channels == 7


@pytest.mark.parametrize("upsampler", ["fade", "unpool", "indexnet", "a2u", "carafe"])
@pytest.mark.parametrize("name", ["segformer_tiny", "a2u_matting_tiny", "segnet", "autoencoder"])
def test_device_and_dtype_reach_every_tensor(name, upsampler):
    model = create_model(name, upsampler, device="meta", dtype=torch.float64)
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    assert all(t.is_meta and t.dtype == torch.float64 for t in tensors)


def test_tiny_variants_run_in_float64():
    model = create_model("segformer_tiny", "fade", num_classes=3, dtype=torch.float64).eval()
    assert model(torch.randn(1, 3, 40, 33, dtype=torch.float64)).dtype == torch.float64


def test_docs_hold_the_generated_parameter_table():
    docs = Path(__file__).resolve().parents[2] / "docs" / "models.md"
    assert markdown_table() in docs.read_text()


SMALL_INPUTS = {
    "autoencoder": (1, 28, 28),
    "segnet": (3, 32, 32),
    "segformer_tiny": (3, 64, 64),
    "a2u_matting_tiny": (4, 64, 64),
}


@pytest.mark.parametrize("name", sorted(SMALL_INPUTS))
def test_every_network_checks_its_input_and_takes_an_empty_batch(name):
    """numpy, integer or float64 input to a float32 network is a TypeError naming x (was an AttributeError
    or torch's RuntimeError); an empty batch gives an empty result (SegFormer's attention failed)."""
    model = create_model(name, "nearest").eval()
    x = torch.randn(1, *SMALL_INPUTS[name])
    with pytest.raises(TypeError, match="x: expected a torch.Tensor, got ndarray"):
        model(x.numpy())
    with pytest.raises(TypeError, match="x: expected a floating-point tensor, got dtype torch.int64"):
        model(x.long())
    with pytest.raises(TypeError, match=r"x: expected dtype torch.float32 \(that of .*parameters\), got torch.float64"):
        model(x.double())
    with torch.no_grad():
        full, empty = model(x), model(x[:0])
    assert empty.shape == (0, *full.shape[1:])


@pytest.mark.parametrize(
    ("name", "option", "error", "message"),
    [
        ("segformer_tiny", {"num_classes": 0}, ValueError, "num_classes: expected a positive integer, got 0"),
        ("segformer_tiny", {"in_channels": 0}, ValueError, "in_channels: expected a positive integer, got 0"),
        ("segformer_tiny", {"depths": (-1, 2, 2, 2)}, ValueError, r"depths\[0\]: expected a positive integer, got -1"),
        ("segformer_tiny", {"embed_dims": (0, 0, 0, 0)}, ValueError, r"embed_dims\[0\]: expected a positive integer"),
        ("segnet", {"num_classes": 0}, ValueError, "num_classes: expected a positive integer, got 0"),
        ("segnet", {"channels": (16.5,)}, TypeError, r"channels\[0\]: expected a positive integer, got float 16.5"),
        ("segnet", {"in_channels": True}, TypeError, "in_channels: expected a positive integer, got bool True"),
        ("autoencoder", {"channels": (-1,)}, ValueError, r"channels\[0\]: expected a positive integer, got -1"),
        ("a2u_matting_tiny", {"aspp_channels": 0}, ValueError, "aspp_channels: expected a positive integer, got 0"),
        ("a2u_matting_tiny", {"in_channels": 0}, ValueError, "in_channels: expected a positive integer, got 0"),
    ],
)
def test_network_sizes_are_checked_naming_the_option(name, option, error, message):
    """0 classes or input channels built silently, negative depths too; 0 widths divided by zero."""
    with pytest.raises(error, match=message):
        create_model(name, "nearest", **option)


@pytest.mark.parametrize(
    "name, options, smallest",
    [
        ("segformer_b1", {}, 29),  # stage 1 (stride 4) must see >= 8 rows: ceil(29 / 4) = 8
        ("segformer_tiny", {"sr_ratios": (2, 4, 1, 1)}, 25),  # stage 2 (stride 8): ceil(25 / 8) = 4
        ("segnet", {}, 16),  # 2^4 after four poolings
        ("autoencoder", {"channels": (4, 8)}, 4),
        ("a2u_matting_tiny", {}, 16),
    ],
)
def test_smallest_input_is_the_least_size_the_forward_takes(name, options, smallest):
    """The attribute the trainer checks a preset's size against agrees with the network's own forward."""
    model = create_model(name, "bilinear", **options).eval()
    assert model.smallest_input == smallest
    in_channels = model.encoder.in_channels if isinstance(model, SegFormer) else model.in_channels
    with torch.no_grad():
        for size in ((smallest, smallest), (smallest, smallest + 3), (smallest + 5, smallest)):
            model(torch.zeros(1, in_channels, *size))
        for size in ((smallest - 1, smallest), (smallest, smallest - 1)):
            with pytest.raises(ValueError, match="x: expected "):
                model(torch.zeros(1, in_channels, *size))
