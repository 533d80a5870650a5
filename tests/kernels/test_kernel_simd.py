"""The binary GEMM's per-CPU inner loops (kernels.simd): the path table, the panel layout, the
popcount probe, and every x86 path compiled in its own process (NUMBA_CPU_NAME / FEATURES)
against the NumPy twin, with the instructions each must use."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from proxcompress.kernels import binary_matmul, cpu, pack_signs, simd


def test_detected_path_is_the_first_the_target_supports() -> None:
    _, enabled = simd.target_features()
    chosen = simd.detect()
    assert set(chosen.requires) <= enabled
    for path in simd.PATHS.values():  # every path listed before it needs a missing feature
        if path == chosen:
            break
        assert not set(path.requires) <= enabled
    assert cpu.PATH == chosen and cpu.TILE_COLS == chosen.lanes * chosen.cols


def test_forced_env_names_the_path_features() -> None:
    for name, path in simd.PATHS.items():
        env = simd.forced_env(name)
        assert env["NUMBA_CPU_NAME"] == simd.FORCE_CPU[name]
        assert {f[1:] for f in env["NUMBA_CPU_FEATURES"].split(",") if f} == set(path.requires)


@pytest.mark.parametrize("n", [1, cpu.TILE_COLS - 1, cpu.TILE_COLS, 2 * cpu.TILE_COLS + 3])
def test_panels_are_word_major_tiles_padded_with_zero(n: int) -> None:
    rng = np.random.default_rng(n)
    b = rng.integers(0, 2**63, (n, 5), dtype=np.uint64)
    panels = cpu.panels_for(b)
    tiles = -(-n // cpu.TILE_COLS)
    padded = np.zeros((tiles * cpu.TILE_COLS, 5), np.uint64)
    padded[:n] = b
    want = padded.reshape(tiles, cpu.TILE_COLS, 5).transpose(0, 2, 1).reshape(-1, cpu.TILE_COLS)
    np.testing.assert_array_equal(panels, want)


def test_popcount_probe_equals_its_python_twin() -> None:
    iters, out = 5, np.zeros(2, np.uint64)
    cpu.popcount_probe(iters, out)
    mask = (1 << 64) - 1
    total = 0
    for c in range(simd.PROBE_CHAINS):
        for lane in range(cpu.PATH.lanes):
            v = iters * ((0x9E3779B97F4A7C15 * (c + 1 + lane)) % (1 << 63)) & mask
            for _ in range(iters):
                v = bin(v).count("1")
            total += v
    assert out.tolist() == [total & mask] * 2


@pytest.mark.parametrize("m", [0, 1, 3, 4, 5, 9])
def test_ragged_tiles_equal_the_twin(m: int) -> None:
    rng = np.random.default_rng(m)
    for n in (1, cpu.TILE_COLS - 1, cpu.TILE_COLS + 1):
        for k in (1, 64 * 16, 64 * 16 + 65, 64 * 33 - 1):
            aw = pack_signs(rng.standard_normal((m, k)))
            bw = pack_signs(rng.standard_normal((n, k)))
            np.testing.assert_array_equal(binary_matmul(aw, bw, k, backend="numba"),
                                          binary_matmul(aw, bw, k, backend="numpy"))


def _panels(b: np.ndarray, tile_cols: int) -> np.ndarray:
    """The panel layout of ``cpu.pack_panels`` for any tile width, by reshaping."""
    n, words = b.shape
    tiles = -(-n // tile_cols)
    padded = np.zeros((tiles * tile_cols, words), np.uint64)
    padded[:n] = b
    return np.ascontiguousarray(
        padded.reshape(tiles, tile_cols, words).transpose(0, 2, 1).reshape(-1, tile_cols))


@pytest.mark.parametrize("form", [
    {"lanes": 4, "rows": 3, "cols": 2, "shared_loop": False, "byte_lut": True, "peel_first": True},
    {"lanes": 2, "rows": 2, "cols": 1, "shared_loop": False, "byte_lut": True},
    {"lanes": 4, "rows": 2, "cols": 2, "peel_first": True},
    {"lanes": 4, "rows": 1, "cols": 1, "byte_lut": True},
])
def test_tile_shapes_equal_the_twin(form: dict[str, Any]) -> None:
    """Harley-Seal tiles of several rows and column vectors, one loop per (row, column
    vector) pair (``shared_loop=False``, the AVX2 path's form) or one loop for the whole tile,
    the last counts by ``llvm.ctpop`` or by weighted nibble tables (``byte_lut``, x86), the
    first block peeled or not, compiled for this CPU: ragged rows, columns and words (no
    block, one, two and a tail) against the NumPy twin."""
    from numba import njit

    if form.get("byte_lut") and not {"ssse3", "avx2"} <= _host_features():
        pytest.skip("the byte tables need x86 pshufb (SSSE3 / AVX2)")
    path = simd.Path("test", count="harley-seal", requires=(), **form)
    rows = path.rows
    tile, tile_row, tc = simd.make_tile(path, rows), simd.make_tile(path, 1), path.tile_cols

    @njit
    def gemm(a, panels, k, out):  # type: ignore[no-untyped-def]
        m_full = out.shape[0] // rows
        for j in range(0, out.shape[1], tc):
            for t in range(m_full):
                tile(a, panels, k, out, t * rows, j)
            for i in range(m_full * rows, out.shape[0]):
                tile_row(a, panels, k, out, i, j)

    rng = np.random.default_rng(path.lanes * rows * path.cols)
    for m, n, k in ((rows * 2 + 1, tc + 3, 64 * 33 - 5), (rows + 1, 1, 64), (rows, 2 * tc, 1),
                    (rows, tc - 1, 64 * 16)):
        aw = pack_signs(rng.standard_normal((m, k)))
        bw = pack_signs(rng.standard_normal((n, k)))
        out = np.full((m, n), -7, np.int32)
        gemm(aw, _panels(bw, tc), k, out)
        np.testing.assert_array_equal(out, binary_matmul(aw, bw, k, backend="numpy"))


_PATH_SCRIPT = textwrap.dedent("""
    import json, re, sys
    import numpy as np
    from proxcompress.kernels import binary_matmul, cpu, pack_signs
    rng = np.random.default_rng(0)
    bad = []
    for work in (0, 2**62):  # the parallel kernel, then its serial twin (cpu.launch)
        cpu.SERIAL_WORK = work
        for m in (1, 2, 3, 5, 9):
            for n in (1, 7, 33, 70):
                for k in (1, 63, 64, 65, 1000, 64 * 16 + 5, 64 * 33):
                    aw = pack_signs(rng.standard_normal((m, k)))
                    bw = pack_signs(rng.standard_normal((n, k)))
                    if not np.array_equal(binary_matmul(aw, bw, k, backend="numba"),
                                          binary_matmul(aw, bw, k, backend="numpy")):
                        bad.append([m, n, k, work])
    ops = {}
    for kind, kernel in (("parallel", cpu.binary_gemm), ("serial", cpu.serial(cpu.binary_gemm))):
        asm = "\\n".join(kernel.inspect_asm().values())
        ops[kind] = {op: len(re.findall(r"\\t" + op + r"\\s", asm))
                     for op in ("vpopcntq", "vpternlogq", "vpshufb")}
        ops[kind]["zmm"] = asm.count("zmm")
    print(json.dumps({"path": cpu.PATH.name, "bad": bad, "ops": ops}))
""")


def _host_features() -> set[str]:
    import llvmlite.binding as ll

    return {f for f, on in ll.get_host_cpu_features().items() if on}


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 paths")
@pytest.mark.parametrize("name", list(simd.PATHS))
def test_each_x86_path_compiled_apart_equals_the_twin(name: str, tmp_path: Path) -> None:
    path = simd.PATHS[name]
    if not set(path.requires) <= _host_features():
        pytest.skip(f"this CPU lacks {path.requires}")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), **simd.forced_env(name))
    proc = subprocess.run([sys.executable, "-c", _PATH_SCRIPT], env=env, capture_output=True,
                          text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["path"] == name and got["bad"] == []
    for ops in got["ops"].values():  # the parallel kernel and its serial twin (cpu.launch)
        if name == "avx512-vpopcntdq":  # Intel tuning (sapphirerapids) must not fall back to ymm
            assert ops["vpopcntq"] > 0 and ops["zmm"] > 0
        elif name == "avx512":
            assert ops["vpternlogq"] > 0 and ops["vpopcntq"] == 0 and ops["zmm"] > 0
        else:
            assert ops["vpopcntq"] == 0 and ops["zmm"] == 0 and ops["vpternlogq"] == 0


_MLP_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import torch
    from proxcompress.kernels import cpu, first_layer, load
    from proxcompress.training.data import FMNIST_GRID, load_embedded
    from proxcompress.training.exporter import export
    from proxcompress.training.models import build_model, calibrate_batchnorm
    from proxcompress.training.quantize import QuantRecipe, quantize_model
    model = build_model("mlp", hidden=(96, 80), activation="hardtanh", seed=0)
    model = quantize_model(model, QuantRecipe("bnn", "bnn", keep_first=False))
    model = calibrate_batchnorm(model, (1, 28, 28), samples=64)
    _, test = load_embedded()
    x = np.ascontiguousarray(test.x[:37].numpy())
    export(model, sys.argv[1], example=torch.from_numpy(x[:16]), input_grid=FMNIST_GRID)
    fast, twin = load(sys.argv[1], backend="numba"), load(sys.argv[1], backend="numpy")
    want = twin(x)
    layers = [fn.layer for _, _, fn in fast.steps if hasattr(fn, "layer")]
    bad = []
    for work in (0, 2**62):  # parallel kernels, then their serial twins (cpu.launch)
        cpu.SERIAL_WORK = work
        got = fast(x)
        if not ((got.argmax(1) == want.argmax(1)).all()
                and np.allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())):
            bad.append(work)
        if layers and layers[0].last.get("entries") != 37 * 96:
            bad.append(["first layer", layers[0].last])
    print(json.dumps({"available": first_layer.available(), "layers": len(layers),
                      "fused": sorted(fast.fused), "bad": bad}))
""")


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 paths")
@pytest.mark.parametrize("name", list(simd.PATHS))
def test_binary_mlp_on_each_x86_path_equals_the_twin(name: str, tmp_path: Path) -> None:
    """The exported binary MLP compiled for each path's CPU (the certified int8 first layer
    where that CPU has AVX-512 VNNI, Intel's tuning included; the float first layer elsewhere;
    the fused tail everywhere), parallel and serial: the NumPy twin's predictions and logits."""
    path = simd.PATHS[name]
    if not set(path.requires) <= _host_features():
        pytest.skip(f"this CPU lacks {path.requires}")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), **simd.forced_env(name))
    vnni = name == "avx512-vpopcntdq" and {"avx512bw", "avx512vnni"} <= _host_features()
    if vnni:  # Intel's tuning (sapphirerapids) with the first layer's features
        env["NUMBA_CPU_FEATURES"] += ",+avx512bw,+avx512vnni"
    proc = subprocess.run([sys.executable, "-c", _MLP_SCRIPT, str(tmp_path / "mlp")], env=env,
                          capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["bad"] == [] and got["fused"] == ["head"]
    assert got["available"] == vnni and got["layers"] == int(vnni)


@pytest.mark.parametrize("value", ["avx3", ",", "avx2,neon"])
def test_paths_benchmark_rejects_unknown_paths(value: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``benchmarks/kernels.py paths --paths``: exit 2 naming the flag and every accepted path
    (the native choice and each ``simd.PATHS`` entry), before any work."""
    from bench_module import bench_kernels

    bench = bench_kernels()
    assert bench.path_names() == ["native", *simd.PATHS]
    with pytest.raises(SystemExit) as exc:
        bench.main(["paths", "--paths", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--paths" in err and "accepted: native, " + ", ".join(simd.PATHS) in err
