"""The interface every MDP implements: batched states, forward/backward actions, merging of equal children.

Conventions shared by all MDPs:
- a state is a row of an int64 tensor ``(B, state_dim)``;
- forward actions are ``0..n_actions-1`` followed by the stop action ``stop = n_actions``;
  stop leads to the terminal object of the state (``terminal_object``), with backward probability 1;
- backward actions are ``0..n_back-1``;
- actions that lead to the same child (or parent) are merged: ``merge_forward`` / ``merge_backward``
  turn raw logits into logits over *distinct* children, giving each duplicate ``-inf`` and its canonical
  representative the log-sum-exp of the pair. Sampling from merged logits only returns canonical actions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

NEG_INF = float("-inf")


class MDP(ABC):
    """A DAG of states from ``s0`` to terminal objects, as batched tensor operations."""

    name: str
    state_dim: int
    n_actions: int  # forward actions, stop excluded
    n_back: int
    max_steps: int  # most non-stop transitions in any trajectory
    encoding_dim: int
    log_n_objects: float  # log of the number of terminal objects (log Z at beta = 0)
    fixed_length: bool = False  # every trajectory makes exactly max_steps moves, then stops (rollouts skip bookkeeping)
    device: torch.device = torch.device("cpu")  # where its lookup tables live and initial() creates states
    # encode() is one-hot per position: state_dim positions of encoding_classes values (0: some other encoding)
    encoding_classes: int = 0

    def to(self, device: torch.device | str) -> MDP:
        """Move the MDP's lookup tables to ``device`` (rollouts then run there); returns the MDP."""
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        self.device = torch.device(device)
        return self

    @property
    def stop(self) -> int:
        return self.n_actions

    @property
    def n_forward(self) -> int:
        return self.n_actions + 1

    @abstractmethod
    def initial(self, batch: int) -> torch.Tensor:
        """``batch`` copies of s0."""

    @abstractmethod
    def encode(self, states: torch.Tensor) -> torch.Tensor:
        """Float features (B, encoding_dim) for the policy network."""

    @abstractmethod
    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Bool (B, n_forward): which forward actions (stop last) are allowed, before merging."""

    @abstractmethod
    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Bool (B, n_back): which backward actions are allowed, before merging (all False at s0)."""

    @abstractmethod
    def step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Children of ``states`` under forward ``actions`` (stop leaves the state unchanged).

        ``depth`` (here and in the merges): every row is this many moves from s0, when the caller knows it (the
        rollouts of a ``fixed_length`` MDP); an MDP may use it to skip per-row bookkeeping."""

    @abstractmethod
    def back_step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Parents of ``states`` under backward ``actions``."""

    @abstractmethod
    def backward_action_of(self, children: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Canonical backward action from each child back to the parent it came from via forward ``actions``."""

    @abstractmethod
    def forward_action_of(self, parents: torch.Tensor, back_actions: torch.Tensor,
                          children: torch.Tensor) -> torch.Tensor:
        """Canonical forward action from each parent to the child it was reached from by ``back_actions``."""

    def merge_forward(self, states: torch.Tensor, logits: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Mask invalid actions and merge duplicate children. Identity merge by default."""
        return logits.masked_fill(~self.forward_mask(states), NEG_INF)

    def merge_backward(self, states: torch.Tensor, logits: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return logits.masked_fill(~self.backward_mask(states), NEG_INF)

    @abstractmethod
    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        """Bool (B,)."""

    @abstractmethod
    def terminal_object(self, states: torch.Tensor) -> torch.Tensor:
        """The object (B, length) a state becomes when it stops."""

    @abstractmethod
    def terminal_state(self, objects: torch.Tensor) -> torch.Tensor:
        """The state from which stopping yields ``objects``."""

    # -- enumeration, for exact evaluation on small spaces --------------------------------------------
    @abstractmethod
    def n_states(self) -> int:
        """Number of states reachable from s0."""

    @abstractmethod
    def states_by_level(self) -> list[torch.Tensor]:
        """Every state, grouped so that each state's parents lie in earlier groups."""

    @abstractmethod
    def state_index(self, states: torch.Tensor) -> torch.Tensor:
        """A unique index in ``[0, n_states)`` for each state."""
