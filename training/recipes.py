"""Recipes: how a layer family enters a model and a training run (docs/extending.md).

A *recipe* (:class:`Recipe`) is a frozen dataclass of one layer family's options. It

* puts the family's layers into a model (:meth:`Recipe.apply`); most families swap modules by
  type and derive from :class:`LayerSwap`, which replaces every ``nn.Linear`` / ``nn.Conv2d``
  (or the types the family names) but the first and the last, as every paper here does;
* gives the trainer what the family adds to a run (:meth:`Recipe.hooks`, a
  :class:`TrainingHooks`: a loss term, a schedule advanced after every optimizer step, metrics,
  checkpointed state) and the latent clipping of the optimizer wrapper
  (:attr:`Recipe.latent_clip`; ``mu`` is driven by
  :class:`~proxcompress.training.optim.ProxConnectOptimizer` for every quantized layer).

A *family* (:class:`Family`) ties a recipe to the configuration: the ``quant.weights`` names it
claims, the config section holding its options, the function building its recipe from a
:class:`~proxcompress.training.config.TrainConfig`, and its cross-field checks. The families are
registered in :data:`FAMILIES` (quantization, multiplication-free layers); adding one is one
:func:`register_family` call. :func:`recipe_from_config` is what the trainer calls.

This module does not import torch at import time: config validation reads the family table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from proxcompress.errors import InvalidInputError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from proxcompress.training.config import TrainConfig


class TrainingHooks:
    """What a training loop adds for one recipe; every method is a no-op here (a family
    overrides what it needs). The trainer calls, in order: :meth:`regularizer` (added to the
    loss of every step), :meth:`after_step` (after each optimizer step, with the number of steps
    taken; also once at the start with the steps already taken), :meth:`step_metrics` (a line
    of the run's per-step log, or ``None``), :meth:`epoch_metrics` (merged into the epoch's line
    of ``metrics.jsonl``), and saves / restores :meth:`state_tensors` in every checkpoint (so a
    resumed run logs exactly what an uninterrupted one does)."""

    def regularizer(self) -> Tensor | None:
        """A term added to the loss, or ``None``."""
        return None

    def after_step(self, step: int) -> None:
        """Advance a schedule after ``step`` optimizer steps (e.g. a homotopy ``theta``)."""

    def step_metrics(self, step: int) -> dict[str, float] | None:
        """A line for the per-step log after ``step`` steps, or ``None``."""
        return None

    def epoch_metrics(self) -> dict[str, float]:
        """Values for the epoch's line of ``metrics.jsonl``."""
        return {}

    def state_tensors(self) -> dict[str, Tensor]:
        """Named tensors saved in the checkpoint (``extra.*``)."""
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore :meth:`state_tensors` from a checkpoint."""


@runtime_checkable
class Recipe(Protocol):
    """One layer family's options and what it does to a model and a run."""

    @property
    def latent_clip(self) -> float | None:
        """Clip the quantized layers' latent weights to ``[-c, c]`` after each step (``None``:
        no clipping)."""

    def apply(self, model: nn.Module, *, seed: int | None = None) -> nn.Module:
        """Put the family's layers into ``model`` (in place) and return it; ``seed`` seeds
        fresh parameters (``None``: the global RNG; its state is restored afterwards)."""

    def hooks(self, model: nn.Module, total_steps: int, cfg: TrainConfig | None = None
              ) -> TrainingHooks:
        """The training hooks of ``model`` (after :meth:`apply`) for a run of ``total_steps``
        optimizer steps configured by ``cfg`` (``None``: defaults)."""


# --------------------------------------------------------------------------- layer swapping
def _default_targets() -> tuple[type, ...]:
    from torch import nn

    return (nn.Linear, nn.Conv2d)


