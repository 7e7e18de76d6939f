"""Sequence policies: the MLP over the one-hot state against token-wise trunks (transformer, conv).

(a) Exact TV to R^beta / Z on TFBind8 at EQUAL TRAINING TIME: each architecture trains for the same number of
    CPU seconds (one torch thread; evaluation excluded from the clock), with the online protocol's defaults
    (prepend-append, TB, conditioning logit, beta ~ U[1, 3], batch 32 + 32 replay, the task's lr and eps),
    and the exact TV at beta 1, 2, 3 is taken at a few checkpoints of the budget.
(b) Milliseconds per training round at long lengths (20-letter alphabet, a cheap synthetic reward, the custom
    task's defaults: hidden 128, logit+layer, batch 32 + 32 replay, one thread).

Usage: ``python benchmarks/sequence_policy.py [--seconds 60] [--seeds 0,1] [--archs mlp,transformer,conv]
[--lengths 64,256]``; ``--rounds N`` compares at equal reward calls instead of equal time; an architecture may
carry its width and depth: ``transformer:64:1``. Writes ``benchmarks/results/sequence_policy.{md,json}``
(``--out`` changes the stem). ``--skip-tv`` / ``--skip-time`` run one half. Defaults take about 15 minutes on one
quiet core (the transformer's L = 256 round alone ~2 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.exact import exact_metrics, target_distribution
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.tasks import Task, load_task
from thermogfn.tasks.custom import CustomTask

BETAS = (1.0, 2.0, 3.0)
PROTEIN = "ACDEFGHIKLMNPQRSTVWY"


def parse_arch(spec: str) -> tuple[str, int | None, int]:
    """``arch[:hidden[:layers]]`` -> (architecture, hidden or None for the task's, layers)."""
    parts = spec.split(":")
    return parts[0], int(parts[1]) if len(parts) > 1 and parts[1] else None, int(parts[2]) if len(parts) > 2 else 2


def model_config(spec: str, conditioning: str | None) -> ModelConfig:
    arch, hidden, layers = parse_arch(spec)
    return ModelConfig(conditioning=conditioning, architecture=arch, hidden=hidden, layers=layers)


def train_for(task: Task, spec: str, seed: int, seconds: float, checkpoints: int, lr: float | None, echo,
              rounds: int | None = None) -> dict[str, Any]:
    """Train TFBind8 for ``seconds`` CPU seconds (or ``rounds`` rounds, i.e. reward calls, when given); exact metrics
    at ``checkpoints`` equally spaced points of that budget."""
    cfg = RunConfig(task="tfbind8", mdp="prepend-append", objective="tb", beta_train="uniform:1:3", seed=seed,
                    lr=lr, model=model_config(spec, "logit"))
    trainer = GFlowNetTrainer(cfg, task)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    budget = float(rounds) if rounds is not None else seconds
    marks = [budget * (i + 1) / checkpoints for i in range(checkpoints)]
    points, clock, wall = [], 0.0, 0.0
    for mark in marks:
        while (trainer.step if rounds is not None else clock) < mark:
            c0, w0 = time.process_time(), time.perf_counter()
            trainer.train_round()
            clock += time.process_time() - c0
            wall += time.perf_counter() - w0
        e0 = time.perf_counter()
        exact = {str(b): exact_metrics(trainer.model, task, b) for b in BETAS}
        point = {"cpu_s": clock, "wall_s": wall, "rounds": trainer.step, "eval_s": time.perf_counter() - e0,
                 "tv": {b: m["tv"] for b, m in exact.items()},
                 "log_z_error": {b: m["log_z_error"] for b, m in exact.items()}}
        points.append(point)
        echo(f"  {spec} seed {seed}: {clock:6.1f} s CPU, {trainer.step:5d} rounds, TV "
             + " / ".join(f"{v:.3f}" for v in point["tv"].values()))
    return {"arch": spec, "seed": seed, "lr": trainer.cfg.lr, "hidden": trainer.cfg.model.hidden,
            "layers": trainer.cfg.model.layers, "params": n_params, "skipped": trainer.skipped, "points": points}


def synthetic_reward(seqs: list[str]) -> np.ndarray:
    """Cheap and smooth: 1 + the fraction of W and Y, so rewards vary but the reward call costs nothing."""
    return np.array([1.0 + (s.count("W") + s.count("Y")) / max(len(s), 1) for s in seqs])


def time_rounds(spec: str, length: int, min_rounds: int, max_rounds: int, budget_s: float, echo) -> dict[str, Any]:
    """Wall and CPU ms per round at ``length``: one warm-up round, then at least ``min_rounds`` timed rounds and more
    until ``budget_s`` or ``max_rounds``; a warm-up round longer than ``budget_s`` is the only measurement."""
    task = CustomTask(synthetic_reward, PROTEIN, length)
    cfg = RunConfig(task="custom", alphabet=PROTEIN, length=length, seed=0, model=model_config(spec, None))
    trainer = GFlowNetTrainer(cfg, task)

    def timed_round() -> tuple[float, float]:
        c0, w0 = time.process_time(), time.perf_counter()
        trainer.train_round()
        return time.perf_counter() - w0, time.process_time() - c0

    first = timed_round()  # the warm-up (fills the replay buffer); kept as the measurement when it alone is long
    wall, cpu = ([first[0]], [first[1]]) if first[0] >= budget_s else ([], [])
    while len(wall) < min_rounds or (sum(wall) < budget_s and len(wall) < max_rounds):
        w, c = timed_round()
        wall.append(w)
        cpu.append(c)
    out = {"arch": spec, "length": length, "hidden": trainer.cfg.model.hidden, "layers": trainer.cfg.model.layers,
           "conditioning": trainer.cfg.model.conditioning, "rounds": len(wall), "first_only": first[0] >= budget_s,
           "wall_ms": 1e3 * statistics.fmean(wall), "wall_ms_median": 1e3 * statistics.median(wall),
           "cpu_ms": 1e3 * statistics.fmean(cpu), "loadavg_1m": os.getloadavg()[0]}
    echo(f"  {spec} L={length}: {out['wall_ms']:.0f} ms/round wall, {out['cpu_ms']:.0f} CPU ({len(wall)} rounds)")
    return out


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def tv_table(runs: list[dict[str, Any]], uniform: dict[str, float]) -> list[str]:
    """Rows per architecture and checkpoint: rounds done and TV at each beta, mean ± std over seeds."""
    lines = ["| architecture | params | CPU s | rounds | " + " | ".join(f"TV@{b:g}" for b in BETAS)
             + " | " + " | ".join(f"log Z err@{b:g}" for b in BETAS) + " |", "|---" * (4 + 2 * len(BETAS)) + "|"]
    archs = list(dict.fromkeys(r["arch"] for r in runs))
    for arch in archs:
        mine = [r for r in runs if r["arch"] == arch]
        for i in range(len(mine[0]["points"])):
            pts = [r["points"][i] for r in mine]
            rounds = statistics.fmean(p["rounds"] for p in pts)
            cells = [mean_std([p["tv"][str(b)] for p in pts]) for b in BETAS]
            cells += [f"{statistics.fmean(p['log_z_error'][str(b)] for p in pts):.2f}" for b in BETAS]
            lines.append(f"| {arch} | {mine[0]['params']:,} | {statistics.fmean(p['cpu_s'] for p in pts):.0f} | "
                         f"{rounds:.0f} | " + " | ".join(cells) + " |")
    lines.append("| (uniform over objects) | | | | " + " | ".join(f"{uniform[str(b)]:.3f}" for b in BETAS)
                 + " |" + " |" * len(BETAS))
    return lines


def time_table(rows: list[dict[str, Any]]) -> list[str]:
    lengths = sorted({r["length"] for r in rows})
    lines = ["| architecture | " + " | ".join(f"L = {n}: ms/round (wall / CPU)" for n in lengths) + " |",
             "|---" * (1 + len(lengths)) + "|"]
    for arch in dict.fromkeys(r["arch"] for r in rows):
        cells = []
        for n in lengths:
            r = next((r for r in rows if r["arch"] == arch and r["length"] == n), None)
            count = "the first round only" if r and r["first_only"] else f"{r['rounds']} rounds" if r else ""
            cells.append(f"{r['wall_ms']:,.0f} / {r['cpu_ms']:,.0f} ({count})" if r else "")
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="CPU seconds of training per run (TFBind8)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="instead of --seconds: train every architecture this many rounds (equal reward calls)")
    ap.add_argument("--checkpoints", type=int, default=3, help="exact evaluations per run, equally spaced in time")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--archs", default="mlp,transformer,conv", help="comma-separated arch[:hidden[:layers]]")
    ap.add_argument("--lr", type=float, default=None, help="policy lr (default: the task's, 1e-4 on TFBind8)")
    ap.add_argument("--lengths", default="64,256", help="sequence lengths of the timing half")
    ap.add_argument("--time-archs", default=None, help="architectures of the timing half (default: --archs)")
    ap.add_argument("--time-budget", type=float, default=20.0, help="seconds of timed rounds per case (after 1)")
    ap.add_argument("--skip-tv", action="store_true")
    ap.add_argument("--skip-time", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/sequence_policy")
    args = ap.parse_args()
    torch.set_num_threads(1)

    def echo(msg: str) -> None:
        print(msg, flush=True)

    archs = args.archs.split(",")
    meta = {"date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/sequence_policy.py "
            + " ".join(shlex.quote(a) for a in sys.argv[1:]), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "nproc": os.cpu_count(), "loadavg_1m_start": os.getloadavg()[0]}
    result: dict[str, Any] = {"meta": meta}
    md = [f"# Sequence policies: MLP vs token-wise trunks\n\n`{meta['command']}` on {meta['date']}, torch "
          f"{meta['torch']}, 1 thread, {meta['nproc']} cores shared with other jobs (1-min load average "
          f"{meta['loadavg_1m_start']:.2f} at the start, LOAD_END at the end)."]
    if not args.skip_tv:
        task = load_task(RunConfig(task="tfbind8"))
        uniform = {str(b): 0.5 * float((target_distribution(task, b)[0] - 1.0 / task.n_objects).abs().sum())
                   for b in BETAS}
        budget = f"{args.rounds} rounds" if args.rounds else f"{args.seconds:g} CPU seconds"
        echo(f"(a) TFBind8, {budget} per run")
        runs = [train_for(task, arch, int(seed), args.seconds, args.checkpoints, args.lr, echo, args.rounds)
                for seed in args.seeds.split(",") for arch in archs]
        result["tv"] = {"seconds": None if args.rounds else args.seconds, "rounds": args.rounds, "uniform": uniform,
                        "runs": runs}
        what = ("equal reward calls" if args.rounds else "equal training time")
        md += [f"\n## (a) TFBind8 exact TV at {what}\n\nPrepend-append, TB, conditioning logit, beta ~ "
               f"U[1, 3], batch 32 + 32 replay, lr {runs[0]['lr']:g}, eps 0.01 (the online protocol's defaults); "
               f"each run trains {budget} (one thread; evaluation not counted), exact TV and "
               f"|log Z error| at {args.checkpoints} checkpoints; seeds {args.seeds}, mean ± std.\n",
               *tv_table(runs, uniform)]
    if not args.skip_time:
        echo("(b) ms per round")
        rows = [time_rounds(arch, int(n), 1, 20, args.time_budget, echo)
                for n in args.lengths.split(",") for arch in (args.time_archs or args.archs).split(",")]
        result["time"] = rows
        md += ["\n## (b) Time per training round at long lengths\n\n20-letter alphabet, synthetic reward (1 + "
               "fraction of W and Y), the custom task's defaults (hidden 128, logit+layer, 2 layers), prepend-append, "
               "TB, 32 on-policy + 32 replayed trajectories, 1 warm-up round then timed rounds (at least 1, up to "
               f"{args.time_budget:g} s or 20; a warm-up round longer than that is the measurement).\n",
               *time_table(rows)]
    meta["loadavg_1m_end"] = os.getloadavg()[0]
    text = "\n".join(md).replace("LOAD_END", f"{meta['loadavg_1m_end']:.2f}") + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
