"""Markov kernels and importance sampling that correct a GFlowNet's samples to exactly R(x)^beta / Z(beta).

Every kernel leaves ``pi(x, tau) = R(x)^beta P_B(tau | x) / Z(beta)`` invariant on complete trajectories, so the
objects of its chains follow ``R^beta / Z`` (PAPER.md sections 9-10):

- independent Metropolis-Hastings: propose ``tau' ~ P_F``, weight ``beta log R(x) + log P_B(tau|x) - log P_F(tau)``
  (or ``beta log R(x) - log q(x)`` with the model's exact marginal ``q`` on enumerable spaces);
- back-and-forth (LS-GFN): refresh ``tau ~ P_B(.|x)``, cut the last ``K`` transitions off, regrow them with P_F,
  accept by the ratio of the partial paths, refresh again (so the kernel is reversible);
- a per-chain mixture of the two.

All chains move at once: one network call per rollout step for the whole batch, float64 path log-probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from thermogfn.config import KERNELS
from thermogfn.exact import terminal_distribution
from thermogfn.mdp import MDP
from thermogfn.policy import GFlowNetModel
from thermogfn.sampling import Trajectories, backward_rollout, forward_rollout
from thermogfn.tasks.base import Shaping, Task

LogRewardFn = Callable[[torch.Tensor], torch.Tensor]
RawRewardFn = Callable[[torch.Tensor], torch.Tensor]
_FIELDS = ("states", "actions", "back_actions", "n", "objects", "beta")


@dataclass
class Reward:
    """A raw reward function and its shaping, counting every object it scores in ``calls``."""

    raw_fn: RawRewardFn
    shaping: Shaping
    calls: int = 0

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw reward, log R) of objects (B, L), float64."""
        self.calls += x.shape[0]
        raw = self.raw_fn(x).to(torch.float64)
        return raw, self.shaping.log_reward(raw)


@dataclass
class Paths:
    """Complete trajectories with their float64 raw reward, log R(x) and per-transition log P_F / log P_B
    (at each row's beta). step_pf: (B, T+1), the stop included, 0 past it; step_pb: (B, T+1), 0 from the stop on.
    """

    traj: Trajectories
    raw_reward: torch.Tensor
    log_reward: torch.Tensor
    step_pf: torch.Tensor
    step_pb: torch.Tensor

    def __len__(self) -> int:
        return len(self.traj)

    @property
    def log_pf(self) -> torch.Tensor:
        return self.step_pf.sum(1)

    @property
    def log_pb(self) -> torch.Tensor:
        return self.step_pb.sum(1)

    def take(self, idx: torch.Tensor) -> Paths:
        """The rows ``idx`` (indices or a bool mask)."""
        traj = Trajectories(*(getattr(self.traj, f)[idx] for f in _FIELDS))
        return Paths(traj, self.raw_reward[idx], self.log_reward[idx], self.step_pf[idx], self.step_pb[idx])

    def where(self, cond: torch.Tensor, other: Paths) -> Paths:
        """Row-wise ``self if cond else other``."""
        def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.where(cond.view(-1, *([1] * (a.dim() - 1))), a, b)

        traj = Trajectories(*(pick(getattr(self.traj, f), getattr(other.traj, f)) for f in _FIELDS))
        return Paths(traj, *(pick(getattr(self, f), getattr(other, f))
                             for f in ("raw_reward", "log_reward", "step_pf", "step_pb")))


@dataclass
class Step:
    """One kernel step for every chain: the new states and which proposals were accepted."""

    paths: Paths
    accepted: torch.Tensor  # (B,) bool


