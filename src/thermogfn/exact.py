"""Exact evaluation on enumerable spaces: the model's terminal distribution P(x | beta), summed over every
path by dynamic programming over the state DAG, compared with the target R(x)^beta / Z(beta).
"""

from __future__ import annotations

import math

import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.mdp import MDP
from thermogfn.policy import GFlowNetModel
from thermogfn.tasks.base import Task

MAX_EXACT_STATES = 2_000_000


def exact_enumerable(mdp: MDP, task: Task) -> bool:
    """Whether the state space is small enough, and the task has a full table, for exact evaluation."""
    if task.table() is None:
        return False
    try:
        return mdp.n_states() <= MAX_EXACT_STATES
    except ThermoGFNError:  # an MDP too large to count its states (the fragment MDP beyond tiny vocabularies)
        return False


@torch.no_grad()
def terminal_distribution(model: GFlowNetModel, task: Task, beta: float, chunk: int = 65536) -> torch.Tensor:
    """P(x | beta) for every object, in ``task.object_index`` order (float64, sums to 1)."""
    mdp = model.mdp
    flow = torch.zeros(mdp.n_states(), dtype=torch.float64)
    flow[mdp.state_index(mdp.initial(1))] = 1.0
    terminal = torch.zeros(task.n_objects, dtype=torch.float64)
    actions = torch.arange(mdp.n_forward)
    ctx = model.context(torch.tensor([float(beta)]))
    for level in mdp.states_by_level():
        for start in range(0, level.shape[0], chunk):
            states = level[start: start + chunk]
            n = states.shape[0]
            only_stop = (mdp.forward_mask(states)[:, : mdp.stop] == 0).all()
            if only_stop:  # e.g. full-length sequences: no network call needed
                probs = torch.zeros(n, mdp.n_forward, dtype=torch.float64)
                probs[:, mdp.stop] = 1.0
            else:
                probs = model.forward_log_probs(states, ctx.repeat(n)).double().exp()  # invalid/duplicate -> 0
            mass = flow[mdp.state_index(states)]
            stops = probs[:, mdp.stop] > 0
            if stops.any():
                ends = task.object_index(mdp.terminal_object(states[stops]))
                terminal.index_add_(0, ends, mass[stops] * probs[stops, mdp.stop])
            move = probs[:, : mdp.stop] > 0
            rows, cols = move.nonzero(as_tuple=True)
            if rows.numel():
                children = mdp.step(states[rows], actions[cols])
                flow.index_add_(0, mdp.state_index(children), mass[rows] * probs[rows, cols])
    return terminal


def target_distribution(task: Task, beta: float) -> tuple[torch.Tensor, float]:
    """R(x)^beta / Z(beta) over every object, and log Z(beta)."""
    table = task.table()
    if table is None:
        raise ValueError(f"task {task.name} has no full reward table")
    logits = beta * task.shaping.log_reward(table)
    log_z = torch.logsumexp(logits, 0)
    return torch.exp(logits - log_z), float(log_z)


def exact_metrics(model: GFlowNetModel, task: Task, beta: float) -> dict[str, float]:
    """Total variation, KL both ways, log Z error and expected raw reward, model vs target, at ``beta``."""
    p = terminal_distribution(model, task, beta)
    q, log_z = target_distribution(task, beta)
    raw = task.table().double()
    tiny = 1e-300
    kl_pq = float((p * (torch.log(p.clamp_min(tiny)) - torch.log(q.clamp_min(tiny)))).sum())
    kl_qp = float((q * (torch.log(q.clamp_min(tiny)) - torch.log(p.clamp_min(tiny)))).sum())
    model_log_z = float(model.log_z(torch.tensor([float(beta)])).item())
    return {
        "tv": 0.5 * float((p - q).abs().sum()),
        "kl": kl_qp,  # KL(target || model)
        "kl_reverse": kl_pq,  # KL(model || target)
        "log_z": model_log_z,
        "log_z_target": log_z,
        "log_z_error": abs(model_log_z - log_z) if math.isfinite(model_log_z) else float("inf"),
        "expected_reward_model": float((p * raw).sum()),
        "expected_reward_target": float((q * raw).sum()),
        "mass": float(p.sum()),
    }
