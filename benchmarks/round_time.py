"""Seconds per training round (TFBind8 online protocol) per conditioning mode, and the cost of exact evaluation.

Protocol: batch 32 on-policy + 32 replayed trajectories per round, MLP hidden 128, prepend-append MDP, TB,
one torch thread. Usage: ``python benchmarks/round_time.py [--rounds 200] [--warmup 20] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.exact import terminal_distribution
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.tasks import Task, load_task

MODES: dict[str, str] = {"none": "constant:1", "layer": "uniform:1:3", "logit": "uniform:1:3",
                         "logit+layer": "uniform:1:3"}


def make_config(mode: str, seed: int = 0) -> RunConfig:
    return RunConfig(task="tfbind8", mdp="prepend-append", objective="tb", batch_size=32, replay_batch=32,
                     beta_train=MODES[mode], seed=seed, model=ModelConfig(conditioning=mode, hidden=128))


def summary(values: list[float]) -> dict[str, float]:
    """Mean, standard deviation, median and 10/90th percentiles, in ms."""
    ms = sorted(v * 1e3 for v in values)
    q = statistics.quantiles(ms, n=10) if len(ms) > 1 else [ms[0]] * 9
    return {"mean": statistics.fmean(ms), "std": statistics.pstdev(ms), "median": statistics.median(ms),
            "p10": q[0], "p90": q[-1]}


def time_rounds(trainer: GFlowNetTrainer, warmup: int, rounds: int) -> dict[str, Any]:
    for _ in range(warmup):
        trainer.train_round()
    wall, cpu = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        trainer.train_round()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall_ms": summary(wall), "cpu_ms": summary(cpu), "rounds": rounds, "warmup": warmup}


def time_exact(trainer: GFlowNetTrainer, task: Task, beta: float, repeats: int) -> dict[str, Any]:
    terminal_distribution(trainer.model, task, beta)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        terminal_distribution(trainer.model, task, beta)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall_ms": summary(wall), "cpu_ms": summary(cpu), "repeats": repeats, "beta": beta}


def profile_logit(task: Task, warmup: int, rounds: int, top: int = 25) -> None:
    trainer = GFlowNetTrainer(make_config("logit"), task)
    for _ in range(warmup):
        trainer.train_round()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(rounds):
        trainer.train_round()
    prof.disable()
    print(f"\ncProfile of {rounds} logit rounds (top {top} by cumulative time):")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)


def row(name: str, r: dict[str, Any]) -> str:
    w, c = r["wall_ms"], r["cpu_ms"]
    return (f"| {name} | {w['mean']:.1f} | {w['std']:.1f} | {w['median']:.1f} | {w['p10']:.1f}-{w['p90']:.1f} "
            f"| {c['mean']:.1f} | {c['std']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200, help="timed rounds per mode")
    ap.add_argument("--warmup", type=int, default=20, help="untimed rounds first (fills the replay buffer)")
    ap.add_argument("--exact-repeats", type=int, default=5)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--out", default="benchmarks/results/round_time.json")
    ap.add_argument("--profile", action="store_true", help="only cProfile the logit mode")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = load_task(RunConfig(task="tfbind8"))
    if args.profile:
        profile_logit(task, args.warmup, args.rounds)
        return
    results: dict[str, Any] = {}
    for mode in args.modes:
        results[mode] = time_rounds(GFlowNetTrainer(make_config(mode), task), args.warmup, args.rounds)
        print(f"{mode}: {results[mode]['wall_ms']['mean']:.1f} ms/round", flush=True)
    exact = time_exact(GFlowNetTrainer(make_config("logit"), task), task, 2.0, args.exact_repeats)
    print("\n| what | wall mean ms | wall std | wall median | wall p10-p90 | CPU mean ms | CPU std |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in results.items():
        print(row(f"round, {mode}", r))
    print(row("exact P(x|beta=2), logit", exact))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "machine": platform.machine(),
            "loadavg_1m_after": os.getloadavg()[0]}
    out.write_text(json.dumps({"meta": meta, "rounds": results, "exact": exact}, indent=2))
    print(f"\nload average (1 min) at the end: {meta['loadavg_1m_after']:.2f}; wrote {out}")


if __name__ == "__main__":
    main()
