"""Pretrained weights from the published formats: key maps checked by round trips, hand-checked
names and shapes, numerical equivalence of the attention layouts, and clear errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fade.models import A2UMatting, SegFormer, create_model
from fade.models.pretrained import conversion_links, load_pretrained, read_state_dict


def _export(model: nn.Module, fmt: str) -> dict[str, torch.Tensor]:
    """``model``'s encoder under the file names of ``fmt``: the inverse of each link's rule."""
    own, state = model.state_dict(), {}
    for link in conversion_links(model, fmt):
        ours = [own[k].clone() for k in link.ours]
        if link.rule == "copy":
            theirs = ours
        elif link.rule == "concat":
            theirs = list(ours[0].chunk(len(link.theirs), dim=0))
        elif link.rule == "split":
            theirs = [torch.cat(ours, dim=0)]
        elif link.rule == "linear":
            theirs = [ours[0][:, :, None, None]]
        else:
            theirs = [ours[0][:, :3]]
        state.update(zip(link.theirs, theirs))
    return state


def _encoder(model: nn.Module) -> dict[str, torch.Tensor]:
    prefixes = ("encoder.", "stem.", "stage")
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}


def _segformer(seed: int, **options) -> SegFormer:
    torch.manual_seed(seed)
    return create_model("segformer_tiny", "bilinear", num_classes=5, **options)


def _a2u(seed: int) -> A2UMatting:
    torch.manual_seed(seed)
    model = create_model("a2u_matting_tiny", "bilinear", depths=(2, 3, 2))
    for module in model.modules():  # distinctive running statistics, so that buffers are checked too
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(seed + 7)
    return model


@pytest.mark.parametrize("fmt", ["segformer", "mmseg", "huggingface", "fade"])
def test_mit_round_trip_reproduces_every_encoder_tensor(fmt):
    source, target = _segformer(0), _segformer(1)
    head_before = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("head.")}
    state = _export(source, fmt) if fmt != "fade" else _encoder(source)
    report = load_pretrained(target, state)
    assert report.format == fmt
    for name, value in _encoder(source).items():
        assert torch.equal(target.state_dict()[name], value), name
    for name, value in head_before.items():
        assert torch.equal(target.state_dict()[name], value), name
    assert report.loaded == len(_encoder(source)) and report.left == len(head_before)


@pytest.mark.parametrize("fmt", ["torchvision", "inplace_abn"])
def test_resnet_round_trip_reproduces_every_encoder_tensor_and_zeroes_the_trimap_channel(fmt):
    source, target = _a2u(0), _a2u(1)
    load_pretrained(target, _export(source, fmt))
    for name, value in _encoder(source).items():
        got = target.state_dict()[name]
        if name == "stem.0.weight":
            assert torch.equal(got[:, :3], value[:, :3]) and torch.all(got[:, 3] == 0)
        else:
            assert torch.equal(got, value), name


# Hand-counted tensors of the published MiT-B1 files (encoder only). A block has norm1, q, kv, proj,
# norm2, fc1, dwconv, fc2 (2 tensors each: 16), plus sr and its norm (4) in stages 1-3, which reduce;
# a stage adds its patch embedding (4) and its norm (2). segformer: 3 x (4 + 2 x 20 + 2) + (4 + 2 x 16
# + 2) = 176; mmseg merges q and kv into in_proj (2 fewer per block): 160; huggingface splits kv into
# key and value (2 more per block): 192.
MIT_B1_FILE_TENSORS = {"segformer": 176, "mmseg": 160, "huggingface": 192}
MIT_B1_KEYS = {
    "segformer": {
        "patch_embed1.proj.weight": (64, 3, 7, 7),
        "patch_embed4.norm.bias": (512,),
        "block1.0.attn.kv.weight": (128, 64),
        "block1.1.attn.sr.weight": (64, 64, 8, 8),
        "block3.1.mlp.dwconv.dwconv.weight": (1280, 1, 3, 3),
        "block4.0.mlp.fc2.weight": (512, 2048),
        "norm3.weight": (320,),
    },
    "mmseg": {
        "layers.0.0.projection.weight": (64, 3, 7, 7),
        "layers.1.1.0.attn.attn.in_proj_weight": (384, 128),
        "layers.1.1.0.attn.attn.in_proj_bias": (384,),
        "layers.2.1.1.attn.attn.out_proj.weight": (320, 320),
        "layers.0.1.0.ffn.layers.0.weight": (256, 64, 1, 1),
        "layers.0.1.0.ffn.layers.1.weight": (256, 1, 3, 3),
        "layers.3.1.1.ffn.layers.4.weight": (512, 2048, 1, 1),
        "layers.3.2.weight": (512,),
    },
    "huggingface": {
        "encoder.patch_embeddings.1.proj.weight": (128, 64, 3, 3),
        "encoder.patch_embeddings.0.layer_norm.weight": (64,),
        "encoder.block.3.1.attention.self.value.weight": (512, 512),
        "encoder.block.0.0.attention.self.key.bias": (64,),
        "encoder.block.2.0.attention.self.sr.weight": (320, 320, 2, 2),
        "encoder.block.1.1.attention.output.dense.weight": (128, 128),
        "encoder.block.0.1.mlp.dense1.weight": (256, 64),
        "encoder.layer_norm.2.bias": (320,),
    },
}


@pytest.mark.parametrize("fmt", ["segformer", "mmseg", "huggingface"])
def test_mit_b1_file_names_and_shapes_match_the_published_ones(fmt):
    model = create_model("segformer_b1", "bilinear", device="meta")
    state = _export(model, fmt)
    assert len(state) == MIT_B1_FILE_TENSORS[fmt]
    for key, shape in MIT_B1_KEYS[fmt].items():
        assert tuple(state[key].shape) == shape, key
    assert not any("block4.0.attn.sr" in k or "layers.3.1.0.attn.sr" in k for k in state)


def test_a2u_r34_takes_the_first_eleven_blocks_of_a_torchvision_resnet34():
    """Hand-counted: stem conv + bn (1 + 5), 11 basic blocks x (2 convs + 2 bn x 5 tensors) = 132,
    two downsample shortcuts x 6 = 12: 150 tensors; ResNet-34's other tensors are dropped."""
    model = A2UMatting("bilinear", device="meta")
    state = _export(model, "torchvision")
    assert len(state) == 150
    assert tuple(state["conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(state["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert tuple(state["layer3.3.bn2.running_var"].shape) == (256,)
    assert "layer3.4.conv1.weight" not in state
    links = {link.theirs[0]: link.ours[0] for link in conversion_links(model, "torchvision")}
    assert links["layer1.2.conv2.weight"] == "stage1.2.body.1.0.weight"
    assert links["layer2.0.conv1.weight"] == "stage2_first.conv1.0.weight"
    assert links["layer2.1.bn1.bias"] == "stage2.0.body.0.1.bias"
    assert links["layer3.0.downsample.1.running_mean"] == "stage3_first.shortcut.1.running_mean"
    assert links["bn1.weight"] == "stem.1.weight"
    a2u = {link.theirs[0]: link.ours[0] for link in conversion_links(model, "inplace_abn")}
    assert a2u["mod1.conv1.weight"] == "stem.0.weight"
    assert a2u["mod2.block3.convs.bn2.running_var"] == "stage1.2.body.1.1.running_var"
    assert a2u["mod3.block1.proj_conv.weight"] == "stage2_first.shortcut.0.weight"
    assert a2u["mod4.block2.convs.conv1.weight"] == "stage3.0.body.0.0.weight"


def test_full_torchvision_resnet34_loads_dropping_its_deeper_blocks_and_classifier():
    torch.manual_seed(0)
    model = _a2u(0)
    state = _export(model, "torchvision")
    extra = {"layer1.2.conv1.weight": torch.zeros(8, 8, 3, 3), "layer3.5.bn1.bias": torch.zeros(32)}
    extra |= {"layer4.0.conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(10, 32), "fc.bias": torch.zeros(10)}
    report = load_pretrained(_a2u(1), {**state, **extra})
    assert report.dropped == len(extra)


def test_mmseg_in_proj_layout_is_multihead_attention():
    """mmseg's attention is nn.MultiheadAttention; the loaded layer must compute what it computes."""
    dim, heads = 16, 2
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(dim, heads, batch_first=True)
    nn.init.normal_(reference.in_proj_bias)
    model = _segformer(0, embed_dims=(16, 32, 40, 64), num_heads=(2, 1, 2, 2), sr_ratios=(1, 1, 1, 1))
    state = _export(model, "mmseg")
    state["layers.0.1.0.attn.attn.in_proj_weight"] = reference.in_proj_weight.detach().clone()
    state["layers.0.1.0.attn.attn.in_proj_bias"] = reference.in_proj_bias.detach().clone()
    state["layers.0.1.0.attn.attn.out_proj.weight"] = reference.out_proj.weight.detach().clone()
    state["layers.0.1.0.attn.attn.out_proj.bias"] = reference.out_proj.bias.detach().clone()
    load_pretrained(model, state)
    tokens = torch.randn(2, 12, dim)
    expected, _ = reference(tokens, tokens, tokens, need_weights=False)
    got = model.encoder.stages[0][0].attn(tokens, (3, 4))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_huggingface_query_key_value_layout_is_plain_multihead_attention():
    """Hugging Face keeps query, key and value apart; a float64 attention written out by hand."""
    dim, heads, n = 16, 2, 12
    model = _segformer(0, embed_dims=(16, 32, 40, 64), num_heads=(2, 1, 2, 2), sr_ratios=(1, 1, 1, 1))
    model = model.double()
    state = _export(model, "huggingface")
    torch.manual_seed(3)
    base = "encoder.block.0.0.attention."
    for part in ("self.query", "self.key", "self.value", "output.dense"):
        state[f"{base}{part}.weight"] = torch.randn(dim, dim, dtype=torch.float64) / 4
        state[f"{base}{part}.bias"] = torch.randn(dim, dtype=torch.float64)
    load_pretrained(model, state)
    x = torch.randn(n, dim, dtype=torch.float64)
    q, k, v = (x @ state[f"{base}self.{p}.weight"].T + state[f"{base}self.{p}.bias"] for p in ("query", "key", "value"))
    out = torch.empty(n, dim, dtype=torch.float64)
    width = dim // heads
    for h in range(heads):
        cols = slice(h * width, (h + 1) * width)
        weights = torch.softmax(q[:, cols] @ k[:, cols].T / width**0.5, dim=-1)
        out[:, cols] = weights @ v[:, cols]
    expected = out @ state[f"{base}output.dense.weight"].T + state[f"{base}output.dense.bias"]
    got = model.encoder.stages[0][0].attn(x[None], (3, 4))[0]
    torch.testing.assert_close(got, expected)


def test_mmseg_ffn_convs_become_linear_layers():
    model = _segformer(0)
    state = _export(model, "mmseg")
    weight = torch.randn_like(state["layers.1.1.0.ffn.layers.0.weight"])
    state["layers.1.1.0.ffn.layers.0.weight"] = weight
    load_pretrained(model, state)
    x = torch.randn(1, weight.shape[1], 3, 5)
    expected = F.conv2d(x, weight)
    fc1 = model.encoder.stages[1][0].ffn.fc1
    got = (x.permute(0, 2, 3, 1) @ fc1.weight.T).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, expected)


def test_wrappers_and_prefixes_are_stripped(tmp_path):
    source = _segformer(0)
    hf = {f"segformer.{k}": v for k, v in _export(source, "huggingface").items()}
    hf |= {"classifier.weight": torch.zeros(1000, 64), "classifier.bias": torch.zeros(1000)}
    report = load_pretrained(_segformer(1), hf)
    assert report.format == "huggingface" and report.dropped == 2

    mmseg = {f"module.backbone.{k}": v for k, v in _export(source, "mmseg").items()}
    mmseg["module.decode_head.conv_seg.weight"] = torch.zeros(150, 256, 1, 1)
    path = tmp_path / "segformer.pth"
    torch.save({"meta": {"iter": 160000}, "state_dict": mmseg}, path)
    target = _segformer(1)
    report = load_pretrained(target, path)
    assert report.format == "mmseg" and report.dropped == 1
    assert torch.equal(target.encoder.norms[3].weight, source.encoder.norms[3].weight)

    original = {"model": _export(source, "segformer") | {"head.weight": torch.zeros(1000, 64)}}
    assert load_pretrained(_segformer(1), original).format == "segformer"


def test_num_batches_tracked_may_be_absent():
    state = {k: v for k, v in _export(_a2u(0), "torchvision").items() if not k.endswith("num_batches_tracked")}
    assert load_pretrained(_a2u(1), state).format == "torchvision"


def test_missing_unexpected_and_misshapen_tensors_are_listed():
    state = _export(_segformer(0), "segformer")
    broken = dict(state)
    del broken["block2.0.attn.q.weight"]
    broken["block9.0.attn.q.weight"] = torch.zeros(1)
    broken["norm1.weight"] = torch.zeros(3)
    target = _segformer(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError) as error:
        load_pretrained(target, broken)
    message = str(error.value)
    assert "1 missing (block2.0.attn.q.weight)" in message
    assert "1 unexpected (block9.0.attn.q.weight)" in message
    assert "1 of the wrong shape (norm1.weight (3,)" in message
    assert all(torch.equal(target.state_dict()[k], v) for k, v in before.items())

    many = {k: v for k, v in state.items() if not k.startswith("block1.")}
    with pytest.raises(ValueError, match=r"20 missing \(block1\.0\.norm1\.weight, .*, \.\.\.\)"):
        load_pretrained(_segformer(1), many)


def test_weights_of_the_other_network_or_no_known_format_are_refused(tmp_path):
    with pytest.raises(ValueError, match="torchvision-format weights .* do not fit a SegFormer"):
        load_pretrained(_segformer(0), _export(_a2u(0), "torchvision"))
    with pytest.raises(ValueError, match="expected weights in one of the formats torchvision, inplace_abn, fade"):
        load_pretrained(_a2u(0), {"foo.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="does not exist"):
        load_pretrained(_a2u(0), tmp_path / "nothing.pth")
    (tmp_path / "text.pth").write_text("not a torch file")
    with pytest.raises(ValueError, match="could not read"):
        read_state_dict(tmp_path / "text.pth")
    torch.save({"epoch": 3}, tmp_path / "no_state.pth")
    with pytest.raises(ValueError, match="expected a state dict"):
        read_state_dict(tmp_path / "no_state.pth")
    with pytest.raises(ValueError, match="unexpected"):
        load_pretrained(_segformer(0), _encoder(_segformer(1)) | {"encoder.extra": torch.zeros(1)})


def _write_safetensors(path, tensors: dict[str, torch.Tensor], header_extra: dict | None = None) -> None:
    """Hugging Face's layout written out by hand: u64 header length, JSON header, raw data."""
    import json

    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
    header, chunks, offset = dict(header_extra or {}), [], 0
    for name, tensor in tensors.items():
        data = tensor.contiguous().view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        span = [offset, offset + len(data)]
        header[name] = {"dtype": names[tensor.dtype], "shape": list(tensor.shape), "data_offsets": span}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(chunks))


def test_safetensors_files_are_read_with_torch_alone(tmp_path):
    import struct

    # Byte-level hand check: two float32 values and one int64, little-endian.
    values = struct.pack("<2f", 1.0, -2.5) + struct.pack("<q", 7)
    header = b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
    header += b'"b": {"dtype": "I64", "shape": [1, 1], "data_offsets": [8, 16]}, "__metadata__": {"format": "pt"}}'
    (tmp_path / "hand.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + values)
    state = read_state_dict(tmp_path / "hand.safetensors")
    assert state["a"].tolist() == [1.0, -2.5] and state["b"].tolist() == [[7]] and state["b"].dtype == torch.int64

    source = _segformer(0)
    hf = {f"segformer.{k}": v for k, v in _export(source, "huggingface").items()}
    hf["segformer.encoder.block.0.0.layer_norm_1.bias"] = hf["segformer.encoder.block.0.0.layer_norm_1.bias"].half()
    _write_safetensors(tmp_path / "model.safetensors", hf | {"classifier.bias": torch.zeros(0)})
    target = _segformer(1)
    assert load_pretrained(target, tmp_path / "model.safetensors").format == "huggingface"
    assert torch.equal(target.encoder.norms[2].weight, source.encoder.norms[2].weight)
    torch.testing.assert_close(
        target.encoder.stages[0][0].norm1.bias, source.encoder.stages[0][0].norm1.bias.half().float()
    )

    (tmp_path / "short.safetensors").write_bytes(b"\x05\x00")
    with pytest.raises(ValueError, match="not one \\(no valid header length\\)"):
        read_state_dict(tmp_path / "short.safetensors")
    bad = b'{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}'
    (tmp_path / "bad.safetensors").write_bytes(len(bad).to_bytes(8, "little") + bad + values)
    with pytest.raises(ValueError, match="tensor 'a': bytes 0..8 of 16 for shape \\[3\\] of F32"):
        read_state_dict(tmp_path / "bad.safetensors")
    odd = b'{"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}'
    (tmp_path / "odd.safetensors").write_bytes(len(odd).to_bytes(8, "little") + odd + values)
    with pytest.raises(ValueError, match="tensor 'a' has no readable dtype"):
        read_state_dict(tmp_path / "odd.safetensors")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_and_the_model_is_unchanged(bad, tmp_path):
    model = create_model("autoencoder", "nearest")
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point())
    before = {k: v.clone() for k, v in state.items()}
    torch.save({**state, name: torch.full_like(state[name], bad)}, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=rf"init: expected finite weights, got NaN or infinity in 1 tensors \({name}"):
        load_pretrained(model, tmp_path / "broken.pt")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_path_without_a_file_says_what_it_is(tmp_path):
    with pytest.raises(ValueError, match=r"init: expected a weights file, got '/dev/zero', which is not a regular"):
        read_state_dict("/dev/zero")
    with pytest.raises(ValueError, match=rf"init: expected a weights file, got '{tmp_path}', which is a folder"):
        read_state_dict(tmp_path)
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    with pytest.raises(ValueError, match=rf"init: expected a state dict \(names -> tensors\) in '{tmp_path}/tensor"):
        read_state_dict(tmp_path / "tensor.pt")
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got NoneType"):
        load_pretrained(None, tmp_path / "tensor.pt")


def test_a_fade_run_file_is_read_through_its_checksum(tmp_path):
    """--init with a run's model.pt or checkpoint.pt (fade's checksummed format) was refused with torch's
    'Weights only load failed'; it holds a state dict of this package's names, which --init takes."""
    import io

    from fade.io import write_checked_bytes

    model = create_model("autoencoder", "fade")
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"model": state, "step": 3}, buffer)
    write_checked_bytes(tmp_path / "model.pt", buffer.getvalue())
    assert read_state_dict(tmp_path / "model.pt").keys() == state.keys()
    load_pretrained(model, tmp_path / "model.pt")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    damaged = bytearray((tmp_path / "model.pt").read_bytes())
    damaged[-10] ^= 0xFF
    (tmp_path / "model.pt").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"model.pt: content does not match its checksum .*; it cannot be used as --init"):
        read_state_dict(tmp_path / "model.pt")
