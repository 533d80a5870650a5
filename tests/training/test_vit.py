"""Vision transformers: every switch changes the architecture as stated (parameter counts in
closed form), the binary model's forward equals a reference computed from the stored signs and
scales, attention shapes at every pyramid stage, the distillation loss against hand-computed
values, the export on the kernels, and training (distillation, resume) through the config."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from training_helpers import tiny_config

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import load, unpack_signs
from proxcompress.training.config import StageConfig, ViTConfig, config_from_dict, load_config
from proxcompress.training.distill import soft_cross_entropy
from proxcompress.training.exporter import export
from proxcompress.training.layers import BinaryLinear, hard_quantization
from proxcompress.training.models import build_model, calibrate_batchnorm
from proxcompress.training.models import vit as vit_module
from proxcompress.training.quantize import QuantRecipe, model_summary, quantize_model
from proxcompress.training.trainer import Interrupted, train

SMALL = [StageConfig(dim=16, depth=2, heads=2, mlp_ratio=2)]


# --------------------------------------------------------------- parameters in closed form
def _react(a: int, b: int) -> int:
    """ReActLinear a -> b: move (a), linear without bias (a b), BatchNorm (2 b), RPReLU (3 b)."""
    return a + a * b + 2 * b + 3 * b


def closed_form(v: ViTConfig, image: int = 28, classes: int = 10) -> int:
    """The parameter count of a ViT, written from the architecture's description."""
    patch, stages = v.resolved()
    side = image // patch
    cls = v.pool == "cls"
    c0 = stages[0].dim
    total = patch * patch * c0 + c0                      # stem conv (1 input channel)
    total += c0 if cls else 0                             # class token
    total += (side * side + int(cls)) * c0                # position embeddings
    for i, s in enumerate(stages):
        c, r = s.dim, s.mlp_ratio
        if i:
            prev, side = stages[i - 1].dim, side // 2
            total += 4 * prev * c + 2 * c + side * side * c  # 2x2 conv, BN, new positions
            if v.binary:
                total += 2 * prev + prev + 3 * c          # BN before, shift, RPReLU after
        if v.binary:
            attn = 4 * _react(c, c) + 3 * c + 1 + 2 * c + 3 * c  # q k v proj, 3 shifts,
            attn += _react(c, c) if s.sr > 1 else 0        # alpha, context BN and RPReLU
            ffn = _react(c, r * c) + _react(r * c, c)
        else:
            attn = 4 * (c * c + c) + ((c * c + c) + 2 * c if s.sr > 1 else 0)
            ffn = (c * r * c + r * c) + (r * c * c + c)
        block = 2 * c + attn + 2 * c + ffn                 # two norms
        block += 2 * (2 * c) if v.affine else 0            # two LayerScales (gamma, b)
        block += 4 * c if v.multipool else 0               # four zero-init LayerScales
        total += s.depth * block
    last = stages[-1].dim
    return total + 2 * last + last * classes + classes    # final norm, classifier


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


LADDER = [
    ("fp", {}),
    ("deit-binary", {"binary": True}),
    ("+avg", {"binary": True, "pool": "avg"}),
    ("+multipool", {"binary": True, "pool": "avg", "multipool": True}),
    ("+affine", {"binary": True, "pool": "avg", "multipool": True, "affine": True}),
    ("binaryvit", {"binary": True, "pool": "avg", "multipool": True, "affine": True,
                   "pyramid": True}),
    ("fp-pyramid", {"pool": "avg", "pyramid": True, "norm": "batch"}),
    ("fp-cls-all", {"multipool": True, "affine": True}),
]


