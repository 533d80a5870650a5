"""Tensor-train layers and LSTMs: MPO and MPS forms (methods.md section 9).

* :mod:`.decomposition` -- :func:`factor_modes`, :func:`resolve_ranks`, :func:`tt_svd`.
* :mod:`.linear` -- :class:`MPOLinear`, :class:`MPSLinear` (``from_dense``, ``to_dense``,
  contracted forward with a FLOP-optimal order), :func:`low_rank_linear`.
* :mod:`.lstm` -- :class:`TTLSTM` (a drop-in ``nn.LSTM``), :class:`TTSpec`.
"""

from __future__ import annotations

from proxcompress.training.tensor_train.decomposition import (
    factor_modes,
    full_ranks,
    resolve_ranks,
    tt_full,
    tt_svd,
)
from proxcompress.training.tensor_train.linear import (
    MPS_LAYOUTS,
    PATHS,
    TT_FORMS,
    MPOLinear,
    MPSLinear,
    TTLinear,
    low_rank_linear,
)
from proxcompress.training.tensor_train.lstm import (
    DEFAULT_SPEC,
    TTLSTM,
    GateMatrix,
    TTSpec,
    spec_for_budget,
)

__all__ = ["DEFAULT_SPEC", "MPS_LAYOUTS", "PATHS", "TT_FORMS", "TTLSTM", "GateMatrix", "MPOLinear",
           "MPSLinear", "TTLinear", "TTSpec", "factor_modes", "full_ranks", "low_rank_linear",
           "resolve_ranks", "spec_for_budget", "tt_full", "tt_svd"]
