"""Shared fixtures: one torch thread, tiny enumerable table tasks, and one finished tiny run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from cli_helpers import TINY_HYPERGRID, new_dir, run_cli

from thermogfn.tasks.base import Shaping, Task, TaskDefaults, objects_to_strings, strings_to_objects


class TableTask(Task):
    """A tiny task over ``{0..K-1}^L`` with a fixed random positive reward table and identity shaping.

    ``spread`` is the standard deviation of log r, so the target R**beta gets peaked as beta grows.
    Usable with the sequence MDPs and, since objects are just integer vectors, with the hypergrid MDP
    (``vocab_size`` = height, ``length`` = ndim). ``min_length`` makes it a variable-length task (lengths
    ``min_length..length``, sequence MDPs only).
    """

    mdp_kinds = ("prepend-append", "append", "hypergrid")

    def __init__(self, vocab_size: int = 3, length: int = 4, seed: int = 0, spread: float = 1.0,
                 min_length: int | None = None) -> None:
        self.name = f"table{vocab_size}x{length}" + (f"min{min_length}" if min_length is not None else "")
        self.vocab_size, self.length, self.min_length = vocab_size, length, min_length
        self.alphabet = "ABCDEFGH"[:vocab_size]
        self.shaping = Shaping()
        self.defaults = TaskDefaults(hidden=32, eps=0.05, rounds=300, lr=1e-3)
        g = torch.Generator().manual_seed(seed)
        self._table = torch.exp(spread * torch.randn(self.n_objects, generator=g, dtype=torch.float64))

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        return self._table[self.object_index(x)]

    def table(self) -> torch.Tensor:
        return self._table

    def decode(self, x: torch.Tensor) -> list[str]:
        return objects_to_strings(x, self.alphabet)

    def encode(self, strings: list[str]) -> torch.Tensor:
        return strings_to_objects(strings, self.alphabet, self.length, self.min_length)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def make_table_task() -> Callable[..., TableTask]:
    """Factory: ``make_table_task(vocab_size=3, length=4, seed=0, spread=1.0, min_length=None)``."""
    return TableTask


@pytest.fixture
def tiny_task() -> TableTask:
    """The default tiny task: vocab 3, length 4 (81 objects, 121 prepend-append states)."""
    return TableTask(3, 4, seed=0)


@pytest.fixture(scope="session")
def finished_run() -> Path:
    """A finished 2-round tiny hypergrid run (config.json, metrics, checkpoints, plots). Copy it before changing it."""
    run = new_dir() / "run"
    code, _, err = run_cli("train", *TINY_HYPERGRID, "--steps", "2", "--out", str(run), plots=True)
    assert code == 0, err
    return run
