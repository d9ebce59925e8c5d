"""Real data for the experiments: Fashion-MNIST and two composite tasks over real photos.

Needs the ``data`` extra (numpy, scikit-image) and the Fashion-MNIST idx files
(``apt-get install dataset-fashion-mnist``); see docs/data.md.
"""

from .composite import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SEGMENTATION_CLASSES,
    CompositeMatting,
    CompositeSegmentation,
    MattingLayout,
    PlacedItem,
    SegmentationLayout,
    denormalize_image,
    normalize_image,
    trimap_from_alpha,
)
from .fashion_mnist import (
    CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    FashionMNIST,
    find_fashion_mnist,
    load_fashion_mnist,
)
from .idx import read_idx
from .loader import make_loader
from .photos import PHOTO_NAMES, load_photo, photo_region

__all__ = [
    "CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PHOTO_NAMES",
    "SEGMENTATION_CLASSES",
    "CompositeMatting",
    "CompositeSegmentation",
    "FashionMNIST",
    "MattingLayout",
    "PlacedItem",
    "SegmentationLayout",
    "denormalize_image",
    "find_fashion_mnist",
    "load_fashion_mnist",
    "load_photo",
    "make_loader",
    "normalize_image",
    "photo_region",
    "read_idx",
    "trimap_from_alpha",
]
