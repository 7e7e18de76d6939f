"""Reward executors side by side: throughput on RNA folding and the per-batch overhead of each executor.

    python benchmarks/executors.py [--batches 32 128 512 2048] [--repeats 3] [--out benchmarks/results/executors]

(a) RNA1 rewards (ViennaRNA duplexfold, ~0.5-1 ms per sequence) of fresh random sequences, sequences/s for
``local`` (in process: the task's own pool switched off, ``workers=1``), ``processes`` and ``ray`` with
``--workers`` workers (default: the CPU count). (b) Per-batch overhead: seconds per batch of a reward that costs
nothing (a custom ``1 + count('A')`` reward), so the executor's own cost shows; (c) the break-even: the cost per
object above which ``processes`` / ``ray`` beat ``local`` at a batch size, from (a) and (b). Ray runs a local
cluster started here. Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from thermogfn.executors import make_executor
from thermogfn.tasks.custom import CustomTask
from thermogfn.tasks.rna import RNABindingTask

KINDS = ("local", "processes", "ray")


def count_a(seqs: list[str]) -> list[float]:
    """A reward that costs nothing: 1 + the number of A's."""
    return [1.0 + s.count("A") for s in seqs]


def seconds_per_batch(executor: Any, task: Any, batch: int, repeats: int, seed: int) -> float:
    """Median wall seconds of ``executor.map`` over fresh uniformly random batches (one warm-up batch first)."""
    gen = torch.Generator().manual_seed(seed)
    executor.map(task.uniform_objects(batch, gen))
    times = []
    for _ in range(repeats):
        x = task.uniform_objects(batch, gen)
        start = time.perf_counter()
        executor.map(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(make_task: Any, kind: str, workers: int, batches: list[int], repeats: int) -> dict[int, float]:
    """Seconds per batch of a fresh task (no cached rewards; forked or shipped workers would inherit a cache) on
    sequences no other executor has seen (seeds differ per executor)."""
    task = make_task()
    executor = make_executor(task, kind, None if kind == "local" else workers)
    try:
        return {b: seconds_per_batch(executor, task, b, repeats, seed=1000 * KINDS.index(kind) + b) for b in batches}
    finally:
        executor.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512, 2048])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/executors"))
    args = p.parse_args()
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        rna_s = measure(lambda: RNABindingTask(1, workers=1), kind, args.workers, args.batches, args.repeats)
        free_s = measure(lambda: CustomTask(count_a, "ACGU", 14, name="count_a"), kind, args.workers, args.batches,
                         args.repeats)
        for b in args.batches:
            rows.append({"executor": kind, "batch": b, "rna_s": rna_s[b], "rna_seq_per_s": b / rna_s[b],
                         "overhead_s": free_s[b]})
            print(f"{kind:9s} batch {b:5d}: RNA {b / rna_s[b]:8.0f} seq/s, empty-reward batch "
                  f"{1e3 * free_s[b]:8.2f} ms", flush=True)
    local = {r["batch"]: r for r in rows if r["executor"] == "local"}
    for r in rows:  # cost per object c at which local (c * b) equals overhead + c * b / speed-up
        base = local[r["batch"]]
        per_object_local = (base["rna_s"] - base["overhead_s"]) / r["batch"]
        speedup = base["rna_s"] / r["rna_s"] if r["executor"] != "local" else 1.0
        gain = 1 - 1 / speedup if speedup > 1 else 0.0
        extra = r["overhead_s"] - base["overhead_s"]
        r["break_even_ms_per_object"] = 1e3 * extra / (gain * r["batch"]) if gain > 0 else None
        r["rna_ms_per_object_local"] = 1e3 * per_object_local
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "workers": args.workers,
              "cpus": os.cpu_count(), "load_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
              "command": "python benchmarks/executors.py " + " ".join(
                  f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
                  if k != "out"),
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# Reward executors\n\n`{report['command']}` on {report['date']}: {report['cpus']} CPUs, "
             f"{args.workers} workers, load average {report['load_end']:.2f} at the end.\n",
             "| executor | batch | RNA1 sequences/s | empty-reward ms per batch | break-even ms per object |",
             "|---|---|---|---|---|"]
    for r in rows:
        be = "-" if r["break_even_ms_per_object"] is None else f"{r['break_even_ms_per_object']:.3f}"
        lines.append(f"| {r['executor']} | {r['batch']} | {r['rna_seq_per_s']:.0f} | {1e3 * r['overhead_s']:.2f} "
                     f"| {be} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
