"""Does a run keep finding new objects? Per window of rounds, from a run directory's metrics and sample log.

For each window: the logged policy entropy (mean over the window's logged rounds; for a2c / ppo the entropy per
decision of the round's own rollouts, for sac the mean over its replay minibatches), distinct objects per round,
objects per round never sampled before, the mean raw reward of the window's samples, modes found and reward
calls at the window's end (from metrics.jsonl, and modes recounted from the sample log as the bench does). Then
the most frequent objects of the last 10 rounds.

Usage: ``python benchmarks/collapse.py RUNDIR [RUNDIR ...] [--every 100]``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch

from thermogfn.evaluate import load_run
from thermogfn.rundir import RunDir


def report(path: Path, every: int) -> str:
    trainer = load_run(path).trainer
    task, batch, calls = trainer.task, trainer.cfg.batch_size, trainer.oracle.calls
    metrics = {r["step"]: r for r in RunDir(path).read_metrics()}
    index = torch.cat(trainer.samples)
    x = task.objects_from_index(index)
    raw = trainer.oracle(x)
    counter = task.mode_counter()
    lines = [f"### {path} ({trainer.cfg.method}, {task.name}, seed {trainer.cfg.seed})", "",
             f"{trainer.step} rounds, {index.numel()} logged samples, {calls} reward calls", "",
             "| rounds | entropy | distinct / round | new / round | mean reward | modes (metrics) | modes (recount) "
             "| reward calls |", "|---|---|---|---|---|---|---|---|"]
    seen: set[int] = set()
    distinct, new = [], []
    for r in range(trainer.step):
        chunk = index[r * batch:(r + 1) * batch].tolist()
        distinct.append(len(set(chunk)))
        new.append(len(set(chunk) - seen))
        seen.update(chunk)
    for start in range(0, trainer.step, every):
        end = min(start + every, trainer.step)
        logged = [metrics[s] for s in range(start + 1, end + 1) if s in metrics]
        entropy = sum(m["entropy"] for m in logged) / len(logged)
        n = end * batch
        recount = counter.count_in(x[:n], index[:n], raw[:n]) if counter is not None else None
        lines.append(f"| {start + 1}-{end} | {entropy:.3f} | {sum(distinct[start:end]) / (end - start):.1f} "
                     f"| {sum(new[start:end]) / (end - start):.2f} | {float(raw[start * batch:n].mean()):.3f} "
                     f"| {logged[-1]['modes']} | {recount} | {logged[-1]['reward_calls']} |")
    last = Counter(index[-10 * batch:].tolist())
    top = last.most_common(3)
    top_x = task.objects_from_index(torch.tensor([k for k, _ in top]))
    shown = ", ".join(f"{s} (R {float(r):.3f}) x{c}"
                      for s, r, (_, c) in zip(task.decode(top_x), trainer.oracle(top_x), top, strict=True))
    lines += ["", f"last 10 rounds: {len(last)} distinct of {10 * batch}; most frequent: {shown}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    for path in args.runs:
        print(report(path, args.every))


if __name__ == "__main__":
    main()
