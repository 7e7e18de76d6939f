"""sEHstr: 6 building blocks out of 18, scored by a gradient-boosted tree proxy of sEH binding (no full table)."""

from __future__ import annotations

import os

import numpy as np
import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.base import Shaping, Task, TaskDefaults, objects_to_strings, strings_to_objects
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
# Exact maximum of the proxy over all 18**6 = 34,012,224 strings, found once by brute force with
# GBTProxy (float64, chunks of 2**20; see tests/test_sehstr.py::test_r_max_attained): attained by "ab5c5d".
R_MAX = 6.880490794627305
R_MAX_STRING = "ab5c5d"
HOW_TO_GET = ("pass --data-dir DIR or set THERMOGFN_DATA_DIR to a folder holding sehstr/ (sehstr_gbtr.pkl from "
              "dbsxodud-11/logit-gfn datasets/sehstr, converted to arrays as in shared/data/sehstr/README.md)")


class GBTProxy:
    """A gradient-boosted tree ensemble over one-hot block strings, evaluated for all trees and samples at once.

    Feature ``f`` is ``x[f // n_blocks] == f % n_blocks`` (one-hot, position-major). A split goes left iff
    ``feature <= threshold``; features are never missing, so ``missing_go_to_left`` is unused. The split is
    folded into a table ``child[tree, node, block at the split's position]``, so each depth level costs two
    gathers over a (B, n_trees) node tensor; leaves point to themselves.
    """

    def __init__(self, feature_idx: np.ndarray, threshold: np.ndarray, left: np.ndarray, right: np.ndarray,
                 is_leaf: np.ndarray, value: np.ndarray, baseline: float, n_blocks: int, length: int) -> None:
        n_trees, n_nodes = feature_idx.shape
        if int(feature_idx[~is_leaf].max(initial=0)) >= n_blocks * length:
            raise ThermoGFNError(f"tree features exceed {n_blocks * length} one-hot features; re-download the trees")
        node = np.arange(n_nodes)
        pos = np.where(is_leaf, 0, feature_idx // n_blocks)
        blk = np.where(is_leaf, -1, feature_idx % n_blocks)
        onehot = (np.arange(n_blocks)[None, None, :] == blk[..., None]).astype(np.float64)  # (T, N, n_blocks)
        go_left = onehot <= threshold[..., None]
        child = np.where(go_left, left[..., None], right[..., None])
        child = np.where(is_leaf[..., None], node[None, :, None], child)
        offset = (np.arange(n_trees) * n_nodes)[:, None]
        self.n_trees, self.n_nodes, self.n_blocks = n_trees, n_nodes, n_blocks
        self.pos = torch.from_numpy(pos.reshape(-1)).long()  # flat over (tree, node)
        self.child = torch.from_numpy((child + offset[..., None]).reshape(-1)).long()  # flat (tree, node, block)
        self.leaf_value = torch.from_numpy(np.where(is_leaf, value, 0.0).reshape(-1)).double()
        self.baseline = float(baseline)
        self.depth = self._max_depth(left, right, is_leaf)
        self.root = torch.from_numpy(offset[:, 0]).long()

    @staticmethod
    def _max_depth(left: np.ndarray, right: np.ndarray, is_leaf: np.ndarray) -> int:
        depth = 0
        for t in range(left.shape[0]):
            stack = [(0, 0)]
            while stack:
                n, d = stack.pop()
                if d > left.shape[1]:
                    raise ThermoGFNError("tree arrays contain a cycle; re-download the trees")
                if is_leaf[t, n]:
                    depth = max(depth, d)
                else:
                    stack += [(int(left[t, n]), d + 1), (int(right[t, n]), d + 1)]
        return depth

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions (float64, (B,)) for block strings ``x`` (LongTensor (B, length))."""
        x = x.to(torch.int64)
        node = self.root.expand(x.shape[0], -1)  # (B, T) flat node ids
        for _ in range(self.depth):
            block = x.gather(1, self.pos[node])
            node = self.child[node * self.n_blocks + block]
        return self.baseline + self.leaf_value[node].sum(1)


def load_proxy(path: str | os.PathLike) -> GBTProxy:
    """The sEHstr proxy from the converted ``sehstr_gbtr_trees.npz``."""
    with np.load(path) as d:
        arrays = {k: np.asarray(d[k]) for k in ("feature_idx", "threshold", "left", "right", "is_leaf", "value")}
        baseline, n_features = float(d["baseline"]), int(d["n_features"])
    if n_features != N_BLOCKS * LENGTH:
        raise ThermoGFNError(f"{path} has {n_features} features, expected {N_BLOCKS * LENGTH}; re-download it")
    return GBTProxy(**arrays, baseline=baseline, n_blocks=N_BLOCKS, length=LENGTH)


class SEHStrTask(Task):
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
        self._modes: torch.Tensor | None = None

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proxy(x.cpu()).to(x.device)

    def mode_index(self) -> torch.Tensor:
        if self._modes is None:
            path = require_file(self.data_path, MODES_NAME, MODES_SHA256, HOW_TO_GET)
            idx = torch.unique(self.object_index(self.encode(path.read_text(encoding="utf-8").split())))
            if len(idx) != N_MODES:
                raise ThermoGFNError(f"{path} lists {len(idx)} distinct modes, expected {N_MODES}; "
                                     "re-download it")
            self._modes = idx
        return self._modes

    def smiles(self, x: torch.Tensor) -> list[str | None]:
        """SMILES of the molecules the block strings decode to (see :mod:`thermogfn.chem`)."""
        from thermogfn.chem import decode_smiles

        return decode_smiles(self.name, x)

    def diversity(self, x: torch.Tensor) -> float:
        """Mean pairwise ``1 - Tanimoto`` (Morgan r=2, 1024 bits); Hamming without RDKit."""
        from thermogfn.chem import molecule_diversity

        return molecule_diversity(self, x)

    def decode(self, x: torch.Tensor) -> list[str]:
        return objects_to_strings(x, ALPHABET)

    def encode(self, strings: list[str]) -> torch.Tensor:
        return strings_to_objects(strings, ALPHABET, LENGTH)
