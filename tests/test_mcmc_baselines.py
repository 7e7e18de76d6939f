"""The ``mcmc`` and ``sa`` baselines: MCMC chain states approach R^beta / Z, Metropolis acceptance obeys detailed
balance, annealing finds the optimum, both run through the command line and resume bit-identically."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

from thermogfn.baselines.annealing import SAParams, SimulatedAnnealing
from thermogfn.baselines.mcmc import MCMC, MCMCParams, metropolis_accept, point_mutations
from thermogfn.config import RunConfig
from thermogfn.exact import target_distribution
from thermogfn.loop import train
from thermogfn.methods import trainer_class
from thermogfn.rundir import RunDir
from thermogfn.trainer import RoundStats


def _cfg(method: str = "mcmc", beta: float = 1.0, **kw) -> RunConfig:
    base = dict(method=method, beta_train=f"constant:{beta:g}", batch_size=16, steps=50, log_every=5,
                checkpoint_every=10)
    base.update(kw)
    return RunConfig(**base)


def _run(trainer, rounds: int) -> None:
    while trainer.step < rounds:
        trainer.train_round()


def test_registered():
    assert trainer_class("mcmc") is MCMC and trainer_class("sa") is SimulatedAnnealing


@pytest.mark.parametrize("k", [1, 2, 3])
def test_point_mutations_change_exactly_k_positions_uniformly(k):
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(30000, 3, dtype=torch.int64)
    y = point_mutations(x, 3, k, g)
    assert ((y != x).sum(1) == k).all() and y.min() >= 0 and y.max() < 3
    # every neighbour at Hamming distance k (3 choose k positions x 2^k tokens) equally likely: symmetric
    counts = torch.bincount(y @ torch.tensor([9, 3, 1]), minlength=27).double()
    hits = counts[counts > 0]
    assert hits.numel() == math.comb(3, k) * 2**k
    assert (hits / hits.mean() - 1).abs().max() < 0.1


def test_metropolis_acceptance_probability():
    g = torch.Generator().manual_seed(1)
    n = 200_000
    zeros = torch.zeros(n, dtype=torch.float64)
    down = torch.full((n,), math.log(1 / 3), dtype=torch.float64)
    assert metropolis_accept(zeros, zeros + 1.0, 2.0, g).all()  # uphill: always
    for beta in (1.0, 2.0):
        rate = metropolis_accept(zeros, down, beta, g).double().mean()
        assert float(rate) == pytest.approx(3.0**-beta, abs=0.005)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_detailed_balance_on_two_states(make_table_task, beta):
    task = make_table_task(2, 1, seed=0)
    task._table = torch.tensor([1.0, 3.0], dtype=torch.float64)  # R(A) = 1, R(B) = 3
    trainer = MCMC(_cfg(beta=beta, batch_size=4000), task)
    trainer.train_round()  # the starts
    a_to_b = b_to_a = at_b = rounds = 0
    for _ in range(100):
        before = trainer.chains()[0][:, 0].clone()
        trainer.train_round()
        after = trainer.chains()[0][:, 0]
        if trainer.step > 10:
            a_to_b += int(((before == 0) & (after == 1)).sum())
            b_to_a += int(((before == 1) & (after == 0)).sum())
            at_b += int((before == 1).sum())
            rounds += 1
    # every move from A is accepted, from B with probability 3^-beta; stationary pi(B) = 3^beta / (1 + 3^beta)
    assert b_to_a / at_b == pytest.approx(3.0**-beta, rel=0.03)
    assert a_to_b == pytest.approx(b_to_a, rel=0.03)  # pi(A) P(A->B) = pi(B) P(B->A)
    assert at_b / (rounds * 4000) == pytest.approx(3.0**beta / (1 + 3.0**beta), abs=0.01)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4)])
@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_chain_states_approach_the_target(make_table_task, shape, beta):
    task = make_table_task(*shape, seed=1)
    trainer = MCMC(_cfg(beta=beta, batch_size=512), task)
    counts = torch.zeros(task.n_objects, dtype=torch.float64)
    while trainer.step < 1000:
        trainer.train_round()
        if trainer.step > 100:  # burn-in
            counts += torch.bincount(task.object_index(trainer.chains()[0]), minlength=task.n_objects)
    q, _ = target_distribution(task, beta)
    tv = 0.5 * float((counts / counts.sum() - q).abs().sum())
    uniform_tv = 0.5 * float((1 / task.n_objects - q).abs().sum())
    other_tv = 0.5 * float((target_distribution(task, 3 - beta)[0] - q).abs().sum())  # a sampler at the wrong beta
    # measured 0.002-0.008 over seeds 0-2 for these shapes and betas; uniform 0.28-0.68, wrong beta 0.23-0.30
    assert tv < 0.02 and tv < uniform_tv / 10 and tv < other_tv / 10
    assert trainer.oracle.calls == 1000 * 512  # exactly batch_size reward calls per round
    assert torch.cat(trainer.samples).numel() == 1000 * 512  # the logged training samples are the proposals


def test_annealing_reaches_the_optimum(make_table_task):
    task = make_table_task(4, 8, seed=2)  # 65,536 objects, additive log-reward: one optimum, found by search
    w = torch.randn(8, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    task._table = torch.exp(w.gather(1, task.all_objects().T).sum(0))
    trainer = SimulatedAnnealing(_cfg("sa", batch_size=8, steps=300), task)
    _run(trainer, 300)
    assert trainer.oracle.calls == 8 * 300  # 3.7% of the space
    best_x, best_raw = trainer.best()
    assert float(best_raw.max()) == pytest.approx(float(task.table().max()))
    assert torch.equal(task.raw_reward(best_x), best_raw)
    row = trainer.metrics_row(RoundStats(float("nan"), None, None))
    assert row["beta"] == pytest.approx(SAParams().beta_end) and row["best_reward"] == float(best_raw.max())


def test_annealing_schedules_and_restarts(make_table_task):
    task = make_table_task(3, 4, seed=0)
    geo = SimulatedAnnealing(_cfg("sa", steps=100), task, SAParams(beta_start=1, beta_end=100, schedule="geometric"))
    geo.step = 50
    assert geo.beta() == pytest.approx(10.0)
    lin = SimulatedAnnealing(_cfg("sa", steps=100), task, SAParams(beta_start=1, beta_end=11, restart_patience=5))
    lin.step = 50
    assert lin.beta() == pytest.approx(6.0)
    lin.step = 0
    _run(lin, 100)  # 81 objects: chains get stuck on local optima and restart
    assert lin.restarts > 0 and lin.oracle.calls == 100 * 16
    assert (lin.best_raw >= lin.state.raw).all()


def test_mutations_parameter(make_table_task):
    task = make_table_task(3, 4, seed=0)
    trainer = MCMC(_cfg(), task, MCMCParams(mutations=2))
    trainer.train_round()
    x0 = trainer.chains()[0]
    g_state = trainer.generator.get_state()
    trainer.train_round()
    trainer.generator.set_state(g_state)
    proposal = point_mutations(x0, 3, 2, trainer.generator)
    assert ((proposal != x0).sum(1) == 2).all()
    assert torch.equal(trainer.task.object_index(proposal), trainer.samples[-1])


@pytest.mark.parametrize("method", ["mcmc", "sa"])
def test_cli_train_writes_a_complete_run(method, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli("train", "--task", "hypergrid", "--ndim", "2", "--height", "4",
                           "--method", method, "--beta-train", "constant:1", "--batch-size", "8", "--steps", "20",
                           "--log-every", "5", "--checkpoint-every", "10", "--no-progress", "--out", str(run))
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["method"] == method
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert {"beta", "accept_rate", "accept_rate_all", "chain_reward", "reward_calls", "modes"} <= set(rows[0])
    assert rows[-1]["reward_calls"] == 20 * 8
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000010.pt", "step_00000020.pt"]
    state = RunDir(run).load_latest_checkpoint()
    assert state["method"]["chains"]["x"].shape == (8, 2) and state["samples"].numel() == 160


@pytest.mark.parametrize("method", ["mcmc", "sa"])
def test_resume_is_identical_to_an_uninterrupted_run(method, make_table_task, tmp_path: Path, monkeypatch):
    task = make_table_task(3, 4, seed=0)
    params = dict(method=method, steps=40, checkpoint_every=7, log_every=3, seed=4)
    full = train(_cfg(**params), tmp_path / "full", task=task, progress=False)
    part = tmp_path / "part"
    cls = trainer_class(method)
    real_round = cls.train_round

    def killed_at_17(self):
        if self.step == 17:
            raise KeyboardInterrupt  # as if killed during round 18: checkpoints at 7 and 14 only
        return real_round(self)

    monkeypatch.setattr(cls, "train_round", killed_at_17)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(**params), part, task=task, progress=False)
    monkeypatch.setattr(cls, "train_round", real_round)
    assert RunDir(part).load_latest_checkpoint()["step"] == 14
    resumed = train(_cfg(**params), part, task=task, progress=False, resume=True)
    assert torch.equal(torch.cat(full.samples), torch.cat(resumed.samples))
    for a, b in zip(full.method_state()["chains"].values(), resumed.method_state()["chains"].values(), strict=True):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in RunDir(tmp_path / "full").read_metrics()]
    strip2 = [{k: v for k, v in r.items() if k != "seconds"} for r in RunDir(part).read_metrics()]
    assert json.dumps(strip) == json.dumps(strip2)
