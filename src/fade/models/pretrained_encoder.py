"""A pretrained encoder for the CPU segmentation presets, built once, cached and checksummed.

The paper fine-tunes SegFormer from an ImageNet-pretrained MiT encoder that every upsampler
shares. No such weights install here for the tiny SegFormer, so this module makes the analogue
once: the encoder of ``SegFormer.tiny`` is pretrained on dense labelling of
:class:`fade.data.shapes.ShapeSegmentation` images (6 labels; samples of its own seed, never the
presets' training or test samples) through a 1x1 classifier on each of its four stages whose
logits are resized bilinearly and summed; the classifiers are then dropped, and every upsampler's
head starts from the same encoder. (A classification pretraining, "which shape is in the image",
stayed at chance within a minute of CPU time on this tiny encoder.)

The result is a pure function of :data:`RECIPES` (same machine and thread count: bit-identical;
the pretraining runs single-threaded under its own random generator, so building it inside a run
does not change that run's random stream). It is written to
``$FADE_CACHE_DIR/pretrained/segformer_tiny-<name>-<recipe hash>.pt`` (default ``~/.cache/fade``)
with the SHA-256 of its content, verified at every load, and a JSON record beside it (recipe,
accuracy, time, machine, the command that rebuilds it). A missing file is built on first use.

Model ``segformer_tiny_pretrained`` (``create_model``) is ``SegFormer.tiny`` with that encoder loaded.
Rebuild or inspect: ``python -m fade.models.pretrain [--name shapes] [--force]``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..io import read_checked_bytes, read_checked_json, write_checked_bytes, write_checked_json
from .registry import register_model
from .segformer import SegFormer

__all__ = ["RECIPES", "artifact_paths", "load_pretrained_encoder", "pretrain_encoder"]

CACHE_ENV = "FADE_CACHE_DIR"
RECIPES: dict[str, dict] = {
    "shapes": {
        "task": "dense 6-label ShapeSegmentation (its defaults) through a 1x1 classifier per encoder stage",
        "size": (64, 64),
        "data_seed": 1000,
        "train_length": 6000,
        "test_length": 400,
        "steps": 3000,
        "batch_size": 16,
        "lr": 3e-3,
        "weight_decay": 0.01,
        "seed": 0,
    },
}
"""Per name: how its encoder is pretrained (AdamW, cosine schedule, per-pixel cross-entropy)."""
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _recipe(name: str) -> dict:
    if name not in RECIPES:
        raise ValueError(f"encoder_weights: expected one of {', '.join(RECIPES)}, got {name!r}")
    return RECIPES[name]


def artifact_paths(name: str, cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(weights, record) paths of pretrained encoder ``name``; the file name holds a hash of its recipe."""
    recipe = json.dumps(_recipe(name), sort_keys=True).encode()
    folder = Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fade") / "pretrained"
    stem = f"segformer_tiny-{name}-{hashlib.sha256(recipe).hexdigest()[:12]}"
    return folder / f"{stem}.pt", folder / f"{stem}.json"


