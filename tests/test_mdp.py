"""MDPs, checked by brute force over every state of tiny instances.

Covered: step/back_step inverses through the canonical action maps, merging of equal children/parents
(mass conservation against grouping raw actions by their result), enumeration (state_index a bijection,
parents in earlier levels, closure under step), and path counts.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

from thermogfn.mdp import MDP, AppendMDP, HypergridMDP, PrependAppendMDP, make_mdp

MDPS = {
    "pa2x3": lambda: PrependAppendMDP(2, 3),
    "pa3x4": lambda: PrependAppendMDP(3, 4),
    "append3x3": lambda: AppendMDP(3, 3),
    "pa2x3min1": lambda: PrependAppendMDP(2, 3, min_length=1),
    "pa3x4min2": lambda: PrependAppendMDP(3, 4, min_length=2),
    "append3x3min2": lambda: AppendMDP(3, 3, min_length=2),
    "grid3x2": lambda: HypergridMDP(3, 2),
    "grid4x3": lambda: HypergridMDP(4, 3),
}


@pytest.fixture(params=list(MDPS), scope="module")
def mdp(request: pytest.FixtureRequest) -> MDP:
    return MDPS[request.param]()


def all_states(mdp: MDP) -> torch.Tensor:
    return torch.cat(mdp.states_by_level())


def key(row: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(v) for v in row)


def canonical_forward(mdp: MDP, states: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(mdp.merge_forward(states, torch.zeros(states.shape[0], mdp.n_forward)))


def canonical_backward(mdp: MDP, states: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(mdp.merge_backward(states, torch.zeros(states.shape[0], mdp.n_back)))


# ----------------------------------------------------------------------------------------------------------
def test_make_mdp_kinds() -> None:
    assert isinstance(make_mdp("prepend-append", 3, 4), PrependAppendMDP)
    assert isinstance(make_mdp("append", 3, 4), AppendMDP)
    grid = make_mdp("hypergrid", 5, 2)
    assert isinstance(grid, HypergridMDP) and grid.H == 5 and grid.ndim == 2


def test_step_back_step_inverse(mdp: MDP) -> None:
    states = all_states(mdp)
    valid = mdp.forward_mask(states)
    valid[:, mdp.stop] = False
    rows, acts = valid.nonzero(as_tuple=True)
    assert rows.numel() > 0
    parents = states[rows]
    children = mdp.step(parents, acts)
    assert (children != parents).any(-1).all(), "a non-stop action must change the state"
    back = mdp.backward_action_of(children, acts)
    # the backward action is valid and canonical (not a merged-away duplicate) at the child
    assert canonical_backward(mdp, children).gather(1, back[:, None]).all()
    assert torch.equal(mdp.back_step(children, back), parents)
    # forward_action_of inverts it: a canonical action that leads from the parent to the same child
    fwd = mdp.forward_action_of(parents, back, children)
    assert canonical_forward(mdp, parents).gather(1, fwd[:, None]).all()
    assert torch.equal(mdp.step(parents, fwd), children)
    # canonical actions map to themselves
    canon = canonical_forward(mdp, parents).gather(1, acts[:, None]).squeeze(1)
    assert torch.equal(fwd[canon], acts[canon])


def test_forward_action_of_inverts_back_step(mdp: MDP) -> None:
    states = all_states(mdp)
    rows, back = mdp.backward_mask(states).nonzero(as_tuple=True)
    children = states[rows]
    parents = mdp.back_step(children, back)
    assert (parents >= 0).all()
    fwd = mdp.forward_action_of(parents, back, children)
    assert canonical_forward(mdp, parents).gather(1, fwd[:, None]).all()
    assert torch.equal(mdp.step(parents, fwd), children)
    back2 = mdp.backward_action_of(children, fwd)
    assert torch.equal(mdp.back_step(children, back2), parents)
    canon = canonical_backward(mdp, children).gather(1, back[:, None]).squeeze(1)
    assert torch.equal(back2[canon], back[canon])


def test_stop_is_identity_and_only_at_terminal_states(mdp: MDP) -> None:
    states = all_states(mdp)
    stop = torch.full((states.shape[0],), mdp.stop)
    assert torch.equal(mdp.step(states, stop), states)
    can_stop = mdp.forward_mask(states)[:, mdp.stop]
    if isinstance(mdp, HypergridMDP):
        assert can_stop.all()
    else:
        lengths = mdp.lengths(states)
        assert torch.equal(can_stop, lengths >= mdp.min_length)  # from min_length on (only at L: fixed length)
        full = lengths == mdp.L
        # a full string can only stop; shorter ones can grow
        assert not mdp.forward_mask(states[full])[:, : mdp.stop].any()
        assert mdp.forward_mask(states[~full])[:, : mdp.stop].any(-1).all()
    assert torch.equal(mdp.terminal_state(mdp.terminal_object(states[can_stop])), states[can_stop])


def _brute_groups(mdp: MDP, states: torch.Tensor, forward: bool) -> list[dict]:
    """Per state: result key -> list of valid raw actions leading there (stop keyed as 'stop')."""
    mask = mdp.forward_mask(states) if forward else mdp.backward_mask(states)
    groups: list[dict] = [defaultdict(list) for _ in range(states.shape[0])]
    rows, acts = mask.nonzero(as_tuple=True)
    results = mdp.step(states[rows], acts) if forward else mdp.back_step(states[rows], acts)
    for r, a, res in zip(rows.tolist(), acts.tolist(), results, strict=True):
        k = "stop" if forward and a == mdp.stop else key(res)
        groups[r][k].append(a)
    return groups


@pytest.mark.parametrize("forward", [True, False], ids=["children", "parents"])
def test_merge_conserves_mass(mdp: MDP, forward: bool) -> None:
    states = all_states(mdp)
    n_act = mdp.n_forward if forward else mdp.n_back
    g = torch.Generator().manual_seed(1)
    logits = 2.0 * torch.randn(states.shape[0], n_act, generator=g, dtype=torch.float64)
    merged = (mdp.merge_forward if forward else mdp.merge_backward)(states, logits.clone())
    mask = mdp.forward_mask(states) if forward else mdp.backward_mask(states)
    groups = _brute_groups(mdp, states, forward)
    n_merged_total = 0
    for i in range(states.shape[0]):
        if not mask[i].any():  # s0 backwards: no parents at all
            assert not forward and bool(mdp.is_initial(states[i: i + 1]))
            assert torch.isinf(merged[i]).all()
            continue
        valid_logits = logits[i].masked_fill(~mask[i], -math.inf)
        raw_p = torch.softmax(valid_logits, 0)
        merged_p = torch.softmax(merged[i], 0)
        canon = torch.isfinite(merged[i]).nonzero().squeeze(1).tolist()
        # one canonical action per distinct child / parent
        assert len(canon) == len(groups[i])
        n_merged_total += len(canon)
        seen = set()
        for a in canon:
            found = [k for k, acts in groups[i].items() if a in acts]
            assert len(found) == 1
            seen.add(found[0])
            want = raw_p[groups[i][found[0]]].sum()
            assert float(merged_p[a]) == pytest.approx(float(want), rel=1e-10, abs=1e-14)
        assert len(seen) == len(canon)
        assert float(merged_p.sum()) == pytest.approx(1.0, abs=1e-12)
    # merging really happens on the prepend-append MDP and never on the others
    raw_total = int(mask.sum())
    if isinstance(mdp, PrependAppendMDP):
        assert n_merged_total < raw_total
    else:
        assert n_merged_total == raw_total


def test_prepend_append_duplicates_by_hand() -> None:
    mdp = PrependAppendMDP(3, 4)
    K = 3
    s = torch.tensor([[K, K, K, K], [1, 1, K, K], [1, 2, K, K], [0, 0, 0, 0]])
    canon = canonical_forward(mdp, s)
    # from "": prepend(c) == append(c): only the K prepends are canonical
    assert canon[0].tolist() == [True] * K + [False] * K + [False]
    # from "BB": append(B) == prepend(B)
    assert canon[1].tolist() == [True, True, True, True, False, True, False]
    # from "BC": all 6 children distinct
    assert canon[2].tolist() == [True] * 6 + [False]
    # full: only stop
    assert canon[3].tolist() == [False] * 6 + [True]
    back = canonical_backward(mdp, s)
    assert back.tolist() == [[False, False], [True, False], [True, True], [True, False]]


def test_state_index_is_a_bijection(mdp: MDP) -> None:
    levels = mdp.states_by_level()
    states = torch.cat(levels)
    n = mdp.n_states()
    assert states.shape[0] == n
    idx = mdp.state_index(states)
    assert torch.equal(torch.sort(idx).values, torch.arange(n))
    assert len({key(r) for r in states}) == n
    # level 0 is exactly s0
    assert torch.equal(levels[0], mdp.initial(1))
    assert int(mdp.is_initial(states).sum()) == 1 and bool(mdp.is_initial(levels[0]).all())
    # expected sizes
    if isinstance(mdp, HypergridMDP):
        assert n == mdp.H**mdp.ndim
    else:
        assert n == sum(mdp.K**k for k in range(mdp.L + 1))


def test_parents_in_earlier_levels_and_children_enumerated(mdp: MDP) -> None:
    levels = mdp.states_by_level()
    level_of = torch.empty(mdp.n_states(), dtype=torch.int64)
    for lv, st in enumerate(levels):
        level_of[mdp.state_index(st)] = lv
    states = torch.cat(levels)
    lv_states = level_of[mdp.state_index(states)]
    # every non-initial state has a parent, and all its parents are in earlier levels
    has_parent = mdp.backward_mask(states).any(-1)
    assert torch.equal(has_parent, ~mdp.is_initial(states))
    rows, back = mdp.backward_mask(states).nonzero(as_tuple=True)
    parents = mdp.back_step(states[rows], back)
    pidx = mdp.state_index(parents)
    assert ((pidx >= 0) & (pidx < mdp.n_states())).all()
    assert torch.equal(states[torch.argsort(mdp.state_index(states))][pidx], parents)
    assert (level_of[pidx] < lv_states[rows]).all()
    # children are enumerated states too, in later levels
    fmask = mdp.forward_mask(states)
    fmask[:, mdp.stop] = False
    rows, acts = fmask.nonzero(as_tuple=True)
    children = mdp.step(states[rows], acts)
    cidx = mdp.state_index(children)
    assert torch.equal(states[torch.argsort(mdp.state_index(states))][cidx], children)
    assert (level_of[cidx] > lv_states[rows]).all()
    assert mdp.max_steps == len(levels) - 1


def _count_paths(mdp: MDP, merged_weights: bool) -> torch.Tensor:
    """Number of raw action sequences from s0 to each state, by DP over levels.

    ``merged_weights``: walk only canonical actions, each weighted by exp(merged all-zero logits), i.e. by
    how many raw actions it stands for; otherwise walk every valid raw action with weight 1.
    """
    count = torch.zeros(mdp.n_states(), dtype=torch.float64)
    count[mdp.state_index(mdp.initial(1))] = 1.0
    for st in mdp.states_by_level():
        mass = count[mdp.state_index(st)]
        if merged_weights:
            w = mdp.merge_forward(st, torch.zeros(st.shape[0], mdp.n_forward, dtype=torch.float64)).exp()
        else:
            w = mdp.forward_mask(st).double()
        w[:, mdp.stop] = 0.0
        rows, acts = (w > 0).nonzero(as_tuple=True)
        count.index_add_(0, mdp.state_index(mdp.step(st[rows], acts)), mass[rows] * w[rows, acts])
    return count


@pytest.mark.parametrize("merged_weights", [False, True], ids=["raw", "merged"])
def test_path_counts(mdp: MDP, merged_weights: bool) -> None:
    count = _count_paths(mdp, merged_weights)
    states = all_states(mdp)
    c = count[mdp.state_index(states)]
    if isinstance(mdp, PrependAppendMDP):
        # each length-L string: 2^L raw action sequences = 2^(L-1) construction paths (the first step's
        # prepend(c) and append(c) are the same move)
        full = mdp.lengths(states) == mdp.L
        assert torch.equal(c[full], torch.full_like(c[full], 2.0**mdp.L))
        lengths = mdp.lengths(states)
        assert torch.equal(c, torch.where(lengths == 0, 1.0, 2.0 ** lengths.double()))
    elif isinstance(mdp, AppendMDP):
        assert torch.equal(c, torch.ones_like(c))
    else:
        want = [math.factorial(sum(r)) / math.prod(math.factorial(v) for v in r) for r in states.tolist()]
        assert torch.equal(c, torch.tensor(want, dtype=torch.float64))


def test_prepend_append_distinct_state_paths() -> None:
    """Distinct state sequences on the merged DAG: 2^(L-1) unless two chains pass the same states."""
    mdp = PrependAppendMDP(4, 4)
    count = torch.zeros(mdp.n_states(), dtype=torch.float64)
    count[mdp.state_index(mdp.initial(1))] = 1.0
    for st in mdp.states_by_level():
        canon = canonical_forward(mdp, st)
        canon[:, mdp.stop] = False
        rows, acts = canon.nonzero(as_tuple=True)
        count.index_add_(0, mdp.state_index(mdp.step(st[rows], acts)), count[mdp.state_index(st)][rows])
    x = torch.tensor([[0, 1, 2, 3], [0, 0, 0, 0], [0, 1, 0, 2], [0, 0, 1, 2]])
    # AABC: the chains A(pos 0)->AA and A(pos 1)->AA are the same state path, so 8 - 1
    assert count[mdp.state_index(x)].tolist() == [8.0, 1.0, 8.0, 7.0]


def test_encode_shapes(mdp: MDP) -> None:
    states = all_states(mdp)
    enc = mdp.encode(states)
    assert enc.shape == (states.shape[0], mdp.encoding_dim) and enc.dtype == torch.float32
    # injective on states
    assert len({tuple(r.tolist()) for r in enc}) == states.shape[0]


@pytest.mark.parametrize("kind", ["prepend-append", "append"])
def test_variable_length_masks_at_min_and_max(kind: str) -> None:
    """Lengths 2..4 over 3 letters: no stop below 2; stop or grow at 2 and 3; only stop at 4. Objects are the
    padded states; the space holds 3^2 + 3^3 + 3^4 objects."""
    mdp = make_mdp(kind, 3, 4, min_length=2)
    fixed = make_mdp(kind, 3, 4)
    K, grow = 3, mdp.n_actions
    s = torch.tensor([[K, K, K, K], [0, K, K, K], [0, 1, K, K], [0, 1, 2, K], [0, 1, 2, 0]])
    mask = mdp.forward_mask(s)
    assert mask[:, mdp.stop].tolist() == [False, False, True, True, True]
    assert mask[:, :grow].all(-1).tolist() == [True, True, True, True, False]
    assert not mask[4, :grow].any()
    # the fixed-length MDP: stop only at 4
    assert fixed.forward_mask(s)[:, fixed.stop].tolist() == [False, False, False, False, True]
    assert mdp.log_n_objects == pytest.approx(math.log(9 + 27 + 81))
    assert fixed.log_n_objects == 4 * math.log(3)
    assert torch.equal(mdp.terminal_object(s[2:]), s[2:]) and torch.equal(mdp.terminal_state(s[2:]), s[2:])
    # merged logits at a state of length min..L-1 keep the stop
    merged = mdp.merge_forward(s, torch.zeros(5, mdp.n_forward))
    assert torch.isfinite(merged[:, mdp.stop]).tolist() == [False, False, True, True, True]


def test_min_length_out_of_range() -> None:
    for bad in (0, 5, -1):
        with pytest.raises(ValueError, match="min_length"):
            PrependAppendMDP(3, 4, min_length=bad)
