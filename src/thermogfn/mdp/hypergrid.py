"""The hypergrid MDP: start at the origin, increment one coordinate or stop; backward decrements one."""

from __future__ import annotations

import math

import torch

from thermogfn.mdp.base import MDP, NEG_INF


class HypergridMDP(MDP):
    """States are coordinates in ``{0..H-1}^ndim``; any state may stop and becomes the object itself."""

    name = "hypergrid"

    def __init__(self, height: int, ndim: int):
        self.H = height
        self.ndim = ndim
        self.state_dim = ndim
        self.n_actions = ndim
        self.n_back = ndim
        self.max_steps = ndim * (height - 1)
        self.encoding_dim = ndim * height
        self.encoding_classes = height
        self.log_n_objects = ndim * math.log(height)
        self._eye = torch.eye(ndim, dtype=torch.int64)
        self._increment = torch.cat([self._eye, torch.zeros(1, ndim, dtype=torch.int64)])
        self._one_hot = torch.eye(height)
        self._weights = height ** torch.arange(ndim - 1, -1, -1, dtype=torch.int64)

    def initial(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.ndim, dtype=torch.int64, device=self.device)

    def encode(self, states: torch.Tensor) -> torch.Tensor:
        return self._one_hot[states].flatten(-2)  # a table lookup: one_hot would check the range (a host sync)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(states < self.H - 1, (0, 1), value=True)  # stop is always allowed

    def merge_forward(self, states: torch.Tensor, logits: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return logits.masked_fill(torch.nn.functional.pad(states >= self.H - 1, (0, 1), value=False), NEG_INF)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return states > 0

    def step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return states + self._increment[actions]  # row ndim (stop) adds nothing

    def back_step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return states - self._eye[actions]

    def backward_action_of(self, children: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return actions.clamp_max(self.ndim - 1)

    def forward_action_of(self, parents: torch.Tensor, back_actions: torch.Tensor,
                          children: torch.Tensor) -> torch.Tensor:
        return back_actions

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        return (states == 0).all(-1)

    def terminal_object(self, states: torch.Tensor) -> torch.Tensor:
        return states

    def terminal_state(self, objects: torch.Tensor) -> torch.Tensor:
        return objects.to(torch.int64)

    def n_states(self) -> int:
        return self.H**self.ndim

    def states_by_level(self) -> list[torch.Tensor]:
        idx = torch.arange(self.n_states(), dtype=torch.int64)
        coords = (idx[:, None] // self._weights) % self.H
        level = coords.sum(-1)
        # one stable sort by level instead of a pass over every state per level
        order = torch.sort(level, stable=True).indices
        counts = torch.bincount(level, minlength=self.max_steps + 1).tolist()
        return list(coords[order].split(counts))

    def state_index(self, states: torch.Tensor) -> torch.Tensor:
        return (states * self._weights).sum(-1)
