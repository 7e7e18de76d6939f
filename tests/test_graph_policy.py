"""The graph trunk on the fragment MDP (thermogfn.networks.GraphTrunk): every conditioning rolls out and trains on a
synthetic and the real vocabulary with zero probability on invalid actions, the structured logits follow the MDP's
action layout, features ignore empty slots' padding and other rows, the architecture is refused where it does not
apply (and the token-wise trunks on fragments), and training lowers the exact TV on a tiny vocabulary."""

from __future__ import annotations

import pytest
import torch
from fragment_helpers import TINY, TinyFragmentTask, seh_vocab
from torch.nn import functional as F

from thermogfn.config import ModelConfig, RunConfig, resolve
from thermogfn.errors import ThermoGFNError
from thermogfn.exact import exact_metrics
from thermogfn.mdp import FragmentMDP, PrependAppendMDP
from thermogfn.networks import GraphTrunk, make_trunk
from thermogfn.objectives import trajectory_loss
from thermogfn.policy import GFlowNetModel
from thermogfn.sampling import Trajectories, forward_rollout

CONDITIONINGS = ["none", "layer", "logit", "logit+layer"]


def _synthetic() -> FragmentMDP:
    return FragmentMDP([[0, 1], [1, 0], [0, 0, 1], [2, 0, 1], [0], [1, 1]], [0, 0, 0, 1, 2, 3], max_blocks=5)


def _mdp(vocab: str) -> FragmentMDP:
    return _synthetic() if vocab == "synthetic" else FragmentMDP(*seh_vocab(), max_blocks=6)


def _model(mdp: FragmentMDP, conditioning: str = "logit+layer", hidden: int = 16) -> GFlowNetModel:
    torch.manual_seed(0)
    cfg = ModelConfig(conditioning=conditioning, architecture="graph", hidden=hidden, learn_pb=True)
    return GFlowNetModel(mdp, cfg, (1.0, 2.0), with_flow=True)


