"""The piecewise analysis engine: segments, extremes, identities, limits in mu."""

from __future__ import annotations

import pytest
import sympy as sp

from proxcompress.proofs.analysis import (
    AnalysisError,
    extremes,
    limit_mu_infinity,
    mu,
    prove_zero,
    segments,
    x,
)
from proxcompress.proofs.pairs import signswish


def test_segments_of_nested_kinks() -> None:
    p = sp.sign(x) + sp.sign(x - sp.sign(x)) * sp.Max(sp.Abs(x - sp.sign(x)) - sp.Rational(1, 4),
                                                      0)
    segs = segments(p)
    points = [s.lo for s in segs if s.is_point]
    assert points == [sp.Rational(-5, 4), sp.Rational(-3, 4), 0, sp.Rational(3, 4),
                      sp.Rational(5, 4)]
    assert segs[0].lo == -sp.oo and segs[-1].hi == sp.oo


def test_segments_split_transcendental_conditions_numerically() -> None:
    segs = segments(sp.sign(signswish(x)))
    assert [s.lo for s in segs if s.is_point] == [0]


def test_segments_reject_other_symbols_and_gaps() -> None:
    with pytest.raises(AnalysisError):
        segments(x + sp.Symbol("z"))
    with pytest.raises(AnalysisError):
        segments(sp.Piecewise((x, x > 0)))


def test_extremes_exact_and_numeric() -> None:
    ext = extremes(1 - x**2, -sp.oo, sp.oo)
    assert ext.exact and ext.inf == -sp.oo and ext.unbounded_at is not None
    ext = extremes(x / (1 + x**2), -sp.oo, sp.oo)
    assert ext.exact and ext.sup == sp.Rational(1, 2) and ext.inf == -sp.Rational(1, 2)
    ext = extremes(sp.diff(signswish(x), x), -sp.oo, sp.oo)
    assert not ext.exact and float(ext.sup) == pytest.approx(5.0, abs=1e-9)


def test_prove_zero() -> None:
    assert prove_zero(sp.Abs(x) - sp.sign(x) * x).holds
    result = prove_zero(sp.tanh(x) - sp.tanh(x).rewrite(sp.exp))
    assert result.holds
    bad = prove_zero(sp.Max(x, 0) - x)
    assert not bad.holds and bad.counterexample == {"x": -1.0}
    with_mu = prove_zero(sp.Max(x, mu) - x, (sp.Integer(1),))
    assert not with_mu.holds and with_mu.counterexample == {"x": -1.0, "mu": 1.0}


def test_limit_in_mu() -> None:
    p = (x + mu * sp.sign(x)) / (1 + mu)
    assert limit_mu_infinity(p.subs(x, sp.Rational(3, 7))) == 1
    q = sp.Piecewise((x - mu, x > 1 + mu), (1, True))
    assert limit_mu_infinity(q.subs(x, 5)) == 1
