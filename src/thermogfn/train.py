"""Training loops (PAPER.md section 5): online mode seeking with prioritised replay, and offline training."""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch

from thermogfn.config import RunConfig
from thermogfn.errors import Interrupted, ThermoGFNError
from thermogfn.mdp import MDP, make_mdp
from thermogfn.objectives import OBJECTIVES, loss, score
from thermogfn.offline_data import bottom_half, read_offline_data
from thermogfn.policy import CONDITIONINGS, GFlowNetModel
from thermogfn.priors import BetaPrior, parse_beta_prior
from thermogfn.replay import ReplayBuffer
from thermogfn.rundir import RunDir
from thermogfn.sampling import Trajectories, backward_rollout, forward_rollout
from thermogfn.tasks import Task, make_task
from thermogfn.trainer import BaseTrainer, RoundStats


def load_task(cfg: RunConfig) -> Task:
    """The task a config names (data loaded and checked)."""
    extra: dict[str, Any] = {"ndim": cfg.ndim, "height": cfg.height} if cfg.task == "hypergrid" else {}
    if ":" in cfg.task:
        extra["timeout"] = cfg.reward_timeout
    return make_task(cfg.task, data_dir=cfg.data_dir, alphabet=cfg.alphabet, length=cfg.length,
                     reward_min=cfg.reward_min, **extra)


