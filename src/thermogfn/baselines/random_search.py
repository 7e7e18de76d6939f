"""``random``: uniformly random objects (over every allowed length), ``batch_size`` reward calls per round. The
floor every method must beat. For tasks whose objects only their MDP builds (fragment trees), objects of
trajectories that pick uniformly among the distinct children of each state."""

from __future__ import annotations

from typing import Any

import torch

from thermogfn.config import RunConfig
from thermogfn.mdp import MDP, task_mdp
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer, RoundStats


def uniform_policy_objects(mdp: MDP, n: int, generator: torch.Generator) -> torch.Tensor:
    """Terminal objects of ``n`` trajectories that choose uniformly among the distinct children (stop included)."""
    states = mdp.initial(n)
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(mdp.max_steps + 1):
        distinct = torch.isfinite(mdp.merge_forward(states, torch.zeros(n, mdp.n_forward)))
        probs = distinct / distinct.sum(-1, keepdim=True)
        actions = torch.multinomial(probs, 1, generator=generator).squeeze(1).masked_fill(done, mdp.stop)
        states = torch.where(done[:, None], states, mdp.step(states, actions))
        done |= actions == mdp.stop
        if bool(done.all()):
            break
    return mdp.terminal_object(states)


class RandomSearch(BaseTrainer):
    """Draws ``batch_size`` objects uniformly at random each round."""

    def __init__(self, cfg: RunConfig, task: Task | None = None):
        super().__init__(cfg, task)
        self.mdp = None if self.task.token_objects else task_mdp(self.cfg.mdp, self.task)

    def train_round(self) -> RoundStats:
        if self.mdp is None:
            x = self.task.uniform_objects(self.cfg.batch_size, self.generator)
        else:
            x = uniform_policy_objects(self.mdp, self.cfg.batch_size, self.generator)
        raw, _ = self.evaluate_samples(x)
        self.step += 1
        return RoundStats(float("nan"), None, float(raw.mean()))

    def method_state(self) -> dict[str, Any]:
        return {}

    def load_method_state(self, state: dict[str, Any]) -> None:
        pass
