"""Exact integer multiplication-free kernels (kernels.intmul): numba equals the NumPy twin bit for
bit, the twin equals the float definition, bounds and bad input, and no multiply in the shift
kernel's machine code."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import intmul

SHAPES = list(itertools.product((1, 3, 6), (1, 4, 7), (1, 31, 64, 1000)))


def _case(m: int, n: int, k: int, zero: bool = True) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng([m, n, k])
    x = rng.integers(-127, 128, (m, k), dtype=np.int8)
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    sign = rng.choice(np.array([-1, 0, 1] if zero else [-1, 1], np.int8), (n, k))
    exponent = rng.integers(-7, 1, (n, k)).astype(np.int8)
    return x, w, sign, exponent


@pytest.mark.parametrize(("m", "n", "k"), SHAPES)
def test_shift_int_numba_equals_twin_equals_float_definition(m: int, n: int, k: int) -> None:
    x, _, sign, exponent = _case(m, n, k)
    twin = intmul.shift_matmul_int(x, sign, exponent, -7, backend="numpy")
    fast = intmul.shift_matmul_int(x, sign, exponent, -7)
    assert fast.dtype == twin.dtype == np.int32
    np.testing.assert_array_equal(fast, twin)
    exact = x.astype(np.float64) @ (sign * 2.0 ** exponent.astype(np.float64)).T
    np.testing.assert_array_equal(twin.astype(np.float64) * 2.0**-7, exact)


@pytest.mark.parametrize(("m", "n", "k"), SHAPES)
def test_distance_int_numba_equals_twin_equals_definition(m: int, n: int, k: int) -> None:
    x, w, _, _ = _case(m, n, k)
    d = x.astype(np.int64)[:, None, :] - w.astype(np.int64)[None]
    for fn, want in ((intmul.euclid_matmul_int, -(d * d).sum(-1)),
                     (intmul.l1_matmul_int, -np.abs(d).sum(-1))):
        np.testing.assert_array_equal(fn(x, w, backend="numpy"), want)
        np.testing.assert_array_equal(fn(x, w), want)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 200), st.integers(-20, 20),
       st.integers(0, 2**32 - 1))
def test_shift_int_extremes_any_emin(m: int, n: int, k: int, emin: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-127, -1, 0, 1, 127], np.int8), (m, k))
    sign = rng.choice(np.array([-1, 0, 1], np.int8), (n, k))
    top = min(emin + 7, 127)
    exponent = rng.integers(emin, top + 1, (n, k)).astype(np.int8)
    np.testing.assert_array_equal(intmul.shift_matmul_int(x, sign, exponent, emin),
                                  intmul.shift_matmul_int(x, sign, exponent, emin, "numpy"))


def test_bounds_and_bad_input_name_the_argument() -> None:
    x, w, sign, exponent = _case(2, 3, 8)
    sign[0, 0], exponent[0, 0] = 1, -7
    with pytest.raises(InvalidInputError, match="exponent"):
        intmul.shift_matmul_int(x, sign, exponent, -6)  # -7 < emin on a nonzero weight
    big = np.full((1, 2**17), 127, np.int8)
    ones = np.ones((1, 2**17), np.int8)
    with pytest.raises(InvalidInputError, match="overflow"):
        intmul.shift_matmul_int(big, ones, np.full_like(ones, 8), 0)
    with pytest.raises(InvalidInputError, match="overflow"):
        intmul.euclid_matmul_int(np.zeros((1, 33100), np.int8), np.zeros((1, 33100), np.int8))
    with pytest.raises(InvalidInputError, match="sign"):
        intmul.shift_matmul_int(x, sign * 2, exponent, -7)
    with pytest.raises(InvalidInputError, match="x"):
        intmul.euclid_matmul_int(x.astype(np.int16), w)
    with pytest.raises(InvalidInputError, match="w"):
        intmul.l1_matmul_int(x, w[:, :4])
    with pytest.raises(InvalidInputError, match="backend"):
        intmul.l1_matmul_int(x, w, backend="cupy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="emin"):
        intmul.shift_matmul_int(x, sign, exponent, 1.5)  # type: ignore[arg-type]


def test_quantize_int8_round_trip_and_errors() -> None:
    x = np.array([[-2.0, -0.01, 0.0, 0.5, 2.0]], np.float32)
    q, scale = intmul.quantize_int8(x)
    assert q.dtype == np.int8 and scale == pytest.approx(2 / 127)
    np.testing.assert_array_equal(q, [[-127, -1, 0, 32, 127]])
    assert np.abs(q * scale - x).max() <= scale / 2 + 1e-7
    assert intmul.quantize_int8(np.zeros((2, 2)))[1] == 1.0
    with pytest.raises(InvalidInputError, match="x"):
        intmul.quantize_int8(np.array([np.nan]))
    with pytest.raises(InvalidInputError, match="scale"):
        intmul.quantize_int8(x, scale=0.0)


def test_shift_kernel_loop_has_no_multiply(tmp_path: Path) -> None:
    script = (
        "import numpy as np\n"
        "from proxcompress.kernels import intmul, cpu_int\n"
        "x = np.zeros((2, 64), np.int8); s = np.ones((5, 64), np.int8)\n"
        "intmul.shift_matmul_int(x, s, np.zeros_like(s), -7)\n"
        "print('\\n'.join(cpu_int.shift_gemm_int.inspect_asm().values()))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))  # fresh compile: asm is inspectable
    asm = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout
    lines = asm.splitlines()
    shifts = [i for i, line in enumerate(lines) if re.search(r"\tv?psllv?d\s|\tshl", line)]
    assert shifts, "no shift instruction"
    # the loop containing the vector shift: from its label to the backward branch
    start = max(i for i in range(shifts[0]) if re.match(r"^\.LBB\S+:$", lines[i]))
    end = next(i for i in range(shifts[0], len(lines)) if re.match(r"\s+j\w+\s+\.LBB", lines[i]))
    body = "\n".join(lines[start:end + 1])
    assert not re.search(r"\t(v?pmul\w*|imul\w*|mul\w*|vpmadd\w*|vpdp\w*)\s", body), body
