"""The ``tensor_train`` layer family: a :class:`~proxcompress.training.recipes.Recipe` that puts
tensor-train LSTMs (and optionally tensor-train linear layers) into a model.

Config (``tt`` section, :class:`~proxcompress.training.config.TTConfig`)::

    tt: {form: mps, compression: 10, num_modes: 3, layout: interleaved, split: stack,
         matrices: [ih, hh], init: scratch}

Every ``nn.LSTM`` of the model becomes a :class:`~.lstm.TTLSTM` whose ``matrices`` follow the
spec (the others stay dense): fresh cores with ``nn.LSTM``'s weight variance (``init:
scratch``, the paper's "parametrize by cores and train") or the TT-SVD of the LSTM's current
weights (``init: decompose``: with ``model.init_from``, a trained dense LSTM compressed and then
fine-tuned). ``compression: c`` picks the largest uniform rank holding each LSTM at most
``1 / c`` of the dense ``nn.LSTM``'s parameters (:func:`~.lstm.spec_for_budget`), so MPS, MPO and
low-rank models are compared at equal parameter counts. With ``linear: true`` every
``nn.Linear`` but the first and the last becomes an MPS / MPO / low-rank layer of the same ranks
(``compression`` then applies to the LSTMs only; a linear layer takes ``ranks`` or 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from proxcompress.training.recipes import LayerSwap, TrainingHooks
from proxcompress.training.tensor_train.linear import TTLinear, low_rank_linear
from proxcompress.training.tensor_train.lstm import TTLSTM, TTSpec, spec_for_budget

if TYPE_CHECKING:
    from proxcompress.training.config import TrainConfig

DEFAULT_RANK = 8


@dataclass(frozen=True)
class TensorTrainRecipe:
    """What the ``tensor_train`` family does to a model (module docstring).

    Attributes:
        spec: the TT spec of the chosen LSTM matrices (``ranks`` ignored with ``compression``).
        matrices: the LSTM matrices that become trains (``ih``, ``hh``).
        compression: target ratio dense / TT parameters of each LSTM, or ``None``.
        init: ``scratch`` or ``decompose``.
        path: ``TTLSTM.path`` (``auto``, ``dense``, ``contract``).
        linear: also swap the ``nn.Linear`` layers (not the first and the last).
    """

    spec: TTSpec = TTSpec()
    matrices: tuple[str, ...] = ("ih", "hh")
    compression: float | None = None
    init: str = "scratch"
    path: str = "auto"
    linear: bool = False

    @property
    def latent_clip(self) -> float | None:
        return None

    def lstm_spec(self, lstm: nn.LSTM) -> TTSpec:
        """The spec of ``lstm``'s trains (the rank chosen by ``compression`` if set)."""
        if self.compression is None:
            return self.spec
        budget = int(TTLSTM.dense_parameters(lstm.input_size, lstm.hidden_size,
                                             lstm.num_layers, lstm.bias, lstm.bidirectional)
                     / self.compression)
        spec, _ = spec_for_budget(lstm.input_size, lstm.hidden_size, self.spec, budget,
                                  lstm.num_layers, self.matrices)
        return spec

    def replace_lstm(self, lstm: nn.LSTM) -> TTLSTM:
        spec = self.lstm_spec(lstm)
        dense = TTSpec("dense")
        ih = spec if "ih" in self.matrices else dense
        hh = spec if "hh" in self.matrices else dense
        if self.init == "decompose":
            return TTLSTM.from_lstm(lstm, ih, hh, path=self.path)
        p = next(lstm.parameters())
        return TTLSTM(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias,
                      lstm.batch_first, lstm.dropout, lstm.bidirectional, device=p.device,
                      dtype=p.dtype, ih=ih, hh=hh, path=self.path)

    def apply(self, model: nn.Module, *, seed: int | None = None) -> nn.Module:
        """Replace every ``nn.LSTM`` (and, with ``linear``, the inner ``nn.Linear`` layers)."""
        _LSTMSwap(self).swap(model, seed)
        if self.linear:
            _LinearSwap(self).swap(model, None if seed is None else seed + 1)
        return model

    def hooks(self, model: nn.Module, total_steps: int, cfg: TrainConfig | None = None
              ) -> TrainingHooks:
        return TrainingHooks()


@dataclass(frozen=True)
class _LSTMSwap(LayerSwap):
    recipe: TensorTrainRecipe
    keep_first: bool = False
    keep_last: bool = False
    skip: tuple[str, ...] = ()

    def targets(self) -> tuple[type, ...]:
        return (nn.LSTM,)

    def replacement(self, module: nn.Module, index: int) -> nn.Module:
        assert isinstance(module, nn.LSTM)
        return self.recipe.replace_lstm(module)


@dataclass(frozen=True)
class _LinearSwap(LayerSwap):
    recipe: TensorTrainRecipe
    keep_first: bool = True
    keep_last: bool = True
    skip: tuple[str, ...] = ()

    def targets(self) -> tuple[type, ...]:
        return (nn.Linear,)

    def excluded(self, module: nn.Module) -> bool:
        return isinstance(module, TTLinear)

    def replacement(self, module: nn.Module, index: int) -> nn.Module:
        assert isinstance(module, nn.Linear)
        spec = self.recipe.spec
        ranks = spec.ranks
        bias = module.bias is not None
        if spec.form == "lowrank":
            rank = ranks if isinstance(ranks, int) else min(ranks)
            if self.recipe.init == "decompose":
                return low_rank_linear(module.weight, rank=rank, bias=module.bias)
            return low_rank_linear(module.in_features, module.out_features, rank, bias)
        cls, kwargs = spec.layer_kwargs(module.in_features, module.out_features)
        if self.recipe.init == "decompose":
            return cls.from_dense(module.weight, ranks, module.bias, **kwargs)
        return cls(module.in_features, module.out_features, ranks, bias=bias, **kwargs)


def recipe_from_config(cfg: TrainConfig) -> TensorTrainRecipe:
    """The ``tt`` section as a recipe."""
    t = cfg.tt
    ranks: Any = t.ranks if t.ranks is not None else DEFAULT_RANK
    if isinstance(ranks, list):
        ranks = tuple(ranks)
    spec = TTSpec(t.form, ranks, t.num_modes, t.layout, t.split)
    return TensorTrainRecipe(spec, tuple(t.matrices), t.compression, t.init, t.path, t.linear)


def lstm_counts(model: nn.Module) -> dict[str, Any]:
    """The parameters of the model's LSTMs (``TTLSTM`` or ``nn.LSTM``), those of dense
    ``nn.LSTM`` s of the same sizes, and their ratio (``{}`` without an LSTM)."""
    lstms = [m for m in model.modules() if isinstance(m, (TTLSTM, nn.LSTM))]
    if not lstms:
        return {}
    actual = dense = 0
    ranks: list[Any] = []
    for m in lstms:
        dense += TTLSTM.dense_parameters(m.input_size, m.hidden_size, m.num_layers, m.bias,
                                         m.bidirectional)
        if isinstance(m, TTLSTM):
            actual += m.num_parameters()
            ranks.append({"ih": m.ih_spec.ranks, "hh": m.hh_spec.ranks})
        else:
            actual += sum(p.numel() for p in m.parameters())
    out: dict[str, Any] = {"lstm_parameters": actual, "lstm_dense_parameters": dense,
                           "lstm_compression": dense / actual}
    if ranks:
        out["tt_ranks"] = ranks
    return out


__all__ = ["DEFAULT_RANK", "TensorTrainRecipe", "lstm_counts", "recipe_from_config"]
