"""One training run: a preset, an upsampler and a seed, checkpointed, resumable, evaluated.

A run lives in its own folder: ``checkpoint.pt`` (the latest, written every ``checkpoint_every``
steps and when the run stops) and, once trained and evaluated, ``results.json``. Calling
:func:`train` on a folder that holds a checkpoint of the same run resumes from it; on a folder that
holds its results it returns them without training. Resuming gives bit-identical weights to an
uninterrupted run on the same machine and thread count: the checkpoint holds the model, the
optimiser, the random generators, the step and the loss log; the learning rate and the batches are
functions of the step.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..bench.sweeps import machine_info
from ..io import CorruptFileError, lock_folder, read_checked_json, write_checked_json
from ..models import create_model
from ..models.pretrained import load_pretrained, read_state_dict
from ..upsamplers import list_upsamplers
from .checkpoint import CHECKPOINT_ADVICE, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import CachedDataset, StepBatchSampler, create_data
from .distributed import (
    Processes,
    ShardedBatches,
    autocast,
    broadcast_from_main,
    check_amp,
    convert_batchnorm,
    current_processes,
    gather_objects,
    grad_scaler,
    mean_over_processes,
)
from .optim import build_optimizer, set_learning_rate
from .presets import Preset
from .record import data_record, describe_data
from .tasks import Task, create_task

__all__ = [
    "ACTIVATIONS",
    "CHECKPOINT",
    "RESULTS",
    "build_data",
    "build_model",
    "check_upsampler",
    "resolve_device",
    "run_config",
    "train",
]

CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"
Log = Callable[[str], None]


SEED_MAX = 2**32 - 1
"""The largest seed (the batch order seeds generators with ``seed * 1_000_003 + epoch``, which must fit 64 bits)."""
THREADS_MAX = 1024
"""The most torch intra-op threads a run accepts (far more than cores only slows it; 10^7 crashes torch)."""
RESULTS_ADVICE = "delete it and run again (the run is evaluated again from its checkpoint, or retrained without one)"


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}: expected an integer {span}, got {value!r}")
    return value


def check_upsampler(name: str) -> str:
    """``name`` if it is a registered upsampler, else ValueError listing them."""
    if name not in list_upsamplers():
        raise ValueError(f"upsampler: expected one of {', '.join(list_upsamplers())}, got {name!r}")
    return name


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device; ValueError for a CUDA device this machine does not have."""
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device: expected cpu, cuda or cuda:N, got {device!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: expected an available device, got {str(device)!r} (no CUDA device here)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device: expected an available device (cuda:0 to cuda:{count - 1}), got {str(device)!r}")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected cpu, cuda or cuda:N, got {str(device)!r}")
    return device


def check_run_arguments(preset: object, out_dir: object) -> None:
    """TypeError unless ``preset`` is a :class:`Preset` and ``out_dir`` a path (str or os.PathLike)."""
    if not isinstance(preset, Preset):
        raise TypeError(f"preset: expected a fade.train.Preset (get_preset(task, name)), got {type(preset).__name__}")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a folder path (str or os.PathLike), got {type(out_dir).__name__}")


def run_config(preset: Preset, upsampler: str, seed: int, init: str | None = None, amp: str | None = None) -> dict:
    """What identifies a run, as plain JSON data (tuples become lists). Of the preset's per-upsampler
    options only ``upsampler``'s own count: options added for other upsamplers leave the run valid."""
    recorded = preset.to_dict()
    own = preset.upsampler_options.get(upsampler)
    recorded["upsampler_options"] = {upsampler: own} if own is not None else {}
    config = {"preset": recorded, "upsampler": upsampler, "seed": seed, "init": init, "amp": amp}
    return json.loads(json.dumps(config))


def _flatten(config: dict) -> dict:
    """A run config with the preset's fields as "preset.<field>" keys."""
    flat = {k: v for k, v in config.items() if k != "preset"}
    flat.update({f"preset.{k}": v for k, v in config.get("preset", {}).items()})
    return flat


