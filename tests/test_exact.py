"""Exact terminal marginals (DP over the state DAG) against Monte Carlo rollouts, for every conditioning."""

from __future__ import annotations

import math

import pytest
import torch

from thermogfn.config import ModelConfig
from thermogfn.exact import exact_metrics, target_distribution, terminal_distribution
from thermogfn.mdp import MDP, make_mdp
from thermogfn.policy import GFlowNetModel
from thermogfn.sampling import forward_rollout

N_SAMPLES = 20_000

VARIANTS = [("none", "positive"), ("layer", "positive"), ("logit", "positive"), ("logit", "signed"),
            ("logit+layer", "positive"), ("logit+layer", "signed")]


def random_model(mdp: MDP, conditioning: str, g_kind: str, seed: int = 0, logit_std: float | None = 1.5,
                 beta: float = 2.0, learn_pb: bool = False) -> GFlowNetModel:
    """An untrained model whose beta-conditioning is not the identity and whose P_F is far from uniform:
    ``pf_head`` is rescaled so that the (g-scaled) logits over all states have std ``logit_std`` at ``beta``."""
    torch.manual_seed(seed)
    cfg = ModelConfig(conditioning=conditioning, hidden=32, g_kind=g_kind, learn_pb=learn_pb)
    model = GFlowNetModel(mdp, cfg, beta_support=(1.0, 3.0))
    with torch.no_grad():
        model.pf_head.bias.normal_(0.0, 0.3)
        for g in (model.g_forward, model.g_backward):
            if g is None:
                continue
            if g.kind == "positive":
                g.power.fill_(0.7)  # g(beta) = beta^0.7 * exp(MLP)
            for p in g.net.parameters():
                p.add_(0.1 * torch.randn_like(p))
        if logit_std is not None:
            states = torch.cat(mdp.states_by_level())
            ctx = model.context(torch.full((len(states),), beta))
            logits = model.pf_head(model._features(states, ctx))
            if ctx.g_forward is not None:
                logits = logits * ctx.g_forward[:, None]
            factor = logit_std / float(logits[mdp.forward_mask(states)].std())
            model.pf_head.weight.mul_(factor)
            model.pf_head.bias.mul_(factor)
    return model


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def expected_tv_noise(p: torch.Tensor, n: int) -> float:
    """E[TV(empirical of n draws, p)] to first order: 0.5 * sum_x E|N(0, p(1-p)/n)|."""
    return 0.5 * float(torch.sqrt(2.0 * p * (1 - p) / (math.pi * n)).sum())


def empirical(model: GFlowNetModel, task, beta: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    traj = forward_rollout(model, beta, eps=0.0, generator=g)
    idx = task.object_index(traj.objects)
    return torch.bincount(idx, minlength=task.n_objects).double() / idx.numel()


def check_against_rollouts(model: GFlowNetModel, task, beta: float) -> None:
    p = terminal_distribution(model, task, beta)
    assert p.dtype == torch.float64 and p.shape == (task.n_objects,)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)  # float32 policy, float64 DP
    assert (p >= 0).all()
    emp = empirical(model, task, torch.full((N_SAMPLES,), beta))
    noise = expected_tv_noise(p, N_SAMPLES)
    d = tv(emp, p)
    assert d < 4 * noise, f"TV(empirical, exact) = {d:.4f} vs expected noise {noise:.4f}"
    # the test has power: the distribution is far from uniform, and the sample would show it
    uniform = torch.full_like(p, 1.0 / task.n_objects)
    assert tv(emp, uniform) > 8 * noise  # so the 4x tolerance would reject a uniform sampler


@pytest.mark.parametrize("conditioning,g_kind", VARIANTS, ids=[f"{c}-{g}" for c, g in VARIANTS])
@pytest.mark.parametrize("mdp_kind", ["prepend-append", "append"])
def test_exact_matches_rollouts_sequences(tiny_task, mdp_kind: str, conditioning: str, g_kind: str) -> None:
    mdp = make_mdp(mdp_kind, tiny_task.vocab_size, tiny_task.length)
    model = random_model(mdp, conditioning, g_kind, beta=2.5)
    check_against_rollouts(model, tiny_task, 2.5)


@pytest.mark.parametrize("conditioning,g_kind", VARIANTS, ids=[f"{c}-{g}" for c, g in VARIANTS])
def test_exact_matches_rollouts_hypergrid(make_table_task, conditioning: str, g_kind: str) -> None:
    task = make_table_task(5, 2, seed=3)  # 5x5 grid: any state may stop
    mdp = make_mdp("hypergrid", task.vocab_size, task.length)
    model = random_model(mdp, conditioning, g_kind, seed=1, beta=1.5)
    check_against_rollouts(model, task, 1.5)


def test_rollouts_use_each_rows_beta(tiny_task) -> None:
    """One batch with two betas: each half follows its own exact marginal."""
    mdp = make_mdp("prepend-append", tiny_task.vocab_size, tiny_task.length)
    model = random_model(mdp, "logit+layer", "positive")
    half = N_SAMPLES // 2
    beta = torch.cat([torch.full((half,), 1.0), torch.full((half,), 3.0)])
    g = torch.Generator().manual_seed(5)
    idx = tiny_task.object_index(forward_rollout(model, beta, generator=g).objects)
    for part, b in ((idx[:half], 1.0), (idx[half:], 3.0)):
        p = terminal_distribution(model, tiny_task, b)
        emp = torch.bincount(part, minlength=tiny_task.n_objects).double() / half
        assert tv(emp, p) < 4 * expected_tv_noise(p, half)
    p1, p3 = terminal_distribution(model, tiny_task, 1.0), terminal_distribution(model, tiny_task, 3.0)
    assert tv(p1, p3) > 8 * expected_tv_noise(p1, half)  # a sampler ignoring row betas would fail above


