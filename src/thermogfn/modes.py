"""Mode rules for tasks without a full mode table: threshold + Hamming-distance greedy acceptance.

A task with a given mode list exposes :meth:`Task.mode_index` (counted by :class:`metrics.ModeTracker`).
A task whose space is too large for a table (e.g. RNA2/RNA3, 4^14 sequences) instead exposes a
:class:`ThresholdModeRule`: a sample is a new mode if its raw reward is ``>= threshold`` and its Hamming
distance to every previously accepted mode is ``>= min_distance``. Acceptance is greedy in arrival order
(within a batch: row order), so the count depends on the order samples were seen; it is a lower bound on
the number of well-separated high-reward regions visited.
"""

from __future__ import annotations

import torch

__all__ = ["ThresholdModeRule"]


class ThresholdModeRule:
    """Greedy, order-dependent mode counter: ``raw >= threshold`` and Hamming ``>= min_distance`` to all
    accepted modes.

    ``update(x, raw)`` consumes samples (LongTensor (B, L), raw rewards (B,)) and returns how many new modes
    were accepted; ``modes`` holds the accepted objects in acceptance order. ``count(x, raw)`` applies the
    rule to a sample set from scratch without changing the state. ``min_distance=1`` counts distinct
    sequences above the threshold.
    """

    def __init__(self, threshold: float, min_distance: int) -> None:
        if isinstance(min_distance, bool) or not isinstance(min_distance, int) or min_distance < 1:
            raise ValueError(f"min_distance must be an integer >= 1, got {min_distance!r}")
        self.threshold = float(threshold)
        self.min_distance = min_distance
        self._modes: torch.Tensor | None = None  # (M, L) int64, acceptance order
        self._rewards = torch.zeros(0, dtype=torch.float64)

    def __repr__(self) -> str:
        return (f"ThresholdModeRule(threshold={self.threshold}, min_distance={self.min_distance}, "
                f"n_found={self.n_found})")

    @property
    def modes(self) -> torch.Tensor:
        """Accepted modes (M, L) in acceptance order (empty (0, 0) before the first one)."""
        return self._modes.clone() if self._modes is not None else torch.zeros(0, 0, dtype=torch.int64)

    @property
    def mode_rewards(self) -> torch.Tensor:
        """Raw rewards of the accepted modes (M,), float64."""
        return self._rewards.clone()

    @property
    def n_found(self) -> int:
        return 0 if self._modes is None else int(self._modes.shape[0])

    def update(self, x: torch.Tensor, raw: torch.Tensor) -> int:
        """Accept the new modes among ``x`` (in row order); returns how many were accepted."""
        x = torch.as_tensor(x).detach().to("cpu", torch.int64)
        raw = torch.as_tensor(raw).detach().to("cpu", torch.float64).reshape(-1)
        if x.dim() != 2 or raw.shape != (x.shape[0],):
            raise ValueError(f"expected x (B, L) and raw (B,), got {tuple(x.shape)} and {tuple(raw.shape)}")
        if self._modes is not None and x.shape[0] and x.shape[1] != self._modes.shape[1]:
            raise ValueError(f"objects have length {x.shape[1]}, accepted modes have {self._modes.shape[1]}")
        rows = torch.nonzero(raw >= self.threshold).reshape(-1).tolist()
        if not rows:
            return 0
        accepted = self._modes if self._modes is not None else x.new_zeros(0, x.shape[1])
        new_rows: list[int] = []
        for i in rows:
            cand = x[i]
            if accepted.shape[0] and int((accepted != cand).sum(1).min()) < self.min_distance:
                continue
            accepted = torch.cat([accepted, cand[None]])
            new_rows.append(i)
        if new_rows:
            self._modes = accepted
            self._rewards = torch.cat([self._rewards, raw[new_rows]])
        return len(new_rows)

    n_modes = None  # no fixed mode set

    def observe(self, x: torch.Tensor, object_index: torch.Tensor, raw: torch.Tensor) -> None:
        """The mode-counter interface shared with :class:`thermogfn.metrics.ModeTracker`."""
        self.update(x, raw)

    def count_in(self, x: torch.Tensor, object_index: torch.Tensor, raw: torch.Tensor) -> int:
        return self.count(x, raw)

    def count(self, x: torch.Tensor, raw: torch.Tensor) -> int:
        """Number of modes the rule accepts among ``x`` alone (fresh state; ``self`` is unchanged)."""
        return ThresholdModeRule(self.threshold, self.min_distance).update(x, raw)

    def state_dict(self) -> dict:
        return {"threshold": self.threshold, "min_distance": self.min_distance, "modes": self.modes,
                "mode_rewards": self.mode_rewards}

    def load_state_dict(self, state: dict) -> None:
        if float(state["threshold"]) != self.threshold or int(state["min_distance"]) != self.min_distance:
            raise ValueError(f"ThresholdModeRule state has threshold={state['threshold']}, "
                             f"min_distance={state['min_distance']}; this rule has {self.threshold}, "
                             f"{self.min_distance}")
        modes = torch.as_tensor(state["modes"], dtype=torch.int64)
        rewards = torch.as_tensor(state.get("mode_rewards", torch.zeros(modes.shape[0])), dtype=torch.float64)
        if modes.dim() != 2 or rewards.shape != (modes.shape[0],):
            raise ValueError(f"ThresholdModeRule state has modes {tuple(modes.shape)} and rewards "
                             f"{tuple(rewards.shape)}; expected (M, L) and (M,)")
        self._modes = modes.clone() if modes.shape[0] else None
        self._rewards = rewards.clone()
