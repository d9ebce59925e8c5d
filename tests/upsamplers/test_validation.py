"""Hostile input for every registered upsampler: each family of bad argument, table-driven over
``fade.list_upsamplers()`` (a new name is covered automatically), plus the cases of issue 9."""

import math

import numpy as np
import pytest
import torch

import fade
from fade.upsamplers import DySample, FADELite, KernelUpsampler, list_options
from fade.upsamplers.a2u import A2UDown, A2UKernels
from fade.upsamplers.indexnet import IndexBlock, IndexedPool
from fade.upsamplers.kernels import (
    DecoderKernels,
    EncoderKernels,
    NaiveKernels,
    SemiShiftKernels,
    SemiShiftLiteKernels,
)
from fade.upsamplers.pairs import PairedUpsampler, PlainUp

NAMES = fade.list_upsamplers()
C = 4
LOW, HIGH = (4, 3), (9, 7)  # floor-mode at s = 2
SIZE_ONLY = {"bilinear", "carafe", "deconv", "dysample", "nearest", "pixelshuffle"}


def inputs(batch=2, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, C, *HIGH, generator=g, dtype=dtype),
        torch.randn(batch, C, *LOW, generator=g, dtype=dtype),
    )


def has_parameters(module):
    return any(True for _ in module.parameters())


def ups(name):
    """The stand-alone upsampler and the pair's up half (with the context its down half gives)."""
    en, de = inputs()
    down, up = fade.create_pair(name, C)
    _, context = down(en)
    return [
        (fade.create_upsampler(name, C), lambda m, e, d: m(e, d)),
        (up, lambda m, e, d: m(e, d, context)),
    ]


# ------------------------------------------------------------------------------------------------
# forward(en, de)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [lambda t: t.numpy(), lambda t: t.tolist(), lambda t: None])
def test_non_tensor_inputs_are_type_errors_naming_the_argument(name, bad):
    en, de = inputs()
    for module, call in ups(name):
        with pytest.raises(TypeError, match="en: expected a torch.Tensor, got"):
            call(module, bad(en), de)
        with pytest.raises(TypeError, match="de: expected a torch.Tensor, got"):
            call(module, en, bad(de))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.uint8, torch.complex64])
def test_non_floating_inputs_are_type_errors(name, dtype):
    en, de = inputs()
    for module, call in ups(name):
        with pytest.raises(TypeError, match=f"en: expected a floating-point tensor, got dtype {dtype}"):
            call(module, en.to(dtype), de)
        with pytest.raises(TypeError, match=f"de: expected a floating-point tensor, got dtype {dtype}"):
            call(module, en, de.to(dtype))


@pytest.mark.parametrize("name", NAMES)
def test_en_and_de_of_different_dtypes_are_type_errors(name):
    """Never a silent float64 result (carafe_gate and nn_gate gave one)."""
    en, de = inputs()
    for module, call in ups(name):
        with pytest.raises(TypeError, match=r"en: expected dtype torch.float32 \(that of de\), got torch.float64"):
            call(module, en.double(), de)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_must_have_the_parameters_dtype_and_parameterless_modules_take_any(name):
    """The one policy: a module takes the dtype of its parameters; one without any takes every
    floating dtype and then computes in it."""
    en, de = inputs()
    module = fade.create_upsampler(name, C).eval()
    if has_parameters(module):
        with pytest.raises(TypeError, match=r"de: expected dtype torch.float32 \(that of .*parameters\), got torch.float64"):
            module(en.double(), de.double())
        assert module.double()(en.double(), de.double()).dtype == torch.float64
    else:
        out = module(en.double(), de.double())
        assert out.dtype == torch.float64
        torch.testing.assert_close(out.float(), module(en, de))


@pytest.mark.parametrize("name", NAMES)
def test_inputs_on_different_devices_are_value_errors(name):
    en, de = inputs()
    for module, call in ups(name):
        with pytest.raises(ValueError, match=r"en: expected a tensor on cpu \(that of de\), got meta"):
            call(module, en.to("meta"), de)


@pytest.mark.parametrize("name", NAMES)
def test_meta_inputs_give_a_shape_only_result_or_a_device_error(name):
    """Inputs on meta, module on the CPU: a module with parameters refuses them (ValueError); one
    without computes the shape (never uninitialised memory on the CPU, as unpool gave)."""
    en, de = (t.to("meta") for t in inputs())
    module = fade.create_upsampler(name, C)
    if has_parameters(module):
        with pytest.raises(ValueError, match=r"de: expected a tensor on cpu \(that of .*parameters\), got meta"):
            module(en, de)
        with pytest.raises(ValueError, match=r"de: expected a tensor on meta \(that of .*parameters\), got cpu"):
            fade.create_upsampler(name, C, device="meta")(*inputs())
    else:
        out = module(en, de)
        assert out.is_meta and out.shape == (2, C, *HIGH)


