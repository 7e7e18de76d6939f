"""How the beta input of the small MLPs (log vs raw beta) and the kind of g(beta) affect extrapolation.

Trains TFBind8 (online protocol, beta ~ U[1,3]) for each variant, then reports the exact TV and |log Z error|
at betas inside and far outside the training range. Usage: ``python benchmarks/beta_input.py [--rounds 1000]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.exact import exact_metrics, target_distribution
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.tasks import Task, load_task

BETAS = (1.0, 2.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
VARIANTS: dict[str, ModelConfig] = {
    "logit, log, positive": ModelConfig(conditioning="logit", beta_input="log", g_kind="positive"),
    "logit, raw, positive": ModelConfig(conditioning="logit", beta_input="raw", g_kind="positive"),
    "logit, log, signed": ModelConfig(conditioning="logit", beta_input="log", g_kind="signed"),
    "logit, raw, signed": ModelConfig(conditioning="logit", beta_input="raw", g_kind="signed"),
    "layer, log": ModelConfig(conditioning="layer", beta_input="log"),
    "layer, raw": ModelConfig(conditioning="layer", beta_input="raw"),
    "layer, thermometer": ModelConfig(conditioning="layer", layer_encoding="thermometer"),
}


def uniform_reference(task: Task, betas: tuple[float, ...]) -> dict[str, float]:
    """TV of the uniform distribution over objects from each target: 'nothing learned'."""
    n = task.n_objects
    return {str(b): 0.5 * float((target_distribution(task, b)[0] - 1.0 / n).abs().sum()) for b in betas}


def run_variant(task: Task, model: ModelConfig, rounds: int, seed: int, lr: float | None) -> dict[str, Any]:
    cfg = RunConfig(task="tfbind8", mdp="prepend-append", objective="tb", beta_train="uniform:1:3", steps=rounds,
                    seed=seed, lr=lr, model=model)
    trainer = GFlowNetTrainer(cfg, task)
    t0 = time.perf_counter()
    for _ in range(rounds):
        trainer.train_round()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = {str(b): exact_metrics(trainer.model, task, b) for b in BETAS}
    g = trainer.model.g_forward
    with torch.no_grad():
        g_values = {str(b): float(g(torch.tensor([b]))) for b in BETAS} if g is not None else None
    return {"model": asdict(trainer.cfg.model), "seed": seed, "rounds": rounds, "lr": trainer.cfg.lr,
            "train_s": train_s, "eval_s": time.perf_counter() - t0, "skipped": trainer.skipped,
            "modes": trainer.modes.n_found if trainer.modes is not None else None, "g": g_values, "exact": metrics}


def table(results: dict[str, list[dict[str, Any]]], key: str, uniform: dict[str, float] | None) -> list[str]:
    """Markdown table of ``key`` per variant and beta (mean over seeds)."""
    lines = ["| variant | " + " | ".join(f"beta={b:g}" for b in BETAS) + " |", "|---" * (len(BETAS) + 1) + "|"]
    for name, runs in results.items():
        cells = [sum(r["exact"][str(b)][key] for r in runs) / len(runs) for b in BETAS]
        lines.append(f"| {name} | " + " | ".join(f"{c:.3g}" for c in cells) + " |")
    if uniform is not None:
        lines.append("| (uniform over objects) | " + " | ".join(f"{uniform[str(b)]:.3g}" for b in BETAS) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--lr", type=float, default=None, help="policy lr (default: the task's)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", default="benchmarks/results/beta_input", help="writes OUT.md and OUT.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = load_task(RunConfig(task="tfbind8"))
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.variants:
        for seed in args.seeds:
            r = run_variant(task, VARIANTS[name], args.rounds, seed, args.lr)
            results.setdefault(name, []).append(r)
            tv = " ".join(f"{r['exact'][str(b)]['tv']:.3f}" for b in BETAS)
            print(f"{name} seed {seed}: {r['train_s']:.1f}s train, {r['eval_s']:.1f}s eval, "
                  f"modes {r['modes']}, TV {tv}", flush=True)
    uniform = uniform_reference(task, BETAS)
    lr = next(iter(results.values()))[0]["lr"]
    log_z = {str(b): target_distribution(task, b)[1] for b in BETAS}
    head = (f"TFBind8, prepend-append, TB, beta ~ U[1,3], {args.rounds} rounds, batch 32 + 32 replay, "
            f"seeds {args.seeds}, policy lr {lr:g}, {time.strftime('%Y-%m-%d')}, "
            f"torch {torch.__version__}, 1 thread. Means over seeds.")
    md = [f"# beta input study\n\n{head}\n", "## Exact total variation\n", *table(results, "tv", uniform),
          "\n## |log Z(beta) error| (nats)\n", *table(results, "log_z_error", None),
          "\nTarget log Z(beta): " + ", ".join(f"{b:g}: {log_z[str(b)]:.4g}" for b in BETAS) + "\n"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(md))
    out.with_suffix(".json").write_text(json.dumps({"setup": head, "betas": BETAS, "uniform_tv": uniform,
                                                    "log_z_target": log_z, "runs": results}, indent=2))
    print("\n".join(md))


if __name__ == "__main__":
    main()
