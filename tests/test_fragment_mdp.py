"""The fragment-tree MDP: brute-force checks of the DAG on tiny vocabularies (parents, merges, action round trips,
flow conservation with the uniform P_B, exact evaluation), rollouts through the sampler, and the round trip of the
950 reference molecules of the original sEH benchmark (needs the shared data)."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict

import pytest
import torch
from fragment_helpers import TINY, TinyFragmentTask, seh_vocab, state_key

from thermogfn.config import ModelConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.exact import exact_metrics
from thermogfn.mdp import FragmentMDP
from thermogfn.objectives import trajectory_loss
from thermogfn.policy import GFlowNetModel
from thermogfn.sampling import backward_rollout, forward_rollout
from thermogfn.tasks.data import data_dir


@pytest.fixture(params=sorted(TINY), scope="module")
def tiny(request: pytest.FixtureRequest) -> FragmentMDP:
    block_r, fragment_id, max_blocks = TINY[request.param]
    return FragmentMDP(block_r, fragment_id, max_blocks=max_blocks, min_blocks=1)


def test_types_and_translation() -> None:
    mdp = FragmentMDP([[0, 1], [1, 0], [0, 1, 1], [0]], [0, 0, 0, 1])
    assert mdp.type_of == [0, 0, 1, 2]  # same fragment, different attachment multiset: another type
    assert mdp.entry_for == {(0, 0): 0, (0, 1): 1, (1, 0): 2, (2, 0): 3}
    assert mdp.attachable == [{0, 1}, {0}, {0}]


def test_enumeration_parents_and_merges(tiny: FragmentMDP) -> None:
    mdp = tiny
    levels = mdp.states_by_level()
    states = torch.cat(levels)
    assert mdp.n_states() == len(states) == len({state_key(mdp, s) for s in states})
    assert torch.equal(mdp.state_index(states), torch.arange(len(states)))
    g = torch.Generator().manual_seed(0)
    parents_of: dict[tuple[int, ...], set] = defaultdict(set)
    for s in states:
        s = s[None]
        valid = mdp.forward_mask(s)[0, : mdp.stop].nonzero().squeeze(1)
        logits = torch.randn(1, mdp.n_forward, generator=g)
        merged = mdp.merge_forward(s, logits)[0]
        children = mdp.step(s.expand(len(valid), -1), valid)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for a, child in zip(valid.tolist(), children, strict=True):
            groups[state_key(mdp, child)].append(a)
            parents_of[state_key(mdp, child)].add(state_key(mdp, s[0]))
        canonical = set(torch.isfinite(merged[: mdp.stop]).nonzero().squeeze(1).tolist())
        assert len(canonical) == len(groups)  # one merged action per distinct child
        for acts in groups.values():
            (rep,) = canonical.intersection(acts)
            assert math.isclose(float(merged[rep]), float(torch.logsumexp(logits[0, acts], 0)), rel_tol=1e-5)
    assert set(parents_of) <= {state_key(mdp, s) for s in states}  # closed under step
    for s in states[1:]:
        s = s[None]
        valid = mdp.backward_mask(s)[0].nonzero().squeeze(1)
        logits = torch.randn(1, mdp.n_back, generator=g)
        merged = mdp.merge_backward(s, logits)[0]
        groups = defaultdict(list)
        for b, parent in zip(valid.tolist(), mdp.back_step(s.expand(len(valid), -1), valid), strict=True):
            groups[state_key(mdp, parent)].append(b)
        assert set(groups) == parents_of[state_key(mdp, s[0])]  # parents are exactly the states stepping here
        canonical = set(torch.isfinite(merged).nonzero().squeeze(1).tolist())
        assert len(canonical) == len(groups)
        for acts in groups.values():
            (rep,) = canonical.intersection(acts)
            assert math.isclose(float(merged[rep]), float(torch.logsumexp(logits[0, acts], 0)), rel_tol=1e-5)


def _canonical(mdp: FragmentMDP, states: torch.Tensor, forward: bool) -> torch.Tensor:
    n = mdp.n_forward if forward else mdp.n_back
    merge = mdp.merge_forward if forward else mdp.merge_backward
    return torch.isfinite(merge(states, torch.zeros(len(states), n)))


def test_action_round_trips(tiny: FragmentMDP) -> None:
    mdp = tiny
    states = torch.cat(mdp.states_by_level())
    fwd = _canonical(mdp, states, True)
    fwd[:, mdp.stop] = False
    rows, acts = fwd.nonzero(as_tuple=True)
    parents, children = states[rows], mdp.step(states[rows], acts)
    back = mdp.backward_action_of(children, acts)
    assert _canonical(mdp, children, False).gather(1, back[:, None]).all()
    assert torch.equal(mdp.identity(mdp.back_step(children, back)), mdp.identity(parents))
    assert torch.equal(mdp.forward_action_of(parents, back, children), acts)
    rows, back = _canonical(mdp, states, False).nonzero(as_tuple=True)
    children = states[rows]
    parents = mdp.back_step(children, back)
    acts = mdp.forward_action_of(parents, back, children)
    assert _canonical(mdp, parents, True).gather(1, acts[:, None]).all()
    again = mdp.step(parents, acts)
    assert torch.equal(mdp.identity(again), mdp.identity(children))
    assert torch.equal(mdp.backward_action_of(again, acts), back)
    # canonical forward and backward edges are in one-to-one correspondence
    assert len(back) == int(fwd.sum())


def test_uniform_pb_conserves_flow(tiny: FragmentMDP) -> None:
    """Flows built backwards from random rewards with the MDP's uniform P_B reach s0 with all the reward: every
    backward edge is a forward edge, so P_F(s'|s) = F(s') P_B(s|s') / F(s) is a distribution sampling R / Z."""
    mdp = tiny
    levels = mdp.states_by_level()
    states = torch.cat(levels)
    g = torch.Generator().manual_seed(1)
    can_stop = mdp.forward_mask(states)[:, mdp.stop]
    reward = torch.rand(len(states), generator=g, dtype=torch.float64) * can_stop
    log_pb = torch.log_softmax(mdp.merge_backward(states, torch.zeros(len(states), mdp.n_back, dtype=torch.float64)), 1)
    moves = _canonical(mdp, states, True)
    moves[:, mdp.stop] = False
    rows, acts = moves.nonzero(as_tuple=True)
    children = mdp.step(states[rows], acts)
    child_idx = mdp.state_index(children)
    pb = log_pb[child_idx, mdp.backward_action_of(children, acts)].exp()
    flow = reward.clone()
    for level in reversed(levels):  # children lie in later levels: their flow is final
        idx = mdp.state_index(level)
        sel = torch.isin(rows, idx)
        flow.index_add_(0, rows[sel], flow[child_idx[sel]] * pb[sel])
    assert math.isclose(float(flow[0]), float(reward.sum()), rel_tol=1e-9)
    # and P_B sums to one over the parents that this enumeration reaches
    incoming = torch.zeros(len(states), dtype=torch.float64).index_add_(0, child_idx, pb)
    assert torch.allclose(incoming[1:], torch.ones(len(states) - 1, dtype=torch.float64))


def test_exact_metrics_run(tiny: FragmentMDP) -> None:
    task = TinyFragmentTask(tiny)
    assert math.isclose(tiny.log_n_objects, math.log(task.n_objects))
    torch.manual_seed(0)
    model = GFlowNetModel(tiny, ModelConfig(conditioning="logit", hidden=16), (1.0, 2.0))
    metrics = exact_metrics(model, task, 1.0)
    assert math.isclose(metrics["mass"], 1.0, rel_tol=1e-5)  # float32 policy
    assert 0.0 <= metrics["tv"] <= 1.0


def _medium() -> FragmentMDP:
    return FragmentMDP([[0, 1], [1, 0], [0, 0, 1], [2, 0, 1], [0], [1, 1]], [0, 0, 0, 1, 2, 3], max_blocks=5)


@pytest.mark.parametrize("vocab", ["medium", "seh"])
def test_rollouts_forward_and_back(vocab: str) -> None:
    mdp = _medium() if vocab == "medium" else FragmentMDP(*seh_vocab(), max_blocks=6)
    torch.manual_seed(0)
    model = GFlowNetModel(mdp, ModelConfig(conditioning="logit", hidden=16), (1.0, 2.0))
    beta = torch.linspace(1.0, 2.0, 32)
    traj = forward_rollout(model, beta, 0.2, torch.Generator().manual_seed(0))
    for t in range(mdp.max_steps):
        moving = t < traj.n
        step = mdp.step(traj.states[moving, t], traj.actions[moving, t])
        assert torch.equal(mdp.identity(step), mdp.identity(traj.states[moving, t + 1]))
    blocks = mdp.n_blocks(traj.objects)
    assert torch.equal(blocks, traj.n) and (blocks >= mdp.min_blocks).all()
    for x in traj.objects:
        assert torch.equal(mdp.from_blocks(*mdp.to_blocks(x)), x)
    back = backward_rollout(model, traj.objects, beta, torch.Generator().manual_seed(1))
    assert mdp.is_initial(back.states[:, 0]).all() and torch.equal(back.n, traj.n)
    for t in range(mdp.max_steps):
        moving = t < back.n
        step = mdp.step(back.states[moving, t], back.actions[moving, t])
        assert torch.equal(mdp.identity(step), mdp.identity(back.states[moving, t + 1]))
    for batch in (traj, back):
        loss = trajectory_loss(model, batch, torch.zeros(len(beta), dtype=torch.float64), "tb", 0.9)
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters()
                                            if p.grad is not None)


