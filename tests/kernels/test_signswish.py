"""kernels.signswish (numba) against the torch operations it replaces, bitwise where torch's
CPU kernels use fused multiply-adds (AVX2 / AVX-512 builds), to 2 ulp otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from proxcompress.kernels.signswish import signswish_pass


def _torch_twin(x: torch.Tensor, beta: float, alpha: torch.Tensor, sign_forward: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The eager body of training.fused (the reference's operations)."""
    u = x * beta
    s = torch.sigmoid(u)
    q = torch.addcmul(s, s, s, value=-1.0)
    if sign_forward:
        out = torch.sign(x) * alpha
    else:
        out = torch.mul(s, 2.0).sub_(1.0).addcmul_(u, q, value=2.0).mul_(alpha)
    t = torch.add(u, 2.0).addcmul_(u, s, value=-2.0)
    return out, q.mul_(t).mul_(alpha * (2.0 * beta))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sign_forward", [True, False])
@pytest.mark.parametrize("beta", [1.0, 5.0, 1001.0])
def test_pass_equals_the_torch_operations(dtype: torch.dtype, sign_forward: bool,
                                          beta: float) -> None:
    g = torch.Generator().manual_seed(int(beta))
    x = torch.randn(37, 29, generator=g, dtype=dtype) * 2
    x[0, :6] = torch.tensor([0.0, -0.0, 1.0, -1.0, 40.0, -40.0], dtype=dtype)
    alpha = torch.rand(37, 1, generator=g, dtype=dtype) + 0.1
    u = x * beta
    s = torch.sigmoid(u)
    out = np.empty(x.shape, dtype=x.numpy().dtype)
    slope = np.empty_like(out)
    signswish_pass(x.numpy(), u.numpy(), s.numpy(), alpha.numpy(), beta, sign_forward, out,
                   slope)
    want_out, want_slope = _torch_twin(x, beta, alpha, sign_forward)
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        np.testing.assert_array_equal(out, want_out.numpy())
        np.testing.assert_array_equal(slope, want_slope.numpy())
    else:  # pragma: no cover - torch's generic kernels round the multiply-adds twice
        eps = float(torch.finfo(dtype).eps)
        scale = 2 * beta * float(alpha.max()) * (2 + float(u.abs().max()))
        np.testing.assert_allclose(slope, want_slope.numpy(), rtol=4 * eps, atol=4 * eps * scale)
        np.testing.assert_allclose(out, want_out.numpy(), rtol=4 * eps, atol=4 * eps)
