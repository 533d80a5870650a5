"""Generic checks that turn a pair's local facts into PC++ certificates.

The suite's working formalization of the PC++ decomposition criterion (methods.md section 1,
a reconstruction [D]/[U] of Lu, Yu, Li, Partovi Nia, NeurIPS 2023, arXiv:2402.17710):

* ``P = P^mu`` is a *proximal quantizer*: monotone non-decreasing, hence (compact-valued, closed
  graph after filling its finitely many jumps) the proximal map of some function ``r``
  (Yu, Zheng, Marchetti-Bowick, Xing, AISTATS 2015, Prop. 3);
* ``B`` is *admissible*: Lipschitz, differentiable almost everywhere;
* ``F = B o P`` identically, and ``B'`` is evaluated at ``P(w)``.

Then one PC++ step ``w <- w - eta B'(P(w)) grad l(F(w))`` is exactly a ProxConnect step
(Dockhorn et al., NeurIPS 2021, arXiv:2110.13220) on the composite loss ``l o B`` and inherits
its guarantees.

The checks, each returning a :class:`~proxcompress.proofs.certificate.Certificate`:

================= ==========================================================================
``prox``          ``P^mu`` non-decreasing (each piece's derivative ``>= 0``, no downward jump,
                  the value at a breakpoint between its one-sided limits) for each ``mu`` in
                  the grid, and ``lim_{mu -> oo} P^mu`` takes exactly the declared levels
``backward``      ``B`` continuous and ``sup |B'| = L < oo`` (and ``L`` as declared)
``decomposition`` ``F = B o P`` on every piece, breakpoints included; states the inherited
                  guarantee and whether its convex form applies
``derivative``    the method's ``B'`` (at ``w`` or at ``P(w)``, declared by the pair) equals
                  ``B'`` where the criterion takes it, almost everywhere
``facts``         declared oddness of ``F``, ``B``, ``P`` and boundedness of ``F``
``prox_numeric``  ``P^mu`` solves the declared proximal problem of
                  :mod:`proxcompress.formulations.prox` at a grid of points
``descent``       ``B' >= 0`` wherever the method evaluates it (the latents ``|w| <= c``, or
                  their images ``P^mu(w)``), so no step is reversed against the deployed,
                  non-decreasing quantizer (the suite's addition to the criterion)
================= ==========================================================================

The [U] choices are the fields of :class:`CheckOptions`: ``composition`` (``"BoP"``, default,
or ``"PoB"``) and ``derivative_at`` (``"prox"``, default, or ``"latent"``); ``latent_bound``
(the trainer's latent clipping ``c``, default 1) bounds where ``descent`` looks.

Functions of ``mu`` are analysed at each ``mu`` of ``CheckOptions.mu_values`` exactly (rational
``mu``, symbolic in ``x``); identities that hold for every ``mu`` at once are proved so, and the
certificate says which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
import sympy as sp

from proxcompress.errors import InvalidInputError
from proxcompress.proofs.analysis import (
    AnalysisError,
    Extremes,
    breakpoints,
    evaluate,
    extremes,
    lambdify,
    limit_mu_infinity,
    mu,
    nice_points,
    prove_zero,
    segments,
    side_limit,
    x,
)
from proxcompress.proofs.certificate import Certificate, Counterexample, Report
from proxcompress.proofs.pairs import Pair, derivative

Composition = Literal["BoP", "PoB"]
DerivativeAt = Literal["prox", "latent"]

#: check names, in table order
CHECKS: tuple[str, ...] = (
    "prox", "backward", "decomposition", "derivative", "facts", "prox_numeric", "descent",
)

_DEFAULT_MU = (sp.Rational(1, 4), sp.Integer(1), sp.Integer(4))
_DEFAULT_LIMIT_POINTS = tuple(
    s * sp.Rational(k, 7) for k in (1, 3, 5, 9, 13, 20, 30, 45, 60, 75) for s in (1, -1)
)

_PAPERS = {
    "pc": "Dockhorn, Yu, Sari, Zolnouri, Partovi Nia, NeurIPS 2021 (arXiv:2110.13220)",
    "pcpp": "Lu, Yu, Li, Partovi Nia, NeurIPS 2023 (arXiv:2402.17710)",
    "yu2015": "Yu, Zheng, Marchetti-Bowick, Xing, AISTATS 2015, Prop. 3",
}


@dataclass(frozen=True)
class CheckOptions:
    """How the checks read the criterion and how hard they look.

    Attributes:
        composition: [U] ``"BoP"`` (default, the adopted reading ``F = B o P``) or ``"PoB"``
            (``F = P o B``). methods.md section 1, open points.
        derivative_at: [U] where the criterion evaluates ``B'``: ``"prox"`` (default, at
            ``P(w)``, which makes a PC++ step a ProxConnect step on ``l o B``) or ``"latent"``
            (at ``w``). Only the default reading carries the inherited guarantee.
        mu_values: the ``mu`` at which ``mu``-dependent maps are analysed exactly (default
            ``1/4, 1, 4``: below, at and above ``mu = 1``, where ProxQuant's prox changes shape).
        limit_points: the ``x`` at which ``lim_{mu -> oo} P^mu(x)`` is computed; they avoid the
            ties of the catalogue's projections and reach past the largest shift level.
        lipschitz_cap: a ``|B'|`` (or ``|F|``) above this is reported as unbounded, with the
            point where it is exceeded.
        tol: absolute tolerance of numeric zero tests.
        prox_points: grid size of ``prox_numeric``.
        prox_tol: ``|P - prox|`` tolerance of ``prox_numeric`` (CVXPY is accurate to ~1e-8).
        latent_bound: the latents lie in ``[-c, c]`` (the trainer's ``quant.latent_clip``,
            default 1, BinaryConnect's clipping); ``None``: unbounded. ``descent`` checks
            ``B'`` where the method evaluates it for such latents.
    """

    composition: Composition = "BoP"
    derivative_at: DerivativeAt = "prox"
    mu_values: tuple[sp.Expr, ...] = _DEFAULT_MU
    limit_points: tuple[sp.Expr, ...] = _DEFAULT_LIMIT_POINTS
    lipschitz_cap: float = 1e6
    tol: float = 1e-9
    prox_points: int = 400
    prox_tol: float = 1e-6
    latent_bound: sp.Expr | float | None = 1

    def __post_init__(self) -> None:
        if self.composition not in ("BoP", "PoB"):
            raise InvalidInputError(
                "composition", f"{self.composition!r} is unknown; accepted: BoP, PoB"
            )
        if self.derivative_at not in ("prox", "latent"):
            raise InvalidInputError(
                "derivative_at", f"{self.derivative_at!r} is unknown; accepted: prox, latent"
            )
        values = tuple(sp.nsimplify(v) for v in self.mu_values)
        if not values or any(not (v.is_real and v.is_positive and v.is_finite) for v in values):
            raise InvalidInputError("mu_values", "must be a non-empty list of finite mu > 0")
        object.__setattr__(self, "mu_values", values)
        if not self.lipschitz_cap > 0 or not self.tol > 0 or not self.prox_tol > 0:
            raise InvalidInputError("tolerances", "lipschitz_cap, tol and prox_tol must be > 0")
        if self.prox_points < 2:
            raise InvalidInputError("prox_points", f"= {self.prox_points} must be >= 2")
        if self.latent_bound is not None:
            bound = sp.nsimplify(self.latent_bound)
            if not (bound.is_real and bound.is_positive and bound.is_finite):
                raise InvalidInputError("latent_bound", f"= {self.latent_bound!r} must be a "
                                        "finite number > 0 or None")
            object.__setattr__(self, "latent_bound", bound)

    @property
    def adopted(self) -> bool:
        """Whether this is the adopted formalization (``F = B o P``, ``B'`` at ``P(w)``)."""
        return self.composition == "BoP" and self.derivative_at == "prox"

    def describe(self) -> str:
        comp = "F = B o P" if self.composition == "BoP" else "F = P o B"
        at = "P(w)" if self.derivative_at == "prox" else "the latent w"
        return f"formalization: {comp}, B' evaluated at {at}"


def _runs(expr: sp.Expr, options: CheckOptions) -> list[sp.Expr | None]:
    return list(options.mu_values) if mu in expr.free_symbols else [None]


def _at(expr: sp.Expr, m: sp.Expr | None) -> sp.Expr:
    return expr if m is None else expr.subs(mu, m)


def _mu_text(m: sp.Expr | None) -> str:
    return "" if m is None else f" at mu = {m}"


def _point(xv: float, m: sp.Expr | None) -> dict[str, float]:
    out = {"x": float(xv)}
    if m is not None:
        out["mu"] = float(m)
    return out


def _real(value: complex) -> float:
    return float(value.real)


def _fail(check: str, pair: Pair, why: str, options: CheckOptions) -> Certificate:
    return Certificate(
        check=check, subject=pair.name, status="fail", assumptions=(options.describe(),),
        statements=(f"SymPy could not analyse the expressions: {why}",),
        expressions=pair.expressions(), method="none", detail=f"could not analyse: {why}",
    )


def _guarded(check: str) -> Callable[[Callable[[Pair, CheckOptions], Certificate]],
                                     Callable[[Pair, CheckOptions], Certificate]]:
    def wrap(fn: Callable[[Pair, CheckOptions], Certificate]) -> Callable[
            [Pair, CheckOptions], Certificate]:
        def run(pair: Pair, options: CheckOptions | None = None) -> Certificate:
            opts = options or CheckOptions()
            try:
                return fn(pair, opts)
            except AnalysisError as exc:
                return _fail(check, pair, str(exc), opts)

        run.__name__, run.__doc__ = fn.__name__, fn.__doc__
        return run

    return wrap


# ----------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class _Profile:
    """Monotonicity and slope facts of one univariate map."""

    monotone: bool
    counterexample: tuple[float, dict[str, float], str] | None
    min_slope: float
    max_slope: float
    continuous: bool
    breakpoints: tuple[sp.Expr, ...]
    exact: bool
    unbounded_at: float | None
    notes: tuple[str, ...] = field(default_factory=tuple)


@lru_cache(maxsize=1024)
def _profile(expr: sp.Expr, cap: float, tol: float) -> _Profile:
    """Slopes, jumps and monotonicity of ``expr(x)`` (no ``mu``)."""
    segs = segments(expr)
    min_slope, max_slope = float("inf"), float("-inf")
    exact, continuous = True, True
    counter: tuple[float, dict[str, float], str] | None = None
    unbounded_at: float | None = None
    notes: list[str] = []
    for seg in segs:
        for at in nice_points(seg, 4):
            value = evaluate(seg.expr, at, 20)
            if not (np.isfinite(value.real) and abs(value.imag) <= 1e-12):
                raise AnalysisError(f"{expr} is not real-valued (or not finite) at x = {at}")
        if seg.is_point:
            continue
        ext: Extremes = extremes(derivative(seg.expr), seg.lo, seg.hi, cap)
        exact &= ext.exact
        if ext.unbounded_at is not None:
            unbounded_at = ext.unbounded_at if unbounded_at is None else unbounded_at
            notes.append(f"slope unbounded on {seg.describe()} ({ext.method})")
            bad = _sampled_decrease(seg.expr, seg.lo, seg.hi)
            if bad is not None and counter is None:
                counter = bad
            continue
        if float(ext.inf) < min_slope:
            min_slope = float(ext.inf)
            if min_slope < -tol and counter is None:
                counter = (ext.inf_at, {"P'(x)": min_slope}, "the derivative is negative here")
        max_slope = max(max_slope, float(ext.sup))
    for i, seg in enumerate(segs):
        if not seg.is_point:
            continue
        left = side_limit(segs[i - 1].expr, seg.lo, "-")
        right = side_limit(segs[i + 1].expr, seg.lo, "+")
        value = seg.expr.subs(x, seg.lo)
        if any(not v.is_real for v in (left, right, value)):
            raise AnalysisError(f"no finite one-sided limits at x = {seg.lo}")
        lf, vf, rf = float(left), float(value), float(right)
        if max(abs(lf - vf), abs(vf - rf)) > tol:
            continuous = False
        if (lf > vf + tol or vf > rf + tol) and counter is None:
            counter = (
                float(seg.lo),
                {"P(x-)": lf, "P(x)": vf, "P(x+)": rf},
                "a downward jump: the one-sided limits and the value are not ordered",
            )
    monotone = counter is None
    return _Profile(
        monotone=monotone, counterexample=counter, min_slope=min_slope, max_slope=max_slope,
        continuous=continuous, breakpoints=breakpoints(expr), exact=exact,
        unbounded_at=unbounded_at, notes=tuple(notes),
    )


def _sampled_decrease(
    expr: sp.Expr, lo: sp.Expr, hi: sp.Expr
) -> tuple[float, dict[str, float], str] | None:
    """Two sampled points with ``expr`` decreasing, on a segment with an unbounded slope."""
    a = float(lo) if lo.is_finite else -1e3
    b = float(hi) if hi.is_finite else 1e3
    grid = np.linspace(a, b, 20003)[1:-1]
    values = lambdify(expr)(grid)
    ok = np.isfinite(values)
    grid, values = grid[ok], values[ok]
    drops = np.flatnonzero(np.diff(values) < -1e-9)
    if drops.size == 0:
        return None
    k = int(drops[0])
    return (
        float(grid[k]),
        {"P(x)": float(values[k]), "P(x')": float(values[k + 1]), "x'": float(grid[k + 1])},
        "P decreases from x to the next sample x' > x",
    )


# ----------------------------------------------------------------------------- checks


@_guarded("prox")
def check_prox(pair: Pair, options: CheckOptions) -> Certificate:
    """``P^mu`` is a proximal quantizer, and its limit as ``mu -> oo`` is the declared level set.

    Monotone non-decreasing (each piece's derivative has infimum ``>= 0``; at each breakpoint
    ``P(b-) <= P(b) <= P(b+)``) implies, with the jumps filled, a compact-valued monotone map with
    closed graph, i.e. ``prox_r`` for some ``r`` (Yu et al. 2015, Prop. 3).
    """
    P = pair.prox
    statements: list[str] = []
    data: dict[str, object] = {"lipschitz_P": {}, "jump_free": {}, "r_convex": {}}
    methods: set[bool] = set()
    counter: Counterexample | None = None
    for m in _runs(P, options):
        prof = _profile(_at(P, m), options.lipschitz_cap, options.tol)
        methods.add(prof.exact)
        key = "all" if m is None else str(m)
        data["lipschitz_P"][key] = prof.max_slope if prof.unbounded_at is None else "oo"
        data["jump_free"][key] = prof.continuous
        data["r_convex"][key] = _r_convex(prof, options)
        if prof.monotone:
            bps = ", ".join(str(b) for b in prof.breakpoints)
            jumps = f", and P(b-) <= P(b) <= P(b+) at the breakpoints {{{bps}}}" if bps else ""
            statements.append(
                f"P{_mu_text(m)} is non-decreasing: slopes in [{prof.min_slope:.6g}, "
                f"{prof.max_slope:.6g}] on every piece{jumps}."
            )
        elif counter is None:
            xv, vals, why = prof.counterexample  # type: ignore[misc]
            counter = Counterexample(_point(xv, m), vals, why)
            statements.append(f"P{_mu_text(m)} is not monotone non-decreasing: {why}.")
        statements.extend(prof.notes)
    monotone = counter is None
    if monotone:
        statements.append(
            "Hence P is the proximal map of some function r (monotone, single-valued off its "
            f"finitely many jumps; {_PAPERS['yu2015']})."
        )
    levels_ok, level_text = _check_levels(pair, options)
    statements.append(level_text)
    declared = pair.facts.monotone
    fact_ok = declared is None or declared == monotone
    if not fact_ok:
        statements.append(f"Declared fact monotone = {declared} is contradicted.")
    passed = monotone and levels_ok and fact_ok
    if not monotone:
        detail = f"P not monotone: {counter.describe()}" if counter else "P not monotone"
    elif not levels_ok:
        counter = _level_counterexample(pair, options)
        detail = level_text
    elif not fact_ok:
        detail = statements[-1]
    else:
        at_mu = f" at mu in {_mu_list(options)}" if mu in P.free_symbols else ""
        detail = f"P non-decreasing{at_mu}; {level_text}"
    method = "symbolic" if methods == {True} else "symbolic per piece where exact, numeric slopes"
    return Certificate(
        check="prox", subject=pair.name, status="pass" if passed else "fail",
        assumptions=(
            "x real, mu > 0" if mu in P.free_symbols else "x real",
            "P is analysed piece by piece (Piecewise form after rewriting sign/Abs/Min/Max)",
        ),
        statements=tuple(statements), expressions={"P": P},
        method=method, detail=detail, counterexample=counter, data=data,
    )


def _r_convex(prof: _Profile, options: CheckOptions) -> bool:
    """In one dimension ``P = prox_r`` with ``r`` convex iff ``P`` is non-decreasing and
    1-Lipschitz (firmly nonexpansive; Moreau)."""
    return (prof.monotone and prof.continuous and prof.unbounded_at is None
            and prof.max_slope <= 1 + options.tol)


def _mu_list(options: CheckOptions) -> str:
    return "{" + ", ".join(str(m) for m in options.mu_values) + "}"


def _limit_values(pair: Pair, options: CheckOptions) -> list[tuple[sp.Expr, sp.Expr]]:
    out = []
    for x0 in options.limit_points:
        at = pair.prox.subs(x, x0)
        out.append((x0, limit_mu_infinity(at) if mu in at.free_symbols else at))
    return out


def _check_levels(pair: Pair, options: CheckOptions) -> tuple[bool, str]:
    values = _limit_values(pair, options)
    bad = [x0 for x0, v in values if not (v.is_real and v.is_finite)]
    where = "lim_(mu->oo) P" if mu in pair.prox.free_symbols else "P"
    if bad:
        return False, f"{where}(x) could not be determined at x = {bad[0]}"
    found = sorted({sp.nsimplify(v) for _, v in values}, key=float)
    found_text = "{" + ", ".join(str(v) for v in found) + "}"
    declared = pair.facts.levels
    if declared is None:
        if len(found) > 8:
            return True, (f"{where} takes {len(found)} distinct values at {len(values)} probes "
                          "(no levels declared)")
        return True, f"{where} takes {found_text} at {len(values)} probes (no levels declared)"
    want = sorted({sp.nsimplify(v) for v in declared}, key=float)
    if found == want:
        return True, f"{where} takes the declared levels {found_text}"
    want_text = "{" + ", ".join(str(v) for v in want) + "}"
    return False, f"{where} takes {found_text}, not the declared levels {want_text}"


def _level_counterexample(pair: Pair, options: CheckOptions) -> Counterexample | None:
    declared = {sp.nsimplify(v) for v in (pair.facts.levels or ())}
    for x0, v in _limit_values(pair, options):
        if not (v.is_real and v.is_finite) or sp.nsimplify(v) not in declared:
            return Counterexample(
                {"x": float(x0)}, {"lim P(x)": float(v) if v.is_real else float("nan")},
                "the limit is not one of the declared levels",
            )
    return Counterexample({}, {}, "a declared level is never reached by the limit")


@_guarded("backward")
def check_backward(pair: Pair, options: CheckOptions) -> Certificate:
    """``B`` is admissible: continuous, ``L = sup |B'| < oo`` (so ``L``-Lipschitz) and
    differentiable except at finitely many breakpoints (hence almost everywhere)."""
    B = pair.backward
    statements: list[str] = []
    counter: Counterexample | None = None
    lipschitz: sp.Expr | float = 0
    exact = True
    for m in _runs(B, options):
        Bm = _at(B, m)
        prof = _profile(Bm, options.lipschitz_cap, options.tol)
        exact &= prof.exact
        if prof.unbounded_at is not None:
            xv = prof.unbounded_at
            slope = _real(evaluate(derivative(Bm), xv))
            counter = Counterexample(
                _point(xv, m), {"|B'(x)|": abs(slope)},
                f"|B'| exceeds {options.lipschitz_cap:g}, so B has no finite Lipschitz constant",
            )
            statements.append(f"B'{_mu_text(m)} is unbounded: |B'({xv:g})| = {abs(slope):.6g}.")
            break
        if not prof.continuous:
            segs = segments(Bm)
            for i, seg in enumerate(segs):
                if seg.is_point:
                    left = side_limit(segs[i - 1].expr, seg.lo, "-")
                    right = side_limit(segs[i + 1].expr, seg.lo, "+")
                    if left != right:
                        counter = Counterexample(
                            _point(float(seg.lo), m), {"B(x-)": float(left), "B(x+)": float(right)},
                            "B jumps here, so it is not Lipschitz (not even continuous)",
                        )
                        break
            statements.append(f"B{_mu_text(m)} is discontinuous.")
            break
        lip_m = max(abs(prof.min_slope), abs(prof.max_slope))
        lip_m_exact = _exact_lipschitz(Bm, options) if prof.exact else lip_m
        lipschitz = lip_m_exact if float(lip_m_exact) >= float(lipschitz) else lipschitz
        bps = ", ".join(str(b) for b in prof.breakpoints)
        bps = f"breakpoints {{{bps}}}" if bps else "no breakpoints"
        statements.append(
            f"B{_mu_text(m)} is continuous and piecewise smooth with {bps}; "
            f"sup |B'| = {lip_m_exact} on the pieces, so B is {lip_m_exact}-Lipschitz and "
            "differentiable off the breakpoints (a finite, null set)."
        )
    declared = pair.facts.backward_lipschitz
    passed = counter is None
    if passed and declared is not None:
        close = abs(float(lipschitz) - float(declared)) <= 1e-6 * max(1.0, abs(float(declared)))
        if not close:
            passed = False
            statements.append(f"Declared Lipschitz constant {declared} differs from the computed "
                              f"{lipschitz}.")
    method = "symbolic" if exact else (
        "numeric sup |B'| (dense samples, tails to |x| = 1e8, Brent refinement); continuity "
        "symbolic")
    detail = (f"L = sup|B'| = {_short(lipschitz)}" if passed
              else counter.describe() if counter else statements[-1])
    return Certificate(
        check="backward", subject=pair.name, status="pass" if passed else "fail",
        assumptions=("x real", f"|B'| above {options.lipschitz_cap:g} counts as unbounded"),
        statements=tuple(statements), expressions={"B": B, "B'": derivative(B)}, method=method,
        detail=detail, counterexample=counter,
        data={"lipschitz": lipschitz if passed or counter is None else "oo"},
    )


def _exact_lipschitz(Bm: sp.Expr, options: CheckOptions) -> sp.Expr:
    best: sp.Expr = sp.Integer(0)
    for seg in segments(Bm):
        if seg.is_point:
            continue
        ext = extremes(derivative(seg.expr), seg.lo, seg.hi, options.lipschitz_cap)
        for v in (ext.inf, ext.sup):
            v = sp.Abs(sp.sympify(v))
            if float(v) > float(best):
                best = sp.nsimplify(v) if isinstance(v, sp.Float) else v
    return best


def _short(v: sp.Expr | float) -> str:
    if isinstance(v, sp.Basic) and v.is_Rational:
        return str(v)
    return f"{float(v):.6g}"


def _composite(pair: Pair, options: CheckOptions) -> tuple[sp.Expr, str]:
    if options.composition == "BoP":
        return pair.backward.subs(x, pair.prox), "B(P(x))"
    return pair.prox.subs(x, pair.backward), "P(B(x))"


@_guarded("decomposition")
def check_decomposition(pair: Pair, options: CheckOptions) -> Certificate:
    """``F = B o P`` identically (or ``P o B`` under the alternative reading), and what it buys:
    the inherited ProxConnect guarantee, with the assumptions under which it applies."""
    target, label = _composite(pair, options)
    difference = pair.forward - target
    result = prove_zero(difference, options.mu_values, tol=options.tol)
    statements: list[str] = []
    counter = None
    summary: dict[str, object] = {}
    if result.holds:
        statements.append(f"F(x) = {label} ({result.method}).")
        guarantee, summary = _guarantee(pair, options)
        statements.extend(guarantee)
        detail = f"F = {label} ({'symbolic' if result.max_error == 0 else 'numeric'})"
    else:
        point = result.counterexample or {}
        m = sp.nsimplify(point["mu"]) if "mu" in point else None
        xv = sp.nsimplify(point.get("x", 0.0))
        fv = _real(evaluate(_at(pair.forward, m), xv))
        tv = _real(evaluate(_at(target, m), xv))
        counter = Counterexample(point, {"F(x)": fv, label: tv},
                                 f"F and {label} differ, so F is not {label}")
        statements.append(f"F(x) != {label}: {counter.describe()}.")
        detail = f"F != {label}: {counter.describe()}"
    return Certificate(
        check="decomposition", subject=pair.name,
        status="pass" if result.holds else "fail",
        assumptions=(options.describe(), "x real, mu > 0"),
        statements=tuple(statements),
        expressions={"F": pair.forward, label: target, f"F - {label}": difference},
        method=result.method, detail=detail, counterexample=counter,
        data=summary,
    )


def _nonconvexity(prof: _Profile, options: CheckOptions) -> str | None:
    """Why ``r`` is nonconvex (``None`` when ``P`` is non-decreasing and 1-Lipschitz)."""
    if _r_convex(prof, options):
        return None
    if not prof.continuous:
        return "P jumps"
    if prof.unbounded_at is not None:
        return "P has an unbounded slope"
    return f"P has slope {prof.max_slope:.6g} > 1"


def _guarantee(pair: Pair, options: CheckOptions) -> tuple[list[str], dict[str, object]]:
    """Statements of the inherited guarantee and a summary of when its convex form applies."""
    if not options.adopted:
        return [
            "The inheritance argument is made for F = B o P with B' at P(w) (the adopted "
            f"reading); under this alternative ({options.describe()}) the suite derives no "
            "guarantee."
        ], {"guarantee": "none derived under this formalization"}
    out = [
        "One PC++ step w_{t+1} = w_t - eta_t B'(P(w_t)) grad l(F(w_t)) = w_t - eta_t "
        "grad(l o B)(P(w_t)) is a ProxConnect step on the composite loss l o B with the "
        f"proximal quantizer P (methods.md s.1 [D]; {_PAPERS['pcpp']}).",
        "Inherited guarantee (convex case, Dockhorn et al. 2021 Cor. 5.2 = PARQ Thm 3.1): if "
        "f(., z) = (l o B)(., z) is convex for every z, r is convex, F_lambda = E f + lambda r "
        "is G-Lipschitz, R = dist(w_1, argmin F_lambda) and eta_t = R / (2 G sqrt(t)), then the "
        "weighted average iterate w_bar_t = sum_s eta_s w_s / sum_s eta_s satisfies "
        "E F_lambda(w_bar_t) - min F_lambda <= G R (2 + 1.5 ln t) / sqrt(t).",
    ]
    reasons = {
        "" if m is None else f"mu = {m}": _nonconvexity(
            _profile(_at(pair.prox, m), options.lipschitz_cap, options.tol), options)
        for m in _runs(pair.prox, options)
    }
    bad = {k: v for k, v in reasons.items() if v is not None}
    if bad:
        grouped: dict[str, list[str]] = {}
        for at_mu, reason in bad.items():
            grouped.setdefault(reason, []).append(at_mu)
        why = "; ".join(
            reason if at == [""] else f"{reason} at {', '.join(at)}"
            for reason, at in grouped.items()
        )
        r_text = f"nonconvex ({why})"
        out.append(
            f"Here r is {r_text}; in one dimension P = prox_r with r convex iff P is "
            "non-decreasing and 1-Lipschitz (firmly nonexpansive, Moreau). The convex rate does "
            "not apply there; only ProxConnect's nonconvex guarantees carry over (their "
            "assumptions and rate are [U], methods.md s.1)."
        )
    else:
        r_text = "convex"
        out.append("Here r is convex: P is non-decreasing and 1-Lipschitz.")
    piece = segments(_first_mu(pair.backward, options))
    affine = bool(len(piece) == 1 and piece[0].expr.is_polynomial(x)
                  and sp.degree(piece[0].expr, x) <= 1)
    if affine:
        out.append("B is affine, so l o B is convex whenever l is.")
    else:
        out.append("B is not affine, so l o B is nonconvex in general even for convex l: the "
                   "convex rate needs convexity of l o B itself; otherwise the nonconvex results "
                   "apply.")
    convex_rate = not bad and affine
    return out, {
        "r": r_text,
        "B_affine": affine,
        "guarantee": "convex rate G R (2 + 1.5 ln t)/sqrt(t) for convex l" if convex_rate
        else "nonconvex ProxConnect results [U]",
    }


def _first_mu(expr: sp.Expr, options: CheckOptions) -> sp.Expr:
    """``expr`` at the first ``mu`` of the grid when it depends on ``mu`` (for shape questions)."""
    return _at(expr, options.mu_values[0] if mu in expr.free_symbols else None)


def _derivative_point(where: str, pair: Pair) -> sp.Expr:
    return pair.prox if where == "prox" else x


@_guarded("derivative")
def check_derivative(pair: Pair, options: CheckOptions) -> Certificate:
    """Where ``B'`` is evaluated: the method's point (``pair.method_derivative_at``) against the
    criterion's (``options.derivative_at``); they must give the same ``B'`` almost everywhere."""
    Bp = pair.backward_derivative
    crit, meth = options.derivative_at, pair.method_derivative_at
    names = {"prox": "B'(P(w))", "latent": "B'(w)"}
    statements = [
        f"The method evaluates {names[meth]}; the criterion ({options.describe()}) uses "
        f"{names[crit]}."
    ]
    statements.extend(_kink_notes(pair, options))
    counter = None
    if crit == meth:
        statements.append("Same point: the backward pass is the criterion's.")
        status, method, detail = "pass", "symbolic", f"B' at {names[crit][3:-1]} as required"
    else:
        used = Bp.subs(x, _derivative_point(meth, pair))
        wanted = Bp.subs(x, _derivative_point(crit, pair))
        result = prove_zero(used - wanted, options.mu_values, almost_everywhere=True,
                            tol=options.tol)
        method = result.method
        if result.holds:
            statements.append(f"{names[meth]} = {names[crit]} for almost every w ({method}).")
            status, detail = "pass", f"{names[meth]} = {names[crit]} a.e."
        else:
            point = result.counterexample or {}
            m = sp.nsimplify(point["mu"]) if "mu" in point else None
            xv = sp.nsimplify(point.get("x", 0.0))
            counter = Counterexample(
                point,
                {names[meth]: _real(evaluate(_at(used, m), xv)),
                 names[crit]: _real(evaluate(_at(wanted, m), xv))},
                "the method's backward derivative is not the criterion's",
            )
            statements.append(f"{names[meth]} != {names[crit]}: {counter.describe()}.")
            status, detail = "fail", f"{names[meth]} != {names[crit]}: {counter.describe()}"
    return Certificate(
        check="derivative", subject=pair.name, status=status,
        assumptions=(options.describe(),
                     f"the method evaluates B' at {'P(w)' if meth == 'prox' else 'the latent w'}"),
        statements=tuple(statements),
        expressions={"B'": Bp, "P": pair.prox}, method=method, detail=detail,
        counterexample=counter,
    )


def _kink_notes(pair: Pair, options: CheckOptions) -> list[str]:
    """Where ``P`` maps an interval onto a breakpoint of ``B``, ``B'`` is taken at a kink."""
    notes = []
    for m in _runs(pair.prox, options)[:1]:
        kinks = set(breakpoints(_first_mu(pair.backward, options)))
        hits = sorted({seg.expr for seg in segments(_at(pair.prox, m))
                       if not seg.is_point and x not in seg.expr.free_symbols
                       and seg.expr in kinks}, key=float)
        if hits:
            at = ", ".join(str(h) for h in hits)
            value = ", ".join(
                f"B'({h}) = {pair.backward_derivative.subs(x, h)}" for h in hits)
            notes.append(
                f"P maps whole intervals onto {{{at}}}, where B is not differentiable: B' at P(w) "
                f"is the covering piece's convention ({value})."
            )
    return notes


@_guarded("facts")
def check_facts(pair: Pair, options: CheckOptions) -> Certificate:
    """Declared oddness (``F``, ``B``, ``P``) and boundedness (``F``) against the expressions.

    Monotonicity, levels and the Lipschitz constant are verified by ``prox`` and ``backward``.
    """
    facts = pair.facts
    statements: list[str] = []
    counter = None
    methods: list[str] = []
    if facts.odd is None and facts.bounded is None and facts.forward_levels is None:
        return Certificate(
            check="facts", subject=pair.name, status="n/a", assumptions=(),
            statements=("No local facts declared.",), expressions={}, method="none",
            detail="no facts declared",
        )
    ok = True
    if facts.odd is not None:
        for label, expr in (("F", pair.forward), ("B", pair.backward), ("P", pair.prox)):
            result = prove_zero(expr + expr.subs(x, -x), options.mu_values, tol=options.tol)
            methods.append(result.method)
            if result.holds != facts.odd:
                ok = False
                statements.append(f"Declared odd = {facts.odd} but {label} is "
                                  f"{'odd' if result.holds else 'not odd'}.")
                if result.counterexample and counter is None:
                    counter = Counterexample(
                        result.counterexample, {f"{label}(x) + {label}(-x)": result.value or 0.0},
                        f"{label} is not odd")
            else:
                statements.append(f"{label} is {'odd' if result.holds else 'not odd'} "
                                  f"({result.method}).")
    if facts.bounded is not None:
        bounded, where = True, None
        for m in _runs(pair.forward, options):
            for seg in segments(_at(pair.forward, m)):
                if seg.is_point:
                    continue
                ext = extremes(seg.expr, seg.lo, seg.hi, options.lipschitz_cap)
                if ext.unbounded_at is not None:
                    bounded, where = False, (ext.unbounded_at, m)
                    break
            if not bounded:
                break
        text = "bounded" if bounded else (
            f"unbounded (|F| > {options.lipschitz_cap:g} at x = {where[0]:g}"
            f"{_mu_text(where[1])})")
        if bounded != facts.bounded:
            ok = False
            statements.append(f"Declared bounded = {facts.bounded} but F is {text}.")
        else:
            statements.append(f"F is {text}, as declared.")
    if facts.forward_levels is not None:
        want = sorted({sp.nsimplify(v) for v in facts.forward_levels}, key=float)
        found, bad = set(), None
        for x0 in options.limit_points[:10]:
            at = pair.forward.subs(x, x0)
            value = limit_mu_infinity(at) if mu in at.free_symbols else at
            if not (value.is_real and value.is_finite) or sp.nsimplify(value) not in want:
                bad = (x0, value)
                break
            found.add(sp.nsimplify(value))
        levels_text = "{" + ", ".join(str(v) for v in want) + "}"
        if bad is None and sorted(found, key=float) == want:
            statements.append(f"lim_(mu->oo) F takes the declared levels {levels_text} (the "
                              "deployed quantizer), at "
                              f"{len(options.limit_points[:10])} probes.")
        else:
            ok = False
            if bad is not None:
                counter = counter or Counterexample(
                    {"x": float(bad[0])},
                    {"lim F(x)": float(bad[1]) if bad[1].is_real else float("nan")},
                    "the limit of F is not one of the declared levels")
            statements.append(f"lim_(mu->oo) F does not take exactly the levels {levels_text}.")
    return Certificate(
        check="facts", subject=pair.name, status="pass" if ok else "fail",
        assumptions=("x real, mu > 0",), statements=tuple(statements),
        expressions={"F": pair.forward, "B": pair.backward, "P": pair.prox},
        method="; ".join(sorted(set(methods))) or "symbolic",
        detail="declared facts hold" if ok else statements[-1], counterexample=counter,
    )


@_guarded("prox_numeric")
def check_prox_numeric(pair: Pair, options: CheckOptions) -> Certificate:
    """The symbolic ``P^mu`` equals the numeric prox of :mod:`proxcompress.formulations.prox`.

    At ``prox_points`` points ``theta`` and each ``mu`` of the grid, ``P^mu(theta)`` must be
    within ``prox_tol`` of the solver's minimizer, or (at a tie of a nonconvex problem) have an
    objective no larger than the solver's: then both are minimizers.
    """
    from proxcompress.formulations.prox import is_convex_problem, prox, prox_objective

    link = pair.prox_link
    if link is None:
        return Certificate(
            check="prox_numeric", subject=pair.name, status="n/a", assumptions=(),
            statements=("No proximal problem declared for P.",), expressions={"P": pair.prox},
            method="none", detail="no prox problem declared",
        )
    reach = max(3.0, 1.3 * max(abs(v) for v in link.levels))
    theta = np.linspace(-reach, reach, options.prox_points)
    worst, ties, solvers = 0.0, 0, set()
    counter = None
    for m in _runs(pair.prox, options):
        weight = float(_at(link.weight, m))
        rho = float(_at(link.rho, m))
        kwargs = {"levels": link.levels, "rho": rho}
        solvers.add("cvxpy" if is_convex_problem(link.regularizer, weight, **kwargs) else "exact")
        numeric = prox(link.regularizer, theta, weight, **kwargs)
        symbolic = lambdify(_at(pair.prox, m))(theta)
        obj_sym = prox_objective(link.regularizer, symbolic, theta, weight, **kwargs)
        obj_num = prox_objective(link.regularizer, numeric, theta, weight, **kwargs)
        gap = np.abs(symbolic - numeric)
        tie = (gap > options.prox_tol) & (obj_sym <= obj_num + 1e-9 * (1 + np.abs(obj_num)))
        bad = np.flatnonzero((gap > options.prox_tol) & ~tie)
        ties += int(tie.sum())
        close = gap[gap <= options.prox_tol]
        worst = max(worst, float(close.max(initial=0.0)))
        if bad.size and counter is None:
            k = int(bad[0])
            counter = Counterexample(
                _point(theta[k], m),
                {"P(theta)": float(symbolic[k]), "prox(theta)": float(numeric[k]),
                 "objective at P": float(obj_sym[k]), "objective at prox": float(obj_num[k])},
                "P is not a minimizer of the prox problem",
            )
    runs = _runs(pair.prox, options)
    at_mu = "" if runs == [None] else f" x mu in {_mu_list(options)}"
    problem = (f"prox of w r, r = {link.regularizer} (levels {list(link.levels)}, rho = "
               f"{link.rho}), w = {link.weight}")
    statements = [
        f"P is the {problem}.",
        f"Checked at {theta.size} points theta in [-{reach:g}, {reach:g}]{at_mu} with "
        f"formulations.prox ({'/'.join(sorted(solvers))}).",
    ]
    if counter is None:
        statements.append(
            f"max |P - prox| = {worst:.1e} off ties; {ties} tie point(s) where both are "
            "minimizers.")
        detail = f"max |P - prox| = {worst:.1e} ({'/'.join(sorted(solvers))})"
    else:
        statements.append(f"Mismatch: {counter.describe()}.")
        detail = f"P != prox: {counter.describe()}"
    return Certificate(
        check="prox_numeric", subject=pair.name, status="pass" if counter is None else "fail",
        assumptions=(f"tolerance {options.prox_tol:g} on |P - prox|",),
        statements=tuple(statements), expressions={"P": pair.prox},
        method=f"numeric, {theta.size * len(runs)} points, max error {worst:.1e}",
        detail=detail, counterexample=counter, data={"max_error": worst, "ties": ties},
    )


def _image_intervals(P: sp.Expr, lo: sp.Expr, hi: sp.Expr, cap: float
                     ) -> list[tuple[sp.Expr, sp.Expr]]:
    """Closed intervals covering ``{P(w) : lo <= w <= hi}``: per piece of ``P``, the closed hull
    of its values there (a continuous piece maps an interval onto an interval), and the values
    at the breakpoints and ends."""
    out: list[tuple[sp.Expr, sp.Expr]] = []
    for seg in segments(P):
        a, b = sp.Max(seg.lo, lo), sp.Min(seg.hi, hi)
        if (a > b) == sp.true or (not seg.is_point and (a >= b) == sp.true):
            continue
        if seg.is_point or x not in seg.expr.free_symbols:
            value = seg.expr.subs(x, a) if seg.is_point else seg.expr
            out.append((value, value))
            continue
        ext = extremes(seg.expr, a, b, cap)
        if ext.unbounded_at is not None:
            out.append((-sp.oo, sp.oo))
            continue
        inf, sup = sp.nsimplify(ext.inf), sp.nsimplify(ext.sup)
        out.append((inf, sup))
    for end in (lo, hi):
        if end.is_finite:
            value = P.subs(x, end)
            out.append((value, value))
    return out


def _min_on(g: sp.Expr, lo: sp.Expr, hi: sp.Expr, cap: float) -> tuple[float, float, bool]:
    """``(min, argmin, exact)`` of ``g`` over the closed interval ``[lo, hi]`` (a point when
    ``lo = hi``), piece by piece, the end points and breakpoints included."""
    best, at, exact = float("inf"), float("nan"), True
    points = [lo, hi] if lo != hi else [lo]
    for seg in segments(g):
        a, b = sp.Max(seg.lo, lo), sp.Min(seg.hi, hi)
        if (a > b) == sp.true:
            continue
        if seg.is_point:
            points.append(seg.lo)
            continue
        if (a >= b) == sp.true:
            continue
        ext = extremes(seg.expr, a, b, cap)
        exact &= ext.exact
        if ext.unbounded_at is None and float(ext.inf) < best:
            best, at = float(ext.inf), float(ext.inf_at)
    for point in points:
        if point.is_finite:
            value = _real(evaluate(g, point))
            if value < best:
                best, at = value, float(point)
    return best, at, exact


@_guarded("descent")
def check_descent(pair: Pair, options: CheckOptions) -> Certificate:
    """``B' >= 0`` at every point where the method evaluates it.

    The step is ``w <- w - eta B'(pi(w)) dl/dF``, ``pi(w) = w`` or ``P^mu(w)`` (the pair's
    ``method_derivative_at``). The deployed quantizer ``lim F`` is non-decreasing, so raising a
    latent never lowers its deployed weight: a step with ``B' < 0`` moves the latent against
    the direction the loss asks of the deployed weight. Where ``B'`` is evaluated at ``P(w)``,
    which tends to the levels as ``mu`` grows, a negative ``B'`` at a level reverses (almost)
    every step late in training. Checked on the latents ``|w| <= c`` (``latent_bound``) and,
    for ``P(w)``, on their images under ``P^mu`` for each ``mu`` of the grid. Not part of the
    paper's criterion (our addition): the decomposition holds for any Lipschitz ``B``.
    """
    Bp = pair.backward_derivative
    where = pair.method_derivative_at
    c = options.latent_bound
    lo, hi = (-sp.oo, sp.oo) if c is None else (-c, c)
    domain = "every real latent w" if c is None else f"the latents |w| <= {c}"
    runs = (list(options.mu_values) if mu in (Bp.free_symbols | (
        pair.prox.free_symbols if where == "prox" else set())) else [None])
    worst: tuple[float, float, sp.Expr | None] = (float("inf"), float("nan"), None)
    exact = True
    statements = []
    for m in runs:
        g = _at(Bp, m)
        intervals = ([(lo, hi)] if where == "latent"
                     else _image_intervals(_at(pair.prox, m), lo, hi, options.lipschitz_cap))
        low = float("inf")
        for a, b in intervals:
            value, at, ok = _min_on(g, a, b, options.lipschitz_cap)
            exact &= ok
            if value < low:
                low = value
                if value < worst[0]:
                    worst = (value, at, m)
        statements.append(f"min B'{_mu_text(m)} over the points evaluated = {low:.6g}.")
    point_name = "w" if where == "latent" else "P(w)"
    value, at, m = worst
    passed = value >= -options.tol
    counter = None
    if passed:
        detail = f"B'({point_name}) >= 0 for {domain}" + (
            f" and mu in {_mu_list(options)}" if runs != [None] else "")
        statements.append(f"Hence B' >= 0 at every point the method evaluates it ({domain}).")
    else:
        counter = Counterexample(
            {point_name: at, **({"mu": float(m)} if m is not None else {})},
            {f"B'({point_name})": value},
            "B' is negative where the method evaluates it, so this step is reversed")
        detail = f"B'({point_name}) < 0: {counter.describe()}"
        statements.append(f"B' < 0 where the method evaluates it: {counter.describe()}.")
    return Certificate(
        check="descent", subject=pair.name, status="pass" if passed else "fail",
        assumptions=(f"latents in {'R' if c is None else f'[-{c}, {c}]'} (the trainer's "
                     "clipping)", f"B' evaluated at {point_name} (the method's point)",
                     "the suite's addition to the criterion, not the paper's"),
        statements=tuple(statements), expressions={"B'": Bp, "P": pair.prox},
        method="symbolic" if exact else "numeric minimum (dense samples, Brent refinement)",
        detail=detail, counterexample=counter, data={"min_backward_slope": value},
    )


_CHECK_FUNCTIONS: dict[str, Callable[[Pair, CheckOptions], Certificate]] = {
    "prox": check_prox,
    "backward": check_backward,
    "decomposition": check_decomposition,
    "derivative": check_derivative,
    "facts": check_facts,
    "prox_numeric": check_prox_numeric,
    "descent": check_descent,
}


def certify(
    pair: Pair, options: CheckOptions | None = None, checks: Sequence[str] = CHECKS
) -> Report:
    """Run the named checks on ``pair``; the report passes when none fails."""
    opts = options or CheckOptions()
    unknown = [c for c in checks if c not in _CHECK_FUNCTIONS]
    if unknown:
        raise InvalidInputError("checks", f"unknown {unknown}; accepted: {', '.join(CHECKS)}")
    certs = tuple(_CHECK_FUNCTIONS[c](pair, opts) for c in checks)
    return Report(name=pair.name, certificates=certs, kind="pair", summary=pair.summary)


__all__ = [
    "CHECKS",
    "CheckOptions",
    "certify",
    "check_backward",
    "check_decomposition",
    "check_descent",
    "check_derivative",
    "check_facts",
    "check_prox",
    "check_prox_numeric",
]