def swappable_layers(
    model: nn.Module,
    skip: tuple[str, ...],
    keep_first: bool,
    keep_last: bool,
    exclude: Callable[[nn.Module], bool],
    targets: tuple[type, ...] | None = None,
) -> list[tuple[str, nn.Module, bool]]:
    """The layers of ``model`` of the ``targets`` types (default ``nn.Linear`` /
    ``nn.Conv2d``) in module order (those for which ``exclude`` is false), each with whether it
    stays as it is: named in ``skip``, pinned by the model (:func:`keep_full_precision`), or the
    first / last layer when ``keep_first`` / ``keep_last``. Shared by every layer-swapping
    recipe.

    Raises:
        InvalidInputError: a ``skip`` name that is not such a layer.
    """
    kinds = targets if targets is not None else _default_targets()
    layers = [(name, m) for name, m in model.named_modules()
              if any(isinstance(m, k) for k in kinds) and not exclude(m)]
    names = {name for name, _ in layers}
    for name in skip:
        if name not in names:
            raise InvalidInputError("skip", f"{name!r} is not a linear/conv layer of the model")
    keep = set(skip)
    if layers and keep_first:
        keep.add(layers[0][0])
    if layers and keep_last:
        keep.add(layers[-1][0])
    return [(name, m, name in keep or pinned(m)) for name, m in layers]


def keep_full_precision(module: nn.Module) -> nn.Module:
    """Pin ``module`` to full precision: no recipe swaps it (a model's own choice, e.g.
    BinaryViT's full-precision patch embeddings); returns it."""
    module._keep_full_precision = True  # type: ignore[assignment]
    return module


