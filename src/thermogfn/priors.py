"""Priors over the inverse temperature beta, parsed from specs such as ``uniform:1:3``.

Kinds (all numbers must be finite and > 0):

- ``constant:B``: always B.
- ``uniform:A:B``: U[A, B], A <= B.
- ``loguniform:A:B``: log beta ~ U[log A, log B], A <= B.
- ``normal:MU:SIGMA[:LO:HI]``: N(MU, SIGMA^2) *clipped* (not rejected) to [LO, HI]; by default
  LO = max(1e-3, MU - 3 SIGMA) (but at most MU) and HI = MU + 3 SIGMA.
- ``anneal:A:B[:W]``: at training progress p in [0, 1] the mean moves linearly, m = A + (B - A) p;
  without W every sample is m, with W samples are U[m - W/2, m + W/2] clipped below at
  ``min(1e-3, A)``. A <= B.
- ``anneal-reverse:A:B[:W]``: the same with m = B + (A - B) p (from B down to A).

``str(prior)`` gives back the canonical spec, so ``str(parse_beta_prior(s)) == s`` for canonical ``s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from thermogfn.errors import ThermoGFNError

if TYPE_CHECKING:
    import torch

__all__ = ["BetaPrior", "parse_beta_prior", "PRIOR_FORMS"]

# kind -> (accepted numbers of parameters, usage, example)
_FORMS: dict[str, tuple[tuple[int, ...], str, str]] = {
    "constant": ((1,), "constant:B", "constant:1"),
    "uniform": ((2,), "uniform:A:B", "uniform:1:3"),
    "loguniform": ((2,), "loguniform:A:B", "loguniform:1:100"),
    "normal": ((2, 4), "normal:MU:SIGMA[:LO:HI]", "normal:2:0.5"),
    "anneal": ((2, 3), "anneal:A:B[:W]", "anneal:1:3"),
    "anneal-reverse": ((2, 3), "anneal-reverse:A:B[:W]", "anneal-reverse:1:3"),
}
PRIOR_FORMS: str = ", ".join(usage for _, usage, _ in _FORMS.values())
"""The accepted spec forms, for help texts."""

_NORMAL_FLOOR = 1e-3
_F32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max: this module imports torch only to sample
_F32_TINY = 1.1754943508222875e-38  # torch.finfo(torch.float32).tiny


def _fmt(v: float) -> str:
    """Shortest round-tripping text of a float, without a trailing ``.0``."""
    s = repr(float(v))
    return s[:-2] if s.endswith(".0") else s


def _count_words(n: tuple[int, ...]) -> str:
    return " or ".join(str(c) for c in n) + (" number" if n == (1,) else " numbers")


@dataclass(frozen=True)
class BetaPrior:
    """A prior over beta > 0; ``params`` are the numbers of the spec in order (see module docstring)."""

    kind: str
    params: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in _FORMS:
            raise ThermoGFNError(f"unknown beta prior kind {self.kind!r}; accepted: {PRIOR_FORMS}")
        object.__setattr__(self, "params", tuple(float(p) for p in self.params))
        counts, usage, example = _FORMS[self.kind]
        spec = str(self)
        where = f"beta prior {spec!r}"
        help_ = f"{usage} (e.g. {example})"
        if len(self.params) not in counts:
            raise ThermoGFNError(f"{where} needs {_count_words(counts)}: {help_}")
        for p in self.params:
            if not math.isfinite(p):
                raise ThermoGFNError(f"{where} contains {_fmt(p)}; numbers must be finite: {help_}")
            if p <= 0:
                raise ThermoGFNError(f"{where} contains {_fmt(p)}; numbers must be > 0: {help_}")
            if p > _F32_MAX / 4 or p < _F32_TINY * 1e6:
                raise ThermoGFNError(f"{where} contains {_fmt(p)}, outside the float32 range: {help_}")
        if self.kind == "normal":
            lo, hi = self._normal_bounds()
            if lo > hi:
                raise ThermoGFNError(f"{where} has LO > HI ({_fmt(lo)} > {_fmt(hi)}): {help_}")
        elif self.kind != "constant":
            a, b = self.params[:2]
            if a > b:
                hint = "; use anneal-reverse:A:B to go from B down to A" if self.kind == "anneal" else ""
                raise ThermoGFNError(f"{where} has A > B ({_fmt(a)} > {_fmt(b)}): {help_}{hint}")

    def __str__(self) -> str:
        return ":".join([self.kind, *(_fmt(p) for p in self.params)])

    # ------------------------------------------------------------------ helpers
    def _normal_bounds(self) -> tuple[float, float]:
        mu, sigma = self.params[:2]
        if len(self.params) == 4:
            return self.params[2], self.params[3]
        return min(max(_NORMAL_FLOOR, mu - 3 * sigma), mu), mu + 3 * sigma

    def _anneal_center(self, progress: float) -> float:
        a, b = self.params[:2]
        start, end = (a, b) if self.kind == "anneal" else (b, a)
        return start + (end - start) * progress

    def _anneal_floor(self) -> float:
        return min(_NORMAL_FLOOR, self.params[0])

    @staticmethod
    def _check_progress(progress: float) -> float:
        progress = float(progress)
        if not 0.0 <= progress <= 1.0:  # also rejects nan
            raise ValueError(f"progress must be in [0, 1], got {progress}")
        return progress

    # ------------------------------------------------------------------ API
    def sample(self, n: int, progress: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` betas (float32, shape (n,), finite and > 0) at training ``progress`` in [0, 1]."""
        import torch

        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        progress = self._check_progress(progress)
        p = self.params
        kind = self.kind
        f64 = torch.float64
        if kind == "constant":
            out = torch.full((n,), p[0], dtype=f64)
        elif kind == "uniform":
            out = p[0] + (p[1] - p[0]) * torch.rand(n, generator=generator, dtype=f64)
        elif kind == "loguniform":
            la, lb = math.log(p[0]), math.log(p[1])
            out = torch.exp(la + (lb - la) * torch.rand(n, generator=generator, dtype=f64))
        elif kind == "normal":
            lo, hi = self._normal_bounds()
            out = (p[0] + p[1] * torch.randn(n, generator=generator, dtype=f64)).clamp(lo, hi)
        else:  # anneal, anneal-reverse
            m = self._anneal_center(progress)
            if len(p) == 2:
                out = torch.full((n,), m, dtype=f64)
            else:
                u = torch.rand(n, generator=generator, dtype=f64)
                out = (m + p[2] * (u - 0.5)).clamp_min(self._anneal_floor())
        lo, hi = self.support()
        # float32 rounding may step just outside the support; keep it inside and positive.
        return out.to(torch.float32).clamp(min=max(lo, _F32_TINY), max=hi)

    def support(self) -> tuple[float, float]:
        """The range ``(lo, hi)`` of betas this prior can produce at any point of training."""
        p = self.params
        if self.kind == "constant":
            return p[0], p[0]
        if self.kind in ("uniform", "loguniform"):
            return p[0], p[1]
        if self.kind == "normal":
            return self._normal_bounds()
        if len(p) == 2:
            return p[0], p[1]
        return max(self._anneal_floor(), p[0] - p[2] / 2), p[1] + p[2] / 2

    def mean(self, progress: float = 0.0) -> float:
        """The exact mean of beta at training ``progress`` in [0, 1]."""
        progress = self._check_progress(progress)
        p = self.params
        if self.kind == "constant":
            return p[0]
        if self.kind == "uniform":
            return (p[0] + p[1]) / 2
        if self.kind == "loguniform":
            a, b = p
            return a if a == b else (b - a) / math.log(b / a)
        if self.kind == "normal":
            return _clipped_normal_mean(p[0], p[1], *self._normal_bounds())
        m = self._anneal_center(progress)
        if len(p) == 2:
            return m
        a, b, f = m - p[2] / 2, m + p[2] / 2, self._anneal_floor()
        if f <= a:
            return m
        if f >= b:
            return f
        return (f * (f - a) + (b * b - f * f) / 2) / (b - a)  # E[max(U[a, b], f)]

    @property
    def is_annealed(self) -> bool:
        """True when the distribution depends on training progress."""
        return self.kind in ("anneal", "anneal-reverse")


