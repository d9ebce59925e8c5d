"""Pretrained encoder weights from the published checkpoint formats (``fade train --init FILE``).

The format is detected from the keys; wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and
prefixes (``module.``, ``backbone.``, ``segformer.``) are stripped. Formats:

- ``segformer``: the SegFormer authors' ImageNet MiT files (``mit_b1.pth``: ``patch_embed1.proj``,
  ``block1.0.attn.q``, ``block1.0.attn.kv``, ``block1.0.mlp.dwconv.dwconv``, ``norm1``; ``head.``
  is their ImageNet classifier, dropped);
- ``mmseg``: the same converted by mmseg's ``mit2mmseg`` (``layers.0.0.projection``,
  ``layers.0.1.0.attn.attn.in_proj_weight`` = [q; k; v] rows, ``ffn.layers.{0,1,4}`` with the two
  Linear layers stored as 1x1 convs, ``layers.0.2`` the stage norm), optionally under ``backbone.``
  in a segmentor checkpoint (its ``decode_head.`` and ``auxiliary_head.`` are dropped);
- ``huggingface``: transformers' ``SegformerModel`` (``encoder.patch_embeddings.0.proj``,
  ``encoder.block.0.0.attention.self.{query,key,value}``, ``encoder.layer_norm.0``), optionally
  under ``segformer.`` (``classifier.`` and ``decode_head.`` dropped), from ``pytorch_model.bin``
  or ``model.safetensors`` (read by :func:`read_safetensors`, torch alone);
- ``torchvision``: a ResNet state dict (``conv1``, ``bn1``, ``layer1.0.conv1``, ...) into the A2U
  matting encoder: stem from ``conv1``/``bn1``, stage i from ``layer{i}``'s first blocks (A2U-R34:
  3 + 4 + 4 of ResNet-34's 3 + 4 + 6), the first block's ``downsample`` as its shortcut; deeper
  blocks, ``layer4`` and ``fc`` are dropped;
- ``inplace_abn``: the ImageNet ResNet-34 the A2U code downloads (``mod1.conv1``,
  ``mod2.block1.convs.conv1``, ``mod3.block1.proj_conv``; ``mod5`` and ``classifier`` dropped);
- ``fade``: this package's own names (a run's checkpoint or a saved state dict); any subset.

The A2U stem has a 4th input channel (the trimap): as the A2U code does, its weights are zero and
the RGB weights are the file's. Every tensor the format maps must be in the file with the right
shape, and every tensor of the file must be mapped or dropped by the rules above; anything else is
a ValueError listing the first few offenders and the counts. BatchNorm's ``num_batches_tracked``
may be absent (older files).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..io import is_checked_file, read_checked_bytes
from .matting import A2UMatting
from .segformer import SegFormer

__all__ = [
    "FORMATS",
    "Link",
    "LoadReport",
    "conversion_links",
    "detect_format",
    "load_pretrained",
    "read_safetensors",
    "read_state_dict",
]

FORMATS = ("segformer", "mmseg", "huggingface", "torchvision", "inplace_abn", "fade")
"""The weight formats :func:`load_pretrained` reads."""

RULES = ("copy", "concat", "split", "linear", "trimap")
"""How a :class:`Link` turns file tensors into model tensors (see :class:`Link`)."""


@dataclass(frozen=True)
class Link:
    """Model tensors ``ours`` computed from file tensors ``theirs`` by ``rule``.

    Rules: ``copy`` (one to one); ``concat`` (several file tensors stacked along dim 0 into one:
    Hugging Face's key and value into our kv); ``split`` (one file tensor cut along dim 0 into ours:
    mmseg's in_proj [q; k; v] into q and kv); ``linear`` (a 1x1 conv weight (O, I, 1, 1) as a Linear
    weight (O, I)); ``trimap`` (an RGB conv weight (O, 3, k, k) as the (O, 4, k, k) weight of the
    RGB + trimap input, trimap channel zero). ``optional``: absent from the file is not an error.
    """

    ours: tuple[str, ...]
    theirs: tuple[str, ...]
    rule: str = "copy"
    optional: bool = False


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_pretrained` did: the format, the model tensors loaded, the file tensors
    dropped by the format's rules, and the model tensors left as initialised."""

    format: str
    loaded: int
    dropped: int
    left: int

    def __str__(self) -> str:
        return (
            f"{self.format} format: loaded {self.loaded} tensors, dropped {self.dropped} unused ones of the file, "
            f"left {self.left} model tensors as initialised"
        )


