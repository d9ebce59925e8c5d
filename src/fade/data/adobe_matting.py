"""Adobe Image Matting (Deep Image Matting, Xu et al. 2017) and its Composition-1K test set, as A2U trains.

The dataset is given by Adobe on request under its licence (non-commercial use); its training
backgrounds are MS-COCO train2014 images. Layout, as the A2U matting code expects it
(``Combined_Dataset`` from the Adobe archive with the two foreground folders merged)::

    Combined_Dataset/
        Training_set/
            training_fg_names.txt   431 foreground file names (shipped with the dataset)
            training_bg_names.txt   43,100 background file names (shipped; 100 per foreground)
            fg/      the 431 foregrounds ("Adobe-licensed images/fg" and "Other/fg" together)
            alpha/   their alpha mattes, same file names
            train2014/  the MS-COCO images named in training_bg_names.txt
        Test_set/
            merged/   the 1,000 Composition-1K images (Adobe's compose script: ``NAME_k.png``)
            trimaps/  their trimaps, same file names (values 0, 128, 255)
            alpha/    the 50 test alphas ``NAME.png`` (or ``alpha_copy/`` with the merged names,
                      as in the widely shared ``Composition-1k-testset`` folder, which also works as root)

Training (:class:`AdobeMattingTrain`), the A2U code's ``DataGenerator`` (from GCA Matting), one
sample per background name (43,100 an epoch), foreground ``index % 431``:

1. background: a random one of the list (numpy ``randint(0, n - 1)``: the last is never drawn, as in A2U);
2. with p = 0.5 a second random foreground (nearest-resized to the first) is composited under the
   first: alpha = 1 - (1 - a1)(1 - a2), fg = (fg1 a1 + fg2 (1 - a1) a2) / (alpha + 1e-5);
   then with p = 0.25 both are nearest-resized to 640 x 640;
3. random affine of fg and alpha (nearest, zero outside): scale U(0.8, 1.25) per axis, shear
   U(-10, 10) degrees, each axis flipped with p = 0.5, rotation U(-30, 30) degrees only when the
   longer side is >= 1024 px; then a horizontal flip with p = 0.5;
4. trimap: 128 everywhere, 255 where alpha == 1 eroded by an OpenCV ellipse of size U{1..29}, 0
   where alpha == 0 eroded by another of size U{1..29};
5. crop ``crop_size`` (512) centred on a random unknown pixel at least crop/2 from the border
   (a uniform crop when fewer than 10 such pixels; everything resized to the crop when no pixel
   is unknown); images smaller than the crop are first enlarged (nearest) by 1.1 x crop / short side,
   the background is enlarged (bicubic) to cover the foreground;
6. HSV jitter of the foreground (hue +U{-40..39} degrees, saturation and value shifted by a random
   amount scaled by (1.1 - mean over alpha > 0), reflected into [0, 1]); skipped for an empty alpha;
7. composite ``image = fg alpha + bg (1 - alpha)``; normalise with the ImageNet mean / std;
   the network input is the normalised RGB and ``trimap / 255``.

Evaluation (:class:`Composition1K`): the merged image, its trimap and the ground-truth alpha at full
size; the network sees the image padded at the bottom / right to a multiple of its stride (A2U's
test script: reflect padding to 16; :func:`fade.data.transforms.predict_padded`) and the
prediction is cropped back, clamped to [0, 1], the known trimap regions copied in, then scored over
trimap == 128 by :class:`fade.metrics.MattingMeter` (SAD, MSE, Grad, Conn of the published scripts).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._checks import check_int, check_key, check_path, check_size
from .transforms import DataError, ellipse_kernel, erode, normalize_to_tensor, read_image, resize

__all__ = [
    "ADOBE_FOLDER",
    "AdobeMattingTrain",
    "Composition1K",
    "TRIMAP_UNKNOWN",
    "affine_matrix",
    "find_adobe_matting",
    "hsv_jitter",
    "random_trimap",
    "unknown_centred_crop",
    "warp_nearest",
]

ADOBE_FOLDER = "Combined_Dataset"
TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND = 0, 128, 255
_KERNEL_SIZES = (1, 30)
"""Trimap erosion kernel sizes are drawn from ``randint(1, 30)``, i.e. 1..29."""
_MIN_UNKNOWN = 10


def find_adobe_matting(data_dir: str | os.PathLike, part: str) -> Path:
    """The ``Training_set`` / ``Test_set`` folder (``part``) under ``data_dir``.

    ``data_dir`` may be ``Combined_Dataset``, its parent, or (for ``Test_set``) the set folder itself
    (e.g. ``Composition-1k-testset``).

    Raises:
        DataError: naming the first missing path.
    """
    data_dir = check_path("data_dir", data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, f"the Adobe matting folder ({ADOBE_FOLDER} or its parent)", "no such folder")
    for candidate in (data_dir / ADOBE_FOLDER / part, data_dir / part):
        if candidate.is_dir():
            return candidate
    if part == "Test_set" and (data_dir / "merged").is_dir():
        return data_dir
    raise DataError(data_dir / part, f"the {part} folder of the {ADOBE_FOLDER} layout", "no such folder")


def _names(path: Path) -> list[str]:
    """Non-empty lines of a name list, stripped."""
    if not path.is_file():
        raise DataError(path, "a list of file names, one per line", "no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        found = f"bytes that are not UTF-8 text ({error.reason})"
        raise DataError(path, "a list of file names, one per line", found) from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(path, "a list of file names, one per line", "an empty file")
    return names


def _check_listed(folder: Path, names: list[str], what: str) -> None:
    """Raise DataError for the first of ``names`` missing from ``folder`` (one directory listing)."""
    if not folder.is_dir():
        raise DataError(folder, f"the folder of the {what}", "no such folder")
    present = set(os.listdir(folder))
    for name in names:
        if name not in present:
            raise DataError(folder / name, f"the {what} named in the list", "no such file")


def _same_size(path: Path, array: np.ndarray, shape: tuple[int, int], what: str) -> None:
    if array.shape[:2] != shape:
        raise DataError(path, f"{what} {shape}", f"size {array.shape[:2]}")


def _read_alpha(path: Path) -> np.ndarray:
    """An alpha matte file as float32 array[H, W] in [0, 1] (8-bit grey / 255)."""
    return read_image(path, "L").astype(np.float32) / np.float32(255.0)


# ------------------------------------------------------------------------------- augmentations


def affine_matrix(
    center: tuple[float, float], angle: float, scale: tuple[float, float], shear: float, flip: tuple[int, int]
) -> np.ndarray:
    """The inverse affine map (output pixel -> source pixel) of A2U / GCA's ``RandomAffine``.

    Forward: flip, scale (per axis), rotate by ``angle`` and shear by ``shear`` (degrees) about
    ``center`` (x, y); no translation. Returns float64 array[2, 3] M with
    ``[x_src, y_src] = M @ [x, y, 1]``.
    """
    angle, shear = math.radians(angle), math.radians(shear)
    scale_x, scale_y = flip[0] / scale[0], flip[1] / scale[1]
    det = math.cos(angle + shear) * math.cos(angle) + math.sin(angle + shear) * math.sin(angle)
    m = np.array(
        [
            [math.cos(angle) * scale_x, math.sin(angle + shear) * scale_x, 0.0],
            [-math.sin(angle) * scale_y, math.cos(angle + shear) * scale_y, 0.0],
        ]
    ) / det
    cx, cy = center
    m[:, 2] = m[:, 0] * -cx + m[:, 1] * -cy + np.array([cx, cy])
    return m


def warp_nearest(array: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``cv2.warpAffine(array, matrix, flags=INTER_NEAREST | WARP_INVERSE_MAP)``: zero outside.

    Output pixel (x, y) takes source pixel round(M @ [x, y, 1]) (half up), or 0 when outside.
    """
    height, width = array.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    sx = np.floor(matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2] + 0.5).astype(np.int64)
    sy = np.floor(matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2] + 0.5).astype(np.int64)
    inside = (sx >= 0) & (sx < width) & (sy >= 0) & (sy < height)
    out = np.zeros_like(array)
    out[inside] = array[sy[inside], sx[inside]]
    return out


