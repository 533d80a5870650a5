"""The SPR derivation: symbolic proof, and the symbolic closed form tied to formulations.spr."""

from __future__ import annotations

import numpy as np
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.formulations.spr import spr_numeric, spr_value
from proxcompress.proofs import derive_spr, spr_closed_form
from proxcompress.proofs.spr import M, alpha, r, t

Z_SYM, Y_SYM = spr_closed_form()
Z_FN = sp.lambdify((r, t, alpha, M), Z_SYM, "numpy")
Y_FN = sp.lambdify((r, t, alpha, M), Y_SYM, "numpy")


def test_derivation_passes_symbolically() -> None:
    report = derive_spr(samples=50)
    assert report.passed
    assert [c.check for c in report.certificates] == ["derivation", "continuity", "numeric"]
    derivation = report.certificate("derivation")
    assert derivation.method.startswith("symbolic")
    assert all(s.endswith("proved.") for s in derivation.statements[:-1])
    assert len(report.certificate("continuity").statements) == 4


@settings(max_examples=200, deadline=None)
@given(
    w=st.lists(st.floats(-5, 5, allow_nan=False, allow_subnormal=False), min_size=1,
               max_size=8).filter(lambda v: max(abs(u) for u in v) > 1e-6),
    a=st.floats(0.001, 0.999),
    slack=st.floats(1.0, 10.0),
)
def test_symbolic_closed_form_equals_numpy_and_numeric_minimum(
    w: list[float], a: float, slack: float,
) -> None:
    vec = np.asarray(w)
    l2, linf = float(np.linalg.norm(vec)), float(np.max(np.abs(vec)))
    m = linf * slack
    z_sym, y_sym = float(Z_FN(l2, linf, a, m)), float(Y_FN(l2, linf, a, m))
    closed = spr_value(l2, linf, a, m)
    assert abs(z_sym - float(closed.z)) <= 1e-12 * max(1.0, z_sym)
    assert abs(y_sym - float(closed.y)) <= 1e-12
    numeric = spr_numeric(l2, linf, a, m)
    assert abs(z_sym - float(numeric.z)) <= 1e-9 * max(1.0, z_sym)


def test_symbolic_pieces_are_the_minimum_on_each_case() -> None:
    # substitute each case's point into the objective: exact equality with the Piecewise value
    y = sp.Symbol("y", positive=True)
    f = alpha * r**2 / y + (1 - alpha) * y
    cases = [
        (sp.Rational(3), sp.Rational(1, 2), sp.Rational(1, 5), sp.Integer(1)),  # case 1
        (sp.Rational(1), sp.Rational(3, 10), sp.Rational(1, 5), sp.Integer(1)),  # case 2
        (sp.Rational(1, 2), sp.Rational(9, 20), sp.Rational(1, 5), sp.Integer(1)),  # case 3
    ]
    for values in cases:
        sub = dict(zip((r, t, alpha, M), values, strict=True))
        y_star = Y_SYM.subs(sub)
        assert sp.simplify(f.subs(sub).subs(y, y_star) - Z_SYM.subs(sub)) == 0
