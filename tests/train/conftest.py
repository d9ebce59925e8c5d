import pytest

from fade.train import Preset

# Tiny presets: a few steps on a few small samples, so that every test runs in about a second.
TINY = {
    "segmentation": Preset(
        task="segmentation",
        name="tiny",
        description="test",
        model="segformer_tiny",
        model_options={"num_classes": 11},
        data="composite_segmentation",
        size=(32, 32),
        train_length=12,
        test_length=4,
        batch_size=4,
        steps=6,
        lr=1e-3,
        weight_decay=0.01,
        warmup=0.2,
        checkpoint_every=2,
        log_every=1,
        eval_batch_size=4,
    ),
    "matting": Preset(
        task="matting",
        name="tiny",
        description="test",
        model="a2u_matting_tiny",
        model_options={"act_layer": "elu"},
        data="composite_matting",
        data_options={"alpha_gain": 2.0},
        size=(32, 32),
        train_length=8,
        test_length=4,
        batch_size=2,
        steps=4,
        lr=1e-3,
        optimizer="adam",
        checkpoint_every=2,
        log_every=1,
        eval_batch_size=4,
    ),
    "reconstruction": Preset(
        task="reconstruction",
        name="tiny",
        description="test",
        model="autoencoder",
        data="fashion_mnist",
        size=(28, 28),
        train_length=64,
        test_length=8,
        batch_size=8,
        steps=4,
        lr=3e-3,
        optimizer="adam",
        checkpoint_every=2,
        log_every=1,
        eval_batch_size=8,
    ),
}


@pytest.fixture(scope="session")
def tiny_data():
    """The tiny presets' (train, test) sets, rendered once per session."""
    from fade.train import build_data

    cache = {}

    def get(task: str):
        if task not in cache:
            cache[task] = build_data(TINY[task])
        return cache[task]

    return get