def _clipped_normal_mean(mu: float, sigma: float, lo: float, hi: float) -> float:
    """E[clip(X, lo, hi)] for X ~ N(mu, sigma^2)."""
    a, b = (lo - mu) / sigma, (hi - mu) / sigma

    def cdf(z: float) -> float:
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))

    def pdf(z: float) -> float:
        return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

    return lo * cdf(a) + hi * (1.0 - cdf(b)) + mu * (cdf(b) - cdf(a)) - sigma * (pdf(b) - pdf(a))


def parse_beta_prior(spec: str) -> BetaPrior:
    """Parse a spec such as ``uniform:1:3``; malformed specs raise a one-line :class:`ThermoGFNError`.

    Each distinct spec is parsed once (priors are immutable)."""
    if not isinstance(spec, str):
        raise ThermoGFNError(f"beta prior must be a string like 'uniform:1:3', got {type(spec).__name__}")
    return _parse(spec)


@lru_cache(maxsize=256)
def _parse(spec: str) -> BetaPrior:
    text = spec.strip()
    if not text:
        raise ThermoGFNError(f"empty beta prior; accepted: {PRIOR_FORMS} (e.g. uniform:1:3)")
    kind, *fields = (part.strip() for part in text.split(":"))
    kind = kind.lower()
    if kind not in _FORMS:
        raise ThermoGFNError(f"unknown beta prior kind {kind!r} in {spec!r}; accepted: {PRIOR_FORMS}")
    counts, usage, example = _FORMS[kind]
    help_ = f"{usage} (e.g. {example})"
    if len(fields) not in counts:
        raise ThermoGFNError(f"beta prior {spec!r} needs {_count_words(counts)}: {help_}")
    values = []
    for f in fields:
        try:
            v = float(f)
        except ValueError:
            raise ThermoGFNError(f"beta prior {spec!r}: {f!r} is not a number: {help_}") from None
        if not math.isfinite(v):
            raise ThermoGFNError(f"beta prior {spec!r}: {f!r} is not finite: {help_}")
        values.append(v)
    return BetaPrior(kind, tuple(values))
