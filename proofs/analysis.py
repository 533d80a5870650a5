"""Univariate piecewise analysis: the engine under :mod:`proxcompress.proofs.checks`.

Every map of the catalogue is a function of one real variable ``x`` (and of the annealing
parameter ``mu > 0``, fixed to a number before the analysis). An expression is normalized by
rewriting ``sign``, ``Abs``, ``Min``, ``Max`` and ``Heaviside`` as ``Piecewise`` and folding
(:func:`normalize`); its pieces become :class:`Segment` s -- open intervals and single points that
partition the real line in order (:func:`segments`). On top of that:

* :func:`extremes`: infimum and supremum of an expression on an open interval. Rational
  functions are handled exactly (limits at the ends, real roots of the derivative's numerator,
  poles); other expressions numerically (dense samples, tails out to ``|x| = 1e8``, a local
  refinement), and the result says which.
* :func:`side_limit`: one-sided limits at breakpoints.
* :func:`prove_zero`: decide whether an expression vanishes identically, piece by piece,
  symbolically where SymPy can (``expand`` / ``simplify``) and numerically otherwise, with a
  concrete counterexample point when it does not.
* :func:`limit_mu_infinity`: ``lim_{mu -> oo}`` of a piecewise expression at a fixed ``x``.

Numbers are reported as SymPy numbers when exact and as floats when numeric.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

#: the latent variable of every map
x = sp.Symbol("x", real=True)
#: the annealing parameter of proximal quantizer families
mu = sp.Symbol("mu", positive=True)

#: points tried first when a counterexample is needed (simple numbers read better)
NICE_POINTS: tuple[sp.Rational, ...] = tuple(
    sp.Rational(v)
    for v in ("1", "-1", "2", "-2", "1/2", "-1/2", "3", "-3", "3/2", "-3/2", "1/4", "-1/4",
              "5", "-5", "10", "-10", "1/10", "-1/10", "100", "-100")
)

_CORE_SAMPLES = 2001
_TAIL_SAMPLES = 121
_TAIL_END = 1e8


class AnalysisError(Exception):
    """SymPy could not put an expression in the piecewise form the analysis needs."""


@dataclass(frozen=True)
class Segment:
    """``expr`` on the open interval ``(lo, hi)``, or at the single point ``lo == hi``."""

    expr: sp.Expr
    lo: sp.Expr
    hi: sp.Expr

    @property
    def is_point(self) -> bool:
        return bool(self.lo == self.hi)

    def describe(self) -> str:
        return f"x = {self.lo}" if self.is_point else f"x in ({self.lo}, {self.hi})"


@dataclass(frozen=True)
class Extremes:
    """Infimum and supremum of an expression on an open interval.

    ``inf`` / ``sup`` are SymPy numbers when ``exact``, else floats; ``inf_at`` / ``sup_at`` are
    points where they are attained or approached (an end point for a limit). ``unbounded_at`` is
    a point where ``|expr|`` exceeds the cap, when the expression is unbounded (or larger than
    the cap) on the interval; that side is then ``-oo``/``oo`` and the other side holds the
    value at ``unbounded_at`` (a bound, not the extremum).
    """

    inf: sp.Expr | float
    inf_at: float
    sup: sp.Expr | float
    sup_at: float
    exact: bool
    method: str
    unbounded_at: float | None = None


@dataclass(frozen=True)
class IdentityResult:
    """Outcome of :func:`prove_zero`.

    ``method`` is ``"symbolic"`` when every piece reduced to 0 in SymPy, otherwise it names the
    numeric evidence (points, maximal error). ``counterexample`` maps ``x`` (and ``mu``) to a point
    where the expression is not 0, ``value`` is the expression there.
    """

    holds: bool
    method: str
    max_error: float
    counterexample: dict[str, float] | None = None
    value: float | None = None


def normalize(expr: sp.Expr) -> sp.Expr:
    """Rewrite ``sign``, ``Abs``, ``Min``, ``Max``, ``Heaviside`` as ``Piecewise`` and fold."""
    rewritten = expr
    for func in (sp.Min, sp.Max, sp.Abs, sp.sign, sp.Heaviside):
        if rewritten.has(func):
            rewritten = rewritten.replace(
                lambda e, f=func: isinstance(e, f), lambda e: e.rewrite(sp.Piecewise)
            )
    return sp.piecewise_fold(rewritten)


def _components(region: sp.Set) -> Iterable[sp.Set]:
    if isinstance(region, sp.Union):
        for arg in region.args:
            yield from _components(arg)
    else:
        yield region


_KINKS = (sp.Piecewise, sp.sign, sp.Abs, sp.Min, sp.Max, sp.Heaviside)


@lru_cache(maxsize=4096)
def segments(expr: sp.Expr) -> tuple[Segment, ...]:
    """The pieces of ``expr`` (a function of ``x`` only) as ordered segments covering ``R``.

    Built bottom-up, so nested kinks never meet in one big ``Piecewise``: the outermost kinked
    sub-expressions (``Piecewise``, ``sign``, ``Abs``, ``Min``, ``Max``, ``Heaviside``) are split
    first, their partitions refined into one, and on each piece the expression, now smooth in its
    kinked parts, is split by its own conditions restricted to that piece
    (``Piecewise.as_expr_set_pairs``). Adjacent pieces with the same expression are merged, so
    every boundary left is a breakpoint candidate.

    Raises:
        AnalysisError: a condition SymPy cannot turn into a union of intervals, a symbol other
            than ``x``, or an expression undefined somewhere on the real line.
    """
    e = sp.sympify(expr)
    extra = e.free_symbols - {x}
    if extra:
        raise AnalysisError(f"unexpected symbols {sorted(map(str, extra))} in {e}")
    pieces = sorted(_segments(e), key=lambda s: (float(s.lo), float(s.hi)))
    if not pieces or pieces[0].lo != -sp.oo or pieces[-1].hi != sp.oo:
        raise AnalysisError(f"{e} is not defined on the whole real line")
    for left, right in zip(pieces, pieces[1:], strict=False):
        if left.hi != right.lo:
            raise AnalysisError(f"{e} is undefined between {left.hi} and {right.lo}")
    return tuple(_merge(pieces))


def _outer_kinks(nodes: Iterable[sp.Basic]) -> list[sp.Expr]:
    found: list[sp.Expr] = []
    for node in nodes:
        if x not in node.free_symbols:
            continue
        if isinstance(node, _KINKS):
            if node not in found:
                found.append(node)
        else:
            found.extend(k for k in _outer_kinks(node.args) if k not in found)
    return found


def _segments(e: sp.Expr) -> list[Segment]:
    if x not in e.free_symbols or not e.has(*_KINKS):
        return [Segment(e, -sp.oo, sp.oo)]
    kinked = isinstance(e, _KINKS)
    inner = _outer_kinks(e.args if kinked else [e])
    if not inner:
        return _split(e, -sp.oo, sp.oo)
    out: list[Segment] = []
    for lo, hi, local_parts in _refine([_segments(k) for k in inner]):
        local = e.xreplace(dict(zip(inner, local_parts, strict=True)))
        if lo == hi:
            out.append(Segment(local.subs(x, lo), lo, lo))
        elif kinked:
            out.extend(_split(local, lo, hi))
        else:
            out.append(Segment(local, lo, hi))
    return out


def _refine(
    parts: list[list[Segment]],
) -> Iterable[tuple[sp.Expr, sp.Expr, list[sp.Expr]]]:
    """Common refinement of several ordered partitions of ``R``: ``(lo, hi, expressions)``."""
    cuts: dict[float, sp.Expr] = {}
    for part in parts:
        for seg in part:
            if seg.is_point:
                cuts.setdefault(float(seg.lo), seg.lo)
    bounds = [cuts[k] for k in sorted(cuts)]
    edges = [-sp.oo, *bounds, sp.oo]
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        yield lo, hi, [_covering(part, lo, hi) for part in parts]
        if hi != sp.oo:
            yield hi, hi, [_covering(part, hi, hi) for part in parts]


def _covering(part: list[Segment], lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    flo, fhi = float(lo), float(hi)
    for seg in part:
        if lo == hi and seg.is_point and float(seg.lo) == flo:
            return seg.expr
    for seg in part:
        if not seg.is_point and float(seg.lo) <= flo and fhi <= float(seg.hi) and (
            lo != hi or float(seg.lo) < flo < float(seg.hi)
        ):
            return seg.expr
    raise AnalysisError(f"no piece covers ({lo}, {hi})")


def _split(e: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> list[Segment]:
    """Segments of ``e`` (kinked only at its top) on the open interval ``(lo, hi)``.

    SymPy turns the conditions into intervals where it can; conditions it cannot solve (e.g.
    ``SignSwish(x) > 0``) are split at numerically located roots (:func:`_split_numeric`).
    """
    n = normalize(e)
    if not isinstance(n, sp.Piecewise):
        return [Segment(n, lo, hi)]
    try:
        pairs = list(n.as_expr_set_pairs(sp.Interval.open(lo, hi)))
        return _pieces(pairs)
    except (AnalysisError, NotImplementedError, TypeError, ValueError):
        return _split_numeric(n, lo, hi)


def _pieces(pairs: list[tuple[sp.Expr, sp.Set]]) -> list[Segment]:
    pieces: list[Segment] = []
    for piece, region in pairs:
        for comp in _components(region):
            if comp is sp.S.EmptySet:
                continue
            if isinstance(comp, sp.Interval):
                a, b = comp.start, comp.end
                if a.is_finite and not comp.left_open:
                    pieces.append(Segment(piece, a, a))
                if b.is_finite and not comp.right_open and b != a:
                    pieces.append(Segment(piece, b, b))
                if a != b:
                    pieces.append(Segment(piece, a, b))
            elif isinstance(comp, sp.FiniteSet):
                pieces.extend(Segment(piece, p, p) for p in comp.args)
            else:
                raise AnalysisError(f"region {comp} is not a union of intervals")
    return pieces


def _split_numeric(n: sp.Piecewise, lo: sp.Expr, hi: sp.Expr) -> list[Segment]:
    """Split at the real roots of every condition's ``lhs - rhs``, located numerically (sign
    changes on a dense sample, refined by Brent; a root is kept exact when a simple rational
    satisfies it to 25 digits); each piece takes the branch active at its midpoint."""
    roots: dict[float, sp.Expr] = {}
    for rel in n.atoms(sp.core.relational.Relational):
        for root in _numeric_roots(rel.lhs - rel.rhs, lo, hi):
            roots.setdefault(round(float(root), 12), root)
    cuts = [roots[k] for k in sorted(roots)]
    edges = [lo, *cuts, hi]
    out: list[Segment] = []
    for a, b in zip(edges, edges[1:], strict=False):
        out.append(Segment(_active_branch(n, sp.nsimplify(_midpoint(a, b))), a, b))
    out.extend(Segment(n.subs(x, c), c, c) for c in cuts)
    return out


def _active_branch(n: sp.Piecewise, point: sp.Expr) -> sp.Expr:
    for branch, cond in n.args:
        if cond.subs(x, point) is sp.true:
            return branch
    raise AnalysisError(f"no branch of {n} holds at x = {point}")


def _numeric_roots(g: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> list[sp.Expr]:
    from scipy.optimize import brentq

    if x not in g.free_symbols:
        return []
    f = lambdify(g)
    grid = _sample_grid(lo, hi)
    values = f(grid)
    found: list[float] = [float(v) for v in grid[values == 0.0]]
    sign = np.sign(values)
    for k in np.flatnonzero(sign[:-1] * sign[1:] < 0):
        found.append(float(brentq(lambda t: float(f(np.array([t]))[0]), grid[k], grid[k + 1],
                                  xtol=1e-15)))
    out: list[sp.Expr] = []
    for root in found:
        exact = sp.nsimplify(root, tolerance=1e-10, rational=True)
        out.append(exact if abs(evaluate(g, exact)) < 1e-25 else sp.Float(root, 17))
    return out


def _merge(pieces: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for seg in pieces:
        out.append(seg)
        while len(out) >= 3:
            a, p, b = out[-3:]
            if p.is_point and not a.is_point and not b.is_point and a.expr == p.expr == b.expr:
                out[-3:] = [Segment(a.expr, a.lo, b.hi)]
            else:
                break
    return out


def breakpoints(expr: sp.Expr) -> tuple[sp.Expr, ...]:
    """Finite boundaries between the segments of ``expr``."""
    return tuple(s.lo for s in segments(expr) if s.is_point)


def _finite_value(v: sp.Expr) -> bool:
    return bool(v.is_finite) and v is not sp.nan and not v.has(sp.zoo, sp.nan)


def side_limit(expr: sp.Expr, point: sp.Expr, direction: str) -> sp.Expr:
    """One-sided limit of ``expr`` as ``x -> point`` (``direction`` ``"+"``/``"-"``; ``+-oo`` ok).

    An elementary expression is continuous where it is finite, so a finite substitution is the
    limit; otherwise :func:`sympy.limit` decides (``nan`` when it cannot).
    """
    if point.is_finite:
        value = expr.subs(x, point)
        if _finite_value(value):
            return sp.nsimplify(value) if value.is_Float else value
    try:
        return sp.limit(expr, x, point, direction if point.is_finite else "+-"[point == sp.oo])
    except (NotImplementedError, ValueError, TypeError):
        return sp.nan


@lru_cache(maxsize=256)
def lambdify(expr: sp.Expr) -> Callable[[np.ndarray], np.ndarray]:
    """``expr`` in ``x`` as a NumPy function that broadcasts and ignores floating warnings."""
    raw = sp.lambdify(x, expr, modules="numpy")

    def f(values: np.ndarray) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = np.asarray(raw(arr))
        if np.iscomplexobj(out):
            out = np.where(np.abs(out.imag) > 1e-12, np.nan, out.real)
        return np.broadcast_to(out, arr.shape).astype(np.float64)

    return f


def sample(expr: sp.Expr, grid: np.ndarray, exact_limit: int = 400) -> np.ndarray:
    """``expr`` on ``grid`` in floating point; entries that come out non-finite (an overflow
    such as ``exp(1e8)/exp(1e8)``) are re-evaluated exactly, up to ``exact_limit`` of them."""
    values = lambdify(expr)(grid).copy()
    bad = np.flatnonzero(~np.isfinite(values))
    for k in bad[:exact_limit]:
        value = evaluate(expr, sp.Float(float(grid[k]), 20), 20)
        values[k] = value.real if abs(value.imag) <= 1e-12 * max(1.0, abs(value.real)) else (
            np.nan)
    return values


def evaluate(expr: sp.Expr, at: sp.Expr | float, digits: int = 30) -> complex:
    """``expr`` at ``x = at`` to ``digits`` significant digits, as a Python complex."""
    point = sp.nsimplify(at) if isinstance(at, float) else at
    value = sp.N(expr.subs(x, point), digits)
    try:
        return complex(value)
    except TypeError:
        return complex(float("nan"))


def _sample_grid(lo: sp.Expr, hi: sp.Expr) -> np.ndarray:
    finite = [abs(float(v)) for v in (lo, hi) if v.is_finite]
    reach = max([16.0] + [4.0 * v for v in finite])
    a = float(lo) if lo.is_finite else -reach
    b = float(hi) if hi.is_finite else reach
    if lo.is_finite and hi.is_finite:
        span = b - a
        core = a + span * (np.arange(_CORE_SAMPLES) + 0.5) / _CORE_SAMPLES
    else:
        core = np.linspace(a, b, _CORE_SAMPLES)[1 if lo.is_finite else 0 :]
        if hi.is_finite:
            core = core[:-1]
    parts = [core]
    tail = np.logspace(np.log10(reach), np.log10(_TAIL_END), _TAIL_SAMPLES)
    if not lo.is_finite:
        parts.append(-tail)
    if not hi.is_finite:
        parts.append(tail)
    return np.sort(np.concatenate(parts))


def escape_point(
    expr: sp.Expr, point: sp.Expr, direction: str, cap: float
) -> float | None:
    """A point near ``point`` (or far out, for ``+-oo``) where ``|expr| > cap``, if one is found."""
    for k in range(0, 200):
        if point == sp.oo:
            candidate = sp.Integer(2) ** k
        elif point == -sp.oo:
            candidate = -(sp.Integer(2) ** k)
        else:
            step = sp.Integer(2) ** (-k)
            candidate = point + step if direction == "+" else point - step
        value = evaluate(expr, candidate, 20)
        if np.isfinite(abs(value)) and abs(value) > cap:
            return float(candidate)
        if k > 60 and point.is_finite:
            break
    return None


def _rational_extremes(g: sp.Expr, lo: sp.Expr, hi: sp.Expr, cap: float) -> Extremes | None:
    _, den = sp.fraction(sp.cancel(sp.together(g)))
    dg_num, _ = sp.fraction(sp.cancel(sp.together(sp.diff(g, x))))
    try:
        poly_num = sp.Poly(dg_num, x, domain="QQ")
        poly_den = sp.Poly(den, x, domain="QQ")
    except (sp.PolynomialError, sp.CoercionFailed, sp.GeneratorsNeeded):
        return None
    if max(poly_num.degree(), poly_den.degree()) > 24:
        return None
    inside = sp.Interval.open(lo, hi)
    for pole in poly_den.real_roots():
        if inside.contains(pole) is sp.true:
            at = escape_point(g, pole, "+", cap) or escape_point(g, pole, "-", cap)
            return _unbounded(g, at if at is not None else float(pole), "pole at x = "
                              f"{sp.N(pole, 6)} (symbolic)")
    candidates: list[tuple[sp.Expr, float]] = []
    for end, direction in ((hi, "-"), (lo, "+")):
        value = side_limit(g, end, direction)
        if value in (sp.oo, -sp.oo, sp.zoo):
            at = escape_point(g, end, direction, cap)
            return _unbounded(g, at if at is not None else float(end), "limit "
                              f"{value} at x -> {end} (symbolic)")
        if value is sp.nan or not value.is_real:
            return None
        candidates.append((value, float(end)))
    if poly_num.degree() > 0:
        for root in poly_num.real_roots():
            if inside.contains(root) is sp.true:
                candidates.append((sp.simplify(g.subs(x, root)), float(root)))
    low = min(candidates, key=lambda c: float(c[0]))
    high = max(candidates, key=lambda c: float(c[0]))
    return Extremes(
        low[0], low[1], high[0], high[1], True,
        "symbolic: end-point limits and the real roots of the derivative's numerator",
    )


def _unbounded(g: sp.Expr, at: float, why: str) -> Extremes:
    value = evaluate(g, at, 20).real
    inf, sup = (-sp.oo, value) if value < 0 else (value, sp.oo)
    return Extremes(inf, at, sup, at, True, f"unbounded: {why}", unbounded_at=at)


def _singular_points(g: sp.Expr, lo: sp.Expr, hi: sp.Expr, limit: int = 8) -> list[sp.Expr]:
    """Up to ``limit`` points of ``(lo, hi)`` where SymPy finds ``g`` singular."""
    from sympy.calculus.util import singularities

    inside = sp.Interval.open(lo, hi)
    try:
        found = singularities(g, x, inside)
    except (NotImplementedError, TypeError, ValueError):
        return []
    out: list[sp.Expr] = []
    for comp in _components(found):
        if isinstance(comp, sp.FiniteSet):
            out.extend(p for p in comp.args if inside.contains(p) is sp.true)
        elif isinstance(comp, sp.ImageSet):
            for k, p in enumerate(comp):
                if inside.contains(p) is sp.true:
                    out.append(p)
                if k >= 50 or len(out) >= limit:
                    break
    return sorted(out, key=lambda p: abs(float(p)))[:limit]


def _numeric_extremes(g: sp.Expr, lo: sp.Expr, hi: sp.Expr, cap: float) -> Extremes:
    from scipy.optimize import minimize_scalar

    f = lambdify(g)
    grid = _sample_grid(lo, hi)
    values = sample(g, grid)
    undefined = np.flatnonzero(np.isnan(values))
    if undefined.size:  # a removable singularity is fine, a non-real value is not
        near = float(grid[undefined[0]]) + 1e-9
        value = evaluate(g, near, 20)
        if not (np.isfinite(value.real) and abs(value.imag) <= 1e-12):
            raise AnalysisError(f"{g} is not real-valued near x = {near:g}")
    for pole in _singular_points(g, lo, hi):
        at = escape_point(g, pole, "+", cap) or escape_point(g, pole, "-", cap)
        if at is not None:
            return _unbounded(g, at, f"singular at x = {sp.N(pole, 6)} (symbolic)")
    ok = np.isfinite(values)
    big = np.flatnonzero(~np.isnan(values) & (np.abs(np.where(ok, values, np.inf)) > cap))
    if big.size:
        at = float(grid[big[0]])
        return _unbounded(g, at, f"|value| > {cap:g} at a sample (numeric)")
    grid, values = grid[ok], values[ok]
    if grid.size == 0:
        raise AnalysisError(f"{g} has no finite value on ({lo}, {hi})")
    found: dict[str, tuple[float, float]] = {}
    for label, sign in (("inf", 1.0), ("sup", -1.0)):
        k = int(np.argmin(sign * values))
        best_x, best_v = float(grid[k]), float(values[k])
        left = float(grid[max(k - 1, 0)])
        right = float(grid[min(k + 1, grid.size - 1)])
        if right > left:
            res = minimize_scalar(
                lambda t, s=sign: float(s * f(np.array([t]))[0]),
                bounds=(left, right),
                method="bounded",
                options={"xatol": 1e-12},
            )
            if np.isfinite(res.fun) and sign * res.fun < sign * best_v:
                best_x, best_v = float(res.x), float(sign * res.fun)
        found[label] = (best_v, best_x)
    for end, direction in ((lo, "+"), (hi, "-")):
        if end.is_finite:
            value = side_limit(g, end, direction)
            if value in (sp.oo, -sp.oo, sp.zoo):
                at = escape_point(g, end, direction, cap)
                return _unbounded(g, at if at is not None else float(end),
                                  f"limit {value} at x -> {end}")
            if value.is_real:
                v = float(value)
                if v < found["inf"][0]:
                    found["inf"] = (v, float(end))
                if v > found["sup"][0]:
                    found["sup"] = (v, float(end))
    return Extremes(
        found["inf"][0], found["inf"][1], found["sup"][0], found["sup"][1], False,
        f"numeric: {grid.size} samples (tails to |x| = {_TAIL_END:g}) and a bounded Brent "
        "refinement",
    )


@lru_cache(maxsize=4096)
def extremes(g: sp.Expr, lo: sp.Expr, hi: sp.Expr, cap: float = 1e6) -> Extremes:
    """Infimum and supremum of ``g(x)`` over the open interval ``(lo, hi)``.

    ``cap`` bounds what counts as finite: a value of ``|g|`` above it is reported through
    ``unbounded_at`` (a symbolic infinite limit or pole is always reported, at a point where
    ``|g| > cap`` when one is found).
    """
    if x not in g.free_symbols:
        mid = _midpoint(lo, hi)
        value = sp.nsimplify(g) if g.is_Float else g
        if not _finite_value(value):
            return _unbounded(g, mid, "not finite")
        return Extremes(value, mid, value, mid, True, "symbolic: constant")
    if g.is_rational_function(x):
        exact = _rational_extremes(g, lo, hi, cap)
        if exact is not None:
            return exact
    return _numeric_extremes(g, lo, hi, cap)


def _midpoint(lo: sp.Expr, hi: sp.Expr) -> float:
    if lo.is_finite and hi.is_finite:
        return float((lo + hi) / 2)
    if lo.is_finite:
        return float(lo) + 1.0
    if hi.is_finite:
        return float(hi) - 1.0
    return 0.0


def nice_point(seg: Segment) -> sp.Expr:
    """A simple point inside a segment (the point itself for a point segment)."""
    if seg.is_point:
        return seg.lo
    for candidate in NICE_POINTS:
        if (seg.lo < candidate) is sp.true and (candidate < seg.hi) is sp.true:
            return candidate
    return sp.nsimplify(_midpoint(seg.lo, seg.hi))


def nice_points(seg: Segment, limit: int) -> list[sp.Expr]:
    """Up to ``limit`` simple points inside a segment (:data:`NICE_POINTS` first)."""
    if seg.is_point:
        return [seg.lo]
    inside = [c for c in NICE_POINTS if (seg.lo < c) is sp.true and (c < seg.hi) is sp.true]
    return (inside or [nice_point(seg)])[:limit]


def _symbolic_zero(e: sp.Expr) -> bool:
    if e == 0:
        return True
    try:
        if sp.expand(e) == 0:
            return True
        return sp.count_ops(e) <= 400 and sp.simplify(e) == 0
    except (TypeError, ValueError, NotImplementedError):
        return False


def prove_zero(
    expr: sp.Expr,
    mu_values: Sequence[sp.Expr] = (),
    *,
    almost_everywhere: bool = False,
    tol: float = 1e-9,
) -> IdentityResult:
    """Decide whether ``expr`` (in ``x`` and possibly ``mu``) is identically 0.

    First for all ``x`` and ``mu > 0`` at once (``expr`` reduces to 0 after :func:`normalize`
    and ``expand``); otherwise for each ``mu`` in ``mu_values``, segment by segment: a segment is
    proved 0 symbolically (``expand``/``simplify``), or shown nonzero by exact evaluation at a
    simple point (the counterexample), or checked numerically on a dense sample (``|expr| <=
    tol``). With ``almost_everywhere`` the isolated points between segments are skipped.
    """
    e = sp.sympify(expr)
    if e == 0 or sp.expand(e) == 0:
        every = "every x and mu > 0" if mu in expr.free_symbols else "every x"
        return IdentityResult(True, f"symbolic, for {every}", 0.0)
    runs = list(mu_values) if mu in e.free_symbols else [None]
    if not runs:
        raise ValueError("mu_values must be given for an expression in mu")
    numeric_points = 0
    max_error = 0.0
    for m in runs:
        em = e if m is None else e.subs(mu, m)
        # segments holding the simplest points first, so counterexamples read well
        for seg in sorted(segments(em), key=_niceness):
            if almost_everywhere and seg.is_point:
                continue
            found = _segment_zero(seg, tol)
            point = {"x": found[2]} if found[2] is not None else None
            if point is not None and m is not None:
                point["mu"] = float(m)
            if not found[0]:
                return IdentityResult(
                    False, "counterexample by exact evaluation", abs(found[3]), point, found[3]
                )
            numeric_points += found[1]
            max_error = max(max_error, found[3])
    where = "every x" if not almost_everywhere else "every x off the breakpoints"
    at_mu = "" if runs == [None] else f", mu in {{{', '.join(str(m) for m in runs)}}}"
    if numeric_points == 0:
        return IdentityResult(True, f"symbolic, per piece ({where}{at_mu})", 0.0)
    return IdentityResult(
        True,
        f"numeric on the pieces SymPy could not reduce: {numeric_points} points, max |error| = "
        f"{max_error:.1e} ({where}{at_mu}); the other pieces symbolic",
        max_error,
    )


def _niceness(seg: Segment) -> int:
    point = nice_point(seg)
    return NICE_POINTS.index(point) if point in NICE_POINTS else len(NICE_POINTS)


def _segment_zero(seg: Segment, tol: float) -> tuple[bool, int, float | None, float]:
    """(holds, numeric sample count, counterexample x, error or value)."""
    for point in nice_points(seg, 4):
        value = evaluate(seg.expr, point)
        if not np.isfinite(abs(value)) or abs(value) > tol:
            return False, 0, float(point), float(value.real) if np.isfinite(value.real) else (
                float("nan"))
    if _symbolic_zero(seg.expr):
        return True, 0, None, 0.0
    if seg.is_point or x not in seg.expr.free_symbols:
        return True, 1, None, abs(evaluate(seg.expr, seg.lo if seg.is_point else 0))
    grid = _sample_grid(seg.lo, seg.hi)
    values = sample(seg.expr, grid)
    bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > tol))
    if bad.size:
        k = int(bad[0])
        return False, grid.size, float(grid[k]), float(values[k])
    return True, grid.size, None, float(np.max(np.abs(values), initial=0.0))


def limit_mu_infinity(expr: sp.Expr, probes: Sequence[int] = (10**6, 10**9, 10**12)) -> sp.Expr:
    """``lim_{mu -> oo} expr`` for an expression in ``mu`` only (``x`` already fixed).

    A ``Piecewise`` is reduced to the piece active for all large ``mu`` (the same piece at every
    probe value), whose limit :func:`sympy.limit` computes. Returns ``nan`` when the active piece
    changes between probes.
    """
    e = normalize(expr)
    if mu not in e.free_symbols:
        return e
    if isinstance(e, sp.Piecewise):
        active = {_active_piece(e, big) for big in probes}
        if len(active) != 1 or None in active:
            return sp.nan
        return limit_mu_infinity(e.args[active.pop()].expr, probes)
    try:
        return sp.limit(e, mu, sp.oo)
    except (NotImplementedError, ValueError, TypeError):
        return sp.nan


def _active_piece(e: sp.Piecewise, big: int) -> int | None:
    for i, (_, cond) in enumerate(e.args):
        if cond.subs(mu, big) is sp.true:
            return i
    return None


__all__ = [
    "AnalysisError",
    "Extremes",
    "IdentityResult",
    "NICE_POINTS",
    "Segment",
    "breakpoints",
    "escape_point",
    "evaluate",
    "extremes",
    "lambdify",
    "limit_mu_infinity",
    "mu",
    "nice_point",
    "nice_points",
    "normalize",
    "sample",
    "prove_zero",
    "segments",
    "side_limit",
    "x",
]
