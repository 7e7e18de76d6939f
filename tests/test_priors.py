"""Beta priors: parsing, errors, sampling ranges and moments, annealing, determinism."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thermogfn.errors import ThermoGFNError
from thermogfn.priors import BetaPrior, parse_beta_prior

N = 200_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "spec",
    [
        "constant:1",
        "constant:0.5",
        "uniform:1:3",
        "uniform:10:50",
        "loguniform:1:100",
        "loguniform:0.001:1000",
        "normal:2:0.5",
        "normal:2:0.5:1:3",
        "anneal:1:3",
        "anneal:1:3:0.5",
        "anneal-reverse:1:3",
        "anneal-reverse:1:3:2",
        "uniform:2:2",
        "constant:1e-05",
        "constant:1e+20",
    ],
)
def test_round_trip(spec: str) -> None:
    prior = parse_beta_prior(spec)
    assert str(prior) == spec
    assert parse_beta_prior(str(prior)) == prior


def test_parse_normalises() -> None:
    assert str(parse_beta_prior(" Uniform : 1.0 : 3 ")) == "uniform:1:3"
    assert parse_beta_prior("uniform:1:3") == BetaPrior("uniform", (1.0, 3.0))


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("foo:1", "unknown beta prior kind 'foo'"),
        ("uniform:3", "needs 2 numbers: uniform:A:B (e.g. uniform:1:3)"),
        ("uniform:1:2:3", "needs 2 numbers"),
        ("constant", "needs 1 number"),
        ("normal:1", "needs 2 or 4 numbers"),
        ("normal:1:1:0.5", "needs 2 or 4 numbers"),
        ("anneal:1:2:3:4", "needs 2 or 3 numbers"),
        ("uniform:a:3", "'a' is not a number"),
        ("uniform:1:", "'' is not a number"),
        ("uniform:nan:3", "not finite"),
        ("loguniform:1:inf", "not finite"),
        ("constant:0", "must be > 0"),
        ("uniform:-1:3", "must be > 0"),
        ("loguniform:0:3", "must be > 0"),
        ("uniform:3:1", "A > B"),
        ("loguniform:3:1", "A > B"),
        ("anneal:3:1", "anneal-reverse"),
        ("normal:2:0", "must be > 0"),
        ("normal:2:-1", "must be > 0"),
        ("normal:2:1:3:1", "LO > HI"),
        ("anneal:1:3:0", "must be > 0"),
        ("constant:1e300", "float32"),
    ],
)
def test_errors(spec: str, needle: str) -> None:
    with pytest.raises(ThermoGFNError) as info:
        parse_beta_prior(spec)
    msg = str(info.value)
    assert needle in msg
    assert "\n" not in msg


def test_error_example_from_brief() -> None:
    expected = r"^beta prior 'uniform:3' needs 2 numbers: uniform:A:B \(e\.g\. uniform:1:3\)$"
    with pytest.raises(ThermoGFNError, match=expected):
        parse_beta_prior("uniform:3")


def test_non_string_spec() -> None:
    with pytest.raises(ThermoGFNError):
        parse_beta_prior(3)  # type: ignore[arg-type]


def _check(prior: BetaPrior, b: torch.Tensor, n: int) -> None:
    assert b.dtype == torch.float32 and b.shape == (n,)
    assert torch.isfinite(b).all() and (b > 0).all()
    lo, hi = prior.support()
    assert float(b.min()) >= lo * (1 - 1e-6) and float(b.max()) <= hi * (1 + 1e-6)


def test_constant() -> None:
    p = parse_beta_prior("constant:2.5")
    b = p.sample(10, 0.3, gen())
    _check(p, b, 10)
    assert torch.all(b == 2.5)
    assert p.mean(0.7) == 2.5 and p.support() == (2.5, 2.5)


def test_uniform() -> None:
    p = parse_beta_prior("uniform:1:3")
    b = p.sample(N, 0.0, gen())
    _check(p, b, N)
    assert abs(float(b.mean()) - 2.0) < 0.01 and p.mean() == 2.0
    assert float(b.min()) < 1.01 and float(b.max()) > 2.99
    assert abs(float((b < 1.5).float().mean()) - 0.25) < 0.01


def test_loguniform() -> None:
    p = parse_beta_prior("loguniform:1:100")
    b = p.sample(N, 0.0, gen())
    _check(p, b, N)
    assert abs(float(b.median()) - 10.0) / 10.0 < 0.02  # median = sqrt(A * B)
    assert abs(float(b.double().mean()) - p.mean()) / p.mean() < 0.01
    assert abs(p.mean() - 99 / math.log(100)) < 1e-12


def test_normal_clipped() -> None:
    p = parse_beta_prior("normal:2:0.5")
    assert p.support() == (0.5, 3.5)
    b = p.sample(N, 0.0, gen())
    _check(p, b, N)
    assert abs(float(b.mean()) - 2.0) < 0.01
    assert abs(float(b.std()) - 0.5) < 0.01
    q = parse_beta_prior("normal:2:1:1.5:2.5")  # clipping (not rejection) piles mass on the bounds
    c = q.sample(N, 0.0, gen(1))
    _check(q, c, N)
    assert abs(float((c == 1.5).float().mean()) - 0.3085) < 0.01
    assert abs(float(c.double().mean()) - q.mean()) < 0.01


def test_normal_default_lower_bound() -> None:
    p = parse_beta_prior("normal:0.5:1")
    assert p.support() == (1e-3, 3.5)
    b = p.sample(N, 0.0, gen())
    _check(p, b, N)
    assert abs(float(b.double().mean()) - p.mean()) < 0.01
    tiny = parse_beta_prior("normal:0.0001:0.00001")  # default LO never exceeds MU
    lo, hi = tiny.support()
    assert 0 < lo <= 1e-4 <= hi
    _check(tiny, tiny.sample(1000, 0.0, gen()), 1000)


@pytest.mark.parametrize(("progress", "expected"), [(0.0, 1.0), (0.5, 2.0), (1.0, 3.0)])
def test_anneal(progress: float, expected: float) -> None:
    p = parse_beta_prior("anneal:1:3")
    b = p.sample(7, progress, gen())
    _check(p, b, 7)
    assert torch.allclose(b, torch.full((7,), expected))
    assert p.mean(progress) == pytest.approx(expected)
    r = parse_beta_prior("anneal-reverse:1:3")
    assert torch.allclose(r.sample(7, progress, gen()), torch.full((7,), 4.0 - expected))
    assert r.mean(progress) == pytest.approx(4.0 - expected)
    assert p.support() == r.support() == (1.0, 3.0)
    assert p.is_annealed and not parse_beta_prior("uniform:1:3").is_annealed


def test_anneal_with_width() -> None:
    p = parse_beta_prior("anneal:1:3:1")
    assert p.support() == (0.5, 3.5)
    b = p.sample(N, 0.5, gen())
    _check(p, b, N)
    assert float(b.min()) >= 1.5 and float(b.max()) <= 2.5
    assert abs(float(b.mean()) - 2.0) < 0.01
    # near zero the window is clipped to stay positive
    q = parse_beta_prior("anneal:0.1:1:1")
    c = q.sample(N, 0.0, gen())
    _check(q, c, N)
    assert float(c.min()) > 0
    assert abs(float(c.double().mean()) - q.mean(0.0)) < 0.01
    assert q.mean(0.0) > 0.1


def test_determinism() -> None:
    for spec in ["uniform:1:3", "loguniform:1:100", "normal:2:1", "anneal:1:3:1"]:
        p = parse_beta_prior(spec)
        a = p.sample(100, 0.3, gen(7))
        b = p.sample(100, 0.3, gen(7))
        c = p.sample(100, 0.3, gen(8))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_bad_progress_and_n() -> None:
    p = parse_beta_prior("anneal:1:3")
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError):
            p.sample(3, bad, gen())
        with pytest.raises(ValueError):
            p.mean(bad)
    with pytest.raises(ValueError):
        p.sample(-1, 0.0, gen())
    assert p.sample(0, 0.0, gen()).shape == (0,)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=30),
        st.lists(
            st.one_of(
                st.sampled_from(["uniform", "loguniform", "normal", "anneal", "anneal-reverse", "constant"]),
                st.sampled_from(["1", "0", "-1", "nan", "inf", "1e400", "2.5", "", " ", "x", "1e-50", "3"]),
                st.text(max_size=5),
            ),
            max_size=6,
        ).map(":".join),
    )
)
def test_garbage_only_raises_thermogfn_error(spec: str) -> None:
    try:
        prior = parse_beta_prior(spec)
    except ThermoGFNError as exc:
        assert "\n" not in str(exc)
        return
    b = prior.sample(16, 0.5, gen())
    assert torch.isfinite(b).all() and (b > 0).all()
    assert parse_beta_prior(str(prior)) == prior


positive = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(positive, positive, st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_uniform_specs_sample_within_range(a: float, b: float, progress: float, seed: int) -> None:
    a, b = min(a, b), max(a, b)
    for kind in ("uniform", "loguniform"):
        prior = parse_beta_prior(f"{kind}:{a!r}:{b!r}")
        assert parse_beta_prior(str(prior)) == prior
        x = prior.sample(64, progress, gen(seed))
        assert x.dtype == torch.float32 and x.shape == (64,)
        assert (x > 0).all() and torch.isfinite(x).all()
        lo, hi = float(torch.tensor(a, dtype=torch.float32)), float(torch.tensor(b, dtype=torch.float32))
        assert float(x.min()) >= lo and float(x.max()) <= hi
