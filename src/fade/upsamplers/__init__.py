"""Every upsampler behind one interface: ``create_upsampler(name, en_channels, ...)(en, de)``.

Operators that also change the downsampling (max-unpooling, IndexNet, A2U) come as down/up pairs:
``create_pair(name, ...)`` gives ``(down, up)`` for every name (see :mod:`fade.upsamplers.pairs`).
"""

from . import fade as _fade  # noqa: F401  (registers the FADE family and CARAFE)
from .a2u import A2UDown, A2UKernels, A2UUp
from .dysample import DySample
from .fade import FADE, FADELite, KernelUpsampler
from .indexnet import IndexBlock, IndexedPool, IndexedUpsample
from .interpolation import (
    BilinearUpsample,
    DeconvUpsample,
    NearestUpsample,
    PixelShuffleUpsample,
)
from .pairs import (
    MaxPoolDown,
    PairedUpsampler,
    PlainUp,
    create_pair,
    list_pairs,
    register_pair,
)
from .registry import create_upsampler, list_options, list_upsamplers, register_upsampler
from .sapa import SAPA
from .unpool import MaxPoolIndices, MaxUnpool

__all__ = [
    "FADE",
    "SAPA",
    "A2UDown",
    "A2UKernels",
    "A2UUp",
    "BilinearUpsample",
    "DeconvUpsample",
    "DySample",
    "FADELite",
    "IndexBlock",
    "IndexedPool",
    "IndexedUpsample",
    "KernelUpsampler",
    "MaxPoolDown",
    "MaxPoolIndices",
    "MaxUnpool",
    "NearestUpsample",
    "PairedUpsampler",
    "PixelShuffleUpsample",
    "PlainUp",
    "create_pair",
    "create_upsampler",
    "list_options",
    "list_pairs",
    "list_upsamplers",
    "register_pair",
    "register_upsampler",
]
