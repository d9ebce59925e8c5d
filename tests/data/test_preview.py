import numpy as np
from skimage.io import imread

from fade.data.preview import label_colours, main


def test_preview_command_writes_viewable_grids(tmp_path, capsys):
    main(["--out", str(tmp_path), "--count", "2", "--size", "40", "56", "--split", "test"])
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "segmentation.png"), str(tmp_path / "matting.png")]
    for name, rows in (("segmentation.png", 2), ("matting.png", 5)):
        image = imread(tmp_path / name)
        assert image.ndim == 3 and image.shape[0] >= 100 * rows and image.shape[1] >= 2 * 100
        assert image[..., :3].std() > 20  # not a blank canvas


def test_label_colours_distinct():
    colours = label_colours()
    assert colours.shape == (11, 3)
    assert len({tuple(np.round(c, 3)) for c in colours}) == 11