@pytest.mark.parametrize(("label", "switches"), LADDER)
def test_parameter_counts_in_closed_form(label: str, switches: dict[str, Any]) -> None:
    v = ViTConfig(stages=[StageConfig(dim=32, depth=2, heads=2, mlp_ratio=4)], **switches)
    model = build_model("vit", vit=v, seed=0)
    assert _count(model) == closed_form(v)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_each_switch_changes_what_it_states() -> None:
    base = ViTConfig(stages=[StageConfig(dim=32, depth=3, heads=2, mlp_ratio=4)], binary=True)
    c, depth, tokens = 32, 3, 49

    def n(v: ViTConfig) -> int:
        return _count(build_model("vit", vit=v, seed=0))

    avg = replace(base, pool="avg")
    assert n(base) - n(avg) == c + c                       # the class token and its position
    multi = replace(avg, multipool=True)
    assert n(multi) - n(avg) == depth * 4 * c
    affine = replace(multi, affine=True)
    assert n(affine) - n(multi) == depth * 2 * 2 * c
    # LayerNorm -> BatchNorm: same parameters, BatchNorm statistics and no LayerNorm left
    bn = build_model("vit", vit=replace(affine, norm="batch"), seed=0)
    assert _count(bn) == n(affine)
    assert not any(isinstance(m, nn.LayerNorm) for m in bn.modules())
    assert sum(isinstance(m, vit_module.TokenBatchNorm) for m in bn.modules()) > \
        sum(isinstance(m, vit_module.TokenBatchNorm)
            for m in build_model("vit", vit=affine, seed=0).modules())
    # multi-pooling and affine start as stated: zero branches, gamma 0.1, bias 0
    m = build_model("vit", vit=affine, seed=0)
    block = m.blocks[0]
    assert all(float(s.gamma.detach().abs().max()) == 0.0 for s in block.multipool.scales)
    assert torch.equal(block.scale1.gamma, torch.full((c,), 0.1))
    assert torch.equal(block.scale1.bias, torch.zeros(c))
    # the pyramid: two stages (14 x 14 tokens of 16 channels, then 7 x 7 of 32)
    pyr = build_model("vit", vit=replace(affine, pyramid=True), seed=0)
    assert pyr.grids == [(14, 14), (7, 7)]
    assert pyr.pos.table.shape == (1, 196, 16)
    assert build_model("vit", vit=avg, seed=0).pos.table.shape == (1, tokens, c)
    # full-precision patch embeddings: the merging conv stays a float conv after the recipe
    for fp in (False, True):
        model = build_model("vit", vit=replace(affine, pyramid=True, fp_patch_embed=fp), seed=0)
        quantize_model(model, QuantRecipe("bnn", "bnn"))
        merge = next(x for x in model.modules() if isinstance(x, vit_module.PatchMerge))
        assert (type(merge.conv) is nn.Conv2d) == fp
        assert type(model.stem) is nn.Conv2d and type(model.head) is nn.Linear


def test_recipe_binarizes_linears_and_the_attention_sites() -> None:
    model = build_model("vit", vit=ViTConfig(stages=SMALL, binary=True), seed=0)
    quantize_model(model, QuantRecipe("bnn+", "bnn", beta=2.0))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert sum(isinstance(m, BinaryLinear) for m in linears) == len(linears) - 1  # not the head
    sites = [m for m in model.modules() if isinstance(m, vit_module.ActivationQuantizer)]
    assert len(sites) == 3 * 2 and all(s.quantizer.name == "bnn" for s in sites)
    summary = model_summary(model, (1, 28, 28))
    attention = [li for li in summary.layers if li.kind.startswith("Attention")]
    assert attention and all(li.weight_bits == li.activation_bits == 1 for li in attention)
    t, c = 49 + 1, 16
    assert attention[0].macs == t * t * c
    # a token linear computes one dot product per token and output channel
    q = next(li for li in summary.layers if li.name.endswith("attn.q.linear"))
    assert q.macs == t * c * c
    assert summary.binary_macs > 10 * summary.float_macs


# ------------------------------------------------------------------------ attention shapes
@pytest.mark.parametrize(("image", "v", "expected"), [
    (28, ViTConfig(patch=4, stages=[StageConfig(32, 2, 2, 4)], pool="avg", pyramid=True,
                   binary=True),
     [(1, 196, 49), (2, 49, 49)]),
    (32, ViTConfig(patch=2, pool="avg", stages=[StageConfig(8, 1, 1, 2, 4),
                                                StageConfig(16, 1, 2, 2, 2),
                                                StageConfig(32, 1, 4, 2, 1)]),
     [(1, 256, 16), (2, 64, 16), (4, 16, 16)]),
])
def test_attention_shapes_at_every_pyramid_stage(image: int, v: ViTConfig,
                                                 expected: list[tuple[int, int, int]]) -> None:
    model = build_model("vit", vit=v, image_size=image, seed=0)
    shapes: list[tuple[int, ...]] = []
    contexts: list[tuple[int, ...]] = []
    for m in model.modules():
        if isinstance(m, vit_module.AttentionScores):
            m.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape)))
        if isinstance(m, vit_module.AttentionContext):
            m.register_forward_hook(lambda mod, i, o: contexts.append(tuple(o.shape)))
    model(torch.randn(3, 1, image, image))
    _, stages = v.resolved()
    per_block = [e for e, s in zip(expected, stages, strict=True) for _ in range(s.depth)]
    assert shapes == [(3, *e) for e in per_block]
    dims = [s.dim for s in stages for _ in range(s.depth)]
    assert contexts == [(3, e[1], d) for e, d in zip(per_block, dims, strict=True)]


