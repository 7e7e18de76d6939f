"""The run loop shared by every method: train rounds into a run directory with a lock, progress, metrics,
checkpoints on a cadence and on SIGINT/SIGTERM, a stop after repeated non-finite steps, and plots at the end."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thermogfn.config import RunConfig, torch_thread_count
from thermogfn.errors import Interrupted, ThermoGFNError
from thermogfn.methods import make_trainer
from thermogfn.rundir import RunDir, run_lock
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer


class StopFlag:
    """Turns SIGINT/SIGTERM into a request to stop after the current round (a second signal stops at once)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def torch_threads() -> Iterator[None]:
    """Train with :func:`~thermogfn.config.torch_thread_count` intra-op threads, as the benchmarks do; the previous
    setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(torch_thread_count())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resume_hint(path: Path) -> str:
    return f"`thermogfn train --resume {path}`"


def train(cfg: RunConfig, out: str | Path, *, task: Task | None = None, progress: bool = True,
          resume: bool = False, overwrite: bool = False, plots: bool = True) -> BaseTrainer:
    """Train a run into ``out`` (config.json, metrics.jsonl, checkpoints/, plots/); returns the trainer.

    ``out`` must not hold a run unless ``resume`` (continue from its newest good checkpoint, bit-identically to an
    uninterrupted run on CPU) or ``overwrite`` (replace it, once the new run's first round has worked).
    Checkpoints are written atomically every ``checkpoint_every`` rounds, at the end, on SIGINT/SIGTERM (after
    the round in progress) and before stopping on repeated non-finite losses. A run that fails before its
    first round leaves no directory behind.
    """
    run = RunDir(out)
    if resume and not run.is_run():
        raise ThermoGFNError(f"{run.path} holds no run to resume; start one with `thermogfn train --out {run.path}`")
    trainer = make_trainer(cfg, task)  # checks the config and loads the task before anything is written
    with run_lock(run.path), torch_threads():
        if not resume and run.is_run() and not overwrite:
            raise ThermoGFNError(f"{run.path} already holds a run; resume it ({resume_hint(run.path)}), "
                                 "replace it (--overwrite / overwrite=True), or choose another output folder")
        try:
            _run_rounds(trainer, run, resume, progress)
        finally:
            trainer.oracle.close()
        if plots:
            write_plots(run, trainer)
    return trainer


def _run_rounds(trainer: BaseTrainer, run: RunDir, resume: bool, progress: bool) -> None:
    from tqdm import tqdm

    fresh = not resume  # a fresh run replaces what ``out`` held, but only once its first round has worked
    if resume:
        state = run.load_latest_checkpoint()
        if state is not None:
            trainer.load_state_dict(state)
        if trainer.step > trainer.cfg.steps:
            raise ThermoGFNError(f"{run.path} is already at round {trainer.step}; --steps {trainer.cfg.steps} would "
                                 f"train nothing: ask for more rounds than {trainer.step}")
        run.rewrite_metrics([r for r in run.read_metrics() if r["step"] <= trainer.step])
        run.write_config(trainer.cfg)
    steps = trainer.cfg.steps
    pending: list[dict[str, Any]] = []

    def start_fresh() -> None:
        nonlocal fresh
        if fresh:
            run.clear()
            run.write_config(trainer.cfg)
            fresh = False

    def checkpoint() -> None:
        nonlocal pending
        start_fresh()
        last_good = run.checkpoint_paths()[:1]
        try:
            run.append_metrics(pending)
            run.save_checkpoint(trainer.step, trainer.state_dict())
        except OSError as exc:
            kept = f"the last good checkpoint is {last_good[0]}" if last_good else "no checkpoint was written yet"
            raise ThermoGFNError(f"could not write {exc.filename or run.path}: {exc.strerror or exc}; {kept}; free "
                                 f"space and continue with {resume_hint(run.path)}") from None
        pending = []

    show_modes = trainer.modes is not None
    bar = tqdm(total=steps, initial=trainer.step, disable=not progress, unit="round", dynamic_ncols=True)
    with StopFlag() as stop:
        try:
            while trainer.step < steps:
                t0 = time.perf_counter()
                stats = trainer.train_round()
                trainer.seconds += time.perf_counter() - t0
                start_fresh()
                if trainer.step % trainer.cfg.log_every == 0 or trainer.step == steps:
                    row = trainer.metrics_row(stats)
                    pending.append(row)
                    shown = {"loss": f"{row['loss']:.3g}"} | ({"modes": row["modes"]} if show_modes else {})
                    bar.set_postfix(shown, refresh=False)
                bar.update(1)
                if trainer.consecutive_skips >= trainer.cfg.max_consecutive_skips:
                    checkpoint()
                    raise ThermoGFNError(
                        f"{trainer.consecutive_skips} consecutive steps had a non-finite loss or gradient at round "
                        f"{trainer.step}; lower --lr or check the rewards (last good state saved in {run.path})")
                if stop.requested:
                    checkpoint()
                    raise Interrupted(f"interrupted at round {trainer.step}; checkpoint saved: continue with "
                                      f"{resume_hint(run.path)}")
                if trainer.step % trainer.cfg.checkpoint_every == 0 or trainer.step == steps:
                    checkpoint()
        finally:
            bar.close()


def write_plots(run: RunDir, trainer: BaseTrainer) -> None:
    """plots/training.png from metrics.jsonl, and plots/conditioning.png (g and log Z over beta) for GFlowNets."""
    from thermogfn.plots import plot_conditioning, plot_training

    rows = run.read_metrics()
    if rows:
        plot_training(rows, run.path / "plots" / "training.png")
    model = getattr(trainer, "model", None)
    if model is not None:
        plot_conditioning(model, trainer.cfg.train_prior.support(), run.path / "plots" / "conditioning.png")
