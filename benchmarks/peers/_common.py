"""What the peer-benchmark runners share: the two settings' hyper-parameters, the command line, timing summaries
and the result line. Standard library only: it is imported in every system's environment (thermogfn's, the
torchgfn venv, the gfnx venv)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

RESULT_PREFIX = "PEER_RESULT "
# one thread per system: torch (OpenMP/MKL) and XLA's CPU client; runners also call torch.set_num_threads(1)
THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "THERMOGFN_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}

# One source for both sides of each comparison; benchmarks/README.md says where each value comes from.
SETTINGS: dict[str, dict[str, Any]] = {
    "hypergrid": {  # torchgfn 2.4.1 tutorials/examples/train_hypergrid_simple.py (TB, learned P_B sharing the trunk)
        "ndim": 4, "height": 8, "r0": 0.1, "r1": 0.5, "r2": 2.0,
        "batch": 16, "hidden": 256, "hidden_layers": 2,  # Linear(32,256) act Linear(256,256) act, then the heads
        "lr": 1e-3, "lr_logz": 0.1, "eps": 0.0, "grad_clip": 1.0, "learn_pb": True,
    },
    "tfbind8": {  # gfnx 0.0.1 baselines/tb_tfbind.py + configs/tb_tfbind.yaml (append MDP, a tree: P_B = 1)
        "batch": 16, "hidden": 256, "linear_256": 3,  # eqx MLP depth 2 (Linear 40-256-256-256) + a Linear head
        "lr": 5e-4, "lr_logz": 0.05, "eps": 0.01, "grad_clip": None,
        "min_reward": 1e-8,  # gfnx floor on 10 y^3 that equals thermogfn's 10 * max(y, 0.001)^3 (max y = 1)
    },
}


def single_thread() -> None:
    """Put :data:`THREAD_ENV` in the environment (where the driver has not already); call before any import of
    torch or jax."""
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)


def parser(description: str) -> argparse.ArgumentParser:
    """The command line every runner takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--setting", choices=sorted(SETTINGS), required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=200, help="iterations left out of the steady-state numbers")
    p.add_argument("--target", type=Path, default=None,
                   help="R/Z of thermogfn's task as a float64 .npy (object-index order): the TV is also taken to it")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (gfnx: its reward pickle)")
    return p


def steady(seconds: list[float], cpu: list[float], per: int, warmup_units: int) -> dict[str, float]:
    """Steady-state numbers from per-unit wall and CPU seconds, each unit ``per`` iterations, the first
    ``warmup_units`` units left out."""
    wall = [s / per * 1e3 for s in seconds[warmup_units:]] or [s / per * 1e3 for s in seconds]
    cpu_ms = [s / per * 1e3 for s in cpu[warmup_units:]] or [s / per * 1e3 for s in cpu]
    return {"ms_per_iter": statistics.fmean(wall), "ms_per_iter_median": statistics.median(wall),
            "cpu_ms_per_iter": statistics.fmean(cpu_ms), "timed_iterations": len(wall) * per}


class Clock:
    """Wall and CPU seconds since the last :meth:`lap`."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def emit(result: dict[str, Any]) -> None:
    """Print the result as the line the driver reads."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
