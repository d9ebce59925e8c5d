"""``fade visualize RUN_DIR``: what a trained network's upsamplers do, as PNGs (the paper's Figs. 6, 8, 9).

A run folder (``fade train``, or a ``fade compare`` run) holds ``results.json`` (the run's preset and
upsampler) and its weights: ``model.pt`` (kept by ``fade compare`` for every upsampler's first seed)
or ``checkpoint.pt``. :func:`visualize` rebuilds the network, runs the first test samples through it
and records every upsampler on the way with forward hooks (:func:`inspect_upsamplers`). Per sample
it writes, under ``OUT`` (default ``RUN_DIR/visualize``):

- ``sample<i>_features.png``: the input, then per upsampling stage the low-resolution feature ``de``
  and the upsampled output, both projected on the output's first three principal components (RGB,
  one colour scale per stage, so the two are comparable);
- ``sample<i>_gates.png`` (gated upsamplers: FADE, FADE-Lite, CARAFE + gate, NN + gate): the gate
  map G of every stage, 1 = the encoder feature is taken, 0 = the reassembled decoder feature;
- ``sample<i>_kernels.png`` (kernel upsamplers: FADE, CARAFE, ...): per stage the entropy of the
  K x K reassembly kernel at every output pixel (0 = one-hot, log K^2 = uniform), and the kernels of
  a central 8 x 8 crop laid out side by side (each K x K block is one pixel's kernel).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn

from ..cli import folder_path
from ..io import atomic_write, check_writable_folder, read_checked_json
from ..ops.resize import nearest_upsample
from ..upsamplers.base import Upsampler
from ..upsamplers.fade import KernelUpsampler
from .checkpoint import load_checkpoint
from .compare import MODEL
from .data import create_data
from .presets import Preset
from .tasks import create_task
from .trainer import CHECKPOINT, RESULTS, build_model, resolve_device

__all__ = ["Stage", "configure_visualize", "inspect_upsamplers", "load_run", "visualize"]

CROP = 8
"""Side of the crop whose kernels are drawn."""
_RESULTS_ADVICE = "it is needed to rebuild the run's network: train the run again"


@dataclass
class Stage:
    """One upsampler call: its module path, inputs, output, and (where it has them) kernels and gate.

    Shapes: en (B, C_en, H_en, W_en), de (B, C_de, H, W), out (B, C_de, H_en, W_en), kernels
    (B, K*K, H_en, W_en) summing to 1 over K*K, gate (B, 1, H_en, W_en) in [0, 1].
    """

    name: str
    en: Tensor
    de: Tensor
    out: Tensor
    kernels: Tensor | None = None
    gate: Tensor | None = None


def _upsampler_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost upsampler modules of ``model`` (:class:`Upsampler` or :class:`KernelUpsampler`), by path."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        inside = any(name.startswith(parent + ".") for parent, _ in found)
        if isinstance(module, (Upsampler, KernelUpsampler)) and not inside:
            found.append((name, module))
    return found


def _details(module: nn.Module, en: Tensor, de: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """(kernels, gate) of a :class:`KernelUpsampler` call, as its forward computes them; (None, None) otherwise."""
    if not isinstance(module, KernelUpsampler):
        return None, None
    kernels = module.kernels(en, de) if module.kernel_generator is not None else None
    gate = None
    if module.gate is not None:
        gate = nearest_upsample(torch.sigmoid(module.gate(de)), en.shape[-2:], module.scale)
    return kernels, gate


@torch.no_grad()
def inspect_upsamplers(model: nn.Module, x: Tensor) -> tuple[Tensor, list[Stage]]:
    """Run ``model(x)`` and record every upsampler call, in call order.

    Returns:
        (the model's output, one :class:`Stage` per upsampler call).
    """
    stages: list[Stage] = []
    modules = _upsampler_modules(model)
    if not modules:
        raise ValueError(f"model: expected upsampler modules to inspect, got none in {type(model).__name__}")

    def hook(name: str):
        def record(module: nn.Module, args: tuple, out: Tensor) -> None:
            en, de = args[0], args[1]
            kernels, gate = _details(module, en, de)
            stages.append(Stage(name, en, de, out, kernels, gate))

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in modules]
    try:
        output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return output, stages


def kernel_entropy(kernels: Tensor) -> Tensor:
    """-sum_k p_k log p_k over the K*K kernel weights: (B, K*K, H, W) -> (B, H, W), in nats."""
    return -(kernels * kernels.clamp_min(1e-30).log()).sum(dim=1)


def kernel_mosaic(kernels: Tensor, top: int, left: int, size: int) -> Tensor:
    """The kernels of a ``size`` x ``size`` crop side by side: (K*K, H, W) -> (size*K, size*K)."""
    k = math.isqrt(kernels.shape[0])
    crop = kernels[:, top : top + size, left : left + size]
    rows, cols = crop.shape[1:]
    return crop.reshape(k, k, rows, cols).permute(2, 0, 3, 1).reshape(rows * k, cols * k)


def _principal_rgb(feature: Tensor, *others: Tensor) -> list[Tensor]:
    """``feature`` (C, H, W) and ``others`` (C, h, w) projected on ``feature``'s first three principal
    components, each scaled to [0, 1] by ``feature``'s range (others clipped): (3, ., .) images."""
    channels = feature.shape[0]
    flat = feature.reshape(channels, -1).double()
    mean = flat.mean(dim=1, keepdim=True)
    basis = torch.linalg.svd(flat - mean, full_matrices=False).U[:, :3]
    projected = [basis.T @ (a.reshape(channels, -1).double() - mean) for a in (feature, *others)]
    low, high = projected[0].min(dim=1, keepdim=True).values, projected[0].max(dim=1, keepdim=True).values
    images = []
    for p, a in zip(projected, (feature, *others)):
        scaled = ((p - low) / (high - low).clamp_min(1e-12)).clamp(0.0, 1.0)
        rgb = torch.zeros(3, scaled.shape[1], dtype=torch.float64)
        rgb[: scaled.shape[0]] = scaled
        images.append(rgb.reshape(3, *a.shape[-2:]))
    return images


def _preset(data: dict, path: Path) -> Preset:
    """The preset recorded in a run's results.json."""
    known = {f.name for f in fields(Preset)}
    if not isinstance(data, dict) or set(data) - known:
        extra = sorted(set(data) - known) if isinstance(data, dict) else data
        raise ValueError(f"{path}: expected a preset of this fade version, got unknown fields {extra}")
    values = dict(data)
    try:
        for name in ("size", "betas", "no_decay", "milestones"):
            values[name] = tuple(values[name])
        values["lr_mult"] = tuple(tuple(pair) for pair in values["lr_mult"])
        return Preset(**values)
    except (KeyError, TypeError, ValueError) as error:  # a missing field, or one of the wrong type or value
        problem = f"expected a preset of this fade version, got one it cannot rebuild ({error!r})"
        raise ValueError(f"{path}: {problem}") from None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Preset, str, nn.Module]:
    """The preset, the upsampler name and the trained network (eval mode) of a run folder.

    Raises:
        FileNotFoundError: no results.json, or neither model.pt nor checkpoint.pt.
        ValueError: the files do not belong together or are not this version's.
    """
    run = Path(run_dir)
    if not (run / RESULTS).is_file():
        raise FileNotFoundError(f"run_dir: expected a run folder with {RESULTS}, got {run} (a finished fade train run)")
    config = read_checked_json(run / RESULTS, _RESULTS_ADVICE).get("config")
    if not isinstance(config, dict) or "preset" not in config or "upsampler" not in config:
        raise ValueError(f"{run / RESULTS}: expected a run's config with its preset and upsampler, got none")
    preset, upsampler = _preset(config["preset"], run / RESULTS), config["upsampler"]
    weights = next((run / name for name in (MODEL, CHECKPOINT) if (run / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(
            f"run_dir: expected the run's weights ({MODEL} or {CHECKPOINT}) in {run}, got neither "
            f"(fade compare keeps {MODEL} for every upsampler's first seed)"
        )
    device = resolve_device(device)
    model = build_model(preset, upsampler).to(device)
    fallback = weights.name == MODEL and (run / CHECKPOINT).is_file()
    advice = f"{f'delete it to draw from {CHECKPOINT} instead, or ' if fallback else ''}train the run again to draw it"
    state = load_checkpoint(weights, device, advice)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as error:
        problem = f"expected the weights of {upsampler} in {preset.model}, got others ({error})"
        raise ValueError(f"{weights}: {problem}") from None
    return preset, upsampler, model.eval()


def _display(image: Tensor) -> Tensor:
    """The first three channels (or the one) of a model input, min-max scaled to [0, 1]: (H, W, 3) or (H, W)."""
    shown = image[:3] if image.shape[0] >= 3 else image[:1]
    shown = (shown - shown.min()) / (shown.max() - shown.min()).clamp_min(1e-12)
    return shown.permute(1, 2, 0) if shown.shape[0] == 3 else shown[0]


def _finish(fig, title: str, path: Path) -> Path:
    """Give ``fig`` its title, lay it out, write it to ``path`` as PNG and close it; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def _hide_ticks(axes) -> None:
    """No ticks on any of ``axes``: the panels are images."""
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


def _figures(image: Tensor, stages: list[Stage], index: int, title: str, out: Path) -> list[Path]:
    """The PNGs of one sample (index ``index`` in the batch of ``stages``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    paths = []
    fig, axes = plt.subplots(len(stages) + 1, 2, figsize=(5.0, 2.4 * (len(stages) + 1)), squeeze=False)
    axes[0][0].imshow(_display(image).numpy(), cmap="gray")
    axes[0][0].set_title("input (min-max scaled)", fontsize=7)
    axes[0][1].axis("off")
    for row, stage in zip(axes[1:], stages):
        out_rgb, de_rgb = _principal_rgb(stage.out[index].float(), stage.de[index].float())
        for ax, rgb, what, tensor in ((row[0], de_rgb, "de", stage.de), (row[1], out_rgb, "upsampled", stage.out)):
            ax.imshow(rgb.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(f"{stage.name}: {what} {tuple(tensor.shape[-2:])}", fontsize=6)
    _hide_ticks(axes.flat)
    features = f"{title}: features (3 principal components of the output, as RGB)"
    paths.append(_finish(fig, features, out / f"sample{index}_features.png"))

    gated = [s for s in stages if s.gate is not None]
    if gated:
        fig, axes = plt.subplots(1, len(gated), figsize=(2.6 * len(gated), 2.6), squeeze=False)
        for ax, stage in zip(axes[0], gated):
            gate = stage.gate[index, 0]
            shown = ax.imshow(gate.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"{stage.name} {tuple(gate.shape)}\nmean G {gate.mean():.3f}", fontsize=6)
            _hide_ticks([ax])
            fig.colorbar(shown, ax=ax, fraction=0.046)
        gates = f"{title}: gate G (1 = encoder feature, 0 = reassembled decoder feature)"
        paths.append(_finish(fig, gates, out / f"sample{index}_gates.png"))

    kernelled = [s for s in stages if s.kernels is not None]
    if kernelled:
        fig, axes = plt.subplots(len(kernelled), 2, figsize=(5.4, 2.6 * len(kernelled)), squeeze=False)
        for row, stage in zip(axes, kernelled):
            kernels = stage.kernels[index]
            entropy = kernel_entropy(kernels[None])[0]
            height, width = entropy.shape
            size = min(CROP, height, width)
            top, left = (height - size) // 2, (width - size) // 2
            uniform = math.log(kernels.shape[0])
            shown = row[0].imshow(entropy.numpy(), cmap="magma", vmin=0.0, vmax=uniform)
            row[0].add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec="cyan"))
            heading = f"{stage.name}: kernel entropy (nats)\nmean {entropy.mean():.3f} of max {uniform:.3f}"
            row[0].set_title(heading, fontsize=6)
            fig.colorbar(shown, ax=row[0], fraction=0.046)
            k = math.isqrt(kernels.shape[0])
            tiles = kernel_mosaic(kernels, top, left, size).numpy()
            drawn = row[1].imshow(tiles, cmap="viridis", interpolation="nearest")
            for line in range(1, size):
                row[1].axhline(line * k - 0.5, color="white", linewidth=0.3)
                row[1].axvline(line * k - 0.5, color="white", linewidth=0.3)
            row[1].set_title(f"{k}x{k} kernels of the boxed {size}x{size} pixels", fontsize=6)
            fig.colorbar(drawn, ax=row[1], fraction=0.046)
            _hide_ticks(row)
        paths.append(_finish(fig, f"{title}: reassembly kernels", out / f"sample{index}_kernels.png"))
    return paths


def visualize(
    run_dir: str | Path, out_dir: str | Path | None = None, samples: int = 2, device: str | torch.device = "cpu"
) -> list[Path]:
    """Write the PNGs of the module docstring for the first ``samples`` test samples of a run.

    Returns:
        The paths written.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 64:
        raise ValueError(f"samples: expected an integer in 1..64, got {samples!r}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("fade visualize needs matplotlib: pip install 'fade[plot]'") from None
    preset, upsampler, model = load_run(run_dir, device)
    out = check_writable_folder(Path(run_dir) / "visualize" if out_dir is None else Path(out_dir), name="out")
    count = min(samples, preset.test_length or samples)
    test = create_data(preset.data, "test", preset.size, count, **preset.data_options)
    key = create_task(preset.task, **preset.task_options).keys[0]
    device = next(model.parameters()).device
    x = torch.stack([test[i][key] for i in range(count)]).to(device)
    _, stages = inspect_upsamplers(model, x)
    stages = [
        Stage(s.name, *(None if t is None else t.float().cpu() for t in (s.en, s.de, s.out, s.kernels, s.gate)))
        for s in stages
    ]
    title = f"{preset.task}/{preset.name} {upsampler}, test sample"
    paths = []
    for index in range(count):
        paths += _figures(x[index].float().cpu(), stages, index, f"{title} {index}", out)
    return paths


def visualize_command(args: argparse.Namespace) -> int:
    """``fade visualize``: prints the paths of the PNGs written."""
    for path in visualize(args.run_dir, args.out, args.samples, args.device):
        print(path)
    return 0


def configure_visualize(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fade visualize`` to the ``fade`` command's subparsers."""
    p = subparsers.add_parser(
        "visualize",
        help="gate maps, kernel maps and entropy, upsampled features of a trained run, as PNGs",
        description="Rebuild the network of RUN_DIR (a fade train run, or runs/UPSAMPLER/seedK of a fade compare, "
        "which keeps model.pt for every upsampler's first seed), run its first test samples and write per sample: "
        "the features before and after every upsampler, the gate maps (gated upsamplers) and the reassembly "
        "kernels with their entropy (kernel upsamplers). Needs matplotlib.",
    )
    p.add_argument("run_dir", help="the run folder (results.json and model.pt or checkpoint.pt)")
    p.add_argument("--out", type=folder_path, help="output folder (default RUN_DIR/visualize)")
    p.add_argument("--samples", type=int, default=2, help="test samples to draw, 1..64 (default 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.set_defaults(func=visualize_command)
