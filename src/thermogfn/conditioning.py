"""How the inverse temperature beta reaches the model: encodings, the logit scale g(beta), log Z(beta).

Design (measured in benchmarks/beta_input.py, documented in the README):
- the small MLPs see ``log(beta)`` by default (``beta_input='log'``), so beta = 1000 at test time is an
  input of 6.9 rather than 1000;
- ``positive`` g is flexible inside the training range and a power law outside it, continuing log g
  linearly in log beta with its slope at the range's end (the optimal logits grow like beta at high beta);
- ``signed`` g is the reference's: a LeakyReLU MLP with no output activation (may go negative);
- log Z(beta) has the exact structural form of the true one (see :class:`LogZ`): log N at beta = 0, convex,
  at least beta * m for m the largest log-reward known to be attained, and slope at most m, so it extrapolates
  to beta = 1000 without blowing up or collapsing.
"""

from __future__ import annotations

import torch
from torch import nn

from thermogfn.config import BETA_INPUTS, G_KINDS, LAYER_ENCODINGS


def mlp(sizes: list[int], act: type[nn.Module] = nn.LeakyReLU) -> nn.Sequential:
    """Linear layers of the given sizes with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _zero_last(net: nn.Sequential, bias: float = 0.0) -> nn.Sequential:
    last = net[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    nn.init.constant_(last.bias, bias)
    return net


class BetaFeature(nn.Module):
    """The scalar input of the small beta MLPs: ``log(beta)`` or raw ``beta``."""

    def __init__(self, kind: str = "log"):
        super().__init__()
        if kind not in BETA_INPUTS:
            raise ValueError(f"beta_input must be one of {BETA_INPUTS}")
        self.kind = kind

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        return (torch.log(beta) if self.kind == "log" else beta).unsqueeze(-1)


class Thermometer(nn.Module):
    """Soft thermometer code of beta over ``[lo, hi]`` in ``bins`` bins, clamped to [0, 1]."""

    def __init__(self, lo: float, hi: float, bins: int = 32):
        super().__init__()
        self.lo, self.hi, self.bins = lo, max(hi, lo + 1e-6), bins
        self.register_buffer("offsets", torch.arange(bins, dtype=torch.float32), persistent=False)

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        v = ((beta - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        return (v.unsqueeze(-1) * self.bins - self.offsets).clamp(0.0, 1.0)


class BetaEmbedding(nn.Module):
    """Layer conditioning's embedding: MLP 1 -> 32 -> 32 -> 32 on the beta feature, or on a thermometer."""

    def __init__(self, encoding: str, beta_input: str, support: tuple[float, float], dim: int = 32):
        super().__init__()
        if encoding not in LAYER_ENCODINGS:
            raise ValueError(f"layer encoding must be one of {LAYER_ENCODINGS}")
        self.encode = Thermometer(*support, bins=dim) if encoding == "thermometer" else BetaFeature(beta_input)
        self.net = mlp([dim if encoding == "thermometer" else 1, dim, dim, dim])
        self.dim = dim

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        return self.net(self.encode(beta))


