"""The cases the last full probe run (benchmarks/reliability_probe.py) found answered with a
traceback, kept as regression tests."""

from __future__ import annotations

import pytest

from proxcompress.errors import InvalidInputError
from proxcompress.formulations import random_instance, solve_support
from proxcompress.training import build_model
from proxcompress.training.runchecks import MAX_PARAMETERS


@pytest.mark.parametrize("support", [(99,), (-1,), (0, 0)])
def test_solve_support_refuses_groups_it_does_not_have(support: tuple[int, ...]) -> None:
    problem = random_instance(n=20, d=6, m=1, n_groups=3, seed=0)
    with pytest.raises(InvalidInputError) as info:
        solve_support(problem, support)
    assert info.value.field == "support"


@pytest.mark.parametrize(("name", "kwargs", "field"), [
    ("mlp", {"hidden": (10**9,)}, "hidden"),
    ("vgg", {"width": 10**5}, "width"),
])
def test_build_model_refuses_a_model_it_cannot_allocate(name: str, kwargs: dict[str, object],
                                                        field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_model(name, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field and f"{MAX_PARAMETERS:,}" in info.value.detail


def test_a_model_below_the_limit_is_built_as_before() -> None:
    model = build_model("mlp", hidden=(64,))  # linear without bias before BatchNorm
    assert sum(p.numel() for p in model.parameters()) == 784 * 64 + 2 * 64 + 64 * 10 + 10
