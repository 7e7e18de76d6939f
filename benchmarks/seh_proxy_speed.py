"""Throughput of the 2021 sEH MPNN proxy on the 950 reference fragment molecules.

    PYTHONPATH=src python benchmarks/seh_proxy_speed.py [--batches 1 32 256] [--repeats 3]
        [--out benchmarks/results/seh_proxy_speed.md]

Molecules/s of ``SEHProxy`` (float32, CPU) called on already assembled RDKit molecules, so featurisation is
included and assembly is not; the featurisation share is measured separately. Each batch size runs over
consecutive reference molecules (at most ``--max-molecules``), median of ``--repeats`` passes after one warm-up
batch, with ``torch.set_num_threads(1)`` and with torch's default thread count. Needs ``../shared/data/seh_proxy``
(or ``$THERMOGFN_DATA_DIR``) and RDKit.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from thermogfn.tasks.data import data_dir
from thermogfn.tasks.fragments import FOLDER, load_vocab
from thermogfn.tasks.seh_proxy import SEHProxy, featurize


def reference_molecules() -> list[Any]:
    """The assembled molecules of ``reference_scores.csv``."""
    vocab = load_vocab()
    with open(data_dir(None, FOLDER) / "reference_scores.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [vocab.assemble(json.loads(r["blockidxs"]), json.loads(r["jbonds"])) for r in rows]


def seconds(fn: Callable[[list[Any]], Any], batches: list[list[Any]], repeats: int) -> float:
    """Median wall seconds of calling ``fn`` on every batch in turn (one warm-up call first)."""
    fn(batches[0])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            fn(b)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-molecules", type=int, default=768)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/seh_proxy_speed.md"))
    args = parser.parse_args()
    mols = reference_molecules()
    atoms = sum(m.GetNumAtoms() for m in mols) / len(mols)
    default_threads = torch.get_num_threads()
    load_start = os.getloadavg()[0]
    rows = []
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        for size in args.batches:
            n = min(len(mols), args.max_molecules) // size * size
            batches = [mols[i:i + size] for i in range(0, n, size)]
            proxy = SEHProxy.load(batch_size=size)
            total = seconds(proxy, batches, args.repeats)
            feat = seconds(featurize, batches, args.repeats)
            rows.append((threads, size, n, n / total, 1000 * total / n, feat / total))
            print(f"threads {threads} batch {size}: {n / total:.0f} molecules/s", flush=True)
    torch.set_num_threads(default_threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip() or "unknown"
    lines = [
        "# sEH proxy throughput (2021 MPNN, float32, CPU)",
        "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC at {commit}, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}; 1-minute load average "
        f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (other jobs share the machine).",
        f"{len(mols)} reference molecules, {atoms:.1f} heavy atoms on average; median of {args.repeats} passes.",
        "Command: `PYTHONPATH=src python benchmarks/seh_proxy_speed.py`",
        "",
        "| threads | batch | molecules | molecules/s | ms/molecule | featurisation share |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {t} | {b} | {n} | {rate:.0f} | {ms:.2f} | {share:.0%} |" for t, b, n, rate, ms, share in rows),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
