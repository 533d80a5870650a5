"""The validation split: seeded, stratified by class (or by group: whole speakers), disjoint
from what is trained on, and the same for every run seed."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.training.config import config_from_dict
from proxcompress.training.data import Dataset, split_validation
from proxcompress.training.trainer import run_data


def _data(labels: list[int], groups: list[int] | None = None) -> Dataset:
    n = len(labels)
    # the sample's index as its only feature, so the parts can be traced back
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1)
    return Dataset(x, torch.tensor(labels), 10, "d",
                   None if groups is None else torch.tensor(groups))


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 9), min_size=12, max_size=300),
       fraction=st.sampled_from([0.05, 0.1, 0.2, 0.5]), seed=st.integers(0, 2**31))
def test_stratified_split_by_class(labels: list[int], fraction: float, seed: int) -> None:
    data = _data(labels)
    expected = sum(round(fraction * labels.count(c)) for c in set(labels))
    if not 0 < expected < len(labels):
        with pytest.raises(InvalidInputError, match="data.val_fraction"):
            split_validation(data, fraction, seed)
        return
    train, val = split_validation(data, fraction, seed)
    assert val is not None
    a, b = train.x.flatten().long().tolist(), val.x.flatten().long().tolist()
    assert sorted(a + b) == list(range(len(labels)))  # a partition of the samples
    assert a == sorted(a) and b == sorted(b)  # each part in the data's order
    for c in set(labels):  # round(fraction * n_c) of every class
        assert int((val.y == c).sum()) == round(fraction * labels.count(c))
    assert torch.equal(train.y, data.y[train.x.flatten().long()])
    again = split_validation(data, fraction, seed)[1]
    assert again is not None and torch.equal(again.x, val.x)  # seeded


@settings(max_examples=40, deadline=None)
@given(groups=st.lists(st.integers(0, 11), min_size=4, max_size=200), seed=st.integers(0, 999),
       fraction=st.sampled_from([0.1, 0.25, 0.4]))
def test_grouped_split_takes_whole_groups(groups: list[int], seed: int, fraction: float) -> None:
    data = _data([g % 10 for g in groups], groups)
    distinct = len(set(groups))
    count = max(1, round(fraction * distinct))
    if count >= distinct:
        with pytest.raises(InvalidInputError, match="at least one must stay"):
            split_validation(data, fraction, seed)
        return
    train, val = split_validation(data, fraction, seed)
    assert val is not None and train.groups is not None and val.groups is not None
    held = set(val.groups.tolist())
    assert len(held) == count and not held & set(train.groups.tolist())
    assert len(train) + len(val) == len(groups)
    assert sorted(val.x.flatten().long().tolist()) == [i for i, g in enumerate(groups)
                                                       if g in held]


def test_no_validation_and_bad_fractions() -> None:
    data = _data([0, 1] * 10)
    assert split_validation(data, 0.0) == (data, None)
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(InvalidInputError, match="data.val_fraction"):
            split_validation(data, bad)
    with pytest.raises(InvalidInputError, match=r"data.val_fraction.*\[0, 0.5\]"):
        config_from_dict({"data": {"val_fraction": 0.6}})


def test_run_split_is_the_same_for_every_run_seed() -> None:
    """The validation split depends on ``data.val_seed`` only, so the rows of a table (and
    their seeds) are compared and tuned on the same held-out images; the training subset is
    drawn from what is left."""
    def split(seed: int, **data: object) -> tuple[Dataset, Dataset | None, Dataset]:
        return run_data(config_from_dict({"seed": seed, "data": {"name": "embedded", **data}}))

    train0, val0, test0 = split(0)
    train1, val1, _ = split(5)
    assert val0 is not None and val1 is not None and torch.equal(val0.x, val1.x)
    assert (len(train0), len(val0), len(test0)) == (3600, 400, 1000)
    assert torch.bincount(val0.y).tolist() == [40] * 10  # the embedded set is balanced
    assert torch.equal(train0.x, train1.x)
    sub, val2, _ = split(1, train_subset=500)
    assert val2 is not None and torch.equal(val2.x, val0.x) and len(sub) == 500
    flat = train0.x.flatten(1)
    rows = {tuple(r.tolist()) for r in flat[:, ::7]}  # no held-out image is trained on
    assert not any(tuple(r.tolist()) in rows for r in val0.x.flatten(1)[:, ::7])
    other = split(0, val_seed=1)[1]
    assert other is not None and not torch.equal(other.x, val0.x)