@pytest.mark.parametrize("name", NAMES)
def test_zero_spatial_sizes_are_value_errors_that_say_so(name):
    en, de = inputs()
    module = fade.create_upsampler(name, C)
    with pytest.raises(ValueError, match=r"de: expected a positive spatial size \(H, W\), got \(0, 3\)"):
        module(en, de[:, :, :0])
    with pytest.raises(ValueError, match=r"en spatial size vs de: .*positive extents, got \(0, 7\)"):
        module(en[:, :, :0], de)


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_gives_the_empty_result(name):
    en, de = inputs(batch=0)
    out = fade.create_upsampler(name, C).eval()(en, de)
    assert out.shape == (0, C, *HIGH)
    down, up = fade.create_pair(name, C)
    pooled, context = down(en)
    assert pooled.shape == (0, C, *(n // 2 for n in HIGH))
    assert up(en, pooled, context).shape == (0, C, *HIGH)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_and_non_contiguous_inputs_give_the_same_result(name):
    en, de = inputs()
    module = fade.create_upsampler(name, C).eval()
    with torch.no_grad():
        expected = module(en, de)
        strided = module(en.transpose(2, 3).contiguous().transpose(2, 3), de.transpose(2, 3).contiguous().transpose(2, 3))
        cl = module(en.contiguous(memory_format=torch.channels_last), de.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(strided, expected)
    torch.testing.assert_close(cl, expected)


@pytest.mark.parametrize("name", NAMES)
def test_down_half_checks_its_input_like_the_up_half(name):
    en, _ = inputs()
    down, _ = fade.create_pair(name, C)
    with pytest.raises(TypeError, match="x: expected a torch.Tensor, got ndarray"):
        down(en.numpy())
    with pytest.raises(TypeError, match="x: expected a floating-point tensor, got dtype torch.int64"):
        down(en.long())
    if has_parameters(down):
        with pytest.raises(TypeError, match=r"x: expected dtype torch.float32 \(that of .*parameters\), got torch.float64"):
            down(en.double())
        with pytest.raises(ValueError, match=r"x: expected a tensor on cpu \(that of .*parameters\), got meta"):
            down(en.to("meta"))


@pytest.mark.parametrize("name", sorted(fade.upsamplers.list_pairs()))
def test_paired_context_must_be_a_tensor_on_des_device(name):
    en, de = inputs()
    down, up = fade.create_pair(name, C)
    _, context = down(en)
    with pytest.raises(TypeError, match=r"context: expected a torch.Tensor \(the .* returned by the paired .*\), got ndarray"):
        up(en, de, context.detach().numpy())
    with pytest.raises(ValueError, match=r"context: expected a tensor on cpu \(that of de\), got meta"):
        up(en, de, context.to("meta"))


# ------------------------------------------------------------------------------------------------
# NaN and infinity
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("target", ["en", "de"])
def test_a_nan_shows_up_wherever_the_output_depends_on_it(name, target):
    """The output pixels that change when one input value changes must be NaN when it is NaN (no
    clamping or argmax hides it); an upsampler that reads only en's size stays finite and exact."""
    en, de = inputs()
    module = fade.create_upsampler(name, C).eval()
    index = (0, 1, 2, 1)

    def run(value=None, delta=0.0):
        x = {"en": en.clone(), "de": de.clone()}
        x[target][index] = x[target][index] + delta if value is None else value
        with torch.no_grad():
            return module(x["en"], x["de"])

    clean = run()
    depends = run(delta=10.0) != clean
    with_nan = run(value=float("nan"))
    if target == "en" and name in SIZE_ONLY:
        assert not depends.any()
        torch.testing.assert_close(with_nan, clean, rtol=0, atol=0)
    else:
        assert depends.any()
        assert with_nan[depends].isnan().all(), f"{int((~with_nan[depends].isnan()).sum())} silently finite"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_dysample_non_finite_offsets_give_nan_not_a_border_pixel(bad):
    """grid_sample clamps a NaN/inf position to the border (a copy of pixel (0, 0))."""
    module = DySample(C, C).eval()
    en, de = inputs()
    de[0, :, 1, 1] = bad
    with torch.no_grad():
        out = module(en, de)
    # every offset of point (1, 1) is non-finite, so all its s x s outputs in every channel are
    assert out[0, :, 2:4, 2:4].isnan().all()
    assert torch.isfinite(out[1]).all()


def test_unpool_nan_in_en_makes_its_window_nan():
    """Max-pooling takes the NaN as the window's maximum; where de's value goes is undefined."""
    module = fade.create_upsampler("unpool", 1, scale=2)
    en = torch.tensor([[[[1.0, 5.0], [float("nan"), 2.0]]]])
    out = module(en, torch.tensor([[[[7.0]]]]))
    assert out.isnan().all()
    en[0, 0, 1, 0] = float("inf")  # infinity is an honest maximum
    torch.testing.assert_close(module(en, torch.tensor([[[[7.0]]]])), torch.tensor([[[[0.0, 0.0], [7.0, 0.0]]]]))


# ------------------------------------------------------------------------------------------------
# constructor arguments
# ------------------------------------------------------------------------------------------------

# Invalid for every kind of option: integer sizes, bool flags, positive reals and named choices.
ALWAYS_INVALID = [-3, 0, -0.5, float("nan"), float("inf"), "3", [3]]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", ALWAYS_INVALID, ids=repr)
def test_every_option_rejects_a_hostile_value_naming_itself(name, value):
    for option in list_options(name):
        for build in (fade.create_upsampler, fade.create_pair):
            with pytest.raises((TypeError, ValueError), match=f"^{option}: expected"):
                build(name, C, **{option: value})


@pytest.mark.parametrize("name", [n for n in NAMES if "kernel_size" in list_options(n)])
@pytest.mark.parametrize(
    "value, error, match",
    [
        (-3, ValueError, "positive odd integer, got -3"),
        (0, ValueError, "positive odd integer, got 0"),
        (4, ValueError, "positive odd integer, got 4"),
        (3.0, TypeError, "positive odd integer, got float 3.0"),
        (True, TypeError, "positive odd integer, got bool True"),
        (np.int64(3), TypeError, "positive odd integer, got int64"),
    ],
)
def test_kernel_size_is_a_positive_odd_int(name, value, error, match):
    """kernel_size=-3 built K=3 (carafe, carafe_gate, encoder_kernels, naive_kernels), 0 failed in
    conv, an even K only at forward."""
    with pytest.raises(error, match=f"kernel_size: expected a {match}"):
        fade.create_upsampler(name, C, kernel_size=value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "value, error", [(0, ValueError), (-4, ValueError), (4.0, TypeError), (True, TypeError), ("4", TypeError), (None, TypeError)]
)
def test_channels_are_positive_ints(name, value, error):
    """create_upsampler('fade', 0) built a module; negative or float channels failed deep in torch."""
    for build in (fade.create_upsampler, fade.create_pair):
        with pytest.raises(error, match=r"en_channels: expected a positive integer, got"):
            build(name, value, C)
        if value is not None:  # de_channels=None means de_channels = en_channels
            with pytest.raises(error, match=r"de_channels: expected a positive integer, got"):
                build(name, C, value)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_options_list_the_accepted_ones(name):
    accepted = ", ".join(list_options(name)) or "none"
    for build in (fade.create_upsampler, fade.create_pair):
        with pytest.raises(TypeError, match=f"upsampler '{name}': unknown option\\(s\\) bogus; accepted options: {accepted}$"):
            build(name, C, bogus=1)


@pytest.mark.parametrize("name", NAMES)
def test_device_and_dtype_are_checked_before_building(name):
    for build in (fade.create_upsampler, fade.create_pair):
        with pytest.raises(ValueError, match="dtype: expected a floating torch.dtype .*, got torch.int64"):
            build(name, C, dtype=torch.int64)
        with pytest.raises(ValueError, match="dtype: expected a floating torch.dtype .*, got torch.complex64"):
            build(name, C, dtype=torch.complex64)
        with pytest.raises(TypeError, match="dtype: expected a floating torch.dtype or None, got str 'float32'"):
            build(name, C, dtype="float32")
        with pytest.raises(ValueError, match="device: expected a device such as 'cpu' or 'cuda:0', got 'gpu'"):
            build(name, C, device="gpu")


@pytest.mark.parametrize("build", [fade.create_upsampler, fade.create_pair])
def test_names_must_be_registered_strings(build):
    with pytest.raises(KeyError, match="unknown upsampler 'FADE'; valid names: " + ", ".join(NAMES)):
        build("FADE", C)
    with pytest.raises(TypeError, match="name: expected a str"):
        build(["fade"], C)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: fade.FADE(0), "en_channels: expected a positive integer, got 0"),
        (lambda: fade.FADE(4, compressed_channels=0), "compressed_channels: expected a positive integer, got 0"),
        (lambda: fade.FADE(4, encoder_kernel_size=-1), "encoder_kernel_size: expected a positive odd integer, got -1"),
        (lambda: FADELite(4, kernel_size=-3), "kernel_size: expected a positive odd integer, got -3"),
        (lambda: SemiShiftKernels(4, 4, compressed_channels=-2), "compressed_channels: expected a positive integer"),
        (lambda: SemiShiftLiteKernels(4, -4), "de_channels: expected a positive integer, got -4"),
        (lambda: EncoderKernels(4, 4, kernel_size=-3), "kernel_size: expected a positive odd integer, got -3"),
        (lambda: NaiveKernels(4, 4, kernel_size=0), "kernel_size: expected a positive odd integer, got 0"),
        (lambda: DecoderKernels(4, 4, kernel_size=-3), "kernel_size: expected a positive odd integer, got -3"),
        (lambda: KernelUpsampler(None, 0, 4), "en_channels: expected a positive integer, got 0"),
        (lambda: KernelUpsampler("kernels", 4, 4), "kernel_generator: expected a Module, got str"),
        (lambda: fade.upsamplers.SAPA(4, 4, embedding_dim=0), "embedding_dim: expected a positive integer, got 0"),
        (lambda: DySample(4, 4, scope=float("nan")), "scope: expected a finite positive real number, got nan"),
        (lambda: DySample(4, 4, scope=0), "scope: expected a finite positive real number, got 0"),
        (lambda: DySample(4, 4, groups=True), "groups: expected a positive integer, got bool True"),
        (lambda: A2UKernels(4, rank=0), "rank: expected a positive integer, got 0"),
        (lambda: A2UKernels(4, downsample=1), "downsample: expected True or False, got int 1"),
        (lambda: A2UKernels(0), "channels: expected a positive integer, got 0"),
        (lambda: A2UDown(torch.nn.Identity()), "kernels: expected a A2UKernels, got Identity"),
        (lambda: IndexBlock(4, nonlinear="yes"), "nonlinear: expected True or False, got str 'yes'"),
        (lambda: IndexBlock(4, expansion=0), "expansion: expected a positive integer, got 0"),
        (lambda: IndexedPool(None), "index_block: expected a IndexBlock, got NoneType"),
        (lambda: PlainUp(len), "upsampler: expected a Module, got builtin_function_or_method"),
        (lambda: PairedUpsampler(torch.nn.Identity(), torch.nn.Identity()), "up: expected a Upsampler, got Identity"),
    ],
)
def test_module_classes_check_their_arguments(build, match):
    with pytest.raises((TypeError, ValueError), match=match):
        build()


