import numpy as np
import pytest
import torch
from skimage.io import imread

from fade.data.preview import label_colours, main, preset_samples
from fade.train.presets import get_preset
from fade.train.trainer import build_data


def test_preview_command_writes_viewable_grids_of_the_presets(tmp_path, capsys):
    main(["--out", str(tmp_path), "--count", "2", "--preset", "segmentation/binary", "--preset", "matting/quick"])
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "segmentation-binary.png"), str(tmp_path / "matting-quick.png")]
    for name, rows in (("segmentation-binary.png", 2), ("matting-quick.png", 5)):
        image = imread(tmp_path / name)
        assert image.ndim == 3 and image.shape[0] >= 100 * rows and image.shape[1] >= 2 * 100
        assert image[..., :3].std() > 20  # not a blank canvas


@pytest.mark.parametrize("key", ["segmentation/cpu", "segmentation/segnet", "matting/cpu"])
def test_previewed_samples_are_the_ones_the_preset_trains_on(key):
    preset = get_preset(*key.split("/")).replace(train_length=3, test_length=1)
    samples, _ = preset_samples(preset, "train", 3)
    trained, _ = build_data(preset)
    for i, sample in enumerate(samples):
        for name, tensor in trained[i].items():
            assert torch.equal(sample[name], tensor), (key, i, name)


def test_a_wrong_preset_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path), "--preset", "segmentation/huge"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and "error: preset: expected one of" in err[-1] and "'huge'" in err[-1]


def test_label_colours_distinct():
    colours = label_colours()
    assert colours.shape == (11, 3)
    assert len({tuple(np.round(c, 3)) for c in colours}) == 11
    assert label_colours(2).shape == (2, 3)
    with pytest.raises(ValueError, match="count"):
        label_colours(12)
