"""``random``: uniformly random objects (over every allowed length), ``batch_size`` reward calls per round. The
floor every method must beat."""

from __future__ import annotations

from typing import Any

from thermogfn.trainer import BaseTrainer, RoundStats


class RandomSearch(BaseTrainer):
    """Draws ``batch_size`` objects uniformly at random each round."""

    def train_round(self) -> RoundStats:
        x = self.task.uniform_objects(self.cfg.batch_size, self.generator)
        raw, _ = self.evaluate_samples(x)
        self.step += 1
        return RoundStats(float("nan"), None, float(raw.mean()))

    def method_state(self) -> dict[str, Any]:
        return {}

    def load_method_state(self, state: dict[str, Any]) -> None:
        pass