# ------------------------------------------------ the binary forward from signs and scales
def _trained_like(v: ViTConfig, recipe: QuantRecipe | None) -> nn.Module:
    """A model with non-trivial BatchNorm statistics, shifts and scales (as training leaves
    them), in eval mode."""
    model = build_model("vit", vit=v, seed=0)
    if recipe is not None:
        quantize_model(model, recipe)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and not name.endswith("linear.weight"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return calibrate_batchnorm(model, (1, 28, 28))


def test_binary_forward_equals_a_reference_from_stored_signs_and_scales(tmp_path: Path) -> None:
    model = _trained_like(ViTConfig(stages=SMALL, binary=True, pool="avg", multipool=True,
                                    affine=True, pyramid=True), QuantRecipe("bnn", "bnn"))
    x = torch.randn(8, 1, 28, 28)
    export(model, tmp_path, example=x)
    manifest = json.loads((tmp_path / "model.json").read_text())
    from safetensors.numpy import load_file

    tensors = load_file(str(tmp_path / "model.safetensors"))
    stored = {n["name"]: n for n in manifest["nodes"] if n["op"] == "binary_linear"}
    seen: dict[str, tuple[Tensor, Tensor]] = {}
    for name, m in model.named_modules():
        if isinstance(m, BinaryLinear):
            m.register_forward_hook(
                lambda mod, i, o, name=name: seen.__setitem__(name, (i[0], o)))
    with torch.no_grad(), hard_quantization(model):
        out = model(x)
    assert len(seen) == len(stored) > 10
    for name, (inp, got) in seen.items():
        node = stored[name.replace(".", "_")]
        signs = unpack_signs(tensors[node["tensors"]["words"]], node["attrs"]["k"])
        scale = tensors[node["tensors"]["scale"]]
        c = node["attrs"]["input"]["scale"]
        xs = np.sign(inp.numpy().reshape(-1, signs.shape[1])).astype(np.float64) * c
        reference = (xs @ signs.T.astype(np.float64)) * scale
        np.testing.assert_allclose(got.numpy().reshape(reference.shape), reference,
                                   rtol=1e-5, atol=1e-5)
    for backend in ("numpy", "numba"):
        kernels = load(tmp_path, backend=backend)(x.numpy())
        np.testing.assert_allclose(kernels, out.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("switches", [
    {}, {"binary": True}, {"binary": True, "norm": "batch", "multipool": True},
    {"binary": True, "pool": "avg", "pyramid": True, "fp_patch_embed": True, "affine": True},
    {"pool": "avg", "pyramid": True, "multipool": True},
])
def test_export_runs_on_the_kernels(switches: dict[str, Any], tmp_path: Path) -> None:
    v = ViTConfig(stages=SMALL, **switches)
    recipe = QuantRecipe("bnn++", "bnn", beta=2.0) if v.binary else None
    model = _trained_like(v, recipe)
    x = torch.randn(16, 1, 28, 28)
    export(model, tmp_path, example=x)
    with torch.no_grad(), hard_quantization(model):
        ref = model(x).numpy()
    exported = load(tmp_path, backend="numba")
    got = exported(x.numpy())
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
    assert (got.argmax(1) == ref.argmax(1)).all()
    if v.binary:  # the BatchNorm after every binary linear folds into its scale
        assert len(exported.folded) >= 10


# ----------------------------------------------------------------- probability quantizer
def test_probability_quantizer_values_and_gradients() -> None:
    q = vit_module.ProbQuantizer(0.25)
    p = torch.tensor([0.0, 0.1, 0.13, 0.2, 0.25, 0.7], requires_grad=True)
    out = q(p)
    assert out.tolist() == [0.0, 0.0, 0.25, 0.25, 0.25, 0.25]
    out.sum().backward()
    assert p.grad.tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]   # straight through on [0, alpha]
    r = p.detach() / 0.25
    inside = (r <= 1).to(torch.float32)
    lsq = (torch.round(r.clamp(0, 1)) - r * inside).sum()     # round(r) - r inside, 1 above
    # alpha = exp(log_alpha): d/d log_alpha = alpha d/d alpha
    assert q.log_alpha.grad.item() == pytest.approx(0.25 * lsq.item(), abs=1e-6)


# ---------------------------------------------------------------------------- distillation
def test_soft_cross_entropy_against_hand_computed_values() -> None:
    student = torch.tensor([[0.0, math.log(3.0)]])
    teacher = torch.tensor([[0.0, 0.0]])
    # p = (1/2, 1/2); log q = (log 1/4, log 3/4)
    assert soft_cross_entropy(student, teacher).item() == pytest.approx(0.5 * math.log(16 / 3))
    # T = 2: q = (1, sqrt 3) / (1 + sqrt 3), times T^2
    expected = 4 * 0.5 * (2 * math.log(1 + math.sqrt(3)) - 0.5 * math.log(3))
    assert soft_cross_entropy(student, teacher, 2.0).item() == pytest.approx(expected)
    # a teacher equal to the student: the entropy of the student's distribution
    s = torch.tensor([[1.0, -2.0, 0.5]])
    q = torch.softmax(s, 1)
    assert soft_cross_entropy(s, s).item() == pytest.approx(-(q * q.log()).sum().item())


def _vit_config(**sections: Any) -> Any:
    raw = {"model": {"name": "vit", "vit": {"patch": 7, "stages": [
        {"dim": 8, "depth": 1, "heads": 2, "mlp_ratio": 2}]}, "dropout": 0.0},
        "quant": {"weights": "none", "keep_first": True}, "epochs": 2}
    for key, value in sections.items():
        raw.setdefault(key, {})
        if isinstance(value, dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return tiny_config(**raw)


def test_distillation_trains_resumes_and_checks_its_teacher(tmp_path: Path) -> None:
    teacher = tmp_path / "teacher-seed-3"
    train(_vit_config(), teacher)
    student = {"vit": {"patch": 7, "stages": [{"dim": 8, "depth": 1, "heads": 2,
                                                "mlp_ratio": 2}], "binary": True,
                       "pool": "avg", "affine": True}}
    cfg = _vit_config(model=student, quant={"weights": "bnn", "activations": "bnn"},
                      distill={"teacher": str(tmp_path / "teacher-seed-{seed}"), "alpha": 0.7,
                               "temperature": 2.0})
    summary = train(cfg, tmp_path / "kd")
    assert summary["distill"] == {"teacher": str(teacher), "alpha": 0.7, "temperature": 2.0}
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut", interrupt_after_steps=6)
    again = train(cfg, tmp_path / "cut", resume=True)
    assert again["test_accuracy"] == summary["test_accuracy"]
    lines = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in ("kd", "cut")]
    assert [json.loads(a)["loss"] for a in lines[0]] == [json.loads(b)["loss"] for b in lines[1]]
    with pytest.raises(InvalidInputError) as info:
        train(replace(cfg, data=replace(cfg.data, val_seed=5)), tmp_path / "other")
    assert info.value.field == "distill.teacher"
    with pytest.raises(InvalidInputError) as info:
        train(replace(cfg, distill=replace(cfg.distill, teacher=str(tmp_path / "none"))),
              tmp_path / "missing")
    assert info.value.field == "distill.teacher"


def test_a_config_trains_and_exports_through_the_cli_path(tmp_path: Path) -> None:
    from proxcompress.training.deployment import deploy
    from proxcompress.training.trainer import load_run, run_data

    vit = {"patch": 7, "stages": [{"dim": 8, "depth": 2, "heads": 2, "mlp_ratio": 2}],
           "binary": True, "pool": "avg", "multipool": True, "affine": True, "norm": "batch"}
    cfg = _vit_config(model={"vit": vit}, quant={"weights": "bnn++", "activations": "bnn"})
    train(cfg, tmp_path / "run")
    loaded_cfg, model = load_run(tmp_path / "run")
    _, _, test = run_data(loaded_cfg)
    report = deploy(model, tmp_path / "export", test, backend="numpy", repeats=1)
    assert report["agreement"] == 1.0


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("vit", "field"), [
    ({"stages": [{"dim": 30, "heads": 4}]}, "model.vit.stages[0].heads"),
    ({"patch": 5}, "model.vit.patch"),
    ({"pyramid": True}, "model.vit.pool"),
    ({"pyramid": True, "pool": "avg", "patch": 7}, "model.vit.pyramid"),
    ({"stages": [{"dim": 16}, {"dim": 24}], "pool": "avg", "patch": 2},
     "model.vit.stages[1].dim"),
    ({"stages": [{"sr": 3}]}, "model.vit.stages[0].sr"),
    ({"stages": []}, "model.vit.stages"),
    ({"pool": "max"}, "model.vit.pool"),
])
def test_bad_vit_configs_name_the_field(vit: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        config_from_dict({"model": {"name": "vit", "vit": vit}})
    assert info.value.field == field


@pytest.mark.parametrize(("op", "attrs", "field"), [
    ("attention_scores", {"heads": 0, "scale": 1.0}, "attrs.heads"),
    ("channel_repeat", {"axis": 2, "times": 2}, "attrs.axis"),
    ("token_avgpool", {"grid": [4, 4], "kernel_size": [3, 3], "stride": [1, 1],
                       "padding": [2, 2]}, "attrs.padding"),
    ("quantize_probs", {"alpha": -1.0}, "attrs.alpha"),
    ("gelu", {"approximate": "erf"}, "attrs.approximate"),
    ("to_map", {"grid": [4]}, "attrs.grid"),
])
def test_bad_token_nodes_name_the_field(op: str, attrs: dict[str, Any], field: str) -> None:
    from proxcompress.kernels.model import ExportedModel

    arity = 2 if op == "attention_scores" else 1
    manifest = {"format": "proxcompress-export", "version": 1, "input": "x", "output": "y",
                "nodes": [{"name": "y", "op": op, "inputs": ["x"] * arity, "attrs": attrs,
                           "tensors": {}}]}
    with pytest.raises(InvalidInputError) as info:
        ExportedModel(manifest, {}, backend="numpy")
    assert info.value.field == f"node y.{field}"


def test_token_ops_refuse_wrong_shapes(tmp_path: Path) -> None:
    model = _trained_like(ViTConfig(stages=SMALL), None)
    export(model, tmp_path)
    exported = load(tmp_path, backend="numpy")
    with pytest.raises(InvalidInputError):
        exported(np.zeros((2, 1, 32, 32), np.float32))  # 64 tokens where 49 were exported


VIT_CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "results")
                     .glob("vit-*.yaml"))


