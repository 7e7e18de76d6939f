"""The beta networks: g(beta) positive and a power law outside the training range; log Z(beta) exact at
beta = 0, convex, with slope bounded by the log-reward ceiling and at least beta * ceiling (the top object);
thermometer clamped."""

from __future__ import annotations

import math

import torch

from thermogfn.conditioning import LogitScale, LogZ, Thermometer


def _randomise(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.7)


def test_positive_g_starts_at_one_and_extrapolates_as_a_power_law():
    g = LogitScale("positive", support=(1.0, 3.0))
    assert torch.allclose(g(torch.tensor([1.0, 2.0, 3.0, 1000.0])), torch.ones(4))
    assert torch.allclose(g(torch.tensor([0.1, 0.5])), torch.tensor([0.1, 0.5]))  # below the range: g -> 0
    for seed in range(5):
        _randomise(g, seed)
        with torch.no_grad():
            big = torch.tensor([3.0, 10.0, 100.0, 1000.0])
            log_g = torch.log(g(big))
            slopes = (log_g[1:] - log_g[:-1]) / (torch.log(big[1:]) - torch.log(big[:-1]))
            assert (g(torch.logspace(-3, 4, 50)) > 0).all()
            assert torch.allclose(slopes, slopes[0].expand(3), atol=1e-4)  # one straight line in log-log
            assert slopes[0] >= 0
            inside = torch.linspace(1.0, 3.0, 9)
            assert torch.isfinite(g(inside)).all()
            small = torch.tensor([0.01, 0.1, 1.0])
            low = torch.log(g(small))
            low_slopes = (low[1:] - low[:-1]) / (torch.log(small[1:]) - torch.log(small[:-1]))
            assert torch.allclose(low_slopes, low_slopes[0].expand(2), atol=1e-4) and low_slopes[0] >= 1 - 1e-5


def test_signed_g_is_the_reference_mlp():
    g = LogitScale("signed", beta_input="raw")
    assert torch.allclose(g(torch.tensor([1.0, 7.0])), torch.ones(2))
    _randomise(g, 0)
    assert torch.isfinite(g(torch.tensor([1000.0]))).all()


def test_log_z_is_exact_at_zero_convex_and_slope_bounded():
    log_n = 8 * math.log(4)
    z = LogZ(log_n).double()
    z.set_ceiling(2.3)
    for seed in range(5):
        _randomise(z, seed)
        with torch.no_grad():
            assert abs(float(z(torch.tensor([1e-9], dtype=torch.float64))) - log_n) < 1e-6
            beta = torch.linspace(0.01, 200.0, 2000, dtype=torch.float64)
            values = z(beta)
            slope = torch.diff(values) / torch.diff(beta)
            assert (torch.diff(slope) >= -1e-9).all()  # convex
            assert (slope <= 2.3 + 1e-9).all()  # never steeper than the ceiling
            big = torch.tensor([1e2, 1e3, 1e4], dtype=torch.float64)
            assert (z(big) >= 2.3 * big - 1e-9).all()  # the object that attains the ceiling is counted
            assert torch.isfinite(z(torch.tensor([1e4], dtype=torch.float64))).all()


def test_log_z_without_a_ceiling_is_the_gap_mixture():
    z = LogZ(math.log(10.0)).double()
    with torch.no_grad():
        assert torch.allclose(z(torch.tensor([0.0, 1.0], dtype=torch.float64)),
                              torch.tensor([math.log(10.0), math.log(10.0) + math.log(torch.exp(
                                  -torch.logspace(-2, 1.5, 16, dtype=torch.float64)).mean().item())],
                                           dtype=torch.float64))
    z.set_ceiling(-3.0)  # a negative maximum is a valid ceiling
    assert float(z.ceiling) == -3.0


def test_log_z_fitted_on_a_narrow_range_extrapolates_with_a_unique_maximum():
    """QM9str's shape: one object at the top, the next 1 nat below, the rest spread down to 20 nats below.
    Fitted on the exact log Z over beta in [1, 3], log Z must stay right at beta 10 to 100 (the gap mixture
    alone cannot tell the single top object from many objects ~1 nat below it, and drifts tens of nats low)."""
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    log_r = torch.cat([torch.zeros(1), -1.0 - 19.0 * torch.rand(n - 1, generator=gen) ** 2]).double() + 4.6
    z = LogZ(math.log(n)).double()
    z.set_ceiling(float(log_r.max()))
    train = torch.linspace(1.0, 3.0, 21, dtype=torch.float64)
    target = torch.logsumexp(train[:, None] * log_r, 1)
    opt = torch.optim.Adam(z.parameters(), lr=0.05)
    for _ in range(1500):
        opt.zero_grad()
        value = ((z(train) - target) ** 2).mean()
        value.backward()
        opt.step()
    assert value.item() < 1e-4
    far = torch.tensor([10.0, 30.0, 100.0], dtype=torch.float64)
    with torch.no_grad():
        error = (z(far) - torch.logsumexp(far[:, None] * log_r, 1)).abs()
    assert error[0] < 0.5 and error[1:].max() < 0.01  # without the top object: 0.8, 13 and 54 nats low


def test_thermometer_is_clamped():
    t = Thermometer(1.0, 3.0, bins=8)
    codes = t(torch.tensor([0.1, 1.0, 2.0, 3.0, 1000.0]))
    assert codes.min() >= 0 and codes.max() <= 1
    assert torch.equal(codes[0], torch.zeros(8)) and torch.equal(codes[-1], torch.ones(8))
    assert torch.equal(codes[3], codes[4])
    assert float(codes[2].sum()) == 4.0