def _encoder_identity(model: nn.Module) -> dict | None:
    """Name and weights hash of the pretrained encoder the model started from (None without one).

    The shared encoder is pretrained once per machine, and CPUs with other vector units give other
    weights: this tells which start a run had, beside its config."""
    record = getattr(model, "pretrained_encoder", None)
    if record is None:
        return None
    return {"name": record["name"], "weights_sha256": record["weights_sha256"]}


def _recorded_config(record: object, fields: dict[str, type], where: Path, advice: str) -> dict:
    """The run config in ``record`` (a checksummed results.json or checkpoint read from ``where``),
    after checking it holds ``fields`` of their types; CorruptFileError naming the file otherwise."""
    missing = [k for k, kind in fields.items() if not isinstance(record, dict) or not isinstance(record.get(k), kind)]
    config = record.get("config") if not missing else None
    if isinstance(config, str):  # a checkpoint stores it as JSON text
        try:
            config = json.loads(config)
        except json.JSONDecodeError:
            config = None
    if missing or not isinstance(config, dict) or not isinstance(config.get("preset", {}), dict):
        wanted = ", ".join(f"{k} ({kind.__name__})" for k, kind in fields.items())
        raise CorruptFileError(where, f"expected a fade run record with {wanted} and a config object", advice)
    return config


def _check_same_run(expected: dict, got: dict, where: Path) -> None:
    """ValueError naming the differing settings when ``where`` holds another run."""
    want, have = _flatten(expected), _flatten(got)
    differ = [k for k in sorted({*want, *have}) if want.get(k) != have.get(k)]
    if differ:
        details = "; ".join(f"{k}: expected {want.get(k)!r}, got {have.get(k)!r}" for k in differ)
        raise ValueError(f"{where} belongs to another run ({details}); use another output folder")


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU}
"""Activation names a preset's ``model_options["act_layer"]`` may use."""


def build_model(preset: Preset, upsampler: str, device: str | torch.device | None = None) -> nn.Module:
    """The preset's model with ``upsampler`` (and its options from the preset) on ``device``.

    A string ``act_layer`` in the model options names one of :data:`ACTIVATIONS`.
    """
    options = dict(preset.model_options)
    if isinstance(options.get("act_layer"), str):
        if options["act_layer"] not in ACTIVATIONS:
            raise ValueError(f"act_layer: expected one of {', '.join(ACTIVATIONS)}, got {options['act_layer']!r}")
        options["act_layer"] = ACTIVATIONS[options["act_layer"]]
    if upsampler in preset.upsampler_options:
        options["upsampler_options"] = preset.upsampler_options[upsampler]
    return create_model(preset.model, check_upsampler(upsampler), device=device, **options)


def build_data(preset: Preset, task: Task | None = None) -> tuple[Dataset, Dataset]:
    """The preset's training and test sets (rendered into memory when ``preset.cache``)."""
    task = task or create_task(preset.task, **preset.task_options)
    sets = []
    for split, length in (("train", preset.train_length), ("test", preset.test_length)):
        dataset = create_data(preset.data, split, preset.size, length, **preset.data_options)
        sets.append(CachedDataset(dataset, task.keys) if preset.cache else dataset)
    return sets[0], sets[1]


