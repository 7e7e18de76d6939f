"""sEHstr: 6 building blocks out of 18, scored by a gradient-boosted tree proxy of sEH binding (no full table)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.base import Shaping, TaskDefaults
from thermogfn.tasks.blocks import BlockStringTask
from thermogfn.tasks.data import data_dir as resolve_data_dir
from thermogfn.tasks.data import require_file

ALPHABET = "0123456789abcdefgh"
LENGTH = 6
N_BLOCKS = len(ALPHABET)
TREES_NAME = "sehstr_gbtr_trees.npz"
TREES_SHA256 = "d723fb6cf7f54c1d46d1569f5734221aac8bf4439482ecbdeea2ed942eb0dad1"
MODES_NAME = "modes_sehstr.txt"
MODES_SHA256 = "b490328c98abc87f1314d77bf2fd640ae43650ab61087b2131b1fba223929ea7"
N_MODES = 159
MAX_LEAVES = 31  # leaves per tree, as bits of an int32 mask
# Exact maximum of the proxy over all 18**6 = 34,012,224 strings, found once by brute force: every first-half
# mask row ANDed with every second-half row (GBTProxy.value_of, float64 sums; 204 s on 2 loaded CPU cores).
# It is attained only by "ag550c" (the 159 given modes score 6.699..6.880); the all-strings mean is 4.494294.
R_MAX = 7.033253064721924
R_MAX_STRING = "ag550c"
HOW_TO_GET = ("pass --data-dir DIR or set THERMOGFN_DATA_DIR to a folder holding sehstr/ (sehstr_gbtr.pkl from "
              "dbsxodud-11/logit-gfn datasets/sehstr, converted to arrays as in shared/data/sehstr/README.md)")


class GBTProxy:
    """A gradient-boosted tree ensemble over one-hot block strings, evaluated for all trees and samples at once.

    Feature ``f`` is ``x[f // n_blocks] == f % n_blocks`` (one-hot, position-major); a split goes left iff
    ``feature <= threshold`` (features are never missing, so ``missing_go_to_left`` is unused). A leaf is
    reached iff every split on its path holds, a conjunction of per-position conditions, so each tree's
    leaves are bits of a mask and ``mask[g][block tuple of position group g]`` holds the leaves compatible
    with those positions. The two position halves are looked up (two row gathers of (B, n_trees)
    masks), ANDed to leave exactly one bit per tree, and the bit's leaf value is summed.
    """

    def __init__(self, feature_idx: np.ndarray, threshold: np.ndarray, left: np.ndarray, right: np.ndarray,
                 is_leaf: np.ndarray, value: np.ndarray, baseline: float, n_blocks: int, length: int) -> None:
        n_trees = feature_idx.shape[0]
        if int(feature_idx[~is_leaf].max(initial=0)) >= n_blocks * length:
            raise ThermoGFNError(f"tree features exceed {n_blocks * length} one-hot features; re-download the trees")
        blocks = np.arange(n_blocks)
        per_pos = np.zeros((length, n_blocks, n_trees), dtype=np.int32)  # leaf bits allowed by x[p] == b
        leaf_value = np.zeros((n_trees, MAX_LEAVES + 1), dtype=np.float64)
        for t in range(n_trees):
            n_leaves = 0
            stack = [(0, np.ones((length, n_blocks), dtype=bool), 0)]
            while stack:
                n, allowed, depth = stack.pop()
                if depth > feature_idx.shape[1]:
                    raise ThermoGFNError("tree arrays contain a cycle; re-download the trees")
                if is_leaf[t, n]:
                    if n_leaves >= MAX_LEAVES:
                        raise ThermoGFNError(f"tree {t} has more than {MAX_LEAVES} leaves; unsupported")
                    per_pos[:, :, t] |= allowed.astype(np.int32) << n_leaves
                    leaf_value[t, n_leaves + 1] = value[t, n]  # column = frexp exponent of the bit
                    n_leaves += 1
                    continue
                p, b = divmod(int(feature_idx[t, n]), n_blocks)
                goes_left = (blocks == b).astype(np.float64) <= threshold[t, n]
                for child, keep in ((left[t, n], goes_left), (right[t, n], ~goes_left)):
                    sub = allowed.copy()
                    sub[p] &= keep
                    stack.append((int(child), sub, depth + 1))
        half = length // 2
        self.groups = [list(range(half)), list(range(half, length))]
        self.tables = [self._group_table(per_pos[g]) for g in self.groups]
        self.radix = [torch.tensor([n_blocks ** (len(g) - 1 - i) for i in range(len(g))]) for g in self.groups]
        self.leaf_value = torch.from_numpy(leaf_value.reshape(-1))
        self.tree_offset = (torch.arange(n_trees) * leaf_value.shape[1]).to(torch.int32)
        self.baseline = float(baseline)

    @staticmethod
    def _group_table(masks: np.ndarray) -> torch.Tensor:
        """AND of per-position masks (k, n_blocks, T) over all block k-tuples: (n_blocks**k, T), row-major."""
        table = masks[0]
        for m in masks[1:]:
            table = (table[:, None, :] & m[None, :, :]).reshape(-1, m.shape[-1])
        return torch.from_numpy(np.ascontiguousarray(table))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions (float64, (B,)) for block strings ``x`` (LongTensor (B, length))."""
        x = x.to(torch.int64)
        bits = None
        for g, table, radix in zip(self.groups, self.tables, self.radix, strict=True):
            rows = table.index_select(0, (x[:, g] * radix).sum(1))
            bits = rows if bits is None else bits & rows
        return self.value_of(bits)

    def exhaustive_max(self, chunk: int = 32) -> tuple[float, int, int]:
        """Exact maximum over all ``n_blocks**length`` strings: its value, the lexicographic index of its first
        maximiser and the number of maximisers (every first-half row ANDed with every second-half row)."""
        first, second = self.tables
        best, arg, ties = -math.inf, -1, 0
        for s in range(0, first.shape[0], chunk):
            v = self.value_of(first[s:s + chunk, None, :] & second[None, :, :]).reshape(-1)
            top = float(v.max())
            if top > best:
                best, arg, ties = top, s * second.shape[0] + int(v.argmax()), 0
            if top == best:
                ties += int((v == top).sum())
        return best, arg, ties

    def value_of(self, bits: torch.Tensor) -> torch.Tensor:
        """Prediction from (..., n_trees) single-bit leaf masks (frexp of ``2.0**k`` is exactly ``k + 1``)."""
        exponent = torch.frexp(bits.to(torch.float32)).exponent
        return self.baseline + self.leaf_value[self.tree_offset + exponent].sum(-1)


def load_proxy(path: str | os.PathLike) -> GBTProxy:
    """The sEHstr proxy from the converted ``sehstr_gbtr_trees.npz``."""
    with np.load(path) as d:
        arrays = {k: np.asarray(d[k]) for k in ("feature_idx", "threshold", "left", "right", "is_leaf", "value")}
        baseline, n_features = float(d["baseline"]), int(d["n_features"])
    if n_features != N_BLOCKS * LENGTH:
        raise ThermoGFNError(f"{path} has {n_features} features, expected {N_BLOCKS * LENGTH}; re-download it")
    return GBTProxy(**arrays, baseline=baseline, n_blocks=N_BLOCKS, length=LENGTH)


class SEHStrTask(BlockStringTask):
    """Strings of 6 blocks over ``0123456789abcdefgh``; raw reward = the GBT proxy (mean about 4.49).

    Shaping ``10 * (max(r, 0.001) / R_MAX)**6`` with the exact maximum :data:`R_MAX`; modes: the 159 given
    strings. No full table (34M objects): :meth:`table` is None.
    """

    alphabet = ALPHABET

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.name = "sehstr"
        self.vocab_size = N_BLOCKS
        self.length = LENGTH
        self.data_path = resolve_data_dir(data_dir, "sehstr")
        self.proxy = load_proxy(require_file(self.data_path, TREES_NAME, TREES_SHA256, HOW_TO_GET))
        self.shaping = Shaping.scaled(exponent=6, r_min=0.001, s_max=10, r_max=R_MAX)
        self.defaults = TaskDefaults(hidden=1024, eps=0.1, rounds=2000, lr=1e-4)
        self.modes_file = (MODES_NAME, MODES_SHA256, N_MODES)
        self.how_to_get = HOW_TO_GET

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proxy(x.cpu()).to(x.device)

    def log_reward_bound(self) -> float:
        """log R of the exact maximum :data:`R_MAX`, i.e. ``log 10``."""
        return float(self.shaping.log_reward(torch.tensor([R_MAX], dtype=torch.float64))[0])
