"""Every catalogue pair: the verdict of every check, the certificates' content, numeric twins."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from proxcompress.errors import InvalidInputError
from proxcompress.proofs import CHECKS, get_pair, mu, pair_names, x
from proxcompress.proofs.certificate import Report
from proxcompress.proofs.pairs import (
    Pair,
    catalogue,
    hardtanh,
    register,
    signswish,
    signswish_derivative,
)

ALL_PASS = dict.fromkeys(CHECKS, "pass")
EXPECTED: dict[str, dict[str, str]] = {
    "binaryconnect": ALL_PASS,
    "bnn": {**ALL_PASS, "derivative": "fail"},
    "bnn+": {**ALL_PASS, "decomposition": "fail", "derivative": "fail", "descent": "fail"},
    "proxconnect": ALL_PASS,
    "proxconnect-clip": ALL_PASS,
    # beta(mu) = 1 + mu: SS_beta'(w) < 0 for |w| > 2.3994 / beta(mu), inside [-1, 1] at mu = 4
    "bnn++": {**ALL_PASS, "descent": "fail"},
    "bnn++-prox": ALL_PASS,
    "proxquant": ALL_PASS,
    "ternary": ALL_PASS,
    "shift": ALL_PASS,
}


def test_catalogue_holds_the_required_pairs() -> None:
    assert set(EXPECTED) == set(pair_names())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_verdict_per_check(name: str, catalogue_reports: dict[str, Report]) -> None:
    report = catalogue_reports[name]
    got = {c.check: c.status for c in report.certificates}
    assert got == EXPECTED[name], {c.check: c.detail for c in report.certificates}
    assert report.passed == all(v != "fail" for v in EXPECTED[name].values())


def test_bnn_plus_fails_decomposition_at_one(catalogue_reports: dict[str, Report]) -> None:
    cert = catalogue_reports["bnn+"].certificate("decomposition")
    ce = cert.counterexample
    assert ce is not None and ce.point == {"x": 1.0}
    assert ce.values["F(x)"] == 1.0
    assert ce.values["B(P(x))"] == pytest.approx(1.0530948648593, abs=1e-12)


def test_bnn_decomposes_but_evaluates_b_prime_elsewhere(
    catalogue_reports: dict[str, Report],
) -> None:
    report = catalogue_reports["bnn"]
    assert report.certificate("decomposition").passed
    cert = report.certificate("derivative")
    assert cert.counterexample is not None
    assert cert.counterexample.point == {"x": 2.0}
    assert cert.counterexample.values == {"B'(w)": 0.0, "B'(P(w))": 1.0}
    assert any("not differentiable" in s for s in cert.statements)  # kinks at +-1 noted


def test_guarantee_is_stated_with_applicability(catalogue_reports: dict[str, Report]) -> None:
    cert = catalogue_reports["bnn++-prox"].certificate("decomposition")
    text = " ".join(cert.statements)
    assert "ProxConnect step on the composite loss l o B" in text
    assert "G R (2 + 1.5 ln t) / sqrt(t)" in text
    assert cert.method.startswith("symbolic")
    assert cert.data["r"].startswith("nonconvex")  # P^mu jumps at 0
    assert cert.data["B_affine"] is False
    bc = catalogue_reports["binaryconnect"].certificate("decomposition")
    assert bc.data["B_affine"] is True and bc.data["r"] == "nonconvex (P jumps)"


def test_lipschitz_constants(catalogue_reports: dict[str, Report]) -> None:
    for name, expected in [("bnn", 1), ("binaryconnect", 1), ("bnn+", 5), ("bnn++-prox", 2),
                           ("bnn++", 5)]:  # bnn++: sup |B'| = beta(mu) = 1 + mu, mu <= 4
        cert = catalogue_reports[name].certificate("backward")
        assert float(cert.data["lipschitz"]) == pytest.approx(expected, rel=1e-9)
    assert catalogue_reports["bnn"].certificate("backward").method == "symbolic"
    assert catalogue_reports["bnn+"].certificate("backward").method.startswith("numeric")


def test_prox_numeric_uses_cvxpy_where_convex(catalogue_reports: dict[str, Report]) -> None:
    assert "cvxpy" in catalogue_reports["proxconnect-clip"].certificate("prox_numeric").detail
    assert "exact" in catalogue_reports["proxquant"].certificate("prox_numeric").detail


def test_levels_in_the_limit(catalogue_reports: dict[str, Report]) -> None:
    detail = catalogue_reports["shift"].certificate("prox").detail
    assert "{-8, -4, -2, -1, 1, 2, 4, 8}" in detail
    assert "{-1, 0, 1}" in catalogue_reports["ternary"].certificate("prox").detail


def test_signswish_matches_larq_derivative() -> None:
    derivative = sp.diff(signswish(x), x)
    reference = signswish_derivative(x)
    for point in np.linspace(-3, 3, 25):
        assert float(derivative.subs(x, point)) == pytest.approx(
            float(reference.subs(x, point)), abs=1e-12)
    assert float(signswish(x).subs(x, sp.Rational(12, 25))) == pytest.approx(1.1997, abs=1e-4)


def test_numeric_twins() -> None:
    pair = get_pair("bnn++-prox")
    twin = pair.numeric()
    w = np.linspace(-2, 2, 41)
    f_sym = sp.lambdify((x, mu), pair.forward)
    np.testing.assert_allclose(twin.forward(w, 2.0), f_sym(w, 2.0))
    np.testing.assert_allclose(twin.backward_derivative(w),
                               sp.lambdify(x, signswish_derivative(x, 2))(w), atol=1e-12)
    np.testing.assert_allclose(twin.prox(w, 1.0), (w + np.sign(w)) / 2)
    published = get_pair("bnn++").numeric()  # SS_{1 + mu} on the latent, P = identity
    np.testing.assert_allclose(published.forward(w, 3.0),
                               sp.lambdify(x, signswish(x, 4))(w), atol=1e-12)
    np.testing.assert_allclose(published.backward_derivative(w, 3.0),
                               sp.lambdify(x, signswish_derivative(x, 4))(w), atol=1e-12)
    np.testing.assert_allclose(published.prox(w, 3.0), w)
    bnn = get_pair("bnn").numeric()
    np.testing.assert_array_equal(bnn.backward_derivative(np.array([-2.0, -1.0, 0.3, 1.0, 1.5])),
                                  [0.0, 1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(bnn.backward(w), np.clip(w, -1, 1))


def test_each_pair_documents_maths_and_paper() -> None:
    for pair in catalogue().values():
        assert pair.doc and pair.summary
        assert set(pair.expressions()) == {"F", "B", "B'", "P"}
    assert "1812.11800" in get_pair("bnn+").doc
    assert "[U]" in get_pair("bnn++").doc and "[U]" in get_pair("bnn++-prox").doc


def test_registry() -> None:
    assert get_pair("BNN++") is get_pair("bnn++")
    with pytest.raises(InvalidInputError) as err:
        get_pair("nope")
    assert "bnn++" in str(err.value)
    with pytest.raises(InvalidInputError):
        register("bnn", lambda: get_pair("bnn"))
    custom = Pair(name="clipped-id", forward=hardtanh(x), backward=x, prox=hardtanh(x))
    register("clipped-id", lambda: custom)
    try:
        assert get_pair("clipped-id") is custom
    finally:
        from proxcompress.proofs import pairs as module

        module._FACTORIES.pop("clipped-id")
        module._build.cache_clear()
