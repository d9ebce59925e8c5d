"""Evaluation metrics with the published definitions, and streaming meters for whole sets.

- :mod:`~fade.metrics.segmentation`: mIoU, pixel accuracy, Boundary IoU; :class:`SegmentationMeter`;
- :mod:`~fade.metrics.matting`: Composition-1K SAD, MSE, Grad, Conn; :class:`MattingMeter`;
- :mod:`~fade.metrics.reconstruction`: PSNR, SSIM, MAE, MSE; :class:`ReconstructionMeter`;
- :mod:`~fade.metrics.components`: 4-connected component labelling (used by Conn).

Inputs are numpy arrays or torch tensors; values are computed in float64 numpy. Scale convention:
every ratio (IoU, accuracy, SSIM) is a fraction in [0, 1], never a percentage (multiply by 100 only
when reporting); alpha mattes and images are in [0, 1]; SAD, Grad and Conn carry the
Composition-1K division by 1000, PSNR is in dB. Wrong types raise TypeError, wrong values (shapes,
empty maps, ranges, NaN) ValueError. Needs numpy (the ``metrics`` extra), not scipy.
"""

from . import components, matting, reconstruction, segmentation
from .components import label_components, largest_component
from .matting import (
    MattingMeter,
    connectivity_error,
    gaussian_derivative_kernels,
    gaussian_gradient,
    gradient_error,
    mat2gray,
    mse_error,
    sad_error,
    unknown_region,
)
from .reconstruction import ReconstructionMeter, mae, mse, psnr, ssim
from .segmentation import (
    SegmentationMeter,
    boundary_counts,
    boundary_iou,
    boundary_width,
    confusion_matrix,
    iou_from_confusion,
    mask_boundary,
    mean_boundary_iou,
    mean_iou,
    pixel_accuracy,
)

__all__ = [
    "MattingMeter",
    "ReconstructionMeter",
    "SegmentationMeter",
    "boundary_counts",
    "boundary_iou",
    "boundary_width",
    "components",
    "confusion_matrix",
    "connectivity_error",
    "gaussian_derivative_kernels",
    "gaussian_gradient",
    "gradient_error",
    "iou_from_confusion",
    "label_components",
    "largest_component",
    "mae",
    "mask_boundary",
    "mat2gray",
    "matting",
    "mean_boundary_iou",
    "mean_iou",
    "mse",
    "mse_error",
    "pixel_accuracy",
    "psnr",
    "reconstruction",
    "sad_error",
    "segmentation",
    "ssim",
    "unknown_region",
]
