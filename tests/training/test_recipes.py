"""One place per concept: the quantizer registry (proofs), the layer-family registry (recipes),
the model registry, and the exporter / kernels op tables. A toy layer family is added through
each public registration point only (docs/extending.md) and must then train, resume, summarize
and export like a built-in one."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from training_helpers import tiny_config

from proxcompress import levels
from proxcompress.errors import InvalidInputError
from proxcompress.formulations import prox
from proxcompress.kernels import model as kernels_model
from proxcompress.proofs import pairs as catalogue
from proxcompress.proofs import registry
from proxcompress.training import exporter, models, quantizers, recipes
from proxcompress.training.config import TrainConfig, config_from_dict
from proxcompress.training.mulfree import _LAYERS, MulFreeRecipe
from proxcompress.training.quantize import QuantRecipe, quantize_model
from proxcompress.training.trainer import Interrupted, train


# ------------------------------------------------------------------------ quantizer registry
def test_one_shift_levels_everywhere() -> None:
    assert quantizers.shift_levels is levels.shift_levels
    assert prox.shift_levels is levels.shift_levels
    assert catalogue.shift_levels is levels.shift_levels
    assert levels.shift_levels(3.0) == levels.shift_levels(3)
    for bad in (1, 7, 2.5, True, float("nan")):
        with pytest.raises(InvalidInputError):
            levels.shift_levels(bad)  # type: ignore[arg-type]


def test_names_and_defaults_live_in_the_registry() -> None:
    assert quantizers.quantizer_names() == catalogue.pair_names() == registry.pair_names()
    assert catalogue._FACTORIES is registry._CATALOGUE
    for name in registry.pair_names():
        spec = registry.pair_spec(name)
        symbolic = catalogue._factory(spec)
        # every factory's own defaults equal the registry's (callers get the registry's)
        for factory in (symbolic, quantizers._FACTORIES[name]):
            defaults = {p.name: p.default for p in inspect.signature(factory).parameters.values()
                        if isinstance(p.default, int | float)}
            assert defaults == dict(spec.parameters), (name, factory)


def test_parameters_reach_both_sides() -> None:
    pair = catalogue.get_pair("bnn++", beta=2)
    assert pair.parameters == {"beta": 2.0, "beta_growth": 1.0}  # the growth's default
    assert catalogue.get_pair("bnn++") is catalogue.get_pair("BNN++", beta=1)
    assert catalogue.get_pair("bnn++-prox").parameters == {"beta": 2.0}
    assert pair is not catalogue.get_pair("bnn++")
    twin = pair.numeric()
    q = quantizers.get_quantizer("bnn++", beta=2)
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    np.testing.assert_allclose(q.forward(x, 3.0).numpy(), twin.forward(x.numpy(), 3.0),
                               rtol=1e-12, atol=1e-12)
    assert quantizers.get_quantizer("shift", bits=4).levels == levels.shift_levels(4)
    with pytest.raises(InvalidInputError) as info:
        catalogue.get_pair("bnn", beta=2)
    assert info.value.field == "beta"
    with pytest.raises(InvalidInputError) as info:
        quantizers.get_quantizer("bnn++", beta=float("inf"))
    assert info.value.field == "beta"


@pytest.fixture
def extra_pair() -> Iterator[str]:
    """A catalogue pair registered on both sides (symbolic and torch), removed afterwards."""
    from proxcompress.proofs.analysis import x

    name = "scaled-sign"

    def symbolic(c: float = 1.5) -> catalogue.Pair:
        return catalogue.Pair(name=name, forward=c * catalogue.sp.sign(x), backward=c * x,
                              prox=catalogue.sp.sign(x), method_derivative_at="latent",
                              parameters={"c": float(c)})

    def torch_op(c: float = 1.5) -> quantizers.TorchQuantizer:
        return quantizers.TorchQuantizer(
            name, lambda v, mu: c * torch.sign(v), lambda v, mu: c * v,
            lambda v, mu: torch.full_like(v, c), lambda v, mu: torch.sign(v),
            lambda v: c * torch.sign(v), (-1.0, 1.0), "latent", False, {"c": float(c)})

    catalogue.register(name, symbolic)
    quantizers.register(name, torch_op)
    try:
        yield name
    finally:
        registry._CATALOGUE.pop(name)
        quantizers._FACTORIES.pop(name)
        catalogue._build.cache_clear()


def test_a_registered_pair_is_known_everywhere(extra_pair: str) -> None:
    assert registry.parameters_of(extra_pair) == {"c": 1.5}
    assert catalogue.get_pair(extra_pair, c=2).parameters == {"c": 2.0}
    assert quantizers.get_quantizer(extra_pair, c=2).forward(torch.ones(1), 0.0).item() == 2.0
    cfg = config_from_dict({"quant": {"weights": extra_pair, "activations": extra_pair}})
    model = quantize_model(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)),
                           QuantRecipe(cfg.quant.weights, keep_first=False))
    assert model[0].weight_quantizer.name == extra_pair
    with pytest.raises(InvalidInputError):
        quantizers.register("not-in-the-catalogue", lambda: None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- family registry
def test_builtin_recipes_follow_the_protocol() -> None:
    for recipe in (QuantRecipe(), MulFreeRecipe("s3")):
        assert isinstance(recipe, recipes.Recipe)
        assert isinstance(recipe.hooks(nn.Linear(2, 2), 10), recipes.TrainingHooks)
    assert set(_LAYERS) == set(recipes.MULFREE_BITS)
    assert recipes.weight_methods() == (*registry.pair_names(), *recipes.MULFREE_BITS)


class GainLinear(nn.Linear):
    """The toy family's layer: ``gain * (x W^T + b)`` with a ``gain`` buffer the hooks move."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("gain", torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * self.gain


