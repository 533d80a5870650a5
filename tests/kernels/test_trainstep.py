"""kernels.trainstep (numba) against the torch operations it replaces, bitwise where torch's
CPU kernels use fused multiply-adds (AVX2 / AVX-512 builds), to 2 ulp otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from proxcompress.kernels import trainstep
from proxcompress.kernels.trainstep import sigmoid32, signswish_pass, signswish_pass32


def _torch_twin(x: torch.Tensor, beta: float, alpha: torch.Tensor, sign_forward: bool,
                u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The eager body of training.fused (the reference's operations; ``u``: ``beta x``
    unless given)."""
    u = x * beta if u is None else u
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


#: torch's float32 sigmoid runs SLEEF's vector expf on these builds (the in-pass sigmoid's
#: algorithm); elsewhere the comparison is to the float64 sigmoid only
VECTOR_SLEEF = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def _sigmoid_inputs(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    x = torch.cat([torch.randn(n // 2, generator=g) * 4, torch.randn(n - n // 2, generator=g) * 60])
    edges = [0.0, -0.0, 1e-30, -1e-30, 88.0, -88.0, 87.5, -87.5, 100.0, -100.0, 100.5, -100.5,
             103.9, -103.9, 104.0, -104.0, 104.5, -104.5, float("inf"), float("-inf"),
             float("nan"), 3.4e38, -3.4e38, 16.635532, -16.635532]
    x[:len(edges)] = torch.tensor(edges)
    return x


def test_in_pass_sigmoid_is_torchs_vector_sigmoid() -> None:
    """``sigmoid32`` (SLEEF's ``expf_u10`` in numba) against ``torch.sigmoid`` bit for bit on
    torch's vectorised path (one thread, a multiple of 32 elements: no scalar remainder),
    saturation, infinities and NaN included; and within 2 ulp of the float64 sigmoid."""
    n = 1 << 17
    x = _sigmoid_inputs(n)
    got = np.empty(n, np.float32)
    sigmoid32(x.numpy(), got)
    exact = (1.0 / (1.0 + np.exp(-x.numpy().astype(np.float64)))).astype(np.float32)
    normal = np.isfinite(exact) & (exact >= np.finfo(np.float32).tiny)
    ulps = np.abs(got[normal].view(np.int32).astype(np.int64)
                  - exact[normal].view(np.int32).astype(np.int64))
    assert ulps.max() <= 2
    # below the normal range (u < -87): 0 or a subnormal, as torch's (exp(-u) overflows)
    assert np.all(np.abs(got[~normal & np.isfinite(exact)]) <= np.finfo(np.float32).tiny)
    assert np.isnan(got[~np.isfinite(x.numpy()) & np.isnan(x.numpy())]).all()
    if VECTOR_SLEEF:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            want = torch.sigmoid(x).numpy()
        finally:
            torch.set_num_threads(threads)
        nan = np.isnan(want)
        assert np.isnan(got[nan]).all()  # a NaN (its sign bit may differ)
        np.testing.assert_array_equal(got[~nan].view(np.int32), want[~nan].view(np.int32))


def _twin32(x: torch.Tensor, inputs: str, beta: float, mu: float, alpha: torch.Tensor,
            sign_forward: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """training.fused's eager body for either form of ``u``."""
    u = torch.sign(x).mul_(mu).add_(x).mul_(beta / (1.0 + mu)) if inputs == "prox" else None
    return _torch_twin(x, beta, alpha, sign_forward, u)


@pytest.mark.parametrize("inputs,sign_forward", [("scaled", True), ("scaled", False),
                                                 ("prox", False)])
@pytest.mark.parametrize("beta,mu", [(1.0, 0.0), (5.0, 0.5), (1001.0, 37.5)])
@pytest.mark.parametrize("channel", [False, True])
def test_one_pass_equals_the_torch_body(inputs: str, sign_forward: bool, beta: float, mu: float,
                                        channel: bool) -> None:
    """The one-pass SignSwish (scale, ``u``, sigmoid, both outputs) against the torch body with
    the scale of :func:`channel_scale_pass`: bit for bit on torch's vector path (a latent of
    256 x 320, one torch thread), for 1, 2 and 3 row ranges (the split changes nothing)."""
    g = torch.Generator().manual_seed(int(beta))
    x = torch.randn(256, 320, generator=g) * 1.5
    x[0, :6] = torch.tensor([0.0, -0.0, 1.0, -1.0, 40.0, -40.0])
    extra = torch.rand(256, generator=g)
    fan_in = 321.0
    if channel:
        want_alpha = np.empty((256, 1), np.float32)
        trainstep.channel_scale_pass(x.numpy(), extra.numpy(), fan_in, want_alpha)
        alpha_t = torch.from_numpy(want_alpha)
    else:
        alpha_t = torch.rand(256, 1, generator=g) + 0.1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        want_out, want_slope = _twin32(x, inputs, beta, mu, alpha_t, sign_forward)
    finally:
        torch.set_num_threads(threads)
    for n_threads in (1, 2, 3):
        out = np.full(x.shape, np.nan, np.float32)
        slope = np.full(x.shape, np.nan, np.float32)
        alpha = np.full((256, 1), np.nan, np.float32) if channel else alpha_t.numpy().copy()
        signswish_pass32(x.numpy(), alpha, beta, sign_forward, out, slope, inputs, mu,
                         (extra.numpy(), fan_in) if channel else None, n_threads)
        np.testing.assert_array_equal(alpha, alpha_t.numpy())
        if VECTOR_SLEEF:
            np.testing.assert_array_equal(out, want_out.numpy())
            np.testing.assert_array_equal(slope, want_slope.numpy())
        else:  # pragma: no cover - no FMA in torch's kernels: roundings differ
            np.testing.assert_allclose(out, want_out.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(slope, want_slope.numpy(), rtol=1e-4,
                                       atol=1e-6 * beta * float(alpha_t.max()))


def test_row_threads_cover_every_row_once_and_raise_a_helpers_error() -> None:
    seen: list[tuple[int, int]] = []

    def job(lo: int, hi: int) -> None:
        seen.append((lo, hi))

    for rows, threads in ((10, 3), (2, 4), (1, 2), (1000, 2)):
        seen.clear()
        trainstep._ROWS.run(job, rows, threads)
        covered = sorted(r for lo, hi in seen for r in range(lo, hi))
        assert covered == list(range(rows))

    def failing(lo: int, hi: int) -> None:
        if lo > 0:
            raise ValueError("helper range")

    with pytest.raises(ValueError, match="helper range"):
        trainstep._ROWS.run(failing, 10, 2)
    seen.clear()
    trainstep._ROWS.run(job, 4, 2)  # the threads survive an error
    assert sorted(seen) == [(0, 2), (2, 4)]
