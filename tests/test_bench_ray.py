"""Bench grids on Ray (thermogfn.bench.runs): the same report as the local path, a killed worker and a killed
driver resume their runs, a failing run is reported with the others finished. A local two-CPU Ray per driver."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run_cli

from thermogfn.bench.runs import Grid, RunSpec, is_complete, plan, run_all
from thermogfn.config import RunConfig
from thermogfn.errors import ThermoGFNError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray not installed (pip install 'thermogfn[ray]')")

# 2 runs of 600 rounds, checkpoints every 40: a few seconds each, long enough to be killed in the middle
GRID = ["bench", "mode-seeking", "--task", "hypergrid", "--methods", "logit,none", "--seeds", "1", "--hidden", "16",
        "--batch-size", "8", "--rounds", "600", "--checkpoints", "300,600", "--checkpoint-every", "40"]


def _driver(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "thermogfn", *GRID, "--executor", "ray", "--jobs", "2",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _wait_for(condition, what: str, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _run_workers() -> list[int]:
    """PIDs of Ray workers running a bench run (Ray titles them ``ray::_execute``)."""
    found = subprocess.run(["pgrep", "-f", "ray::_execute"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def test_grid_on_ray_survives_a_killed_worker_and_driver_with_the_local_results(tmp_path: Path):
    local = tmp_path / "local"
    code, _, err = run_cli(*GRID, "--jobs", "2", "--out", str(local))
    assert code == 0, err

    out = tmp_path / "ray"
    runs = [out / "runs" / name / "checkpoints" for name in ("logit-s0", "none-s0")]

    def newest(checkpoints: Path) -> int:  # runs keep only their newest checkpoints
        return max((int(p.stem.split("_")[1]) for p in checkpoints.glob("step_*.pt")), default=0)

    def reached(step: int) -> bool:
        return any(newest(c) >= step for c in runs)

    driver = _driver(out)
    _wait_for(lambda: reached(40), "a first checkpoint")
    _wait_for(_run_workers, "a run on a Ray worker")
    os.kill(_run_workers()[0], signal.SIGKILL)  # Ray starts that run again, which resumes from its checkpoint

    def both_past(step: int) -> bool:
        return all(newest(c) >= step for c in runs)

    _wait_for(lambda: both_past(80), "both runs past round 80, the killed one after its restart")
    os.killpg(driver.pid, signal.SIGKILL)  # the driver, and the local Ray it started, die mid-grid
    _, first_err = driver.communicate()
    _wait_for(lambda: not _run_workers(), "the orphaned Ray workers to exit")
    assert " 0 failed" in first_err or "runs:" not in first_err, first_err  # the killed worker was no failure
    assert not (out / "results.csv").exists()
    assert not both_past(600)

    driver = _driver(out)  # restarted: finished runs are reused, partial ones resume
    stdout, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr
    assert "0 failed, 0 queued" in stderr and "failed, 0 queued" not in stderr.replace("0 failed, 0 queued", "")
    assert (out / "results.csv").read_text() == (local / "results.csv").read_text()
    assert "| logit | 600 |" in stdout


@pytest.fixture
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_failing_run_is_reported_after_the_others_finish(ray_cluster, tmp_path: Path):
    reward = tmp_path / "broken.py"
    reward.write_text("def reward(seqs):\n    raise ValueError('no lab today')\n")
    good = plan(tmp_path / "grid", RunConfig(task="hypergrid", steps=20, batch_size=4), ["logit"], 1)[0]
    bad_cfg = RunConfig(task=f"{reward}:reward", alphabet="AC", length=4, steps=20, batch_size=4)
    bad = RunSpec("none", 0, bad_cfg, tmp_path / "grid" / "runs" / "bad")
    with pytest.raises(ThermoGFNError, match=r"1 of 2 run\(s\) failed \(none seed 0: .*no lab today.*rerun the same"):
        run_all([good, bad], Grid("ray", jobs=2), echo=lambda m: None)
    assert is_complete(good) and not is_complete(bad)
    assert ray_cluster.is_initialized()  # not started by the grid, so left running


@pytest.mark.parametrize("args, message", [
    (["--executor", "local", "--ray-address", "10.0.0.1:6379"], "--ray-address applies with --executor ray"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "no Ray cluster reachable at --ray-address 127.0.0.1:1"),
    (["--executor", "spark"], "'spark' is not one of"),
])
def test_bad_grid_options_are_one_line(tmp_path: Path, args, message):
    code, _, err = run_cli(*GRID, "--rounds", "2", "--checkpoints", "2", *args, "--out", str(tmp_path / "g"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "g").exists()
