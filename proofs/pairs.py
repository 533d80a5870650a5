"""The catalogue of forward/backward quantizer pairs, each defined once in SymPy.

A :class:`Pair` holds, as SymPy expressions in the latent variable ``x`` (and the annealing
parameter ``mu > 0`` where it has one):

* ``forward`` -- ``F``, what the network uses in the forward pass;
* ``backward`` -- ``B``, whose derivative replaces ``F'`` in the backward pass;
* ``prox`` -- ``P = P^mu``, the proximal quantizer through which the pair claims to decompose;

plus its declared local :class:`Facts` (monotone ``P``, odd maps, bounded ``F``, the value set of
``P`` as ``mu -> oo``, the Lipschitz constant of ``B``), an optional :class:`ProxLink` naming the
proximal problem of :mod:`proxcompress.formulations.prox` that ``P`` solves, and where the
published method evaluates ``B'`` (``method_derivative_at``). The generic checks of
:mod:`proxcompress.proofs.checks` turn these local facts into a certificate ("local facts,
generic rules", as CVXPY atoms and larq quantizers do).

The training wing looks pairs up by name (:func:`get_pair`) and uses :meth:`Pair.numeric` for
NumPy twins of ``F``, ``B``, ``dB/dx`` and ``P``.

Conventions: ``sign(0) = 0`` (SymPy), and every projection onto levels takes the midpoint of the
two nearest levels at a tie; both are single-valued selections of set-valued prox maps at
isolated points, and keep odd maps odd. The hard-tanh is written so that ``B'(+-1) = 1``
(larq's ``1{|x| <= 1}``).

Papers: Courbariaux, Bengio, David, *BinaryConnect*, NeurIPS 2015 (arXiv:1511.00363);
Hubara et al., *Binarized Neural Networks*, NeurIPS 2016 (arXiv:1602.02830); Darabi et al.,
*BNN+*, arXiv:1812.11800; Dockhorn et al., *Demystifying and Generalizing BinaryConnect*,
NeurIPS 2021 (arXiv:2110.13220); Lu, Yu, Li, Partovi Nia, *Understanding Neural Network
Binarization with Forward and Backward Proximal Quantizers*, NeurIPS 2023 (arXiv:2402.17710);
Bai, Wang, Liberty, *ProxQuant*, ICLR 2019 (arXiv:1810.00861); Li et al., *DenseShift*,
ICCV 2023 (arXiv:2208.09708); larq ``larq/quantizers.py`` (``SteSign``, ``SwishSign``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Literal

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike, NDArray

from proxcompress.errors import InvalidInputError
from proxcompress.levels import BINARY, TERNARY, shift_levels
from proxcompress.proofs import registry
from proxcompress.proofs.analysis import mu, normalize, x

DerivativePoint = Literal["prox", "latent"]

#: SignSwish sharpness, larq's default (``SwishSign(beta=5.0)``) [U: the paper's value]
DEFAULT_BETA = registry.DEFAULT_BETA


def sigmoid(u: sp.Expr) -> sp.Expr:
    """``sigma(u) = 1 / (1 + e^{-u})``, written ``(1 + tanh(u/2)) / 2`` (no overflow when
    lambdified)."""
    return (1 + sp.tanh(u / 2)) / 2


def signswish(u: sp.Expr, beta: sp.Expr | int = DEFAULT_BETA) -> sp.Expr:
    """SignSwish ``SS_beta(u) = 2 sigma(beta u) [1 + beta u (1 - sigma(beta u))] - 1``.

    Odd, ``SS'(u) = beta (2 - beta u tanh(beta u / 2)) / (1 + cosh(beta u))`` (larq
    ``SwishSign``), maximal slope ``beta`` at 0, overshoots to about 1.1997 at ``u ~ 2.4/beta``
    and tends to ``sign(u)``. Darabi et al., BNN+, arXiv:1812.11800.
    """
    b = sp.sympify(beta)
    s = sigmoid(b * u)
    return 2 * s * (1 + b * u * (1 - s)) - 1


def signswish_derivative(u: sp.Expr, beta: sp.Expr | int = DEFAULT_BETA) -> sp.Expr:
    """larq's closed form ``beta (2 - beta u tanh(beta u / 2)) / (1 + cosh(beta u))``."""
    b = sp.sympify(beta)
    return b * (2 - b * u * sp.tanh(b * u / 2)) / (1 + sp.cosh(b * u))


