"""``sa``: simulated annealing, i.e. the ``mcmc`` chains with beta rising over training, and restarts.

The algorithm, top to bottom:

1. ``batch_size`` chains, started uniformly at random in round 1 (round 1's reward calls); afterwards one proposal
   per chain per round (the same symmetric point mutations as ``mcmc``), so exactly ``batch_size`` reward calls per
   round.
2. Beta follows its own schedule (the run's ``--beta-train`` is not used): at training progress ``p`` in [0, 1],
   ``geometric``: ``beta_start * (beta_end / beta_start) ** p``; ``linear``: ``beta_start + (beta_end - beta_start) p``.
   Metropolis acceptance at that beta, in log space.
3. Each chain keeps its best-so-far object (:meth:`SimulatedAnnealing.best`).
4. Restarts (``restart_patience > 0``): a chain whose log-reward has not beaten its best since its last (re)start for
   ``restart_patience`` rounds is stuck on a local optimum; its next proposal is a fresh uniformly random object,
   accepted unconditionally (still one reward call). Its overall best-so-far is kept.

Training samples are the evaluated objects (starts, proposals, restarts); the chain states are
:meth:`SimulatedAnnealing.chains`. All randomness comes from ``self.generator``; resume is bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from thermogfn.baselines.mcmc import AcceptanceStats, ChainState
from thermogfn.config import RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer, RoundStats


@dataclass(frozen=True)
class SAParams:
    # tuned on TFBind8, 2000 rounds x 32 chains (benchmarks/results/mcmc_tuning.md)
    beta_start: float = 1.0
    beta_end: float = 10.0
    schedule: str = "linear"  # or "geometric"
    mutations: int = 1  # positions changed per proposal
    restart_patience: int = 100  # rounds without a new best (since the last restart) before a restart; 0: never

    def __post_init__(self) -> None:
        if self.schedule not in ("geometric", "linear"):
            raise ThermoGFNError(f"unknown annealing schedule {self.schedule!r}; choose geometric or linear")
        if not all(math.isfinite(b) and b > 0 for b in (self.beta_start, self.beta_end)):
            raise ThermoGFNError(f"annealing betas must be finite and > 0, got {self.beta_start} -> {self.beta_end}")
        if self.mutations < 1 or self.restart_patience < 0:
            raise ThermoGFNError("annealing needs mutations >= 1 and restart_patience >= 0")


class SimulatedAnnealing(BaseTrainer):
    """``batch_size`` parallel annealed Metropolis chains with best-so-far tracking and optional restarts."""

    mutates_tokens = True  # point mutations

    def __init__(self, cfg: RunConfig, task: Task | None = None, params: SAParams | None = None):
        super().__init__(cfg, task)
        self.params = params or self.method_params(SAParams)
        n = self.cfg.batch_size
        self.state = ChainState(n, self.task.length)
        self.best_x = torch.zeros(n, self.task.length, dtype=torch.int64)
        self.best_log_r = torch.full((n,), float("-inf"), dtype=torch.float64)
        self.best_raw = torch.zeros(n, dtype=torch.float64)
        self.run_best = torch.full((n,), float("-inf"), dtype=torch.float64)  # best log R since the last (re)start
        self.stale = torch.zeros(n, dtype=torch.int64)  # rounds since run_best last improved
        self.acceptance = AcceptanceStats()
        self.restarts = 0

    def beta(self) -> float:
        p, (a, b) = self.progress, (self.params.beta_start, self.params.beta_end)
        return a * (b / a) ** p if self.params.schedule == "geometric" else a + (b - a) * p

    def chains(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current chain states and their raw rewards."""
        return self.state.x.clone(), self.state.raw.clone()

    def best(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each chain's best-so-far object and its raw reward."""
        return self.best_x.clone(), self.best_raw.clone()

    def train_round(self) -> RoundStats:
        beta = self.beta()
        restarting = self.state.fresh.clone()
        moving = int((~restarting).sum())
        proposal = self.state.propose(self.task, self.params.mutations, self.generator)
        raw, _ = self.evaluate_samples(proposal)  # the round's batch_size reward calls
        accept = self.state.step(proposal, raw, self.task.shaping.log_reward(raw), beta, self.generator)
        # best-so-far: the chain state (an improving proposal is always accepted, so this sees every improvement)
        log_r = self.state.log_r
        better = log_r > self.best_log_r
        self.best_x[better], self.best_log_r[better], self.best_raw[better] = \
            self.state.x[better], log_r[better], self.state.raw[better]
        self.run_best[restarting] = float("-inf")
        improved = log_r > self.run_best
        self.run_best = torch.maximum(self.run_best, log_r)
        self.stale = torch.where(improved, 0, self.stale + 1)
        if self.params.restart_patience > 0:
            stuck = self.stale >= self.params.restart_patience
            self.state.fresh |= stuck
            self.stale[stuck] = 0
            self.restarts += int(stuck.sum())
        self.acceptance.record(accept, moving)
        self.step += 1
        return RoundStats(float("nan"), None, float(raw.mean()))

    def method_metrics(self) -> dict[str, Any]:
        return {"beta": self.beta(), **self.acceptance.metrics(), "chain_reward": float(self.state.raw.mean()),
                "best_reward": float(self.best_raw.max()), "restarts": self.restarts}

    def method_state(self) -> dict[str, Any]:
        return {"chains": self.state.state_dict(), "best_x": self.best_x.clone(),
                "best_log_r": self.best_log_r.clone(), "best_raw": self.best_raw.clone(),
                "run_best": self.run_best.clone(), "stale": self.stale.clone(), "restarts": self.restarts,
                **self.acceptance.state_dict()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state["chains"])
        self.best_x, self.best_log_r = state["best_x"].clone(), state["best_log_r"].clone()
        self.best_raw, self.run_best, self.stale = state["best_raw"].clone(), state["run_best"].clone(), \
            state["stale"].clone()
        self.restarts = state["restarts"]
        self.acceptance.load_state_dict(state)