class LogitScale(nn.Module):
    """g(beta), the scalar that multiplies the policy's logits (the paper's contribution).

    ``positive`` (default): inside the training range ``[lo, hi]`` of beta,
    ``log g = w * log(beta) + MLP_tanh(log beta)``, initialised at g = 1; outside it, log g continues as a
    straight line in log beta, i.e. a power law: above the range with the (non-negative) slope g has at its
    top, below it with that slope at its bottom but at least 1, so that g -> 0 (a flat policy) as beta -> 0.
    Measured on TFBind8 (benchmarks/README.md): trained on [1, 3], TV at beta 10/30/100 is 0.44/0.61/0.79
    against 0.51/0.75/0.92 for a g that saturates outside the range; trained offline on [10, 50], TV at
    beta 1 is 0.52 (top-100 reward 0.90) against 0.98 (0.68) with the bottom slope free.
    ``signed``: the reference's LeakyReLU MLP of the beta feature, no output activation.
    """

    def __init__(self, kind: str = "positive", beta_input: str = "log", support: tuple[float, float] = (1.0, 1.0),
                 hidden: int = 32):
        super().__init__()
        if kind not in G_KINDS:
            raise ValueError(f"g must be one of {G_KINDS}")
        self.kind = kind
        self.feature = BetaFeature(beta_input)
        if kind == "positive":
            self.net = _zero_last(mlp([1, hidden, hidden, 1], nn.Tanh))
            self.power = nn.Parameter(torch.zeros(()))
            self.register_buffer("log_range", torch.log(torch.tensor([float(support[0]), float(support[1])])))
        else:
            self.net = _zero_last(mlp([1, hidden, hidden, hidden, hidden, 1]), bias=1.0)

    def _log_g(self, u: torch.Tensor) -> torch.Tensor:
        return self.power * u + self.net(u.unsqueeze(-1)).squeeze(-1)

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        if self.kind == "signed":
            return self.net(self.feature(beta)).squeeze(-1)
        u = torch.log(beta)
        lo, hi = self.log_range[0], self.log_range[1]
        step = 0.05
        ends = torch.stack([lo, lo + step, hi - step, hi])
        at = self._log_g(ends)
        slope_lo = ((at[1] - at[0]) / step).clamp_min(1.0)  # below the range g falls at least like beta
        slope_hi = ((at[3] - at[2]) / step).clamp_min(0.0)
        inside = self._log_g(u.clamp(lo, hi))
        beyond = torch.where(u > hi, slope_hi * (u - hi), torch.where(u < lo, slope_lo * (u - lo), 0.0))
        return torch.exp(inside + beyond)


class LogZ(nn.Module):
    """log Z(beta) as the log-Laplace transform of the distribution of reward gaps, with the top object exact.

    ``log Z(beta) = log N + beta * m + log(1/N + (1 - 1/N) * sum_k q_k exp(-beta * d_k))``, with N the number
    of objects, m the largest log-reward known to be *attained* (``set_ceiling``), and q a learned
    distribution over ``atoms`` gaps ``d_k >= 0`` standing for the other N - 1 objects. This is the exact form
    of the true ``log sum_x R(x)^beta``: the object that attains m contributes exactly ``exp(beta * m)``, the
    others ``exp(beta * (m - d))``. So it is convex in beta, equals log N at beta = 0, and as beta grows its
    slope tends to m and log Z - beta * m to ``log(1 + (N - 1) * q(d = 0)) >= 0``, the log of the number of
    maximisers. The 1/N term matters: a beta range such as [1, 3] cannot tell a single object at gap 0 from
    many at gap ~1 (Laplace inversion is ill-posed), and without it a fit on [1, 3] of QM9str's exact log Z
    (unique maximum, next gap 1.05 nats) puts its smallest atom at gap 0.44 and is 42 nats low at beta = 100.
    Before any log-reward is known (ceiling -inf) there is no top term and m counts as 0.
    """

    def __init__(self, log_n: float, atoms: int = 16):
        super().__init__()
        self.register_buffer("log_n", torch.tensor(float(log_n)))
        self.register_buffer("ceiling", torch.tensor(float("-inf")))
        self.logits = nn.Parameter(torch.zeros(atoms))
        gaps = torch.logspace(-2, 1.5, atoms)
        self.raw_gaps = nn.Parameter(gaps + torch.log(-torch.expm1(-gaps)))  # softplus^-1

    def set_ceiling(self, log_r_max: float) -> None:
        """Set m, the largest shaped log-reward of an object known to exist (the task's maximum, or the best
        log-reward seen so far): log Z(beta) >= beta * m from then on."""
        self.ceiling.fill_(float(log_r_max))

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        gaps = nn.functional.softplus(self.raw_gaps)
        rest = torch.logsumexp(torch.log_softmax(self.logits, 0) - beta.unsqueeze(-1) * gaps, -1)
        known = torch.isfinite(self.ceiling)
        m = torch.where(known, self.ceiling, 0.0)
        top = torch.where(known, -self.log_n, float("-inf"))  # log of the top object's share at beta = 0
        return self.log_n + beta * m + torch.logaddexp(top, torch.log1p(-torch.exp(top)) + rest)


class ConstantLogZ(nn.Module):
    """A single learned log Z, for the unconditional GFlowNet (one fixed beta)."""

    def __init__(self, init: float = 0.0):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(init)))

    def forward(self, beta: torch.Tensor) -> torch.Tensor:
        return self.value.expand(beta.shape)

