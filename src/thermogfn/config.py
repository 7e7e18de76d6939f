"""The one typed place for a run's configuration, with per-task defaults resolved before a run starts."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from thermogfn.errors import ThermoGFNError
from thermogfn.policy import ModelConfig

T = TypeVar("T")

# what identifies a run's outcome: a checkpoint written under another value of these is refused on resume
IDENTITY_EXCLUDES = ("steps", "data_dir", "log_every", "checkpoint_every", "max_consecutive_skips")


@dataclass
class RunConfig:
    """Everything a training run needs. ``None`` fields take the task's defaults (see :func:`resolve`)."""

    task: str = "tfbind8"
    method: str = "gfn"  # gfn, or a baseline: ppo, sac, a2c, mcmc, sa, random
    method_params: dict[str, Any] = field(default_factory=dict)  # a baseline's hyper-parameters, by name
    data_dir: str | None = None
    alphabet: str | None = None  # custom tasks
    length: int | None = None  # custom tasks
    reward_min: float | None = None  # custom tasks: floor raw rewards at this value (default: reject <= 0)
    reward_timeout: float | None = None  # custom tasks: seconds one call of the reward function may take
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
    def from_dict(cls, data: Any) -> RunConfig:
        """A config from its JSON form; wrong keys or value types raise ThermoGFNError."""
        data = _checked_fields(cls, data, "run config")
        model = ModelConfig(**_checked_fields(ModelConfig, data.pop("model", {}), "model config"))
        return cls(model=model, **data)

    def identity(self) -> dict[str, Any]:
        """The fields that must match for a checkpoint to be resumed under this config."""
        d = self.to_dict()
        for key in IDENTITY_EXCLUDES:
            d.pop(key, None)
        return d


def _checked_fields(cls: type, data: Any, what: str) -> dict[str, Any]:
    """``data`` as keyword arguments of dataclass ``cls``, every value of its declared type."""
    if not isinstance(data, dict):
        raise ThermoGFNError(f"the {what} is a JSON {type(data).__name__}, not an object")
    hints = typing.get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise ThermoGFNError(f"unknown {what} keys {sorted(unknown)}; it is from another version")
    for key, value in data.items():
        allowed = typing.get_args(hints[key]) or (hints[key],)
        if hints[key] is ModelConfig:
            continue
        if typing.get_origin(hints[key]) is dict:
            if not isinstance(value, dict):
                raise ThermoGFNError(f"{what} field {key!r} is {value!r}, not an object")
            continue
        ok = any(value is None if t is type(None) else
                 isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))
                 or (t is float and isinstance(value, int) and not isinstance(value, bool)) for t in allowed)
        if not ok:
            raise ThermoGFNError(f"{what} field {key!r} is {value!r}, not of type {hints[key]}")
    return dict(data)


def build_params(cls: type[T], values: dict[str, Any], method: str) -> T:
    """A method's hyper-parameter dataclass from ``--method-param`` values, checked by name and type."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ThermoGFNError(f"method {method} has no parameter(s) {', '.join(unknown)}; it takes "
                             f"{', '.join(hints)}")
    checked = {}
    for key, value in values.items():
        want = hints[key]
        if float in (want, *typing.get_args(want)) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ThermoGFNError(f"--method-param {key}={value!r} must be of type {getattr(want, '__name__', want)}")
        checked[key] = value
    return cls(**checked)
