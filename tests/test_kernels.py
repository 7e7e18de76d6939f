"""The correction kernels leave pi(x, tau) = R(x)^beta P_B(tau|x) / Z invariant, exactly.

On tiny MDPs every complete trajectory is enumerated and each kernel's full transition matrix is built in float64
from the model's proposal probabilities and the kernels' own acceptance ratios; then pi K = pi and detailed
balance are checked to 1e-12, for betas inside and outside the training range.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_exact import expected_tv_noise, random_model, tv

from thermogfn.exact import target_distribution, terminal_distribution
from thermogfn.kernels import (
    Candidates,
    Paths,
    Reward,
    back_and_forth_log_ratio,
    corrected_samples,
    cut_point,
    enumerate_trajectories,
    expectation_estimate,
    greedy_step,
    independent_log_ratio,
    log_z_estimate,
    path_log_probs,
    score_paths,
)
from thermogfn.mdp import make_mdp
from thermogfn.sampling import forward_rollout

BETAS = (0.5, 2.0, 30.0)
TOL = 1e-12
# (mdp kind, vocab/height, length/ndim, conditioning, learned P_B, min_length (None: fixed length))
SETUPS = [("prepend-append", 2, 3, "logit", False, None), ("prepend-append", 2, 3, "logit+layer", True, None),
          ("append", 2, 3, "logit", False, None), ("hypergrid", 3, 2, "logit+layer", True, None),
          ("prepend-append", 2, 3, "logit+layer", True, 1), ("append", 2, 3, "logit", False, 2)]
IDS = [f"{m}-{c}{'-pb' if pb else ''}{f'-min{lo}' if lo else ''}" for m, _, _, c, pb, lo in SETUPS]


def setup(make_table_task, kind: str, vocab: int, length: int, conditioning: str, learn_pb: bool,
          min_length: int | None, beta: float):
    task = make_table_task(vocab, length, seed=1, spread=1.0, min_length=min_length)
    mdp = make_mdp(kind, vocab, length, min_length)
    model = random_model(mdp, conditioning, "positive", seed=2, learn_pb=learn_pb, beta=2.0)
    if learn_pb:
        with torch.no_grad():
            model.pb_head.weight.mul_(5.0)  # a P_B clearly not uniform
    traj = enumerate_trajectories(mdp, beta)
    paths = score_paths(model, traj, Reward(task.raw_reward, task.shaping))
    return task, mdp, model, paths


def target(paths: Paths) -> torch.Tensor:
    logits = paths.traj.beta.double() * paths.log_reward + paths.log_pb
    return torch.softmax(logits, 0)


def pairs(paths: Paths) -> tuple[Paths, Paths]:
    """(current, proposal) for every ordered pair (i, j), flattened row-major."""
    n = len(paths)
    i, j = torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)
    return paths.take(i), paths.take(j)


def mh_matrix(log_q: torch.Tensor, log_ratio: torch.Tensor) -> torch.Tensor:
    """Transition matrix of MH with proposal probabilities exp(log_q[i, j]) and log-ratios log_ratio[i, j]."""
    accept = torch.exp(torch.minimum(log_ratio, torch.zeros_like(log_ratio)))
    k = torch.exp(log_q) * accept
    k.fill_diagonal_(0.0)
    return k + torch.diag(1.0 - k.sum(1))


def independent_matrix(paths: Paths) -> torch.Tensor:
    n = len(paths)
    cur, prop = pairs(paths)
    return mh_matrix(paths.log_pf.expand(n, n), independent_log_ratio(cur, prop).view(n, n))


def refresh_matrix(paths: Paths) -> torch.Tensor:
    """tau -> tau' ~ P_B(.|x): the Gibbs refresh (rows renormalised: the float32 row noise of P_B, ~1e-8)."""
    same_x = (paths.traj.objects[:, None] == paths.traj.objects[None]).all(-1)
    g = torch.where(same_x, paths.log_pb.exp()[None, :], 0.0)
    return g / g.sum(1, keepdim=True)


def move_matrix(paths: Paths, k: int, wrong: bool = False) -> torch.Tensor:
    """Regrow from s_m (m = max(n-K, 0)) with P_F, accept by the partial-path ratio (``wrong``: without P_B)."""
    n = len(paths)
    cur, prop = pairs(paths)
    m = cut_point(cur.traj.n, k)
    pos = torch.arange(cur.traj.states.shape[1])
    same_prefix = ((cur.traj.states == prop.traj.states).all(-1) | (pos > m[:, None])).all(1)
    tail = pos[: cur.step_pf.shape[1]] >= m[:, None]
    log_q = torch.where(same_prefix, (prop.step_pf * tail).sum(1), -math.inf)
    ratio = back_and_forth_log_ratio(cur, prop, k)
    if wrong:
        ratio = ratio - ((prop.step_pb - cur.step_pb) * tail).sum(1)
    return mh_matrix(log_q.view(n, n), ratio.view(n, n))


