"""The catalogue's index: the name of every forward/backward quantizer pair and the numeric
parameters it takes, with their defaults.

This is the one registry of quantizer names: the symbolic pairs of :mod:`.pairs`, the torch
ops of :mod:`proxcompress.training.quantizers` and the training configuration's validation all
read it. It imports nothing heavy (no SymPy, no NumPy), so the training wing can use it at import
time. A pair is added with :func:`proxcompress.proofs.pairs.register` (which records it
here); its torch twin with :func:`proxcompress.training.quantizers.register`.

Parameters are numbers (e.g. SignSwish's ``beta``, the shift set's ``bits``): both sides call
their factory with the defaults here overridden by what the caller passes, so a default lives in
one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from proxcompress.errors import InvalidInputError

#: SignSwish sharpness, larq's default (``SwishSign(beta=5.0)``) [U: the paper's value]
DEFAULT_BETA = 5
#: BNN++ (published reading): ``beta(mu) = beta + beta_growth mu``, at mu = 0 and its growth [U]
BNNPP_BETA = 1
BNNPP_GROWTH = 1
#: the ``bnn++-prox`` reading's SignSwish sharpness (larq's 5 fails ``descent`` there)
BNNPP_PROX_BETA = 2


@dataclass(frozen=True)
class PairSpec:
    """One catalogue entry.

    Attributes:
        name: registry name (lower case).
        factory: the symbolic factory, or ``"module:function"`` of a built-in one (resolved when
            the pair is first built, so this module never imports SymPy).
        parameters: the numeric parameters the pair takes and their defaults.
    """

    name: str
    factory: str | Callable[..., Any]
    parameters: Mapping[str, float] = field(default_factory=dict)


def _builtin(name: str, function: str, **parameters: float) -> PairSpec:
    return PairSpec(name, f"proxcompress.proofs.pairs:{function}", dict(parameters))


#: name -> entry, in registration order (``proofs.pairs._FACTORIES`` is this dict)
_CATALOGUE: dict[str, PairSpec] = {spec.name: spec for spec in (
    _builtin("binaryconnect", "binaryconnect"),
    _builtin("bnn", "bnn"),
    _builtin("bnn+", "bnn_plus", beta=DEFAULT_BETA),
    _builtin("proxconnect", "proxconnect"),
    _builtin("proxconnect-clip", "proxconnect_clip"),
    _builtin("bnn++", "bnn_plus_plus", beta=BNNPP_BETA, beta_growth=BNNPP_GROWTH),
    _builtin("bnn++-prox", "bnn_plus_plus_prox", beta=BNNPP_PROX_BETA),
    _builtin("proxquant", "proxquant"),
    _builtin("ternary", "ternary"),
    _builtin("shift", "shift", bits=3),
)}


def pair_names() -> tuple[str, ...]:
    """Registered names, in registration order."""
    return tuple(_CATALOGUE)


def pair_spec(name: str, field: str = "name") -> PairSpec:
    """The entry of ``name`` (case-insensitive).

    Raises:
        InvalidInputError: (naming ``field``) an unknown name; the message lists the known ones.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _CATALOGUE:
        raise InvalidInputError(
            field, f"{name!r} is not in the catalogue; known: {', '.join(_CATALOGUE)}")
    return _CATALOGUE[key]


def parameters_of(name: str) -> Mapping[str, float]:
    """The parameters ``name`` takes and their defaults (e.g. ``{"beta": 5}``)."""
    return pair_spec(name).parameters


def resolve_parameters(name: str, given: Mapping[str, Any]) -> dict[str, float]:
    """The defaults of ``name`` overridden by ``given``.

    Raises:
        InvalidInputError: a parameter ``name`` does not take, or a value that is not a finite
            real number (the message names the parameter).
    """
    spec = pair_spec(name)
    for key, value in given.items():
        if key not in spec.parameters:
            accepted = ", ".join(spec.parameters) or "none"
            raise InvalidInputError(key, f"is not a parameter of {spec.name!r}; accepted: "
                                    f"{accepted}")
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise InvalidInputError(key, f"= {value!r} must be a finite number")
    return {**spec.parameters, **given}


def add(name: str, factory: str | Callable[..., Any], parameters: Mapping[str, float], *,
        replace: bool = False) -> PairSpec:
    """Record a pair (used by :func:`proxcompress.proofs.pairs.register`).

    Raises:
        InvalidInputError: ``name`` is already registered and ``replace`` is false.
    """
    key = name.lower()
    if key in _CATALOGUE and not replace:
        raise InvalidInputError("name", f"{name!r} is already registered (pass replace=True)")
    spec = PairSpec(key, factory, dict(parameters))
    _CATALOGUE[key] = spec
    return spec


__all__ = ["BNNPP_BETA", "BNNPP_GROWTH", "BNNPP_PROX_BETA", "DEFAULT_BETA", "PairSpec", "add",
           "pair_names", "pair_spec", "parameters_of", "resolve_parameters"]
