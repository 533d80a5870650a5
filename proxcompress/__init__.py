"""proxcompress: neural-network compression with guarantees.

The front door of the suite. The wings live in their own sub-packages:

* :mod:`proxcompress.formulations` -- exact structured pruning as mixed-integer programs,
  the SPR closed form, ProxConnect proximal problems.
* :mod:`proxcompress.proofs` -- symbolic quantizer catalogue and certificates.
* :mod:`proxcompress.training` -- quantized / shift / Euclid layers and the trainer.
* :mod:`proxcompress.kernels` -- binary, shift and Euclid GEMM kernels.
* :mod:`proxcompress.causal` -- ANM causal direction for heterogeneous populations.

Importing :mod:`proxcompress` is cheap: the public names below are resolved lazily so that
``proxcompress --help`` and ``import proxcompress`` never load a solver or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "LayerPruningProblem": "proxcompress.formulations",
    "Solution": "proxcompress.formulations",
    "solve": "proxcompress.formulations",
    "random_instance": "proxcompress.formulations",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'proxcompress' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
