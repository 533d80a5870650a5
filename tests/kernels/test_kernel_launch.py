"""GPU launch arithmetic on the CPU, and the CUDA sources compiled by nvcc and by NVRTC, the
compiler CuPy uses on the device (no GPU needed for either)."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from nvrtc_ptx import NVRTC, extern_kernels, nvrtc_ptx

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import launch

CUDA = Path(str(resources.files("proxcompress.kernels").joinpath("cuda")))
SOURCES = sorted(CUDA.glob("*.cu"))


def _defines(path: Path) -> dict[str, int]:
    """Numeric ``#define`` tile constants (``PC_*`` are compile-time feature switches)."""
    found = re.findall(r"^#define (\w+) (\d+)\b", path.read_text(), re.MULTILINE)
    return {name: int(value) for name, value in found if not name.startswith("PC_")}


def test_sources_are_package_data() -> None:
    assert {p.name for p in SOURCES} == {"binary.cu", "float.cu"}


def test_every_planned_kernel_is_defined() -> None:
    """Each kernel a plan can launch is an ``extern "C"`` kernel of ``binary.cu``."""
    defined = set(extern_kernels((CUDA / "binary.cu").read_text()))
    planned = {spec.kernel for algo in launch.BINARY_ALGOS for m in (4, 16, 64)
               if not (m > launch.GEMV_MAX_M and algo == "gemv")
               for spec in launch.binary_plan(m, 40, 3, 90, algo).launches}
    assert planned == {"binary_gemm_simt", "binary_gemm_tc_and", "binary_gemm_tc_xor",
                       "binary_gemv_tc", "row_popcount"}
    assert planned <= defined


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_tile_constants_match_sources(source: Path) -> None:
    defines = _defines(source)
    assert defines, "no #define constants found"
    for name, value in defines.items():
        assert getattr(launch, name) == value, name


def test_tc_shared_memory_fits_hopper_and_ampere() -> None:
    smem = launch.tc_shared_bytes()
    assert smem == 3 * 256 * 80 == 61440
    assert launch.DEFAULT_SMEM_LIMIT < smem <= 163 * 1024  # opt-in needed; fits sm_80 and sm_90
    assert launch.TC_ROW_BYTES % 16 == 0  # cp.async / ldmatrix rows are 16-byte aligned
    # conflict-free ldmatrix: 8 rows at the padded stride hit 8 distinct 4-bank groups
    banks = {(r * launch.TC_ROW_BYTES // 4) % 32 // 4 for r in range(8)}
    assert len(banks) == 8


@pytest.mark.parametrize("m", [1, 7, 16, 17, 129, 8192])
@pytest.mark.parametrize("n", [1, 7, 129, 8192])
@pytest.mark.parametrize("words", [1, 7, 8, 9, 16, 128])
def test_binary_plans_cover_the_output(m: int, n: int, words: int) -> None:
    for cc in (70, 80, 90):
        plan = launch.binary_plan(m, n, words, cc)
        gemm = plan.launches[-1]
        if cc < 80:
            assert plan.algo == "simt" and plan.words == words
            assert gemm.grid[0] * launch.SIMT_TILE >= n > (gemm.grid[0] - 1) * launch.SIMT_TILE
            assert gemm.grid[1] * launch.SIMT_TILE >= m > (gemm.grid[1] - 1) * launch.SIMT_TILE
            continue
        assert plan.words % 8 == 0 and words <= plan.words < words + 8
        if m <= 16:
            assert plan.algo == "gemv" and gemm.kernel == "binary_gemv_tc"
            rows = 8 * launch.GEMV_NTILES
            assert gemm.grid == (launch.cdiv(n, rows), 1, 1) and gemm.block == (256, 1, 1)
            assert gemm.shared_mem == 0
        else:
            assert plan.algo == "tc_and" and gemm.kernel == "binary_gemm_tc_and"
            assert [s.kernel for s in plan.launches] == ["row_popcount"] * 2 + [gemm.kernel]
            assert plan.launches[0].grid[0] * 8 >= m and plan.launches[1].grid[0] * 8 >= n
            assert gemm.grid[0] * launch.TC_BN >= n > (gemm.grid[0] - 1) * launch.TC_BN
            assert gemm.grid[1] * launch.TC_BM >= m > (gemm.grid[1] - 1) * launch.TC_BM
            assert gemm.shared_mem == launch.tc_shared_bytes()


def test_gemv_geometry() -> None:
    # one pass of 2 adjacent 64-byte chunks per warp covers 1024 bytes of K: K = 8192 in one go
    assert launch.GEMV_WARPS * 2 * 64 * 8 == 8192
    # 8192 rows: 512 blocks of 256 threads, 4 resident per SM (launch bounds: <= 64 registers),
    # so one wave on 132 SMs
    (spec,) = launch.binary_plan(16, 8192, 128, 90).launches
    assert spec.grid == (512, 1, 1) and 512 <= 132 * (8 // launch.GEMV_NTILES)
    # the cross-warp shares: 8 warps x 16 rows x (8 NTILES + 8) ints of static shared memory
    assert launch.GEMV_WARPS * 16 * (8 * launch.GEMV_NTILES + 8) * 4 <= launch.DEFAULT_SMEM_LIMIT


def test_binary_algo_choice_errors() -> None:
    assert launch.binary_plan(64, 64, 2, 90, "tc_xor").launches[0].kernel == "binary_gemm_tc_xor"
    assert launch.binary_plan(16, 100, 2, 90, "gemv").launches[0].kernel == "binary_gemv_tc"
    assert launch.binary_plan(64, 64, 2, 90, "simt").algo == "simt"
    for algo, m, cc in (("gemv", 17, 90), ("gemv_ones", 4, 90), ("tc_and", 64, 75),
                        ("fast", 4, 90)):
        with pytest.raises(InvalidInputError) as info:
            launch.binary_plan(m, 8, 2, cc, algo)
        assert info.value.field == "algo"


def test_float_launch_and_mma_count() -> None:
    spec = launch.float_gemm_launch("shift_gemm", 129, 65)
    assert spec.grid == (2, 3, 1) and spec.block == (256, 1, 1)
    assert launch.mma_count(8192, 8192, 128) == 512 * 1024 * 32
    assert launch.mma_count(1, 1, 1) == 1


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_cuda_sources_compile(source: Path, arch: str, tmp_path: Path) -> None:
    out = tmp_path / f"{source.stem}.ptx"
    proc = subprocess.run(
        ["nvcc", "-ptx", f"-arch={arch}", "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    ptx = out.read_text()
    if source.name == "binary.cu":
        assert "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc" in ptx
        assert "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in ptx
        assert "cp.async.cg.shared.global" in ptx
        assert "ld.global.nc.L1::no_allocate.L2::256B.v4.u32" in ptx



@pytest.mark.skipif(NVRTC is None, reason="CuPy's NVRTC not available")
@pytest.mark.parametrize("arch", ["compute_75", "compute_80", "compute_90"])
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_cuda_sources_compile_with_nvrtc(source: Path, arch: str) -> None:
    """What ``cupy.RawModule`` does on the device, minus the device: every ``extern "C"``
    kernel is in the PTX (below sm_80 the tensor-core kernels compile to a trap)."""
    text = source.read_text()
    ptx = nvrtc_ptx(text, source.name, arch)
    assert all(f".entry {name}(" in ptx for name in extern_kernels(text))