class GainHooks(recipes.TrainingHooks):
    def __init__(self, model: nn.Module, total_steps: int, weight: float) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, GainLinear)]
        self.total_steps, self.weight = total_steps, weight
        self.calls = torch.zeros(1, dtype=torch.int64)

    def regularizer(self) -> Tensor | None:
        return self.weight * sum(m.weight.pow(2).sum() for m in self.layers)  # type: ignore[return-value]

    def after_step(self, step: int) -> None:
        self.calls += 1
        for m in self.layers:
            m.gain.fill_(1.0 + step / self.total_steps)

    def epoch_metrics(self) -> dict[str, float]:
        return {"gain": float(self.layers[0].gain), "gain_calls": float(self.calls)}

    def state_tensors(self) -> dict[str, Tensor]:
        return {"calls": self.calls.clone()}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        if "calls" in tensors:
            self.calls = tensors["calls"].clone()


@dataclass(frozen=True)
class GainRecipe(recipes.LayerSwap):
    weight: float = 1e-4
    keep_first: bool = True
    keep_last: bool = True
    skip: tuple[str, ...] = ()

    @property
    def latent_clip(self) -> float | None:
        return None

    def targets(self) -> tuple[type, ...]:
        return (nn.Linear,)

    def excluded(self, module: nn.Module) -> bool:
        return isinstance(module, GainLinear)

    def replacement(self, module: nn.Module, index: int) -> nn.Module:
        assert isinstance(module, nn.Linear)
        new = GainLinear(module.in_features, module.out_features, module.bias is not None)
        new.load_state_dict(module.state_dict(), strict=False)
        return new

    def apply(self, model: nn.Module, *, seed: int | None = None) -> nn.Module:
        return self.swap(model, seed)

    def hooks(self, model: nn.Module, total_steps: int, cfg: TrainConfig | None = None
              ) -> GainHooks:
        return GainHooks(model, total_steps, self.weight)


def _write_gain(w: Any, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, GainLinear)
    w.add(name, "gain_linear", inp, {"gain": float(m.gain)},
          {"weight": m.weight.detach().numpy().astype(np.float32),
           "bias": None if m.bias is None else m.bias.detach().numpy().astype(np.float32)})


