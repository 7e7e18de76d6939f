"""``sac``: discrete soft actor-critic (Christodoulou 2019; CleanRL's ``sac_atari``) over the construction MDP.

Each round: roll out ``cfg.batch_size`` episodes with the current policy (the round's reward calls), store their
transitions ``(s, a, r, s', done)`` (reward ``R(x)**beta`` on the stop, divided by the largest seen so far when a
minibatch is drawn: :mod:`thermogfn.baselines.rl`) in a FIFO replay buffer, then take ``updates_per_round``
gradient steps on minibatches of ``batch`` transitions:

- twin Q networks regress on ``r + gamma (1 - done) V(s')`` with the soft value
  ``V(s') = sum_a' pi(a'|s') [min_i Q_targ_i(s', a') - alpha log pi(a'|s')]`` summed over the *valid distinct*
  children of ``s'`` only (invalid and duplicate actions have ``pi = 0`` and are left out);
- the policy minimises ``sum_a pi(a|s) [alpha log pi(a|s) - min_i Q_i(s, a)]`` over the valid actions;
- the temperature ``alpha`` is learned towards a per-state target entropy ``target_entropy_scale * log(#valid
  children)`` (states with one child, e.g. a full sequence that must stop, have target 0), or fixed when
  ``autotune`` is off;
- target networks follow with Polyak averaging (``tau``).

Learning rate ``cfg.lr`` (Adam) for all three, gradient-norm clip ``cfg.grad_clip``, width ``cfg.model.hidden``.
Defaults tuned on TFBind8 (benchmarks/results/rl_tuning.md).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch

from thermogfn.baselines import rl
from thermogfn.config import RunConfig
from thermogfn.mdp import task_mdp
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer, RoundStats


@dataclass(frozen=True)
class SACConfig:
    gamma: float = 1.0  # fixed short horizon, one terminal reward
    buffer_size: int = 50_000  # transitions
    batch: int = 256  # transitions per update
    updates_per_round: int = 4
    tau: float = 0.01  # Polyak rate of the target networks, every update
    autotune: bool = True  # learn alpha
    alpha: float = 0.05  # the initial (autotune) or fixed temperature
    target_entropy_scale: float = 0.6  # target entropy = scale * log(number of valid children)
    normalise_reward: bool = True  # divide R**beta by the largest seen so far (rl.RewardScale)


class ReplayTransitions:
    """A FIFO ring buffer of transitions (states as int64 rows; ``r`` is log R**beta on stops, -inf elsewhere,
    so that the reward scale is applied when a minibatch is drawn)."""

    def __init__(self, capacity: int, state_dim: int):
        self.capacity = capacity
        self.s = torch.zeros(capacity, state_dim, dtype=torch.int64)
        self.s2 = torch.zeros(capacity, state_dim, dtype=torch.int64)
        self.a = torch.zeros(capacity, dtype=torch.int64)
        self.r = torch.zeros(capacity, dtype=torch.float64)
        self.d = torch.zeros(capacity, dtype=torch.bool)
        self.ptr = 0
        self.size = 0

    def add(self, s: torch.Tensor, a: torch.Tensor, r: torch.Tensor, s2: torch.Tensor, d: torch.Tensor) -> None:
        n = s.shape[0]
        idx = (self.ptr + torch.arange(n)) % self.capacity
        self.s[idx], self.a[idx], self.r[idx], self.s2[idx], self.d[idx] = s, a, r, s2, d
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(self.size, (n,), generator=generator)
        return self.s[idx], self.a[idx], self.r[idx], self.s2[idx], self.d[idx]

    def state_dict(self) -> dict[str, Any]:
        k = self.size
        return {"s": self.s[:k].clone(), "s2": self.s2[:k].clone(), "a": self.a[:k].clone(),
                "r": self.r[:k].clone(), "d": self.d[:k].clone(), "ptr": self.ptr, "size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        k = state["size"]
        self.s[:k], self.s2[:k], self.a[:k], self.r[:k], self.d[:k] = (state[f] for f in ("s", "s2", "a", "r", "d"))
        self.ptr, self.size = state["ptr"], k


class SAC(BaseTrainer):
    def __init__(self, cfg: RunConfig, task: Task | None = None):
        super().__init__(cfg, task)
        self.hp = self.method_params(SACConfig)
        c, hp = self.cfg, self.hp
        self.mdp = task_mdp(c.mdp, self.task)
        width, depth, n_act = c.model.hidden, c.model.layers, self.mdp.n_forward
        self.actor = rl.Policy(self.mdp, width, depth)
        self.q1 = rl.network(self.mdp, width, depth, n_act)
        self.q2 = rl.network(self.mdp, width, depth, n_act)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        for p in list(self.q1_target.parameters()) + list(self.q2_target.parameters()):
            p.requires_grad_(False)
        self.q_params = list(self.q1.parameters()) + list(self.q2.parameters())
        self.q_optimizer = torch.optim.Adam(self.q_params, lr=c.lr)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.lr)
        self.log_alpha = torch.tensor(float(torch.log(torch.tensor(hp.alpha))), requires_grad=hp.autotune)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=c.lr) if hp.autotune else None
        self.buffer = ReplayTransitions(hp.buffer_size, self.mdp.state_dim)
        self.reward_scale = rl.RewardScale(hp.normalise_reward)
        self._last: dict[str, float] = {}

    def q_values(self, nets: tuple[torch.nn.Module, torch.nn.Module], states: torch.Tensor) -> torch.Tensor:
        x = self.mdp.encode(states)
        return torch.min(nets[0](x), nets[1](x))

    def _update(self) -> tuple[float, float, float, float]:
        hp = self.hp
        s, a, log_r, s2, d = self.buffer.sample(hp.batch, self.generator)
        r = self.reward_scale(log_r)
        alpha = float(self.log_alpha.detach().exp())
        # critics: soft Bellman target over the valid children of s'
        with torch.no_grad():
            next_logp = self.actor(s2)
            valid = torch.isfinite(next_logp)
            next_q = self.q_values((self.q1_target, self.q2_target), s2)
            soft = torch.where(valid, next_logp.exp() * (next_q - alpha * next_logp), 0.0).sum(-1)
            target = r + hp.gamma * (~d).float() * soft
        x = self.mdp.encode(s)
        q1 = self.q1(x).gather(1, a[:, None]).squeeze(1)
        q2 = self.q2(x).gather(1, a[:, None]).squeeze(1)
        q_loss = self.gradient_step(((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean(),
                                    self.q_optimizer, self.q_params)
        # actor: expected (alpha log pi - min Q) over the valid actions
        logp = self.actor(s)
        valid = torch.isfinite(logp)
        safe = torch.where(valid, logp, 0.0)
        probs = safe.exp() * valid
        with torch.no_grad():
            q = self.q_values((self.q1, self.q2), s)
        actor_loss = (probs * (alpha * safe - torch.where(valid, q, 0.0))).sum(-1).mean()
        self.gradient_step(actor_loss, self.actor_optimizer, self.actor.parameters())
        ent = -(probs * safe).sum(-1).detach()
        # temperature towards the per-state target entropy
        if self.alpha_optimizer is not None:
            target_ent = hp.target_entropy_scale * valid.sum(-1).float().log()
            alpha_loss = (self.log_alpha * (ent - target_ent)).mean()
            self.gradient_step(alpha_loss, self.alpha_optimizer, [self.log_alpha])
        # Polyak averaging of the targets
        with torch.no_grad():
            for net, tgt in ((self.q1, self.q1_target), (self.q2, self.q2_target)):
                for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                    pt.lerp_(p, hp.tau)
        return q_loss, float(actor_loss.detach()), float(ent.mean()), float(q1.detach().mean())

    def train_round(self) -> RoundStats:
        hp = self.hp
        ep, raw, log_r, beta = rl.collect(self, self.actor, self.reward_scale)
        step_log_r = torch.where(ep.done, log_r[:, None], float("-inf"))
        m = ep.active
        self.buffer.add(ep.states[m], ep.actions[m], step_log_r[m], ep.next_states[m], ep.done[m])
        out = [self._update() for _ in range(hp.updates_per_round)]
        q_loss, actor_loss, ent, q_mean = (sum(o[i] for o in out) / len(out) for i in range(4))
        self._last = {"q_loss": q_loss, "actor_loss": actor_loss, "entropy": ent, "q_mean": q_mean,
                      "alpha": float(self.log_alpha.detach().exp()), "buffer": self.buffer.size, "reward_beta": beta}
        self.step += 1
        return RoundStats(q_loss, None, float(raw.mean()))

    def method_metrics(self) -> dict[str, Any]:
        return dict(self._last)

    def method_state(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "q1": self.q1.state_dict(), "q2": self.q2.state_dict(),
                "q1_target": self.q1_target.state_dict(), "q2_target": self.q2_target.state_dict(),
                "q_optimizer": self.q_optimizer.state_dict(), "actor_optimizer": self.actor_optimizer.state_dict(),
                "log_alpha": self.log_alpha.detach().clone(),
                "alpha_optimizer": self.alpha_optimizer.state_dict() if self.alpha_optimizer is not None else None,
                "buffer": self.buffer.state_dict(),
                "reward_scale": self.reward_scale.state_dict(), "last": dict(self._last), "hp": asdict(self.hp)}

    def load_method_state(self, state: dict[str, Any]) -> None:
        for name in ("actor", "q1", "q2", "q1_target", "q2_target", "q_optimizer", "actor_optimizer"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        if self.alpha_optimizer is not None:
            self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.reward_scale.load_state_dict(state["reward_scale"])
        self._last = dict(state["last"])
