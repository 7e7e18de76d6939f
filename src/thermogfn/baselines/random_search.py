"""``random``: uniformly random objects, ``batch_size`` reward calls per round. The floor every method must beat."""

from __future__ import annotations

from typing import Any

import torch

from thermogfn.trainer import BaseTrainer, RoundStats


class RandomSearch(BaseTrainer):
    """Draws ``batch_size`` objects uniformly at random each round."""

    def train_round(self) -> RoundStats:
        x = torch.randint(self.task.vocab_size, (self.cfg.batch_size, self.task.length), generator=self.generator)
        raw, _ = self.evaluate_samples(x)
        self.step += 1
        return RoundStats(float("nan"), None, float(raw.mean()))

    def method_state(self) -> dict[str, Any]:
        return {}

    def load_method_state(self, state: dict[str, Any]) -> None:
        pass