# --- names ---------------------------------------------------------------------------------------

_MIT_KEY = re.compile(
    r"encoder\.(?:patch_embeds\.(?P<embed>\d+)\.(?P<embed_part>proj|norm)"
    r"|stages\.(?P<stage>\d+)\.(?P<block>\d+)\.(?P<module>norm1|norm2|attn\.\w+|ffn\.\w+)"
    r"|norms\.(?P<norm>\d+))\.(?P<param>weight|bias)"
)

# Block module -> its name in the segformer, mmseg and huggingface formats. mmseg's q and kv live in
# one in_proj tensor (see _mit_names).
_MIT_BLOCK = {
    "norm1": ("norm1", "norm1", "layer_norm_1"),
    "attn.q": ("attn.q", None, "attention.self.query"),
    "attn.kv": ("attn.kv", None, None),
    "attn.proj": ("attn.proj", "attn.attn.out_proj", "attention.output.dense"),
    "attn.reduce": ("attn.sr", "attn.sr", "attention.self.sr"),
    "attn.norm": ("attn.norm", "attn.norm", "attention.self.layer_norm"),
    "norm2": ("norm2", "norm2", "layer_norm_2"),
    "ffn.fc1": ("mlp.fc1", "ffn.layers.0", "mlp.dense1"),
    "ffn.dwconv": ("mlp.dwconv.dwconv", "ffn.layers.1", "mlp.dwconv.dwconv"),
    "ffn.fc2": ("mlp.fc2", "ffn.layers.4", "mlp.dense2"),
}
_MIT_FORMATS = ("segformer", "mmseg", "huggingface")


def _mit_names(key: str, fmt: str) -> tuple[tuple[str, ...], str]:
    """File key(s) and rule of our SegFormer encoder tensor ``key`` in MiT format ``fmt``."""
    m = _MIT_KEY.fullmatch(key)
    if m is None:
        raise ValueError(f"key: expected a SegFormer encoder tensor name, got {key!r}")
    param, column = m["param"], _MIT_FORMATS.index(fmt)
    if m["embed"] is not None:
        i, part = int(m["embed"]), m["embed_part"]
        names = {
            "segformer": f"patch_embed{i + 1}.{part}",
            "mmseg": f"layers.{i}.0.{'projection' if part == 'proj' else 'norm'}",
            "huggingface": f"encoder.patch_embeddings.{i}.{'proj' if part == 'proj' else 'layer_norm'}",
        }
        return (f"{names[fmt]}.{param}",), "copy"
    if m["norm"] is not None:
        i = int(m["norm"])
        names = {"segformer": f"norm{i + 1}", "mmseg": f"layers.{i}.2", "huggingface": f"encoder.layer_norm.{i}"}
        return (f"{names[fmt]}.{param}",), "copy"
    stage, block, module = int(m["stage"]), int(m["block"]), m["module"]
    base = {
        "segformer": f"block{stage + 1}.{block}.",
        "mmseg": f"layers.{stage}.1.{block}.",
        "huggingface": f"encoder.block.{stage}.{block}.",
    }[fmt]
    if fmt == "mmseg" and module in ("attn.q", "attn.kv"):
        return (f"{base}attn.attn.in_proj_{param}",), "split"
    if fmt == "huggingface" and module == "attn.kv":
        return (f"{base}attention.self.key.{param}", f"{base}attention.self.value.{param}"), "concat"
    rule = "linear" if fmt == "mmseg" and module in ("ffn.fc1", "ffn.fc2") and param == "weight" else "copy"
    return (f"{base}{_MIT_BLOCK[module][column]}.{param}",), rule


_RESNET_KEY = re.compile(
    r"(?:stem\.(?P<stem>[01])"
    r"|stage(?P<stage>[123])\.(?P<block>\d+)\.body\.(?P<conv>[01])\.(?P<layer>[01])"
    r"|stage(?P<first>[23])_first\.(?P<part>conv1|conv2|shortcut)\.(?P<first_layer>[01]))"
    r"\.(?P<param>weight|bias|running_mean|running_var|num_batches_tracked)"
)