def test_scope_takes_any_finite_positive_real():
    assert DySample(4, 4, scope=1).scope == 1.0 and math.isclose(DySample(4, 4, scope=0.5).scope, 0.5)


# ------------------------------------------------------------------------------------------------
# sizes too large to build or compute
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [2**40, 2**63 - 1, 2**64])
def test_huge_channels_are_refused_before_allocating(name, channels):
    with pytest.raises(ValueError, match="en_channels: expected a positive integer of at most 268,435,456, got"):
        fade.create_upsampler(name, channels)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [2**31, 2**63 - 1])
def test_a_huge_scale_is_refused_or_reads_like_any_scale_past_ens_size(name, scale):
    """A weight that grows with the scale is refused before allocating; otherwise a scale past
    en's size maps every output pixel to de's one pixel, exactly as scale = max(H_en, W_en)."""
    torch.manual_seed(0)
    try:
        huge = fade.create_upsampler(name, C, scale=scale).eval()
    except ValueError as error:
        assert "of at most 268,435,456" in str(error)
        return
    torch.manual_seed(0)
    small = fade.create_upsampler(name, C, scale=5).eval()
    assert [p.shape for p in huge.parameters()] == [p.shape for p in small.parameters()]
    en, de = torch.randn(2, C, 5, 3), torch.randn(2, C, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(huge(en, de), small(en, de), rtol=0, atol=0)


def test_a_weight_past_the_limit_names_the_layer():
    with pytest.raises(ValueError, match=r"Conv2d\(4, 536870912, kernel_size=1, groups=1\): expected a weight of at most"):
        DySample(4, 4, scale=2**13, groups=4)
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(4, 4, kernel_size=16384\): expected a weight of at most"):
        fade.create_upsampler("deconv", 4, scale=2**13)


def test_unpool_refuses_indices_outside_the_plane():
    en, de = inputs()
    _, up = fade.create_pair("unpool", C)
    indices = torch.zeros(2, C, *LOW, dtype=torch.int64)
    indices[0, 0, 0, 0] = HIGH[0] * HIGH[1]
    with pytest.raises(ValueError, match=r"indices: expected flat indices into the \(9, 7\) plane, in \[0, 63\), got values in \[0, 63\]"):
        up(en, de, indices)
    indices[0, 0, 0, 0] = -1
    with pytest.raises(ValueError, match=r"got values in \[-1, 0\]"):
        up(en, de, indices)


@pytest.mark.parametrize("name", NAMES)
def test_sparse_inputs_are_type_errors(name):
    en, de = inputs()
    module = fade.create_upsampler(name, C)
    with pytest.raises(TypeError, match="en: expected a dense \\(strided\\) tensor, got layout torch.sparse_coo"):
        module(en.to_sparse(), de)


def test_cuda_without_cuda_is_a_value_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device: expected an available device, got 'cuda' \(torch.cuda.is_available\(\) is False\)"):
        fade.create_upsampler("fade", C, device="cuda")


@pytest.mark.parametrize("name", NAMES)
def test_dtype_mismatch_on_meta_is_the_same_type_error(name):
    en, de = (t.to("meta") for t in inputs())
    module = fade.create_upsampler(name, C).to("meta")
    with pytest.raises(TypeError, match=r"en: expected dtype torch.float32 \(that of de\), got torch.float64"):
        module(en.double(), de)


@pytest.mark.parametrize("name", NAMES)
def test_autocast_leaves_the_dtype_to_torch(name):
    """Under autocast a float32 module takes inputs of the autocast dtype, as torch layers do."""
    en, de = inputs()
    module = fade.create_upsampler(name, C).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(en.bfloat16(), de.bfloat16())
        reference = module.bfloat16()(en.bfloat16(), de.bfloat16())
    assert out.shape == (2, C, *HIGH) and out.dtype in (torch.bfloat16, torch.float32)
    torch.testing.assert_close(out.float(), reference.float(), rtol=0.05, atol=0.05)



@pytest.mark.parametrize("name", NAMES)
def test_autocast_around_float32_inputs_trains(name):
    """torch.autocast around a float32 module and float32 inputs (the trainer's --amp): the forward
    and backward run, close to the float32 result (the reassembly itself runs in float32)."""
    en, de = (t.requires_grad_() for t in inputs())
    module = fade.create_upsampler(name, C).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(en, de)
    out.float().square().sum().backward()
    assert out.shape == (2, C, *HIGH) and torch.isfinite(de.grad).all()
    with torch.no_grad():
        reference = module(en, de)
    torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)

