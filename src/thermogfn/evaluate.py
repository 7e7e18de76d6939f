"""Evaluate a trained run at chosen betas: exact metrics where the space is enumerable, sample metrics always."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.exact import exact_enumerable, exact_metrics
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.methods import make_trainer, method
from thermogfn.metrics import sample_summary
from thermogfn.rundir import RunDir
from thermogfn.sampling import forward_rollout
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer, RewardOracle


@dataclass
class LoadedRun:
    """A run directory's config, task and trained model (from its newest good checkpoint)."""

    run: RunDir
    trainer: BaseTrainer


def load_run(path: str | Path, task: Task | None = None) -> LoadedRun:
    """Load a run; pass ``task`` for runs trained from Python on a task object (e.g. a CustomTask)."""
    run = RunDir(path)
    cfg = run.load_config()
    trainer = make_trainer(cfg, task)
    state = run.load_latest_checkpoint()
    if state is None:
        raise ThermoGFNError(f"{path} has no usable checkpoint yet; train it (or resume with "
                             f"`thermogfn train --resume {path}`)")
    trainer.load_state_dict(state)
    return LoadedRun(run, trainer)


def _gflownet(trainer: BaseTrainer) -> GFlowNetTrainer:
    if not method(trainer.cfg.method).conditional_sampler:
        raise ThermoGFNError(f"this run trained the {trainer.cfg.method!r} baseline, which has no temperature-"
                             "conditional sampler; sample and eval apply to GFlowNet runs (its training samples "
                             "are in the bench reports)")
    assert isinstance(trainer, GFlowNetTrainer)
    return trainer


def draw_samples(trainer: GFlowNetTrainer, beta: float, n: int, seed: int = 0,
                 chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` objects sampled on-policy (no exploration) at ``beta``, and their raw rewards."""
    trainer = _gflownet(trainer)
    gen = torch.Generator().manual_seed(seed)
    oracle = RewardOracle(trainer.task)
    xs, raws = [], []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        traj = forward_rollout(trainer.model, torch.full((m,), float(beta)), 0.0, gen)
        xs.append(traj.objects)
        raws.append(oracle(traj.objects))
    return torch.cat(xs), torch.cat(raws)


def evaluate(loaded: LoadedRun, betas: list[float], exact: bool | None = None, samples: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """``{"betas": {"1": {...}}, ...}``: exact keys (tv, kl, ...) only where exact evaluation applies."""
    trainer = _gflownet(loaded.trainer)
    task, mdp = trainer.task, trainer.model.mdp
    can_exact = exact_enumerable(mdp, task)
    if exact and not can_exact:
        raise ThermoGFNError(f"exact evaluation needs an enumerable space with a full reward table; task "
                             f"{task.name} has {task.n_objects:.3g} objects. Drop --exact (sample metrics still run)")
    do_exact = can_exact if exact is None else exact
    counter = task.mode_counter()
    out: dict[str, Any] = {"task": task.name, "step": trainer.step, "reward_calls": trainer.oracle.calls,
                           "modes_found_training": trainer.modes.n_found if trainer.modes is not None else None,
                           "n_modes": counter.n_modes if counter is not None else None, "betas": {}}
    for beta in betas:
        row: dict[str, Any] = {}
        if do_exact:
            row.update(exact_metrics(trainer.model, task, beta))
        if samples > 0:
            x, raw = draw_samples(trainer, beta, samples, seed)
            index = task.object_index(x)
            row.update(sample_summary(x, raw, index, None, task.distance, diversity=task.diversity))
            row["modes"] = counter.count_in(x, index, raw) if counter is not None else None
        out["betas"][format_beta(beta)] = row
    return out


def format_beta(beta: float) -> str:
    return f"{beta:g}"
