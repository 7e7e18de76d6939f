"""Evaluate a trained run at chosen betas: exact metrics where the space is enumerable, sample metrics always."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from thermogfn.config import KERNELS
from thermogfn.errors import ThermoGFNError
from thermogfn.exact import exact_enumerable, exact_metrics
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.kernels import Reward, corrected_samples, ess_of, importance_log_weights
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
    cfg = dataclasses.replace(run.load_config(), device="cpu")  # sampling and evaluation run on the CPU
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
                             "and metrics are in its run directory)")
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


@dataclass
class ChainReport:
    """What a corrected draw spent and how far to trust it."""

    beta: float
    n: int
    kernel: str
    burn_in: int
    steps_per_sample: int
    chains: int
    back_steps: int | None
    marginal: bool
    seed: int
    acceptance: float
    ess: float
    autocorr_time: float
    reward_calls: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def warning(self) -> str | None:
        """A one-line caution when the chains are unlikely to have reached R^beta / Z, else None."""
        if self.acceptance < 0.02:
            return (f"the chains almost never move (acceptance {self.acceptance:.1%}): the model rarely proposes what "
                    f"R^beta/Z weighs at beta {self.beta:g}, so these samples are not exact; sample nearer the "
                    "training range, use --kernel mixture with a longer --burn-in, or train at this beta")
        if self.burn_in < 3 * self.autocorr_time:
            return (f"the chains may not have mixed: the autocorrelation time of log R ({self.autocorr_time:.1f} "
                    f"steps) is long for --burn-in {self.burn_in}; raise --burn-in to at least "
                    f"{math.ceil(5 * self.autocorr_time)}")
        return None


def draw_corrected(trainer: GFlowNetTrainer, beta: float, n: int, seed: int = 0, *, kernel: str = "independent",
                   burn_in: int = 30, steps_per_sample: int = 1, chains: int | None = None, k: int | None = None,
                   marginal: bool = False) -> tuple[torch.Tensor, torch.Tensor, ChainReport]:
    """``n`` objects distributed as ``R(x)^beta / Z(beta)``: Metropolis-Hastings chains with the trained model as
    proposal (:func:`thermogfn.kernels.corrected_samples`), their raw rewards, and a :class:`ChainReport`.

    Every proposal is a reward call, counted in the report; rewards are cached per object (or read from the table).
    """
    trainer = _gflownet(trainer)
    settings = {"--burn-in": burn_in, "--steps-per-sample": steps_per_sample,
                "--chains": n if chains is None else chains, "-n": n, "--back-steps": 1 if k is None else k}
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ThermoGFNError(f"{name} must be a positive integer, got {value!r}")
    if kernel not in KERNELS:
        raise ThermoGFNError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    if k is not None and kernel == "independent":
        raise ThermoGFNError("--back-steps applies to the back-and-forth and mixture kernels, not to independent")
    if chains is not None and chains > n:
        raise ThermoGFNError(f"--chains {chains} is more than the {n} samples asked for (-n); use at most -n chains")
    if marginal and (kernel != "independent" or not exact_enumerable(trainer.model.mdp, trainer.task)):
        raise ThermoGFNError("--marginal needs the independent kernel and an enumerable space with a full reward "
                             "table (it uses the model's exact marginal)")
    t0 = time.perf_counter()
    result = corrected_samples(trainer.model, trainer.task, beta, n, reward_fn=RewardOracle(trainer.task),
                               kernel=kernel, chains=chains, burn_in=burn_in, steps_per_sample=steps_per_sample,
                               k=k, marginal=marginal, generator=torch.Generator().manual_seed(seed))
    report = ChainReport(beta, n, kernel, burn_in, steps_per_sample, chains or n, k, marginal, seed, result.acceptance,
                         result.ess, result.autocorr_time, result.reward_calls, round(time.perf_counter() - t0, 3))
    return result.objects, result.raw_rewards, report


@dataclass
class Estimates:
    """Self-normalised importance-sampling estimates at one beta from ``n`` trajectories of the model."""

    beta: float
    n: int
    log_z: float  # log of the unbiased estimate of Z(beta) = sum_x R(x)^beta
    log_z_model: float  # the model's learned log Z(beta)
    mean_reward: float  # E_{R^beta/Z}[raw reward]
    user_mean: float | None  # E_{R^beta/Z}[f(x)] for a user function f, if given
    ess: float  # (sum w)^2 / sum w^2

    def warning(self) -> str | None:
        """A one-line caution when the estimates are not to be trusted, else None.

        The weights are exact, so the estimates converge whatever the model; with finite samples they miss what the
        model (almost) never proposes, which no effective sample size shows: an estimated log Z far below the model's
        own is the sign of it."""
        if self.ess < max(30.0, 0.01 * self.n):
            return (f"importance sampling at beta {self.beta:g} has an effective sample size of {self.ess:.1f} of "
                    f"{self.n}: its estimates are not to be trusted; draw more samples (eval --samples) or sample "
                    "nearer the training range")
        if self.log_z < self.log_z_model - 1.0:
            return (f"at beta {self.beta:g} the importance-sampling log Z ({self.log_z:.4g}) is "
                    f"{self.log_z_model - self.log_z:.3g} nats below the model's ({self.log_z_model:.4g}): the "
                    "samples miss part of R^beta/Z that the model rarely proposes; trust neither estimate here")
        return None


def estimate(trainer: GFlowNetTrainer, beta: float, n: int = 1000, seed: int = 0,
             f: Callable[[torch.Tensor], torch.Tensor] | None = None, oracle: RewardOracle | None = None) -> Estimates:
    """log Z(beta), E_beta[raw reward] and (optionally) E_beta[f(x)] by importance sampling with the model as
    proposal: weights ``R(x)^beta P_B(tau|x) / P_F(tau)`` (exact in expectation whatever the model's quality).
    Pass an ``oracle`` to share its reward cache between calls."""
    trainer = _gflownet(trainer)
    reward = Reward(oracle or RewardOracle(trainer.task), trainer.task.shaping)
    paths, log_w = importance_log_weights(trainer.model, reward, beta, n, torch.Generator().manual_seed(seed))
    w = torch.softmax(log_w, 0)
    user = float((w * f(paths.traj.objects).double()).sum()) if f is not None else None
    with torch.no_grad():
        log_z_model = float(trainer.model.log_z(torch.tensor([float(beta)])))
    return Estimates(beta, n, float(torch.logsumexp(log_w, 0)) - math.log(n), log_z_model,
                     float((w * paths.raw_reward).sum()), user, ess_of(log_w))


BETA_SEARCH_GRID = tuple(10 ** (k / 8) for k in range(-16, 25))  # 0.01 to 1000


def beta_for_mean_reward(trainer: GFlowNetTrainer, target: float, n: int = 2000, seed: int = 0,
                         tol: float = 1e-3) -> tuple[float, Estimates]:
    """The beta whose expected raw reward under ``R^beta / Z`` is ``target`` (it rises with beta), by bisection
    in log beta on importance-sampling estimates (same random numbers at every beta), searched only where the
    estimates can be trusted (:meth:`Estimates.warning`) on a grid from beta 0.01 to 1000."""
    oracle = RewardOracle(trainer.task)  # one reward cache for the whole search
    trusted = [e for e in (estimate(trainer, b, n, seed, oracle=oracle) for b in BETA_SEARCH_GRID)
               if e.warning() is None]
    if not trusted:
        raise ThermoGFNError("importance sampling with this model is not trustworthy at any beta in [0.01, 1000]; "
                             "train the model longer before asking for a target reward")
    pairs = [(a, b) for a, b in zip(trusted, trusted[1:], strict=False) if a.mean_reward <= target <= b.mean_reward]
    if not pairs:
        lo, hi = trusted[0], trusted[-1]
        raise ThermoGFNError(f"--target-mean-reward {target:g} is outside what this reward reaches where the model's "
                             f"estimates can be trusted: about {lo.mean_reward:.4g} to {hi.mean_reward:.4g} for beta "
                             f"{lo.beta:.3g} to {hi.beta:.3g}")
    low, high = pairs[0]
    a, b, best = math.log(low.beta), math.log(high.beta), low
    while b - a > tol:
        mid = (a + b) / 2
        best = estimate(trainer, math.exp(mid), n, seed, oracle=oracle)
        a, b = (mid, b) if best.mean_reward < target else (a, mid)
    return best.beta, best


def evaluate(loaded: LoadedRun, betas: list[float], exact: bool | None = None, samples: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """``{"betas": {"1": {...}}, ...}``: exact keys (tv, kl, ...) only where exact evaluation applies."""
    trainer = _gflownet(loaded.trainer)
    task, mdp = trainer.task, trainer.model.mdp
    can_exact = exact_enumerable(mdp, task)
    if exact and not can_exact:
        raise ThermoGFNError(f"exact evaluation needs an enumerable space with a full reward table; task "
                             f"{task.name} has {task.space_text()} objects. Drop --exact (sample metrics "
                             "still run)")
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
            keys = task.object_keys(x)
            row.update(sample_summary(x, raw, None, None, task.distance, diversity=task.diversity))
            row["modes"] = counter.count_in(x, keys, raw) if counter is not None else None
            est = estimate(trainer, beta, samples, seed)
            row.update({"log_z_model": est.log_z_model, "log_z_is": est.log_z, "mean_reward_is": est.mean_reward,
                        "is_ess": est.ess})
            if est.warning():
                out.setdefault("warnings", []).append(est.warning())
        out["betas"][format_beta(beta)] = row
    return out


def format_beta(beta: float) -> str:
    return f"{beta:g}"