def functional_calls():
    """(name, call, the tensors it takes by argument name): every public functional form."""
    from fade.upsamplers import a2u, dysample, indexnet, interpolation, sapa, unpool

    x, low = torch.randn(1, C, 8, 6), torch.randn(1, C, 4, 3)
    idx = torch.rand(1, C, 8, 6)
    return [
        ("bilinear_upsample", lambda x: interpolation.bilinear_upsample(x, (8, 6), 2), {"x": low}),
        ("sampling_positions", lambda offsets: dysample.sampling_positions(offsets, 2, 1, (8, 6)), {"offsets": torch.zeros(1, 8, 4, 3)}),
        ("point_sample", lambda x, positions: dysample.point_sample(x, positions, 1), {"x": low, "positions": torch.zeros(1, 8, 6, 2)}),
        ("local_similarity", lambda query, key: sapa.local_similarity(query, key, 3, 2), {"query": x, "key": low}),
        ("sapa_attention", lambda query, key, value: sapa.sapa_attention(query, key, value, 3, 2), {"query": x, "key": low, "value": low}),
        ("a2d", lambda x, kernels: a2u.a2d(x, kernels, 2), {"x": x, "kernels": torch.rand(1, 16, 4, 3)}),
        ("index_maps", lambda logits: indexnet.index_maps(logits), {"logits": torch.randn(1, C, 4, 4, 3)}),
        ("indexed_pool", lambda x, idx_en: indexnet.indexed_pool(x, idx_en, 2), {"x": x, "idx_en": idx}),
        ("indexed_upsample", lambda de, idx_de: indexnet.indexed_upsample(de, idx_de, (8, 6), 2), {"de": low, "idx_de": idx}),
        ("max_pool_indices", lambda x: unpool.max_pool_indices(x, (4, 3), 2), {"x": x}),
    ]


