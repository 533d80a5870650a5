"""Bad input to the GEMM entry points: each raises InvalidInputError naming the field."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import binary_matmul, euclid_matmul, shift_matmul

W2 = np.zeros((3, 2), np.uint64)
X = np.zeros((2, 5), np.float32)
S = np.ones((4, 5), np.int8)
E = np.zeros((4, 5), np.int8)

CASES = [
    (lambda: binary_matmul(W2, np.zeros((3, 3), np.uint64), 100), "b_words"),
    (lambda: binary_matmul(W2, W2, 129), "k"),  # more than 2 words hold
    (lambda: binary_matmul(W2, W2, 64), "k"),  # fits in 1 word: W does not match
    (lambda: binary_matmul(W2, W2, 100.0), "k"),
    (lambda: binary_matmul(W2.astype(np.int64), W2, 100), "a_words"),
    (lambda: binary_matmul(W2[0], W2, 100), "a_words"),
    (
        lambda: binary_matmul(
            np.asfortranarray(np.zeros((3, 4), np.uint64)), np.zeros((3, 4), np.uint64), 256
        ),
        "a_words",
    ),
    (
        lambda: binary_matmul(np.full((1, 1), 1 << 50, np.uint64), np.zeros((3, 1), np.uint64), 10),
        "a_words",
    ),
    (lambda: binary_matmul(W2, W2, 100, backend="gpu"), "backend"),  # type: ignore[arg-type]
    (lambda: binary_matmul(W2, W2, 100, backend="cupy"), "backend"),
    (lambda: shift_matmul(X.astype(np.float64), S, E), "x"),
    (lambda: shift_matmul(X, S.astype(np.int16), E), "sign"),
    (lambda: shift_matmul(X, S, E[:, :4]), "exponent"),
    (lambda: shift_matmul(X, S[:, :4], E[:, :4]), "sign"),
    (lambda: shift_matmul(X, S * 2, E), "sign"),
    (lambda: shift_matmul(X, S * 2, E, backend="numpy"), "sign"),
    (lambda: euclid_matmul(X, X[:, :4]), "w"),
    (lambda: euclid_matmul(X, X, method="fast"), "method"),  # type: ignore[arg-type]
    (lambda: euclid_matmul(X.T, X.T), "x"),
]


@pytest.mark.parametrize(("call", "field"), CASES)
def test_rejects_with_field(call, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as info:
        call()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_import_is_lazy() -> None:
    """Importing the package loads neither numba nor cupy (backends load on first use)."""
    code = (
        "import sys, proxcompress.kernels as k; "
        "print('numba' in sys.modules, 'cupy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
