"""Mode counters: a given mode set (:class:`ModeTracker`), or a rule for tasks without one.

A task with a given mode list exposes :meth:`Task.mode_index` (counted by :class:`ModeTracker`).
A task whose space is too large for a table (e.g. RNA2/RNA3, 4^14 sequences) instead exposes a
:class:`ThresholdModeRule`: a sample is a new mode if its raw reward is ``>= threshold`` and its Hamming
distance to every previously accepted mode is ``>= min_distance``. Acceptance is greedy in arrival order
(within a batch: row order), so the count depends on the order samples were seen; it is a lower bound on
the number of well-separated high-reward regions visited.
"""

from __future__ import annotations

import torch

__all__ = ["ModeTracker", "ThresholdModeRule", "count_modes"]


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
        """The mode-counter interface shared with :class:`ModeTracker`."""
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


def _check_mode_index(mode_index: torch.Tensor) -> None:
    if mode_index.dim() != 1:
        raise ValueError(f"mode_index must be 1-D, got shape {tuple(mode_index.shape)}")
    if mode_index.numel() > 1 and not bool((mode_index[1:] > mode_index[:-1]).all()):
        raise ValueError("mode_index must be sorted ascending without duplicates")


def _mode_positions(object_index: torch.Tensor, mode_index: torch.Tensor) -> torch.Tensor:
    """Positions in ``mode_index`` of the entries of ``object_index`` that are modes."""
    obj = object_index.reshape(-1).to(mode_index.device, mode_index.dtype)
    if mode_index.numel() == 0 or obj.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=mode_index.device)
    pos = torch.searchsorted(mode_index, obj).clamp_max(mode_index.numel() - 1)
    return pos[mode_index[pos] == obj]


def count_modes(object_index: torch.Tensor, mode_index: torch.Tensor) -> int:
    """Number of distinct members of the sorted ``mode_index`` that occur in ``object_index``."""
    _check_mode_index(mode_index)
    return int(torch.unique(_mode_positions(object_index, mode_index)).numel())


class ModeTracker:
    """Remembers which members of a mode set have ever been seen."""

    def __init__(self, mode_index: torch.Tensor) -> None:
        mode_index = torch.as_tensor(mode_index, dtype=torch.long).reshape(-1)
        self.mode_index = torch.unique(mode_index)  # sorted, deduplicated
        self.found = torch.zeros(self.mode_index.numel(), dtype=torch.bool)

    def update(self, object_index: torch.Tensor) -> int:
        """Mark the modes among ``object_index``; returns how many were new."""
        before = self.n_found
        self.found[_mode_positions(object_index, self.mode_index)] = True
        return self.n_found - before

    @property
    def n_found(self) -> int:
        return int(self.found.sum())

    @property
    def n_modes(self) -> int:
        return int(self.mode_index.numel())

    def observe(self, x: torch.Tensor, object_index: torch.Tensor, raw: torch.Tensor) -> None:
        """The mode-counter interface shared with :class:`thermogfn.modes.ThresholdModeRule`."""
        self.update(object_index)

    def count_in(self, x: torch.Tensor, object_index: torch.Tensor, raw: torch.Tensor) -> int:
        """Distinct modes among a sample set (state unchanged)."""
        return count_modes(object_index, self.mode_index)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mode_index": self.mode_index.clone(), "found": self.found.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        found = torch.as_tensor(state["found"], dtype=torch.bool)
        if "mode_index" in state and not torch.equal(torch.as_tensor(state["mode_index"]), self.mode_index):
            raise ValueError("ModeTracker state belongs to a different mode set")
        if found.shape != self.found.shape:
            raise ValueError(f"ModeTracker state has {found.numel()} modes, expected {self.found.numel()}")
        self.found = found.clone()