@pytest.mark.parametrize("fname, call, tensors", functional_calls(), ids=lambda v: v if isinstance(v, str) else "")
def test_functional_forms_check_their_tensors(fname, call, tensors):
    call(**tensors)  # valid as given
    for name, t in tensors.items():
        with pytest.raises(TypeError, match=f"{name}: expected a torch.Tensor, got ndarray"):
            call(**{**tensors, name: t.numpy()})
        with pytest.raises(TypeError, match=f"{name}: expected a floating-point tensor, got dtype torch.int64"):
            call(**{**tensors, name: t.long()})
        with pytest.raises(ValueError, match=f"{name}: expected a"):
            call(**{**tensors, name: t[0]})


def test_max_unpool_checks_its_indices():
    from fade.upsamplers.unpool import max_unpool

    de = torch.randn(1, C, 4, 3)
    with pytest.raises(TypeError, match=r"indices: expected a torch.Tensor \(int64 max indices\), got list"):
        max_unpool(de, [[0]], (8, 6))
    with pytest.raises(ValueError, match="indices: expected int64 max indices, got None"):
        max_unpool(de, None, (8, 6))


@pytest.mark.parametrize(
    "name, train, match",
    [
        ("a2u", True, r"A2U with 4 channels \(its GroupNorm of 4 groups would normalise a single value"),
        ("a2u", False, r"A2U with 4 channels \(its GroupNorm of 4 groups would normalise a single value"),
        ("indexnet", True, r"more than one value per channel for IndexNet's BatchNorm in training mode, got batch 1"),
        ("indexnet_holistic", True, r"IndexNet's BatchNorm in training mode, got batch 1 at pooled size \(1, 1\)"),
    ],
)
def test_a_single_value_to_normalise_is_a_value_error_naming_the_input(name, train, match):
    """Batch 1 at a 1x1 pooled size leaves A2U's GroupNorm (C dividing 32) or, training, IndexNet's
    BatchNorm one value to normalise: a ValueError naming de (the upsampler) or x (the down half)."""
    up = fade.create_upsampler(name, C).train(train)
    with pytest.raises(ValueError, match=rf"de: expected .*{match}"):
        up(torch.randn(1, C, 2, 2), torch.randn(1, C, 1, 1))
    down, _ = fade.create_pair(name, C)
    with pytest.raises(ValueError, match=rf"x: expected .*{match}"):
        down.train(train)(torch.randn(1, C, 2, 3))
    # Two values to normalise are enough: 64 channels in 32 groups (A2U), a batch of 2 (IndexNet).
    channels, batch = (64, 1) if name == "a2u" else (C, 2)
    up = fade.create_upsampler(name, channels).train(train)
    assert up(torch.randn(batch, channels, 2, 2), torch.randn(batch, channels, 1, 1)).shape == (batch, channels, 2, 2)


