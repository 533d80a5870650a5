"""Every torch quantizer against its SymPy twin (proofs.pairs): values of F, B, B', P, the
autograd gradient (B' at the pair's point) on a grid for several mu, the hard limit, and the
mu schedule of the optimizer wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from proxcompress.proofs.pairs import get_pair, pair_names
from proxcompress.training.layers import BinaryLinear, quantized_modules
from proxcompress.training.optim import MuSchedule, ProxConnectOptimizer
from proxcompress.training.quantizers import get_quantizer, quantizer_names

# a grid with the breakpoints of every catalogue map (0, +-1/2, +-1, +-1.5, +-3, +-6), ties
# included, plus irrational points and the SignSwish region
GRID = np.unique(np.concatenate([
    np.linspace(-9.0, 9.0, 721),
    np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 3.0, -3.0, 6.0, -6.0]),
    np.linspace(-1.3, 1.3, 261) + np.sqrt(2) * 1e-3,
]))
MUS = (0.0, 0.25, 1.0, 4.0, 37.5)


def test_same_names_as_the_catalogue() -> None:
    assert quantizer_names() == pair_names()


@pytest.mark.parametrize("name", pair_names())
@pytest.mark.parametrize("mu", MUS)
def test_maps_equal_the_symbolic_twin(name: str, mu: float) -> None:
    twin = get_pair(name).numeric()
    q = get_quantizer(name)
    x = torch.tensor(GRID, dtype=torch.float64)
    for label, torch_map, numpy_map in (
        ("F", q.forward, twin.forward),
        ("B", q.backward, twin.backward),
        ("B'", q.backward_derivative, twin.backward_derivative),
        ("P", q.prox, twin.prox),
    ):
        got = torch_map(x, mu).numpy()
        want = numpy_map(GRID, mu)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{name} {label}")


@pytest.mark.parametrize("name", pair_names())
@pytest.mark.parametrize("mu", MUS)
def test_autograd_uses_b_prime_at_the_methods_point(name: str, mu: float) -> None:
    pair = get_pair(name)
    twin = pair.numeric()
    q = get_quantizer(name)
    assert q.derivative_at == pair.method_derivative_at
    x = torch.tensor(GRID, dtype=torch.float64, requires_grad=True)
    out = q(x, mu)
    np.testing.assert_allclose(out.detach().numpy(), twin.forward(GRID, mu), atol=1e-12)
    upstream = torch.linspace(-2.0, 3.0, len(GRID), dtype=torch.float64)
    (out * upstream).sum().backward()
    point = twin.prox(GRID, mu) if pair.method_derivative_at == "prox" else GRID
    want = twin.backward_derivative(point, mu) * upstream.numpy()
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", pair_names())
def test_derivative_point_is_pluggable(name: str) -> None:
    twin = get_pair(name).numeric()
    for where in ("prox", "latent"):
        q = get_quantizer(name, derivative_at=where)
        x = torch.tensor(GRID, dtype=torch.float64, requires_grad=True)
        q(x, 1.0).sum().backward()
        point = twin.prox(GRID, 1.0) if where == "prox" else GRID
        np.testing.assert_allclose(x.grad.numpy(), twin.backward_derivative(point, 1.0),
                                   atol=1e-12)


@pytest.mark.parametrize("name", pair_names())
def test_hard_limit_is_the_forward_at_large_mu(name: str) -> None:
    twin = get_pair(name).numeric()
    q = get_quantizer(name)
    x = GRID[np.abs(GRID) > 1e-3]
    got = q(torch.tensor(x), hard=True).numpy()
    np.testing.assert_allclose(got, twin.forward(x, 1e9), atol=1e-7)


def test_beta_parameter_matches_the_twin() -> None:
    from proxcompress.proofs.pairs import bnn_plus_plus

    twin = bnn_plus_plus(beta=2).numeric()
    q = get_quantizer("bnn++", beta=2.0)
    x = torch.tensor(GRID)
    np.testing.assert_allclose(q.forward(x, 3.0).numpy(), twin.forward(GRID, 3.0), atol=1e-12)
    np.testing.assert_allclose(q.backward_derivative(x, 0).numpy(),
                               twin.backward_derivative(GRID, 0), atol=1e-12)


def test_unknown_names_and_parameters_are_rejected() -> None:
    from proxcompress.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="quantizer"):
        get_quantizer("sgn")
    with pytest.raises(InvalidInputError, match="beta"):
        get_quantizer("bnn", beta=3.0)
    with pytest.raises(InvalidInputError, match="derivative_at"):
        get_quantizer("bnn", derivative_at="middle")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- mu schedule
def test_aggregate_mu_is_lambda_times_the_sum_of_step_sizes() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Sequential(BinaryLinear(6, 4, weight_quantizer="proxconnect"))
    inner = torch.optim.SGD(layer.parameters(), lr=0.1)
    opt = ProxConnectOptimizer(inner, layer, MuSchedule("aggregate", scale=7.0, start=0.5))
    lrs = [0.1, 0.05, 0.3, 0.02, 0.2]
    twin = get_pair("proxconnect").numeric()
    x = torch.randn(3, 6)
    for t, lr in enumerate(lrs, start=1):
        inner.param_groups[0]["lr"] = lr
        layer(x).sum().backward()
        opt.step()
        expected_mu = 0.5 + 7.0 * sum(lrs[:t])
        assert opt.mu == pytest.approx(expected_mu, rel=1e-15)
        (m,) = quantized_modules(layer)
        assert float(m.mu) == pytest.approx(expected_mu, rel=1e-15)
        # the layer computes with F(w; mu_t) of the twin, times the per-channel scale
        w = m.weight.detach().double().numpy()
        want = twin.forward(w, expected_mu) * np.abs(w).mean(axis=1, keepdims=True)
        np.testing.assert_allclose(m.quantized_weight().detach().double().numpy(), want,
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind,expected", [
    ("linear", lambda t: 1.0 + (9.0 - 1.0) * min(t / 10, 1)),
    ("exponential", lambda t: 1.0 * 9.0 ** min(t / 10, 1)),
    ("constant", lambda t: 1.0),
])
def test_other_schedules(kind: str, expected) -> None:  # type: ignore[no-untyped-def]
    s = MuSchedule(kind, start=1.0, end=9.0, total_steps=10)  # type: ignore[arg-type]
    for t in (0, 3, 10, 15):
        assert s.value(t, 123.0) == pytest.approx(expected(t))


def test_wrapper_state_round_trip() -> None:
    layer = torch.nn.Sequential(BinaryLinear(3, 2))
    inner = torch.optim.Adam(layer.parameters(), lr=0.01)
    opt = ProxConnectOptimizer(inner, layer)
    layer(torch.randn(2, 3)).sum().backward()
    opt.step()
    state = opt.state_dict()
    other = ProxConnectOptimizer(torch.optim.Adam(layer.parameters(), lr=0.01), layer)
    other.load_state_dict(state)
    assert other.mu == opt.mu and other.steps == 1
