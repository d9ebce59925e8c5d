"""Functional kernels: reassembly, the 1x1 and content-encoder convolutions and the softmax of the kernel generators, the shared nearest mapping."""

from .carafe import carafe, carafe_lerp
from .conv import same_conv2d
from .pointwise import pointwise_conv
from .resize import nearest_upsample
from .softmax import semi_shift_softmax

__all__ = ["carafe", "carafe_lerp", "nearest_upsample", "pointwise_conv", "same_conv2d", "semi_shift_softmax"]
