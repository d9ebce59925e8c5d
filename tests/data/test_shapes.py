import math

import numpy as np
import pytest
import torch
from matplotlib.path import Path as PolygonPath

from fade.data import denormalize_image
from fade.data.shapes import SHAPES, PlacedShape, ShapeSegmentation, shape_classes, shape_coverage


def naive_coverage(shape: PlacedShape, size, s: int, inside) -> np.ndarray:
    """Float64 loops over pixels and sub-pixel centres; ``inside(u, v)`` in the shape's unit frame."""
    out = np.zeros(size)
    cos, sin = math.cos(shape.angle), math.sin(shape.angle)
    for i in range(size[0]):
        for j in range(size[1]):
            hits = 0
            for a in range(s):
                for b in range(s):
                    y = i + (a + 0.5) / s - shape.centre_y
                    x = j + (b + 0.5) / s - shape.centre_x
                    hits += inside((cos * x + sin * y) / shape.radius, (-sin * x + cos * y) / shape.radius)
            out[i, j] = hits / s**2
    return out


def test_ellipse_coverage_matches_a_naive_loop_on_a_non_square_canvas():
    shape = PlacedShape("ellipse", 5.3, 7.9, 4.2, 0.6, 0.7)
    expected = naive_coverage(shape, (11, 17), 3, lambda u, v: u * u + (v / 0.6) ** 2 <= 1.0)
    np.testing.assert_allclose(shape_coverage(shape, (11, 17), 3).numpy(), expected, atol=1e-6)


def test_star_coverage_matches_matplotlib_point_in_polygon():
    shape = PlacedShape("star", 9.0, 8.4, 7.5, 1.0, 0.3)
    angles = np.pi / 2 + np.pi * np.arange(10) / 5
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
    star = PolygonPath(np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1), closed=False)
    expected = naive_coverage(shape, (18, 17), 2, lambda u, v: star.contains_point((u, v)))
    np.testing.assert_allclose(shape_coverage(shape, (18, 17), 2).numpy(), expected, atol=1e-6)


# Hand-computed areas at radius 1: pi a; 4 a / (1 + a^2) (corners on the unit circle); 3 sqrt(3) / 4;
# ten triangles of sides 1 and 0.45 at 36 degrees; two 2L x 2W arms minus their 2W x 2W overlap.
AREAS = {
    "ellipse": math.pi * 0.7,
    "rectangle": 4 * 0.7 / 1.49,
    "triangle": 3 * math.sqrt(3) / 4,
    "star": 10 * 0.5 * 0.45 * math.sin(math.pi / 5),
    "cross": 8 * (1 / math.sqrt(1.09)) * (0.3 / math.sqrt(1.09)) - 4 * (0.3 / math.sqrt(1.09)) ** 2,
}


@pytest.mark.parametrize("kind", SHAPES)
def test_supersampled_area_converges_to_the_true_area(kind):
    radius = 20.0
    shape = PlacedShape(kind, 25.0, 25.0, radius, 0.7, 0.4)
    total = float(shape_coverage(shape, (50, 50), 8).sum())
    assert total == pytest.approx(AREAS[kind] * radius**2, rel=0.01)


def test_objects_off_the_canvas_cover_nothing():
    shape = PlacedShape("ellipse", -30.0, 5.0, 4.0, 1.0, 0.0)
    assert shape_coverage(shape, (8, 8), 4).sum() == 0


def test_labels_are_the_topmost_object_covering_half_a_pixel_and_the_image_mixes_by_coverage():
    data = ShapeSegmentation("test", size=(24, 30), num_objects=(3, 3), area=(0.1, 0.2), seed=5, length=3)
    for index in range(3):
        background, objects = data.layout(index)
        sample = data[index]
        expected_label = np.zeros((24, 30), dtype=np.int64)
        expected_image = background.double().numpy()
        for shape, paint in objects:
            cover = shape_coverage(shape, (24, 30), data.supersample).double().numpy()
            expected_image = cover * paint.double().numpy() + (1 - cover) * expected_image
            expected_label[cover >= 0.5] = 1 + SHAPES.index(shape.kind)
        np.testing.assert_array_equal(sample["label"].numpy(), expected_label)
        np.testing.assert_allclose(denormalize_image(sample["image"]).numpy(), expected_image, atol=1e-5)
        assert set(np.unique(expected_label)) - {0}


def test_binary_labels_are_objects_versus_background():
    multi = ShapeSegmentation("train", seed=2, length=4)
    binary = ShapeSegmentation("train", binary=True, seed=2, length=4)
    assert binary.classes == ("background", "object") and multi.classes == shape_classes(False)
    for i in range(4):
        assert torch.equal(binary[i]["label"], (multi[i]["label"] > 0).long())
        assert torch.equal(binary[i]["image"], multi[i]["image"])


def test_classes_are_balanced_in_objects_and_pixels():
    data = ShapeSegmentation("train", size=(32, 32), num_objects=(1, 1), seed=0, length=400)
    kinds, pixels = [], np.zeros(len(SHAPES))
    for i in range(len(data)):
        shape = data.layout(i)[1][0][0]
        kinds.append(SHAPES.index(shape.kind))
        pixels[kinds[-1]] += float(shape_coverage(shape, data.size, 4).sum())
    counts = np.bincount(kinds, minlength=len(SHAPES))
    assert counts.min() > 0.7 * 400 / len(SHAPES) and counts.max() < 1.3 * 400 / len(SHAPES)
    per_object = pixels / counts
    assert per_object.max() < 1.35 * per_object.min()


def test_same_seed_same_bytes_in_any_order_and_splits_differ():
    a = ShapeSegmentation("test", seed=3, length=10)
    b = ShapeSegmentation("test", seed=3, length=10)
    forward = [a[i]["image"].numpy().tobytes() for i in (0, 9)]
    assert forward == [b[i]["image"].numpy().tobytes() for i in (9, 0)][::-1]
    assert ShapeSegmentation("train", seed=3, length=10)[0]["image"].numpy().tobytes() != forward[0]
    assert ShapeSegmentation("test", seed=4, length=10)[0]["image"].numpy().tobytes() != forward[0]


def test_bad_arguments_are_refused_with_the_argument_named():
    with pytest.raises(TypeError, match="binary: expected a bool"):
        ShapeSegmentation(binary=1)
    with pytest.raises(ValueError, match="num_objects"):
        ShapeSegmentation(num_objects=(3, 1))
    with pytest.raises(ValueError, match="area"):
        ShapeSegmentation(area=(0.0, 0.2))
    with pytest.raises(ValueError, match="size"):
        ShapeSegmentation(size=(0, 5))
    with pytest.raises(ValueError, match="split"):
        ShapeSegmentation("val")
    with pytest.raises(IndexError, match="index"):
        ShapeSegmentation(length=2)[2]
