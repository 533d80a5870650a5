"""Primal heuristics of ``bnb``: incumbents for the layer pruning MIP.

Every candidate support is scored exactly (:class:`Incumbent`, through
:class:`~proxcompress.formulations.restricted.SupportSolver`, with a cache), so a heuristic can
only propose; what it proposes is never trusted.

- :func:`l0_path`: the L0 regularisation path (as in L0Learn, Hazimeh and Mazumder, *Fast best
  subset selection*, Oper. Res. 2020): block coordinate descent on
  ``1/2 ||C - AW||^2 + c_0 + sum_i a_i ||W_i||^2 + mu |support|`` for a decreasing grid of count
  prices ``mu``, warm-started along the path; each block step is the exact prox of the L0L2
  penalty for the linearised loss (keep the ridge-and-box step when it gains more than ``mu``,
  else zero). A free group at zero enters when its gain beats ``mu`` (screened for all groups
  at once from ``A^T R``). Every support on the path (trimmed to the budget by block norm) is
  offered.
- :func:`swap_search`: first-improvement local search by drops, adds and swaps (one group out,
  one in) from a support, the groups outside ranked by the conjugate slope of the exact
  solution's residual (the gain their entry promises), the groups inside by block norm.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from proxcompress.formulations.blocks import apply_block, gradient_step
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.restricted import SupportSolver
from proxcompress.numba_cache import njit

if TYPE_CHECKING:  # pragma: no cover
    from proxcompress.formulations.bnb import _Engine

FloatArray = NDArray[np.float64]

#: grid points of the L0 path, coordinate sweeps per point (at most)
PATH_POINTS = 16
PATH_SWEEPS = 30
#: groups outside the support tried per swap round (ranked by their slope)
SWAP_WIDTH = 40


class Incumbent:
    """The best support found so far, every candidate scored exactly (cached)."""

    def __init__(self, problem: LayerPruningProblem, solver: SupportSolver) -> None:
        self.problem = problem
        self.solver = solver
        self.cache: dict[tuple[int, ...], float] = {}
        self.support: tuple[int, ...] = ()
        self.value = self.value_of(())

    def value_of(self, support: tuple[int, ...]) -> float:
        """The exact optimum of ``support`` (cached)."""
        if support not in self.cache:
            self.cache[support] = self.solver.solve(support)[1]
        return self.cache[support]

    def offer(self, support: tuple[int, ...]) -> float:
        """Score ``support`` (sorted, within the budget) and keep it if it is the best."""
        support = tuple(sorted(support))
        value = self.value_of(support)
        if value < self.value - 1e-12 * max(1.0, abs(self.value)):
            self.support, self.value = support, value
        return value


@njit(cache=True)
def _l0_cd(
    AT: FloatArray,
    R: FloatArray,
    W: FloatArray,
    lip: FloatArray,
    starts: NDArray[np.int64],
    groups: NDArray[np.int64],
    a: FloatArray,
    price: float,
    M: float,
    n_sweeps: int,
) -> int:
    """Block coordinate descent with the L0L2 prox over ``groups``; returns how many blocks
    changed their zero pattern in the last sweep (0: a fixed point)."""
    m = W.shape[1]
    flips = 0
    for _ in range(n_sweeps):
        flips = 0
        for g in groups:
            s = starts[g]
            e = starts[g + 1]
            was = False
            for i in range(s, e):
                for j in range(m):
                    if W[i, j] != 0.0:
                        was = True
            V = np.zeros((e - s, m))
            if lip[g] > 0.0:
                t = 1.0 / lip[g]
                V = gradient_step(AT, R, W, s, e, t)
                gain = 0.0
                for i in range(e - s):
                    for j in range(m):
                        v = V[i, j]
                        w = v / (1.0 + 2.0 * t * a[s + i])
                        w = M if w > M else (-M if w < -M else w)
                        gain += (v * v - (w - v) * (w - v)) / (2.0 * t) - a[s + i] * w * w
                        V[i, j] = w
                if gain <= price:
                    V[:, :] = 0.0
            now = False
            for i in range(e - s):
                for j in range(m):
                    if V[i, j] != 0.0:
                        now = True
            apply_block(AT, R, W, V, s, e)
            if now != was:
                flips += 1
        if flips == 0:
            break
    return flips


@njit(cache=True)
def _entry_gains(
    G: FloatArray, lip: FloatArray, starts: NDArray[np.int64], a: FloatArray, M: float
) -> FloatArray:
    """Gain of the L0L2 prox step of every group from zero, given ``G = A^T R`` (the negative
    gradient): ``sum [v^2 - (w - v)^2] / (2t) - a w^2`` with ``v = t G``,
    ``w = clip(v / (1 + 2 t a))``."""
    n_groups = starts.shape[0] - 1
    out = np.zeros(n_groups)
    for g in range(n_groups):
        if lip[g] <= 0.0:
            continue
        t = 1.0 / lip[g]
        total = 0.0
        for i in range(starts[g], starts[g + 1]):
            for j in range(G.shape[1]):
                v = t * G[i, j]
                w = v / (1.0 + 2.0 * t * a[i])
                w = M if w > M else (-M if w < -M else w)
                total += (v * v - (w - v) * (w - v)) / (2.0 * t) - a[i] * w * w
        out[g] = total
    return out


def _group_norms(engine: _Engine, W: FloatArray) -> FloatArray:
    return np.add.reduceat(np.sum(W**2, axis=1), engine.starts[:-1])


def l0_path(
    engine: _Engine, incumbent: Incumbent, budget: int, deadline: float,
    points: int = PATH_POINTS,
) -> None:
    """Offer the supports of the L0 path (module docstring) to ``incumbent``."""
    p = engine.p
    W = np.zeros((p.d, p.m))
    R = engine.residual(W)
    gains = _entry_gains(engine.gradient(R), engine.lip, engine.starts, engine.a, engine.M)
    top = float(gains.max(initial=0.0))
    low = max(engine.b, 1e-12 * max(top, 1e-300))
    if top <= low:
        return
    for price in np.geomspace(top * 0.999, low, points):
        if time.perf_counter() >= deadline:
            return
        for _ in range(PATH_SWEEPS):
            active = np.flatnonzero(_group_norms(engine, W) > 0).astype(np.int64)
            if active.size:
                _l0_cd(engine.AT, R, W, engine.lip, engine.starts, active, engine.a, price,
                       engine.M, 3)
            R = engine.residual(W)
            gains = _entry_gains(engine.gradient(R), engine.lip, engine.starts, engine.a, engine.M)
            zero = _group_norms(engine, W) == 0
            entering = np.flatnonzero(zero & (gains > price))
            if entering.size == 0:
                break
            # the strongest entrants first (at most the free budget's worth per round)
            entering = entering[np.argsort(-gains[entering])][: max(1, budget)]
            _l0_cd(engine.AT, R, W, engine.lip, engine.starts, entering.astype(np.int64),
                   engine.a, price, engine.M, 1)
            R = engine.residual(W)
        norms = _group_norms(engine, W)
        kept = np.flatnonzero(norms > 0)
        if kept.size > budget:
            kept = kept[np.argsort(-norms[kept])][:budget]
        incumbent.offer(tuple(int(g) for g in kept))


def _slopes_at(
    engine: _Engine, solver: SupportSolver, support: tuple[int, ...]
) -> tuple[FloatArray, FloatArray]:
    """Conjugate slopes (the gain an entry promises) of every group at the exact solution of
    ``support``, and the block norms of that solution."""
    from proxcompress.formulations.bnb import _slopes  # bnb imports this module

    W = engine.from_problem_order(solver.solve(support)[0])
    R = engine.residual(W)
    slopes = _slopes(engine.gradient(R), 1.0, engine.starts, engine.a, engine.b, engine.M)
    return slopes, _group_norms(engine, W)


def swap_search(
    engine: _Engine, incumbent: Incumbent, seed: tuple[int, ...], budget: int, deadline: float,
    width: int = SWAP_WIDTH,
) -> tuple[int, ...]:
    """First-improvement drops, adds and swaps from ``seed`` until no move helps (or the
    deadline); every support visited is offered. Returns the local optimum."""
    current = tuple(sorted(seed))[:budget]
    value = incumbent.offer(current)
    n_groups = engine.p.n_groups
    while time.perf_counter() < deadline:
        slopes, norms = _slopes_at(engine, incumbent.solver, current)
        inside = sorted(current, key=lambda g: norms[g])
        outside = np.setdiff1d(np.arange(n_groups), np.asarray(current, dtype=np.int64))
        outside = outside[np.argsort(-slopes[outside], kind="stable")][:width]
        moves: list[tuple[int, ...]] = [tuple(h for h in current if h != g) for g in inside]
        if len(current) < budget:
            moves += [tuple(sorted((*current, int(g)))) for g in outside]
        moves += [
            tuple(sorted((*(h for h in current if h != g), int(o))))
            for o in outside
            for g in inside
        ]
        improved = False
        for move in moves:
            if time.perf_counter() >= deadline:
                break
            move_value = incumbent.offer(move)
            if move_value < value - 1e-12 * max(1.0, abs(value)):
                current, value, improved = move, move_value, True
                break
        if not improved:
            break
    return current