def _check_sample_size(preset: Preset, model: nn.Module) -> None:
    """ValueError naming the preset's ``size`` when its samples are smaller than ``model.smallest_input``."""
    smallest = getattr(model, "smallest_input", 1)  # models without a least size take any
    if min(preset.size) < smallest:
        height, width = preset.size
        raise ValueError(f"size: expected H, W >= {smallest} for the {preset.model} network, got {height}x{width}")


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def _run_context(device: torch.device, threads: int | None) -> Iterator[None]:
    """Deterministic algorithms, ``threads`` intra-op threads and private random generators, restored after."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    previous_threads = torch.get_num_threads()
    devices = [device] if device.type == "cuda" else []
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        if threads:
            torch.set_num_threads(threads)
        with torch.random.fork_rng(devices=devices, device_type=device.type):
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        torch.set_num_threads(previous_threads)


CURVE_FRACTION = 0.8
"""A run is also evaluated after this fraction of its steps: the last 20 % show whether it has flattened."""


def curve_step(steps: int) -> int:
    """The step after which a run of ``steps`` steps is evaluated early (0: too short to tell)."""
    step = round(CURVE_FRACTION * steps)
    return step if 0 < step < steps else 0


def _evaluate(
    model: nn.Module, task: Task, test_set: Dataset, preset: Preset, device: torch.device, seed: int
) -> dict[str, float]:
    """The task's metrics of ``model`` over ``test_set``, in eval mode and without gradients. The loader
    has its own generator, so evaluating mid-run draws nothing from the one dropout uses."""
    model.eval()
    loader = DataLoader(test_set, batch_size=preset.eval_batch_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return task.evaluate(model, loader, device)


def _train_mode(model: nn.Module, freeze_bn: bool) -> None:
    """``model.train()``, with BatchNorm layers back in eval mode when ``freeze_bn``."""
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _load_init(model: nn.Module, state: dict[str, torch.Tensor], path: str, log: Log) -> None:
    """Load ``state`` (read from ``path``: pretrained encoder weights in a published format, or this
    package's own names) into ``model`` (:func:`fade.models.pretrained.load_pretrained`)."""
    try:
        report = load_pretrained(model, state)
    except ValueError as error:
        raise ValueError(f"{error} (file {path!r})") from None
    log(f"init: {path}: {report}")


def train(
    preset: Preset,
    upsampler: str,
    out_dir: str | Path,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    stop_after: int | None = None,
    data: tuple[Dataset, Dataset] | None = None,
    init: str | None = None,
    threads: int | None = None,
    amp: str | None = None,
    log: Log | None = None,
) -> dict:
    """Train ``preset``'s model with ``upsampler``, evaluate it, write ``out_dir/results.json``.

    Inside a process group (``torchrun``, :func:`fade.train.distributed.distributed_from_env`) every
    rank calls it: the global batch is split over the ranks, rank 0 reads and writes the run's files
    and alone evaluates and returns the results; the other ranks return ``{"status": "trained", ...}``
    once trained (see :mod:`fade.train.distributed`).

    Args:
        preset: the run's settings (:mod:`fade.train.presets`).
        upsampler: any name of :func:`fade.list_upsamplers`.
        out_dir: the run's folder; a checkpoint there is resumed, results there are returned.
        seed: seeds the initialisation, dropout and the batch order (same seed, same batches for
            every upsampler).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        stop_after: stop after this many steps (a checkpoint is written), as an interruption would.
        data: (train, test) datasets to use instead of building the preset's (a comparison
            renders them once for all its runs).
        init: a state dict to load before training (e.g. pretrained encoder weights).
        threads: torch intra-op threads during the run (None: unchanged).
        amp: mixed precision, ``"bf16"`` or ``"fp16"`` (CUDA only); None: float32.
        log: called with progress lines.

    Returns:
        The results dict written to results.json (``status == "complete"``), or, when stopped early,
        ``{"status": "stopped", "step": ..., "config": ...}``.
    """
    log = log or (lambda message: None)
    check_run_arguments(preset, out_dir)
    check_upsampler(upsampler)
    _check_int("seed", seed, 0, SEED_MAX)
    if stop_after is not None:
        _check_int("stop_after", stop_after, 1)
    if threads is not None:
        _check_int("threads", threads, 1, THREADS_MAX)
    device = resolve_device(device)
    processes = current_processes()
    if processes.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
    check_amp(amp, device)
    if preset.batch_size % processes.world_size:
        world = processes.world_size
        raise ValueError(f"batch_size: expected a multiple of the {world} processes, got {preset.batch_size}")
    # Rank 0 alone writes, so it alone holds the folder's lock.
    lock = lock_folder(out_dir, name="out_dir") if processes.main else contextlib.nullcontext(Path(out_dir))
    with lock as out:
        options = {"stop_after": stop_after, "data": data, "init": init, "threads": threads, "log": log}
        return _train_in_locked_folder(preset, upsampler, out, seed, device, amp=amp, processes=processes, **options)


def _train_in_locked_folder(
    preset: Preset,
    upsampler: str,
    out: Path,
    seed: int,
    device: torch.device,
    *,
    stop_after: int | None,
    data: tuple[Dataset, Dataset] | None,
    init: str | None,
    threads: int | None,
    amp: str | None,
    processes: Processes,
    log: Log,
) -> dict:
    """:func:`train`'s work, its arguments checked, in ``out``, whose lock the caller holds."""
    config = run_config(preset, upsampler, seed, init, amp)
    # Rank 0 reads the run's files and hands them to the other ranks (which need no shared folder).
    results = None
    if processes.main and (out / RESULTS).exists():
        results = read_checked_json(out / RESULTS, RESULTS_ADVICE)
        fields = {"config": dict, "status": str, "metrics": dict}
        _check_same_run(config, _recorded_config(results, fields, out / RESULTS, RESULTS_ADVICE), out / RESULTS)
    results = broadcast_from_main(results, processes)
    if results is not None:
        log(f"{out}: already complete")
        return results
    state = None
    if processes.main and (out / CHECKPOINT).exists():
        state = load_checkpoint(out / CHECKPOINT, device if processes.world_size == 1 else torch.device("cpu"))
        fields = {"config": str, "model": dict, "optimizer": dict, "step": int, "history": list, "window": list}
        recorded = _recorded_config(state, {**fields, "train_seconds": float}, out / CHECKPOINT, CHECKPOINT_ADVICE)
        _check_same_run(config, recorded, out / CHECKPOINT)
        if state.get("processes", 1) != processes.world_size:
            raise ValueError(
                f"{out / CHECKPOINT}: expected a checkpoint of a run on {processes.world_size} processes, got one of "
                f"{state.get('processes', 1)}; resume with as many processes as it was started with"
            )
    state = broadcast_from_main(state, processes)
    init_state = read_state_dict(init) if state is None and init is not None and processes.main else None
    init_state = broadcast_from_main(init_state, processes)
    task = create_task(preset.task, **preset.task_options)
    _check_sample_size(preset, build_model(preset, upsampler, device="meta"))  # before the data is made
    train_set, test_set = data or build_data(preset, task)
    data_used = data_record(preset, train_set, test_set)
    stop = preset.steps if stop_after is None else min(stop_after, preset.steps)
    schedule = preset.lr_schedule()

    with _run_context(device, threads):
        torch.manual_seed(seed)
        model = build_model(preset, upsampler).to(device)
        if init_state is not None:
            _load_init(model, init_state, init, log)
        if processes.world_size > 1:
            model = convert_batchnorm(model)  # BatchNorm over the global batch, before the optimiser holds its weights
        optimizer = build_optimizer(
            model, preset.optimizer, preset.lr, preset.weight_decay, preset.betas, preset.lr_mult, preset.no_decay
        )
        scaler = grad_scaler(amp, device)
        trained = model
        if processes.world_size > 1:
            torch.manual_seed(seed * 65_537 + processes.rank + 1)  # one generator stream per rank (dropout, drop path)
            device_ids = [device.index] if device.type == "cuda" else None
            trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        start, history, window, seconds, curve = 0, [], [0.0, 0], 0.0, []
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng_ranks"][processes.rank] if processes.world_size > 1 else state["rng"], device)
            if "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            start, history, window, seconds = state["step"], state["history"], state["window"], state["train_seconds"]
            curve = state.get("curve", [])
            log(f"{out}: resuming at step {start}")
        with_epoch = getattr(train_set, "epoch_keys", False)
        sampler = StepBatchSampler(len(train_set), preset.batch_size, seed, start, stop, with_epoch)
        if processes.world_size > 1:
            sampler = ShardedBatches(sampler, processes)
        # An own generator: creating the iterator must not draw from the global one that dropout uses.
        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(train_set, batch_sampler=sampler, num_workers=preset.num_workers, generator=generator)
        started = time.perf_counter()
        for step, batch in enumerate(loader, start=start):
            set_learning_rate(optimizer, preset.lr, schedule.factor(step))
            _train_mode(model, preset.freeze_bn)
            with autocast(amp, device):
                loss = task.loss(trained, batch)
            global_loss = mean_over_processes(loss, processes)
            if not torch.isfinite(global_loss):
                raise FloatingPointError(
                    f"step {step}: expected a finite loss, got {global_loss.item()} (the run diverged; the last "
                    "checkpoint is kept: lower the learning rate, or train without --amp)"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if step == start:  # logged once a step ran: a run its settings refuse prints its error alone
                log(describe_data(data_used))
            window = [window[0] + global_loss.item(), window[1] + 1]
            done = step + 1
            if done % preset.log_every == 0 or done == preset.steps:
                history.append({"step": done, "loss": window[0] / window[1]})
                window = [0.0, 0]
                log(f"{upsampler} seed {seed}: step {done}/{preset.steps} loss {history[-1]['loss']:.5f}")
            if done == curve_step(preset.steps) and processes.main:
                curve.append({"step": done, "metrics": _evaluate(model, task, test_set, preset, device, seed)})
            if done % preset.checkpoint_every == 0 or done == stop:
                generators = gather_objects(rng_state(device), processes)
                if not processes.main:
                    continue
                elapsed = seconds + time.perf_counter() - started
                checkpoint = {
                    "config": json.dumps(config),
                    "step": done,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": {"kind": schedule.kind, "step": done, "factor": schedule.factor(done)},
                    "rng": generators[0],
                    "history": history,
                    "window": window,
                    "curve": curve,
                    "train_seconds": elapsed,
                    "processes": processes.world_size,
                }
                if processes.world_size > 1:
                    checkpoint["rng_ranks"] = generators
                if amp == "fp16":
                    checkpoint["scaler"] = scaler.state_dict()
                save_checkpoint(out / CHECKPOINT, checkpoint)
        seconds += time.perf_counter() - started
        if start == stop:
            log(describe_data(data_used))
        if stop < preset.steps:
            return {"status": "stopped", "step": stop, "config": config}
        if not processes.main:
            return {"status": "trained", "step": stop, "config": config}

        started = time.perf_counter()
        metrics = _evaluate(model, task, test_set, preset, device, seed)
        eval_seconds = time.perf_counter() - started
        machine = machine_info(device)

    baseline = _parameters(build_model(preset, "bilinear", device="meta"))
    results = {
        "status": "complete",
        "task": preset.task,
        "preset": preset.name,
        "upsampler": upsampler,
        "seed": seed,
        "steps": preset.steps,
        "metrics": metrics,
        "final_loss": history[-1]["loss"],
        "parameters": {"total": _parameters(model), "added": _parameters(model) - baseline},
        "train_seconds": round(seconds, 2),
        "eval_seconds": round(eval_seconds, 2),
        "train_samples": len(train_set),
        "test_samples": len(test_set),
        "data": data_used,
        "processes": processes.world_size,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine,
        "pretrained_encoder": _encoder_identity(model),
        "history": history,
        "curve": [*curve, {"step": preset.steps, "metrics": metrics}],
        "config": config,
    }
    write_checked_json(out / RESULTS, results)
    log(f"{upsampler} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return results
