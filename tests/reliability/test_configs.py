"""YAML configs (``train --config`` and ``--set``): hostile documents and wrong values are
refused with exit 2 naming ``--config`` or the dotted key, before the run folder exists
(issue 13).

Generated: alias bombs of any shape (refused from the composed graph's size, never expanded),
nesting of any depth past the limit, a duplicate of any key, invalid UTF-8 anywhere, and for
every leaf key of :class:`TrainConfig` a value of the wrong type. Named cases: ``spr.units``
and ``model.init_from`` errors are refused by ``train`` and ``--dry-run`` alike, before any
training; the language model's and the tensor-train keys (issue 20).
"""

from __future__ import annotations

import dataclasses
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reliability_helpers import LM_CONFIG, TINY_CONFIG, refused_here

from proxcompress.readers import MAX_YAML_DEPTH, MAX_YAML_NODES
from proxcompress.training.config import TrainConfig

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _train(tmp_path: Path, text: str | bytes, fields: str | tuple[str, ...],
           extra: tuple[str, ...] = ()) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path = folder / "c.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused_here(["train", "--config", "c.yaml", *extra, "--out", "run"], fields, folder)


def _laughs(levels: int, width: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@SETTINGS
@given(levels=st.integers(2, 30), width=st.integers(2, 40))
def test_alias_bombs_are_refused_without_expansion(tmp_path: Path, levels: int,
                                                   width: int) -> None:
    # the expanded document's size, bounded both ways: its scalar leaves alone (below), and
    # every node (lists, keys and the root mapping too: what the reader may count)
    leaves = sum(width ** (i + 1) for i in range(levels))
    nodes, size = 1 + levels, 1 + width  # a0: one list of `width` scalars
    for _ in range(levels):
        nodes += size
        size = 1 + width * size
    assume(leaves > MAX_YAML_NODES or nodes <= MAX_YAML_NODES)  # skip the band in between
    if nodes <= MAX_YAML_NODES:  # small enough: accepted as YAML, then an unknown key
        _train(tmp_path, _laughs(levels, width), "a0")
    else:
        _train(tmp_path, _laughs(levels, width), "--config")


@SETTINGS
@given(depth=st.integers(MAX_YAML_DEPTH + 1, 5000), flow=st.booleans())
def test_deep_nesting_is_refused(tmp_path: Path, depth: int, flow: bool) -> None:
    text = ("x: " + "[" * depth + "]" * depth if flow
            else "".join(f"{' ' * i}k{i}:\n" for i in range(depth)))
    _train(tmp_path, text, "--config")


@SETTINGS
@given(data=st.data())
def test_a_duplicate_of_any_key_is_refused(tmp_path: Path, data: st.DataObject) -> None:
    lines = TINY_CONFIG.splitlines()
    line = data.draw(st.sampled_from(lines))
    _train(tmp_path, TINY_CONFIG + line + "\n", "--config")


@SETTINGS
@given(position=st.integers(0, len(TINY_CONFIG)),
       bad=st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\xbc", b"\x80"]))
def test_invalid_utf8_anywhere_is_refused(tmp_path: Path, position: int, bad: bytes) -> None:
    raw = TINY_CONFIG.encode()
    _train(tmp_path, raw[:position] + bad + raw[position:], "--config")


def _leaves(cls: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out += _leaves(tp, path + ".")
        else:
            out.append((path, tp))
    return out


LEAVES = _leaves(TrainConfig)


def _wrong(tp: Any) -> list[Any]:
    """YAML values no field of type ``tp`` accepts."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:  # e.g. tt.ranks: an integer or a list of them
            return ["abc", 1.5, {"a": 1}, True]
        return _wrong(inner[0])
    if origin is Literal:
        return ["no-such-choice", [1, 2], {"a": 1}] + ([] if int in map(type, args) else [3])
    if origin is list:
        return ["abc", 5, {"a": 1}, [[1]], [{"a": 1}]]
    return {bool: ["maybe", 3, [True]], int: ["abc", 1.5, [1], {"a": 1}, True],
            float: ["abc", [1.0], {"a": 1}, True, ".nan"], str: [5, [1], {"a": 1}, True]}[tp]


def _wrong_value(leaf: tuple[str, Any], data: st.DataObject) -> tuple[str, Any, tuple[str, ...]]:
    """A leaf's dotted path, a value of the wrong type for it, and the fields that may be
    named (a list's first item for lists)."""
    path, tp = leaf
    value = data.draw(st.sampled_from(_wrong(tp)))
    fields = (path, f"{path}[0]", f"{path}[0][0]")
    if isinstance(value, list) and value and isinstance(value[0], dict):
        # a list of sections (``model.vit.stages``): the unknown key inside the item is named
        fields += tuple(f"{path}[0].{key}" for key in value[0])
    return path, float("nan") if value == ".nan" else value, fields


@SETTINGS
@given(leaf=st.sampled_from(LEAVES), data=st.data())
def test_a_wrong_type_for_any_key_is_refused_naming_it(tmp_path: Path, leaf: tuple[str, Any],
                                                       data: st.DataObject) -> None:
    path, value, fields = _wrong_value(leaf, data)
    raw: dict[str, Any] = yaml.safe_load(TINY_CONFIG)
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    _train(tmp_path, yaml.safe_dump(raw), fields)


@SETTINGS
@given(leaf=st.sampled_from(LEAVES), data=st.data())
def test_set_overrides_of_the_wrong_type_are_refused(tmp_path: Path, leaf: tuple[str, Any],
                                                     data: st.DataObject) -> None:
    path, value, fields = _wrong_value(leaf, data)
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    _train(tmp_path, TINY_CONFIG, fields, ("--set", f"{path}={text}"))


@pytest.mark.parametrize(("text", "field"), [
    ("a: &a [*a]\n", "--config"),
    ("x: !!python/object/apply:os.system ['true']\n", "--config"),
    ("- 1\n", "--config"),
    ("model: {hidden: [100000000]}\n", "model.hidden"),
    ("model: {hidden: [60000, 60000, 60000]}\n", "model"),
    ("seed: 99999999999999999999\n", "seed"),
])
def test_named_documents(tmp_path: Path, text: str, field: str) -> None:
    _train(tmp_path, text, field)


@pytest.mark.parametrize(("extra", "field"), [
    ("tt: {form: tucker}\n", "tt.form"),
    ("tt: {form: mps, compression: 0.5}\n", "tt.compression"),
    ("tt: {form: mps, ranks: 4, compression: 10}\n", "tt.ranks"),
    ("tt: {form: mps, ranks: [0]}\n", "tt.ranks"),
    ("tt: {form: mps, num_modes: 9}\n", "tt.num_modes"),
    ("tt: {form: mps, matrices: [xh]}\n", "tt.matrices"),
    ("tt: {form: mps, layout: diagonal}\n", "tt.layout"),
    ("quant: {weights: bnn}\n", "quant.weights"),
    ("spr: {enabled: true}\n", "spr.enabled"),
    ("distill: {teacher: elsewhere}\n", "distill.teacher"),
])
def test_language_model_configs(tmp_path: Path, extra: str, field: str) -> None:
    """The tensor-train and language-model keys (issue 20) under the same contract."""
    _train(tmp_path, LM_CONFIG + extra, field)


@pytest.mark.parametrize(("old", "new", "field"), [
    ("bptt: 12", "bptt: 0", "data.bptt"),
    ("bptt: 12", "bptt: 12, eval_streams: 0", "data.eval_streams"),
    ("bptt: 12", "bptt: 12, classes: [0, 1]", "data.classes"),
    ("name: kjv-sample", "name: kjv", "data.root"),
    ("name: kjv-sample", "name: synthetic", "model.name"),
    ("cutoffs: [50]", "cutoffs: [50, 10]", "model.lstm.cutoffs"),
    ("hidden: 8", "hidden: 100000", "model"),
    ("hidden: 8", "hidden: 8, layers: 100000", "model.lstm.layers"),
    ("bptt: 12", "bptt: 1000000000", "data.bptt"),
    ("bptt: 12", "bptt: 12, eval_streams: 400", "data.eval_streams"),
    ("batch_size: 32", "batch_size: 4000", "optim.batch_size"),
    ("batch_size: 32", "batch_size: 4096", "optim.batch_size"),
])
def test_language_model_values(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in LM_CONFIG
    _train(tmp_path, LM_CONFIG.replace(old, new), field)


def test_config_folder_and_missing(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").mkdir()
    refused_here(["train", "--config", "c.yaml", "--out", "run"], "--config", tmp_path)
    refused_here(["train", "--config", "none.yaml", "--out", "run"], "--config", tmp_path)


@pytest.mark.parametrize("dry", [False, True])
def test_unknown_spr_unit_is_refused_before_any_work(tmp_path: Path, dry: bool) -> None:
    text = TINY_CONFIG.replace("weights: bnn++", "weights: none") + (
        "spr: {enabled: true, pretrain_epochs: 1, units: [fc0, nope]}\n")
    (tmp_path / "c.yaml").write_text(text)
    argv = ["train", "--config", "c.yaml"] + (["--dry-run"] if dry else ["--out", "run"])
    answer = refused_here(argv, "spr.units", tmp_path)
    assert "'nope'" in answer.message and "fc0" in answer.message


@pytest.mark.parametrize("dry", [False, True])
def test_bad_init_from_leaves_no_run_folder(tmp_path: Path, dry: bool) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "c.yaml").write_text(TINY_CONFIG.replace("dropout: 0.0}",
                                                         "dropout: 0.0, init_from: other}"))
    argv = ["train", "--config", "c.yaml"] + (["--dry-run"] if dry else ["--out", "run"])
    refused_here(argv, "model.init_from", tmp_path)
