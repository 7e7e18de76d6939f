"""What the reinforcement-learning baselines (``ppo``, ``a2c``, ``sac``) share: networks over the MDP's states,
a policy over *distinct children* (``mdp.merge_forward``: invalid and duplicate actions get ``-inf``), a batched
episode rollout, the terminal reward and generalised advantage estimation.

The RL view of the construction MDP: an episode is ``s_0 -> ... -> s_n -> stop`` (``n + 1`` decisions, the last
one the stop action); every step has reward 0 except the stop, whose reward is the task's shaped reward raised to
a fixed inverse temperature, ``R(x)**beta = exp(beta * log R(x))`` with ``log R`` from ``task.shaping`` (as for
the GFlowNets) and ``beta`` the mean of ``cfg.beta_train`` (``thermogfn bench`` trains baselines at
``constant:1``, i.e. on ``R`` itself), divided by the largest such reward seen so far (:class:`RewardScale`,
on by default in every RL baseline). Steps where only stop is allowed (a full sequence) are kept: their
log-probability is 0 and they teach the critic the reward of the finished object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from thermogfn.conditioning import mlp
from thermogfn.config import RunConfig
from thermogfn.mdp import MDP, task_mdp
from thermogfn.priors import parse_beta_prior
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer


def network(mdp: MDP, hidden: int, layers: int, out: int, last_std: float | None = None) -> nn.Sequential:
    """An MLP over ``mdp.encode(state)`` with ``layers`` hidden layers of width ``hidden`` and ``out`` outputs.

    ``last_std`` re-initialises the output layer (normal weights, zero bias): a small value makes a fresh
    policy near-uniform over the valid children, as in CleanRL's ``layer_init(std=0.01)``.
    """
    net = mlp([mdp.encoding_dim] + [hidden] * layers + [out])
    if last_std is not None:
        last = net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.normal_(last.weight, std=last_std)
        nn.init.zeros_(last.bias)
    return net


class Policy(nn.Module):
    """pi(a | s) over the MDP's forward actions (stop last), merged over equal children."""

    def __init__(self, mdp: MDP, hidden: int, layers: int, last_std: float = 0.01):
        super().__init__()
        self.mdp = mdp
        self.net = network(mdp, hidden, layers, mdp.n_forward, last_std)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, n_forward); ``-inf`` for invalid actions and non-canonical duplicates."""
        logits = self.net(self.mdp.encode(states))
        return torch.log_softmax(self.mdp.merge_forward(states, logits), dim=-1)


def valid_actions(mdp: MDP, states: torch.Tensor) -> torch.Tensor:
    """Bool (N, n_forward): the canonical actions to distinct valid children."""
    zeros = torch.zeros(states.shape[0], mdp.n_forward)
    return torch.isfinite(mdp.merge_forward(states, zeros))


def entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Per-row entropy of log-probabilities with ``-inf`` entries (which contribute 0)."""
    finite = torch.isfinite(log_probs)
    safe = torch.where(finite, log_probs, 0.0)
    return -(safe.exp() * safe).sum(-1)


@dataclass
class Episodes:
    """A batch of finished episodes, padded to ``T = mdp.max_steps + 1`` decisions.

    states: (B, T, D) the state each decision is taken in (after the stop: the final state repeated).
    next_states: (B, T, D) the state after each decision (stop leaves the state unchanged).
    actions: (B, T) canonical actions (stop after the episode ended).
    log_probs: (B, T) log pi(a_t | s_t) under the rollout policy (0 after the end).
    active: (B, T) the decision belongs to the episode; done: (B, T) it is the episode's stop.
    objects: (B, length) the finished objects.
    """

    states: torch.Tensor
    next_states: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    active: torch.Tensor
    done: torch.Tensor
    objects: torch.Tensor

    def step_rewards(self, terminal: torch.Tensor) -> torch.Tensor:
        """(B, T) rewards: ``terminal`` at each episode's stop, 0 elsewhere."""
        return self.done.float() * terminal.float()[:, None]


@torch.no_grad()
def rollout(policy: Policy, batch: int, generator: torch.Generator) -> Episodes:
    """``batch`` episodes from s0 with the current policy: one network call per step for the whole batch."""
    mdp = policy.mdp
    horizon = mdp.max_steps + 1
    state = mdp.initial(batch)
    finished = torch.zeros(batch, dtype=torch.bool)
    states, actions, log_probs, active, done = [], [], [], [], []
    for _ in range(horizon):
        logp = policy(state)
        action = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        action = torch.where(finished, mdp.stop, action)
        states.append(state)
        actions.append(action)
        log_probs.append(torch.where(finished, 0.0, logp.gather(1, action[:, None]).squeeze(1)))
        active.append(~finished)
        stopped = (action == mdp.stop) & ~finished
        done.append(stopped)
        finished = finished | stopped
        state = mdp.step(state, action)
        if bool(finished.all()):
            break
    if not bool(finished.all()):
        raise RuntimeError(f"MDP {mdp.name}: episodes still running after {horizon} decisions")
    pad = horizon - len(states)
    st = torch.stack(states + [state] * pad, dim=1)
    nxt = torch.cat([st[:, 1:], state[:, None]], dim=1)
    stop = torch.full((batch,), mdp.stop, dtype=torch.int64)
    off = torch.zeros(batch, dtype=torch.bool)
    return Episodes(st, nxt, torch.stack(actions + [stop] * pad, dim=1),
                    torch.stack(log_probs + [torch.zeros(batch)] * pad, dim=1),
                    torch.stack(active + [off] * pad, dim=1), torch.stack(done + [off] * pad, dim=1),
                    mdp.terminal_object(state))