@pytest.mark.parametrize("name", NAMES)
def test_an_output_no_tensor_can_hold_is_refused_before_computing(name):
    """Expanded (stride-0) inputs whose output would need 2**64 bytes: a ValueError, nothing allocated."""
    en = torch.zeros(1, C, 1, 1).expand(1, C, 2**30, 2**30)
    de = torch.zeros(1, C, 1, 1).expand(1, C, 2**29, 2**29)
    with pytest.raises(ValueError, match=r"output: shape \(1, 4, 1073741824, 1073741824\) of torch.float32 needs more"):
        fade.create_upsampler(name, C)(en, de)


def _positions(scale, groups):
    from fade.upsamplers.dysample import sampling_positions

    return sampling_positions(torch.zeros(1, 8, 4, 3), scale, groups, (8, 6))


def _point_sample(groups):
    from fade.upsamplers.dysample import point_sample

    return point_sample(torch.zeros(1, C, 4, 3), torch.zeros(1, 8, 6, 2), groups)


def _indexed(function, scale):
    from fade.upsamplers import indexnet

    if function == "pool":
        return indexnet.indexed_pool(torch.zeros(1, C, 8, 6), torch.zeros(1, C, 8, 6), scale)
    return indexnet.indexed_upsample(torch.zeros(1, C, 4, 3), torch.zeros(1, C, 8, 6), (8, 6), scale)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: _positions(0, 1), ValueError, "scale must be a positive integer, got 0"),
        (lambda: _positions(2, 0), ValueError, "groups: expected a positive integer, got 0"),
        (lambda: _positions(2, 3), ValueError, r"offsets: expected 2\*G\*s\*s = 24 channels \(G=3, s=2\), got 8"),
        (lambda: _positions(2**40, 1), ValueError, r"offsets: expected 2\*G\*s\*s = \d+ channels"),
        (lambda: _point_sample(3), ValueError, "x: expected channels divisible by groups=3, got 4"),
        (lambda: _point_sample(2), ValueError, r"positions: expected shape \(B\*G, H, W, 2\) = \(2, H, W, 2\)"),
        (lambda: _point_sample(0), ValueError, "groups: expected a positive integer, got 0"),
        (lambda: _indexed("pool", 0), ValueError, "scale must be a positive integer, got 0"),
        (lambda: _indexed("pool", 2**40), ValueError, r"x: expected a spatial size of at least 1099511627776 \(the scale\)"),
        (lambda: _indexed("upsample", "2"), TypeError, "scale must be a positive integer, got '2'"),
    ],
)
def test_functional_forms_check_their_scale_and_groups(call, error, match):
    """A zero, huge or str scale or groups: a clear error before any arange or view (was torch's shape or
    stride errors, or an allocation for 2**40 sub-pixel positions)."""
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("size", "error", "match"),
    [
        (None, TypeError, r"size: expected \(H_out, W_out\), two integers, got None"),
        ("ab", TypeError, r"size: expected \(H_out, W_out\), two integers, got 'ab'"),
        ((8.0, 6), TypeError, r"size: expected \(H_out, W_out\), two integers, got \(8.0, 6\)"),
        ((0, 0), ValueError, r"size: expected a high-resolution size \(H, W\) of positive extents"),
        ((2**40, 2**40), ValueError, "output: shape .* needs more bytes than a tensor can hold"),
    ],
)
def test_max_unpool_checks_its_size(size, error, match):
    """The plane size was unchecked: None, a str or floats failed deep in torch, 2**40 overflowed."""
    from fade.upsamplers.unpool import max_unpool

    with pytest.raises(error, match=match):
        max_unpool(torch.randn(1, C, 4, 3), torch.zeros(1, C, 4, 3, dtype=torch.int64), size)


