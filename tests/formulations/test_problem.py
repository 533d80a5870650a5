"""LayerPruningProblem: validation names the field, objective matches a direct evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from proxcompress.errors import InvalidInputError
from proxcompress.formulations import LayerPruningProblem, random_instance, solve_support


def _base(**overrides):
    rng = np.random.default_rng(0)
    args = dict(
        X=rng.standard_normal((20, 6)),
        Y=rng.standard_normal(20),
        groups=[0, 0, 1, 1, 2, 2],
        lam=1.0,
        alpha=0.5,
        M=3.0,
    )
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"M": 0.0}, "M"),
        ({"M": -1.0}, "M"),
        ({"lam": -0.1}, "lam"),
        ({"k": -1}, "k"),
        ({"k": 1.5}, "k"),
        ({"groups": [0, 0, 2, 2, 3, 3]}, "groups"),  # group 1 empty
        ({"groups": [0, 0, 1]}, "groups"),
        ({"groups": [0.5, 0, 1, 1, 2, 2]}, "groups"),
        ({"groups": [-1, 0, 1, 1, 2, 2]}, "groups"),
        ({"Y": np.zeros(19)}, "Y"),
        ({"X": np.full((20, 6), np.inf)}, "X"),
        ({"Y": np.full(20, np.nan)}, "Y"),
        ({"X": np.zeros((0, 6))}, "X"),
    ],
)
def test_bad_input_names_the_field(overrides, field):
    with pytest.raises(InvalidInputError) as info:
        LayerPruningProblem(**_base(**overrides))
    assert info.value.field == field
    assert field in str(info.value)


def test_infeasible_budget_says_so():
    with pytest.raises(InvalidInputError, match="infeasible"):
        LayerPruningProblem(**_base(k=-2))


def test_one_dimensional_y_means_one_output():
    problem = LayerPruningProblem(**_base())
    assert problem.Y.shape == (20, 1)
    assert problem.n_groups == 3
    assert [rows.tolist() for rows in problem.group_rows] == [[0, 1], [2, 3], [4, 5]]


def test_objective_matches_direct_formula():
    problem = random_instance(30, 8, 2, 4, seed=3)
    rng = np.random.default_rng(1)
    W = rng.uniform(-problem.M, problem.M, size=(8, 2))
    W[problem.groups == 2] = 0.0
    expected = 0.5 * np.sum((problem.Y - problem.X @ W) ** 2) + problem.lam * (
        problem.alpha * np.sum(W**2) + (1 - problem.alpha) * 3
    )
    assert problem.objective(W) == pytest.approx(expected, rel=1e-12)
    assert problem.support_of(W) == (0, 1, 3)


def test_objective_rejects_weights_off_the_support_or_above_m():
    problem = random_instance(30, 8, 1, 4, seed=3)
    W = np.zeros((8, 1))
    W[0] = 1e-3
    with pytest.raises(InvalidInputError, match="outside the support"):
        problem.objective(W, support=(1,))
    W[0] = 2 * problem.M
    with pytest.raises(InvalidInputError, match="big-M"):
        problem.objective(W)


def test_npz_round_trip_and_errors(tmp_path):
    problem = random_instance(25, 6, 2, 3, seed=4, k=2)
    path = tmp_path / "p.npz"
    problem.to_npz(path)
    again = LayerPruningProblem.from_npz(path)
    np.testing.assert_array_equal(again.X, problem.X)
    np.testing.assert_array_equal(again.groups, problem.groups)
    assert (again.lam, again.alpha, again.M, again.k) == (problem.lam, problem.alpha, problem.M, 2)

    np.savez(tmp_path / "missing.npz", X=problem.X, Y=problem.Y, groups=problem.groups)
    with pytest.raises(InvalidInputError) as info:
        LayerPruningProblem.from_npz(tmp_path / "missing.npz")
    assert info.value.field == "lam"

    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(InvalidInputError, match="not an .npz"):
        LayerPruningProblem.from_npz(tmp_path / "junk.npz")

    np.savez(
        tmp_path / "pickled.npz",
        X=problem.X,
        Y=problem.Y,
        groups=problem.groups,
        lam=np.array([{"a": 1}], dtype=object),
        alpha=0.5,
        M=1.0,
    )
    with pytest.raises(InvalidInputError):
        LayerPruningProblem.from_npz(tmp_path / "pickled.npz")


def test_support_solver_is_exact_kkt():
    """The restricted optimum satisfies the box-QP optimality conditions."""
    problem = random_instance(40, 10, 2, 5, seed=7, M=0.4)
    support = (0, 2, 3)
    W, value = solve_support(problem, support)
    rows = np.flatnonzero(np.isin(problem.groups, support))
    grad = -(problem.X.T @ (problem.Y - problem.X @ W)) + 2 * problem.lam * problem.alpha * W
    for i in rows:
        for j in range(problem.m):
            w, g = W[i, j], grad[i, j]
            if abs(w) < problem.M - 1e-9:
                assert abs(g) < 1e-7 * max(1.0, np.abs(grad).max())
            else:  # at the bound the gradient pushes outward
                assert g * np.sign(w) <= 1e-7
    assert value == pytest.approx(problem.objective(W, support), rel=1e-10)
