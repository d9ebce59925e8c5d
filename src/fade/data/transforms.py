"""Image IO and the augmentations of the paper's real-data pipelines (ADE20K, Adobe Image Matting).

The arithmetic follows the reference pipelines: mmcv / mmseg for ADE20K (``imrescale``, SegFormer's
``AlignedResize``, ``RandomCrop`` with ``cat_max_ratio``, ``PhotoMetricDistortion``, ``Pad``) and the
A2U / GCA matting code for Adobe Image Matting (OpenCV elliptical erosion for trimaps, crops centred
on unknown pixels, affine / HSV jitter). Images are numpy arrays[H, W, 3] uint8 RGB (the references
read BGR with OpenCV; every operation here is colour-order independent or converted accordingly);
label maps are arrays[H, W] uint8; alpha mattes arrays[H, W] float32 in [0, 1].

Resampling uses torch without antialiasing, with OpenCV's conventions: ``bilinear`` / ``bicubic``
with half-pixel centres (OpenCV's INTER_LINEAR / INTER_CUBIC, which also do not antialias), and
``nearest`` taking source pixel floor(dst * src_size / dst_size) (OpenCV's INTER_NEAREST). 8-bit
results are rounded. Checked against OpenCV 4.10 / 5.0 (not a dependency): nearest resizing, the
ellipse kernels, erosion, nearest affine warps and the 8-bit HSV conversions give the same bytes;
bilinear 8-bit resizing differs by one grey level on about 12 % of pixels (OpenCV's fixed-point
weights), bicubic on almost none.

Random draws come from a ``numpy.random.Generator`` passed in, so a sample is a pure function of
its generator's seed.

Needs numpy and Pillow (the ``data`` extra: scikit-image depends on Pillow).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN_255",
    "IMAGENET_STD_255",
    "DataError",
    "aligned_size",
    "cat_max_ratio_crop",
    "ellipse_kernel",
    "erode",
    "hsv_to_rgb_u8",
    "normalize_to_tensor",
    "pad_to_multiple",
    "pad_to_size",
    "photometric_distortion",
    "predict_padded",
    "random_ratio_scale",
    "read_image",
    "rescale_size",
    "resize",
    "rgb_to_hsv_u8",
]

IMAGENET_MEAN_255: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_255: tuple[float, float, float] = (58.395, 57.12, 57.375)
"""mmseg's ``img_norm_cfg`` on 0-255 RGB (255 x the ImageNet mean / std)."""


class DataError(ValueError):
    """A dataset file or folder that is missing, unreadable or not what the layout promises.

    The message names the path, what was expected and what was found.
    """

    def __init__(self, path: str | os.PathLike, expected: str, found: str) -> None:
        super().__init__(f"{path}: expected {expected}, found {found}")
        self.path = Path(path)


# ---------------------------------------------------------------------------------------------- IO


def read_image(path: str | os.PathLike, mode: str) -> np.ndarray:
    """Read an image file with Pillow and convert it to ``mode``.

    Args:
        path: the file. mode: ``"RGB"`` (any colour image; grey ones are repeated to 3 channels),
            ``"L"`` (8-bit grey, e.g. an alpha matte or trimap; colour files are converted by luma)
            or ``"labels"`` (an 8-bit single-channel label map, mode L or P, read as stored:
            never converted, so class indices are kept exactly).

    Returns:
        uint8 array[H, W, 3] for ``"RGB"``, array[H, W] otherwise.

    Raises:
        DataError: the file is missing, is not a readable image, or (``"labels"``) is not 8-bit
            single-channel.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "an image file", "no such file")
    try:
        with Image.open(path) as image:
            image.load()
            if mode == "labels":
                if image.mode not in ("L", "P"):
                    raise DataError(path, "an 8-bit single-channel label map (PIL mode L or P)", f"mode {image.mode}")
                return np.array(image, dtype=np.uint8)
            return np.asarray(image.convert(mode), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(path, "a readable image", f"a corrupt or unsupported file ({error})") from error


# ------------------------------------------------------------------------------------ geometry


def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's ``rescale_size``: the size keeping aspect ratio within (long edge, short edge) ``scale``.

    factor = min(max(scale) / max(H, W), min(scale) / min(H, W)); new side = int(side * factor + 0.5).

    Returns:
        (new_height, new_width).
    """
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def aligned_size(height: int, width: int, divisor: int) -> tuple[int, int]:
    """SegFormer's ``AlignedResize`` step: each side rounded up to a multiple of ``divisor``."""
    return math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor


