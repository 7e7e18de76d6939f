"""Wall time of one bench grid trained locally (1 and N processes) and as Ray tasks on a local Ray.

    python benchmarks/grid.py [--task hypergrid] [--methods logit,none] [--seeds 2] [--rounds 500] [--jobs 2]
                              [--out benchmarks/results/grid]

Each setting runs ``thermogfn bench mode-seeking`` as a fresh command into an empty folder (process start, task
load, Ray start where used, training, the report), so the times are what a user waits for; the runs' results must
agree across settings (the script checks ``results.csv``). Also times one run alone (``--jobs 1``, a grid of one)
to split the grid's time into start-up and training. Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bench_seconds(args: list[str], out: Path) -> float:
    """Wall seconds of one ``thermogfn bench mode-seeking`` command writing into ``out``."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "thermogfn", "bench", "mode-seeking", *args, "--out", str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench failed: {done.stderr.strip().splitlines()[-1]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="hypergrid")
    parser.add_argument("--methods", default="logit,none")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="benchmarks/results/grid")
    opts = parser.parse_args()
    common = ["--task", opts.task, "--methods", opts.methods, "--rounds", str(opts.rounds),
              "--checkpoints", str(opts.rounds)]
    n_runs = len(opts.methods.split(",")) * opts.seeds
    settings = {
        "one run alone (local)": [*common, "--methods", opts.methods.split(",")[0], "--seeds", "1"],
        "local, 1 process": [*common, "--seeds", str(opts.seeds), "--jobs", "1"],
        f"local, {opts.jobs} processes": [*common, "--seeds", str(opts.seeds), "--jobs", str(opts.jobs)],
        f"ray (local Ray), {opts.jobs} at a time": [*common, "--seeds", str(opts.seeds), "--executor", "ray",
                                                   "--jobs", str(opts.jobs)],
    }
    rows, tables = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, args) in enumerate(settings.items()):
            out = Path(tmp) / str(i)
            seconds = bench_seconds(args, out)
            runs = 1 if "alone" in name else n_runs
            rows.append({"setting": name, "runs": runs, "wall_s": round(seconds, 2)})
            if runs == n_runs:
                tables.add((out / "results.csv").read_text())
            print(f"{name}: {seconds:.1f} s", file=sys.stderr)
    if len(tables) != 1:
        raise SystemExit("the grid's results differ between settings")
    base = rows[1]["wall_s"]
    for row in rows[1:]:
        row["speedup_vs_1_process"] = round(base / row["wall_s"], 2)
    meta = {"command": "python benchmarks/grid.py " + " ".join(sys.argv[1:]),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "load_average_end": round(os.getloadavg()[0], 2), "task": opts.task, "methods": opts.methods,
            "seeds": opts.seeds, "rounds": opts.rounds, "results_agree": True}
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = ["# Bench grid: local vs Ray", "",
             f"`{meta['command']}` on {meta['date']}: {meta['cpus']} CPUs, load average {meta['load_average_end']} "
             f"at the end; {n_runs} runs ({opts.methods} x {opts.seeds} seeds) of {opts.rounds} rounds on "
             f"{opts.task}; every setting's results.csv identical.", "",
             "| setting | runs | wall s | speed-up vs 1 process |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['setting']} | {row['runs']} | {row['wall_s']} | {row.get('speedup_vs_1_process', '-')} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