@torch.no_grad()
def step_log_probs(model: GFlowNetModel, traj: Trajectories) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-transition log P_F and log P_B (B, T+1) in float64, all positions of all rows in one network pass.

    Each row of log-probabilities is renormalised in float64, so that paths sum exactly over every P_B(.|x)
    (``objectives.score`` keeps the float32 normalisation, off by ~1e-7).
    """
    batch, t1, dim = traj.states.shape
    out = model.step_outputs(traj.states.reshape(-1, dim), model.context(traj.beta).repeat(t1))
    log_pf_all = torch.log_softmax(out.log_pf.double(), -1).view(batch, t1, -1)
    log_pb_all = torch.log_softmax(out.log_pb.double(), -1).view(batch, t1, -1)
    taken = traj.actions >= 0
    pf = log_pf_all.gather(2, traj.actions.clamp_min(0)[:, :, None]).squeeze(2)
    pf = torch.where(taken, pf, 0.0)
    moved = torch.arange(t1 - 1) < traj.n[:, None]
    pb = log_pb_all[:, 1:].gather(2, traj.back_actions[:, :, None]).squeeze(2)
    pb = torch.cat([torch.where(moved, pb, 0.0), torch.zeros(batch, 1, dtype=pb.dtype)], dim=1)
    return pf, pb


def path_log_probs(model: GFlowNetModel, traj: Trajectories) -> tuple[torch.Tensor, torch.Tensor]:
    """(log P_F(tau), log P_B(tau | x)) per trajectory, float64, at each row's beta."""
    pf, pb = step_log_probs(model, traj)
    return pf.sum(1), pb.sum(1)


def score_paths(model: GFlowNetModel, traj: Trajectories, reward: Reward) -> Paths:
    """Score the objects (one reward call each) and the paths (one network pass)."""
    pf, pb = step_log_probs(model, traj)
    return Paths(traj, *reward(traj.objects), pf, pb)


def log_weight(paths: Paths, log_q: LogRewardFn | None = None) -> torch.Tensor:
    """Importance log-weight of each row against P_F: ``beta log R + log P_B - log P_F`` on paths, or
    ``beta log R - log q(x)`` with the exact marginal ``log_q``."""
    beta = paths.traj.beta.double()
    if log_q is not None:
        return beta * paths.log_reward - log_q(paths.traj.objects)
    return beta * paths.log_reward + paths.log_pb - paths.log_pf


def independent_log_ratio(cur: Paths, prop: Paths, log_q: LogRewardFn | None = None) -> torch.Tensor:
    """Log MH ratio of the independent proposal ``prop ~ P_F`` from ``cur``."""
    return log_weight(prop, log_q) - log_weight(cur, log_q)


def cut_point(n: torch.Tensor, k: int) -> torch.Tensor:
    """Index of the state the back-and-forth move regrows from: ``max(n - K, 0)``."""
    return (n - k).clamp_min(0)


def back_and_forth_log_ratio(cur: Paths, prop: Paths, k: int) -> torch.Tensor:
    """Log MH ratio of replacing ``cur``'s transitions from ``cut_point(n, K)`` on by ``prop``'s (which shares the
    prefix): ``beta (log R' - log R) + log P_B(back' | x') - log P_B(back | x) + log P_F(fwd) - log P_F(fwd')``.
    ``-inf`` where ``prop`` would be cut elsewhere (the reverse move is impossible: variable lengths)."""
    m = cut_point(cur.traj.n, k)
    tail = (torch.arange(cur.step_pf.shape[1]) >= m[:, None]).double()
    ratio = (cur.traj.beta.double() * (prop.log_reward - cur.log_reward)
             + ((prop.step_pb - cur.step_pb) * tail).sum(1) + ((cur.step_pf - prop.step_pf) * tail).sum(1))
    return torch.where(cut_point(prop.traj.n, k) == m, ratio, -math.inf)


