"""TB, DB and SubTB vanish on the exact optimal GFlowNet of a tiny task, and only there.

The oracle is built independently of the model code: uniform P_B over distinct parents, flows by a backward
DP (F(x) = R(x)^beta at terminal states, F(s) = sum over distinct children s' of F(s') P_B(s|s')), and
P_F(s'|s) = F(s') P_B(s|s') / F(s). It duck-types GFlowNetModel for the rollouts and the objectives.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from thermogfn.config import ModelConfig
from thermogfn.mdp import MDP, HypergridMDP, make_mdp
from thermogfn.objectives import OBJECTIVES, loss, score
from thermogfn.policy import BetaContext, GFlowNetModel, StepOutput
from thermogfn.sampling import Trajectories, backward_rollout, forward_rollout

NEG_INF = -math.inf
F64 = torch.float64


class Oracle:
    """The exact GFlowNet for targets R(x)^beta, as float64 tables over every state, per beta."""

    pb_head = None

    def __init__(self, mdp: MDP, task, noise: float = 0.0, seed: int = 0) -> None:
        self.mdp, self.task, self.noise, self.seed = mdp, task, noise, seed
        self.levels = mdp.states_by_level()
        states = torch.cat(self.levels)
        self.n = mdp.n_states()
        # uniform P_B over distinct parents, by brute force on the parents themselves
        self.log_pb = torch.full((self.n, mdp.n_back), NEG_INF, dtype=F64)
        for s in states:
            mask = mdp.backward_mask(s[None])[0]
            first: dict[tuple[int, ...], int] = {}
            for b in mask.nonzero().squeeze(1).tolist():
                parent = tuple(mdp.back_step(s[None], torch.tensor([b]))[0].tolist())
                first.setdefault(parent, b)
            idx = int(mdp.state_index(s[None]))
            for b in first.values():
                self.log_pb[idx, b] = -math.log(len(first))
        self._tables: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def _children(self, s: torch.Tensor) -> dict:
        """Distinct results of the valid forward actions of one state: key -> first action."""
        out: dict = {}
        for a in self.mdp.forward_mask(s[None])[0].nonzero().squeeze(1).tolist():
            k = "stop" if a == self.mdp.stop else tuple(self.mdp.step(s[None], torch.tensor([a]))[0].tolist())
            out.setdefault(k, a)
        return out

    def tables(self, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(log F over states, log P_F (n_states, n_forward)) at ``beta``."""
        if beta in self._tables:
            return self._tables[beta]
        mdp = self.mdp
        log_f = torch.full((self.n,), NEG_INF, dtype=F64)
        log_pf = torch.full((self.n, mdp.n_forward), NEG_INF, dtype=F64)
        edges: list[tuple[int, int, float]] = []  # (state, action, log F(s') + log P_B(s|s'))
        for level in reversed(self.levels):
            for s in level:
                i = int(mdp.state_index(s[None]))
                terms = []
                for k, a in self._children(s).items():
                    if k == "stop":
                        t = beta * float(self.task.log_reward(mdp.terminal_object(s[None]))[0])
                    else:
                        child = torch.tensor([k])
                        j = int(mdp.state_index(child))
                        b = int(mdp.backward_action_of(child, torch.tensor([a]))[0])
                        t = float(log_f[j] + self.log_pb[j, b])
                    terms.append(t)
                    edges.append((i, a, t))
                log_f[i] = torch.logsumexp(torch.tensor(terms, dtype=F64), 0)
        for i, a, t in edges:
            log_pf[i, a] = t - log_f[i]
        if self.noise:
            g = torch.Generator().manual_seed(self.seed)
            log_pf = torch.log_softmax(log_pf + self.noise * torch.randn(log_pf.shape, generator=g, dtype=F64), 1)
        self._tables[beta] = (log_f, log_pf)
        return log_f, log_pf

    # -- the GFlowNetModel interface the rollouts and objectives use -----------------------------------
    def context(self, beta: torch.Tensor) -> BetaContext:
        return BetaContext(beta, None, None, None)

    def _rows(self, states: torch.Tensor, beta: torch.Tensor, which: int) -> torch.Tensor:
        idx = self.mdp.state_index(states)
        out = torch.empty(len(states), self.mdp.n_forward if which else 1, dtype=F64)
        for b in beta.unique().tolist():
            rows = beta == b
            table = self.tables(b)[which]
            out[rows] = table[idx[rows]] if which else table[idx[rows]][:, None]
        return out

    def rollout_weights(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def forward_log_probs(self, states: torch.Tensor, ctx: BetaContext, depth: int | None = None) -> torch.Tensor:
        return self._rows(states, ctx.beta, 1)

    def backward_log_probs(self, states: torch.Tensor, ctx: BetaContext | None,
                           depth: int | None = None) -> torch.Tensor:
        out = self.log_pb[self.mdp.state_index(states)]
        at_root = torch.isinf(out).all(-1, keepdim=True)
        return out.masked_fill(at_root, 0.0)

    def step_outputs(self, states: torch.Tensor, ctx: BetaContext) -> StepOutput:
        return StepOutput(self.forward_log_probs(states, ctx), self.backward_log_probs(states, ctx),
                          self._rows(states, ctx.beta, 0)[:, 0])

    def log_z(self, beta: torch.Tensor) -> torch.Tensor:
        s0 = int(self.mdp.state_index(self.mdp.initial(1)))
        return torch.tensor([float(self.tables(b)[0][s0]) for b in beta.tolist()], dtype=F64)


CASES = {
    "prepend-append": ("prepend-append", 3, 3),
    "append": ("append", 3, 3),
    "hypergrid": ("hypergrid", 4, 2),
}


@pytest.fixture(params=list(CASES), scope="module")
def case(request: pytest.FixtureRequest, make_table_task):
    kind, k, length = CASES[request.param]
    task = make_table_task(k, length, seed=2, spread=1.5)
    return make_mdp(kind, k, length), task


def batches(oracle: Oracle, task, beta: torch.Tensor, seed: int = 0) -> dict[str, Trajectories]:
    g = torch.Generator().manual_seed(seed)
    fwd = forward_rollout(oracle, beta, eps=0.0, generator=g)
    x = task.objects_from_index(torch.randint(task.n_objects, (len(beta),), generator=g))
    bwd = backward_rollout(oracle, x, beta, generator=g)
    return {"forward": fwd, "backward": bwd}


def losses(oracle, task, traj: Trajectories) -> dict[str, float]:
    out = {}
    for obj in OBJECTIVES:
        s = score(oracle, traj, traj.beta.double() * task.log_reward(traj.objects), need_flow=obj != "tb")
        out[obj] = float(loss(obj, s, traj.n))
    return out


def test_oracle_is_consistent(case) -> None:
    """Sanity of the oracle itself: P_F normalised, log Z = log sum R^beta, and its marginal is the target."""
    mdp, task = case
    oracle = Oracle(mdp, task)
    for beta in (1.0, 2.5):
        log_f, log_pf = oracle.tables(beta)
        assert torch.allclose(log_pf.exp().sum(1), torch.ones(mdp.n_states(), dtype=F64))
        log_z = float(oracle.log_z(torch.tensor([beta]))[0])
        assert log_z == pytest.approx(float(torch.logsumexp(beta * torch.log(task.table()), 0)), abs=1e-10)
    from thermogfn.exact import target_distribution, terminal_distribution

    p = terminal_distribution(oracle, task, 2.5)
    q, _ = target_distribution(task, 2.5)
    assert torch.allclose(p, q, atol=1e-12)


@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_losses_vanish_at_the_optimum(case, beta: float) -> None:
    mdp, task = case
    oracle = Oracle(mdp, task)
    for name, traj in batches(oracle, task, torch.full((64,), beta, dtype=torch.float64)).items():
        assert traj.n.max() > 1, name
        for obj, value in losses(oracle, task, traj).items():
            assert value == pytest.approx(0.0, abs=1e-12), f"{obj} on {name} batch: {value}"


def test_losses_vanish_with_mixed_betas(case) -> None:
    mdp, task = case
    oracle = Oracle(mdp, task)
    beta = torch.tensor([1.0, 2.5, 1.7]).repeat(20).double()
    for traj in batches(oracle, task, beta, seed=3).values():
        for obj, value in losses(oracle, task, traj).items():
            assert value == pytest.approx(0.0, abs=1e-12), obj


@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_perturbed_oracle_has_positive_loss(case, beta: float) -> None:
    mdp, task = case
    bad = Oracle(mdp, task, noise=0.5, seed=1)
    for name, traj in batches(bad, task, torch.full((64,), beta, dtype=torch.float64)).items():
        for obj, value in losses(bad, task, traj).items():
            assert value > 1e-3, f"{obj} on {name} batch: {value}"
    # a wrong log Z alone: TB sees exactly the shift; DB (through the first edge) and SubTB see it too
    off = Oracle(mdp, task)
    shift = 0.3
    off.log_z = lambda b: Oracle.log_z(off, b) + shift  # type: ignore[method-assign]
    traj = batches(off, task, torch.full((64,), beta, dtype=torch.float64))["forward"]
    got = losses(off, task, traj)
    assert got["tb"] == pytest.approx(shift**2, rel=1e-9)
    assert got["subtb"] > 1e-3 and got["db"] > 1e-3


def _log_prob_to_child(model: GFlowNetModel, s: torch.Tensor, child: torch.Tensor, stop: bool,
                       ctx: BetaContext) -> float:
    """log P_F(child | s) by hand: softmax over the valid raw actions, summed over those reaching ``child``."""
    mdp = model.mdp
    with torch.no_grad():
        raw = model.pf_head(model._features(s[None], ctx))[0]
        if ctx.g_forward is not None:
            raw = raw * ctx.g_forward[0]
        raw = raw.clamp(-20, 20).double()
    valid = mdp.forward_mask(s[None])[0]
    p = torch.softmax(raw.masked_fill(~valid, NEG_INF), 0)
    total = 0.0
    for a in valid.nonzero().squeeze(1).tolist():
        if stop:
            total += float(p[a]) if a == mdp.stop else 0.0
        elif a != mdp.stop and torch.equal(mdp.step(s[None], torch.tensor([a]))[0], child):
            total += float(p[a])
    return math.log(total)


def _n_distinct_parents(mdp: MDP, s: torch.Tensor) -> int:
    acts = mdp.backward_mask(s[None])[0].nonzero().squeeze(1)
    return len({tuple(mdp.back_step(s[None], a[None])[0].tolist()) for a in acts})


@pytest.mark.parametrize("kind", ["prepend-append", "hypergrid"])
def test_tb_textbook_formula(make_table_task, kind: str) -> None:
    """TB = (log Z + sum log P_F - beta log R - sum log P_B)^2, every term recomputed by hand per trajectory."""
    task = make_table_task(3, 3, seed=4, spread=1.5)
    mdp = make_mdp(kind, task.vocab_size, task.length)
    torch.manual_seed(0)
    model = GFlowNetModel(mdp, ModelConfig(conditioning="logit+layer", hidden=16), (1.0, 3.0))
    with torch.no_grad():
        model.g_forward.power.fill_(0.8)
        model.log_z.logits.normal_()
    g = torch.Generator().manual_seed(0)
    beta = torch.tensor([1.0, 2.0, 3.0, 1.5, 2.5, 1.2])
    traj = forward_rollout(model, beta, eps=0.3, generator=g)
    traj = Trajectories.cat([traj, backward_rollout(model, task.all_objects()[[0, 5, 13, 26]],
                                                    torch.tensor([1.0, 2.0, 2.7, 1.1]), generator=g)])
    log_r = task.log_reward(traj.objects)
    s = score(model, traj, traj.beta.double() * log_r, need_flow=False)
    got = float(loss("tb", s, traj.n).detach())
    residuals = []
    for i in range(len(traj)):
        b = traj.beta[i: i + 1]
        ctx = model.context(b)
        n = int(traj.n[i])
        path = traj.states[i, : n + 1]
        assert torch.equal(path[0], mdp.initial(1)[0])
        assert torch.equal(mdp.terminal_object(path[-1:])[0], traj.objects[i])
        sum_pf = sum(_log_prob_to_child(model, path[t], path[t + 1], False, ctx) for t in range(n))
        sum_pf += _log_prob_to_child(model, path[n], path[n], True, ctx)
        sum_pb = sum(-math.log(_n_distinct_parents(mdp, path[t + 1])) for t in range(n))
        with torch.no_grad():
            log_z = float(model.log_z(b)[0])
        residuals.append(log_z + sum_pf - float(b[0]) * float(log_r[i]) - sum_pb)
    want = sum(r * r for r in residuals) / len(residuals)
    assert got == pytest.approx(want, rel=1e-4)
    assert want > 0.1  # a real, non-trivial value


def test_tb_is_differentiable_and_trains_log_z(tiny_task) -> None:
    """The TB gradient w.r.t. log Z is 2 * mean residual (the loss is a mean of squares)."""
    mdp = make_mdp("prepend-append", tiny_task.vocab_size, tiny_task.length)
    torch.manual_seed(0)
    model = GFlowNetModel(mdp, ModelConfig(conditioning="none", hidden=16), (1.0, 1.0))
    traj = forward_rollout(model, torch.ones(16), generator=torch.Generator().manual_seed(0))
    s = score(model, traj, tiny_task.log_reward(traj.objects), need_flow=False)
    value = loss("tb", s, traj.n)
    value.backward()
    a = s.node_flow.detach()[:, 0] + (s.log_pf - s.log_pb).detach().sum(1) - tiny_task.log_reward(traj.objects)
    assert float(model.log_z.value.grad) == pytest.approx(float(2 * a.mean()), rel=1e-4)
    with pytest.raises(ValueError):
        loss("nope", s, traj.n)


def test_hypergrid_oracle_uses_every_state_as_terminal(make_table_task) -> None:
    task = make_table_task(4, 2, seed=2)
    mdp = HypergridMDP(4, 2)
    oracle = Oracle(mdp, task)
    traj = forward_rollout(oracle, torch.full((2000,), 1.0, dtype=F64), generator=torch.Generator().manual_seed(0))
    assert (traj.n < mdp.max_steps).any() and (traj.n == 0).any()
