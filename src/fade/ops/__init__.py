"""Functional kernels: reassembly, the 1x1 convolution of the kernel generators, the shared nearest mapping."""

from .carafe import carafe
from .pointwise import pointwise_conv
from .resize import nearest_upsample

__all__ = ["carafe", "nearest_upsample", "pointwise_conv"]
