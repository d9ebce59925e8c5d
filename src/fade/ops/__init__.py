"""Functional kernels: reassembly and the shared nearest mapping."""

from .carafe import carafe
from .resize import nearest_upsample

__all__ = ["carafe", "nearest_upsample"]