def reward_beta(beta_train: str, progress: float) -> float:
    """The fixed inverse temperature of the RL reward: the mean of the training prior (at ``progress``,
    which matters only for the annealed priors)."""
    return parse_beta_prior(beta_train).mean(progress)


def terminal_log_reward(task: Task, raw: torch.Tensor, beta: float) -> torch.Tensor:
    """``log R(x)**beta = beta * log R(x)`` with the task's shaping (float64)."""
    return beta * task.shaping.log_reward(raw)


class RewardScale:
    """Turns ``log R**beta`` into the reward the agent sees: ``R**beta / max R**beta seen so far`` (in (0, 1],
    computed in log space), or ``R**beta`` itself when ``normalise`` is off.

    The running maximum uses only what the reward calls returned, so no method is told the optimum; it keeps
    value and Q targets in (0, 1] on every task (TFBind8's R reaches 10, QM9str's 100), which makes the
    entropy coefficients and SAC's temperature mean the same thing across tasks and keeps the value loss from
    swamping the policy's share of the clipped gradient norm.
    """

    def __init__(self, normalise: bool = True):
        self.normalise = normalise
        self.log_max = float("-inf")

    def observe(self, log_r: torch.Tensor) -> None:
        self.log_max = max(self.log_max, float(log_r.max()))

    def __call__(self, log_r: torch.Tensor) -> torch.Tensor:
        return torch.exp(log_r - self.log_max if self.normalise else log_r).float()

    def state_dict(self) -> dict[str, float]:
        return {"log_max": self.log_max}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.log_max = state["log_max"]


def gae(rewards: torch.Tensor, values: torch.Tensor, done: torch.Tensor, active: torch.Tensor,
        gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates (B, T); ``values`` (B, T) are V(s_t); 0 on inactive steps."""
    batch, horizon = rewards.shape
    adv = torch.zeros(batch)
    out = torch.zeros(batch, horizon)
    for t in reversed(range(horizon)):
        nonterminal = (~done[:, t]).float()
        next_value = values[:, t + 1] if t + 1 < horizon else torch.zeros(batch)
        delta = rewards[:, t] + gamma * nonterminal * next_value - values[:, t]
        adv = (delta + gamma * lam * nonterminal * adv) * active[:, t].float()
        out[:, t] = adv
    return out


def flat(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The entries of (B, T, ...) ``x`` where ``mask`` (B, T) is true, in row-major order."""
    return x[mask]


def collect(trainer: BaseTrainer, actor: Policy,
            scale: RewardScale) -> tuple[Episodes, torch.Tensor, torch.Tensor, float]:
    """Roll out ``batch_size`` episodes and make their reward calls: episodes, raw rewards, log R(x)**beta, beta."""
    ep = rollout(actor, trainer.cfg.batch_size, trainer.generator)
    raw, _ = trainer.evaluate_samples(ep.objects)
    beta = reward_beta(trainer.cfg.beta_train, trainer.progress)
    log_r = terminal_log_reward(trainer.task, raw, beta)
    scale.observe(log_r)
    return ep, raw, log_r, beta


class ActorCriticTrainer(BaseTrainer):
    """What PPO and A2C share: a policy and a state-value network over the MDP, one Adam optimiser, the
    reward scale, and their checkpoint state. Subclasses set ``config_class`` and write ``train_round``."""

    config_class: type
    adam_eps: float = 1e-8

    def __init__(self, cfg: RunConfig, task: Task | None = None):
        super().__init__(cfg, task)
        self.hp = self.method_params(self.config_class)
        c = self.cfg
        self.mdp = task_mdp(c.mdp, self.task)
        self.actor = Policy(self.mdp, c.model.hidden, c.model.layers)
        self.critic = network(self.mdp, c.model.hidden, c.model.layers, 1, last_std=1.0)
        self.params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=c.lr, eps=self.adam_eps)
        self.reward_scale = RewardScale(self.hp.normalise_reward)
        self._last: dict[str, float] = {}

    def value(self, states: torch.Tensor) -> torch.Tensor:
        return self.critic(self.mdp.encode(states)).squeeze(-1)

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