def random_ratio_scale(
    rng: np.random.Generator, scale: tuple[int, int], ratio_range: tuple[float, float]
) -> tuple[int, int]:
    """mmseg's ``random_sample_ratio``: ratio ~ U[low, high), scale = (int(s0 * ratio), int(s1 * ratio))."""
    low, high = ratio_range
    ratio = rng.random() * (high - low) + low
    return int(scale[0] * ratio), int(scale[1] * ratio)


def resize(array: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize an image, label map or matte to (H, W) ``size`` (OpenCV conventions, see module doc).

    Args:
        array: array[H, W] or [H, W, C], uint8 or float32. mode: ``"nearest"``, ``"bilinear"`` or
            ``"bicubic"``.

    Returns:
        array of the same dtype; uint8 results are rounded and clipped to 0..255.
    """
    if tuple(size) == array.shape[:2]:
        return array.copy()
    x = torch.from_numpy(np.ascontiguousarray(array)).to(torch.float32)
    x = x[None, None] if array.ndim == 2 else x.permute(2, 0, 1)[None]
    if mode == "nearest":
        out = F.interpolate(x, size=tuple(size), mode="nearest")
    else:
        out = F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)
    out = out[0, 0] if array.ndim == 2 else out[0].permute(1, 2, 0)
    if array.dtype == np.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out.numpy().astype(array.dtype)


def cat_max_ratio_crop(
    rng: np.random.Generator,
    label: np.ndarray,
    crop_size: tuple[int, int],
    cat_max_ratio: float = 0.75,
    ignore_index: int = 255,
    tries: int = 10,
) -> tuple[int, int]:
    """mmseg's ``RandomCrop`` window: top-left corner (y, x) of a ``crop_size`` crop of ``label``.

    A window is drawn uniformly among those fitting (offsets 0 when the map is smaller than the
    crop). While ``cat_max_ratio < 1``, up to ``tries`` windows are checked: a window is accepted
    when its non-ignored pixels hold at least two classes and the largest class covers a share
    < ``cat_max_ratio`` of them; after each rejected check a new window is drawn, and after
    ``tries`` rejections the last drawn window (unchecked) is used, as mmseg does.
    """

    def draw() -> tuple[int, int]:
        margin_h = max(label.shape[0] - crop_size[0], 0)
        margin_w = max(label.shape[1] - crop_size[1], 0)
        return int(rng.integers(0, margin_h + 1)), int(rng.integers(0, margin_w + 1))

    top, left = draw()
    if cat_max_ratio >= 1.0:
        return top, left
    for _ in range(tries):
        window = label[top : top + crop_size[0], left : left + crop_size[1]]
        counts = np.bincount(window.ravel(), minlength=256)
        counts[ignore_index] = 0
        counts = counts[counts > 0]
        if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
        top, left = draw()
    return top, left


def pad_to_size(array: np.ndarray, size: tuple[int, int], value: float) -> np.ndarray:
    """Pad at the bottom and right to at least (H, W) ``size`` with ``value`` (mmcv ``impad``)."""
    pad_h, pad_w = max(size[0] - array.shape[0], 0), max(size[1] - array.shape[1], 0)
    if pad_h == 0 and pad_w == 0:
        return array
    widths = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "reflect") -> Tensor:
    """Pad Tensor[..., H, W] at the bottom and right to the next multiples of ``multiple``.

    ``mode`` is a :func:`torch.nn.functional.pad` mode (the A2U test script pads with ``"reflect"``).
    """
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple: expected a positive integer, got {multiple!r}")
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    if mode == "reflect" and (pad_h >= height or pad_w >= width):
        raise ValueError(f"x: reflect padding by ({pad_h}, {pad_w}) needs larger H and W, got {(height, width)}")
    flat = x.reshape(-1, *x.shape[-3:]) if x.dim() >= 3 else x[None]
    out = F.pad(flat, (0, pad_w, 0, pad_h), mode=mode)
    return out.reshape(*x.shape[:-2], height + pad_h, width + pad_w)


def predict_padded(model: torch.nn.Module, x: Tensor, multiple: int = 32, mode: str = "reflect") -> Tensor:
    """``model`` on ``x`` (B, C, H, W) padded by :func:`pad_to_multiple`, output cropped back to (H, W).

    The Composition-1K evaluation of full images: the network sees sides divisible by its total
    stride, the prediction is cut to the image.
    """
    height, width = x.shape[-2:]
    return model(pad_to_multiple(x, multiple, mode))[..., :height, :width]


# ---------------------------------------------------------------------------------- photometric


def _convert(values: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """mmseg's ``convert``: values * alpha + beta in float32, clipped to 0..255, truncated to uint8."""
    return np.clip(values.astype(np.float32) * np.float32(alpha) + np.float32(beta), 0, 255).astype(np.uint8)


def rgb_to_hsv_u8(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit RGB -> HSV with its 12-bit fixed-point tables (same bytes as OpenCV 4.10 and 5.0):
    H in 0..179 (degrees / 2), S and V in 0..255; uint8 array[H, W, 3]."""
    x = rgb.astype(np.int64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    value = x.max(axis=-1)
    diff = value - x.min(axis=-1)
    shift, half = 12, 1 << 11
    levels = np.arange(256)
    saturation_table = np.where(levels > 0, np.rint((255 << shift) / np.maximum(levels, 1)), 0).astype(np.int64)
    hue_table = np.where(levels > 0, np.rint((180 << shift) / (6.0 * np.maximum(levels, 1))), 0).astype(np.int64)
    saturation = (diff * saturation_table[value] + half) >> shift
    hue = np.where(value == r, g - b, np.where(value == g, b - r + 2 * diff, r - g + 4 * diff))
    hue = (hue * hue_table[diff] + half) >> shift
    hue = np.where(hue < 0, hue + 180, hue)
    return np.stack([hue, saturation, value], axis=-1).astype(np.uint8)


def hsv_to_rgb_u8(hsv: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit HSV -> RGB (H in 0..179): float32 arithmetic, results truncated, as OpenCV
    (4.10 and 5.0 give the same bytes on random images); uint8 array[H, W, 3]."""
    x = hsv.astype(np.float32)
    h, s, v = x[..., 0] * np.float32(6.0 / 180.0), x[..., 1] * np.float32(1 / 255), x[..., 2] * np.float32(1 / 255)
    sector = np.floor(h)
    fraction = h - sector
    sector = sector.astype(np.int64) % 6
    one = np.float32(1)
    p, q, t = v * (one - s), v * (one - s * fraction), v * (one - s * (one - fraction))
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(hsv.shape, dtype=np.float32)
    for index, channels in enumerate(table):
        mask = sector == index
        for c in range(3):
            out[..., c][mask] = channels[c][mask]
    return np.clip(np.floor(out * np.float32(255)), 0, 255).astype(np.uint8)


def photometric_distortion(
    rng: np.random.Generator,
    image: np.ndarray,
    brightness_delta: int = 32,
    contrast_range: tuple[float, float] = (0.5, 1.5),
    saturation_range: tuple[float, float] = (0.5, 1.5),
    hue_delta: int = 18,
) -> np.ndarray:
    """mmseg's ``PhotoMetricDistortion`` on uint8 RGB array[H, W, 3], in its order and random mode.

    Brightness (p = 0.5, + U(-delta, delta)); then mode = randint(2): mode 1 applies contrast
    (p = 0.5, x U(contrast_range)) next, mode 0 last; saturation (p = 0.5, S x U(range) in 8-bit HSV);
    hue (p = 0.5, H + randint(-hue_delta, hue_delta) mod 180, numpy's exclusive upper bound);
    each step clips to 0..255 and truncates to uint8.
    """

    def contrast(x: np.ndarray) -> np.ndarray:
        if rng.integers(2):
            return _convert(x, alpha=rng.uniform(*contrast_range))
        return x

    if rng.integers(2):
        image = _convert(image, beta=rng.uniform(-brightness_delta, brightness_delta))
    mode = int(rng.integers(2))
    if mode == 1:
        image = contrast(image)
    if rng.integers(2):
        hsv = rgb_to_hsv_u8(image)
        hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(*saturation_range))
        image = hsv_to_rgb_u8(hsv)
    if rng.integers(2):
        hsv = rgb_to_hsv_u8(image)
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + int(rng.integers(-hue_delta, hue_delta))) % 180
        image = hsv_to_rgb_u8(hsv)
    if mode == 0:
        image = contrast(image)
    return image


