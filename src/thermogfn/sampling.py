"""Batched rollouts: forward from s0 with eps-uniform exploration, backward from objects with P_B.

Both return a :class:`Trajectories` batch in forward order. Rollouts run without gradients (one network
call per step for the whole batch); the objectives re-score the whole batch in a single pass. The randomness
of a rollout is drawn up front (:class:`ActionNoise`), so the steps are pure tensor functions
(:func:`forward_steps`, :func:`backward_steps`) that ``torch.compile`` can fuse a chunk of steps at a time
(``thermogfn.compiled``); eager and compiled rollouts draw the same actions from the same noise.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from thermogfn.mdp import MDP
from thermogfn.mdp.base import NEG_INF
from thermogfn.policy import BetaContext, GFlowNetModel


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


_TINY = torch.finfo(torch.float32).tiny


@dataclass
class ActionNoise:
    """The randomness of a whole rollout, drawn in one call per kind: Gumbel noise ``(T, B, A)`` for every step,
    row and action, and (with exploration) which rows explore at each step ``(T, B)``. Gumbel-max then samples
    every step without a random call: ``argmax(log p + G)`` is a draw from ``p`` (invalid actions, ``-inf``, are
    never drawn), and an exploring row's draw is uniform over its valid actions."""

    gumbel: torch.Tensor
    explore: torch.Tensor | None

    @staticmethod
    def draw(steps: int, batch: int, actions: int, eps: float, generator: torch.Generator | None,
             device: torch.device) -> ActionNoise:
        exp = torch.empty((steps, batch, actions), device=device).exponential_(generator=generator)
        gumbel = exp.clamp_min_(_TINY).log_().neg_()  # finite: -inf + G stays -inf, never NaN
        explore = (torch.rand((steps, batch), device=device, generator=generator) < eps) if eps > 0 else None
        return ActionNoise(gumbel, explore)

    def steps(self, start: int, stop: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(Gumbel noise, explore flags) of step ``start``, or of the steps ``start:stop``."""
        pick = start if stop is None else slice(start, stop)
        return self.gumbel[pick], None if self.explore is None else self.explore[pick]


def choose(log_probs: torch.Tensor, gumbel: torch.Tensor, explore: torch.Tensor | None) -> torch.Tensor:
    """One action per row of ``log_probs`` (B, A; -inf = invalid): Gumbel-max, uniform over valid actions where
    ``explore`` (B,) is set: a draw from ``(1 - eps) P + eps uniform(valid)``."""
    if explore is not None:
        log_probs = log_probs.masked_fill(explore[:, None] & (log_probs > NEG_INF), 0.0)
    return (log_probs + gumbel).argmax(-1)


StepState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (state, done or active, n)
StepsFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


def forward_steps(model: GFlowNetModel, ctx: BetaContext, state: torch.Tensor, done: torch.Tensor,
                  n: torch.Tensor, t0: torch.Tensor, gumbel: torch.Tensor,
                  explore: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """``len(gumbel)`` forward steps of every row from step ``t0`` (a 0-d tensor): finished rows take no-op stops.
    Returns the states after each step (B, C, D), the actions (B, C; -1 once finished), and the new
    (state, done, n)."""
    mdp: MDP = model.mdp
    states, actions = [], []
    for c in range(gumbel.shape[0]):
        action = choose(model.forward_log_probs(state, ctx), gumbel[c], None if explore is None else explore[c])
        action = torch.where(done, -1, action)
        stopped = action == mdp.stop
        n = torch.where(stopped, t0 + c, n)
        done = done | stopped
        state = mdp.step(state, torch.where(action < 0, mdp.stop, action))
        states.append(state)
        actions.append(action)
    return torch.stack(states, 1), torch.stack(actions, 1), state, done, n


def backward_steps(model: GFlowNetModel, ctx: BetaContext | None, state: torch.Tensor, gumbel: torch.Tensor,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``len(gumbel)`` backward steps with P_B of every row; rows at s0 stay there. Returns the states after each
    step (B, C, D), the backward actions (B, C; 0 where a row was at s0), and the number of moves per row."""
    mdp: MDP = model.mdp
    states, actions = [], []
    moves = torch.zeros(state.shape[0], dtype=torch.int64, device=state.device)
    for c in range(gumbel.shape[0]):
        active = ~mdp.is_initial(state)
        action = choose(model.backward_log_probs(state, ctx), gumbel[c], None)
        state = torch.where(active[:, None], mdp.back_step(state, action), state)
        moves = moves + active.long()
        states.append(state)
        actions.append(torch.where(active, action, 0))
    return torch.stack(states, 1), torch.stack(actions, 1), moves


def _chunk_steps(device: torch.device) -> int:
    """Steps between checks that every row has finished: each check is a host sync, cheap on the CPU and a stall
    on an accelerator. Finished rows only take no-op steps, so the result does not depend on it."""
    return 1 if device.type == "cpu" else 8


@torch.no_grad()
def forward_rollout(model: GFlowNetModel, beta: torch.Tensor, eps: float = 0.0,
                    generator: torch.Generator | None = None, steps_fn: StepsFn | None = None,
                    chunk: int | None = None) -> Trajectories:
    """Roll out ``len(beta)`` trajectories from s0, each at its own beta. By default the eager loops below;
    ``steps_fn`` (:func:`forward_steps` or its compiled form, ``thermogfn.compiled``) runs ``chunk`` steps at a
    time instead (default chunk: one step on the CPU, eight elsewhere)."""
    with model.rollout_weights() if steps_fn is None else nullcontext():
        return _forward_rollout(model, beta, eps, generator, steps_fn, chunk)


def _forward_rollout(model: GFlowNetModel, beta: torch.Tensor, eps: float, generator: torch.Generator | None,
                     steps_fn: StepsFn | None, chunk: int | None) -> Trajectories:
    mdp: MDP = model.mdp
    batch, steps = beta.shape[0], mdp.max_steps
    noise = ActionNoise.draw(steps, batch, mdp.n_forward, eps, generator, beta.device)
    ctx = model.context(beta)
    state = mdp.initial(batch)
    n = torch.full((batch,), steps, dtype=torch.int64, device=beta.device)
    done = torch.zeros(batch, dtype=torch.bool, device=beta.device)
    if mdp.fixed_length and steps_fn is None:  # eager: every row moves `steps` times, then stops; no bookkeeping
        states, moves = [state], []
        for t in range(steps):
            action = choose(model.forward_log_probs(state, ctx, depth=t), *noise.steps(t))
            state = mdp.step(state, action, depth=t)
            states.append(state)
            moves.append(action)
        stacked = torch.stack(states, dim=1)
        actions = torch.cat(moves + [torch.full((batch,), mdp.stop, device=beta.device)]).view(steps + 1, batch).T
    elif steps_fn is None:  # eager, several lengths: finished rows repeat stop (a no-op); actions fixed up after
        states, moves = [state], []
        for t in range(steps):
            action = choose(model.forward_log_probs(state, ctx), *noise.steps(t))
            action = action.masked_fill(done, mdp.stop)
            done = done | (action == mdp.stop)
            state = mdp.step(state, action)
            states.append(state)
            moves.append(action)
            if bool(done.all()):  # a host sync per step: cheaper than a network call on the CPU
                break
        moves.append(torch.full((batch,), mdp.stop, device=beta.device))  # rows still going are full: they stop
        actions = torch.stack(moves, 1)
        n = (actions == mdp.stop).int().argmax(1)  # the first stop
        actions = torch.where(torch.arange(actions.shape[1], device=beta.device) > n[:, None], -1, actions)
        missing = steps + 1 - actions.shape[1]
        actions = torch.nn.functional.pad(actions, (0, missing), value=-1)
        stacked = torch.stack(states + [state] * missing, dim=1)
    else:
        chunk = chunk or _chunk_steps(beta.device)
        parts, acts = [state[:, None]], []
        for t0 in range(0, steps, chunk):
            c = min(chunk, steps - t0)
            block, act, state, done, n = steps_fn(model, ctx, state, done, n, torch.tensor(t0, device=beta.device),
                                                  *noise.steps(t0, t0 + c))
            parts.append(block)
            acts.append(act)
            if t0 + c < steps and bool(done.all()):
                parts.append(state[:, None].expand(-1, steps - t0 - c, -1))
                acts.append(torch.full((batch, steps - t0 - c), -1, device=beta.device))
                break
        stacked = torch.cat(parts, 1)
        # whoever is left is at a full state and must stop
        actions = torch.cat([torch.cat(acts, 1), torch.where(done, -1, mdp.stop)[:, None]], 1)
    # backward action of every transition in one batched call: s_{t+1} -> s_t for t < n, 0 after
    moving = actions[:, :steps].clamp_min(0)
    back = mdp.backward_action_of(stacked[:, 1:].reshape(-1, stacked.shape[2]), moving.reshape(-1)).view(batch, steps)
    back = torch.where(torch.arange(steps, device=beta.device) < n[:, None], back, 0)
    return Trajectories(stacked, actions, back, n, mdp.terminal_object(state), beta)


@torch.no_grad()
def backward_rollout(model: GFlowNetModel, objects: torch.Tensor, beta: torch.Tensor,
                     generator: torch.Generator | None = None, steps_fn: Callable[..., tuple] | None = None,
                     chunk: int | None = None) -> Trajectories:
    """Trajectories ending in ``objects``, generated backwards with P_B (at each row's beta). By default an eager
    loop; ``steps_fn`` (:func:`backward_steps` or its compiled form) runs ``chunk`` steps at a time instead."""
    with model.rollout_weights() if steps_fn is None and model.pb_head is not None else nullcontext():
        return _backward_rollout(model, objects, beta, generator, steps_fn, chunk)


def _backward_rollout(model: GFlowNetModel, objects: torch.Tensor, beta: torch.Tensor,
                      generator: torch.Generator | None, steps_fn: Callable[..., tuple] | None,
                      chunk: int | None) -> Trajectories:
    mdp: MDP = model.mdp
    batch, steps = objects.shape[0], mdp.max_steps
    device = beta.device
    noise = ActionNoise.draw(steps, batch, mdp.n_back, 0.0, generator, device)
    ctx = model.context(beta) if model.pb_head is not None else None
    state = mdp.terminal_state(objects)
    parts, acts = [state[:, None]], []
    n = torch.zeros(batch, dtype=torch.int64, device=device)
    if mdp.fixed_length and steps_fn is None:  # eager: every row takes `steps` moves back to s0
        for t in range(steps):
            action = choose(model.backward_log_probs(state, ctx, depth=steps - t), *noise.steps(t))
            state = mdp.back_step(state, action, depth=steps - t)
            parts.append(state[:, None])
            acts.append(action[:, None])
        n = n + steps
    else:
        steps_fn = steps_fn or backward_steps
        chunk = chunk or _chunk_steps(device)
        for t0 in range(0, steps, chunk):
            c = min(chunk, steps - t0)
            block, act, moves = steps_fn(model, ctx, state, noise.gumbel[t0: t0 + c])
            state = block[:, -1]
            n = n + moves
            parts.append(block)
            acts.append(act)
            if t0 + c < steps and bool(mdp.is_initial(state).all()):
                parts.append(state[:, None].expand(-1, steps - t0 - c, -1))
                acts.append(torch.zeros(batch, steps - t0 - c, dtype=torch.int64, device=device))
                break
    rev = torch.cat(parts, 1)  # rev[:, k] = s_{n-k} (s0 repeated past k = n)
    rev_back = torch.cat(acts, 1)
    t_idx = torch.arange(steps + 1, device=device)
    if mdp.fixed_length:
        states, back = rev.flip(1), rev_back.flip(1)
    else:
        src = (n[:, None] - t_idx).clamp_min(0)  # forward s_t = rev[n - t]; past n, s_n = rev[0]
        src = torch.where(t_idx <= n[:, None], src, 0)
        states = rev.gather(1, src[:, :, None].expand(-1, -1, rev.shape[2]))
        # transition t (s_t -> s_{t+1}) was backward step n-1-t
        bsrc = (n[:, None] - 1 - t_idx[:steps]).clamp_min(0)
        back = torch.where(t_idx[:steps] < n[:, None], rev_back.gather(1, bsrc), 0)
    flat_parent = states[:, :-1].reshape(-1, states.shape[2])
    flat_child = states[:, 1:].reshape(-1, states.shape[2])
    fwd = mdp.forward_action_of(flat_parent, back.reshape(-1), flat_child).view(batch, steps)
    actions = torch.full((batch, steps + 1), -1, dtype=torch.int64, device=device)
    actions[:, :steps] = torch.where(t_idx[:steps] < n[:, None], fwd, -1)
    actions.scatter_(1, n[:, None], mdp.stop)
    return Trajectories(states, actions, back, n, objects.to(torch.int64), beta)
