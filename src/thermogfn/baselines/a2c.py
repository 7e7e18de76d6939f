"""``a2c``: synchronous advantage actor-critic (Mnih et al. 2016) over the construction MDP, CleanRL style.

Each round: roll out ``cfg.batch_size`` episodes with the current policy (the round's reward calls), give each
stop the terminal reward ``R(x)**beta / max R**beta seen so far`` (:mod:`thermogfn.baselines.rl`), estimate
advantages with GAE (``gae_lambda = 1``: Monte-Carlo returns minus the value baseline), and take ONE gradient
step on ``-log pi(a|s) * A + vf_coef * value loss - ent_coef * entropy`` over all the round's decisions.
Learning rate ``cfg.lr`` (Adam), gradient-norm clip ``cfg.grad_clip``, width ``cfg.model.hidden``.

Defaults tuned on TFBind8 (benchmarks/results/rl_tuning.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thermogfn.baselines import rl
from thermogfn.trainer import RoundStats


@dataclass(frozen=True)
class A2CConfig:
    gamma: float = 1.0  # fixed short horizon, one terminal reward
    gae_lambda: float = 1.0
    ent_coef: float = 0.2  # high: lower values collapse onto a few sequences (rl_tuning.md)
    vf_coef: float = 0.5
    normalise_reward: bool = True  # divide R**beta by the largest seen so far (rl.RewardScale)
    norm_adv: bool = True  # standardise the round's advantages


class A2C(rl.ActorCriticTrainer):
    config_class = A2CConfig

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
