"""Choose the default conditioning of the tasks outside the paper (hypergrid, custom) by exact TV.

Protocol: each task's own defaults (``TaskDefaults``: rounds, lr, hidden, eps), TB, beta_train uniform:1:3, batch
32 on-policy + 32 replayed trajectories per round, one torch thread; conditioning in {logit, logit+layer, layer};
seeds 0-2. Each trained model is evaluated exactly (``exact.exact_metrics``: total variation to R^beta / Z(beta)) at
beta in {0.5, 1, 2, 3, 6, 10, 16} (0.5 and 6-16 lie outside the training range).

Tasks: ``hg2x8`` (the README demo, 64 points), ``hg4x8`` (4,096 points), and the two custom tasks of
``tune_defaults.py`` over ACGT^5 (``gc``: smooth; ``peaks``: rugged).

Usage: ``python benchmarks/faithful_default.py`` (about 15 minutes on one core) ->
``benchmarks/results/faithful_default.{json,md}``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tune_defaults import make_tasks  # noqa: E402

from thermogfn.config import ModelConfig, RunConfig  # noqa: E402
from thermogfn.exact import exact_metrics  # noqa: E402
from thermogfn.gfn import GFlowNetTrainer  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BETAS = (0.5, 1.0, 2.0, 3.0, 6.0, 10.0, 16.0)
CONDITIONINGS = ("logit", "logit+layer", "layer")
SEEDS = (0, 1, 2)


def run_one(task, conditioning: str, seed: int) -> dict:
    cfg = RunConfig(task=task.name, beta_train="uniform:1:3", seed=seed, model=ModelConfig(conditioning=conditioning))
    trainer = GFlowNetTrainer(cfg, task)
    t0 = time.perf_counter()
    while trainer.step < trainer.cfg.steps:
        trainer.train_round()
    seconds = time.perf_counter() - t0
    tv = {b: exact_metrics(trainer.model, task, b)["tv"] for b in BETAS}
    return {"task": task.name, "conditioning": conditioning, "seed": seed, "rounds": trainer.cfg.steps,
            "seconds": round(seconds, 2), "tv": tv}


def main() -> None:
    torch.set_num_threads(1)
    out = RESULTS / "faithful_default.json"
    rows = []
    for name, task in make_tasks().items():
        task.name = name
        for conditioning in CONDITIONINGS:
            for seed in SEEDS:
                rows.append(run_one(task, conditioning, seed))
                print(json.dumps(rows[-1]), flush=True)
    out.write_text(json.dumps(rows, indent=1))
    lines = ["| task | conditioning | " + " | ".join(f"TV@{b:g}" for b in BETAS) + " | mean in [1,3] | mean outside |",
             "|---" * (len(BETAS) + 4) + "|"]
    for name in dict.fromkeys(r["task"] for r in rows):
        for conditioning in CONDITIONINGS:
            sel = [r for r in rows if r["task"] == name and r["conditioning"] == conditioning]
            means = {b: statistics.mean(r["tv"][b] for r in sel) for b in BETAS}
            sds = {b: statistics.stdev(r["tv"][b] for r in sel) for b in BETAS}
            inside = statistics.mean(means[b] for b in BETAS if 1 <= b <= 3)
            outside = statistics.mean(means[b] for b in BETAS if not 1 <= b <= 3)
            cells = " | ".join(f"{means[b]:.3f} ± {sds[b]:.3f}" for b in BETAS)
            lines.append(f"| {name} | {conditioning} | {cells} | {inside:.3f} | {outside:.3f} |")
    header = (f"# Default conditioning by exact TV (3 seeds, beta_train uniform:1:3, task defaults)\n\n"
              f"`python benchmarks/faithful_default.py`; mean ± std over seeds {SEEDS}.\n\n")
    (RESULTS / "faithful_default.md").write_text(header + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
