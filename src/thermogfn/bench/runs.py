"""Planning and running the (method, seed) runs of a benchmark, reusing runs that are already complete."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from thermogfn.config import CONDITIONINGS, GRID_EXECUTORS, RunConfig
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


RUN_RETRIES = 3  # Ray: a run whose worker or node died is started again (resuming) up to this many times


@dataclass(frozen=True)
class Grid:
    """Where the runs of a benchmark train: ``local``, ``jobs`` processes at a time (default 1); ``ray``, as Ray
    tasks of one CPU each on the cluster at ``ray_address`` (default: a local Ray), ``jobs`` at a time (default:
    the cluster's CPUs). Run directories must be on a path every node sees."""

    executor: str = "local"
    jobs: int | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.executor not in GRID_EXECUTORS:
            raise ThermoGFNError(f"unknown grid executor {self.executor!r}; choose one of {', '.join(GRID_EXECUTORS)}")
        if self.ray_address is not None and self.executor != "ray":
            raise ThermoGFNError(f"--ray-address applies with --executor ray, not {self.executor}")
        if self.jobs is not None and self.jobs < 1:
            raise ThermoGFNError(f"--jobs must be at least 1, got {self.jobs}")


def run_all(specs: list[RunSpec], grid: Grid = Grid(), echo=print) -> None:
    """Train every spec that is not complete yet (resuming partial runs), where ``grid`` says."""
    todo = [s for s in specs if not is_complete(s)]
    for s in specs:
        if s not in todo:
            echo(f"reusing {s.path}")
    if not todo:
        return
    if grid.executor == "ray":
        _run_on_ray(todo, grid.jobs, grid.ray_address, echo)
        return
    jobs = grid.jobs or 1
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


def _run_on_ray(todo: list[RunSpec], jobs: int | None, address: str | None, echo) -> None:
    """Each run a Ray task (one CPU), at most ``jobs`` in flight. A task whose worker died is retried by Ray and
    resumes from the run's newest checkpoint; a run that raises is counted failed, the others go on, and the
    failures are reported together at the end (rerunning the command retries them, resuming)."""
    from thermogfn.executors import check_reachable, import_ray, one_line, start_ray

    ray = import_ray()
    if address:
        check_reachable(address)
    todo = [_absolute(spec) for spec in todo]  # workers may run in another working directory
    started = start_ray(ray, address, jobs)
    try:
        window = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=1, max_retries=RUN_RETRIES, retry_exceptions=False)(_execute)
        queue, running, done, failed = list(todo), {}, 0, []
        echo(f"training {len(todo)} run(s) on Ray, {window} at a time")
        while queue or running:
            while queue and len(running) < window:
                spec = queue.pop(0)
                running[remote.remote(spec)] = spec
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                spec = running.pop(ref)
                try:
                    ray.get(ref)
                    done += 1
                except Exception as exc:  # noqa: BLE001 - a run's error, or Ray's after its retries
                    cause = getattr(exc, "cause", None)  # Ray wraps the run's own error
                    failed.append(f"{spec.method} seed {spec.seed}: "
                                  f"{one_line(cause if isinstance(cause, BaseException) else exc, 200)}")
            echo(f"runs: {done} done, {len(running)} running, {len(failed)} failed, {len(queue)} queued")
        if failed:
            raise ThermoGFNError(f"{len(failed)} of {len(todo)} run(s) failed ({'; '.join(failed)}); fix the cause "
                                 "and rerun the same command: finished runs are reused, the others resume")
    finally:
        if started:
            ray.shutdown()


def _absolute(spec: RunSpec) -> RunSpec:
    data = spec.cfg.data_dir
    cfg = dataclasses.replace(spec.cfg, data_dir=str(Path(data).resolve())) if data else spec.cfg
    return dataclasses.replace(spec, cfg=cfg, path=spec.path.resolve())