def _resnet_names(key: str, fmt: str, trimap: bool) -> tuple[tuple[str, ...], str]:
    """File key and rule of our A2U encoder tensor ``key`` in ResNet format ``fmt``."""
    m = _RESNET_KEY.fullmatch(key)
    if m is None:
        raise ValueError(f"key: expected an A2U encoder tensor name, got {key!r}")
    param = m["param"]
    tv = fmt == "torchvision"
    if m["stem"] is not None:
        conv = m["stem"] == "0"
        name = ("conv1" if conv else "bn1") if tv else ("mod1.conv1" if conv else "mod1.bn1")
        return (f"{name}.{param}",), "trimap" if conv and trimap else "copy"
    if m["stage"] is not None:
        # Stage 1's blocks are ResNet's layer1.0..; stages 2 and 3 start with the *_first block.
        stage, block = int(m["stage"]), int(m["block"]) + (0 if m["stage"] == "1" else 1)
        n = int(m["conv"]) + 1
        part = f"conv{n}" if m["layer"] == "0" else f"bn{n}"
        name = f"layer{stage}.{block}.{part}" if tv else f"mod{stage + 1}.block{block + 1}.convs.{part}"
    else:
        stage, part, layer = int(m["first"]), m["part"], m["first_layer"]
        if part == "shortcut":
            abn = f"mod{stage + 1}.block1.proj_{('conv', 'bn')[int(layer)]}"
            name = f"layer{stage}.0.downsample.{layer}" if tv else abn
        else:
            n = part[-1]
            sub = f"conv{n}" if layer == "0" else f"bn{n}"
            name = f"layer{stage}.0.{sub}" if tv else f"mod{stage + 1}.block1.convs.{sub}"
    return (f"{name}.{param}",), "copy"


def _resnet_depths(model: A2UMatting) -> tuple[int, int, int]:
    return len(model.stage1), len(model.stage2) + 1, len(model.stage3) + 1


def _dropped_rules(model: nn.Module, fmt: str) -> Callable[[str], bool]:
    """Whether a file key of format ``fmt`` is one the format knowingly leaves out of ``model``."""
    heads = {
        "segformer": ("head.",),
        "mmseg": ("decode_head.", "auxiliary_head."),
        "huggingface": ("classifier.", "decode_head."),
        "torchvision": ("fc.", "layer4."),
        "inplace_abn": ("classifier.", "mod5."),
        "fade": (),
    }[fmt]
    block = {
        "torchvision": re.compile(r"layer([123])\.(\d+)\."),
        "inplace_abn": re.compile(r"mod([234])\.block(\d+)\."),
    }

    def dropped(key: str) -> bool:
        if key.startswith(heads):
            return True
        if fmt in block and (m := block[fmt].match(key)):
            stage, index = int(m[1]), int(m[2])
            if fmt == "inplace_abn":
                stage, index = stage - 1, index - 1
            return index >= _resnet_depths(model)[stage - 1]
        return False

    return dropped


# --- formats -------------------------------------------------------------------------------------

# A key every file of the format has (with the model's first block), to detect the format by.
_SIGNATURES = {
    "segformer": "patch_embed1.proj.weight",
    "mmseg": "layers.0.0.projection.weight",
    "huggingface": "encoder.patch_embeddings.0.proj.weight",
    "torchvision": "layer1.0.conv1.weight",
    "inplace_abn": "mod2.block1.convs.conv1.weight",
}
_MODEL_FORMATS = {SegFormer: _MIT_FORMATS, A2UMatting: ("torchvision", "inplace_abn")}


def conversion_links(model: nn.Module, fmt: str) -> list[Link]:
    """The links from a file of format ``fmt`` to ``model``'s encoder tensors, in state-dict order.

    ``fade``: every tensor of the model, copied by its own name.
    """
    state = model.state_dict()
    if fmt == "fade":
        return [Link((k,), (k,), "copy", optional=True) for k in state]
    kinds = [kind for kind, formats in _MODEL_FORMATS.items() if isinstance(model, kind) and fmt in formats]
    if not kinds:
        raise ValueError(
            f"format: expected one of {', '.join(_formats_of(model))} for a {type(model).__name__}, got {fmt!r}"
        )
    if kinds[0] is SegFormer:
        names = {k: _mit_names(k, fmt) for k in state if k.startswith("encoder.")}
    else:
        trimap = model.in_channels == 4
        prefixes = ("stem.", "stage1.", "stage2_first.", "stage2.", "stage3_first.", "stage3.")
        names = {k: _resnet_names(k, fmt, trimap) for k in state if k.startswith(prefixes)}
    links: list[Link] = []
    by_theirs: dict[tuple[str, ...], int] = {}
    for ours, (theirs, rule) in names.items():
        if theirs in by_theirs:  # split: several of ours from one file tensor
            i = by_theirs[theirs]
            links[i] = Link(links[i].ours + (ours,), theirs, rule)
            continue
        by_theirs[theirs] = len(links)
        links.append(Link((ours,), theirs, rule, optional=ours.endswith("num_batches_tracked")))
    return links


