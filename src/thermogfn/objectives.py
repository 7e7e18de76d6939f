"""Conditional TB, DB and SubTB(lambda) on a :class:`Trajectories` batch, all in log space.

Every objective is written through the node potentials ``A_i = log F(node_i) - sum_{t<i} (log P_F - log P_B)``
of the trajectory ``s_0 -> ... -> s_n -> x`` (n+2 nodes, with ``log F(s_0) = log Z(beta)`` and
``log F(x) = beta * log R(x)``): the residual of the sub-trajectory i..j is ``A_i - A_j``.
TB uses (0, n+1), DB every (t, t+1), SubTB every i < j weighted by lambda^(j-i-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thermogfn.config import OBJECTIVES
from thermogfn.policy import GFlowNetModel
from thermogfn.sampling import Trajectories


@dataclass
class Scored:
    """Per-transition log-probabilities and per-node log-flows of a trajectory batch."""

    log_pf: torch.Tensor  # (B, T+1), 0 past the stop
    log_pb: torch.Tensor  # (B, T+1), 0 for the stop transition and past it
    log_z: torch.Tensor  # (B,)
    log_reward_flow: torch.Tensor  # (B,) log F(x) = beta log R(x), in the dtype of the other flows
    n: torch.Tensor  # (B,) moves per trajectory
    state_flow: torch.Tensor | None = None  # (B, T+1) log F(s_t) (DB / SubTB); garbage past s_n

    @property
    def node_flow(self) -> torch.Tensor:
        """(B, T+2) log F of the nodes s_0..s_n, x (node 0: log Z; garbage past n + 1)."""
        batch, t1 = self.log_pf.shape
        inner = torch.zeros(batch, t1, dtype=self.log_z.dtype, device=self.log_z.device)
        if self.state_flow is not None:
            inner = torch.cat([self.state_flow[:, 1:], torch.zeros_like(self.state_flow[:, :1])], dim=1)
        inner = torch.cat([self.log_z[:, None], inner], dim=1)
        return torch.where(self._node == (self.n + 1)[:, None], self.log_reward_flow[:, None], inner)

    @property
    def node_valid(self) -> torch.Tensor:
        """(B, T+2) bool: the nodes s_0..s_n, x of each row."""
        return self._node <= (self.n + 1)[:, None]

    @property
    def _node(self) -> torch.Tensor:
        return torch.arange(self.log_pf.shape[1] + 1, device=self.log_pf.device)


def score(model: GFlowNetModel, traj: Trajectories, beta_log_reward: torch.Tensor,
          need_flow: bool) -> Scored:
    """Evaluate the model on every state of the batch in one pass and gather what the losses need. Where
    trajectories have different lengths, only the states ``s_0..s_n`` of each row are evaluated (the padding
    repeats ``s_n``)."""
    batch, t1, dim = traj.states.shape
    steps = t1 - 1
    device = traj.states.device
    ctx = model.context(traj.beta).repeat(t1)
    states = traj.states.reshape(-1, dim)
    actions = traj.actions.clamp_min(0).reshape(-1)
    # the backward action that leads from state t back to t-1 (none for s_0)
    back = torch.cat([torch.zeros_like(traj.back_actions[:, :1]), traj.back_actions], 1).reshape(-1)
    rows = None
    if not model.mdp.fixed_length:
        rows = (torch.arange(t1, device=device) <= traj.n[:, None]).reshape(-1).nonzero().squeeze(1)
        states, actions, back, ctx = states[rows], actions[rows], back[rows], ctx.select(rows)
    out = model.step_outputs(states, ctx)
    pf = out.log_pf.gather(1, actions[:, None]).squeeze(1)
    pb = out.log_pb.gather(1, back[:, None]).squeeze(1)
    flow = out.log_flow
    if rows is not None:  # back to (B * t1,) with zeros in the padding
        pf, pb = (v.new_zeros(batch * t1).index_copy(0, rows, v) for v in (pf, pb))
        flow = None if flow is None else flow.new_zeros(batch * t1).index_copy(0, rows, flow)
    log_pf = torch.where(traj.actions >= 0, pf.view(batch, t1), 0.0)
    moved = torch.arange(steps, device=device) < traj.n[:, None]
    log_pb = torch.cat([torch.where(moved, pb.view(batch, t1)[:, 1:], 0.0), torch.zeros(batch, 1, device=device)],
                       dim=1)
    log_z = model.log_z(traj.beta)
    if need_flow:
        assert flow is not None
    state_flow = flow.view(batch, t1) if need_flow and flow is not None else None
    return Scored(log_pf, log_pb, log_z, beta_log_reward.to(log_z.dtype), traj.n, state_flow)


def _potentials(s: Scored) -> torch.Tensor:
    step = s.log_pf - s.log_pb  # (B, T+1)
    cum = torch.cat([torch.zeros_like(step[:, :1]), step.cumsum(1)], dim=1)  # (B, T+2)
    return s.node_flow - cum


def trajectory_balance(s: Scored, n: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of (log Z + sum log P_F - beta log R - sum log P_B)^2."""
    return ((s.log_z + (s.log_pf - s.log_pb).sum(1) - s.log_reward_flow) ** 2).mean()


def detailed_balance(s: Scored, n: torch.Tensor) -> torch.Tensor:
    """Mean over all transitions (stop included) of the squared edge residual."""
    a = _potentials(s)
    resid = a[:, :-1] - a[:, 1:]
    valid = s.node_valid[:, 1:]
    return (resid.pow(2) * valid).sum() / valid.sum()


def subtrajectory_balance(s: Scored, n: torch.Tensor, lam: float = 0.9) -> torch.Tensor:
    """lambda^(len-1)-weighted mean of all sub-trajectory residuals, per trajectory, then over the batch."""
    a = _potentials(s)
    nodes = a.shape[1]
    i = torch.arange(nodes, device=a.device)
    gap = i[None, :] - i[:, None]  # j - i
    weight = torch.where(gap > 0, lam ** (gap - 1).clamp_min(0).to(a.dtype), 0.0)
    pair_valid = s.node_valid[:, :, None] & s.node_valid[:, None, :]
    w = weight * pair_valid
    resid = (a[:, :, None] - a[:, None, :]) ** 2
    return ((w * resid).sum((1, 2)) / w.sum((1, 2))).mean()


def trajectory_loss(model: GFlowNetModel, traj: Trajectories, log_reward: torch.Tensor, objective: str,
                    subtb_lambda: float) -> torch.Tensor:
    """The ``objective``'s loss of a trajectory batch whose objects have (shaped) log-rewards ``log_reward``."""
    scored = score(model, traj, traj.beta.double() * log_reward, need_flow=objective != "tb")
    return loss(objective, scored, traj.n, subtb_lambda)


def loss(objective: str, s: Scored, n: torch.Tensor, subtb_lambda: float = 0.9) -> torch.Tensor:
    if objective == "tb":
        return trajectory_balance(s, n)
    if objective == "db":
        return detailed_balance(s, n)
    if objective == "subtb":
        return subtrajectory_balance(s, n, subtb_lambda)
    raise ValueError(f"objective must be one of {OBJECTIVES}")