class _DenseProbe(nn.Module):
    """Encoder + a 1x1 classifier on each stage, logits resized bilinearly to the input and summed:
    (B, 3, H, W) -> (B, K, H, W)."""

    def __init__(self, encoder: nn.Module, classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifiers = nn.ModuleList(nn.Conv2d(c, classes, 1) for c in encoder.embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        return sum(
            F.interpolate(head(f), size=x.shape[-2:], mode="bilinear", align_corners=False)
            for head, f in zip(self.classifiers, self.encoder(x))
        )


def _dataset(recipe: dict, split: str, length: int) -> tuple[Tensor, Tensor]:
    """Images (N, 3, H, W) and labels (N, H, W) of the recipe's ShapeSegmentation samples."""
    from ..data.shapes import ShapeSegmentation

    data = ShapeSegmentation(split, size=tuple(recipe["size"]), seed=recipe["data_seed"], length=length)
    samples = [data[i] for i in range(length)]
    return torch.stack([s["image"] for s in samples]), torch.stack([s["label"] for s in samples])


def pretrain_encoder(name: str = "shapes", log: Log | None = None) -> tuple[dict[str, Tensor], dict]:
    """Pretrain encoder ``name`` by its recipe on one thread; returns (encoder state_dict, record)."""
    from ..data.shapes import shape_classes
    from ..metrics import SegmentationMeter

    recipe, log = _recipe(name), log or (lambda message: None)
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    classes = len(shape_classes(binary=False))
    try:
        with torch.random.fork_rng():
            torch.manual_seed(recipe["seed"])
            images, labels = _dataset(recipe, "train", recipe["train_length"])
            test_images, test_labels = _dataset(recipe, "test", recipe["test_length"])
            model = _DenseProbe(SegFormer.tiny("bilinear", num_classes=1).encoder, classes)
            optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
            steps, batch = recipe["steps"], recipe["batch_size"]
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
            generator = torch.Generator().manual_seed(recipe["seed"])
            epochs = steps * batch // len(labels) + 1
            order = torch.cat([torch.randperm(len(labels), generator=generator) for _ in range(epochs)])
            model.train()
            for step in range(steps):
                pick = order[step * batch : (step + 1) * batch]
                loss = F.cross_entropy(model(images[pick]), labels[pick])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                if (step + 1) % 200 == 0:
                    log(f"pretraining encoder {name!r}: step {step + 1}/{steps}, loss {loss.item():.3f}")
            model.eval()
            meter = SegmentationMeter(classes)
            with torch.no_grad():
                for chunk, target in zip(test_images.split(100), test_labels.split(100)):
                    meter.update(model(chunk).argmax(1), target)
            summary = meter.compute()
    finally:
        torch.set_num_threads(threads)
    record = {
        "name": name,
        "recipe": recipe,
        "probe_test_miou": float(summary["miou"]),
        "probe_test_pixel_accuracy": float(summary["pixel_accuracy"]),
        "seconds": time.perf_counter() - started,
        "torch": torch.__version__,
        "command": f"python -m fade.models.pretrain --name {name} --force",
    }
    return model.encoder.state_dict(), record


def load_pretrained_encoder(
    name: str = "shapes", cache_dir: str | os.PathLike | None = None, log: Log | None = None
) -> tuple[dict[str, Tensor], dict]:
    """Encoder ``name`` from the cache, built there first when missing; returns (state_dict, record).

    Raises:
        fade.io.CorruptFileError: the cached file does not match its checksum (delete it to rebuild).
    """
    weights, record_path = artifact_paths(name, cache_dir)
    if not weights.exists() or not record_path.exists():
        message = f"fade: pretraining the shared encoder {name!r} once (one to two minutes), caching it in {weights}"
        (log or _stderr)(message)
        state, record = pretrain_encoder(name, log or _stderr)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        weights.parent.mkdir(parents=True, exist_ok=True)
        write_checked_bytes(weights, buffer.getvalue())
        record["weights_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
        write_checked_json(record_path, record)
    advice = f"delete it to rebuild: python -m fade.models.pretrain --name {name} --force"
    payload = read_checked_bytes(weights, advice)
    record = read_checked_json(record_path, advice)
    state = torch.load(io.BytesIO(payload), weights_only=True)
    record["weights_sha256"] = hashlib.sha256(payload).hexdigest()
    return state, record


@register_model("segformer_tiny_pretrained")
def _segformer_tiny_pretrained(upsampler: str = "fade", encoder_weights: str = "shapes", **options) -> SegFormer:
    """:meth:`SegFormer.tiny` with the encoder pretrained by recipe ``encoder_weights`` (cached); its
    record is the model's ``pretrained_encoder`` attribute. On the meta device (shapes only, e.g.
    to count parameters) nothing is loaded."""
    _recipe(encoder_weights)
    model = SegFormer.tiny(upsampler, **options)
    if torch.device(options.get("device") or "cpu").type != "meta":
        state, record = load_pretrained_encoder(encoder_weights)
        model.encoder.load_state_dict(state)
        model.pretrained_encoder = record
    return model
