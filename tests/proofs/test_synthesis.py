"""synthesize(backward=B, prox=P): F = B o P with its certificate."""

from __future__ import annotations

import pytest
import sympy as sp

from proxcompress.errors import InvalidInputError
from proxcompress.proofs import CheckOptions, mu, synthesize, x
from proxcompress.proofs.pairs import dist2_prox, signswish


def test_synthesized_pair_passes_and_forward_is_b_of_p() -> None:
    s = synthesize(backward="tanh(2*x)", prox="(x + mu*sign(x))/(1 + mu)", levels=[-1, 1])
    assert sp.simplify(s.forward - sp.tanh(2 * (x + mu * sp.sign(x)) / (1 + mu))) == 0
    assert s.passed
    statuses = {c.check: c.status for c in s.report.certificates}
    assert statuses == {"prox": "pass", "backward": "pass", "decomposition": "pass",
                        "derivative": "pass", "facts": "n/a", "prox_numeric": "n/a",
                        "descent": "pass"}
    assert float(s.report.certificate("backward").data["lipschitz"]) == pytest.approx(2.0)


def test_synthesis_reproduces_bnn_plus_plus_from_sympy_expressions() -> None:
    s = synthesize(backward=signswish(sp.Symbol("x"), 2), prox=dist2_prox(x, (-1, 1)),
                   name="my-bnn++")
    assert s.passed
    assert s.pair.name == "my-bnn++"
    assert s.forward == signswish(dist2_prox(x, (-1, 1)), 2)
    # larq's beta = 5 decomposes as well but reverses the steps of latents near +-1
    s5 = synthesize(backward=signswish(sp.Symbol("x")), prox=dist2_prox(x, (-1, 1)))
    assert [c.check for c in s5.report.certificates if c.status == "fail"] == ["descent"]


def test_given_forward_is_checked_not_synthesized() -> None:
    s = synthesize(backward="hardtanh(x)", prox="sign(x)", forward="sign(x)")
    assert s.report.certificate("decomposition").passed
    bad = synthesize(backward="SignSwish(x)", prox="sign(x)", forward="sign(x)")
    assert not bad.passed


def test_wrong_levels_fail_the_prox_check() -> None:
    s = synthesize(backward="x", prox="(x + mu*sign(x))/(1 + mu)", levels=[-1, 0, 1])
    cert = s.report.certificate("prox")
    assert cert.status == "fail" and "not the declared levels" in cert.detail


def test_p_of_b_composition() -> None:
    s = synthesize(backward="tanh(x)", prox="sign(x)", options=CheckOptions(composition="PoB"))
    assert s.forward == sp.sign(sp.tanh(x))
    assert s.report.certificate("decomposition").passed


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"backward": "x", "prox": "y"}, "prox"),
        ({"backward": 3j, "prox": "x"}, "backward"),
        ({"backward": sp.Symbol("z"), "prox": "x"}, "backward"),
        ({"backward": "x", "prox": "x", "levels": []}, "levels"),
        ({"backward": "x", "prox": "x", "method_derivative_at": "w"}, "method_derivative_at"),
    ],
)
def test_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        synthesize(**kwargs)
    assert err.value.field == field
