"""Training and comparison harness: does FADE win on both region- and detail-sensitive tasks?

- :mod:`~fade.train.presets`: every setting of a run, by (task, name): ``quick``, ``cpu``, ``paper``;
- :mod:`~fade.train.tasks`: loss and evaluation of segmentation, matting, reconstruction;
- :mod:`~fade.train.trainer`: :func:`train`, one seeded, checkpointed, resumable run;
- :mod:`~fade.train.compare`: :func:`compare`, many upsamplers x seeds, tables and figures;
- :mod:`~fade.train.data`: data sources by name, step-indexed batch order.

Importing needs torch only; running needs numpy (metrics), scikit-image (composite data) and, for
figures, matplotlib. The command line is ``fade train`` / ``fade compare`` (:mod:`~fade.train.cli`).
"""

from .data import create_data, list_data, register_data
from .optim import Schedule, build_optimizer
from .presets import PRESETS, TASKS, Preset, get_preset, list_presets
from .tasks import MattingTask, ReconstructionTask, SegmentationTask, Task, create_task
from .trainer import build_data, build_model, train

__all__ = [
    "PRESETS",
    "TASKS",
    "MattingTask",
    "Preset",
    "ReconstructionTask",
    "Schedule",
    "SegmentationTask",
    "Task",
    "build_data",
    "build_model",
    "build_optimizer",
    "create_data",
    "create_task",
    "get_preset",
    "list_data",
    "list_presets",
    "register_data",
    "train",
]
