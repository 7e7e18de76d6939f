"""``a2c``: synchronous advantage actor-critic (Mnih et al. 2016) over the construction MDP, CleanRL style.

Each round: roll out ``cfg.batch_size`` episodes with the current policy (the round's reward calls), give each
stop the terminal reward ``R(x)**beta / max R**beta seen so far`` (:mod:`thermogfn.baselines.rl`), estimate
advantages with GAE (``gae_lambda = 1``: Monte-Carlo returns minus the value baseline), and take ONE gradient
step on ``-log pi(a|s) * A + vf_coef * value loss - ent_coef * entropy`` over all the round's decisions.
Learning rate ``cfg.lr`` (Adam), gradient-norm clip ``cfg.grad_clip``, width ``cfg.model.hidden``.

Defaults tuned on TFBind8 (benchmarks/results/rl_tuning.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from thermogfn.baselines import rl
from thermogfn.config import RunConfig
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer, RoundStats


@dataclass(frozen=True)
class A2CConfig:
    gamma: float = 1.0  # fixed short horizon, one terminal reward
    gae_lambda: float = 1.0
    ent_coef: float = 0.2  # high: lower values collapse onto a few sequences (rl_tuning.md)
    vf_coef: float = 0.5
    normalise_reward: bool = True  # divide R**beta by the largest seen so far (rl.RewardScale)
    norm_adv: bool = True  # standardise the round's advantages


class A2C(BaseTrainer):
    def __init__(self, cfg: RunConfig, task: Task | None = None):
        super().__init__(cfg, task)
        self.hp = self.method_params(A2CConfig)
        c = self.cfg
        self.mdp = rl.build_mdp(c.mdp, self.task)
        self.actor, self.critic = rl.actor_critic(self.mdp, c.model.hidden, c.model.layers)
        self.params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=c.lr)
        self.reward_scale = rl.RewardScale(self.hp.normalise_reward)
        self._last: dict[str, float] = {}

    def value(self, states: torch.Tensor) -> torch.Tensor:
        return self.critic(self.mdp.encode(states)).squeeze(-1)

    def train_round(self) -> RoundStats:
        hp = self.hp
        ep, raw, log_r, beta = rl.collect(self, self.actor, self.reward_scale)
        reward = self.reward_scale(log_r)
        m = ep.active
        s, a = ep.states[m], ep.actions[m]
        values_all = self.value(ep.states.flatten(0, 1)).view(m.shape)
        with torch.no_grad():
            adv = rl.gae(ep.step_rewards(reward), values_all.detach(), ep.done, m, hp.gamma, hp.gae_lambda)
        returns, adv = (adv + values_all.detach())[m], adv[m]
        if hp.norm_adv and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        logp_all = self.actor(s)
        logp = logp_all.gather(1, a[:, None]).squeeze(1)
        pg_loss = -(logp * adv).mean()
        v_loss = 0.5 * ((values_all[m] - returns) ** 2).mean()
        ent = rl.entropy(logp_all).mean()
        loss = self.gradient_step(pg_loss - hp.ent_coef * ent + hp.vf_coef * v_loss, self.optimizer, self.params)
        self._last = {"entropy": float(ent.detach()), "value_loss": float(v_loss.detach()), "reward_beta": beta}
        self.step += 1
        return RoundStats(loss, None, float(raw.mean()))

    def method_metrics(self) -> dict[str, Any]:
        return dict(self._last)

    def method_state(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "optimizer": self.optimizer.state_dict(), "reward_scale": self.reward_scale.state_dict(),
                "last": dict(self._last), "hp": asdict(self.hp)}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.reward_scale.load_state_dict(state["reward_scale"])
        self._last = dict(state["last"])
