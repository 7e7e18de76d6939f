"""Side-by-side peer benchmarks: thermogfn against torchgfn 2.4.1 (HyperGrid) and gfnx 0.0.1 (TFBind8).

Run from thermogfn's environment after ``bash benchmarks/peers/setup.sh``::

    python benchmarks/peers/run.py [--seeds 0 1 2] [--iterations 3000] [--settings hypergrid tfbind8]

Every run is a fresh subprocess with one thread (``_common.THREAD_ENV``), the systems interleaved (thermogfn,
peer, thermogfn, peer, ...); thermogfn runs from this repository's ``src``, so the current code is measured.
Each reports steady-state ms/iteration (warm-up left out), trajectories/s, import, set-up and compile seconds,
and the exact TV of its learned terminal distribution to R/Z at beta 1. Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULT_PREFIX, SETTINGS, THREAD_ENV

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEERS = {"hypergrid": ("torchgfn", "torchgfn_runner.py"), "tfbind8": ("gfnx", "gfnx_runner.py")}
COMPILED = "thermogfn --compile"  # thermogfn with torch.compile'd rollouts and loss (benchmarks/README.md)


def systems(setting: str, compiled: bool) -> tuple[str, ...]:
    """The systems of one setting, in the order they run (thermogfn first, the peer last)."""
    return ("thermogfn", *((COMPILED,) if compiled else ()), PEERS[setting][0])


def peers_dir() -> Path:
    return Path(os.environ.get("THERMOGFN_PEERS_DIR") or Path.home() / ".cache" / "thermogfn-peers")


def prepare_targets(settings: list[str], workdir: Path) -> dict[str, Path]:
    """R/Z at beta 1 of thermogfn's task for each setting (and TFBind8's raw table for gfnx) as .npy files."""
    sys.path.insert(0, str(REPO / "src"))
    import numpy as np

    from thermogfn.exact import target_distribution
    from thermogfn.tasks import make_task
    from thermogfn.tasks.hypergrid import HypergridTask

    workdir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for setting in settings:
        if setting == "hypergrid":
            s = SETTINGS[setting]
            task = HypergridTask(ndim=s["ndim"], height=s["height"], r0=s["r0"], r1=s["r1"], r2=s["r2"])
        else:
            task = make_task("tfbind8")
            files["tfbind8_table"] = workdir / "tfbind8_y.npy"
            np.save(files["tfbind8_table"], task.table().numpy())
        files[setting] = workdir / f"target_{setting}.npy"
        np.save(files[setting], target_distribution(task, 1.0)[0].numpy())
    return files


def command(system: str, setting: str, seed: int, args: argparse.Namespace, files: dict[str, Path]) -> list[str]:
    """The runner command line of one run."""
    common = ["--setting", setting, "--seed", str(seed), "--iterations", str(args.iterations),
              "--warmup", str(args.warmup), "--target", str(files[setting]), "--workdir", str(args.workdir)]
    if system in ("thermogfn", COMPILED):
        return [sys.executable, str(HERE / "thermogfn_runner.py"), *common, *(["--compile"] * (system == COMPILED))]
    name, script = PEERS[setting]
    extra = ["--table", str(files["tfbind8_table"])] if name == "gfnx" else []
    return [str(peers_dir() / name / "bin" / "python"), str(HERE / script), *common, *extra]


def run_one(cmd: list[str], system: str) -> dict[str, Any]:
    """Run a runner as a subprocess with one thread; its result line, or the error."""
    env = {**os.environ, **THREAD_ENV}
    if system in ("thermogfn", COMPILED):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    total = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return {"error": f"exit {proc.returncode}", "stderr_tail": tail, "process_s": total}
    return {**json.loads(lines[-1][len(RESULT_PREFIX):]), "process_s": total}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(), "loadavg": load}


def load(avg: Any) -> str:
    return f"{avg[0]:.2f}" if avg else "?"


def git_commit() -> str:
    """The repository's commit, with ``+changes`` if the work tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+changes" if dirty else "")


