"""GPU numbers: seconds per training round on the GPU against the CPU, eager and with ``--compile``.

Run where torch sees a CUDA device (``python benchmarks/gpu.py``); without one it says so and exits 0, unless
``--device cpu`` is given (a dry run of the same script on the CPU). Settings: the TFBind8 peer setting (append
MDP, TB, batch 16, MLP 3x256), the paper's TFBind8 protocol (32 + 32 replay, hidden 128, logit), and a 20-letter
alphabet at length 64 and 256 (custom reward) at batch 16 to 4096. Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.tasks import make_task
from thermogfn.tasks.custom import CustomTask

PROTEIN = "ACDEFGHIKLMNPQRSTVWY"


def protein_reward(seqs: list[str]) -> list[float]:
    """A cheap synthetic reward on 20-letter strings: 1 + the fraction of hydrophobic letters."""
    return [1.0 + sum(c in "AILMFVW" for c in s) / len(s) for s in seqs]


def settings(quick: bool) -> list[tuple[str, Any, RunConfig]]:
    """(name, task, config) of every measured setting."""
    tf = make_task("tfbind8")
    out: list[tuple[str, Any, RunConfig]] = [
        ("tfbind8 peer setting (append, batch 16, 3x256)", tf,
         RunConfig(task="tfbind8", mdp="append", batch_size=16, replay_batch=0, beta_train="constant:1", lr=5e-4,
                   eps=0.01, grad_clip=math.inf, model=ModelConfig(conditioning="none", hidden=256, layers=2))),
        ("tfbind8 paper protocol (32+32, hidden 128, logit)", tf,
         RunConfig(task="tfbind8", model=ModelConfig(conditioning="logit", hidden=128))),
    ]
    lengths, batches = ((64,), (16, 256)) if quick else ((64, 256), (16, 256, 4096))
    for length in lengths:
        task = CustomTask(protein_reward, PROTEIN, length, name=f"protein{length}")
        for batch in batches:
            out.append((f"20 letters, length {length}, batch {batch}+{batch}", task,
                        RunConfig(task=task.name, batch_size=batch, replay_batch=batch,
                                  model=ModelConfig(conditioning="logit", hidden=256))))
    return out


def time_rounds(trainer: GFlowNetTrainer, rounds: int, warmup: int) -> dict[str, float]:
    """First-round seconds (compilation lands there) and steady ms/round (median and mean)."""
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    trainer.train_round()
    sync()
    first = time.perf_counter() - start
    for _ in range(warmup):
        trainer.train_round()
    times = []
    for _ in range(rounds):
        sync()
        start = time.perf_counter()
        trainer.train_round()
        sync()
        times.append(time.perf_counter() - start)
    ms = [t * 1e3 for t in times]
    return {"first_round_s": first, "ms_median": statistics.median(ms), "ms_mean": statistics.fmean(ms)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="fewer settings")
    p.add_argument("--no-compile", action="store_true", help="skip the --compile runs")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu"))
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: torch sees no CUDA device here; nothing measured (use --device cpu for a dry run)")
        return
    torch.set_num_threads(1)
    devices = ["cpu", args.device] if args.device != "cpu" else ["cpu"]
    rows = []
    for name, task, cfg in settings(args.quick):
        for device in devices:
            for compiled in (False,) if args.no_compile else (False, True):
                run_cfg = RunConfig(**{**cfg.__dict__, "device": device, "compile": compiled, "steps": 10**6})
                trainer = GFlowNetTrainer(run_cfg, task)
                cpu_big = device == "cpu" and cfg.batch_size > 256
                result = time_rounds(trainer, max(3, args.rounds // 10) if cpu_big else args.rounds,
                                     1 if cpu_big else args.warmup)
                rows.append({"setting": name, "device": device, "compile": compiled, **result})
                print(f"{name:55s} {device:5s} compile={compiled!s:5s} first {result['first_round_s']:7.2f} s, "
                      f"median {result['ms_median']:9.2f} ms/round", flush=True)
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "command": "python benchmarks/gpu.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# GPU vs CPU round time\n\n`{report['command']}` on {report['date']} (GPU: {report['gpu']}, torch "
             f"{report['torch']}), one CPU thread.\n",
             "| setting | device | compile | first round s | ms/round (median) |", "|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['device']} | {r['compile']} | {r['first_round_s']:.2f} | {r['ms_median']:.2f} |"
              for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
