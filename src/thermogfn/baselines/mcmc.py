"""``mcmc``: Metropolis-Hastings over complete sequences, targeting ``R(x)**beta``.

The algorithm, top to bottom:

1. ``batch_size`` independent chains. Round 1 draws each chain's start uniformly at random and evaluates it:
   those are round 1's ``batch_size`` reward calls. Every later round proposes one move per chain and evaluates
   the proposals, so every round makes exactly ``batch_size`` reward calls (the same count as every method).
2. Proposal: ``mutations`` distinct positions, uniformly at random, each set to a uniformly random *different*
   token. The reverse move has the same probability, so the proposal is symmetric and drops out of the
   Metropolis-Hastings ratio.
3. Accept with probability ``min(1, exp(beta * (log R(x') - log R(x))))``, computed in log space (``beta * log R``,
   never ``R**beta``), with ``beta`` the mean of the run's ``--beta-train`` prior at the current training progress
   (the benchmark fixes it with ``constant:1``; an ``anneal`` prior turns this into a tempering schedule).

What is logged as *training samples* (modes, top-100, ``samples``) are the evaluated objects: the starts and then
every proposal, accepted or not, since those are what the reward was called on. The chain *states*, whose
distribution approaches ``R**beta / Z`` after burn-in, are :meth:`MCMC.chains`.

All randomness comes from ``self.generator``; the chains and counters are checkpointed, so a resumed run is
bit-identical to an uninterrupted one. Point mutations keep a sequence's length, so ``mcmc`` (and ``sa``) refuse
variable-length tasks (``--min-length``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from thermogfn.config import RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer, RoundStats


@dataclass(frozen=True)
class MCMCParams:
    mutations: int = 1  # positions changed per proposal (tuned on TFBind8: benchmarks/results/mcmc_tuning.md)

    def __post_init__(self) -> None:
        if self.mutations < 1:
            raise ThermoGFNError(f"mcmc needs mutations >= 1, got {self.mutations}")


# ---------------------------------------------------------------------------------------------- shared pieces
def point_mutations(x: torch.Tensor, vocab_size: int, mutations: int, generator: torch.Generator) -> torch.Tensor:
    """A symmetric proposal: ``mutations`` distinct uniform positions per row, each set to a uniformly random
    different token. ``mutations`` is clipped to the length; with a one-token vocabulary nothing changes."""
    b, length = x.shape
    k = min(mutations, length)
    out = x.clone()
    if k == 0 or vocab_size < 2:
        return out
    positions = torch.rand(b, length, generator=generator).argsort(dim=1)[:, :k]
    shift = torch.randint(1, vocab_size, (b, k), generator=generator)
    old = out.gather(1, positions)
    out.scatter_(1, positions, (old + shift) % vocab_size)
    return out


def metropolis_accept(log_r: torch.Tensor, log_r_new: torch.Tensor, beta: float | torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
    """Accept each move with probability ``min(1, exp(beta * (log_r_new - log_r)))`` (bool mask)."""
    log_ratio = beta * (log_r_new - log_r)
    u = torch.rand(log_r.shape, generator=generator, dtype=torch.float64)
    return torch.log(u) < log_ratio


class ChainState:
    """``n`` chains over complete objects: state, shaped log-reward, raw reward, and which chains still need a
    fresh uniform start (evaluated as that round's proposal and accepted unconditionally)."""

    def __init__(self, n: int, length: int):
        self.x = torch.zeros(n, length, dtype=torch.int64)
        self.log_r = torch.full((n,), float("-inf"), dtype=torch.float64)
        self.raw = torch.zeros(n, dtype=torch.float64)
        self.fresh = torch.ones(n, dtype=torch.bool)

    def propose(self, task: Task, mutations: int, generator: torch.Generator) -> torch.Tensor:
        proposal = point_mutations(self.x, task.vocab_size, mutations, generator)
        if self.fresh.any():
            starts = torch.randint(task.vocab_size, (int(self.fresh.sum()), task.length), generator=generator)
            proposal[self.fresh] = starts
        return proposal

    def step(self, proposal: torch.Tensor, raw: torch.Tensor, log_r: torch.Tensor, beta: float,
             generator: torch.Generator) -> torch.Tensor:
        """Metropolis-Hastings acceptance of evaluated proposals; returns the mask of accepted (non-fresh) moves."""
        accept = metropolis_accept(self.log_r, log_r, beta, generator) & ~self.fresh
        take = accept | self.fresh
        self.x[take], self.log_r[take], self.raw[take] = proposal[take], log_r[take], raw[take]
        self.fresh[:] = False
        return accept

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"x": self.x.clone(), "log_r": self.log_r.clone(), "raw": self.raw.clone(), "fresh": self.fresh.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.x, self.log_r = state["x"].clone(), state["log_r"].clone()
        self.raw, self.fresh = state["raw"].clone(), state["fresh"].clone()


class AcceptanceStats:
    """Accepted and proposed moves over all rounds (fresh starts excluded), and the last round's rate."""

    def __init__(self) -> None:
        self.accepted = 0
        self.proposed = 0
        self.last_rate = float("nan")

    def record(self, accept: torch.Tensor, moving: int) -> None:
        n_accept = int(accept.sum())
        self.accepted += n_accept
        self.proposed += moving
        self.last_rate = n_accept / moving if moving else float("nan")

    def metrics(self) -> dict[str, float]:
        return {"accept_rate": self.last_rate,
                "accept_rate_all": self.accepted / self.proposed if self.proposed else float("nan")}

    def state_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "proposed": self.proposed, "last_accept_rate": self.last_rate}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accepted, self.proposed, self.last_rate = state["accepted"], state["proposed"], state["last_accept_rate"]


# ---------------------------------------------------------------------------------------------- the method
class MCMC(BaseTrainer):
    """``batch_size`` parallel Metropolis-Hastings chains at the run's fixed beta."""

    mutates_tokens = True  # point mutations

    def __init__(self, cfg: RunConfig, task: Task | None = None, params: MCMCParams | None = None):
        super().__init__(cfg, task)
        self.params = params or self.method_params(MCMCParams)
        self.prior = self.cfg.train_prior
        self.state = ChainState(self.cfg.batch_size, self.task.length)
        self.acceptance = AcceptanceStats()

    def beta(self) -> float:
        return self.prior.mean(self.progress)

    def chains(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current chain states and their raw rewards (the MCMC samples, as opposed to the proposals)."""
        return self.state.x.clone(), self.state.raw.clone()

    def train_round(self) -> RoundStats:
        beta = self.beta()
        moving = int((~self.state.fresh).sum())
        proposal = self.state.propose(self.task, self.params.mutations, self.generator)
        raw, _ = self.evaluate_samples(proposal)  # the round's batch_size reward calls
        accept = self.state.step(proposal, raw, self.task.shaping.log_reward(raw), beta, self.generator)
        self.acceptance.record(accept, moving)
        self.step += 1
        return RoundStats(float("nan"), None, float(raw.mean()))

    def method_metrics(self) -> dict[str, Any]:
        return {"beta": self.beta(), **self.acceptance.metrics(), "chain_reward": float(self.state.raw.mean())}

    def method_state(self) -> dict[str, Any]:
        return {"chains": self.state.state_dict(), **self.acceptance.state_dict()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state["chains"])
        self.acceptance.load_state_dict(state)
