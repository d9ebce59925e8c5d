import pytest
import torch

from fade.data import CompositeMatting, CompositeSegmentation, make_loader


def batches(loader):
    return [{k: v.clone() for k, v in batch.items()} for batch in loader]


def test_two_worker_loaders_yield_identical_batches():
    ds = CompositeSegmentation("test", size=(48, 64), seed=7, length=10)
    first = batches(make_loader(ds, batch_size=4, shuffle=True, num_workers=2, seed=11))
    second = batches(make_loader(ds, batch_size=4, shuffle=True, num_workers=2, seed=11))
    in_process = batches(make_loader(ds, batch_size=4, shuffle=True, num_workers=0, seed=11))
    assert [b["image"].shape for b in first] == [(4, 3, 48, 64), (4, 3, 48, 64), (2, 3, 48, 64)]
    for a, b, c in zip(first, second, in_process):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert torch.equal(a["image"], c["image"])
    # a shuffled epoch holds every sample once
    flat = torch.cat([b["image"] for b in first])
    direct = torch.stack([ds[i]["image"] for i in range(len(ds))])
    matches = [[torch.equal(x, y) for y in direct] for x in flat]
    assert sorted(row.index(True) for row in matches) == list(range(len(ds)))
    other = batches(make_loader(ds, batch_size=4, shuffle=True, num_workers=0, seed=12))
    assert not all(torch.equal(a["image"], b["image"]) for a, b in zip(first, other))


def test_unshuffled_matting_batches_follow_indices():
    ds = CompositeMatting("test", size=(40, 40), length=5)
    (batch,) = batches(make_loader(ds, batch_size=5, num_workers=2))
    assert batch["input"].shape == (5, 4, 40, 40) and batch["trimap"].dtype == torch.uint8
    assert torch.equal(batch["alpha"][3], ds[3]["alpha"])


def test_bad_loader_arguments():
    ds = CompositeMatting("test", length=2)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        make_loader(ds, batch_size=0)
    with pytest.raises(ValueError, match="num_workers: expected an integer >= 0, got -1"):
        make_loader(ds, batch_size=1, num_workers=-1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": "4"}, TypeError, "batch_size: expected an integer >= 1, got str '4'"),
        ({"batch_size": True}, TypeError, "batch_size: expected an integer >= 1, got bool True"),
        ({"num_workers": 1.0}, TypeError, "num_workers: expected an integer >= 0, got float 1.0"),
        ({"seed": "x"}, TypeError, "seed: expected an integer >= 0, got str 'x'"),
        ({"seed": 2**70}, ValueError, rf"seed: expected an integer in \[0, {2**63 - 1}\], got {2**70}"),
        ({"shuffle": "yes"}, TypeError, "shuffle: expected True or False, got str 'yes'"),
        ({"drop_last": None}, TypeError, "drop_last: expected True or False, got NoneType None"),
        ({"dataset": None}, TypeError, "dataset: expected a torch.utils.data.Dataset, got NoneType"),
    ],
)
def test_loader_arguments_of_the_wrong_type_or_range(kwargs, error, message):
    """Checked before torch builds anything (torch raised RuntimeError for a str seed, accepted None)."""
    arguments = {"dataset": CompositeMatting("test", length=2), "batch_size": 1, **kwargs}
    with pytest.raises(error, match=message):
        make_loader(**arguments)