def test_encoding_and_graph_tensors() -> None:
    mdp = _medium()
    x = mdp.from_blocks([2, 0, 4], [[0, 1, 1, 0], [1, 2, 1, 0]])
    g = mdp.graph(x[None])
    assert g.present[0].tolist() == [True] * 3 + [False] * 2
    # open stems: the type [0, 0, 1] keeps both atom-0 stems; [0, 1] and [0] bonded on all their atoms
    assert sorted(mdp.stems(x)) == sorted([[i, 0] for i in range(2) if mdp.to_blocks(x)[0][i] == 2] * 2)
    assert int(g.stem_open.sum()) == 2
    assert mdp.encode(x[None]).shape == (1, mdp.encoding_dim)


def test_from_blocks_rejects_what_it_cannot_build() -> None:
    mdp = FragmentMDP([[0, 1], [1, 0, 1], [0]], [0, 1, 2], max_blocks=4)
    with pytest.raises(ThermoGFNError, match="tree"):
        mdp.from_blocks([0, 0, 2], [[0, 1, 1, 0], [1, 0, 1, 0]])  # a cycle, block 2 unreached
    with pytest.raises(ThermoGFNError, match="open stems"):
        mdp.from_blocks([0, 2], [[0, 1, 2, 0]])
    # type [0, 1, 1] attaches through atom 1 only: with both ends bonded on atom 0 there is no construction
    with pytest.raises(ThermoGFNError, match="construction"):
        mdp.from_blocks([1, 1], [[0, 1, 0, 0]])