def test_exact_by_hand_on_append_tree(tiny_task) -> None:
    """On the append MDP (a tree) P(x) is the product of the step probabilities along x's single path."""
    mdp = make_mdp("append", tiny_task.vocab_size, tiny_task.length)
    model = random_model(mdp, "logit", "positive")
    beta = 2.0
    p = terminal_distribution(model, tiny_task, beta)
    x = tiny_task.all_objects()
    n = x.shape[0]
    ctx = model.context(torch.full((n,), beta))
    state = mdp.initial(n)
    log_p = torch.zeros(n, dtype=torch.float64)
    with torch.no_grad():
        for t in range(tiny_task.length):
            log_p += model.forward_log_probs(state, ctx).double().gather(1, x[:, t: t + 1]).squeeze(1)
            state = mdp.step(state, x[:, t])
        log_p += model.forward_log_probs(state, ctx).double()[:, mdp.stop]
    assert torch.allclose(p, log_p.exp(), atol=1e-12, rtol=1e-6)


def test_logit_conditioning_changes_the_distribution(tiny_task) -> None:
    """With g(beta) = beta the policy is softmax(beta * f): beta = 1 and beta = 3 give different marginals,
    and the step probabilities are exactly the beta-scaled softmax. Without conditioning nothing changes."""
    mdp = make_mdp("prepend-append", tiny_task.vocab_size, tiny_task.length)
    model = random_model(mdp, "logit", "positive", logit_std=None)
    with torch.no_grad():
        for p in model.g_forward.net.parameters():
            p.zero_()
        model.g_forward.power.fill_(1.0)  # g(beta) = beta exactly
    g1, g3 = model.g_forward(torch.tensor([1.0, 3.0])).tolist()
    assert g1 == pytest.approx(1.0) and g3 == pytest.approx(3.0)
    p1, p3 = terminal_distribution(model, tiny_task, 1.0), terminal_distribution(model, tiny_task, 3.0)
    assert tv(p1, p3) > 0.05
    states = torch.cat(mdp.states_by_level())
    with torch.no_grad():
        raw = model.pf_head(model._features(states, model.context(torch.ones(len(states)))))
        for b in (1.0, 3.0):
            want = torch.log_softmax(mdp.merge_forward(states, (b * raw).clamp(-20, 20)), -1)
            got = model.forward_log_probs(states, model.context(torch.full((len(states),), b)))
            assert torch.allclose(got.exp(), want.exp(), atol=1e-6)

    plain = random_model(mdp, "none", "positive", logit_std=None)
    assert torch.equal(terminal_distribution(plain, tiny_task, 1.0), terminal_distribution(plain, tiny_task, 3.0))


def test_logit_conditioning_after_training_steps(tiny_task) -> None:
    """A few TB steps at two betas make the logit-conditioned marginals differ between beta 1 and 3."""
    from thermogfn.objectives import loss, score

    mdp = make_mdp("prepend-append", tiny_task.vocab_size, tiny_task.length)
    torch.manual_seed(0)
    model = GFlowNetModel(mdp, ModelConfig(conditioning="logit", hidden=32), beta_support=(1.0, 3.0))
    p1, p3 = terminal_distribution(model, tiny_task, 1.0), terminal_distribution(model, tiny_task, 3.0)
    assert torch.allclose(p1, p3)  # g initialised at 1 for every beta
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        beta = torch.tensor([1.0, 3.0]).repeat(32)
        traj = forward_rollout(model, beta, eps=0.1, generator=g)
        s = score(model, traj, beta.double() * tiny_task.log_reward(traj.objects), need_flow=False)
        opt.zero_grad()
        loss("tb", s, traj.n).backward()
        opt.step()
    p1, p3 = terminal_distribution(model, tiny_task, 1.0), terminal_distribution(model, tiny_task, 3.0)
    assert tv(p1, p3) > 0.05
    # and the beta = 3 marginal is sharper, as its target is
    ent = [float(-(p * p.clamp_min(1e-300).log()).sum()) for p in (p1, p3)]
    assert ent[1] < ent[0]


def test_exact_metrics_fields(tiny_task) -> None:
    mdp = make_mdp("prepend-append", tiny_task.vocab_size, tiny_task.length)
    model = random_model(mdp, "logit", "positive")
    m = exact_metrics(model, tiny_task, 2.0)
    p = terminal_distribution(model, tiny_task, 2.0)
    q, log_z = target_distribution(tiny_task, 2.0)
    assert float(q.sum()) == pytest.approx(1.0)
    assert log_z == pytest.approx(float(torch.logsumexp(2.0 * torch.log(tiny_task.table()), 0)))
    assert m["tv"] == pytest.approx(tv(p, q))
    assert m["mass"] == pytest.approx(1.0)
    assert m["kl"] >= 0 and m["kl_reverse"] >= 0
    assert m["log_z_target"] == pytest.approx(log_z)
    assert m["tv"] > 0.1  # an untrained model is far from the target