def hardtanh(u: sp.Expr) -> sp.Expr:
    """``clip(u, -1, 1)``, the projection onto ``[-1, 1]``; derivative ``1{|u| <= 1}``."""
    return sp.Piecewise((-1, u < -1), (u, u <= 1), (1, True))


def project(u: sp.Expr, levels: Sequence[float | int | sp.Expr]) -> sp.Expr:
    """``Pi_Q(u)``, the nearest of the ``levels`` (midpoint value at a tie; ``sign`` for
    ``{-1, 1}``)."""
    q = sorted({sp.nsimplify(v) for v in levels})
    if q == [-1, 1]:
        return sp.sign(u)
    pieces: list[tuple[sp.Expr, sp.Basic]] = []
    for lower, upper in zip(q, q[1:], strict=False):
        mid = (lower + upper) / 2
        pieces += [(lower, u < mid), (mid, sp.Eq(u, mid))]
    pieces.append((q[-1], True))
    return sp.Piecewise(*pieces)


def soft_threshold(u: sp.Expr, t: sp.Expr) -> sp.Expr:
    """``sign(u) max(|u| - t, 0)``, the prox of ``t |.|``."""
    return sp.sign(u) * sp.Max(sp.Abs(u) - t, 0)


def dist2_prox(u: sp.Expr, levels: Sequence[float | int | sp.Expr]) -> sp.Expr:
    """``(u + mu Pi_Q(u)) / (1 + mu)``, the prox of ``(mu/2) dist^2(., Q)`` [D, methods.md s.1]."""
    return (u + mu * project(u, levels)) / (1 + mu)


def derivative(expr: sp.Expr) -> sp.Expr:
    """``d expr / dx`` piece by piece (``sign``, ``Abs``, ``Min``, ``Max`` made piecewise first, so
    no ``DiracDelta`` appears; at a breakpoint the covering piece's derivative is used)."""
    return sp.piecewise_fold(sp.diff(normalize(expr), x))


@dataclass(frozen=True)
class Facts:
    """Local facts a pair declares; the checks verify each one (``None``: not declared).

    Attributes:
        monotone: ``P^mu`` is non-decreasing for every ``mu`` (checked by ``prox``).
        odd: ``F``, ``B`` and ``P`` are odd (checked by ``facts``).
        bounded: ``F`` is bounded for every ``mu`` (checked by ``facts``).
        levels: the value set of ``lim_{mu -> oo} P^mu`` (checked by ``prox``).
        backward_lipschitz: ``sup |B'|`` (checked by ``backward``).
        forward_levels: the value set of ``lim_{mu -> oo} F^mu``, the deployed quantizer, when
            the quantization comes from ``F``'s annealing rather than from ``P`` (checked by
            ``facts``).
    """

    monotone: bool | None = None
    odd: bool | None = None
    bounded: bool | None = None
    levels: tuple[sp.Expr, ...] | None = None
    backward_lipschitz: sp.Expr | None = None
    forward_levels: tuple[sp.Expr, ...] | None = None


@dataclass(frozen=True)
class ProxLink:
    """``P^mu(theta) = prox_{w r}(theta)``, ``r`` a regularizer of
    :mod:`proxcompress.formulations.prox`.

    Attributes:
        regularizer: its name there (``dist2``, ``dist1``, ``indicator``, ``box_quadratic``).
        weight: the prox weight ``w`` as an expression in ``mu`` (a number when constant).
        levels: the set ``Q`` of the regularizer.
        rho: ``box_quadratic``'s curvature, an expression in ``mu``.
    """

    regularizer: str
    weight: sp.Expr = mu
    levels: tuple[float, ...] = BINARY
    rho: sp.Expr = sp.Integer(1)


@dataclass(frozen=True)
class NumericTwin:
    """NumPy functions ``f(x, mu=1.0)`` of a pair's maps (``mu`` ignored where absent)."""

    forward: Callable[..., NDArray[np.float64]]
    backward: Callable[..., NDArray[np.float64]]
    backward_derivative: Callable[..., NDArray[np.float64]]
    prox: Callable[..., NDArray[np.float64]]


