"""Planning and running the (method, seed) runs of a benchmark, reusing runs that are already complete."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from thermogfn.config import CONDITIONINGS, RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.methods import bench_config
from thermogfn.rundir import RunDir


@dataclass(frozen=True)
class RunSpec:
    """One run of a benchmark: a method, a seed, its config and its directory."""

    method: str
    seed: int
    cfg: RunConfig
    path: Path


def parse_methods(text: str, offline: bool = False) -> list[str]:
    """The benchmark's methods from ``--methods`` (any letter case), checked; ``offline`` admits only the
    GFlowNet conditioning modes (the other methods need reward calls)."""
    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not methods:
        raise ThermoGFNError("--methods is empty; e.g. --methods logit,layer,logit+layer,none")
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise ThermoGFNError(f"--methods lists {', '.join(repeated)} more than once; use --seeds for repeats")
    for m in methods:
        bench_config(m, RunConfig())
        if offline and m not in CONDITIONINGS:
            raise ThermoGFNError(f"the offline protocol trains from data without reward calls; {m!r} needs them: "
                                 f"choose from {', '.join(CONDITIONINGS)}")
    return methods


def plan(out: Path, base: RunConfig, methods: list[str], seeds: int, fixed_beta: float = 1.0) -> list[RunSpec]:
    if seeds < 1:
        raise ThermoGFNError("--seeds must be at least 1")
    return [RunSpec(m, s, dataclasses.replace(bench_config(m, base, fixed_beta), seed=s),
                    out / "runs" / f"{m}-s{s}") for m in methods for s in range(seeds)]


def is_complete(spec: RunSpec) -> bool:
    """The run directory holds a finished run of exactly this config (so it is reused, not recomputed)."""
    run = RunDir(spec.path)
    if not run.is_run():
        return False
    try:
        cfg = run.load_config()
    except ThermoGFNError:
        return False
    newest = run.checkpoint_paths()[:1]
    done = bool(newest) and int(newest[0].stem.split("_")[1]) == cfg.steps
    if not done:
        return False
    wanted = _resolved(spec)  # loads the task once
    return cfg.identity() == wanted.identity() and cfg.steps == wanted.steps


def _execute(spec: RunSpec) -> str:
    """Train one run: resume it if its directory holds a run of the same config, else (re)start it."""
    import torch

    from thermogfn.loop import train

    torch.set_num_threads(1)
    run = RunDir(spec.path)
    resume = False
    if run.is_run():
        try:
            resume = run.load_config().identity() == _resolved(spec).identity()
        except ThermoGFNError:
            resume = False
    train(spec.cfg, spec.path, progress=False, resume=resume, overwrite=True, plots=False)
    return f"{spec.method} seed {spec.seed}"


def _resolved(spec: RunSpec) -> RunConfig:
    from thermogfn.config import resolve
    from thermogfn.tasks import load_task

    return resolve(spec.cfg, load_task(spec.cfg))


def run_all(specs: list[RunSpec], jobs: int = 1, echo=print) -> None:
    """Train every spec that is not complete yet (resuming partial runs), ``jobs`` processes at a time."""
    todo = [s for s in specs if not is_complete(s)]
    for s in specs:
        if s not in todo:
            echo(f"reusing {s.path}")
    if not todo:
        return
    echo(f"training {len(todo)} run(s) with {jobs} process(es)")
    if jobs <= 1:
        for i, spec in enumerate(todo, 1):
            echo(f"[{i}/{len(todo)}] done: {_execute(spec)}")
        return
    ctx = "fork" if os.name == "posix" else None
    import multiprocessing

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(ctx)) as pool:
        for i, name in enumerate(pool.map(_execute, todo), 1):
            echo(f"[{i}/{len(todo)}] done: {name}")