def random_trimap(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """A2U / GCA's ``GenTrimap``: uint8 array[H, W] in {0, 128, 255} from float32 ``alpha`` [H, W].

    Foreground = (alpha + 1e-5 >= 1) eroded by ``ellipse_kernel(k_fg)``, background =
    (1 - alpha + 1e-5 >= 1) eroded by ``ellipse_kernel(k_bg)``, k_fg, k_bg ~ U{1..29}; the rest 128.
    """
    fg_width, bg_width = (int(rng.integers(*_KERNEL_SIZES)) for _ in range(2))
    eps = np.float32(1e-5)
    sure_fg = erode(alpha + eps >= 1, ellipse_kernel(fg_width))
    sure_bg = erode(np.float32(1) - alpha + eps >= 1, ellipse_kernel(bg_width))
    trimap = np.full(alpha.shape, TRIMAP_UNKNOWN, dtype=np.uint8)
    trimap[sure_fg] = TRIMAP_FOREGROUND
    trimap[sure_bg] = TRIMAP_BACKGROUND
    return trimap


def unknown_centred_crop(
    rng: np.random.Generator, trimap: np.ndarray, crop_size: tuple[int, int]
) -> tuple[int, int] | None:
    """Top-left (y, x) of A2U's crop: a random unknown pixel of the trimap's inner region
    ``[m, H - m) x [m, W - m)`` (m = crop_H // 2) becomes the crop centre, i.e. its inner-region
    coordinates are the crop's top-left; a uniform crop when that region holds fewer than 10
    unknown pixels; None when the trimap has no unknown pixel at all (the caller resizes instead).
    The trimap must be larger than the crop in both sides.
    """
    height, width = trimap.shape
    if not (trimap == TRIMAP_UNKNOWN).any():
        return None
    margin = crop_size[0] // 2
    ys, xs = np.nonzero(trimap[margin : height - margin, margin : width - margin] == TRIMAP_UNKNOWN)
    if len(ys) < _MIN_UNKNOWN:
        return int(rng.integers(0, height - crop_size[0] + 1)), int(rng.integers(0, width - crop_size[1] + 1))
    pick = int(rng.integers(len(ys)))
    return int(ys[pick]), int(xs[pick])


def _rgb_to_hsv_float(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's float RGB -> HSV for values in [0, 1]: H in degrees [0, 360), S and V in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    diff = value - rgb.min(axis=-1)
    saturation = np.where(value > 0, diff / np.where(value > 0, value, 1), 0)
    safe = np.where(diff > 0, diff, 1)
    hue = np.where(value == r, (g - b) / safe, np.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    hue = np.where(diff > 0, hue, 0)
    hue = np.where(hue < 0, hue + 360, hue)
    return np.stack([hue, saturation, value], axis=-1).astype(np.float32)


def _hsv_to_rgb_float(hsv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_rgb_to_hsv_float` (H in degrees), RGB in [0, 1]."""
    h, s, v = hsv[..., 0] / 60.0, hsv[..., 1], hsv[..., 2]
    sector = np.floor(h)
    fraction = h - sector
    sector = sector.astype(np.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * fraction), v * (1 - s * (1 - fraction))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(hsv.shape, dtype=np.float32)
    for index, channels in enumerate(choices):
        mask = sector == index
        for c in range(3):
            out[..., c][mask] = channels[c][mask]
    return out


def _reflect_unit(x: np.ndarray) -> np.ndarray:
    """|x|, then values above 1 reflected to 2 - x (A2U's jitter)."""
    x = np.abs(x)
    return np.where(x > 1, 2 - x, x)


def hsv_jitter(rng: np.random.Generator, fg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A2U / GCA's ``RandomJitter`` of a 0-255 foreground array[H, W, 3]; float32 0-255 result."""
    if not (alpha > 0).any():
        return fg.astype(np.float32)
    hsv = _rgb_to_hsv_float(fg.astype(np.float32) / np.float32(255.0))
    hsv[..., 0] = np.remainder(hsv[..., 0] + int(rng.integers(-40, 40)), 360)
    for channel in (1, 2):
        mean = hsv[..., channel][alpha > 0].mean()
        jitter = rng.random() * (1.1 - mean) / 5 - (1.1 - mean) / 10
        hsv[..., channel] = _reflect_unit(hsv[..., channel] + jitter)
    return _hsv_to_rgb_float(hsv) * np.float32(255.0)


def _matting_sample(image: np.ndarray, trimap: np.ndarray, alpha: np.ndarray) -> dict[str, Tensor]:
    """The tensors every matting sample has, from a 0-255 float image [H, W, 3], trimap and alpha."""
    normalised = normalize_to_tensor(image)
    trimap_t = torch.from_numpy(np.ascontiguousarray(trimap))[None]
    return {
        "input": torch.cat([normalised, trimap_t.float() / 255.0]),
        "image": normalised,
        "trimap": trimap_t,
        "alpha": torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None],
    }


# ------------------------------------------------------------------------------------ datasets


class AdobeMattingTrain(Dataset):
    """The Adobe Image Matting training set with A2U's random compositing pipeline (module doc).

    The layout is checked at construction (lists, folders and every listed file's existence, one
    directory listing each); each image is validated when read (corrupt files, an alpha of another
    size than its foreground) with a :class:`~fade.data.transforms.DataError` naming the file.

    Args:
        root: ``Combined_Dataset``, its parent or ``Combined_Dataset/Training_set``.
        crop_size: (H, W) of the crops, square (A2U: 512).
        seed: seeds the augmentation.

    Sample keys: ``index`` or ``(index, epoch)``; the draws come from
    ``numpy.random.default_rng([seed, epoch, index])`` (``index`` alone is epoch 0).

    Shape:
        {"input": Tensor[4, H, W] (normalised RGB, trimap / 255), "image": Tensor[3, H, W]
        (normalised), "trimap": Tensor[1, H, W] uint8 in {0, 128, 255}, "alpha": Tensor[1, H, W]
        in [0, 1], "fg", "bg": Tensor[3, H, W] in [0, 1]} with (H, W) = ``crop_size``.
    """

    def __init__(self, root: str | os.PathLike, crop_size: tuple[int, int] = (512, 512), seed: int = 0) -> None:
        height, width = check_size("crop_size", crop_size, low=2, layout="(S, S)")
        if height != width:
            raise ValueError(f"crop_size: expected a square (S, S) with S >= 2, as A2U crops, got {crop_size!r}")
        check_int("seed", seed, 0)
        self.root = find_adobe_matting(root, "Training_set")
        self.fg_names = _names(self.root / "training_fg_names.txt")
        self.bg_names = _names(self.root / "training_bg_names.txt")
        _check_listed(self.root / "fg", self.fg_names, "foregrounds")
        _check_listed(self.root / "alpha", self.fg_names, "alpha mattes (named as the foregrounds)")
        _check_listed(self.root / "train2014", sorted(set(self.bg_names)), "backgrounds (MS-COCO train2014)")
        if len(self.bg_names) < 2:
            raise DataError(self.root / "training_bg_names.txt", "at least 2 background names", "1")
        self.crop_size, self.seed = tuple(crop_size), seed

    def __len__(self) -> int:
        return len(self.bg_names)

    def load_foreground(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """Foreground ``number``: uint8 RGB array[H, W, 3] and float32 alpha [H, W] in [0, 1]."""
        name = self.fg_names[number]
        fg = read_image(self.root / "fg" / name, "RGB")
        alpha = _read_alpha(self.root / "alpha" / name)
        _same_size(self.root / "alpha" / name, alpha, fg.shape[:2], "an alpha matte of its foreground's size")
        return fg, alpha

    def load_background(self, number: int) -> np.ndarray:
        """Background ``number`` of the list as uint8 RGB array[H, W, 3]."""
        return read_image(self.root / "train2014" / self.bg_names[number], "RGB")

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        index, epoch = check_key(key, len(self))
        rng = np.random.default_rng([self.seed, epoch, index])
        fg, alpha = self.load_foreground(int(index) % len(self.fg_names))
        bg = self.load_background(int(rng.integers(0, len(self.bg_names) - 1)))
        fg, alpha = self._composite_foregrounds(rng, int(index), fg, alpha)
        fg, alpha = self._affine(rng, fg, alpha)
        if rng.random() < 0.5:
            fg, alpha = fg[:, ::-1], alpha[:, ::-1]
        trimap = random_trimap(rng, np.ascontiguousarray(alpha))
        fg, alpha, trimap, bg = self._crop(rng, np.ascontiguousarray(fg), np.ascontiguousarray(alpha), trimap, bg)
        fg = np.clip(hsv_jitter(rng, fg, alpha), 0, 255)
        alpha = np.clip(alpha, 0, 1)
        bg = bg.astype(np.float32)
        image = fg * alpha[..., None] + bg * (1 - alpha[..., None])
        sample = _matting_sample(image, trimap, alpha)
        sample["fg"] = torch.from_numpy(np.ascontiguousarray(fg)).permute(2, 0, 1) / 255.0
        sample["bg"] = torch.from_numpy(np.ascontiguousarray(bg)).permute(2, 0, 1) / 255.0
        return sample

    def _composite_foregrounds(
        self, rng: np.random.Generator, index: int, fg: np.ndarray, alpha: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Step 2: the occasional second foreground, then the occasional resize to 640 x 640."""
        if rng.random() < 0.5:
            fg2, alpha2 = self.load_foreground((int(rng.integers(len(self.fg_names))) + index) % len(self.fg_names))
            fg2, alpha2 = resize(fg2, alpha.shape, "nearest"), resize(alpha2, alpha.shape, "nearest")
            combined = 1 - (1 - alpha) * (1 - alpha2)
            if (combined < 1).any():
                a1, a2 = alpha[..., None], alpha2[..., None]
                mixed = fg.astype(np.float32) * a1 + fg2.astype(np.float32) * (1 - a1) * a2
                fg = (mixed / (combined[..., None] + np.float32(1e-5))).astype(np.uint8)
                alpha = combined
        if rng.random() < 0.25:
            fg, alpha = resize(fg, (640, 640), "nearest"), resize(alpha, (640, 640), "nearest")
        return fg, alpha

    @staticmethod
    def _affine(rng: np.random.Generator, fg: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step 3: A2U's RandomAffine(degrees=30, scale=[0.8, 1.25], shear=10, flip=0.5)."""
        rows, cols = alpha.shape
        angle = rng.uniform(-30, 30) if max(rows, cols) >= 1024 else 0.0
        scale = (rng.uniform(0.8, 1.25), rng.uniform(0.8, 1.25))
        shear = rng.uniform(-10, 10)
        flip = tuple(int(v) for v in np.where(rng.random(2) < 0.5, 1, -1))
        matrix = affine_matrix((cols * 0.5 + 0.5, rows * 0.5 + 0.5), angle, scale, shear, flip)
        return warp_nearest(fg, matrix), warp_nearest(alpha, matrix)

    def _crop(
        self, rng: np.random.Generator, fg: np.ndarray, alpha: np.ndarray, trimap: np.ndarray, bg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step 5: A2U's RandomCrop (background enlarged to cover, small images enlarged first)."""
        side = self.crop_size[0]
        height, width = trimap.shape
        ratio = max(height / bg.shape[0], width / bg.shape[1])
        if ratio > 1:
            bg = resize(bg, (math.ceil(bg.shape[0] * ratio), math.ceil(bg.shape[1] * ratio)), "bicubic")
        ratio = 1.1 * side / min(height, width)
        while height < side + 1 or width < side + 1:  # once, unless the crop is tiny
            size = (int(height * ratio), int(width * ratio))
            fg, alpha, trimap = (resize(a, size, "nearest") for a in (fg, alpha, trimap))
            bg = resize(bg, (int(bg.shape[0] * ratio), int(bg.shape[1] * ratio)), "bicubic")
            height, width = trimap.shape
        corner = unknown_centred_crop(rng, trimap, self.crop_size)
        if corner is None:
            fg, alpha, trimap = (resize(a, self.crop_size, "nearest") for a in (fg, alpha, trimap))
            return fg, alpha, trimap, resize(bg, self.crop_size, "bicubic")
        window = (slice(corner[0], corner[0] + side), slice(corner[1], corner[1] + side))
        return fg[window], alpha[window], trimap[window], bg[window]


class Composition1K(Dataset):
    """The Composition-1K test set: merged images with their trimaps and ground-truth alphas at full size.

    Args:
        root: ``Combined_Dataset``, its parent, ``Test_set`` or a ``Composition-1k-testset`` folder;
            it must hold merged/ and trimaps/ (same file names) and either alpha_copy/ (same names)
            or alpha/ (``NAME.png`` for merged ``NAME_k.png``).

    Shape:
        {"input": Tensor[4, H, W], "image": Tensor[3, H, W] (normalised), "trimap": Tensor[1, H, W]
        uint8 in {0, 128, 255}, "alpha": Tensor[1, H, W] in [0, 1]}; sizes vary, batch one image
        at a time (or pad).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = find_adobe_matting(root, "Test_set")
        merged_dir, trimap_dir = self.root / "merged", self.root / "trimaps"
        for folder in (merged_dir, trimap_dir):
            if not folder.is_dir():
                raise DataError(folder, "a folder of the Composition-1K layout (merged/, trimaps/, alpha/)", "nothing")
        merged = sorted(name for name in os.listdir(merged_dir) if not name.startswith("."))
        if not merged:
            raise DataError(merged_dir, "the merged test images", "an empty folder")
        _check_listed(trimap_dir, merged, "trimaps (named as the merged images)")
        if (self.root / "alpha_copy").is_dir():
            alphas = [self.root / "alpha_copy" / name for name in merged]
            _check_listed(self.root / "alpha_copy", merged, "alpha mattes (named as the merged images)")
        else:
            alphas = self._alphas_by_foreground(merged)
        self.files = [(merged_dir / name, trimap_dir / name, alpha) for name, alpha in zip(merged, alphas)]

    def _alphas_by_foreground(self, merged: list[str]) -> list[Path]:
        """alpha/NAME.* (any image suffix) of each merged ``NAME_k.*``, as Adobe's compose script names them."""
        alpha_dir = self.root / "alpha"
        if not alpha_dir.is_dir():
            raise DataError(alpha_dir, "the test alpha mattes (alpha/ or alpha_copy/)", "no such folder")
        by_stem = {Path(name).stem: alpha_dir / name for name in os.listdir(alpha_dir) if not name.startswith(".")}
        alphas = []
        for name in merged:
            stem = Path(name).stem.rsplit("_", 1)[0]
            if stem not in by_stem:
                merged_path = self.root / "merged" / name
                raise DataError(alpha_dir / f"{stem}.png", f"the alpha matte of {merged_path}", "no such file")
            alphas.append(by_stem[stem])
        return alphas

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise IndexError(f"index: expected an integer in [0, {len(self)}), got {index!r}")
        image_path, trimap_path, alpha_path = self.files[index]
        image = read_image(image_path, "RGB")
        trimap = read_image(trimap_path, "L")
        alpha = _read_alpha(alpha_path)
        _same_size(trimap_path, trimap, image.shape[:2], "a trimap of its image's size")
        _same_size(alpha_path, alpha, image.shape[:2], "an alpha matte of the merged image's size")
        stray = ~np.isin(trimap, (TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND))
        if stray.any():
            raise DataError(trimap_path, "trimap values 0, 128 and 255 only", f"the value {int(trimap[stray][0])}")
        return _matting_sample(image.astype(np.float32), trimap, alpha)
