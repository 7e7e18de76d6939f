"""Milliseconds per training round of two (or more) checkouts of thermogfn, side by side in one run.

Each ``--src`` is the ``src`` folder of a checkout (``git worktree add ../old COMMIT`` makes one). Every
(checkout, setting) pair runs in a fresh single-thread subprocess, the checkouts interleaved and repeated
``--repeats`` times, so machine load falls on all of them alike. Settings: ``paper`` (the TFBind8 online
protocol: prepend-append, 32 + 32 replay, hidden 128, logit, beta ~ U[1,3]), and the two peer settings of
``benchmarks/peers`` (``tfbind8``: append, batch 16, MLP 3x256, on-policy; ``hypergrid``: 4x8, batch 16,
MLP 2x256, learned P_B). Prints median CPU and wall ms per round and the ratios to the first checkout.

    python benchmarks/speed_compare.py --src ../old/src --src src [--rounds 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, math, sys, time
import torch
torch.set_num_threads(1)
from thermogfn.config import ModelConfig, RunConfig
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.tasks.hypergrid import HypergridTask
from thermogfn.tasks.registry import make_task
setting, rounds = sys.argv[1], int(sys.argv[2])
if setting == "paper":
    task = make_task("tfbind8")
    cfg = RunConfig(task="tfbind8", seed=0, model=ModelConfig(conditioning="logit", hidden=128))
elif setting == "tfbind8":
    task = make_task("tfbind8")
    cfg = RunConfig(task="tfbind8", mdp="append", batch_size=16, replay_batch=0, beta_train="constant:1", lr=5e-4,
                    lr_logz=0.05, eps=0.01, grad_clip=math.inf,
                    model=ModelConfig(conditioning="none", hidden=256, layers=2))
else:
    task = HypergridTask(ndim=4, height=8, r0=0.1, r1=0.5, r2=2.0)
    cfg = RunConfig(task="hypergrid", mdp="hypergrid", batch_size=16, replay_batch=0, beta_train="constant:1",
                    lr=1e-3, lr_logz=0.1, eps=0.0, grad_clip=1.0,
                    model=ModelConfig(conditioning="none", hidden=256, layers=1, learn_pb=True))
trainer = GFlowNetTrainer(cfg, task)
for _ in range(30):
    trainer.train_round()
wall, cpu = [], []
for _ in range(rounds):
    w, c = time.perf_counter(), time.process_time()
    trainer.train_round()
    wall.append(time.perf_counter() - w)
    cpu.append(time.process_time() - c)
print(json.dumps({"wall": wall, "cpu": cpu}))
'''

SETTINGS = ("paper", "tfbind8", "hypergrid")


def measure(src: Path, setting: str, rounds: int) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, setting, str(rounds)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, action="append", required=True, help="a checkout's src folder (repeat)")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    cpu: dict[tuple[str, str], list[float]] = {}
    wall: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for setting in args.settings:
            for src in args.src:
                r = measure(src, setting, args.rounds)
                cpu.setdefault((str(src), setting), []).extend(r["cpu"])
                wall.setdefault((str(src), setting), []).extend(r["wall"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"ms per round (median over {args.repeats} x {args.rounds} rounds; one thread; load {load:.2f} at the end)\n")
    print("| setting | " + " | ".join(f"{s} CPU / wall" for s in args.src) + " | CPU ratio to the first |")
    print("|---|" + "---|" * (len(args.src) + 1))
    for setting in args.settings:
        med = [(statistics.median(cpu[(str(s), setting)]) * 1e3, statistics.median(wall[(str(s), setting)]) * 1e3)
               for s in args.src]
        ratios = " / ".join(f"{med[0][0] / m[0]:.2f}x" for m in med[1:])
        print(f"| {setting} | " + " | ".join(f"{c:.2f} / {w:.2f}" for c, w in med) + f" | {ratios} |")


if __name__ == "__main__":
    main()