def _rollout(model: GFlowNetModel, batch: int = 16, seed: int = 0) -> Trajectories:
    return forward_rollout(model, torch.linspace(1.0, 2.0, batch), 0.0, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("vocab", ["synthetic", "seh"])
@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_every_conditioning_rolls_out_and_trains(vocab: str, conditioning: str) -> None:
    mdp = _mdp(vocab)
    model = _model(mdp, conditioning)
    assert model.pf_head is None and isinstance(model.trunk, GraphTrunk)
    traj = _rollout(model)
    assert (mdp.n_blocks(traj.objects) >= mdp.min_blocks).all()
    # every visited state: the policy puts zero mass exactly outside the MDP's canonical actions
    states = traj.states.flatten(0, 1)
    ctx = model.context(traj.beta).repeat(traj.states.shape[1])
    with torch.no_grad():
        probs = model.forward_log_probs(states, ctx).exp()
    canonical = torch.isfinite(mdp.merge_forward(states, torch.zeros(len(states), mdp.n_forward)))
    assert torch.equal(probs > 0, canonical)
    assert torch.allclose(probs.sum(-1), torch.ones(len(states)), atol=1e-5)
    for objective in ("tb", "db"):
        model.zero_grad()
        loss = trajectory_loss(model, traj, torch.zeros(len(traj.beta), dtype=torch.float64), objective, 0.9)
        loss.backward()
        assert torch.isfinite(loss)
        grads = [p.grad for p in model.trunk.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_logits_follow_the_action_layout() -> None:
    """Column ``V + e * S + i * R + k`` is the attach head at (slot i, open stem k) for entry e (0 at closed stems);
    0..V-1 and the last column are the readout's first-block and stop logits."""
    mdp = _synthetic()
    model = _model(mdp, "none")
    states = _rollout(model, batch=4).states[:, 2]
    trunk = model.trunk
    with torch.no_grad():
        features, logits = trunk.forward_logits(states)
        h, nodes, g, _ = trunk._encode(states, None)
        first_stop = trunk.first_stop(features)
        assert logits.shape == (4, mdp.n_forward)
        assert torch.allclose(logits[:, : mdp.V], first_stop[:, : mdp.V])
        assert torch.allclose(logits[:, mdp.stop], first_stop[:, -1])
        attach = logits[:, mdp.V: mdp.stop].view(4, mdp.V, mdp.N, mdp.R)
        assert (attach.permute(0, 2, 3, 1)[~g.stem_open] == 0).all()
        for b, i, k in g.stem_open.nonzero().tolist():
            node = h[nodes.tolist().index(b * mdp.N + i)]
            pre = trunk.attach_node(node) + trunk.stem(g.stem_atom[b, i, k]) + trunk.attach_global(features[b])
            expected = trunk.attach(F.leaky_relu(pre))
            for e in range(mdp.V):
                assert torch.allclose(logits[b, mdp.V + e * mdp.S + i * mdp.R + k], expected[e], atol=1e-5)


def test_features_ignore_padding_and_other_rows() -> None:
    """Whatever empty slots' parent / atom columns and the ``last`` column hold, and whichever rows share the
    batch, a state's features and logits are the same."""
    mdp = _synthetic()
    model = _model(mdp)
    states = _rollout(model, batch=8).states.flatten(0, 1)
    emb = model.context(torch.full((len(states),), 1.5)).embedding
    trunk = model.trunk
    with torch.no_grad():
        ref = trunk.forward_logits(states, emb)
        noisy = states.clone()
        n = mdp.N
        empty = (states[:, :n] == mdp.n_types).repeat(1, 3)
        g = torch.Generator().manual_seed(0)
        noisy[:, n: 4 * n] = torch.where(empty, torch.randint(0, min(n, mdp.n_atoms), empty.shape, generator=g),
                                         states[:, n: 4 * n])
        noisy[:, 4 * n] = torch.randint(0, n + 1, (len(states),), generator=g)
        assert not torch.equal(noisy, states)
        for a, b in zip(trunk.forward_logits(noisy, emb), ref, strict=True):
            assert torch.equal(a, b)
        for i in (0, 5, len(states) - 1):
            alone = trunk.forward_logits(states[i: i + 1], emb[i: i + 1])
            assert torch.allclose(alone[0], ref[0][i: i + 1], atol=1e-5)
            assert torch.allclose(alone[1], ref[1][i: i + 1], atol=1e-5)


def test_graph_is_refused_where_it_does_not_apply(tiny_task) -> None:
    with pytest.raises(ThermoGFNError, match="graph.*fragments") as err:
        make_trunk("graph", PrependAppendMDP(3, 4), 8, 1)
    assert "\n" not in str(err.value)
    for architecture in ("transformer", "conv"):
        with pytest.raises(ThermoGFNError, match="sequence MDP"):
            make_trunk(architecture, _synthetic(), 8, 1)
    with pytest.raises(ThermoGFNError, match="--architecture graph"):
        resolve(RunConfig(task=tiny_task.name, model=ModelConfig(architecture="graph")), tiny_task)


def test_training_lowers_the_exact_tv() -> None:
    """A few hundred TB steps on a tiny vocabulary (random rewards, beta in [1, 3]) at least halve the gap between
    the untrained graph policy's terminal distribution and the target at beta 1, and cut it at beta 3."""
    block_r, fragment_id, max_blocks = TINY["mixed"]
    mdp = FragmentMDP(block_r, fragment_id, max_blocks=max_blocks, min_blocks=1)
    task = TinyFragmentTask(mdp)
    model = _model(mdp, "logit", hidden=32)
    opt = torch.optim.Adam([{"params": model.policy_parameters(), "lr": 1e-3},
                            {"params": list(model.log_z.parameters()), "lr": 1e-2}])
    g = torch.Generator().manual_seed(0)
    before = [exact_metrics(model, task, beta)["tv"] for beta in (1.0, 3.0)]
    for _ in range(200):
        traj = forward_rollout(model, 1.0 + 2.0 * torch.rand(16, generator=g), 0.05, g)
        loss = trajectory_loss(model, traj, task.shaping.log_reward(task.raw_reward(traj.objects)), "tb", 0.9)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = [exact_metrics(model, task, beta)["tv"] for beta in (1.0, 3.0)]
    assert after[0] < 0.5 * before[0] and after[1] < 0.8 * before[1], (before, after)
