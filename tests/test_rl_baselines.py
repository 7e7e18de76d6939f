"""The RL baselines (ppo, a2c, sac): masked rollouts over distinct children, reaching the optimum of a small
task, complete run directories through the command line, and bit-identical resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

from thermogfn.baselines import rl
from thermogfn.config import ModelConfig, RunConfig
from thermogfn.loop import train
from thermogfn.mdp import PrependAppendMDP
from thermogfn.methods import trainer_class
from thermogfn.rundir import RunDir
from thermogfn.tasks.custom import CustomTask

METHODS = ("ppo", "a2c", "sac")
TARGET = "ABBA"


def _abba(strings: list[str]) -> list[float]:
    """One clearly best sequence: 0.1 + (matches with ABBA)^2, so ABBA scores 16.1 and the next best 9.1."""
    return [0.1 + sum(a == b for a, b in zip(s, TARGET, strict=True)) ** 2 for s in strings]


def _abba_task() -> CustomTask:
    return CustomTask(_abba, "AB", 4, name="abba")


def test_rollout_uses_only_valid_distinct_children():
    mdp = PrependAppendMDP(2, 4)
    policy = rl.Policy(mdp, 16, 1, last_std=1.0)
    ep = rl.rollout(policy, 64, torch.Generator().manual_seed(0))
    m = ep.active
    assert rl.valid_actions(mdp, ep.states[m]).gather(1, ep.actions[m][:, None]).all()
    assert torch.equal(ep.done.sum(1), torch.ones(64, dtype=torch.int64))  # exactly one stop per episode
    assert torch.equal(m.sum(1), torch.full((64,), 5))  # 4 tokens then the forced stop
    assert (ep.objects < 2).all()
    logp = policy(ep.states[m])
    assert torch.allclose(logp.exp().sum(-1), torch.ones(int(m.sum())))
    # from s0, prepend(c) = append(c): append is merged away
    assert torch.isinf(logp[0, 2:4]).all() and torch.isfinite(logp[0, :2]).all()


@pytest.mark.parametrize("method", METHODS)
def test_reaches_the_optimum_of_a_small_task(method: str):
    task = _abba_task()
    rounds = {"ppo": 30, "a2c": 120, "sac": 60}[method]
    cfg = RunConfig(task="abba", method=method, model=ModelConfig(hidden=32), batch_size=16, steps=rounds, lr=3e-3)
    trainer = trainer_class(method)(cfg, task)
    for _ in range(cfg.steps):
        trainer.train_round()
    last = torch.cat(trainer.samples[-5:])  # the last 5 rounds' samples
    assert task.decode(task.objects_from_index(last.mode().values[None]))[0] == TARGET
    # the entropy bonus keeps the policy stochastic; uniform sampling would average 5.1
    assert float(task.table()[last].mean()) > 0.6 * 16.1
    assert trainer.oracle.calls == rounds * 16


@pytest.mark.parametrize("method", METHODS)
def test_train_cli_writes_a_complete_run(method: str, tmp_path: Path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", "--method", method, "--task", "hypergrid", "--ndim", "2",
                           "--height", "4", "--hidden", "16", "--batch-size", "8", "--steps", "6", "--log-every", "2",
                           "--checkpoint-every", "3", "--no-progress", "--out", str(out))
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == method and cfg["lr"] is not None
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert [r["reward_calls"] for r in rows] == [16, 32, 48]
    assert {"loss", "modes", "mean_reward", "entropy"} <= set(rows[-1])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000003.pt", "step_00000006.pt"]


def _assert_equal(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b or (a != a and b != b), where  # nan == nan for metrics


@pytest.mark.parametrize("method", METHODS)
def test_resume_is_bit_identical(method: str, tmp_path: Path):
    cfg = RunConfig(task="hypergrid", ndim=2, height=4, method=method, model=ModelConfig(hidden=16), batch_size=8,
                    steps=8, log_every=1, checkpoint_every=2, seed=1)
    train(cfg, tmp_path / "full", progress=False)
    train(dataclasses.replace(cfg, steps=4), tmp_path / "part", progress=False)
    train(cfg, tmp_path / "part", progress=False, resume=True)
    full, part = RunDir(tmp_path / "full"), RunDir(tmp_path / "part")
    a, b = full.load_latest_checkpoint(), part.load_latest_checkpoint()
    assert a["step"] == b["step"] == 8
    _assert_equal(a["method"], b["method"], "method")
    assert torch.equal(a["samples"], b["samples"])
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in full.read_metrics()]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in part.read_metrics()]
