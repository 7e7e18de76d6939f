"""Fragment-MDP test helpers: tiny vocabularies, the sEH vocabulary (skips without the shared data), a random-reward
task over a tiny fragment MDP (exact evaluation)."""

from __future__ import annotations

import json

import pytest
import torch

from thermogfn.mdp import FragmentMDP
from thermogfn.tasks.base import Shaping, Task, TaskDefaults
from thermogfn.tasks.data import data_dir
from thermogfn.tasks.fragments import load_vocab

# (block_r, fragment_id, max_blocks): two entries of one type bonding through different atoms, a one-stem block,
# a block with two stems on one atom (symmetric children), same-type blocks whose bond can be built from either end;
# each small enough to enumerate in well under a second
TINY = {
    "two-atoms": ([[0, 1], [1, 0], [0]], [0, 0, 1], 3),
    "double-stem": ([[0, 0, 1], [1, 0, 0], [0]], [0, 0, 1], 3),
    "chains": ([[0, 1], [0]], [0, 1], 4),
    "mixed": ([[0, 1], [1, 0], [0, 0, 1], [0]], [0, 0, 0, 1], 4),
}


def seh_vocab() -> tuple[list[list[int]], list[int]]:
    """``(block_r, fragment_id)`` of the sEH benchmark's 105 blocks; skips the test without the shared data."""
    path = data_dir(None, "seh_proxy") / "blocks_PDB_105.json"
    if not path.is_file():
        pytest.skip(f"shared data not found ({path}); set THERMOGFN_DATA_DIR to run this test")
    vocab = load_vocab()
    return [list(r) for r in vocab.block_r], list(vocab.fragment_id)


def state_key(mdp: FragmentMDP, row: torch.Tensor) -> tuple[int, ...]:
    """A hashable identity of one state (``last`` left out)."""
    return tuple(mdp.identity(row).tolist())


class TinyFragmentTask(Task):
    """Random rewards over the terminal states of a tiny fragment MDP (an exact-evaluation table)."""

    def __init__(self, mdp: FragmentMDP) -> None:
        states = torch.cat(mdp.states_by_level())
        self.objects = mdp.terminal_object(states[mdp.forward_mask(states)[:, mdp.stop]])
        self._index = {state_key(mdp, x): i for i, x in enumerate(self.objects)}
        self.mdp = mdp
        self.name, self.vocab_size, self.length = "tiny-fragments", mdp.V, mdp.state_dim
        self.shaping, self.defaults = Shaping(), TaskDefaults(hidden=16)
        self._table = torch.rand(len(self.objects), generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    @property
    def n_objects(self) -> int:
        return len(self.objects)

    def object_index(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self._index[state_key(self.mdp, row)] for row in x], dtype=torch.int64)

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        return self._table[self.object_index(x)] + 0.1

    def table(self) -> torch.Tensor:
        return self._table + 0.1

    def decode(self, x: torch.Tensor) -> list[str]:
        return [json.dumps(self.mdp.to_blocks(row)) for row in x]

    def encode(self, strings: list[str]) -> torch.Tensor:
        return torch.stack([self.mdp.from_blocks(*json.loads(s)) for s in strings])
