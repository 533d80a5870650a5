"""Deliberately broken pairs fail the right check, with a concrete counterexample."""

from __future__ import annotations

import pytest
import sympy as sp

from proxcompress.proofs import CheckOptions, certify, synthesize, x
from proxcompress.proofs.checks import check_backward, check_facts, check_prox
from proxcompress.proofs.pairs import (
    Facts,
    Pair,
    bnn,
    bnn_plus,
    bnn_plus_plus,
    bnn_plus_plus_prox,
    proxconnect,
)


@pytest.mark.parametrize(
    ("prox", "point"),
    [
        ("-x", None),
        ("sin(x)", None),
        ("Piecewise((x, x < 0), (x - 1, True))", 0.0),  # downward jump at 0
        ("x - 2*sign(x)", 0.0),  # jumps down by 4
        ("x**3 - 3*x", None),
    ],
)
def test_non_monotone_prox_fails(prox: str, point: float | None) -> None:
    cert = synthesize(backward="x", prox=prox).report.certificate("prox")
    assert cert.status == "fail"
    ce = cert.counterexample
    assert ce is not None and "x" in ce.point
    if point is not None:
        assert ce.point["x"] == point
    else:  # a point where P' < 0
        p = sp.sympify(prox, locals={"x": x})
        assert float(sp.diff(p, x).subs(x, ce.point["x"])) < 0


def test_forward_that_is_not_b_of_p_fails() -> None:
    report = synthesize(backward="tanh(x)", prox="sign(x)", forward="sign(x)").report
    cert = report.certificate("decomposition")
    assert cert.status == "fail"
    assert cert.counterexample is not None
    assert cert.counterexample.point == {"x": 1.0}
    assert cert.counterexample.values["B(P(x))"] == pytest.approx(0.7615941559557649)
    assert report.certificate("prox").passed and report.certificate("backward").passed


def test_forward_mismatch_with_mu_names_mu() -> None:
    cert = synthesize(backward="x", prox="(x + mu*sign(x))/(1 + mu)",
                      forward="(x + 2*mu*sign(x))/(1 + mu)").report.certificate("decomposition")
    assert cert.status == "fail"
    assert set(cert.counterexample.point) == {"x", "mu"}


@pytest.mark.parametrize("backward", ["x**3", "x*Abs(x)", "sqrt(Abs(x))", "1/x", "tan(x)",
                                      "exp(x)"])
def test_unbounded_backward_derivative_fails(backward: str) -> None:
    cert = synthesize(backward=backward, prox="sign(x)").report.certificate("backward")
    assert cert.status == "fail"
    ce = cert.counterexample
    assert ce is not None and ce.values["|B'(x)|"] > 1e6
    b = sp.sympify(backward, locals={"x": x, "Abs": sp.Abs})
    assert abs(float(sp.diff(b, x).subs(x, sp.nsimplify(ce.point["x"])))) > 1e6


def test_discontinuous_backward_fails() -> None:
    cert = synthesize(backward="sign(x)", prox="x").report.certificate("backward")
    assert cert.status == "fail"
    assert cert.counterexample.point == {"x": 0.0}
    assert cert.counterexample.values == {"B(x-)": -1.0, "B(x+)": 1.0}


def test_wrong_declared_facts_fail() -> None:
    good = bnn_plus()
    wrong_lipschitz = Pair(**{**good.__dict__, "facts": Facts(backward_lipschitz=sp.Integer(1))})
    assert check_backward(wrong_lipschitz).status == "fail"
    wrong_odd = Pair(**{**good.__dict__, "facts": Facts(odd=False)})
    assert check_facts(wrong_odd).status == "fail"
    wrong_bounded = Pair(**{**proxconnect().__dict__, "facts": Facts(bounded=True)})
    cert = check_facts(wrong_bounded)
    assert cert.status == "fail" and "unbounded" in cert.detail
    wrong_levels = Pair(**{**proxconnect().__dict__,
                           "facts": Facts(levels=(sp.Integer(-1), sp.Integer(0), sp.Integer(1)))})
    cert = check_prox(wrong_levels)
    assert cert.status == "fail" and "not the declared levels" in cert.detail


def test_alternative_formalizations_are_pluggable() -> None:
    latent = CheckOptions(derivative_at="latent")
    assert certify(bnn(), latent).certificate("derivative").passed
    assert not certify(bnn_plus_plus_prox(), latent).certificate("derivative").passed
    # the published BNN++ takes B' at the latent, which is P(w) (P = identity): any reading
    assert certify(bnn_plus_plus(), latent).certificate("derivative").passed
    p_of_b = CheckOptions(composition="PoB")
    cert = certify(bnn_plus(), p_of_b).certificate("decomposition")
    assert cert.passed  # sign(SS(x)) = sign(x)
    assert "derives no guarantee" in " ".join(cert.statements)


def test_options_validate() -> None:
    from proxcompress.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        CheckOptions(composition="BP")
    with pytest.raises(InvalidInputError):
        CheckOptions(derivative_at="w")
    with pytest.raises(InvalidInputError):
        CheckOptions(mu_values=(0,))


@pytest.mark.parametrize("prox", ["sqrt(x)", "log(x)", "Piecewise((x, x > 0))"])
def test_prox_not_real_valued_or_undefined_fails(prox: str) -> None:
    cert = synthesize(backward="x", prox=prox).report.certificate("prox")
    assert cert.status == "fail"
    assert cert.detail.startswith("could not analyse")
