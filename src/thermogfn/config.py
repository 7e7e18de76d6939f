"""The one typed place for a run's configuration, with per-task defaults resolved before a run starts."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from thermogfn.errors import ThermoGFNError
from thermogfn.policy import ModelConfig

# what identifies a run's outcome: a checkpoint written under another value of these is refused on resume
IDENTITY_EXCLUDES = ("steps", "data_dir", "log_every", "checkpoint_every", "max_consecutive_skips")


@dataclass
class RunConfig:
    """Everything a training run needs. ``None`` fields take the task's defaults (see :func:`resolve`)."""

    task: str = "tfbind8"
    data_dir: str | None = None
    alphabet: str | None = None  # custom tasks
    length: int | None = None  # custom tasks
    reward_min: float | None = None  # custom tasks: floor raw rewards at this value (default: reject <= 0)
    ndim: int = 4  # hypergrid
    height: int = 8  # hypergrid
    mdp: str | None = None  # prepend-append for sequences, hypergrid for the hypergrid
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: str = "tb"
    subtb_lambda: float = 0.9
    beta_train: str = "uniform:1:3"
    beta_explore: str | None = None  # default: the training prior
    steps: int | None = None  # training rounds
    batch_size: int = 32  # on-policy trajectories per round
    replay_batch: int = 32  # replayed trajectories per round (0: on-policy only)
    replay_top_fraction: float = 0.1
    eps: float | None = None
    lr: float | None = None
    lr_logz: float = 1e-2
    grad_clip: float = 10.0
    max_consecutive_skips: int = 20  # stop (with a checkpoint) after this many non-finite steps in a row
    seed: int = 0
    offline: bool = False
    offline_data: str | None = None  # CSV of sequence,reward; default: bottom half of the task's table
    log_every: int = 10
    checkpoint_every: int = 100

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ThermoGFNError(f"unknown config keys {sorted(unknown)}; this config is from another version")
        model = ModelConfig(**data.pop("model", {}))
        return cls(model=model, **data)

    def identity(self) -> dict[str, Any]:
        """The fields that must match for a checkpoint to be resumed under this config."""
        d = self.to_dict()
        for key in IDENTITY_EXCLUDES:
            d.pop(key, None)
        return d
