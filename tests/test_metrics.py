"""Sample metrics: uniqueness, top-k, pairwise distances (true mean over pairs), modes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thermogfn.metrics import (
    levenshtein,
    mean_pairwise_distance,
    pairwise_distances,
    sample_summary,
    top_k_diversity,
    top_k_reward,
    topk_unique,
    unique_rows,
)
from thermogfn.modes import ModeTracker, count_modes


def lev_ref(a: list[int], b: list[int]) -> int:
    """Textbook O(|a||b|) edit distance."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def t(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def test_unique_rows_first_occurrence() -> None:
    x = t([[1, 2], [0, 0], [1, 2], [3, 3], [0, 0]])
    u, first = unique_rows(x)
    assert torch.equal(first, torch.tensor([0, 1, 3]))
    assert torch.equal(u, t([[1, 2], [0, 0], [3, 3]]))
    u, first = unique_rows(torch.zeros(0, 4, dtype=torch.long))
    assert u.shape == (0, 4) and first.numel() == 0


def test_topk_unique_counts_duplicates_once() -> None:
    x = t([[0, 0], [1, 1], [1, 1], [2, 2], [1, 1], [3, 3]])
    raw = torch.tensor([0.1, 0.9, 0.9, 0.5, 0.9, 0.7])
    xt, rt = topk_unique(x, raw, k=3)
    assert torch.equal(xt, t([[1, 1], [3, 3], [2, 2]]))
    assert torch.allclose(rt, torch.tensor([0.9, 0.7, 0.5]))
    assert top_k_reward(x, raw, k=3) == pytest.approx((0.9 + 0.7 + 0.5) / 3)
    # fewer unique rows than k: all of them
    xt, rt = topk_unique(x, raw, k=100)
    assert xt.shape == (4, 2)
    assert top_k_reward(x, raw, k=100) == pytest.approx((0.9 + 0.7 + 0.5 + 0.1) / 4)
    assert math.isnan(top_k_reward(x[:0], raw[:0], k=10))


def test_hamming_exact_mean() -> None:
    x = t([[0, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1]])  # d01 = 2, d02 = 4, d12 = 2
    d = pairwise_distances(x, "hamming")
    assert torch.equal(d, torch.tensor([[0, 2, 4], [2, 0, 2], [4, 2, 0]], dtype=torch.float64))
    assert mean_pairwise_distance(x, "hamming") == pytest.approx(8 / 3)
    assert mean_pairwise_distance(x, "levenshtein") == pytest.approx(8 / 3)


def test_manhattan() -> None:
    x = t([[0, 0], [3, 4], [1, 1]])  # 7, 2, 5
    assert mean_pairwise_distance(x, "manhattan") == pytest.approx(14 / 3)


def test_fewer_than_two() -> None:
    for metric in ("hamming", "levenshtein", "manhattan"):
        assert mean_pairwise_distance(t([[1, 2, 3]]), metric) == 0.0
        assert mean_pairwise_distance(torch.zeros(0, 3, dtype=torch.long), metric) == 0.0
    with pytest.raises(ValueError):
        mean_pairwise_distance(t([[1], [2]]), "cosine")  # type: ignore[arg-type]


def test_levenshtein_known() -> None:
    # kitten -> sitting = 3 (as token ids)
    enc = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    a = torch.tensor([[enc[c] for c in "kitten"] + [0]])
    b = torch.tensor([[enc[c] for c in "sitting"]])
    assert int(levenshtein(a, b, torch.tensor([6]), torch.tensor([7]))[0]) == 3
    assert int(levenshtein(a[:, :0], b)[0]) == 7
    assert int(levenshtein(a, b[:, :0], torch.tensor([6]))[0]) == 6


def test_levenshtein_vs_hamming_bound() -> None:
    x = torch.randint(0, 4, (30, 8), generator=torch.Generator().manual_seed(0))
    lev = pairwise_distances(x, "levenshtein")
    ham = pairwise_distances(x, "hamming")
    assert (lev <= ham).all() and torch.equal(lev, lev.T) and (lev.diagonal() == 0).all()


