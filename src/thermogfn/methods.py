"""The one table of methods: the GFlowNet and every baseline, where each lives, and what each offers.

The CLI, evaluation and the benchmarks read this table; adding a method touches its own module and one row here.
Trainer classes are imported only when a run is built, so listing methods imports no torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thermogfn.config import CONDITIONINGS, RunConfig
from thermogfn.errors import ThermoGFNError

if TYPE_CHECKING:
    from thermogfn.tasks import Task
    from thermogfn.trainer import BaseTrainer


@dataclass(frozen=True)
class Method:
    """One row of the table: ``--method NAME`` trains ``module.cls``."""

    name: str
    module: str
    cls: str
    summary: str
    conditional_sampler: bool = False  # sample / eval at any beta (and corrected sampling) apply to its runs


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("gfn", "thermogfn.gfn", "GFlowNetTrainer", "temperature-conditional GFlowNet", conditional_sampler=True),
    Method("ppo", "thermogfn.baselines.ppo", "PPO", "proximal policy optimisation"),
    Method("sac", "thermogfn.baselines.sac", "SAC", "discrete soft actor-critic"),
    Method("a2c", "thermogfn.baselines.a2c", "A2C", "advantage actor-critic"),
    Method("mcmc", "thermogfn.baselines.mcmc", "MCMC", "Metropolis-Hastings chains at a fixed beta"),
    Method("sa", "thermogfn.baselines.annealing", "SimulatedAnnealing", "simulated annealing with restarts"),
    Method("random", "thermogfn.baselines.random_search", "RandomSearch", "uniformly random objects"),
)}
BASELINES: tuple[str, ...] = tuple(name for name in METHODS if name != "gfn")

# benchmark method names: a GFlowNet conditioning mode (``none`` trains at one fixed beta) or a baseline
BENCH_METHODS: tuple[str, ...] = CONDITIONINGS + BASELINES


def method(name: str) -> Method:
    """The table row of ``name``; an unknown name is a one-line error listing the known ones."""
    if name not in METHODS:
        raise ThermoGFNError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def trainer_class(name: str) -> type[BaseTrainer]:
    row = method(name)
    return getattr(importlib.import_module(row.module), row.cls)


def make_trainer(cfg: RunConfig, task: Task | None = None) -> BaseTrainer:
    """The trainer of ``cfg.method`` (task loaded, config resolved and checked)."""
    return trainer_class(cfg.method)(cfg, task)


def bench_config(name: str, base: RunConfig, fixed_beta: float = 1.0) -> RunConfig:
    """The run config of benchmark method ``name`` (one of :data:`BENCH_METHODS`). Methods that use one beta
    (``none`` and the baselines) train at ``fixed_beta``."""
    if name not in BENCH_METHODS:
        raise ThermoGFNError(f"unknown method {name!r}; choose from {', '.join(BENCH_METHODS)}")
    fixed = {"beta_train": f"constant:{fixed_beta:g}", "beta_explore": f"constant:{fixed_beta:g}"}
    if name in BASELINES:
        return dataclasses.replace(base, method=name, **fixed)
    model = dataclasses.replace(base.model, conditioning=name)
    return dataclasses.replace(base, model=model, **(fixed if name == "none" else {}))
