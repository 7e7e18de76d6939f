"""Sample-based metrics: uniqueness, top-k reward and diversity, pairwise distances, modes among samples.

Objects are LongTensors ``x`` of shape (N, L) holding token ids; variable-length sequences are rows padded
with any token plus a ``lengths`` vector (only Levenshtein distance uses lengths). Diversity is the *true*
mean over unordered pairs: the sum over i < j divided by n(n-1)/2 (the reference code halves it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from thermogfn.modes import count_modes

__all__ = [
    "Metric",
    "unique_rows",
    "topk_unique",
    "levenshtein",
    "pairwise_distances",
    "mean_pairwise_distance",
    "top_k_reward",
    "top_k_diversity",
    "sample_summary",
]

Metric = Literal["hamming", "levenshtein", "manhattan"]
_METRICS = ("hamming", "levenshtein", "manhattan")
_PAIR_CHUNK = 1 << 16  # pairs per Levenshtein DP batch
_ROW_CHUNK = 1024  # rows per Hamming/Manhattan distance block


def _check_x(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, L), got {tuple(x.shape)}")
    return x


def unique_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows of ``x`` in order of first occurrence, and the index of each first occurrence."""
    _check_x(x)
    n = x.shape[0]
    if n == 0:
        return x.clone(), torch.zeros(0, dtype=torch.long, device=x.device)
    if x.shape[1] == 0:
        return x[:1].clone(), torch.zeros(1, dtype=torch.long, device=x.device)
    _, inverse = torch.unique(x, dim=0, return_inverse=True)
    n_unique = int(inverse.max()) + 1
    first = torch.full((n_unique,), n, dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, inverse, torch.arange(n, device=x.device), reduce="amin")
    first = first.sort().values
    return x[first], first