def fmt_range(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def markdown(report: dict[str, Any]) -> str:
    """Summary table (mean and range over seeds), the traj/s ratios, and one row per run."""
    runs = [r for r in report["runs"] if "error" not in r]
    batches = sorted({SETTINGS[s]["batch"] for s in report["settings"]})
    m = report["machine"]
    out = [f"# Peer benchmarks\n\n`{report['command']}` at {report['commit']} on {report['date']}: "
           f"{report['iterations']} iterations of {'/'.join(map(str, batches))} trajectories, the first "
           f"{report['warmup']} left out of the timings, seeds {report['seeds']}, one thread per system. Machine: "
           f"{m['nproc']} CPUs ({m['cpu']}), load average (1 min) {load(m['loadavg'])} at the start, "
           f"{load(report.get('load_end'))} at the end.\n",
           "| setting | system | ms/iter (range) | CPU ms/iter | traj/s | import s | set-up s | compile s "
           "| exact TV (range) |", "|---|---|---|---|---|---|---|---|---|"]
    ratios = []
    for setting in report["settings"]:
        rate: dict[str, tuple[float, float]] = {}
        for system in systems(setting, True):
            rs = [r for r in runs if r["setting"] == setting and r["system"] == system]
            if not rs:
                continue
            traj = statistics.fmean(r["traj_per_s"] for r in rs)
            cpu = statistics.fmean(r["cpu_ms_per_iter"] for r in rs)
            rate[system] = (traj, cpu)
            out.append(f"| {setting} | {system} | {fmt_range([r['ms_per_iter'] for r in rs], 2)} | {cpu:.2f} "
                       f"| {traj:.0f} | {statistics.fmean(r['import_s'] for r in rs):.2f} "
                       f"| {statistics.fmean(r['setup_s'] for r in rs):.2f} "
                       f"| {statistics.fmean(r['compile_s'] for r in rs):.2f} "
                       f"| {fmt_range([r['tv'] for r in rs], 3)} |")
        peer = PEERS[setting][0]
        for ours in ("thermogfn", COMPILED):
            if ours in rate and peer in rate:
                ratios.append(f"| {setting} | {ours} | {peer} | {rate[ours][0] / rate[peer][0]:.2f} "
                              f"| {rate[peer][1] / rate[ours][1]:.2f} |")
    if ratios:
        out += ["", "| setting | ours | peer | ours / peer traj/s (wall) | same from CPU time |",
                "|---|---|---|---|---|", *ratios]
    out += ["", "Per run:", "", "| setting | system | seed | ms/iter | median | CPU ms/iter | set-up s | compile s "
            "| train s | eval s | process s | TV | TV to thermogfn's R/Z |", "|---" * 13 + "|"]
    for r in report["runs"]:
        if "error" in r:
            out.append(f"| {r['setting']} | {r['system']} | {r['seed']} | failed: {r['error']} |||||||||")
            continue
        tv_t = r.get("tv_thermogfn_target", r["tv"])
        out.append(f"| {r['setting']} | {r['system']} | {r['seed']} | {r['ms_per_iter']:.2f} "
                   f"| {r['ms_per_iter_median']:.2f} | {r['cpu_ms_per_iter']:.2f} | {r['setup_s']:.2f} "
                   f"| {r['compile_s']:.2f} | {r['train_s']:.1f} | {r['eval_s']:.2f} | {r['process_s']:.1f} "
                   f"| {r['tv']:.4f} | {tv_t:.4f} |")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=200, help="first iterations left out of the timings")
    p.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["hypergrid", "tfbind8"])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "peers",
                   help="writes OUT.json and OUT.md")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: PEERS_DIR/work)")
    p.add_argument("--compile", action="store_true", help="also run thermogfn with --compile (torch.compile)")
    args = p.parse_args()
    args.workdir = (args.workdir or peers_dir() / "work").resolve()
    for setting in args.settings:
        venv_python = peers_dir() / PEERS[setting][0] / "bin" / "python"
        if not venv_python.exists():
            raise SystemExit(f"{venv_python} is missing: run `bash benchmarks/peers/setup.sh` first")
    files = prepare_targets(args.settings, args.workdir)
    report: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/peers/run.py", *sys.argv[1:]]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": git_commit(), "machine": machine(),
        "seeds": args.seeds, "iterations": args.iterations, "warmup": args.warmup, "settings": args.settings,
        "hyper_parameters": {s: SETTINGS[s] for s in args.settings}, "thread_env": THREAD_ENV, "runs": [],
    }
    out_json, out_md = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for setting in args.settings:
            for system in systems(setting, args.compile):
                result = run_one(command(system, setting, seed, args, files), system)
                result.update(system=system, setting=setting, seed=seed)
                report["runs"].append(result)
                if "error" in result:
                    print(f"{setting:9s} {system:9s} seed {seed}: FAILED {result['error']}\n  "
                          + "\n  ".join(result["stderr_tail"]), flush=True)
                else:
                    print(f"{setting:9s} {system:9s} seed {seed}: {result['ms_per_iter']:6.2f} ms/iter "
                          f"(CPU {result['cpu_ms_per_iter']:.2f}), {result['traj_per_s']:6.0f} traj/s, set-up "
                          f"{result['setup_s']:.2f} s, compile {result['compile_s']:.2f} s, TV {result['tv']:.4f}",
                          flush=True)
                report["load_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
                out_json.write_text(json.dumps(report, indent=1) + "\n")  # after every run: partial results stay
    out_md.write_text(markdown(report))
    print(f"\nwrote {out_json} and {out_md}\n")
    print(markdown(report))
    if any("error" in r for r in report["runs"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
