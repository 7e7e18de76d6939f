"""``ppo``: proximal policy optimisation (Schulman et al. 2017) over the construction MDP, CleanRL style.

Each round: roll out ``cfg.batch_size`` episodes with the current policy (the round's reward calls), give each
stop the terminal reward ``R(x)**beta / max R**beta seen so far`` (:mod:`thermogfn.baselines.rl`), estimate
advantages with GAE from a separate value network, then run ``epochs`` passes of ``minibatches`` minibatch
updates of the clipped surrogate plus ``vf_coef`` x value loss minus ``ent_coef`` x entropy. Learning rate
``cfg.lr`` (Adam), gradient-norm clip ``cfg.grad_clip``, width ``cfg.model.hidden`` x ``cfg.model.layers``.

Defaults tuned on TFBind8 (benchmarks/results/rl_tuning.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thermogfn.baselines import rl
from thermogfn.trainer import RoundStats


@dataclass(frozen=True)
class PPOConfig:
    gamma: float = 1.0  # episodes have a fixed, short horizon and one terminal reward: no discounting
    gae_lambda: float = 0.95
    epochs: int = 4  # passes over the round's transitions
    minibatches: int = 4  # minibatches per pass
    clip: float = 0.2  # surrogate clip range
    clip_value: bool = False  # clip the value update as well
    ent_coef: float = 0.5  # high: lower values collapse onto a few sequences (rl_tuning.md)
    vf_coef: float = 0.5
    normalise_reward: bool = True  # divide R**beta by the largest seen so far (rl.RewardScale)
    norm_adv: bool = True  # standardise advantages per minibatch
    target_kl: float | None = None  # stop the round's epochs early above this approximate KL


class PPO(rl.ActorCriticTrainer):
    config_class = PPOConfig
    adam_eps = 1e-5

    def train_round(self) -> RoundStats:
        hp = self.hp
        # 1. collect: exactly batch_size episodes, one reward call each
        ep, raw, log_r, beta = rl.collect(self, self.actor, self.reward_scale)
        reward = self.reward_scale(log_r)
        with torch.no_grad():
            values = self.value(ep.states.flatten(0, 1)).view(ep.active.shape)
        adv = rl.gae(ep.step_rewards(reward), values, ep.done, ep.active, hp.gamma, hp.gae_lambda)
        returns = adv + values
        # 2. flatten the decisions actually taken
        m = ep.active
        s, a, old_logp = ep.states[m], ep.actions[m], ep.log_probs[m]
        b_adv, b_ret, b_val = adv[m], returns[m], values[m]
        n = s.shape[0]
        size = max(1, n // hp.minibatches)
        # 3. optimise the clipped objective for a few epochs
        losses, v_losses, ents, kls, clipfracs = [], [], [], [], []
        for _ in range(hp.epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, size):
                idx = order[start:start + size]
                logp_all = self.actor(s[idx])
                logp = logp_all.gather(1, a[idx, None]).squeeze(1)
                log_ratio = logp - old_logp[idx]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    kls.append(float(((ratio - 1) - log_ratio).mean()))
                    clipfracs.append(float(((ratio - 1).abs() > hp.clip).float().mean()))
                mb_adv = b_adv[idx]
                if hp.norm_adv and idx.numel() > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - hp.clip, 1 + hp.clip)).mean()
                new_v = self.value(s[idx])
                if hp.clip_value:
                    clipped = b_val[idx] + (new_v - b_val[idx]).clamp(-hp.clip, hp.clip)
                    v_loss = 0.5 * torch.max((new_v - b_ret[idx]) ** 2, (clipped - b_ret[idx]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((new_v - b_ret[idx]) ** 2).mean()
                ent = rl.entropy(logp_all).mean()
                loss = pg_loss - hp.ent_coef * ent + hp.vf_coef * v_loss
                losses.append(self.gradient_step(loss, self.optimizer, self.params))
                v_losses.append(float(v_loss.detach()))
                ents.append(float(ent.detach()))
            if hp.target_kl is not None and sum(kls[-hp.minibatches:]) / hp.minibatches > hp.target_kl:
                break
        self._last = {"entropy": _mean(ents), "value_loss": _mean(v_losses), "approx_kl": _mean(kls),
                      "clipfrac": _mean(clipfracs), "reward_beta": beta}
        self.step += 1
        return RoundStats(_mean(losses), None, float(raw.mean()))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")