def _numpy_function(expr: sp.Expr) -> Callable[..., NDArray[np.float64]]:
    raw = sp.lambdify((x, mu), expr, modules="numpy")

    def f(values: ArrayLike, mu_value: float = 1.0) -> NDArray[np.float64]:
        arr = np.asarray(values, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = np.asarray(raw(arr, mu_value), dtype=np.float64)
        return np.broadcast_to(out, arr.shape).copy()

    f.__doc__ = f"NumPy twin of ``{expr}`` as a function of (x, mu)."
    return f


@dataclass(frozen=True)
class Pair:
    """A forward/backward quantizer pair and the proximal quantizer it claims to factor through.

    Attributes:
        name: registry name (lower case).
        forward: ``F(x; mu)``.
        backward: ``B(x)`` (may depend on ``mu``).
        prox: ``P(x; mu)``, the claimed proximal quantizer.
        facts: declared local facts.
        prox_link: the proximal problem ``P`` solves, if known.
        method_derivative_at: where the published method evaluates ``B'``: at ``P(w)``
            (``"prox"``) or at the latent ``w`` (``"latent"``).
        summary: one line for tables.
        doc: maths and paper (the factory's docstring for catalogue pairs).
        parameters: fixed numeric parameters (e.g. ``{"beta": 5}``).
    """

    name: str
    forward: sp.Expr
    backward: sp.Expr
    prox: sp.Expr
    facts: Facts = field(default_factory=Facts)
    prox_link: ProxLink | None = None
    method_derivative_at: DerivativePoint = "prox"
    summary: str = ""
    doc: str = ""
    parameters: Mapping[str, float] = field(default_factory=dict)

    @property
    def annealed(self) -> bool:
        """Whether any map depends on ``mu``."""
        return any(mu in e.free_symbols for e in (self.forward, self.backward, self.prox))

    @property
    def backward_derivative(self) -> sp.Expr:
        """``B'(x)``, piece by piece (:func:`derivative`)."""
        return derivative(self.backward)

    def expressions(self) -> dict[str, sp.Expr]:
        """``F``, ``B``, ``B'`` and ``P`` by name."""
        return {
            "F": self.forward,
            "B": self.backward,
            "B'": self.backward_derivative,
            "P": self.prox,
        }

    def numeric(self) -> NumericTwin:
        """NumPy twins of ``F``, ``B``, ``dB/dx`` and ``P`` (for the torch side's tests)."""
        return NumericTwin(
            forward=_numpy_function(self.forward),
            backward=_numpy_function(self.backward),
            backward_derivative=_numpy_function(self.backward_derivative),
            prox=_numpy_function(self.prox),
        )


def _doc(factory: Callable[..., Pair]) -> str:
    return inspect.getdoc(factory) or ""


_BINARY_LEVELS = (sp.Integer(-1), sp.Integer(1))


def binaryconnect() -> Pair:
    """BinaryConnect: ``F = sign``, ``B = id`` (straight-through estimator).

    ``sign = Pi_Q`` for ``Q = {-1, 1}`` is the prox of the indicator ``iota_Q`` (set-valued at 0),
    so ``F = id o sign`` with ``P = sign`` for every ``mu``: BC is ProxConnect with ``r = iota_Q``
    (Dockhorn et al. 2021). ``B' = 1`` everywhere, so where it is evaluated is immaterial. The
    inherited guarantee is only the nonconvex one (``iota_Q`` is nonconvex).
    Courbariaux, Bengio, David, NeurIPS 2015.
    """
    return Pair(
        name="binaryconnect",
        forward=sp.sign(x),
        backward=x,
        prox=sp.sign(x),
        facts=Facts(True, True, True, _BINARY_LEVELS, sp.Integer(1)),
        prox_link=ProxLink("indicator", sp.Integer(1)),
        method_derivative_at="latent",
        summary="F = sign, B = id",
        doc=_doc(binaryconnect),
    )


def bnn() -> Pair:
    """BNN (Hubara et al. 2016): ``F = sign``, ``B = hardtanh``, backward ``1{|w| <= 1}`` at the
    latent ``w`` (larq ``SteSign``).

    ``hardtanh(sign(x)) = sign(x)``, so ``F = B o P`` with ``P = sign``. But BNN evaluates ``B'``
    at the latent ``w``; the criterion evaluates it at ``P(w) = +-1``, hardtanh's kinks, where
    ``1{|.| <= 1}`` is 1: under the criterion the BNN pair steps exactly like BinaryConnect, and
    BNN's gradient cancellation for ``|w| > 1`` is not a ProxConnect step.
    Hubara, Courbariaux, Soudry, El-Yaniv, Bengio, NeurIPS 2016 (arXiv:1602.02830).
    """
    return Pair(
        name="bnn",
        forward=sp.sign(x),
        backward=hardtanh(x),
        prox=sp.sign(x),
        facts=Facts(True, True, True, _BINARY_LEVELS, sp.Integer(1)),
        prox_link=ProxLink("indicator", sp.Integer(1)),
        method_derivative_at="latent",
        summary="F = sign, B = hardtanh",
        doc=_doc(bnn),
    )


def bnn_plus(beta: int | sp.Expr = DEFAULT_BETA) -> Pair:
    """BNN+ (Darabi et al., arXiv:1812.11800): ``F = sign``, ``B = SS_beta`` (SignSwish),
    ``B' = SS_beta'`` at the latent ``w`` (larq ``SwishSign``).

    With ``P = sign``, ``B(P(x)) = +-SS_beta(1) ~ +-1.053 != +-1 = F(x)`` (``beta = 5``): the
    decomposition fails at ``x = 1``. Some ``P`` does decompose ``sign``: ``P = s sign`` with
    ``SS_beta(s) = 1`` (``s ~ 0.2557`` for ``beta = 5``), the projection onto ``{-s, s}``; but then
    ``B'(P(w)) = SS_beta'(s)`` is a constant, i.e. a rescaled BinaryConnect, not BNN+'s
    ``SS_beta'(w)``. Under the suite's formalization BNN+ therefore does not satisfy the
    criterion; BNN++ repairs the forward.
    """
    return Pair(
        name="bnn+",
        forward=sp.sign(x),
        backward=signswish(x, beta),
        prox=sp.sign(x),
        facts=Facts(True, True, True, _BINARY_LEVELS, sp.sympify(beta)),
        prox_link=ProxLink("indicator", sp.Integer(1)),
        method_derivative_at="latent",
        summary="F = sign, B = SignSwish",
        doc=_doc(bnn_plus),
        parameters={"beta": float(beta)},
    )


def proxconnect() -> Pair:
    """ProxConnect (Dockhorn et al. 2021): ``F = P^mu``, ``B = id``.

    ``P^mu(x) = (x + mu sign(x)) / (1 + mu)``, the prox of ``(mu/2) dist^2(., {-1, 1})``: identity
    at ``mu = 0``, ``sign`` as ``mu -> oo``, a jump of ``2 mu / (1 + mu)`` at 0. [U] The paper's own
    family (its eq. (13), for ternary ``Q``) is unconfirmed; this stand-in [D] (methods.md
    section 1) is the default, ``proxconnect-clip`` an alternative.
    """
    return Pair(
        name="proxconnect",
        forward=dist2_prox(x, BINARY),
        backward=x,
        prox=dist2_prox(x, BINARY),
        facts=Facts(True, True, False, _BINARY_LEVELS, sp.Integer(1)),
        prox_link=ProxLink("dist2", mu),
        method_derivative_at="prox",
        summary="F = P_mu (dist^2 prox), B = id",
        doc=_doc(proxconnect),
    )


def proxconnect_clip() -> Pair:
    """ProxConnect with the clip family: ``F = P^mu = clip((1 + mu) x, -1, 1)``, ``B = id``.

    ``clip(x / rho, -1, 1)`` is the prox of ``((rho - 1)/2) w^2 + iota_[-1,1](w)`` [D]; here
    ``rho = 1 / (1 + mu)``, so ``P^mu -> sign`` (``x != 0``) as ``mu -> oo``; ``r`` is convex only
    at ``mu = 0`` (``rho >= 1``), while the prox problem stays convex (solved by CVXPY).
    Dockhorn et al. 2021; methods.md section 1, stand-in (ii).
    """
    p = hardtanh((1 + mu) * x)
    return Pair(
        name="proxconnect-clip",
        forward=p,
        backward=x,
        prox=p,
        facts=Facts(True, True, True, _BINARY_LEVELS, sp.Integer(1)),
        prox_link=ProxLink("box_quadratic", sp.Integer(1), rho=1 / (1 + mu)),
        method_derivative_at="prox",
        summary="F = clip((1+mu)x, -1, 1), B = id",
        doc=_doc(proxconnect_clip),
    )


#: BNN++'s sharpness at mu = 0 and its growth: beta(mu) = beta + growth * mu [U: the paper's
#: schedule; chosen on validation in docs/results.md] (the registry's defaults)
BNNPP_BETA = registry.BNNPP_BETA
BNNPP_GROWTH = registry.BNNPP_GROWTH


def bnn_plus_plus(beta: int | sp.Expr = BNNPP_BETA,
                  beta_growth: int | sp.Expr = BNNPP_GROWTH) -> Pair:
    """BNN++ as published (Lu, Yu, Li, Partovi Nia, NeurIPS 2023): BNN+ with its ``sign``
    forward replaced by SignSwish, both quantizers indexed by ``mu``:
    ``F^mu = B^mu = SS_{beta(mu)}``, ``beta(mu) = beta + beta_growth mu``, ``B'`` at the latent
    ``w``; as ``mu -> oo``, ``F -> sign``, the deployed quantizer.

    Evidence [C: wording only]: the NeurIPS review summaries say BNN++ replaces BNN+'s sign
    forward quantizer with the sign-Swish function and that F and B are both indexed by ``mu``
    (methods.md section 1, "public description, re-read"). The schedule ``beta(mu)`` is [U].

    Under the suite's formalization the pair decomposes trivially: ``P = identity`` (the prox
    of ``r = 0``) and ``F = B^mu o P``, with ``B'`` at ``P(w) = w``, so a step is a plain
    gradient step on the smooth surrogate ``l o SS_{beta(mu)}``: an annealed (continuation)
    method, not a proximal one. The quantization is in ``B^mu``'s limit, not in ``P``'s
    (``forward_levels``); ``sup |B'| = beta(mu)`` grows without bound, so the inherited
    guarantee, already only the nonconvex one for a fixed ``mu``, weakens as ``mu`` grows; and
    ``SS_beta'(w) < 0`` for ``|w| > 2.3994 / beta``: once ``beta(mu) c > 2.3994`` (latents in
    ``[-c, c]``) the step of the confident latents is reversed (the ``descent`` check).
    """
    b = sp.sympify(beta) + sp.sympify(beta_growth) * mu
    ss = signswish(x, b)
    return Pair(
        name="bnn++",
        forward=ss,
        backward=ss,
        prox=x,
        facts=Facts(True, True, True, None, None, _BINARY_LEVELS),
        prox_link=ProxLink("dist2", sp.Integer(0)),
        method_derivative_at="latent",
        summary="F = B = SignSwish_beta(mu) at the latent, lim F = sign",
        doc=_doc(bnn_plus_plus),
        parameters={"beta": float(beta), "beta_growth": float(beta_growth)},
    )


#: SignSwish sharpness of the ``bnn++-prox`` reading: larq's 5 reverses its steps (``descent``)
BNNPP_PROX_BETA = registry.BNNPP_PROX_BETA


def bnn_plus_plus_prox(beta: int | sp.Expr = BNNPP_PROX_BETA, prox: sp.Expr | None = None
                       ) -> Pair:
    """BNN++, the suite's earlier reading (``bnn++-prox``): ``F = SS_beta o P^mu``,
    ``B = SS_beta``, ``B'`` at ``P(w)``.

    BNN+ with the forward ``sign`` replaced by SignSwish after a proximal quantizer, so
    ``F = B o P`` holds by construction and one step is a ProxConnect step on ``l o SS_beta``.
    [U] ``P`` defaults to the ProxConnect family ``(x + mu sign x)/(1 + mu)`` (pass ``prox``
    to change it) and ``beta`` to 2 (larq's 5 fails ``descent``: ``SS_5'(+-1) < 0`` where
    ``P(w) -> +-1``). As ``mu -> oo``, ``F -> +-SS_beta(1)``: still two-valued.
    """
    p = dist2_prox(x, BINARY) if prox is None else prox
    return Pair(
        name="bnn++-prox",
        forward=signswish(p, beta),
        backward=signswish(x, beta),
        prox=p,
        facts=Facts(True, True, True, _BINARY_LEVELS, sp.sympify(beta)),
        prox_link=ProxLink("dist2", mu) if prox is None else None,
        method_derivative_at="prox",
        summary="F = SignSwish o P_mu, B = SignSwish",
        doc=_doc(bnn_plus_plus_prox),
        parameters={"beta": float(beta)},
    )


def proxquant() -> Pair:
    """ProxQuant's binary prox (Bai, Wang, Liberty, ICLR 2019): ``F = P^mu``, ``B = id``.

    ``r(w) = | |w| - 1 |`` (the W-shaped ``L1`` distance to ``{-1, 1}``); its prox soft-thresholds
    towards ``sign``: ``P^mu(x) = sign(x) + soft_mu(x - sign(x))``; flat at ``+-1`` on
    ``| |x| - 1 | <= mu``, a jump at 0, ``sign`` as ``mu -> oo``. ProxQuant applies the prox to
    the iterate itself (Prox-SGD, "eager"); as a PC++ pair it is the lazy (ProxConnect) variant
    [U: the paper's mapping of ProxQuant into PC++].
    """
    s = sp.sign(x)
    p = s + soft_threshold(x - s, mu)
    return Pair(
        name="proxquant",
        forward=p,
        backward=x,
        prox=p,
        facts=Facts(True, True, False, _BINARY_LEVELS, sp.Integer(1)),
        prox_link=ProxLink("dist1", mu),
        method_derivative_at="prox",
        summary="F = ProxQuant prox of |(|w|-1)|, B = id",
        doc=_doc(proxquant),
    )


def ternary() -> Pair:
    """Ternary ProxConnect: ``F = P^mu = (x + mu Pi_T(x)) / (1 + mu)``, ``T = {-1, 0, 1}``,
    ``B = id``.

    ``Pi_T(x) = 0`` for ``|x| < 1/2``, ``sign(x)`` beyond (``+-1/2`` at the ties); the prox of
    ``(mu/2) dist^2(., T)`` (Dockhorn et al. 2021, ternary ``Q``; stand-in [D]).
    """
    p = dist2_prox(x, TERNARY)
    return Pair(
        name="ternary",
        forward=p,
        backward=x,
        prox=p,
        facts=Facts(True, True, False, tuple(sp.Integer(v) for v in (-1, 0, 1)), sp.Integer(1)),
        prox_link=ProxLink("dist2", mu, TERNARY),
        method_derivative_at="prox",
        summary="F = P_mu onto {-1, 0, 1}, B = id",
        doc=_doc(ternary),
    )


def shift(bits: int = 3) -> Pair:
    """Power-of-two (shift) ProxConnect: ``F = P^mu = (x + mu Pi_S(x)) / (1 + mu)``, ``B = id``.

    ``S = {+-2^p : p = 0, ..., 2^(bits-1) - 1}``, zero-free as in DenseShift (Li et al., ICCV 2023,
    arXiv:2208.09708); ``bits = 3`` gives ``{+-1, +-2, +-4, +-8}``, the layer scale being absorbed
    by the next BatchNorm. ``Pi_S`` rounds to the nearest level (thresholds 1.5, 3, 6). DenseShift
    itself trains sign and exponent latents with straight-through estimators; this pair is the
    ProxConnect quantizer onto the same set [D].
    """
    levels = shift_levels(bits)
    p = dist2_prox(x, levels)
    return Pair(
        name="shift",
        forward=p,
        backward=x,
        prox=p,
        facts=Facts(True, True, False, tuple(sp.nsimplify(v) for v in levels), sp.Integer(1)),
        prox_link=ProxLink("dist2", mu, levels),
        method_derivative_at="prox",
        summary=f"F = P_mu onto {{+-2^p}} ({bits} bits), B = id",
        doc=_doc(shift),
        parameters={"bits": float(bits)},
    )


#: name -> entry: the registry's own table (:mod:`.registry`), shared with the torch side
_FACTORIES = registry._CATALOGUE


def register(name: str, factory: Callable[..., Pair], *, replace: bool = False) -> None:
    """Add a pair to the catalogue under ``name`` (lower-cased); ``factory(**parameters)``
    builds it. The parameters it takes are its keyword arguments with numeric defaults (e.g.
    ``beta: float = 5``); :func:`get_pair` and the torch side accept them by name."""
    signature = inspect.signature(factory)
    parameters = {p.name: p.default for p in signature.parameters.values()
                  if isinstance(p.default, int | float) and not isinstance(p.default, bool)}
    registry.add(name, factory, parameters, replace=replace)
    _build.cache_clear()


def pair_names() -> tuple[str, ...]:
    """Registered names, in registration order."""
    return registry.pair_names()


def get_pair(name: str, **parameters: float) -> Pair:
    """The catalogue pair registered under ``name`` (case-insensitive), built once per set of
    parameters (``parameters`` override the registered defaults, e.g. ``beta=2``).

    Raises:
        InvalidInputError: unknown name (the message lists the registered ones), or a parameter
            the pair does not take.
    """
    key = registry.pair_spec(name).name
    resolved = registry.resolve_parameters(key, parameters)
    return _build(key, tuple(sorted(resolved.items())))


def _factory(spec: registry.PairSpec) -> Callable[..., Pair]:
    if callable(spec.factory):
        return spec.factory
    module, _, function = spec.factory.partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


@cache
def _build(key: str, parameters: tuple[tuple[str, float], ...] = ()) -> Pair:
    pair = _factory(_FACTORIES[key])(**dict(parameters))
    if pair.name != key:
        raise InvalidInputError("name", f"factory for {key!r} built a pair named {pair.name!r}")
    return pair


def pair_parameters(name: str) -> tuple[str, ...]:
    """The numeric parameters the factory of ``name`` takes (e.g. ``("beta",)``; the
    registry's)."""
    return tuple(registry.parameters_of(name))


def build_pair(name: str, *, derivative_at: DerivativePoint | None = None,
              **parameters: float) -> Pair:
    """The catalogue pair ``name`` built with ``parameters`` (exact rationals of the given
    numbers, e.g. ``beta=2.0`` -> ``2``), with ``B'`` at ``derivative_at`` instead of the
    method's own point when given: exactly the pair a training run uses.

    Raises:
        InvalidInputError: unknown name, parameter or point, or a non-finite value.
    """
    allowed = pair_parameters(name)
    exact: dict[str, sp.Expr] = {}
    for param, value in parameters.items():
        if param not in allowed:
            raise InvalidInputError(param, f"is not a parameter of {name.lower()!r}; accepted: "
                                    f"{', '.join(allowed) or 'none'}")
        number = sp.nsimplify(value, rational=True)
        if not (number.is_real and number.is_finite):
            raise InvalidInputError(param, f"= {value!r} must be a finite number")
        exact[param] = number
    pair = _factory(registry.pair_spec(name))(**exact) if exact else get_pair(name)
    if derivative_at is not None:
        if derivative_at not in ("prox", "latent"):
            raise InvalidInputError("derivative_at", f"= {derivative_at!r}; accepted: prox, "
                                    "latent")
        pair = replace(pair, method_derivative_at=derivative_at)
    return pair


def catalogue() -> dict[str, Pair]:
    """Every registered pair, by name, in registration order."""
    return {name: get_pair(name) for name in _FACTORIES}


__all__ = [
    "DEFAULT_BETA",
    "DerivativePoint",
    "Facts",
    "NumericTwin",
    "Pair",
    "ProxLink",
    "binaryconnect",
    "bnn",
    "bnn_plus",
    "bnn_plus_plus",
    "bnn_plus_plus_prox",
    "catalogue",
    "derivative",
    "dist2_prox",
    "get_pair",
    "hardtanh",
    "build_pair",
    "pair_names",
    "pair_parameters",
    "project",
    "proxconnect",
    "proxconnect_clip",
    "proxquant",
    "register",
    "shift",
    "signswish",
    "signswish_derivative",
    "sigmoid",
    "soft_threshold",
    "ternary",
]
