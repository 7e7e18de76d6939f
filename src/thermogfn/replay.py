"""Reward-prioritised replay of unique objects: half the batch from the top fraction by reward."""

from __future__ import annotations

import math

import torch

from thermogfn.tasks.base import hashable_keys


class ReplayBuffer:
    """Unique objects with their log-rewards, in growable tensors."""

    def __init__(self, length: int, capacity: int = 1024):
        self.x = torch.zeros(capacity, length, dtype=torch.int64)
        self.log_reward = torch.zeros(capacity, dtype=torch.float64)
        self.size = 0
        self._seen: set[int | bytes] = set()

    def __len__(self) -> int:
        return self.size

    def add(self, x: torch.Tensor, log_reward: torch.Tensor, keys: torch.Tensor) -> None:
        """Add the objects whose key (:meth:`thermogfn.tasks.Task.object_keys`) has not been seen before."""
        fresh = []
        for i, key in enumerate(hashable_keys(keys)):
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(i)
        if not fresh:
            return
        rows = torch.tensor(fresh)
        need = self.size + len(fresh)
        if need > self.x.shape[0]:
            cap = max(need, 2 * self.x.shape[0])
            self.x = torch.cat([self.x, torch.zeros(cap - self.x.shape[0], self.x.shape[1], dtype=torch.int64)])
            self.log_reward = torch.cat([self.log_reward, torch.zeros(cap - self.log_reward.shape[0],
                                                                      dtype=torch.float64)])
        self.x[self.size: need] = x[rows]
        self.log_reward[self.size: need] = log_reward[rows]
        self.size = need

    def sample(self, n: int, top_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n // 2`` objects from the top ``top_fraction`` by reward and the rest from the remainder."""
        logr = self.log_reward[: self.size]
        n_top = max(1, math.ceil(top_fraction * self.size))
        order = torch.argsort(logr, descending=True)
        top, rest = order[:n_top], order[n_top:]
        if rest.numel() == 0:
            rest = top
        k_top = n // 2
        pick = torch.cat([
            top[torch.randint(len(top), (k_top,), generator=generator)],
            rest[torch.randint(len(rest), (n - k_top,), generator=generator)],
        ])
        return self.x[pick], logr[pick]

    def state_dict(self) -> dict:
        return {"x": self.x[: self.size].clone(), "log_reward": self.log_reward[: self.size].clone()}

    def load_state_dict(self, state: dict, keys: torch.Tensor) -> None:
        self.size = 0
        self._seen = set()
        self.add(state["x"], state["log_reward"], keys)