def back_and_forth_matrix(paths: Paths, k: int) -> torch.Tensor:
    g = refresh_matrix(paths)
    return g @ move_matrix(paths, k) @ g


def check_kernel(kernel: torch.Tensor, pi: torch.Tensor) -> None:
    assert (kernel >= -TOL).all()
    assert torch.allclose(kernel.sum(1), torch.ones(len(pi), dtype=torch.float64), atol=TOL, rtol=0)
    assert float((pi @ kernel - pi).abs().max()) < TOL
    flow = pi[:, None] * kernel
    assert float((flow - flow.T).abs().max()) < TOL


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("spec", SETUPS, ids=IDS)
def test_kernels_keep_pi(make_table_task, spec, beta: float) -> None:
    _, mdp, _, paths = setup(make_table_task, *spec, beta)
    pi = target(paths)
    # P_B(.|x) sums to 1 over the enumeration: every trajectory is there, and only once
    idx = torch.unique(paths.traj.objects, dim=0, return_inverse=True)[1]
    per_x = torch.zeros(int(idx.max()) + 1, dtype=torch.float64).index_add_(0, idx, paths.log_pb.exp())
    # (a float32 network gives one state slightly different outputs in different rows of a batch: up to ~1e-8 here)
    assert torch.allclose(per_x, torch.ones_like(per_x), atol=1e-6, rtol=0)
    assert float(paths.log_pf.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    ind = independent_matrix(paths)
    check_kernel(ind, pi)
    full = mdp.max_steps
    for k in (1, 2, full):
        check_kernel(move_matrix(paths, k), pi)
        check_kernel(back_and_forth_matrix(paths, k), pi)
        p = 0.3
        check_kernel(p * ind + (1 - p) * back_and_forth_matrix(paths, k), pi)
    # K >= the longest path: regrowing from s0 is the independent proposal
    assert torch.allclose(move_matrix(paths, full), ind, atol=TOL, rtol=0)
    # irreducible: some power of the 1-step back-and-forth kernel is positive everywhere on prepend-append, not on
    # append (a tree: K < L never changes the first L - K letters) nor on the hypergrid or with variable lengths (a
    # cut at n - K > 0 must regrow exactly K moves, so the path length never changes); the mixture always is
    power = torch.linalg.matrix_power(back_and_forth_matrix(paths, 1), 4 * full)
    assert bool((power > 0).all()) == (mdp.name == "prepend-append" and spec[-1] is None)
    assert (torch.linalg.matrix_power(0.3 * ind + 0.7 * back_and_forth_matrix(paths, 1), 4) > 0).all()


@pytest.mark.parametrize("spec", SETUPS[:2], ids=IDS[:2])
def test_the_checks_have_power(make_table_task, spec) -> None:
    """Leaving the P_B terms out of the ratio, or the path terms out of the independent weight, breaks pi."""
    _, _, _, paths = setup(make_table_task, *spec, 2.0)
    pi = target(paths)
    wrong = refresh_matrix(paths) @ move_matrix(paths, 2, wrong=True) @ refresh_matrix(paths)
    assert float((pi @ wrong - pi).abs().max()) > 1e-3
    no_path = Paths(paths.traj, paths.raw_reward, paths.log_reward, paths.step_pf, torch.zeros_like(paths.step_pb))
    assert float((pi @ independent_matrix(no_path) - pi).abs().max()) > 1e-3


@pytest.mark.parametrize("beta", BETAS)
def test_marginal_independent_kernel_on_x(make_table_task, beta: float) -> None:
    task = make_table_task(2, 3, seed=1)
    mdp = make_mdp("prepend-append", 2, 3)
    model = random_model(mdp, "logit+layer", "positive", seed=2)
    q = terminal_distribution(model, task, beta)
    pi, _ = target_distribution(task, beta)
    w = beta * task.shaping.log_reward(task.table()) - q.log()
    kernel = mh_matrix(q.log().expand(len(q), -1), w[None, :] - w[:, None])
    check_kernel(kernel, pi)
    assert tv(q, pi) > 0.05  # the correction has something to correct


def test_path_log_probs_match_the_dp(make_table_task) -> None:
    """sum over paths to x of P_F(tau) is the DP marginal q(x); P_B(tau|x) sums to 1 over those paths."""
    task = make_table_task(2, 3, seed=1)
    mdp = make_mdp("prepend-append", 2, 3)
    model = random_model(mdp, "logit", "positive", seed=2, learn_pb=True)
    traj = enumerate_trajectories(mdp, 2.0)
    log_pf, log_pb = path_log_probs(model, traj)
    idx = task.object_index(traj.objects)
    q = torch.zeros(task.n_objects, dtype=torch.float64).index_add_(0, idx, log_pf.exp())
    assert torch.allclose(q, terminal_distribution(model, task, 2.0), atol=1e-6)
    pb = torch.zeros(task.n_objects, dtype=torch.float64).index_add_(0, idx, log_pb.exp())
    assert torch.allclose(pb, torch.ones_like(pb), atol=1e-12)


def test_greedy_filter_never_decreases_reward(make_table_task) -> None:
    task = make_table_task(3, 4, seed=0, spread=2.0)
    mdp = make_mdp("prepend-append", 3, 4)
    model = random_model(mdp, "logit", "positive")
    reward = Reward(task.raw_reward, task.shaping)
    g = torch.Generator().manual_seed(0)
    traj = forward_rollout(model, torch.full((512,), 2.0), generator=g)
    cur = Candidates(traj, *reward(traj.objects))
    start = cur.log_reward.clone()
    moved = 0
    for _ in range(5):
        nxt, kept = greedy_step(model, cur, reward, 2, g)
        assert (nxt.log_reward >= cur.log_reward).all() and torch.equal(nxt.log_reward > cur.log_reward,
                                                                       kept & (nxt.log_reward > cur.log_reward))
        assert torch.equal(nxt.raw_reward, task.raw_reward(nxt.traj.objects))
        assert torch.equal(mdp.terminal_object(nxt.traj.states[torch.arange(512), nxt.traj.n]), nxt.traj.objects)
        moved += int((nxt.log_reward > cur.log_reward).sum())
        cur = nxt
    assert moved > 0 and float(cur.log_reward.mean()) > float(start.mean()) + 0.5
    assert reward.calls == 512 * 6


@pytest.mark.parametrize("kernel", ["independent", "back-and-forth", "mixture"])
def test_chains_reach_the_target(make_table_task, kernel: str) -> None:
    task = make_table_task(2, 3, seed=1, spread=1.5)
    mdp = make_mdp("prepend-append", 2, 3)
    model = random_model(mdp, "logit", "positive", seed=2, logit_std=0.5)
    beta, n = 2.0, 4000
    pi, _ = target_distribution(task, beta)
    raw_tv = tv(terminal_distribution(model, task, beta), pi)
    calls = []
    out = corrected_samples(model, task, beta, n, kernel=kernel, burn_in=20, k=1,
                            reward_fn=lambda x: calls.append(len(x)) or task.raw_reward(x),
                            generator=torch.Generator().manual_seed(0))
    emp = torch.bincount(task.object_index(out.objects), minlength=task.n_objects).double() / n
    noise = expected_tv_noise(pi, n)
    assert tv(emp, pi) < 4 * noise < raw_tv / 3
    assert out.reward_calls == sum(calls) == n * 21
    assert torch.equal(out.raw_rewards, task.raw_reward(out.objects))
    assert 0 < out.acceptance < 1 and 0 < out.ess <= n


def test_thinned_chains_and_marginal(make_table_task) -> None:
    task = make_table_task(2, 3, seed=1, spread=1.5)
    mdp = make_mdp("prepend-append", 2, 3)
    model = random_model(mdp, "logit", "positive", seed=2, logit_std=0.5)
    pi, _ = target_distribution(task, 2.0)
    out = corrected_samples(model, task, 2.0, 4000, chains=400, burn_in=20, steps_per_sample=3, marginal=True,
                            generator=torch.Generator().manual_seed(1))
    assert out.objects.shape == (4000, 3) and out.steps == 20 + 3 * 9 and out.reward_calls == 400 * 48
    emp = torch.bincount(task.object_index(out.objects), minlength=task.n_objects).double() / 4000
    assert tv(emp, pi) < 6 * expected_tv_noise(pi, 4000)


def test_importance_estimates(make_table_task) -> None:
    task = make_table_task(2, 3, seed=1, spread=1.5)
    mdp = make_mdp("prepend-append", 2, 3)
    model = random_model(mdp, "logit+layer", "positive", seed=2, logit_std=0.5, learn_pb=True)
    reward = Reward(task.raw_reward, task.shaping)
    beta = 2.0
    pi, log_z = target_distribution(task, beta)
    g = torch.Generator().manual_seed(0)
    est, ess = log_z_estimate(model, reward, beta, 20_000, g)
    assert 100 < ess < 20_000
    assert abs(est - log_z) < 4 / math.sqrt(ess)
    assert abs(float(model.log_z(torch.tensor([beta])).detach()) - log_z) > 0.5  # the model alone is far off
    table = task.table()
    mean, _ = expectation_estimate(model, reward, task.raw_reward, beta, 20_000, g)
    want = float((pi * table).sum())
    assert abs(mean - want) < 0.05 * want
    raw_mean = float((terminal_distribution(model, task, beta) * table).sum())
    assert abs(raw_mean - want) > 0.1 * want
