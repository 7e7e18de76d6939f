"""Reward executors (thermogfn.executors): order, retries of failed and lost chunks, clear errors, and training
bit-identical across local, processes and (when installed) Ray."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import textwrap
import threading

import pytest
import torch
from cli_helpers import run_cli

from thermogfn.config import RunConfig
from thermogfn.errors import RewardError, ThermoGFNError
from thermogfn.executors import ProcessExecutor, RewardExecutor, check_reachable, import_ray, make_executor
from thermogfn.loop import train
from thermogfn.methods import make_trainer
from thermogfn.tasks import make_task
from thermogfn.tasks.custom import CustomTask

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray not installed (pip install 'thermogfn[ray]')")

REWARDS = '''
import hashlib
import os
from pathlib import Path

MARKERS = Path({markers!r})


def score(seqs):
    return [1.0 + s.count("A") + 0.5 * s.count("C") + 0.25 * (s[0] == "G") for s in seqs]


def flaky(seqs):
    """Raises the first time it sees a chunk whose hash falls in a fifth of all values."""
    key = hashlib.sha1("".join(seqs).encode()).hexdigest()
    if int(key, 16) % 5 == 0:
        marker = MARKERS / ("flaky-" + key)
        if not marker.exists():
            marker.touch()
            raise RuntimeError("transient failure")
    return score(seqs)


def killer(seqs):
    """Kills its worker process the first time it is called, then scores normally."""
    marker = MARKERS / "killed"
    if not marker.exists():
        marker.touch()
        os._exit(3)
    return score(seqs)


def always_fails(seqs):
    raise ValueError("the lab is closed")
'''


@pytest.fixture
def rewards(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    path = tmp_path / "rewards.py"
    path.write_text(textwrap.dedent(REWARDS.format(markers=str(markers))))
    return path, markers


def custom(path, fn: str) -> CustomTask:
    return make_task(f"{path}:{fn}", alphabet="ACGT", length=12)  # 4^12 objects: no table, scored on demand


def objects(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 4, (n, 12), generator=torch.Generator().manual_seed(seed))


def test_local_is_the_default_and_scores_in_process(rewards):
    task = custom(rewards[0], "score")
    x = objects(9)
    ex = make_executor(task)
    assert type(ex) is RewardExecutor and ex.name == "local"
    assert torch.equal(ex.map(x), task.raw_reward(x))


def test_processes_keep_order_across_chunks(rewards):
    task = custom(rewards[0], "score")
    x = objects(101)
    with ProcessExecutor(task, workers=2) as ex:
        out = ex.map(x)  # 8 chunks of <= 13
        assert torch.equal(out, task.raw_reward(x))
        assert ex.map(x[:0]).shape == (0,)


def test_flaky_reward_is_retried_and_equals_local(rewards):
    path, markers = rewards
    x = objects(200, seed=1)
    with ProcessExecutor(custom(path, "flaky"), workers=2) as ex:
        out = ex.map(x)
    assert any(markers.iterdir()), "no chunk failed: the test would not exercise retries"
    assert torch.equal(out, custom(path, "score").raw_reward(x))


def test_killed_worker_is_replaced_and_its_chunk_retried(rewards):
    path, markers = rewards
    x = objects(64, seed=2)
    with ProcessExecutor(custom(path, "killer"), workers=2) as ex:
        out = ex.map(x)
        assert torch.equal(ex.map(x), out)  # the pool was restarted and still works
    assert (markers / "killed").exists()
    assert torch.equal(out, custom(path, "score").raw_reward(x))


def test_a_reward_that_keeps_failing_stops_with_one_line_naming_it(rewards):
    with ProcessExecutor(custom(rewards[0], "always_fails"), workers=2) as ex, \
            pytest.raises(RewardError) as err:
        ex.map(objects(8))
    text = str(err.value)
    assert "always_fails" in text and "3 times" in text and "the lab is closed" in text and "\n" not in text


def test_a_reward_that_cannot_be_shipped_is_named(rewards):
    lock = threading.Lock()

    def locked(seqs):
        with lock:
            return [1.0] * len(seqs)

    task = CustomTask(locked, "AC", 30)
    with pytest.raises(ThermoGFNError, match=r"reward function .*locked cannot be shipped") as err:
        ProcessExecutor(task, workers=2, mp_context="spawn")
    assert "\n" not in str(err.value)


def train_metrics(cfg: RunConfig, out) -> list[dict]:
    train(cfg, out, progress=False, plots=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def run_config(path, **kw) -> RunConfig:
    return RunConfig(task=f"{path}:score", alphabet="ACGT", length=12, steps=5, log_every=1, batch_size=16,
                     replay_batch=8, **kw)


def test_training_is_bit_identical_local_vs_processes(rewards, tmp_path):
    path = rewards[0]
    local = train_metrics(run_config(path), tmp_path / "local")
    procs = train_metrics(run_config(path, executor="processes", executor_workers=2), tmp_path / "procs")
    assert local == procs and len(local) == 5


def test_executor_settings_are_checked_and_not_part_of_the_identity(rewards):
    path = rewards[0]
    assert run_config(path, executor="processes", executor_workers=3).identity() == run_config(path).identity()
    with pytest.raises(ThermoGFNError, match="--workers must be >= 1, got 0"):
        make_trainer(run_config(path, executor="processes", executor_workers=0))
    with pytest.raises(ThermoGFNError, match="unknown executor 'dask'"):
        make_trainer(run_config(path, executor="dask"))
    with pytest.raises(ThermoGFNError, match="--ray-address applies with --executor ray"):
        make_trainer(run_config(path, ray_address="10.0.0.1:6379"))
    with pytest.raises(ThermoGFNError, match="--workers applies with --executor processes or ray"):
        make_trainer(run_config(path, executor_workers=2))


def test_ray_missing_is_one_line_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ThermoGFNError, match=r"pip install thermogfn\[ray\]"):
        import_ray()


def test_unreachable_ray_address_is_named_within_the_wait():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ThermoGFNError, match=f"--ray-address 127.0.0.1:{port}") as err:
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    assert "\n" not in str(err.value)
    with pytest.raises(ThermoGFNError, match="is not HOST:PORT"):
        check_reachable("somewhere:port")


def test_cli_executor_options(rewards, tmp_path, monkeypatch):
    base = ("train", "--task", f"{rewards[0]}:score", "--alphabet", "ACGT", "--length", "12", "--steps", "2",
            "--batch-size", "8", "--no-progress")
    code, _, err = run_cli(*base, "--executor", "processes", "--workers", "0", "--out", str(tmp_path / "a"))
    assert code == 2 and err.strip() == "error: --workers must be >= 1, got 0"
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = run_cli(*base, "--executor", "ray", "--out", str(tmp_path / "a"))
    assert code == 2 and "pip install thermogfn[ray]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()
    code, _, err = run_cli(*base, "--executor", "processes", "--workers", "2", "--out", str(tmp_path / "b"))
    assert code == 0, err
    code, _, err = run_cli("train", "--resume", str(tmp_path / "b"), "--steps", "3", "--executor", "local",
                           "--no-progress")  # executors may change on resume: results do not depend on them
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "config.json").read_text())["executor"] == "local"


# ------------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'thermogfn[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@needs_ray
def test_ray_training_equals_local_and_survives_a_killed_worker(ray_cluster, rewards, tmp_path):
    path, markers = rewards
    local = train_metrics(run_config(path), tmp_path / "local")
    assert train_metrics(run_config(path, executor="ray", executor_workers=2), tmp_path / "ray") == local
    x = objects(64, seed=3)
    ex = make_executor(custom(path, "killer"), "ray", workers=2)
    assert torch.equal(ex.map(x), custom(path, "score").raw_reward(x))
    assert (markers / "killed").exists()
    assert ray_cluster.is_initialized()  # the executor did not start this Ray, so it leaves it running
    flaky = make_executor(custom(path, "flaky"), "ray", workers=2)
    assert torch.equal(flaky.map(objects(200, seed=1)), custom(path, "score").raw_reward(objects(200, seed=1)))


@needs_ray
def test_ray_unshippable_reward_is_named():
    lock = threading.Lock()

    def locked(seqs):
        with lock:
            return [1.0] * len(seqs)

    with pytest.raises(ThermoGFNError, match=r"locked cannot be shipped to workers \(cloudpickle"):
        make_executor(CustomTask(locked, "AC", 30), "ray")
