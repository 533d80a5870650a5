"""kernels.trainstep (numba) against the torch operations it replaces, bitwise where torch's
CPU kernels use fused multiply-adds (AVX2 / AVX-512 builds), to 2 ulp otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from proxcompress.kernels.trainstep import signswish_pass


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("zero", [True, False])
@pytest.mark.parametrize("rounding", ["log", "linear"])
def test_shift_round_equals_the_codes_and_their_decode(dtype: torch.dtype, zero: bool,
                                                       rounding: str) -> None:
    """Bit for bit (signed zeros included) against ``power_of_two_codes`` + ``codes_to_weight``
    over 16 binades, the thresholds (sqrt 2 rounded to the dtype, 1.5), ties, 0, -0 and
    subnormal weights."""
    from proxcompress.kernels.trainstep import shift_round_pass
    from proxcompress.training.shift import ShiftFormat, codes_to_weight, power_of_two_codes

    g = torch.Generator().manual_seed(zero + 2 * (rounding == "log"))
    w = torch.randn(64, 50, generator=g, dtype=dtype)
    w = w * torch.exp2(torch.randint(-12, 4, (64, 50), generator=g).to(dtype))
    r2 = float(torch.tensor(2.0, dtype=dtype).sqrt())
    special = [0.0, -0.0, r2 / 8, -r2 / 8, 1.5, -1.5, 0.75, 2.0**-7, -(2.0**-8), 1e-300, 3e5,
               1e-40, -3e-39, 2.0**-128, float("inf"), -float("inf")]
    w.view(-1)[: len(special)] = torch.tensor(special, dtype=dtype)
    # a format within the normal range, and one whose levels are subnormal in float32
    for fmt, scale in ((ShiftFormat(zero, -6, 1), 1.0), (ShiftFormat(zero, -128, -121), 2**-124)):
        x = w * scale
        want = codes_to_weight(*power_of_two_codes(x, fmt, rounding), dtype)  # type: ignore[arg-type]
        out = np.empty(x.shape, dtype=x.numpy().dtype)
        shift_round_pass(x.numpy(), fmt.emin, fmt.emax, zero, rounding, out)
        np.testing.assert_array_equal(out, want.numpy())
        np.testing.assert_array_equal(np.signbit(out), np.signbit(want.numpy()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (33, 257)])
def test_channel_scale_and_sign_in_one_sweep(dtype: torch.dtype, shape: tuple[int, int]) -> None:
    """``alpha = (sum |x| + extra) / n`` within ``n eps`` of the float64 sum; ``out`` bitwise
    ``torch.sign(x) * alpha`` (zeros included) and ProxConnect's ``alpha (x + mu sign x) /
    (1 + mu)`` as torch computes it."""
    from proxcompress.kernels.trainstep import channel_scale_pass

    g = torch.Generator().manual_seed(shape[1])
    x = torch.randn(shape, generator=g, dtype=dtype)
    x.view(-1)[::5] = 0.0
    extra = torch.rand(shape[0], generator=g, dtype=dtype)
    fan_in = shape[1] + 2.0
    alpha = np.empty((shape[0], 1), dtype=x.numpy().dtype)
    out = np.empty(shape, dtype=x.numpy().dtype)
    channel_scale_pass(x.numpy(), extra.numpy(), fan_in, alpha, out, "sign")
    exact = (x.double().abs().sum(1) + extra.double()) / fan_in
    eps = float(torch.finfo(dtype).eps)
    np.testing.assert_allclose(alpha[:, 0], exact.numpy(), rtol=shape[1] * eps, atol=0)
    a = torch.from_numpy(alpha)
    np.testing.assert_array_equal(out, (torch.sign(x) * a).numpy())
    for mu in (0.0, 0.3, 7.0, 1e4):  # ProxConnect's forward, as training.fused computes it
        channel_scale_pass(x.numpy(), extra.numpy(), fan_in, alpha, out, "dist2-prox", mu)
        want = torch.add(x, torch.sign(x), alpha=mu).div_(1.0 + mu).mul_(a)
        np.testing.assert_array_equal(out, want.numpy())
    only = np.empty_like(alpha)
    channel_scale_pass(x.numpy(), extra.numpy(), fan_in, only)
    np.testing.assert_array_equal(only, alpha)