def test_a_size_that_is_no_sequence_is_a_type_error():
    from fade.upsamplers.interpolation import bilinear_upsample

    with pytest.raises(TypeError, match=r"size vs x: expected a high-resolution size \(H, W\), got NoneType None"):
        bilinear_upsample(torch.randn(1, C, 4, 3), None, 2)


KERNEL_NAMES = [n for n in NAMES if isinstance(fade.create_upsampler(n, C), KernelUpsampler)]


@pytest.mark.parametrize("name", KERNEL_NAMES)
@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda en, de: (en, de[:1]), ValueError, r"^batch mismatch: en has batch 2, de has batch 1$"),
        (lambda en, de: (en.long(), de.long()), TypeError, r"^de: expected a floating-point tensor, got dtype torch.int64$"),
        (lambda en, de: (en[0], de), ValueError, r"^en: expected a 4-D tensor \(B, C, H, W\), got 3-D shape"),
        (lambda en, de: (en[:, :1], de), ValueError, r"^en: expected 4 channels, got 1"),
        (lambda en, de: (en[..., :4, :], de), ValueError, r"^en spatial size vs de: expected a high-resolution size"),
    ],
)
def test_kernels_refuses_what_forward_refuses(name, change, error, match):
    """kernels(en, de) is public (README): a batch mismatch broadcast silently to en's batch, int inputs
    failed inside a conv."""
    module = fade.create_upsampler(name, C)
    en, de = change(*inputs())
    for call in (module, module.kernels):
        with pytest.raises(error, match=match):
            call(en, de)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_of_valid_inputs_are_the_generators_normalised_logits(name):
    module = fade.create_upsampler(name, C)
    en, de = inputs()
    kernels = module.kernels(en, de)
    if module.kernel_generator is None:
        torch.testing.assert_close(kernels, torch.ones(2, 1, *HIGH), rtol=0, atol=0)
    else:
        logits = module.kernel_generator(en, de, 2)
        torch.testing.assert_close(kernels, logits.exp() / logits.exp().sum(dim=1, keepdim=True))
    if module.fusion == "none":
        torch.testing.assert_close(module(en, de), fade.ops.carafe(de, kernels, 2), rtol=0, atol=0)


@pytest.mark.parametrize(
    "idx_shape",
    [(1, C, 8, 6), (3, C, 8, 6), (2, 3, 8, 6), (2, C, 8, 4), (2, C, 6, 6), (2, C, 10, 6)],
    ids=["batch 1", "batch 3", "3 maps", "narrower", "shorter", "taller"],
)
def test_indexed_pool_refuses_index_maps_that_do_not_fit_x(idx_shape):
    """A map of batch 1 broadcast over x's batch 2 (or x's batch 1 to 3), and a map of 8 x 4 windows over
    an 8 x 6 x pooled 4 x 2 (x's floor mode is 4 x 3): silent results of the wrong shape."""
    from fade.upsamplers.indexnet import indexed_pool

    x = torch.randn(2, C, 9, 7)
    with pytest.raises(ValueError, match=r"^idx_en: expected a \(B, 1 or C, s\*h, s\*w\) = \(2, 1 or 4, 8, 6\) tensor"):
        indexed_pool(x, torch.rand(idx_shape), 2)