def _accept(log_ratio: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(log_ratio.shape, generator=generator, dtype=torch.float64)
    return torch.log(u) < log_ratio


@torch.no_grad()
def regrow(model: GFlowNetModel, traj: Trajectories, m: torch.Tensor,
           generator: torch.Generator | None = None) -> Trajectories:
    """Keep each row's states ``s_0..s_m`` and roll the rest out afresh with P_F (eps = 0), at each row's beta."""
    mdp: MDP = model.mdp
    batch, steps = len(traj), mdp.max_steps
    ctx = model.context(traj.beta)
    state = traj.states[:, 0]
    states = [state]
    actions = torch.full((batch, steps + 1), -1, dtype=torch.int64)
    back = torch.zeros(batch, steps, dtype=torch.int64)
    n = torch.full((batch,), steps, dtype=torch.int64)
    done = torch.zeros(batch, dtype=torch.bool)
    for t in range(steps + 1):
        kept = t < m
        action = traj.actions[:, t]
        if not bool(kept.all()):
            probs = model.forward_log_probs(state, ctx).double().exp()
            action = torch.where(kept, action, torch.multinomial(probs, 1, generator=generator).squeeze(1))
        action = torch.where(done, -1, action)
        stopped = action == mdp.stop
        n = torch.where(stopped, t, n)
        actions[:, t] = action
        done = done | stopped
        if t < steps:
            moving = torch.where(action < 0, mdp.stop, action)
            child = mdp.step(state, moving)
            back[:, t] = torch.where(done, 0, mdp.backward_action_of(child, moving))
            state = child
            states.append(state)
    return Trajectories(torch.stack(states, 1), actions, back, n, mdp.terminal_object(state), traj.beta)


def refresh(model: GFlowNetModel, paths: Paths, generator: torch.Generator | None = None) -> Paths:
    """Gibbs step on tau given x: a fresh ``tau ~ P_B(. | x)`` for every row (no reward call)."""
    traj = backward_rollout(model, paths.traj.objects, paths.traj.beta, generator)
    return Paths(traj, paths.raw_reward, paths.log_reward, *step_log_probs(model, traj))


def independent_step(model: GFlowNetModel, cur: Paths, reward: Reward,
                     generator: torch.Generator | None = None, log_q: LogRewardFn | None = None) -> Step:
    """Independent MH: propose ``tau' ~ P_F(. | beta)`` for every chain, accept by the importance-weight ratio."""
    traj = forward_rollout(model, cur.traj.beta, 0.0, generator)
    prop = score_paths(model, traj, reward)
    accepted = _accept(independent_log_ratio(cur, prop, log_q), generator)
    return Step(prop.where(accepted, cur), accepted)


def back_and_forth_step(model: GFlowNetModel, cur: Paths, reward: Reward, k: int,
                        generator: torch.Generator | None = None) -> Step:
    """Refresh tau ~ P_B(.|x), regrow its last ``k`` transitions with P_F, accept by the partial-path MH ratio,
    refresh again (refresh-move-refresh is reversible w.r.t. pi). Alone it is irreducible only where paths to one
    object differ (prepend-append): on append (a tree) and on the hypergrid (a cut at n - k > 0 regrows exactly k
    moves) use ``k >= max_steps`` or the mixture."""
    cur = refresh(model, cur, generator)
    traj = regrow(model, cur.traj, cut_point(cur.traj.n, k), generator)
    prop = score_paths(model, traj, reward)
    accepted = _accept(back_and_forth_log_ratio(cur, prop, k), generator)
    return Step(refresh(model, prop.where(accepted, cur), generator), accepted)


@dataclass
class Candidates:
    """Objects under local search: their trajectories, raw rewards and log R (no path probabilities needed)."""

    traj: Trajectories
    raw_reward: torch.Tensor
    log_reward: torch.Tensor


def greedy_step(model: GFlowNetModel, cur: Candidates, reward: Reward, k: int,
                generator: torch.Generator | None = None) -> tuple[Candidates, torch.Tensor]:
    """LS-GFN's deterministic filter: a fresh path back from x with P_B, its last ``k`` transitions regrown with
    P_F, the candidate kept iff R(x') >= R(x). A search for high reward, not a sampler. Returns the new states and
    the mask of kept candidates."""
    back = backward_rollout(model, cur.traj.objects, cur.traj.beta, generator)
    traj = regrow(model, back, cut_point(back.n, k), generator)
    raw, log_r = reward(traj.objects)
    keep = log_r >= cur.log_reward

    def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(keep.view(-1, *([1] * (a.dim() - 1))), a, b)

    new_traj = Trajectories(*(pick(getattr(traj, f), getattr(cur.traj, f)) for f in _FIELDS))
    return Candidates(new_traj, pick(raw, cur.raw_reward), pick(log_r, cur.log_reward)), keep


def mixture_step(model: GFlowNetModel, cur: Paths, reward: Reward, k: int, p_independent: float,
                 generator: torch.Generator | None = None) -> Step:
    """Each chain takes an independent step with probability ``p_independent``, else a back-and-forth step
    (each kernel batched over its chains)."""
    indep = torch.rand(len(cur), generator=generator) < p_independent
    out, accepted = cur, torch.zeros(len(cur), dtype=torch.bool)
    for mask, run in ((indep, lambda p: independent_step(model, p, reward, generator)),
                      (~indep, lambda p: back_and_forth_step(model, p, reward, k, generator))):
        if bool(mask.any()):
            part = run(cur.take(mask))
            out = _scatter(out, mask, part.paths)
            accepted = accepted.masked_scatter(mask, part.accepted)
    return Step(out, accepted)


def _scatter(base: Paths, mask: torch.Tensor, part: Paths) -> Paths:
    """``base`` with the rows under ``mask`` replaced by ``part`` (in order)."""
    idx = torch.cumsum(mask.long(), 0) - 1
    spread = part.take(idx.clamp_min(0))
    return spread.where(mask, base)


def enumerate_trajectories(mdp: MDP, beta: float) -> Trajectories:
    """Every complete trajectory of a small MDP (distinct children only), padded like a rollout batch."""
    steps = mdp.max_steps
    prefix = mdp.initial(1)[:, None]  # (P, t+1, D)
    acts = torch.zeros(1, 0, dtype=torch.int64)
    done: list[tuple[torch.Tensor, torch.Tensor]] = []
    for _ in range(steps + 1):
        last = prefix[:, -1]
        valid = torch.isfinite(mdp.merge_forward(last, torch.zeros(len(last), mdp.n_forward)))
        rows, cols = valid.nonzero(as_tuple=True)
        stop = cols == mdp.stop
        done.append((prefix[rows[stop]], torch.cat([acts[rows[stop]], cols[stop, None]], 1)))
        rows, cols = rows[~stop], cols[~stop]
        prefix = torch.cat([prefix[rows], mdp.step(prefix[rows, -1], cols)[:, None]], 1)
        acts = torch.cat([acts[rows], cols[:, None]], 1)
    parts = [_padded(mdp, s, a, beta) for s, a in done if len(s)]
    return Trajectories.cat(parts)


def _padded(mdp: MDP, states: torch.Tensor, acts: torch.Tensor, beta: float) -> Trajectories:
    """Trajectories of ``n = len - 1`` moves (states (P, n+1, D), actions (P, n+1) ending in stop), padded."""
    batch, length, dim = states.shape
    n, steps = length - 1, mdp.max_steps
    full = torch.cat([states, states[:, -1:].expand(-1, steps + 1 - length, -1)], 1)
    actions = torch.cat([acts, torch.full((batch, steps + 1 - length), -1, dtype=torch.int64)], 1)
    back = torch.zeros(batch, steps, dtype=torch.int64)
    if n:
        child = states[:, 1:].reshape(-1, dim)
        back[:, :n] = mdp.backward_action_of(child, acts[:, :n].reshape(-1)).view(batch, n)
    return Trajectories(full, actions, back, torch.full((batch,), n), mdp.terminal_object(states[:, -1]),
                        torch.full((batch,), float(beta)))


@dataclass
class CorrectedSamples:
    """What :func:`corrected_samples` returns."""

    objects: torch.Tensor  # (n, L)
    raw_rewards: torch.Tensor  # (n,) float64
    acceptance: float  # accepted / proposed over every step after the initial draw
    reward_calls: int  # objects scored, the initial P_F draw included
    ess: float  # effective sample size of the returned samples (autocorrelation of log R along the chains)
    autocorr_time: float  # integrated autocorrelation time of log R, in kernel steps
    steps: int  # kernel steps per chain


def marginal_log_q(model: GFlowNetModel, task: Task, beta: float) -> LogRewardFn:
    """``x -> log q(x | beta)``, the model's exact terminal marginal (enumerable tasks only)."""
    log_q = torch.log(terminal_distribution(model, task, beta))
    return lambda x: log_q[task.object_index(x)]


def corrected_samples(model: GFlowNetModel, task: Task, beta: float, n: int, *,
                      reward_fn: RawRewardFn | None = None, kernel: str = "independent", chains: int | None = None,
                      burn_in: int = 30, steps_per_sample: int = 1, k: int | None = None,
                      p_independent: float = 0.5, marginal: bool = False,
                      generator: torch.Generator | None = None) -> CorrectedSamples:
    """``n`` samples of ``R^beta / Z`` from ``chains`` (default ``n``) MH chains started at P_F samples: each runs
    ``burn_in`` steps, then yields its state every ``steps_per_sample`` steps until ``n`` are collected.

    ``reward_fn`` (default ``task.raw_reward``) scores every proposal, so ``reward_calls`` counts them;
    ``log R = task.shaping.log_reward(raw)``. ``k`` (back-and-forth steps) defaults to ``(max_steps + 1) // 2``.
    ``marginal``: independent MH on x with the exact model marginal (enumerable tasks).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}")
    if marginal and kernel != "independent":
        raise ValueError("marginal=True applies to the independent kernel only")
    reward = Reward(reward_fn or task.raw_reward, task.shaping)
    chains = min(chains or n, n)
    per_chain = math.ceil(n / chains)
    k = k if k is not None else (model.mdp.max_steps + 1) // 2
    log_q = marginal_log_q(model, task, beta) if marginal else None

    def step(cur: Paths) -> Step:
        if kernel == "independent":
            return independent_step(model, cur, reward, generator, log_q)
        if kernel == "back-and-forth":
            return back_and_forth_step(model, cur, reward, k, generator)
        return mixture_step(model, cur, reward, k, p_independent, generator)

    cur = score_paths(model, forward_rollout(model, torch.full((chains,), float(beta)), 0.0, generator), reward)
    total = burn_in + steps_per_sample * (per_chain - 1)
    accepted, trace, kept = 0, [cur.log_reward], [cur] if burn_in == 0 else []
    for t in range(1, total + 1):
        out = step(cur)
        cur, accepted = out.paths, accepted + int(out.accepted.sum())
        trace.append(cur.log_reward)
        if t >= burn_in and (t - burn_in) % steps_per_sample == 0:
            kept.append(cur)
    tau = integrated_autocorr_time(torch.stack(trace[burn_in // 2:]))
    ess = chains * (1 + (per_chain - 1) * min(1.0, steps_per_sample / tau))
    objects = torch.cat([p.traj.objects for p in kept])[:n]
    raw = torch.cat([p.raw_reward for p in kept])[:n]
    return CorrectedSamples(objects, raw, accepted / max(1, chains * total), reward.calls, float(min(ess, n)),
                            tau, total)


def integrated_autocorr_time(trace: torch.Tensor) -> float:
    """Integrated autocorrelation time (in steps) of a (steps, chains) scalar trace, pooled over chains, summed
    over lags until the autocorrelation first drops below 0.05 (>= 1)."""
    x = trace.double() - trace.double().mean()
    var = float((x * x).mean())
    if var <= 0 or x.shape[0] < 2:
        return 1.0
    tau = 1.0
    for lag in range(1, x.shape[0]):
        rho = float((x[lag:] * x[:-lag]).mean()) / var
        if rho < 0.05:
            break
        tau += 2 * rho
    return tau


def importance_log_weights(model: GFlowNetModel, reward: Reward, beta: float, n: int,
                           generator: torch.Generator | None = None) -> tuple[Paths, torch.Tensor]:
    """``n`` trajectories from P_F and their log-weights ``beta log R + log P_B - log P_F``."""
    traj = forward_rollout(model, torch.full((n,), float(beta)), 0.0, generator)
    paths = score_paths(model, traj, reward)
    return paths, log_weight(paths)


def ess_of(log_w: torch.Tensor) -> float:
    """``(sum w)^2 / sum w^2``."""
    return float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)))


def log_z_estimate(model: GFlowNetModel, reward: Reward, beta: float, n: int,
                   generator: torch.Generator | None = None) -> tuple[float, float]:
    """(log of the unbiased estimate mean(w) of Z(beta), ESS) from ``n`` P_F trajectories."""
    _, log_w = importance_log_weights(model, reward, beta, n, generator)
    return float(torch.logsumexp(log_w, 0)) - math.log(n), ess_of(log_w)


def expectation_estimate(model: GFlowNetModel, reward: Reward, f: Callable[[torch.Tensor], torch.Tensor],
                         beta: float, n: int, generator: torch.Generator | None = None) -> tuple[float, float]:
    """(self-normalised estimate of E_{R^beta/Z}[f(x)], ESS) from ``n`` P_F trajectories."""
    paths, log_w = importance_log_weights(model, reward, beta, n, generator)
    w = torch.softmax(log_w, 0)
    return float((w * f(paths.traj.objects).double()).sum()), ess_of(log_w)