def resolve(cfg: RunConfig, task: Task) -> RunConfig:
    """Fill ``None`` fields with the task's defaults and check the combination; returns a new config."""
    d = task.defaults
    model = dataclasses.replace(cfg.model, hidden=cfg.model.hidden if cfg.model.hidden is not None else d.hidden)
    out = dataclasses.replace(
        cfg, model=model, mdp=cfg.mdp or task.mdp_kinds[0], steps=cfg.steps if cfg.steps is not None else d.rounds,
        eps=cfg.eps if cfg.eps is not None else d.eps, lr=cfg.lr if cfg.lr is not None else d.lr,
        beta_explore=cfg.beta_explore or cfg.beta_train)
    if out.method != "gfn":
        from thermogfn.baselines import BASELINES

        if out.method not in BASELINES:
            raise ThermoGFNError(f"unknown method {out.method!r}; choose gfn or one of {', '.join(BASELINES)}")
    if out.mdp not in task.mdp_kinds:
        raise ThermoGFNError(f"task {task.name} uses MDP {' or '.join(task.mdp_kinds)}, not {out.mdp!r}")
    if out.objective not in OBJECTIVES:
        raise ThermoGFNError(f"unknown objective {out.objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if model.conditioning not in CONDITIONINGS:
        raise ThermoGFNError(f"unknown conditioning {model.conditioning!r}; "
                             f"choose one of {', '.join(CONDITIONINGS)}")
    for spec in (out.beta_train, out.beta_explore):
        prior = parse_beta_prior(spec)
        if model.conditioning == "none" and prior.kind != "constant":
            raise ThermoGFNError(f"conditioning 'none' trains a plain GFlowNet at one fixed beta; "
                                 f"use constant priors (e.g. --beta-train constant:1), not {spec!r}")
    _check_numbers(out)
    if not 0 <= out.eps <= 1:
        raise ThermoGFNError(f"--eps must be in [0, 1], got {out.eps}")
    return out


def _check_numbers(cfg: RunConfig) -> None:
    """One-line errors for numeric settings outside their sensible range."""
    checks = [
        ("--steps", cfg.steps, cfg.steps >= 0, ">= 0"),
        ("--batch-size", cfg.batch_size, cfg.batch_size >= 1, ">= 1"),
        ("--replay-batch", cfg.replay_batch, cfg.replay_batch >= 0, ">= 0"),
        ("--lr", cfg.lr, math.isfinite(cfg.lr) and cfg.lr > 0, "a positive finite number"),
        ("--lr-logz", cfg.lr_logz, math.isfinite(cfg.lr_logz) and cfg.lr_logz > 0, "a positive finite number"),
        ("--grad-clip", cfg.grad_clip, cfg.grad_clip > 0, "> 0"),
        ("--subtb-lambda", cfg.subtb_lambda, math.isfinite(cfg.subtb_lambda) and cfg.subtb_lambda > 0, "> 0"),
        ("--hidden", cfg.model.hidden, 1 <= cfg.model.hidden <= 65536, "in 1..65536"),
        ("--layers", cfg.model.layers, 1 <= cfg.model.layers <= 64, "in 1..64"),
        ("--log-every", cfg.log_every, cfg.log_every >= 1, ">= 1"),
        ("--checkpoint-every", cfg.checkpoint_every, cfg.checkpoint_every >= 1, ">= 1"),
        ("--max-consecutive-skips", cfg.max_consecutive_skips, cfg.max_consecutive_skips >= 1, ">= 1"),
        ("--seed", cfg.seed, 0 <= cfg.seed < 2**63, "in 0..2^63-1"),
        ("--replay-top-fraction", cfg.replay_top_fraction, 0 < cfg.replay_top_fraction <= 1, "in (0, 1]"),
    ]
    for flag, value, ok, rule in checks:
        if not ok:
            raise ThermoGFNError(f"{flag} must be {rule}, got {value}")


def build_model(cfg: RunConfig, task: Task) -> GFlowNetModel:
    """The model a resolved config describes, initialised from the config's seed."""
    mdp: MDP = make_mdp(cfg.mdp, task.vocab_size, task.length)
    lo1, hi1 = parse_beta_prior(cfg.beta_train).support()
    lo2, hi2 = parse_beta_prior(cfg.beta_explore).support()
    torch.manual_seed(cfg.seed)
    return GFlowNetModel(mdp, cfg.model, (min(lo1, lo2), max(hi1, hi2)), with_flow=cfg.objective != "tb")


class Trainer(BaseTrainer):
    """A GFlowNet run: model, optimiser, beta priors and reward-prioritised replay (PAPER.md section 5)."""

    def __init__(self, cfg: RunConfig, task: Task | None = None):
        super().__init__(cfg, task)
        self.model = build_model(self.cfg, self.task)
        self.train_prior: BetaPrior = parse_beta_prior(self.cfg.beta_train)
        self.explore_prior: BetaPrior = parse_beta_prior(self.cfg.beta_explore)
        self.optimizer = torch.optim.Adam([
            {"params": self.model.policy_parameters(), "lr": self.cfg.lr},
            {"params": list(self.model.log_z.parameters()), "lr": self.cfg.lr_logz},
        ], fused=True)  # one fused kernel instead of a Python loop over parameters (~7% of a round)
        self.buffer = ReplayBuffer(self.task.length)
        self.offline_x: torch.Tensor | None = None
        self.offline_logr: torch.Tensor | None = None
        if self.cfg.offline:
            x, raw = (read_offline_data(self.cfg.offline_data, self.task) if self.cfg.offline_data
                      else bottom_half(self.task))
            self.offline_x, self.offline_logr = x, self.task.shaping.log_reward(raw)
            self._set_log_z_ceiling(float(self.offline_logr.max()))  # the data's best, not the hidden task's
        else:
            self._set_log_z_ceiling(self.task.log_reward_bound())

    def _set_log_z_ceiling(self, best: float | None) -> None:
        """Raise m of log Z(beta) to ``best``, a log-reward some object attains (the task's maximum in online
        training, the dataset's offline, else the best seen so far)."""
        set_ceiling = getattr(self.model.log_z, "set_ceiling", None)
        if set_ceiling is not None and best is not None and best > float(self.model.log_z.ceiling):
            set_ceiling(best)

    def _update(self, traj: Trajectories, log_reward: torch.Tensor) -> float:
        scored = score(self.model, traj, traj.beta.double() * log_reward, need_flow=self.cfg.objective != "tb")
        value = loss(self.cfg.objective, scored, traj.n, self.cfg.subtb_lambda)
        return self.gradient_step(value, self.optimizer, self.model.parameters())

    def _replay(self, x: torch.Tensor, log_reward: torch.Tensor) -> float:
        beta = self.train_prior.sample(x.shape[0], self.progress, self.generator)
        return self._update(backward_rollout(self.model, x, beta, self.generator), log_reward)

    def train_round(self) -> RoundStats:
        """One round: on-policy batch + one replay batch (online), or one dataset batch (offline)."""
        cfg = self.cfg
        if cfg.offline:
            assert self.offline_x is not None and self.offline_logr is not None
            pick = torch.randint(self.offline_x.shape[0], (cfg.batch_size,), generator=self.generator)
            stats = RoundStats(self._replay(self.offline_x[pick], self.offline_logr[pick]), None, None)
        else:
            beta = self.explore_prior.sample(cfg.batch_size, self.progress, self.generator)
            traj = forward_rollout(self.model, beta, cfg.eps, self.generator)
            raw, index = self.evaluate_samples(traj.objects)
            log_reward = self.task.shaping.log_reward(raw)
            if self.task.log_reward_bound() is None:
                self._set_log_z_ceiling(float(log_reward.max()))
            on_policy = self._update(traj, log_reward)
            self.buffer.add(traj.objects, log_reward, index)
            replay = None
            if cfg.replay_batch > 0:
                x, logr = self.buffer.sample(cfg.replay_batch, cfg.replay_top_fraction, self.generator)
                replay = self._replay(x, logr)
            stats = RoundStats(on_policy, replay, float(raw.mean()))
        self.step += 1
        return stats

    def method_metrics(self) -> dict[str, Any]:
        beta = torch.tensor([self.train_prior.mean(self.progress)])
        with torch.no_grad():
            return {"log_z": float(self.model.log_z(beta)), "beta_mean": float(beta)}

    def method_state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "buffer": self.buffer.state_dict()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        buf = state["buffer"]
        self.buffer.load_state_dict(buf, self.task.object_index(buf["x"]))


def make_trainer(cfg: RunConfig, task: Task | None = None) -> BaseTrainer:
    """The trainer of ``cfg.method``: a GFlowNet, or one of the baselines."""
    if cfg.method == "gfn":
        return Trainer(cfg, task)
    from thermogfn.baselines import BASELINES

    return BASELINES[cfg.method](cfg, task)


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


def train(cfg: RunConfig, out: str | Path, *, task: Task | None = None, progress: bool = True,
          resume: bool = False) -> BaseTrainer:
    """Train a run into ``out`` (config.json, metrics.jsonl, checkpoints/); returns the trainer.

    Checkpoints are written atomically every ``checkpoint_every`` rounds, at the end, on SIGINT/SIGTERM
    (after the round in progress) and before stopping on repeated non-finite losses. ``resume=True``
    continues from the newest good checkpoint, bit-identically to an uninterrupted run on CPU.
    """
    from tqdm import tqdm

    run = RunDir(out)
    trainer = make_trainer(cfg, task)
    fresh = not resume  # a fresh run replaces what ``out`` held, but only once its first round has worked
    if resume:
        state = run.load_latest_checkpoint()
        if state is not None:
            trainer.load_state_dict(state)
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
        run.append_metrics(pending)
        pending = []
        run.save_checkpoint(trainer.step, trainer.state_dict())

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
                    bar.set_postfix(loss=f"{row['loss']:.3g}", modes=row["modes"], refresh=False)
                bar.update(1)
                if trainer.consecutive_skips >= trainer.cfg.max_consecutive_skips:
                    checkpoint()
                    raise ThermoGFNError(
                        f"{trainer.consecutive_skips} consecutive steps had a non-finite loss or gradient at round "
                        f"{trainer.step}; lower --lr or check the rewards (last good state saved in {run.path})")
                if stop.requested:
                    checkpoint()
                    raise Interrupted(f"interrupted at round {trainer.step}; checkpoint saved: continue with "
                                      f"`thermogfn train --resume --out {run.path}`")
                if trainer.step % trainer.cfg.checkpoint_every == 0 or trainer.step == steps:
                    checkpoint()
        finally:
            bar.close()
    if fresh:  # zero rounds asked for: still leave a complete (untrained) run
        checkpoint()
    return trainer