def test_reference_molecules_round_trip() -> None:
    block_r, fragment_id = seh_vocab()
    path = data_dir(None, "seh_proxy") / "reference_scores.csv"
    if not path.is_file():
        pytest.skip(f"shared data not found ({path}); set THERMOGFN_DATA_DIR to run this test")
    mdp = FragmentMDP(block_r, fragment_id)

    def graph(blocks: list[int], jbonds: list[list[int]], stems: list[list[int]]) -> tuple:
        """The molecule up to block order: fragments, bonds by (fragment, atom) ends, open stems by fragment."""
        frag = [fragment_id[b] for b in blocks]
        bonds = sorted(tuple(sorted([(frag[i], a), (frag[j], b)])) for i, j, a, b in jbonds)
        return sorted(frag), bonds, sorted((frag[i], a) for i, a in stems)

    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 950
    for r in rows:
        blocks, jbonds, stems = (json.loads(r[k]) for k in ("blockidxs", "jbonds", "stems"))
        x = mdp.from_blocks(blocks, jbonds)  # every reference molecule is representable
        back, back_bonds = mdp.to_blocks(x)
        assert graph(back, back_bonds, mdp.stems(x)) == graph(blocks, jbonds, stems)
        assert torch.equal(mdp.from_blocks(back, back_bonds), x)


def test_random_baseline_picks_uniformly_among_distinct_children():
    from thermogfn.baselines.random_search import uniform_policy_objects

    # entries 0 and 1 are one type (the same first block), entry 2 another: two distinct one-block trees
    mdp = FragmentMDP([[0, 1], [1, 0], [0]], [0, 0, 1], max_blocks=1, min_blocks=1)
    objects = uniform_policy_objects(mdp, 4000, torch.Generator().manual_seed(0))
    share = float((objects[:, 0] == mdp.type_of[2]).double().mean())
    assert abs(share - 0.5) < 0.03  # merged raw actions would give 1/3