@pytest.mark.slow
def test_every_vit_results_config_trains_on_the_embedded_data(tmp_path: Path) -> None:
    """Each ``configs/results/vit-*.yaml`` trains with ``--set data.name=embedded`` (one epoch
    on a subset of the embedded sample) through the command line and reports validation and
    test accuracy; the distilled row takes the full-precision run trained here as its teacher
    (its committed teacher is the results table's run folder, absent on a clean clone)."""
    from proxcompress.cli import main

    names = [p.stem for p in VIT_CONFIGS]
    assert {"vit-fp", "vit-deit", "vit-binaryvit", "vit-binaryvit-kd"} <= set(names)
    small = ["--set", "data.name=embedded", "--set", "epochs=1", "--set", "data.train_subset=256",
             "--set", "data.test_subset=128", "--set", "seed=0"]
    order = sorted(VIT_CONFIGS, key=lambda p: p.stem != "vit-fp")  # the teacher first
    for path in order:
        extra = (["--set", f"distill.teacher={tmp_path / 'vit-fp'}"]
                 if load_config(path).distill.teacher is not None else [])
        out = tmp_path / path.stem
        assert main(["train", "--config", str(path), *small, *extra, "--out", str(out)]) == 0, \
            path.stem
        summary = json.loads((out / "summary.json").read_text())
        assert 0.0 <= summary["test_accuracy"] <= 100.0 and "val_accuracy" in summary
        assert summary["epochs"] == 1