def _run_gain(node: Any, backend: Any, put: Any) -> Any:
    w = node.tensor("weight", np.float32, ndim=2)
    b = node.optional_tensor("bias", np.float32)
    gain = np.float32(node.attr("gain", float))
    return lambda x: ((x @ w.T + (0 if b is None else b)) * gain).astype(np.float32)


@pytest.fixture
def gain_family() -> Iterator[None]:
    """The toy family, added through the public registration points only."""
    recipes.register_family(recipes.Family(
        "gain", lambda: ("gain",), None, lambda cfg: GainRecipe(keep_first=cfg.quant.keep_first)))
    exporter.register_module(GainLinear, _write_gain)
    kernels_model.register_op("gain_linear", kernels_model.OpSpec(_run_gain))
    try:
        yield
    finally:
        recipes.FAMILIES.pop("gain")
        exporter._MODULE_WRITERS.pop(GainLinear)
        exporter._LEAVES.remove(GainLinear)
        kernels_model.OPS.pop("gain_linear")


def test_registered_family_clashes_are_refused(gain_family: None) -> None:
    with pytest.raises(InvalidInputError):
        recipes.register_family(recipes.Family("other", lambda: ("bnn",), None, "x:y"))
    with pytest.raises(InvalidInputError):
        recipes.register_family(recipes.Family("gain", lambda: (), None, "x:y"))


def test_a_registered_family_trains_resumes_and_exports(gain_family: None,
                                                         tmp_path: Path) -> None:
    cfg = tiny_config(quant={"weights": "gain", "keep_first": True}, epochs=2)
    summary = train(cfg, tmp_path / "full")
    lines = [json.loads(s) for s in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    steps = 2 * 5  # 160 samples, batch 32
    assert [r["gain_calls"] for r in lines] == [1 + 5, 1 + 10]  # the start call, then one a step
    assert lines[-1]["gain"] == pytest.approx(1.0 + steps / steps)
    assert summary["quantizer"] == "gain"
    # resume: the hooks' checkpointed state comes back, so the log is the uninterrupted one
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut", interrupt_after_steps=7)
    train(cfg, tmp_path / "cut", resume=True)
    assert (tmp_path / "cut" / "metrics.jsonl").read_text().count("gain_calls") == 2
    cut = [json.loads(s) for s in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["gain_calls"] for r in cut] == [r["gain_calls"] for r in lines]
    assert cut[-1]["loss"] == lines[-1]["loss"]
    # export through the registered writer and op
    from proxcompress.training.trainer import load_run

    _, model = load_run(tmp_path / "full")
    assert sum(isinstance(m, GainLinear) for m in model.modules()) == 1
    x = torch.randn(8, 1, 28, 28)
    exporter.export(model, tmp_path / "export", example=x)
    got = kernels_model.load(tmp_path / "export", backend="numpy")(x.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------------------- model registry
def test_model_registry_builds_and_validates() -> None:
    assert models.MODELS == ("mlp", "vgg", "resnet20", "speech-resnet", "vit")
    assert models.model_names()[:5] == models.MODELS
    a = models.build_model("mlp", hidden=(8,), seed=4)
    b = models.build_model("mlp", hidden=(8,), seed=4)
    assert torch.equal(a.fc0.weight, b.fc0.weight)
    with pytest.raises(InvalidInputError) as info:
        config_from_dict({"model": {"name": "transformer-xl"}})
    assert info.value.field == "model.name"
    models.register_model("tiny-mlp", "proxcompress.training.models.mlp:build")
    try:
        assert config_from_dict({"model": {"name": "tiny-mlp"}}).model.name == "tiny-mlp"
        with pytest.raises(InvalidInputError):
            models.register_model("tiny-mlp", "x:y")
    finally:
        models._BUILDERS.pop("tiny-mlp")


def test_old_import_paths_still_work() -> None:
    from proxcompress.training.models import ChannelUnit, ResNet20, build_model  # noqa: F401
    from proxcompress.training.quantize import replace_module, swappable_layers
    from proxcompress.training.speech import SpeechResNet

    assert SpeechResNet is models.SpeechResNet
    assert replace_module is recipes.replace_module
    assert swappable_layers is recipes.swappable_layers
