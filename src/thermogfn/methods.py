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

# benchmark method names: a GFlowNet conditioning mode (``none`` trains at one fixed beta), the same with LS-GFN
# local search (``<conditioning>-ls``), or a baseline
LOCAL_SEARCH_SUFFIX = "-ls"
BENCH_METHODS: tuple[str, ...] = (CONDITIONINGS + tuple(c + LOCAL_SEARCH_SUFFIX for c in CONDITIONINGS)
                                  + BASELINES)
# what ``-ls`` adds to a GFlowNet run, chosen on held-out seeds (benchmarks/ls_tuning.py,
# benchmarks/results/ls_tuning_tfbind8.jsonl); ``lr`` applies where the bench is not given --lr
LOCAL_SEARCH_DEFAULTS = {"local_search": 4, "ls_iterations": 7, "ls_accept": "greedy"}
LOCAL_SEARCH_LR = 1e-3


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
    if name in BASELINES:  # they use their own networks: the GFlowNets' --architecture does not apply
        return dataclasses.replace(base, method=name, model=dataclasses.replace(base.model, architecture=None),
                                   **fixed)
    conditioning = name.removesuffix(LOCAL_SEARCH_SUFFIX)
    extra = fixed if conditioning == "none" else {}
    if name.endswith(LOCAL_SEARCH_SUFFIX):
        extra |= LOCAL_SEARCH_DEFAULTS | {"lr": base.lr if base.lr is not None else LOCAL_SEARCH_LR}
    return dataclasses.replace(base, model=dataclasses.replace(base.model, conditioning=conditioning), **extra)
