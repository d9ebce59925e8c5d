"""The paper's reference networks with pluggable upsamplers: ``create_model(name, upsampler=...)``.

Every model asks ``fade.create_upsampler`` or ``fade.create_pair`` for its upsampling by name and
never branches on the name; ``list_models()`` gives the registered networks.
"""

from .encoder_decoder import PooledEncoderDecoder, ReconstructionAutoencoder, SegNet
from .matting import A2UMatting
from .pretrained_encoder import load_pretrained_encoder
from .registry import create_model, list_models, register_model
from .segformer import MixTransformer, SegFormer, SegFormerHead

__all__ = [
    "A2UMatting",
    "MixTransformer",
    "PooledEncoderDecoder",
    "ReconstructionAutoencoder",
    "SegFormer",
    "SegFormerHead",
    "SegNet",
    "create_model",
    "list_models",
    "load_pretrained_encoder",
    "register_model",
]
