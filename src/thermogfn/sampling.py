"""Batched rollouts: forward from s0 with eps-uniform exploration, backward from objects with P_B.

Both return a :class:`Trajectories` batch in forward order. Rollouts run without gradients (one network
call per step for the whole batch); the objectives re-score the whole batch in a single pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thermogfn.mdp import MDP
from thermogfn.policy import GFlowNetModel


@dataclass
class Trajectories:
    """A batch of complete trajectories ``s_0 -> ... -> s_n -> stop``, padded to ``T = mdp.max_steps``.

    states: (B, T+1, D); states after ``s_n`` repeat ``s_n``.
    actions: (B, T+1) canonical forward action at each state (stop at index n, -1 after).
    back_actions: (B, T) canonical backward action from s_{t+1} to s_t (t < n; 0 after).
    n: (B,) number of non-stop transitions.
    objects: (B, length); beta: (B,).
    """

    states: torch.Tensor
    actions: torch.Tensor
    back_actions: torch.Tensor
    n: torch.Tensor
    objects: torch.Tensor
    beta: torch.Tensor

    def __len__(self) -> int:
        return self.states.shape[0]

    @staticmethod
    def cat(parts: list[Trajectories]) -> Trajectories:
        return Trajectories(*(torch.cat([getattr(p, f) for p in parts]) for f in
                              ("states", "actions", "back_actions", "n", "objects", "beta")))


def _sample(log_probs: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """Sample from ``(1-eps) * P + eps * uniform(valid)`` for rows of log-probabilities (-inf = invalid)."""
    probs = log_probs.exp()
    if eps > 0:
        valid = torch.isfinite(log_probs).float()
        probs = (1 - eps) * probs + eps * valid / valid.sum(-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def forward_rollout(model: GFlowNetModel, beta: torch.Tensor, eps: float = 0.0,
                    generator: torch.Generator | None = None) -> Trajectories:
    """Roll out ``len(beta)`` trajectories from s0, each at its own beta."""
    mdp: MDP = model.mdp
    batch, steps = beta.shape[0], mdp.max_steps
    ctx = model.context(beta)
    state = mdp.initial(batch)
    states = [state]
    actions = torch.full((batch, steps + 1), -1, dtype=torch.int64)
    back = torch.zeros(batch, steps, dtype=torch.int64)
    n = torch.full((batch,), steps, dtype=torch.int64)
    done = torch.zeros(batch, dtype=torch.bool)
    for t in range(steps):
        action = _sample(model.forward_log_probs(state, ctx), eps, generator)
        action = torch.where(done, -1, action)
        stopped = action == mdp.stop
        n = torch.where(stopped, t, n)
        actions[:, t] = action
        moving = torch.where(action < 0, mdp.stop, action)  # finished rows take a no-op stop
        child = mdp.step(state, moving)
        back[:, t] = torch.where(done | stopped, 0, mdp.backward_action_of(child, moving))
        done = done | stopped
        state = child
        states.append(state)
        if bool(done.all()):
            states.extend([state] * (steps - t - 1))
            break
    actions[:, steps] = torch.where(done, -1, mdp.stop)  # whoever is left is at a full state and must stop
    stacked = torch.stack(states, dim=1)
    return Trajectories(stacked, actions, back, n, mdp.terminal_object(state), beta)


@torch.no_grad()
def backward_rollout(model: GFlowNetModel, objects: torch.Tensor, beta: torch.Tensor,
                     generator: torch.Generator | None = None) -> Trajectories:
    """Trajectories ending in ``objects``, generated backwards with P_B (at each row's beta)."""
    mdp: MDP = model.mdp
    batch, steps = objects.shape[0], mdp.max_steps
    ctx = model.context(beta) if model.pb_head is not None else None
    state = mdp.terminal_state(objects)
    rev_states = [state]
    rev_back = torch.zeros(batch, steps, dtype=torch.int64)
    n = torch.zeros(batch, dtype=torch.int64)
    for t in range(steps):
        active = ~mdp.is_initial(state)
        if not bool(active.any()):
            rev_states.extend([state] * (steps - t))
            break
        action = _sample(model.backward_log_probs(state, ctx), 0.0, generator)
        parent = mdp.back_step(state, action)
        rev_back[:, t] = torch.where(active, action, 0)
        n = n + active.long()
        state = torch.where(active[:, None], parent, state)
        rev_states.append(state)
    rev = torch.stack(rev_states, dim=1)  # rev[:, k] = s_{n-k} (s0 repeated past k = n)
    t_idx = torch.arange(steps + 1)
    src = (n[:, None] - t_idx).clamp_min(0)  # forward s_t = rev[n - t]; past n, s_n = rev[0]
    src = torch.where(t_idx <= n[:, None], src, 0)
    states = rev.gather(1, src[:, :, None].expand(-1, -1, rev.shape[2]))
    # transition t (s_t -> s_{t+1}) was backward step n-1-t
    bsrc = (n[:, None] - 1 - t_idx[:steps]).clamp_min(0)
    back = torch.where(t_idx[:steps] < n[:, None], rev_back.gather(1, bsrc), 0)
    flat_parent = states[:, :-1].reshape(-1, states.shape[2])
    flat_child = states[:, 1:].reshape(-1, states.shape[2])
    fwd = mdp.forward_action_of(flat_parent, back.reshape(-1), flat_child).view(batch, steps)
    actions = torch.full((batch, steps + 1), -1, dtype=torch.int64)
    actions[:, :steps] = torch.where(t_idx[:steps] < n[:, None], fwd, -1)
    actions.scatter_(1, n[:, None], mdp.stop)
    return Trajectories(states, actions, back, n, objects.to(torch.int64), beta)
