"""The suite's input errors cross process boundaries intact (a training run in a worker process
that refuses its config reaches the reproduce stage as that error, not as a broken pool)."""

from __future__ import annotations

import pickle

import pytest

from proxcompress.errors import InvalidInputError, MissingInputError


@pytest.mark.parametrize("cls", [InvalidInputError, MissingInputError])
def test_pickles_with_its_field(cls: type[InvalidInputError]) -> None:
    error = cls("model.vit.pyramid", "needs an even patch (got 3)")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert (again.field, again.detail, str(again)) == (error.field, error.detail, str(error))
