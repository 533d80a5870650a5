"""The CUDA probes of ``benchmarks/kernels.py`` compile with NVRTC (they run only on a device, so
a compile error would cost device time; here it costs none)."""

from __future__ import annotations

from types import ModuleType

import pytest
from bench_module import ROOT, bench_kernels
from nvrtc_ptx import NVRTC, extern_kernels, nvrtc_ptx


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return bench_kernels()


@pytest.mark.skipif(NVRTC is None, reason="CuPy's NVRTC not available")
def test_benchmark_probes_compile(bench: ModuleType) -> None:
    binary = (ROOT / "kernels" / "cuda" / "binary.cu").read_text()
    for name, source in (("read", bench._READ_SRC), ("gemv_loads", binary + bench._GEMV_LOADS_SRC)):
        ptx = nvrtc_ptx(source, f"{name}.cu", "compute_90")
        assert all(f".entry {k}(" in ptx for k in extern_kernels(source))
    assert "gemv_loads_only" in extern_kernels(bench._GEMV_LOADS_SRC)
    # the GEMV probe has the GEMV's loads: as many 16-byte global loads as binary_gemv_tc
    ptx = nvrtc_ptx(binary + bench._GEMV_LOADS_SRC, "gemv_loads.cu", "compute_90")

    def body(name: str) -> str:
        start = ptx.index(f".entry {name}(")
        return ptx[start : ptx.index("\n}\n", start)]

    probe, gemv = body("gemv_loads_only"), body("binary_gemv_tc")
    for load in ("ld.global.nc.L1::no_allocate.L2::256B.v4.u32", "ld.global.nc.v4.u32"):
        assert probe.count(load) == gemv.count(load) > 0, load
    assert "mma.sync" not in probe and "popc" not in probe

