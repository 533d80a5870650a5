"""Value sets of the quantizers, shared by every wing (no dependencies beyond the standard
library, so the training wing reads them without importing NumPy's solvers or SymPy).

``BINARY`` = {-1, 1} (BinaryConnect, BNN), ``TERNARY`` = {-1, 0, 1} (ternary ProxConnect) and
:func:`shift_levels`, DenseShift's zero-free power-of-two set (Li et al., ICCV 2023,
arXiv:2208.09708). :mod:`proxcompress.formulations.prox`, :mod:`proxcompress.proofs.pairs`
and :mod:`proxcompress.training.quantizers` all use these.
"""

from __future__ import annotations

import math
from numbers import Real

from proxcompress.errors import InvalidInputError

BINARY: tuple[float, ...] = (-1.0, 1.0)
TERNARY: tuple[float, ...] = (-1.0, 0.0, 1.0)


def shift_levels(bits: int = 3, scale: float = 1.0) -> tuple[float, ...]:
    """Zero-free power-of-two levels ``{+-scale 2^p : p = 0, ..., 2^(bits-1) - 1}``.

    ``bits = 3`` gives ``{+-1, +-2, +-4, +-8}``, the DenseShift 3-bit set (one sign bit,
    ``bits - 1`` exponent bits, no zero).

    Raises:
        InvalidInputError: ``bits`` not an integer in [2, 6] (an integral float is taken as
            that integer), or ``scale`` not finite and > 0.
    """
    if isinstance(bits, bool) or not isinstance(bits, Real) or \
            not (math.isfinite(bits) and int(bits) == bits and 2 <= bits <= 6):
        raise InvalidInputError("bits", f"= {bits!r} must be an integer in [2, 6]")
    if isinstance(scale, bool) or not isinstance(scale, Real) or \
            not (math.isfinite(scale) and scale > 0):
        raise InvalidInputError("scale", f"= {scale} must be finite and > 0")
    positive = [float(scale * 2.0**p) for p in range(2 ** (int(bits) - 1))]
    return tuple(sorted([-v for v in positive] + positive))


__all__ = ["BINARY", "TERNARY", "shift_levels"]
