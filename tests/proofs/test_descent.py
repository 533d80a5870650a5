"""The ``descent`` check: ``B' >= 0`` wherever the method evaluates it, against closed forms."""

from __future__ import annotations

import pytest
import sympy as sp
from scipy.optimize import brentq

from proxcompress.errors import InvalidInputError
from proxcompress.proofs.checks import CheckOptions, check_descent
from proxcompress.proofs.pairs import bnn_plus, build_pair
from proxcompress.proofs.pairs import bnn_plus_plus_prox as bnn_plus_plus

#: SS_beta'(x) = beta (2 - u tanh(u/2)) / (1 + cosh u), u = beta x, vanishes at u = +-U
U = brentq(lambda u: 2 - u * __import__("math").tanh(u / 2), 1.0, 4.0)


@pytest.mark.parametrize(("beta", "bound"), [(2, 1), (2, "6/5"), (5, "1/2"), (5, "12/25"),
                                             (3, "4/5"), (1, 2), (1, 3)])
def test_signswish_at_the_latent_passes_iff_beta_c_within_the_root(beta: int, bound: str
                                                                    ) -> None:
    """BNN+ evaluates ``SS_beta'`` at the latent ``|w| <= c``: non-negative iff
    ``beta c <= U ~ 2.3994``, and a failure reports a point with a negative slope."""
    c = sp.Rational(bound)
    cert = check_descent(bnn_plus(beta), CheckOptions(latent_bound=c))
    assert cert.passed == (beta * float(c) <= U + 1e-12), cert.detail
    if not cert.passed:
        assert cert.counterexample is not None
        assert cert.counterexample.values["B'(w)"] < 0


def test_prox_point_sees_the_image_of_the_latents() -> None:
    """BNN++ (``B'`` at ``P^mu(w)``): ``P^mu`` maps ``[-1, 1]`` into ``[-1, 1]`` with ``P(+-1) =
    +-1``, so the pair passes iff ``beta <= U``; on ``[-1/2, 1/2]`` at ``mu = 1/4`` the image is
    ``[-(1/2 + 1/4)/(5/4), ...] = [-0.6, 0.6]``, so ``beta = 3`` (``3 * 0.6 = 1.8 < U``) passes
    there while it fails on ``[-1, 1]``."""
    assert check_descent(bnn_plus_plus(2)).passed
    assert not check_descent(bnn_plus_plus(3)).passed
    small = CheckOptions(mu_values=(sp.Rational(1, 4),), latent_bound=sp.Rational(1, 2))
    assert check_descent(bnn_plus_plus(3), small).passed
    assert not check_descent(bnn_plus_plus(4), small).passed  # 4 * 0.6 = 2.4 > U
    moved = build_pair("bnn++-prox", derivative_at="latent", beta=3)
    assert not check_descent(moved, CheckOptions(latent_bound=1)).passed
    assert check_descent(moved, CheckOptions(latent_bound=sp.Rational(3, 4))).passed


def test_identity_backward_and_unbounded_latents() -> None:
    for name in ("binaryconnect", "proxconnect", "shift"):
        assert check_descent(build_pair(name), CheckOptions(latent_bound=None)).passed
    # SignSwish over the whole real line always has negative slopes
    assert not check_descent(bnn_plus(1), CheckOptions(latent_bound=None)).passed


def test_make_pair_parameters() -> None:
    assert build_pair("bnn++-prox", beta=2.0).parameters == {"beta": 2.0}
    assert build_pair("bnn++-prox", beta=2.0).backward == bnn_plus_plus(2).backward
    assert build_pair("bnn++", beta=3).parameters == {"beta": 3.0, "beta_growth": 1.0}
    for kwargs, field in (({"beta": 2, "bits": 3}, "bits"), ({"beta": float("inf")}, "beta")):
        with pytest.raises(InvalidInputError, match=field):
            build_pair("bnn++-prox", **kwargs)
    with pytest.raises(InvalidInputError, match="derivative_at"):
        build_pair("bnn", derivative_at="middle")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="latent_bound"):
        CheckOptions(latent_bound=0)


def test_published_bnn_plus_plus_passes_iff_beta_stays_within_the_root() -> None:
    """``SS_{beta(mu)}'`` at latents ``|w| <= c`` for ``mu`` in the grid: non-negative iff
    ``beta(mu_max) c <= U``; the deployed limit is ``sign``."""
    from proxcompress.proofs.pairs import bnn_plus_plus as published

    grid = CheckOptions(mu_values=(sp.Rational(1, 4), sp.Integer(1), sp.Integer(4)))
    assert check_descent(published(sp.Rational(1, 5), sp.Rational(1, 2)), grid).passed  # 2.2
    assert not check_descent(published(sp.Rational(1, 2), sp.Rational(1, 2)), grid).passed
    assert check_descent(published(1, 1), CheckOptions(
        mu_values=(sp.Integer(1),), latent_bound=sp.Rational(1, 1))).passed  # beta = 2
