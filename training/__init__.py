"""The training wing: binary layers with the certified quantizers, SPR pruning, the trainer.

* :mod:`.quantizers` -- every catalogue pair (``proofs.pairs``) as a torch op, by name.
* :mod:`.layers` -- ``BinaryLinear``, ``BinaryConv2d`` (latent weights, per-channel scale).
* :mod:`.recipes` -- the ``Recipe`` protocol every layer family implements, its training hooks,
  and the family registry the config reads (docs/extending.md).
* :mod:`.quantize` -- ``QuantRecipe``, ``quantize_model(model, recipe)`` and ``model_summary``.
* :mod:`.optim` -- ``ProxConnectOptimizer``: drives ``mu`` by the aggregated step size.
* :mod:`.spr` -- the SPR regularizer, ``M`` from a pre-trained copy, the threshold search.
* :mod:`.pruning` -- channel masks and physical removal; :mod:`.select` -- MIP / SPR /
  magnitude selection of one layer's channels.
* :mod:`.models` (a package, one module per model family, one registry), :mod:`.data`,
  :mod:`.config`, :mod:`.checkpoint`, :mod:`.trainer`, :mod:`.cli` (``proxcompress train``,
  ``select``, ``export``).
* :mod:`.shift` -- power-of-two layers: ``ShiftLinear`` (DeepShift-Q), ``DenseShiftLinear``,
  ``S3Linear`` and their convs, the freezing metric; :mod:`.euclid` -- ``EuclidLinear``,
  ``AdderLinear`` and convs with the homotopy; :mod:`.mulfree` -- ``mulfree_model(model,
  MulFreeRecipe(...))``; :mod:`.exporter` -- ``export(model, path)`` for ``kernels.load``;
  :mod:`.deployment` -- ``deploy(model, path, test)``: export, then the kernels against torch on a
  whole test set (``proxcompress export``);
  :mod:`.speech` -- the espeak-ng spoken-command task and ``SpeechResNet``.

Names are resolved lazily: importing this package does not import torch. The wing never imports
SymPy, Pyomo or CVXPY at import time (the MIP selection imports ``formulations`` when it runs).
"""

from __future__ import annotations

from proxcompress.lazy import lazy_getattr

_PUBLIC = {
    "TorchQuantizer": "quantizers",
    "get_quantizer": "quantizers",
    "quantizer_names": "quantizers",
    "BinaryLinear": "layers",
    "BinaryConv2d": "layers",
    "hard_quantization": "layers",
    "set_mu": "layers",
    "QuantRecipe": "quantize",
    "quantize_model": "quantize",
    "model_summary": "quantize",
    "ModelSummary": "quantize",
    "MuSchedule": "optim",
    "ProxConnectOptimizer": "optim",
    "SPRRegularizer": "spr",
    "compute_M": "spr",
    "spr_z": "spr",
    "threshold_search": "spr",
    "mask_channels": "pruning",
    "prune_channels": "pruning",
    "select_channels": "select",
    "compare_selections": "select",
    "build_model": "models",
    "register_model": "models",
    "ModelSpec": "models",
    "ChannelUnit": "models",
    "Recipe": "recipes",
    "TrainingHooks": "recipes",
    "LayerSwap": "recipes",
    "Family": "recipes",
    "register_family": "recipes",
    "load_dataset": "data",
    "split_validation": "data",
    "certify_run": "certify",
    "read_idx": "data",
    "TrainConfig": "config",
    "load_config": "config",
    "train": "trainer",
    "Trainer": "trainer",
    "evaluate": "trainer",
    "load_run": "trainer",
    "run_data": "trainer",
    "deploy": "deployment",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "ShiftLinear": "shift",
    "ShiftConv2d": "shift",
    "DenseShiftLinear": "shift",
    "DenseShiftConv2d": "shift",
    "S3Linear": "shift",
    "S3Conv2d": "shift",
    "FreezingTracker": "shift",
    "EuclidLinear": "euclid",
    "EuclidConv2d": "euclid",
    "AdderLinear": "euclid",
    "AdderConv2d": "euclid",
    "HomotopySchedule": "euclid",
    "set_theta": "euclid",
    "MulFreeRecipe": "mulfree",
    "MulFreeTraining": "mulfree",
    "mulfree_model": "mulfree",
    "export": "exporter",
    "generate_speech": "speech",
    "load_speech": "speech",
    "SpeechResNet": "speech",
}

__all__ = sorted(_PUBLIC)


#: result and record types: returned by the API, not entry points (their construction is not
#: argument-checked)
_RESULTS = ("ChannelUnit", "ModelSummary", "TorchQuantizer")

__getattr__ = lazy_getattr("proxcompress.training", _PUBLIC, _RESULTS)