def _formats_of(model: nn.Module) -> tuple[str, ...]:
    for kind, formats in _MODEL_FORMATS.items():
        if isinstance(model, kind):
            return (*formats, "fade")
    return ("fade",)


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file (Hugging Face's format: an 8-byte little-endian header
    length, a JSON header of name -> dtype, shape, data_offsets, then the little-endian data),
    read with torch alone."""
    raw = Path(path).read_bytes()

    def bad(why: str) -> ValueError:
        return ValueError(f"init: expected a .safetensors file, got {os.fspath(path)!r}, which is not one ({why})")

    size = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else -1
    if not 0 < size <= len(raw) - 8:
        raise bad("no valid header length")
    try:
        header = json.loads(raw[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data, state = memoryview(raw)[8 + size :], {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
            shape = [int(side) for side in entry["shape"]]
            begin, end = (int(offset) for offset in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            dtypes = ", ".join(_SAFETENSORS_DTYPES)
            raise bad(f"tensor {name!r} has no readable dtype ({dtypes}), shape and offsets") from None
        count = math.prod(shape)
        nbytes = count * torch.empty((), dtype=dtype).element_size()
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= len(data) or end - begin != nbytes:
            raise bad(f"tensor {name!r}: bytes {begin}..{end} of {len(data)} for shape {shape} of {entry['dtype']}")
        buffer = bytearray(data[begin:end])
        state[name] = torch.frombuffer(buffer, dtype=dtype).reshape(shape) if count else torch.empty(shape, dtype=dtype)
    return state


def read_state_dict(source: str | os.PathLike | Mapping) -> dict[str, Tensor]:
    """The state dict in ``source`` (a torch or ``.safetensors`` file, or a mapping), unwrapped from
    ``state_dict`` / ``model`` entries, ``module.`` stripped."""
    where = ""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            exists = os.path.exists(path)
            what = "is a folder" if os.path.isdir(path) else "is not a regular file" if exists else "does not exist"
            raise ValueError(f"init: expected a weights file, got {path!r}, which {what}")
        source = read_safetensors(path) if path.endswith(".safetensors") else _read_torch_file(path)
        where = f" in {path!r}"
    while isinstance(source, Mapping) and not _is_state_dict(source):
        inner = next((source[k] for k in ("state_dict", "model") if isinstance(source.get(k), Mapping)), None)
        if inner is None:
            break
        source = inner
    if not isinstance(source, Mapping) or not _is_state_dict(source):
        kind = type(source).__name__
        raise ValueError(f"init: expected a state dict (names -> tensors){where}, got a {kind} without one")
    state = dict(source)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _read_torch_file(path: str) -> object:
    """``torch.load`` of ``path`` on the CPU without running pickled code; ValueError if it fails.

    A checksummed file fade wrote (a run's model.pt or checkpoint.pt) is verified, then loaded.
    """
    source = path
    if is_checked_file(path):
        source = io.BytesIO(read_checked_bytes(path, "it cannot be used as --init weights"))
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with code, a truncated or foreign file: all the user's to fix
        raise ValueError(f"init: expected a torch weights file, could not read {path!r}: {_load_failure(error)}") from None


def _load_failure(error: Exception) -> str:
    """The gist of a failed ``torch.load``: for a pickle holding more than weights, the object it names
    (torch's own text is several paragraphs about unsafe loading); otherwise the first line."""
    text = str(error)
    named = re.search(r"WeightsUnpickler error: Unsupported global: GLOBAL (\S+)", text)
    if named is not None:
        return f"it holds a pickled object that is not a tensor ({named.group(1)})"
    reason = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    if reason is not None:
        return reason.group(1).split(". ")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _is_state_dict(mapping: Mapping) -> bool:
    return bool(mapping) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in mapping.items())


def detect_format(state: Mapping[str, Tensor], model: nn.Module) -> tuple[str, str]:
    """(format, prefix) of ``state`` for ``model``: the first format whose signature key occurs,
    with whatever prefix it carries (``backbone.``, ``segformer.``); ``fade`` when the keys are the
    model's own."""
    own = model.state_dict()
    if any(k in own for k in state):
        return "fade", ""
    for fmt, signature in _SIGNATURES.items():
        for key in state:
            if key.endswith(signature) and (key == signature or key[: -len(signature)].endswith(".")):
                if fmt not in _formats_of(model):
                    raise ValueError(
                        f"init: the file holds {fmt}-format weights ({key}), which do not fit a "
                        f"{type(model).__name__} (expected {', '.join(_formats_of(model))})"
                    )
                return fmt, key[: -len(signature)]
    sample = ", ".join(list(state)[:3])
    raise ValueError(
        f"init: expected weights in one of the formats {', '.join(_formats_of(model))} for a "
        f"{type(model).__name__}, got keys like {sample}"
    )


def _convert(link: Link, tensors: list[Tensor], targets: list[Tensor]) -> list[Tensor]:
    """The model tensors of ``link`` from its file ``tensors`` (``targets``: the model's, for shapes)."""
    if link.rule == "copy":
        return tensors
    if link.rule == "concat":
        return [torch.cat(tensors, dim=0)]
    if link.rule == "split":
        sizes = [t.shape[0] for t in targets]
        if tensors[0].shape[0] != sum(sizes):
            return tensors
        return list(torch.split(tensors[0], sizes, dim=0))
    if link.rule == "linear":
        (weight,) = tensors
        return [weight.flatten(1)] if weight.dim() == 4 and weight.shape[2:] == (1, 1) else tensors
    (weight,) = tensors
    if weight.dim() != 4 or weight.shape[1] + 1 != targets[0].shape[1]:
        return tensors
    return [torch.cat([weight, weight.new_zeros(weight.shape[0], 1, *weight.shape[2:])], dim=1)]


def _listing(items: list[str], what: str) -> str:
    shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
    return f"{len(items)} {what} ({shown})"


def load_pretrained(model: nn.Module, source: str | os.PathLike | Mapping) -> LoadReport:
    """Load the weights in ``source`` (a file or a state dict) into ``model``'s encoder, in place.

    Args:
        model: a :class:`~fade.models.SegFormer` (MiT formats), an
            :class:`~fade.models.A2UMatting` (ResNet formats) or any model (``fade`` format).
        source: a path or a mapping; see the module docstring for the formats.

    Returns:
        a :class:`LoadReport`.

    Raises:
        TypeError: ``model`` is not a module.
        ValueError: an unreadable file, an unknown format, a missing, unexpected, misshapen or
            non-finite tensor (the first few named, with the counts); the model is then unchanged.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    state = read_state_dict(source)
    fmt, prefix = detect_format(state, model)
    state = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
    own = model.state_dict()
    links = conversion_links(model, fmt)
    dropped_rule = _dropped_rules(model, fmt)
    used = {name for link in links for name in link.theirs}
    unexpected = [k for k in state if k not in used and not dropped_rule(k)]
    if fmt == "fade":
        unexpected = [k for k in state if k not in own]
    dropped = [k for k in state if k not in used and k not in unexpected]
    missing, mismatched, updates = [], [], {}
    for link in links:
        absent = [k for k in link.theirs if k not in state]
        if absent:
            if not link.optional:
                missing.extend(absent)
            continue
        targets = [own[k] for k in link.ours]
        values = _convert(link, [state[k] for k in link.theirs], targets)
        shapes_ok = len(values) == len(targets) and all(v.shape == t.shape for v, t in zip(values, targets))
        if not shapes_ok:
            got = " + ".join(f"{k} {tuple(state[k].shape)}" for k in link.theirs)
            want = " + ".join(f"{k} {tuple(t.shape)}" for k, t in zip(link.ours, targets))
            mismatched.append(f"{got} for {want}")
            continue
        updates.update(zip(link.ours, values))
    if missing or unexpected or mismatched:
        problems = [
            _listing(items, what)
            for items, what in ((missing, "missing"), (unexpected, "unexpected"), (mismatched, "of the wrong shape"))
            if items
        ]
        raise ValueError(
            f"init: the {fmt}-format weights do not fit this {type(model).__name__}: " + "; ".join(problems)
        )
    broken = [name for name, value in updates.items() if value.is_floating_point() and not value.isfinite().all()]
    if broken:
        raise ValueError(f"init: expected finite weights, got NaN or infinity in {_listing(broken, 'tensors')}")
    with torch.no_grad():
        for name, value in updates.items():
            own[name].copy_(value)
    return LoadReport(fmt, len(updates), len(dropped), len(own) - len(updates))