@pytest.mark.parametrize("maps", [1, C])
def test_indexed_pool_of_fitting_maps_is_the_window_sum_of_x_times_the_map(maps):
    from fade.upsamplers.indexnet import indexed_pool

    x, idx = torch.randn(2, C, 9, 7, dtype=torch.float64), torch.rand(2, maps, 8, 6, dtype=torch.float64)
    expected = torch.zeros(2, C, 4, 3, dtype=torch.float64)
    for i in range(4):
        for j in range(3):
            for di in range(2):
                for dj in range(2):
                    expected[:, :, i, j] += x[:, :, 2 * i + di, 2 * j + dj] * idx[:, :, 2 * i + di, 2 * j + dj]
    torch.testing.assert_close(indexed_pool(x, idx, 2), expected)


@pytest.mark.parametrize("name", [n for n in sorted(fade.upsamplers.list_pairs()) if has_parameters(fade.create_pair(n, C)[0])])
@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda x: x.numpy(), TypeError, r"^x: expected a torch.Tensor, got ndarray$"),
        (lambda x: x.long(), TypeError, r"^x: expected a floating-point tensor, got dtype torch.int64$"),
        (lambda x: x.double(), TypeError, r"^x: expected dtype torch.float32 \(that of .*'s parameters\), got torch.float64$"),
        (lambda x: x[0], ValueError, r"^x: expected a 4-D tensor \(B, C, H, W\), got 3-D shape \(4, 9, 7\)$"),
        (lambda x: torch.cat([x, x], 1), ValueError, r"^x: expected 4 channels, got 8"),
    ],
)
def test_down_context_checks_x_like_forward(name, change, error, match):
    """down.context(x, low_hw) is the pair protocol's second entry: a wrong x failed inside a conv or a pooling."""
    down, _ = fade.create_pair(name, C)
    x, _ = inputs()
    with pytest.raises(error, match=match):
        down.context(change(x), LOW)
    with pytest.raises(ValueError, match=r"^x spatial size vs the pooled size: expected a high-resolution size"):
        down.context(x, (2, 3))
    assert down.context(x, (5, 4)).shape[-2:] == (10, 8)  # ceil mode: a pooled size past H // s is valid


@pytest.mark.parametrize("generator", [SemiShiftKernels, SemiShiftLiteKernels, EncoderKernels, NaiveKernels, DecoderKernels])
def test_kernel_generators_check_en_and_de(generator):
    """A generator is a building block of KernelUpsampler: called alone, a batch-1 de broadcast over en's
    batch (or en's over de's) silently, int inputs failed inside a matrix product."""
    module = generator(C, C)
    en, de = inputs()
    assert module(en, de, 2).shape[-2:] == HIGH
    with pytest.raises(ValueError, match=r"^batch mismatch: en has batch 2, de has batch 1$"):
        module(en, de[:1], 2)
    with pytest.raises(ValueError, match=r"^batch mismatch: en has batch 1, de has batch 2$"):
        module(en[:1], de, 2)
    with pytest.raises(TypeError, match=r"^de: expected a floating-point tensor, got dtype torch.int64$"):
        module(en.long(), de.long(), 2)
    with pytest.raises(ValueError, match=r"^de: expected 4 channels, got 8"):
        module(en, torch.cat([de, de], 1), 2)


def test_index_block_and_a2u_kernels_check_their_inputs():
    """IndexBlock(x, low_hw), A2UKernels.affinity and its kernel heads failed inside a conv or mixed
    samples of different batches silently (a batch-2 affinity with a batch-1 x gave batch-2 kernels)."""
    en, _ = inputs()
    block, a2u_kernels = IndexBlock(C, 2), A2UKernels(C, 2)
    for call in (block, a2u_kernels.affinity):
        with pytest.raises(TypeError, match=r"^x: expected a floating-point tensor, got dtype torch.int64$"):
            call(en.long(), LOW)
        with pytest.raises(ValueError, match=r"^x: expected 4 channels, got 8"):
            call(torch.cat([en, en], 1), LOW)
    affinity = a2u_kernels.affinity(en, LOW)
    for head in (a2u_kernels.up_kernels, a2u_kernels.down_kernels):
        assert head(en, affinity).shape[0] == 2
        with pytest.raises(ValueError, match=r"^x, affinity: expected \(B, 4, H, W\) and \(B, 1, h, w\) \(rank d = 1\)"):
            head(en[:1], affinity)
