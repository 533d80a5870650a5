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

from proxcompress.lazy import lazy_getattr

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "LayerPruningProblem": "formulations",
    "Solution": "formulations",
    "solve": "formulations",
    "random_instance": "formulations",
    "causal_direction": "causal",
}

__all__ = ["__version__", *_PUBLIC]


#: classes that check their own fields (LayerPruningProblem) or are results: not patched
_RESULTS = ("LayerPruningProblem", "Solution")

__getattr__ = lazy_getattr("proxcompress", _PUBLIC, _RESULTS)