def pinned(module: nn.Module) -> bool:
    """Whether :func:`keep_full_precision` pinned ``module``."""
    return bool(getattr(module, "_keep_full_precision", False))


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of the submodule called ``name`` (dotted path) of ``model``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's global RNG with ``seed`` inside the block and restore its state after
    (``None``: leave the RNG alone)."""
    if seed is None:
        yield
        return
    import torch

    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state)


class LayerSwap:
    """Base of the recipes that replace layers by type. A subclass (a frozen dataclass with the
    fields ``keep_first``, ``keep_last``, ``skip``) defines :meth:`replacement` and, if needed,
    :meth:`targets` (default ``nn.Linear``, ``nn.Conv2d``) and :meth:`excluded` (layers
    already of a family, never swapped again)."""

    keep_first: bool
    keep_last: bool
    skip: tuple[str, ...]

    def targets(self) -> tuple[type, ...]:
        """The module types this recipe replaces."""
        return _default_targets()

    def excluded(self, module: nn.Module) -> bool:
        """Whether ``module`` (of a target type) is left alone whatever its position."""
        return False

    def replacement(self, module: nn.Module, index: int) -> nn.Module:
        """The new layer for ``module``, the ``index``-th target layer of the model."""
        raise NotImplementedError

    def swap(self, model: nn.Module, seed: int | None = None) -> nn.Module:
        """Replace, in place, every target layer of ``model`` but the kept ones."""
        layers = swappable_layers(model, self.skip, self.keep_first, self.keep_last,
                                  exclude=self.excluded, targets=self.targets())
        with seeded(seed):
            for index, (name, module, kept) in enumerate(layers):
                if not kept:
                    replace_module(model, name, self.replacement(module, index))
        return model


# ------------------------------------------------------------------------------ families
@dataclass(frozen=True)
class Family:
    """A layer family as the configuration sees it.

    Attributes:
        name: the family's name (``quantize``, ``mulfree``, ...).
        methods: the ``quant.weights`` values it claims (a function: the catalogue can grow).
        section: its config section (a field of ``TrainConfig``), ``None`` for none.
        recipe: ``function(cfg) -> Recipe``, or its ``"module:function"`` (imported when used,
            so the table stays torch-free).
        check: torch-free cross-field checks of a config that selects the family
            (raise :class:`~proxcompress.errors.InvalidInputError` naming the field).
        selects: whether a config selects the family (default: ``quant.weights`` is one of
            :attr:`methods`).
    """

    name: str
    methods: Callable[[], tuple[str, ...]]
    section: str | None
    recipe: str | Callable[[TrainConfig], Recipe]
    check: Callable[[TrainConfig], None] | None = None
    selects: Callable[[TrainConfig], bool] | None = None

    def is_selected(self, cfg: TrainConfig) -> bool:
        if self.selects is not None:
            return self.selects(cfg)
        return cfg.quant.weights in self.methods()


#: mulfree method -> (default bits, accepted bits range), ``None`` for float-weight methods;
#: the one table of these methods (``mulfree.METHODS`` and the config read it)
MULFREE_BITS: dict[str, tuple[int, tuple[int, int]] | None] = {
    "deepshift": (4, (2, 8)),
    "denseshift": (3, (2, 4)),
    "s3": (3, (3, 4)),
    "euclid": None,
    "adder": None,
}


def _catalogue_names() -> tuple[str, ...]:
    from proxcompress.proofs.registry import pair_names

    return pair_names()


def _check_mulfree(cfg: TrainConfig) -> None:
    method = cfg.quant.weights
    if cfg.quant.activations:
        raise InvalidInputError("quant.activations", f"must be null with the "
                                f"multiplication-free method {method!r}")
    bits, spec = cfg.mulfree.bits, MULFREE_BITS[method]
    if bits is not None and spec is None:
        raise InvalidInputError("mulfree.bits", f"is not a parameter of {method!r} (float "
                                "weights); leave it null")
    if bits is not None and spec is not None and not spec[1][0] <= bits <= spec[1][1]:
        low, high = spec[1]
        raise InvalidInputError("mulfree.bits", f"= {bits!r}; accepted for {method}: "
                                f"[{low}, {high}]")


FAMILIES: dict[str, Family] = {
    "quantize": Family("quantize", _catalogue_names, "quant",
                       "proxcompress.training.quantize:recipe_from_config"),
    "mulfree": Family("mulfree", lambda: tuple(MULFREE_BITS), "mulfree",
                      "proxcompress.training.mulfree:recipe_from_config", _check_mulfree),
}


def register_family(family: Family, *, replace: bool = False) -> None:
    """Add a layer family (see :class:`Family`).

    Raises:
        InvalidInputError: the name is taken and ``replace`` is false, or one of its
            ``quant.weights`` methods is another family's.
    """
    if family.name in FAMILIES and not replace:
        raise InvalidInputError("family", f"{family.name!r} is already registered")
    taken = {m for f in FAMILIES.values() if f.name != family.name for m in f.methods()}
    clash = sorted(taken & set(family.methods()))
    if clash:
        raise InvalidInputError("family", f"{family.name!r} claims {', '.join(clash)}, "
                                "already another family's")
    FAMILIES[family.name] = family


def weight_methods() -> tuple[str, ...]:
    """Every accepted ``quant.weights`` value but ``none``, family by family."""
    return tuple(m for f in FAMILIES.values() for m in f.methods())


def selected_family(cfg: TrainConfig) -> Family | None:
    """The family a config selects (``None``: a full-precision run).

    Raises:
        InvalidInputError: more than one family selected (field ``quant.weights``).
    """
    chosen = [f for f in FAMILIES.values() if f.is_selected(cfg)]
    if len(chosen) > 1:
        raise InvalidInputError("quant.weights", "selects several layer families ("
                                f"{', '.join(f.name for f in chosen)}); one at a time")
    return chosen[0] if chosen else None


def check_config(cfg: TrainConfig) -> None:
    """The selected family's cross-field checks (torch-free)."""
    family = selected_family(cfg)
    if family is not None and family.check is not None:
        family.check(cfg)


def recipe_from_config(cfg: TrainConfig) -> Recipe | None:
    """The recipe of the family the config selects, ``None`` for a full-precision run."""
    family = selected_family(cfg)
    if family is None:
        return None
    build = family.recipe
    if isinstance(build, str):
        module, _, function = build.partition(":")
        build = getattr(importlib.import_module(module), function)
    return build(cfg)


__all__ = ["FAMILIES", "MULFREE_BITS", "Family", "LayerSwap", "Recipe", "TrainingHooks",
           "check_config", "keep_full_precision", "pinned", "recipe_from_config",
           "register_family", "replace_module", "seeded", "selected_family", "swappable_layers",
           "weight_methods"]
