"""The numba token kernels (``kernels/cpu_tokens.py``) and the load-time fusions of BinaryViT's
graph: each fused kernel against the NumPy twin's formula written out here (signs of exact
zeros, several words per row, every shortcut kind), and the benchmark's ``vit-binary`` case,
built from the committed results config, predicting as torch eval does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from bench_module import ROOT, bench_kernels

from proxcompress.kernels import cpu_tokens, load, pack_signs
from proxcompress.kernels.transformer import _score_table

RNG = np.random.default_rng(7)


def _f32(n: int | tuple[int, ...]) -> np.ndarray:
    return RNG.standard_normal(n).astype(np.float32)


@pytest.mark.parametrize(("k", "n_out", "kind", "groups"), [
    (16, 16, cpu_tokens.SHORTCUT_IDENTITY, 1),
    (16, 32, cpu_tokens.SHORTCUT_REPEAT, 1),
    (32, 16, cpu_tokens.SHORTCUT_GROUP_MEAN, 2),
    (80, 80, cpu_tokens.SHORTCUT_IDENTITY, 1),  # two words per row
    (150, 50, cpu_tokens.SHORTCUT_GROUP_MEAN, 3),
])
def test_react_linear_equals_its_numpy_formula(k: int, n_out: int, kind: int,
                                               groups: int) -> None:
    rows = 97
    x = _f32((rows, k))
    m_scale, m_bias = np.ones(k, np.float32), _f32(k)
    x[::3, ::5] = -m_bias[::5]  # moved input exactly 0: sign(0) = 0 counts nothing
    signs = np.where(RNG.random((n_out, k)) < 0.5, -1.0, 1.0).astype(np.float32)
    words = pack_signs(signs)
    scale, bias, shift_in, slope, shift_out = (_f32(n_out) for _ in range(5))
    out = np.empty((rows, n_out), np.float32)
    none = np.empty(0, np.float32)
    cpu_tokens.react_linear(x, m_scale, m_bias, words, scale, bias, kind, groups, shift_in,
                            slope, shift_out, none, none, np.empty((0, n_out), np.float32), out)
    moved = x * m_scale + m_bias
    assert (moved == 0).sum() > 10
    acc = np.sign(moved).astype(np.float64) @ signs.T.astype(np.float64)  # exact integers
    y = acc.astype(np.float32) * scale + bias
    shortcut = {cpu_tokens.SHORTCUT_IDENTITY: lambda: x,
                cpu_tokens.SHORTCUT_REPEAT: lambda: np.concatenate([x] * (n_out // k), axis=1),
                cpu_tokens.SHORTCUT_GROUP_MEAN: lambda: x.reshape(rows, groups, n_out).mean(
                    axis=1, dtype=np.float32)}[kind]()
    z = (y + shortcut) + shift_in
    ref = np.maximum(z, 0) - np.maximum(-z, 0) * slope + shift_out
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    post_scale, post_bias, residual = _f32(n_out), _f32(n_out), _f32((rows, n_out))
    folded = np.empty_like(out)
    cpu_tokens.react_linear(x, m_scale, m_bias, words, scale, bias, kind, groups, shift_in,
                            slope, shift_out, post_scale, post_bias, residual, folded)
    np.testing.assert_array_equal(folded, residual + (out * post_scale + post_bias))


@pytest.mark.parametrize("sizes", [[(1, 3), (3, 1), (1, 5), (5, 1)], [(3, 3), (1, 1)],
                                   [(5, 3)]])
def test_token_multipool_equals_the_twins_ops_bit_for_bit(sizes: list[tuple[int, int]]) -> None:
    """``base + sum_p (avgpool_p(x) * scale_p + bias_p)`` in one pass, against the NumPy
    twin's own op runners chained in the graph's order: equal bit for bit."""
    from proxcompress.kernels.model import OPS, _Node

    n, (gh, gw), c = 3, (6, 5), 24
    x, base = _f32((n, gh * gw, c)), _f32((n, gh * gw, c))
    scale, bias = _f32((len(sizes), c)), _f32((len(sizes), c))
    want = None
    for p, (kh, kw) in enumerate(sizes):
        pool = OPS["token_avgpool"].build(_Node({"name": "pool", "op": "token_avgpool",
                                                 "inputs": ["x"], "attrs": {
                                                     "grid": [gh, gw], "kernel_size": [kh, kw],
                                                     "stride": [1, 1],
                                                     "padding": [kh // 2, kw // 2]}}, {}, 0),
                                          "numpy", lambda a: a)
        term = pool(x) * scale[p] + bias[p]
        want = term if want is None else want + term
    kh, kw = (np.array(v, np.int64) for v in zip(*sizes, strict=True))
    out = np.empty_like(x)
    cpu_tokens.token_multipool(x, base, gh, gw, kh, kw, kh // 2, kw // 2, scale, bias, out)
    np.testing.assert_array_equal(out, base + want)


@pytest.mark.parametrize(("heads", "dh", "t", "s"), [(1, 16, 20, 9), (2, 16, 12, 70),
                                                       (2, 70, 5, 6)])
def test_binary_attention_equals_its_numpy_formula(heads: int, dh: int, t: int, s: int) -> None:
    n, c = 3, heads * dh
    q, k, v = _f32((n, t, c)), _f32((n, s, c)), _f32((n, s, c))
    q[:, :, ::7] = 0  # sign(0) = 0 in scores and values
    v[:, ::4, ::3] = 0
    scale, alpha = np.float32(dh ** -0.5), np.float32(0.5 / s)
    out = np.empty((n, t, c), np.float32)
    none, nothing = np.empty(0, np.float32), np.empty(0, np.int64)
    cpu_tokens.binary_attention(q, k, v, heads, _score_table(dh, np.float32(1), scale), alpha,
                                np.float32(1), none, none, nothing, nothing, 1, none, none, none,
                                out)

    def split(a: np.ndarray) -> np.ndarray:
        return np.sign(a).reshape(a.shape[0], a.shape[1], heads, dh).transpose(0, 2, 1, 3)

    scores = (split(q) @ split(k).transpose(0, 1, 3, 2)) * scale
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True, dtype=np.float32)
    kept = alpha * np.round(np.clip(p / alpha, 0, 1))
    assert 0 < (kept > 0).mean() < 1  # some keys kept, some dropped
    ref = (kept.astype(np.float64) @ split(v)).transpose(0, 2, 1, 3).reshape(n, t, c)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_binary_attention_epilogue_is_the_twins_order_bit_for_bit() -> None:
    """The attention's epilogue (BatchNorm, residual q and k, v upsampled from a coarser
    grid, RPReLU), against the same operations in NumPy on the attention's plain output."""
    n, heads, dh, (gh, gw), f = 2, 2, 16, (6, 4), 2
    c, t, s = heads * dh, gh * gw, (gh // f) * (gw // f)
    q, k, v = _f32((n, t, c)), _f32((n, s, c)), _f32((n, s, c))
    table = _score_table(dh, np.float32(1), np.float32(dh ** -0.5))
    none, nothing = np.empty(0, np.float32), np.empty(0, np.int64)
    args = (q, k, v, heads, table, np.float32(0.5 / s), np.float32(1))
    plain = np.empty((n, t, c), np.float32)
    cpu_tokens.binary_attention(*args, none, none, nothing, nothing, 1, none, none, none, plain)
    a, b, shift_in, slope, shift_out = (_f32(c) for _ in range(5))
    kinds, factors = np.array([0, 1, 2], np.int64), np.array([1, f, f], np.int64)
    k_map = k.reshape(n, gh // f, gw // f, c).transpose(0, 3, 1, 2)
    v_map = v.reshape(n, gh // f, gw // f, c).transpose(0, 3, 1, 2)

    def up(m: np.ndarray) -> np.ndarray:
        return m.repeat(f, axis=2).repeat(f, axis=3).transpose(0, 2, 3, 1).reshape(n, t, c)

    y = plain * a
    y += b
    y = ((y + q) + up(k_map)) + up(v_map)
    z = y + shift_in  # the twin's rprelu
    want = (np.maximum(z, 0) - np.maximum(-z, 0) * slope) + shift_out
    out = np.empty_like(plain)
    cpu_tokens.binary_attention(*args, a, b, kinds, factors, gw, shift_in, slope, shift_out, out)
    np.testing.assert_array_equal(out, want)


def test_binary_attention_memo_of_repeated_query_signs_is_bit_exact() -> None:
    """Queries sharing a head's sign pattern (most first-stage BinaryViT queries) take the
    per-image memo: the output equals, bit for bit, each query attended alone (one token per
    call, where no pattern repeats), for every head, image and epilogue-free row."""
    n, heads, dh, t, s = 3, 2, 8, 150, 37
    c = heads * dh
    patterns = np.sign(_f32((n, 5, c)))
    patterns[:, 0, ::3] = 0
    rows = np.random.default_rng(7).integers(0, 5, t)
    magnitudes = np.abs(_f32((n, t, c))) + np.float32(0.1)
    q = np.ascontiguousarray(patterns[:, rows] * magnitudes, np.float32)
    k, v = _f32((n, s, c)), _f32((n, s, c))
    table = _score_table(dh, np.float32(1), np.float32(dh ** -0.5))
    none, nothing = np.empty(0, np.float32), np.empty(0, np.int64)
    args = (heads, table, np.float32(0.5 / s), np.float32(1), none, none, nothing, nothing, 1,
            none, none, none)
    out = np.empty((n, t, c), np.float32)
    cpu_tokens.binary_attention(q, k, v, *args, out)
    for r in range(t):
        alone = np.empty((n, 1, c), np.float32)
        cpu_tokens.binary_attention(np.ascontiguousarray(q[:, r:r + 1]), k, v, *args, alone)
        np.testing.assert_array_equal(out[:, r:r + 1], alone)
    assert len(np.unique(out[0], axis=0)) > 1  # the patterns attend differently


def test_vit_case_builds_from_the_results_config_and_predicts_as_torch(tmp_path: Path) -> None:
    """The benchmark's ``vit-binary`` case is the model of configs/results/vit-binaryvit.yaml
    (the trainer's builder), and its export on the kernels (fused) predicts as torch eval and
    as the unfused NumPy twin on embedded test images."""
    from proxcompress.training.config import load_config
    from proxcompress.training.data import load_embedded
    from proxcompress.training.exporter import export
    from proxcompress.training.layers import BinaryLinear, hard_quantization
    from proxcompress.training.trainer import build_run_model

    bench = bench_kernels()
    path = bench.CONFIG_CASES["vit-binary"]
    assert path == ROOT / "configs" / "results" / "vit-binaryvit.yaml" and path.is_file()
    assert "vit-binary" in bench.MODEL_CASES
    cfg = load_config(path)
    assert cfg.model.name == "vit" and cfg.model.vit.binary and cfg.quant.activations == "bnn"
    (stage,) = cfg.model.vit.stages
    assert (cfg.model.vit.patch, stage.dim, stage.depth, stage.heads) == (4, 32, 3, 2)
    model = bench._model_case("vit-binary")
    run_model = build_run_model(cfg, 10, seed=0)  # what `proxcompress train` trains
    assert sum(isinstance(m, BinaryLinear) for m in model.modules()) == 19
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in run_model.state_dict().items()}
    _, test = load_embedded()
    x = test.x[:48]
    export(model, tmp_path, example=x[:16])
    with torch.no_grad(), hard_quantization(model):
        ref = model(x).numpy()
    fused = load(tmp_path, backend="numba")
    # every ReAct linear (with LayerScale / shift and residual where they follow), the three
    # attentions (with BatchNorm, residuals, upsampling, RPReLU) and multi-poolings fused
    assert len(fused.fused) == 19 + 3 + 3
    assert sum(len(absorbed) for absorbed in fused.fused.values()) == \
        len(fused.manifest["nodes"]) - len(fused.steps)  # each node runs once, in or out
    twin_model = load(tmp_path, backend="numpy")
    xn = np.ascontiguousarray(x.numpy())
    values = {twin_model.input_name: xn}
    for name, inputs, fn in twin_model.steps:
        values[name] = fn(*(values[i] for i in inputs))
    for name, inputs, fn in fused.steps:  # each group fed the twin's inputs: the twin's value
        if name in fused.fused:
            step = fn(*(values[i] for i in inputs))
            if "attention_context" in {n["op"] for n in fused.manifest["nodes"]
                                       if n["name"] in fused.fused[name]}:
                np.testing.assert_allclose(step, values[name], rtol=1e-5, atol=1e-5 * float(
                    np.abs(values[name]).max()))  # the softmax's rounding (see above)
            else:
                np.testing.assert_array_equal(step, values[name])
    got = fused(xn)
    twin = values[twin_model.output_name]
    assert (got.argmax(1) == ref.argmax(1)).all()
    for other in (ref, twin):
        np.testing.assert_allclose(got, other, rtol=1e-4, atol=1e-4 * float(np.abs(other).max()))


@pytest.mark.parametrize("seed", range(20))
def test_last_uses_free_each_value_after_its_last_reader(seed: int) -> None:
    """``ExportedModel`` drops each intermediate value right after its last reader (the
    allocator then reuses warm memory): on random graphs, brute force over the steps."""
    from proxcompress.kernels.model import _last_uses

    rng = np.random.default_rng(seed)
    names = ["x"] + [f"n{i}" for i in range(int(rng.integers(1, 30)))]
    steps = [(name, [names[int(j)] for j in rng.integers(0, i + 1, int(rng.integers(1, 4)))],
              None) for i, name in enumerate(names[1:])]
    output = names[-1] if seed % 2 else names[int(rng.integers(1, len(names)))]
    dead = _last_uses(steps, "x", output)  # type: ignore[arg-type]
    freed = [name for d in dead for name in d]
    assert len(freed) == len(set(freed))
    read = {i for _, inputs, _ in steps for i in inputs}
    assert set(freed) == read - {"x", output}
    for index, d in enumerate(dead):
        for name in d:
            assert name in steps[index][1]
            assert all(name not in inputs for _, inputs, _ in steps[index + 1:])


def test_flag_packing_and_pairwise_total_match_numpy() -> None:
    """The row kernels' helpers: 0/1 bytes packed by multiplies equal NumPy's little-endian
    bit packing (every length up to three words), and the attention's softmax denominator is
    NumPy's own float32 pairwise sum, bit for bit, for rows of up to 128 keys."""
    pack, total = cpu_tokens._pack_flags, cpu_tokens._pairwise_total  # jitted, callable here
    for length in range(1, 193):
        flags = np.zeros((length + 7) // 8 * 8, np.uint8)
        flags[:length] = RNG.random(length) < 0.5
        words = np.empty((length + 63) // 64, np.uint64)
        pack(flags.view(np.uint64), words)
        padded = np.zeros(words.shape[0] * 64, np.uint8)
        padded[:length] = flags[:length]
        assert (words == np.packbits(padded, bitorder="little").view(np.uint64)).all()
    for n in range(1, 129):
        e = (RNG.random(33) * RNG.choice([1e-3, 1.0, 1e3])).astype(np.float32)
        score = RNG.integers(-16, 17, n)
        assert total(e, score, 16) == e[score + 16].sum(dtype=np.float32)


@pytest.mark.parametrize("c", [1, 5, 8, 16, 31, 32, 100, 128, 129, 200, 384, 1000])
def test_layernorm_equals_the_numpy_twin_bit_for_bit(c: int) -> None:
    """The numba layer norm sums its means in NumPy's pairwise order (eight running sums up
    to 128 channels): every output equals the twin's ``mean`` / ``var`` / divide / affine bit
    for bit for widths below 8 up to 128; wider rows within float rounding."""
    x = (_f32((64, c)) * 3 + 1).astype(np.float32)
    x[0] = 1.0  # a constant row: variance 0
    w, b, eps = _f32(c), _f32(c), np.float32(1e-5)
    out = np.empty_like(x)
    cpu_tokens.layernorm(x, w, b, eps, out)
    mean = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True, dtype=np.float32)
    want = centred / np.sqrt(var + eps) * w + b
    if c <= 128:
        np.testing.assert_array_equal(out, want)
    else:  # 128-wide blocks added in order; NumPy halves recursively
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("kernel", "stride", "hw"), [
    ((2, 2), (2, 2), (14, 14)), ((3, 2), (1, 2), (7, 9)), ((1, 1), (1, 1), (3, 4))])
def test_parallel_layout_and_pooling_ops_equal_the_numpy_twin(
        kernel: tuple[int, int], stride: tuple[int, int], hw: tuple[int, int]) -> None:
    """The numba backend's token mean, token average pool, to_tokens / to_map, position
    table and channels-first batch norm equal the NumPy twin's ops bit for bit (signed zeros
    included), serially and split over the threads."""
    from proxcompress.kernels import cpu
    from proxcompress.kernels.model import OPS, _Node

    n, c = 5, 6
    h, w = hw
    x = _f32((n, c, h, w))
    x[0, 0, :2, :2] = -0.0
    tokens = _f32((n, h * w, c))
    tokens[0, :, 0] = -0.0
    specs = [
        ("token_avgpool", {"grid": [h, w], "kernel_size": list(kernel),
                           "stride": list(stride), "padding": [kernel[0] // 2, 0]}, {},
         tokens),
        ("token_mean", {}, {}, tokens),
        ("to_tokens", {}, {}, x),
        ("to_map", {"grid": [h, w]}, {}, tokens),
        ("add_table", {}, {"table": _f32((h * w, c))}, tokens),
        ("batchnorm", {"eps": 1e-5}, {"running_mean": _f32(c), "running_var": _f32(c) ** 2,
                                      "weight": _f32(c), "bias": _f32(c)}, x),
    ]
    for op, attrs, tensors, arg in specs:
        node = {"name": "n", "op": op, "inputs": ["x"], "attrs": attrs,
                "tensors": {key: f"n.{key}" for key in tensors}}
        tensors = {f"n.{key}": value for key, value in tensors.items()}
        want = OPS[op].build(_Node(node, tensors, 0), "numpy", lambda a: a)(arg)
        got = OPS[op].build(_Node(node, tensors, 0), "numba", lambda a: a)
        for work in (cpu.SERIAL_WORK, 0):
            previous = cpu.SERIAL_WORK
            cpu.SERIAL_WORK = work  # 0: every launch parallel
            try:
                value = got(arg)
            finally:
                cpu.SERIAL_WORK = previous
            assert value.shape == want.shape and value.dtype == np.float32, op
            np.testing.assert_array_equal(value.view(np.uint32), want.view(np.uint32), op)
