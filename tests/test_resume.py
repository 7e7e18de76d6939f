"""Runs that survive: SIGKILL at random moments then --resume gives the same result as an uninterrupted run;
SIGTERM stops after the round with a checkpoint; corrupt checkpoints fall back; foreign checkpoints are refused;
a second process on the same run directory is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.loop import train
from thermogfn.rundir import RunDir, run_lock

ARGS = ["--task", "hypergrid", "--ndim", "2", "--height", "6", "--hidden", "32", "--batch-size", "8",
        "--replay-batch", "8", "--log-every", "2", "--checkpoint-every", "3", "--seed", "3", "--no-progress"]
STEPS = 150


def cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, THERMOGFN_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "thermogfn", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def final_state(run: Path) -> tuple[dict, list[dict]]:
    state = RunDir(run).load_latest_checkpoint()
    assert state is not None and state["step"] == STEPS
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return state, rows


def assert_same(a: Path, b: Path) -> None:
    (sa, ra), (sb, rb) = final_state(a), final_state(b)
    assert ra == rb
    assert [r["step"] for r in ra] == list(range(2, STEPS + 1, 2))  # no duplicated or missing steps
    for key in sa["method"]["model"]:
        assert torch.equal(sa["method"]["model"][key], sb["method"]["model"][key]), key
    assert torch.equal(sa["method"]["buffer"]["x"], sb["method"]["buffer"]["x"])
    assert torch.equal(sa["samples"], sb["samples"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = cli("train", *ARGS, "--steps", str(STEPS), "--out", str(out))
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return out


def test_sigkill_at_random_moments_then_resume_is_bit_identical(reference: Path, tmp_path: Path):
    out = tmp_path / "run"
    rng = random.Random(1234)
    kills = 0
    for attempt in range(12):
        resume = (out / "config.json").exists()
        proc = cli("train", *(["--resume"] if resume else ARGS), "--steps", str(STEPS), "--out", str(out),
                   *(["--no-progress"] if resume else []))
        if attempt < 4:
            time.sleep(rng.uniform(1.5, 4.0))  # interpreter start-up is ~1.5 s; training ~2-3 s
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        code = proc.wait(timeout=300)
        if code == 0:
            break
    assert code == 0, proc.stderr.read()
    assert kills >= 2, "the run finished before it could be killed; slow it down"
    assert_same(reference, out)


def test_sigterm_stops_after_the_round_with_a_checkpoint(reference: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = cli("train", *ARGS, "--steps", str(STEPS), "--out", str(out))
    deadline = time.time() + 60
    while not list((out / "checkpoints").glob("step_*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    err = proc.stderr.read()
    if code == 0:
        pytest.skip("the run finished before SIGTERM arrived")
    assert code == 130 and "--resume" in err and "Traceback" not in err
    stopped_at = RunDir(out).load_latest_checkpoint()["step"]
    assert 0 < stopped_at < STEPS
    proc = cli("train", "--resume", "--no-progress", "--out", str(out))
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert_same(reference, out)


def _tiny_cfg(**kw) -> RunConfig:
    base = dict(task="hypergrid", ndim=2, height=4, model=ModelConfig(hidden=16), batch_size=4, replay_batch=4,
                steps=6, checkpoint_every=2, log_every=1)
    base.update(kw)
    return RunConfig(**base)


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path: Path):
    out = tmp_path / "run"
    train(_tiny_cfg(), out, progress=False)
    run = RunDir(out)
    newest, previous = run.checkpoint_paths()[:2]
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    state = run.load_latest_checkpoint()
    assert state["step"] == int(previous.stem.split("_")[1])
    trainer = train(_tiny_cfg(), out, progress=False, resume=True)
    assert trainer.step == 6
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4, 5, 6]


def test_checkpoint_from_another_config_is_refused(tmp_path: Path):
    out = tmp_path / "run"
    train(_tiny_cfg(), out, progress=False)
    with pytest.raises(ThermoGFNError, match="another task or config"):
        train(_tiny_cfg(seed=5), out, progress=False, resume=True)


def test_second_process_on_the_same_run_is_refused(tmp_path: Path):
    with run_lock(tmp_path), pytest.raises(ThermoGFNError, match="another thermogfn process"), run_lock(tmp_path):
        pass


def test_nonfinite_losses_stop_the_run_with_a_usable_checkpoint(tmp_path: Path, monkeypatch):
    out = tmp_path / "run"
    from thermogfn import objectives

    real = objectives.loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] > 4 else value  # rounds 1-2 fine, then NaN forever

    monkeypatch.setattr(objectives, "loss", poisoned)
    with pytest.raises(ThermoGFNError, match="consecutive steps had a non-finite loss"):
        train(_tiny_cfg(steps=50, max_consecutive_skips=6), out, progress=False)
    state = RunDir(out).load_latest_checkpoint()
    assert state["skipped"] == 6 and state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["method"]["model"].values())


def test_checkpoint_from_before_a_config_field_existed_still_loads(tmp_path: Path):
    from thermogfn.methods import make_trainer

    out = tmp_path / "run"
    train(_tiny_cfg(), out, progress=False)
    state = RunDir(out).load_latest_checkpoint()
    del state["identity"]["method_params"]  # as written by a version without that field
    trainer = make_trainer(_tiny_cfg())
    trainer.load_state_dict(state)
    assert trainer.step == 6


@pytest.mark.parametrize("accept", ["greedy", "mh"])
def test_local_search_runs_resume_bit_identically(tmp_path: Path, accept: str):
    ls = {"local_search": 2, "ls_iterations": 3, "ls_accept": accept}
    straight = train(_tiny_cfg(**ls), tmp_path / "straight", progress=False, plots=False)
    train(_tiny_cfg(steps=3, **ls), tmp_path / "split", progress=False, plots=False)
    resumed = train(_tiny_cfg(**ls), tmp_path / "split", progress=False, plots=False, resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert torch.equal(torch.cat(straight.samples), torch.cat(resumed.samples))