seqs = st.lists(st.integers(0, 3), min_size=0, max_size=9)


@settings(max_examples=60, deadline=None)
@given(st.lists(seqs, min_size=1, max_size=7))
def test_levenshtein_matches_reference(rows: list[list[int]]) -> None:
    width = max(len(r) for r in rows)
    x = t([r + [9] * (width - len(r)) for r in rows])  # pad with a token not in the alphabet
    lengths = torch.tensor([len(r) for r in rows])
    d = pairwise_distances(x, "levenshtein", lengths)
    for i, j in itertools.product(range(len(rows)), repeat=2):
        assert d[i, j] == lev_ref(rows[i], rows[j])
    n = len(rows)
    if n >= 2:
        pairs = [lev_ref(rows[i], rows[j]) for i, j in itertools.combinations(range(n), 2)]
        assert mean_pairwise_distance(x, "levenshtein", lengths) == pytest.approx(sum(pairs) / len(pairs))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_hamming_manhattan_match_loops(length: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 5, (9, length), generator=g)
    ham = sum(int((x[i] != x[j]).sum()) for i, j in itertools.combinations(range(9), 2)) / 36
    man = sum(int((x[i] - x[j]).abs().sum()) for i, j in itertools.combinations(range(9), 2)) / 36
    assert mean_pairwise_distance(x, "hamming") == pytest.approx(ham)
    assert mean_pairwise_distance(x, "manhattan") == pytest.approx(man)


def test_top_k_diversity_uses_unique_top() -> None:
    x = t([[0, 0], [0, 0], [1, 1], [0, 1], [1, 0]])
    raw = torch.tensor([5.0, 5.0, 4.0, 1.0, 0.0])
    # top-2 unique = [0,0], [1,1] -> distance 2 (duplicate [0,0] must not add a zero pair)
    assert top_k_diversity(x, raw, k=2, metric="hamming") == pytest.approx(2.0)
    assert top_k_diversity(x, raw, k=3, metric="hamming") == pytest.approx((2 + 1 + 1) / 3)


def test_count_modes() -> None:
    modes = torch.tensor([2, 5, 7, 11])
    assert count_modes(torch.tensor([5, 5, 1, 11, 12, 0, 7, 100]), modes) == 3
    assert count_modes(torch.tensor([], dtype=torch.long), modes) == 0
    assert count_modes(torch.tensor([1, 2]), torch.tensor([], dtype=torch.long)) == 0
    with pytest.raises(ValueError):
        count_modes(torch.tensor([1]), torch.tensor([5, 2]))


def test_mode_tracker() -> None:
    tr = ModeTracker(torch.tensor([11, 2, 7, 5]))
    assert tr.n_found == 0 and tr.n_modes == 4
    assert tr.update(torch.tensor([2, 3, 2])) == 1
    assert tr.update(torch.tensor([2, 11, 100])) == 1
    assert tr.n_found == 2
    state = tr.state_dict()
    other = ModeTracker(torch.tensor([2, 5, 7, 11]))
    other.load_state_dict(state)
    assert other.n_found == 2 and other.update(torch.tensor([5, 7, 11])) == 2
    assert tr.n_found == 2  # state was copied
    with pytest.raises(ValueError):
        ModeTracker(torch.tensor([1, 2])).load_state_dict(state)


def test_sample_summary() -> None:
    x = t([[0, 0], [0, 0], [1, 1], [0, 1]])
    raw = torch.tensor([1.0, 1.0, 3.0, 2.0])
    s = sample_summary(x, raw, torch.tensor([0, 0, 3, 1]), torch.tensor([1, 3]), "hamming", k=2)
    assert s["n"] == 4
    assert s["fraction_unique"] == pytest.approx(0.75)
    assert s["mean_reward"] == pytest.approx(1.75)
    assert s["top100_reward"] == pytest.approx(2.5)
    assert s["top100_diversity"] == pytest.approx(1.0)
    assert s["modes"] == 2
    assert sample_summary(x, raw, None, None, "levenshtein")["modes"] is None
