"""What every method's trainer shares: the task, the resolved config, reward calls (counted and cached),
the log of evaluated samples, the mode counter, counters, the random generator, the checkpoint format, and
gradient steps that skip non-finite losses. GFlowNets (:mod:`thermogfn.gfn`) and every baseline
(:mod:`thermogfn.baselines`) build on it, so they write the same run directory and metrics."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from thermogfn.config import RunConfig, build_params, resolve
from thermogfn.errors import ThermoGFNError
from thermogfn.executors import RewardExecutor, make_executor
from thermogfn.tasks import Task, load_task
from thermogfn.tasks.base import hashable_keys

P = TypeVar("P")


class RewardOracle:
    """Raw rewards with a cache for tasks without a table, and a count of reward calls.

    The cache is keyed by :meth:`Task.object_keys` (the index, or the tokens of a space too large to index), so
    the task scores each distinct object at most once, in key order; the objects not in the cache go to the
    ``executor`` (:mod:`thermogfn.executors`; default: in process).
    """

    def __init__(self, task: Task, executor: RewardExecutor | None = None):
        self.task = task
        self.executor = executor if executor is not None else RewardExecutor(task)
        self.calls = 0
        self._table = task.table() if task.n_objects <= 2**22 else None
        self._cache: dict[int | bytes, float] = {}

    def __call__(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Raw rewards of objects ``x``; ``keys`` are their :meth:`Task.object_keys` if the caller has them."""
        self.calls += x.shape[0]
        keys_t = self.task.object_keys(x) if keys is None else keys
        if self._table is not None:
            return self._table[keys_t].double()
        keys = hashable_keys(keys_t)
        missing = sorted({k for k in keys if k not in self._cache})
        if missing:
            fresh = self.executor.map(self.task.objects_from_keys(self.task.keys_from_hashable(missing)))
            self._cache.update(zip(missing, fresh.tolist(), strict=True))
        return torch.tensor([self._cache[k] for k in keys], dtype=torch.float64)

    def close(self) -> None:
        """Release the executor's workers (started again if more rewards are asked for)."""
        self.executor.close()

    def state_dict(self) -> dict[str, torch.Tensor]:
        keys = list(self._cache)
        return {"keys": self.task.keys_from_hashable(keys),
                "values": torch.tensor([self._cache[k] for k in keys], dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._cache = dict(zip(hashable_keys(state["keys"]), state["values"].tolist(), strict=True))


@dataclass
class RoundStats:
    loss: float
    loss_replay: float | None
    mean_reward: float | None


class BaseTrainer(ABC):
    """One run of any method. Subclasses implement ``train_round`` and their own state."""

    # edits objects token by token (point mutations, which keep the length): refuses objects of several lengths
    # (--min-length) and tasks without token objects
    mutates_tokens = False

    def __init__(self, cfg: RunConfig, task: Task | None = None):
        self.task = task if task is not None else load_task(cfg)
        if task is not None:
            cfg = dataclasses.replace(cfg, task=task.name)
        self.cfg = resolve(cfg, self.task)
        if self.cfg.min_length is not None and self.mutates_tokens:
            raise ThermoGFNError(f"the {self.cfg.method} baseline's point mutations keep a sequence's length, so it "
                                 "cannot search over several lengths (--min-length); use --method gfn, ppo, a2c, sac "
                                 "or random, or drop --min-length")
        if self.mutates_tokens and not self.task.token_objects:
            raise ThermoGFNError(f"the {self.cfg.method} baseline mutates tokens, but task {self.task.name}'s objects "
                                 "are built by its MDP only; use --method gfn, ppo, a2c, sac or random")
        torch.manual_seed(self.cfg.seed)
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.oracle = RewardOracle(self.task, make_executor(self.task, self.cfg.executor, self.cfg.executor_workers,
                                                           self.cfg.ray_address))
        self.modes = self.task.mode_counter()
        self.step = 0
        self.skipped = 0
        self.consecutive_skips = 0
        self.seconds = 0.0
        self.samples: list[torch.Tensor] = []  # object keys (Task.object_keys) of every evaluated sample, in order

    def method_params(self, cls: type[P]) -> P:
        """This method's hyper-parameters: ``cls`` defaults overridden by the config's ``method_params``."""
        return build_params(cls, self.cfg.method_params, self.cfg.method)

    @property
    def progress(self) -> float:
        return min(1.0, self.step / max(1, self.cfg.steps))

    def evaluate_samples(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reward calls on new samples: raw rewards and object keys (:meth:`Task.object_keys`); logs them and
        counts modes."""
        keys = self.task.object_keys(x)
        raw = self.oracle(x, keys)
        self.samples.append(keys)
        if self.modes is not None:
            self.modes.observe(x, keys, raw)
        return raw, keys

    def gradient_step(self, value: torch.Tensor, optimizer: torch.optim.Optimizer,
                      parameters: Iterable[torch.nn.Parameter],
                      zero_grad: Callable[[], None] | None = None) -> float:
        """Backward, clip and step; a non-finite loss or gradient is skipped and counted instead. ``zero_grad``
        clears the gradients (default: the optimiser's, setting them to None)."""
        if not torch.isfinite(value):
            self.skipped += 1
            self.consecutive_skips += 1
            return float("nan")
        clear = zero_grad or (lambda: optimizer.zero_grad(set_to_none=True))
        clear()
        value.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(parameters), self.cfg.grad_clip)
        if not torch.isfinite(norm):
            self.skipped += 1
            self.consecutive_skips += 1
            clear()
            return float("nan")
        optimizer.step()
        self.consecutive_skips = 0
        return float(value.detach())

    @abstractmethod
    def train_round(self) -> RoundStats:
        """One round of training (``batch_size`` reward calls for the online methods)."""

    def method_metrics(self) -> dict[str, Any]:
        """Extra per-method columns of metrics.jsonl."""
        return {}

    @abstractmethod
    def method_state(self) -> dict[str, Any]:
        """The method's own state for checkpoints (networks, optimisers, buffers, chains)."""

    @abstractmethod
    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`method_state`."""

    def metrics_row(self, stats: RoundStats) -> dict[str, Any]:
        row = {"step": self.step, "loss": stats.loss, "loss_replay": stats.loss_replay}
        row.update(self.method_metrics())
        row.update({"reward_calls": self.oracle.calls, "modes": self.modes.n_found if self.modes is not None else None,
                    "mean_reward": stats.mean_reward, "skipped": self.skipped, "seconds": round(self.seconds, 3)})
        return row

    def state_dict(self) -> dict[str, Any]:
        return {
            "identity": self.cfg.identity(), "step": self.step, "skipped": self.skipped,
            "consecutive_skips": self.consecutive_skips, "seconds": self.seconds,
            "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "reward_calls": self.oracle.calls, "reward_cache": self.oracle.state_dict(),
            "modes": self.modes.state_dict() if self.modes is not None else None,
            "samples": torch.cat(self.samples) if self.samples else self.task.keys_from_hashable([]),
            "method": self.method_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # fields added in later versions take their defaults, so older checkpoints stay loadable
        if RunConfig.from_dict(state["identity"]).identity() != self.cfg.identity():
            raise ThermoGFNError("the checkpoint was written by a run with another task or config; "
                                 "resume it with its own config, or start a new --out folder")
        self.load_method_state(state["method"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.skipped, self.seconds = state["step"], state["skipped"], state["seconds"]
        self.consecutive_skips = state["consecutive_skips"]
        self.oracle.calls = state["reward_calls"]
        self.oracle.load_state_dict(state["reward_cache"])
        if self.modes is not None and state["modes"] is not None:
            self.modes.load_state_dict(state["modes"])
        self.samples = [state["samples"]]
