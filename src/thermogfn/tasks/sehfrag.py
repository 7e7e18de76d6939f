"""sehfrag: molecules as trees of 2 to 8 fragments (Bengio et al. 2021), scored by the 2021 sEH MPNN proxy.

An object is the fragment MDP's canonical row (:mod:`thermogfn.mdp.fragments`): per slot the block type, parent
slot, parent atom and own atom (:func:`~thermogfn.tasks.fragments.row_tree` reads it). Its raw reward is
recursionpharma's ``proxy / 8``, NaN -> 0, clipped to [1e-4, 100] (``transform="clip"``, the default), or the 2021
``(max(0.1, proxy) / 8) ** 10`` (``transform="bengio2021"``); log R = log of it, so beta multiplies the log. A tree
whose molecule fails RDKit sanitisation scores the floor and is counted (:attr:`SEHFragTask.invalid_molecules`).

Modes (QGFN's definition): molecules with ``proxy / 8 >= 0.9`` whose Tanimoto similarity (Morgan, radius 2, 1024
bits) to every earlier mode is below 0.7, greedily in sample order. Diversity: mean pairwise Tanimoto distance.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.base import Shaping, Task, TaskDefaults
from thermogfn.tasks.chem import mean_pairwise_tanimoto_distance, morgan_fingerprints
from thermogfn.tasks.fragments import block_types, load_vocab, row_tree
from thermogfn.tasks.seh_proxy import SEH_TRANSFORMS, SEHProxy, seh_reward

MAX_BLOCKS = 8
MIN_BLOCKS = 2
MODE_PROXY = 0.9 * 8  # a mode's proxy value: proxy / 8 >= 0.9
MODE_SIMILARITY = 0.7


class TanimotoModeRule:
    """Greedy, order-dependent mode counter: raw reward ``>= threshold`` and Tanimoto similarity ``<
    max_similarity`` to every accepted mode (the interface of :class:`thermogfn.modes.ThresholdModeRule`)."""

    n_modes = None  # no fixed mode set

    def __init__(self, task: SEHFragTask, threshold: float, max_similarity: float = MODE_SIMILARITY) -> None:
        self.task, self.threshold, self.max_similarity = task, float(threshold), float(max_similarity)
        self._modes = torch.zeros(0, task.length, dtype=torch.int64)
        self._rewards = torch.zeros(0, dtype=torch.float64)
        self._fps: list[Any] = []

    @property
    def n_found(self) -> int:
        return int(self._modes.shape[0])

    @property
    def modes(self) -> torch.Tensor:
        return self._modes.clone()

    def update(self, x: torch.Tensor, raw: torch.Tensor) -> int:
        """Accept the new modes among ``x`` in row order; returns how many were accepted."""
        from rdkit import DataStructs

        raw = torch.as_tensor(raw, dtype=torch.float64).reshape(-1)
        rows = torch.nonzero(raw >= self.threshold).reshape(-1).tolist()
        mols = self.task.molecules(x[rows]) if rows else []
        new: list[int] = []
        for i, mol in zip(rows, mols, strict=True):
            if mol is None:
                continue
            fp = morgan_fingerprints([mol])[0]
            if self._fps and max(DataStructs.BulkTanimotoSimilarity(fp, self._fps)) >= self.max_similarity:
                continue
            self._fps.append(fp)
            new.append(i)
        if new:
            self._modes = torch.cat([self._modes, x[new].to(torch.int64)])
            self._rewards = torch.cat([self._rewards, raw[new]])
        return len(new)

    def observe(self, x: torch.Tensor, object_index: torch.Tensor, raw: torch.Tensor) -> None:
        self.update(x, raw)

    def count_in(self, x: torch.Tensor, object_index: torch.Tensor, raw: torch.Tensor) -> int:
        return TanimotoModeRule(self.task, self.threshold, self.max_similarity).update(x, raw)

    def state_dict(self) -> dict:
        return {"threshold": self.threshold, "max_similarity": self.max_similarity, "modes": self.modes,
                "mode_rewards": self._rewards.clone()}

    def load_state_dict(self, state: dict) -> None:
        fresh = TanimotoModeRule(self.task, float(state["threshold"]), float(state["max_similarity"]))
        fresh.update(torch.as_tensor(state["modes"], dtype=torch.int64),
                     torch.full((len(state["modes"]),), float("inf")))
        self.threshold, self.max_similarity = fresh.threshold, fresh.max_similarity
        self._modes, self._fps = fresh._modes, fresh._fps
        self._rewards = torch.as_tensor(state["mode_rewards"], dtype=torch.float64).clone()


class SEHFragTask(Task):
    """Fragment molecules scored by the sEH proxy; built by the ``fragments`` MDP only."""

    name = "sehfrag"
    mdp_kinds = ("fragments",)
    distance = "tanimoto"
    token_objects = False
    object_column = "smiles"

    def __init__(self, data_dir: str | os.PathLike | None = None, transform: str = "clip",
                 max_blocks: int = MAX_BLOCKS, min_blocks: int = MIN_BLOCKS) -> None:
        if transform not in SEH_TRANSFORMS:
            raise ThermoGFNError(f"unknown sEH reward transform {transform!r}; choose one of "
                                 f"{', '.join(SEH_TRANSFORMS)}")
        self.vocab = load_vocab(data_dir)
        self.proxy = SEHProxy.load(data_dir)  # needs RDKit: a one-line error naming the chem extra otherwise
        self.types = block_types(self.vocab.block_r, self.vocab.fragment_id)
        self.transform, self.max_blocks, self.min_blocks = transform, max_blocks, min_blocks
        self.n_types = len(self.types.atoms)
        n_atoms = max(max(r) for r in self.vocab.block_r) + 1
        self.length = 4 * max_blocks + 1  # the MDP's row: 4 columns per slot and its provenance column
        self.vocab_size = max(self.n_types, max_blocks, n_atoms) + 1
        self.shaping = Shaping()
        # the graph policy found ~40x the modes of the MLP at equal reward calls (benchmarks/RESULTS.md, sehfrag)
        self.defaults = TaskDefaults(hidden=128, rounds=600, lr=1e-3, eps=0.05, architecture="graph")
        self.invalid_molecules = 0

    def molecules(self, x: torch.Tensor) -> list[Any]:
        """The RDKit molecule of each object (None where assembly fails sanitisation); cached by the vocabulary."""
        out = []
        for row in x.tolist():
            types, bonds = row_tree(row, self.max_blocks, self.n_types)
            out.append(self.vocab.assemble([self.types.entry[t] for t in types],
                                           [[p, c, pa, own] for p, c, pa, own in bonds]))
        return out

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        mols = self.molecules(x)
        self.invalid_molecules += sum(m is None for m in mols)
        with torch.no_grad():
            values = self.proxy(mols)
        return seh_reward(values, self.transform).to(torch.float64)

    def mode_rule(self) -> TanimotoModeRule:
        threshold = float(seh_reward(torch.tensor([MODE_PROXY], dtype=torch.float64), self.transform)[0])
        return TanimotoModeRule(self, threshold)

    def diversity(self, x: torch.Tensor) -> float:
        return mean_pairwise_tanimoto_distance([m for m in self.molecules(x) if m is not None])

    def decode(self, x: torch.Tensor) -> list[str]:
        from thermogfn.tasks.chem import to_smiles

        return [s if s is not None else "<invalid>" for s in to_smiles(self.molecules(x))]

    def encode(self, strings: list[str]) -> torch.Tensor:
        raise ThermoGFNError("sehfrag objects are fragment trees built by its MDP; they cannot be read from strings")

    def space_text(self) -> str:
        return f"trees of {self.min_blocks}-{self.max_blocks} of {len(self.vocab)} fragments"