def normalize_to_tensor(
    image: np.ndarray, mean: tuple[float, ...] = IMAGENET_MEAN_255, std: tuple[float, ...] = IMAGENET_STD_255
) -> Tensor:
    """(image - mean) / std of a 0-255 RGB array[H, W, 3] as Tensor[3, H, W] float32."""
    x = torch.from_numpy(np.ascontiguousarray(image)).to(torch.float32).permute(2, 0, 1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


# ------------------------------------------------------------------------------------ morphology


def ellipse_kernel(size: int) -> np.ndarray:
    """OpenCV's ``getStructuringElement(MORPH_ELLIPSE, (size, size))`` as a bool array[size, size].

    Row i (dy = i - size // 2, |dy| <= r = size // 2) is set on columns c - dx .. c + dx with
    c = size // 2 and dx = round(c * sqrt((r^2 - dy^2) / r^2)) (dx = 0 when r = 0), clipped to the kernel.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected a positive integer, got {size!r}")
    radius = centre = size // 2
    kernel = np.zeros((size, size), dtype=bool)
    for row in range(size):
        dy = row - radius
        if abs(dy) > radius:
            continue
        dx = int(np.rint(centre * math.sqrt((radius * radius - dy * dy) / (radius * radius)))) if radius else 0
        kernel[row, max(centre - dx, 0) : min(centre + dx + 1, size)] = True
    return kernel


def erode(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Binary erosion as ``cv2.erode`` with anchor at the kernel centre (size // 2) and pixels outside
    the image ignored (OpenCV's default border for erosion).

    out[y, x] = all(mask[y + i - ay, x + j - ax] for kernel[i, j]), out-of-image terms True.
    Computed row by row of the kernel from horizontal runs (fast for OpenCV's convex ellipses).

    Args:
        mask: bool array[H, W]. kernel: bool array[kh, kw].

    Returns:
        bool array[H, W].
    """
    kh, kw = kernel.shape
    ay, ax = kh // 2, kw // 2
    height, width = mask.shape
    padded = np.pad(mask, ((ay, kh - 1 - ay), (ax, kw - 1 - ax)), constant_values=True)
    # holes[y, j]: number of False pixels in padded row y, columns 0..j-1.
    holes = np.zeros((padded.shape[0], padded.shape[1] + 1), dtype=np.int32)
    np.cumsum(~padded, axis=1, out=holes[:, 1:])
    out = np.ones((height, width), dtype=bool)
    for i in range(kh):
        columns = np.flatnonzero(kernel[i])
        for segment in np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if columns.size else ():
            start, stop = int(segment[0]), int(segment[-1]) + 1
            rows = holes[i : i + height]
            out &= rows[:, stop : stop + width] == rows[:, start : start + width]
    return out
