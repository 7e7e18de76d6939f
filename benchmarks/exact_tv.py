"""Exact TV (and |log Z error|) per beta for trained GFlowNet runs, grouped by method, mean ± std over seeds.

Usage: ``python benchmarks/exact_tv.py BENCH_DIR [--betas 1,2,3,10,30] [--out FILE.md]`` where BENCH_DIR is the
``--out`` of ``thermogfn bench mode-seeking`` (its ``runs/<method>-s<seed>`` folders are evaluated).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from thermogfn.bench.report import mean_std
from thermogfn.evaluate import evaluate, load_run
from thermogfn.rundir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--betas", default="1,2,3,10,30")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    betas = [float(b) for b in args.betas.split(",")]
    tv: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    err: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    modes: dict[str, list[int]] = defaultdict(list)
    for run in sorted((args.bench_dir / "runs").iterdir()):
        if RunDir(run).load_config().method != "gfn":
            continue
        loaded = load_run(run)
        method = run.name.rsplit("-s", 1)[0]
        result = evaluate(loaded, betas, exact=True, samples=0)
        for beta, row in zip(betas, result["betas"].values(), strict=True):
            tv[method][beta].append(row["tv"])
            err[method][beta].append(row["log_z_error"])
        modes[method].append(result["modes_found_training"])
        print(json.dumps({"run": run.name, "tv": {b: r["tv"] for b, r in zip(betas, result["betas"].values(),
                                                                               strict=True)}}))
    head = " | ".join(f"TV@{b:g}" for b in betas)
    lines = [f"| method | modes (training) | {head} | " + " | ".join(f"logZ err@{b:g}" for b in betas) + " |",
             "|---" * (2 + 2 * len(betas)) + "|"]
    for method in tv:
        m_mu, m_sd = mean_std(modes[method])
        cells = [f"{mean_std(tv[method][b])[0]:.3f} ± {mean_std(tv[method][b])[1]:.3f}" for b in betas]
        cells += [f"{mean_std(err[method][b])[0]:.2f}" for b in betas]
        lines.append(f"| {method} | {m_mu:.1f} ± {m_sd:.1f} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
