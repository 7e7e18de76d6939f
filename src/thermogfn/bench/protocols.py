"""The two protocols of the paper (PAPER.md section 5) as functions the CLI calls.

``mode_seeking``: online training per method and seed; modes found, top-100 reward and diversity over the
training samples at fixed rounds; plots of modes and top-100 reward against rounds; g(beta) of logit runs.
``offline``: training on the bottom half of the space with beta ~ U[10, 50], then samples at betas inside and
far outside that range: top-100 reward and diversity per beta, and the exact TV where it applies.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from thermogfn.bench.report import band_plot, summary_table, write_csv
from thermogfn.bench.runs import Grid, RunSpec, plan, run_all
from thermogfn.config import RunConfig
from thermogfn.evaluate import evaluate, load_run
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.metrics import topk_unique
from thermogfn.rundir import RunDir, atomic_write_text
from thermogfn.tasks import Task
from thermogfn.trainer import BaseTrainer


def _training_samples(trainer: BaseTrainer) -> tuple[torch.Tensor, torch.Tensor]:
    """All on-policy training samples of a loaded run, in order, with their raw rewards."""
    keys = torch.cat(trainer.samples) if trainer.samples else trainer.task.keys_from_hashable([])
    x = trainer.task.objects_from_keys(keys)
    return x, trainer.oracle(x)


def _top100(task: Task, x: torch.Tensor, raw: torch.Tensor) -> tuple[float, float]:
    top_x, top_r = topk_unique(x, raw, 100)
    return float(top_r.double().mean()), task.diversity(top_x)


def _curve_points(rounds: int, n: int = 20) -> list[int]:
    return sorted({max(1, round(rounds * (i + 1) / n)) for i in range(n)})


def mode_seeking(out: Path, base: RunConfig, methods: list[str], seeds: int, checkpoints: list[int],
                 grid: Grid = Grid(), echo=print) -> dict[str, Any]:
    """Run (or reuse) every method x seed, then write results.csv, results.md and plots into ``out``."""
    specs = plan(out, base, methods, seeds)
    run_all(specs, grid, echo)
    rows: list[dict[str, Any]] = []
    modes_curves: dict[str, list] = {}
    reward_curves: dict[str, list] = {}
    g_runs: list[tuple[str, GFlowNetTrainer]] = []
    for spec in specs:
        trainer = load_run(spec.path).trainer
        metrics = RunDir(spec.path).read_metrics()
        x, raw = _training_samples(trainer)
        per_round = trainer.cfg.batch_size
        steps = [r["step"] for r in metrics]
        calls = [s * per_round for s in steps]
        if metrics and metrics[0].get("modes") is not None:
            modes_curves.setdefault(spec.method, []).append((calls, [r["modes"] for r in metrics]))
        points = _curve_points(trainer.cfg.steps)
        tops = [_top100(trainer.task, x[: p * per_round], raw[: p * per_round])[0] for p in points]
        reward_curves.setdefault(spec.method, []).append(([p * per_round for p in points], tops))
        counter = trainer.task.mode_counter()
        keys = trainer.task.object_keys(x)
        for c in checkpoints:
            n = c * per_round
            top_r, top_d = _top100(trainer.task, x[:n], raw[:n])
            modes = counter.count_in(x[:n], keys[:n], raw[:n]) if counter is not None else None
            rows.append({"method": spec.method, "seed": spec.seed, "round": c, "reward_calls": n,
                         "modes": modes, "top100_reward": top_r, "top100_diversity": top_d})
        model = getattr(trainer, "model", None)
        if model is not None and model.g_forward is not None:
            g_runs.append((f"{spec.method} s{spec.seed}", trainer))
    write_csv(rows, out / "results.csv")
    metric_names = ["modes", "top100_reward", "top100_diversity"]
    if all(r["modes"] is None for r in rows):
        metric_names = metric_names[1:]
    table = summary_table(rows, "round", metric_names)
    atomic_write_text(out / "results.md", f"# Mode seeking: {base.task}\n\nmean ± std over {seeds} seed(s)\n\n"
                      + table)
    if modes_curves:
        band_plot(modes_curves, "reward calls", "modes found", out / "modes.png")
    band_plot(reward_curves, "reward calls", "top-100 reward (training samples)", out / "top100_reward.png")
    if g_runs:
        plot_g(g_runs, out / "g_beta.png")
    return {"rows": rows, "table": table}


def plot_g(runs: list[tuple[str, GFlowNetTrainer]], path: Path) -> Path:
    """g(beta) and log Z(beta) of logit runs over beta in [0.1, 1000], training ranges shaded."""
    from thermogfn.plots import pyplot

    plt = pyplot()
    betas = torch.logspace(-1, 3, 200)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, trainer in runs:
        with torch.no_grad():
            axes[0].plot(betas, trainer.model.g_forward(betas), label=label)
            axes[1].plot(betas, trainer.model.log_z(betas), label=label)
    lo, hi = runs[0][1].cfg.train_prior.support()
    for ax, title in zip(axes, ("g(beta)", "log Z(beta)"), strict=True):
        ax.axvspan(lo, hi, color="grey", alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("beta")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


OFFLINE_BETAS = (1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0)


def offline(out: Path, base: RunConfig, methods: list[str], seeds: int, betas: list[float], samples: int,
            grid: Grid = Grid(), echo=print) -> dict[str, Any]:
    """Offline protocol: train each method x seed on data, evaluate at ``betas`` (cached per run)."""
    base = dataclasses.replace(base, offline=True)
    specs = plan(out, base, methods, seeds, fixed_beta=base.train_prior.mean(0.0))
    run_all(specs, grid, echo)
    rows = []
    g_runs = []
    for spec in specs:
        result = _cached_eval(spec, betas, samples)
        trainer = load_run(spec.path).trainer
        if getattr(trainer, "model", None) is not None and trainer.model.g_forward is not None:
            g_runs.append((f"{spec.method} s{spec.seed}", trainer))
        for beta, m in result["betas"].items():
            rows.append({"method": spec.method, "seed": spec.seed, "beta": float(beta),
                         "top100_reward": m["top100_reward"], "top100_diversity": m["top100_diversity"],
                         "tv": m.get("tv"), "mean_reward": m["mean_reward"]})
    write_csv(rows, out / "results.csv")
    metric_names = ["top100_reward", "top100_diversity", "mean_reward"]
    if all(r["tv"] is not None for r in rows):
        metric_names.append("tv")
    table = summary_table(rows, "beta", metric_names)
    atomic_write_text(out / "results.md", f"# Offline generalisation: {base.task}\n\ntrained on "
                      f"{base.offline_data or 'the bottom half of the table'} with beta ~ {base.beta_train}; "
                      f"{samples} samples per beta; mean ± std over {seeds} seed(s)\n\n" + table)
    for metric in metric_names:
        curves: dict[str, list] = {}
        for spec in specs:
            pts = [(r["beta"], r[metric]) for r in rows if r["method"] == spec.method and r["seed"] == spec.seed]
            curves.setdefault(spec.method, []).append(([b for b, _ in pts], [v for _, v in pts]))
        band_plot(curves, "beta", metric, out / f"{metric}_vs_beta.png", logx=True)
    if g_runs:
        plot_g(g_runs, out / "g_beta.png")
    return {"rows": rows, "table": table}


def _cached_eval(spec: RunSpec, betas: list[float], samples: int) -> dict[str, Any]:
    path = spec.path / "eval_offline.json"
    key = {"betas": betas, "samples": samples}
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["result"]
    result = evaluate(load_run(spec.path), betas, None, samples)
    atomic_write_text(path, json.dumps({"key": key, "result": result}))
    return result


__all__ = ["OFFLINE_BETAS", "mode_seeking", "offline"]