def _topk_unique_index(x: torch.Tensor, raw: torch.Tensor, k: int) -> torch.Tensor:
    """Indices into ``x`` of the ``k`` best distinct rows by ``raw`` (best first; ties by position)."""
    _check_x(x)
    if raw.shape != (x.shape[0],):
        raise ValueError(f"raw must have shape ({x.shape[0]},), got {tuple(raw.shape)}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    order = torch.sort(raw, descending=True, stable=True).indices
    _, first = unique_rows(x[order])  # first occurrence in `order` = highest reward of that row
    return order[first[:k]]


def topk_unique(x: torch.Tensor, raw: torch.Tensor, k: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best distinct rows of ``x`` by raw reward (best first) and their rewards."""
    idx = _topk_unique_index(x, raw, k)
    return x[idx], raw[idx]


def levenshtein(
    a: torch.Tensor,
    b: torch.Tensor,
    len_a: torch.Tensor | None = None,
    len_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """Edit distance between row i of ``a`` (P, La) and row i of ``b`` (P, Lb), batched over rows.

    ``len_a``/``len_b`` give each row's true length (default: the full width). Returns a LongTensor (P,).
    One vectorised step per row of the DP table: within a row, the insertion recurrence
    ``D[i, j] = min(t[j], D[i, j-1] + 1)`` is a running minimum of ``t[j] - j``.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must be (P, La) and (P, Lb), got {tuple(a.shape)} and {tuple(b.shape)}")
    p, la_max = a.shape
    lb_max = b.shape[1]
    dev = a.device
    len_a = torch.full((p,), la_max, device=dev) if len_a is None else len_a.to(dev, torch.long)
    len_b = torch.full((p,), lb_max, device=dev) if len_b is None else len_b.to(dev, torch.long)
    if ((len_a < 0) | (len_a > la_max)).any() or ((len_b < 0) | (len_b > lb_max)).any():
        raise ValueError("lengths must lie in [0, row width]")
    cols = torch.arange(lb_max + 1, device=dev)
    row = cols.expand(p, lb_max + 1).clone()  # D[0, j] = j
    gather_b = len_b.unsqueeze(1)
    out = torch.where(len_a == 0, len_b, torch.zeros_like(len_b))
    for i in range(1, la_max + 1):
        cost = (a[:, i - 1 : i] != b).long()  # (P, Lb)
        t = torch.empty_like(row)
        t[:, 0] = i
        t[:, 1:] = torch.minimum(row[:, 1:] + 1, row[:, :-1] + cost)
        row = torch.cummin(t - cols, dim=1).values + cols
        out = torch.where(len_a == i, row.gather(1, gather_b).squeeze(1), out)
    return out


def _block_distances(x: torch.Tensor, y: torch.Tensor, metric: str, vocab: int) -> torch.Tensor:
    if metric == "manhattan":
        return torch.cdist(x.double(), y.double(), p=1)
    # Hamming = L - number of matching positions = L - <onehot(x), onehot(y)>
    ox = torch.nn.functional.one_hot(x, vocab).flatten(1).double()
    oy = torch.nn.functional.one_hot(y, vocab).flatten(1).double()
    return x.shape[1] - ox @ oy.T


def pairwise_distances(
    x: torch.Tensor, metric: Metric = "hamming", lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """The symmetric (N, N) float64 matrix of distances between the rows of ``x``."""
    _check_x(x)
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(_METRICS)}")
    n = x.shape[0]
    if lengths is not None and metric != "levenshtein":
        raise ValueError(f"lengths are only supported for the levenshtein metric, not {metric!r}")
    if metric == "levenshtein":
        d = torch.zeros(n, n, dtype=torch.float64, device=x.device)
        i, j = torch.triu_indices(n, n, offset=1, device=x.device)
        for s in range(0, i.numel(), _PAIR_CHUNK):
            ii, jj = i[s : s + _PAIR_CHUNK], j[s : s + _PAIR_CHUNK]
            la = None if lengths is None else lengths[ii]
            lb = None if lengths is None else lengths[jj]
            d[ii, jj] = levenshtein(x[ii], x[jj], la, lb).double()
        return d + d.T
    if metric == "hamming" and (x < 0).any():
        raise ValueError("hamming distance needs non-negative token ids")
    vocab = int(x.max()) + 1 if x.numel() else 1
    rows = [_block_distances(x[s : s + _ROW_CHUNK], x, metric, vocab) for s in range(0, n, _ROW_CHUNK)]
    return torch.cat(rows) if rows else torch.zeros(0, 0, dtype=torch.float64, device=x.device)


def mean_pairwise_distance(
    x: torch.Tensor, metric: Metric = "hamming", lengths: torch.Tensor | None = None
) -> float:
    """Mean distance over unordered pairs i < j of rows of ``x`` (0.0 when there are fewer than 2)."""
    n = _check_x(x).shape[0]
    if n < 2:
        if metric not in _METRICS:
            raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(_METRICS)}")
        return 0.0
    total = float(pairwise_distances(x, metric, lengths).sum()) / 2
    return total / (n * (n - 1) / 2)


def top_k_reward(x: torch.Tensor, raw: torch.Tensor, k: int = 100) -> float:
    """Mean raw reward of the ``k`` best distinct rows (nan when there are none)."""
    idx = _topk_unique_index(x, raw, k)
    return float(raw[idx].double().mean()) if idx.numel() else math.nan


def top_k_diversity(
    x: torch.Tensor,
    raw: torch.Tensor,
    k: int = 100,
    metric: Metric = "hamming",
    lengths: torch.Tensor | None = None,
) -> float:
    """Mean pairwise distance among the ``k`` best distinct rows."""
    idx = _topk_unique_index(x, raw, k)
    return mean_pairwise_distance(x[idx], metric, None if lengths is None else lengths[idx])


def sample_summary(
    x: torch.Tensor,
    raw: torch.Tensor,
    object_index: torch.Tensor | None,
    mode_index: torch.Tensor | None,
    metric: Metric = "hamming",
    k: int = 100,
    diversity: Callable[[torch.Tensor], float] | None = None,
) -> dict[str, float | int | None]:
    """Summary of one batch of samples.

    Keys: ``n``, ``fraction_unique``, ``mean_reward``, ``top100_reward`` and ``top100_diversity`` (over
    the top ``k`` distinct samples, or all distinct samples when there are fewer; the names keep the paper's
    k = 100), ``top100_n`` (how many distinct samples those are), ``k``, and ``modes`` (distinct modes among the
    samples; None without a mode set).
    """
    n = _check_x(x).shape[0]
    idx = _topk_unique_index(x, raw, k)
    n_unique = unique_rows(x)[1].numel()
    modes = None
    if mode_index is not None:
        if object_index is None:
            raise ValueError("object_index is needed to count modes")
        modes = count_modes(object_index, mode_index)
    return {
        "n": n,
        "fraction_unique": n_unique / n if n else math.nan,
        "mean_reward": float(raw.double().mean()) if n else math.nan,
        "top100_reward": float(raw[idx].double().mean()) if idx.numel() else math.nan,
        "top100_diversity": diversity(x[idx]) if diversity is not None else mean_pairwise_distance(x[idx], metric),
        "top100_n": int(idx.numel()),
        "k": k,
        "modes": modes,
    }
