"""Evaluation on trained runs: corrected samples (exactly R^beta/Z), importance-sampling estimates, beta for a target
mean reward, and the sample/eval commands that expose them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.evaluate import beta_for_mean_reward, draw_corrected, draw_samples, estimate
from thermogfn.exact import exact_metrics, target_distribution
from thermogfn.gfn import GFlowNetTrainer

TINY = ["--task", "hypergrid", "--ndim", "2", "--height", "6", "--hidden", "16", "--batch-size", "8",
        "--replay-batch", "8", "--no-progress"]


@pytest.fixture(scope="module")
def trainer(make_table_task) -> GFlowNetTrainer:
    """A briefly trained model of a tiny table task (81 objects): exact TV about 0.57 at beta 4."""
    task = make_table_task(3, 4, seed=0)
    cfg = RunConfig(task=task.name, model=ModelConfig(hidden=16), batch_size=16, replay_batch=16, steps=200, seed=3)
    t = GFlowNetTrainer(cfg, task)
    for _ in range(cfg.steps):
        t.train_round()
    return t


def empirical_tv(task, x: torch.Tensor, beta: float) -> float:
    p, _ = target_distribution(task, beta)
    counts = torch.bincount(task.object_index(x), minlength=task.n_objects).double()
    return 0.5 * float((counts / counts.sum() - p).abs().sum())


def test_corrected_samples_follow_the_target_where_the_model_does_not(trainer):
    task, beta, n = trainer.task, 4.0, 6000
    raw_tv = exact_metrics(trainer.model, task, beta)["tv"]
    x, raw, report = draw_corrected(trainer, beta, n, seed=1, burn_in=80)
    exact_x = task.objects_from_index(torch.multinomial(target_distribution(task, beta)[0], n, replacement=True,
                                                        generator=torch.Generator().manual_seed(2)))
    floor = empirical_tv(task, exact_x, beta)
    assert raw_tv > floor + 0.1  # the model alone is visibly wrong here
    assert empirical_tv(task, x, beta) < floor + 0.03
    assert torch.equal(raw, task.raw_reward(x))
    assert report.reward_calls == n * (80 + 1) and 0 < report.acceptance < 1 and report.chains == n


def test_uncorrected_samples_show_the_model_error(trainer):
    x, _ = draw_samples(trainer, 4.0, 6000, seed=1)
    assert empirical_tv(trainer.task, x, 4.0) > exact_metrics(trainer.model, trainer.task, 4.0)["tv"] - 0.03


@pytest.mark.parametrize("settings", [{"burn_in": 0}, {"burn_in": -1}, {"chains": 0}, {"steps_per_sample": 0},
                                      {"k": 0}, {"burn_in": True}, {"kernel": "gibbs"}])
def test_bad_chain_settings_are_one_line_errors(trainer, settings):
    with pytest.raises(ThermoGFNError):
        draw_corrected(trainer, 2.0, 10, **settings)


def test_estimates_match_the_exact_values(trainer):
    task = trainer.task
    for beta in (1.0, 4.0):
        est = estimate(trainer, beta, 4000, seed=0)
        exact = exact_metrics(trainer.model, task, beta)
        assert est.ess > 100
        assert abs(est.log_z - exact["log_z_target"]) < 4 / math.sqrt(est.ess) + 0.02
        q, _ = target_distribution(task, beta)
        table = task.table().double()
        spread = float((q * (table - exact["expected_reward_target"]) ** 2).sum().sqrt())  # sd of R under target
        assert abs(est.mean_reward - exact["expected_reward_target"]) < 4 * spread / math.sqrt(est.ess)
        assert est.log_z_model == pytest.approx(exact["log_z"], abs=1e-5)
    doubled = estimate(trainer, 2.0, 2000, seed=0, f=lambda x: 2.0 * task.raw_reward(x))
    assert doubled.user_mean == pytest.approx(2 * doubled.mean_reward)


def test_beta_for_a_target_mean_reward(trainer):
    task = trainer.task
    target = 0.5 * (exact_metrics(trainer.model, task, 1.0)["expected_reward_target"]
                    + exact_metrics(trainer.model, task, 3.0)["expected_reward_target"])
    beta, est = beta_for_mean_reward(trainer, target, n=3000)
    assert 1.0 < beta < 3.0
    assert exact_metrics(trainer.model, task, beta)["expected_reward_target"] == pytest.approx(target, rel=0.03)
    assert est.mean_reward == pytest.approx(target, rel=0.01)
    with pytest.raises(ThermoGFNError, match="outside what this reward reaches"):
        beta_for_mean_reward(trainer, 100.0, n=500)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "hg"
    code, _, err = run_cli("train", *TINY, "--steps", "20", "--out", str(out))
    assert code == 0, err
    return out


def test_sample_correct_writes_the_chain_report(run_dir, tmp_path):
    out = tmp_path / "s.csv"
    code, _, err = run_cli("sample", str(run_dir), "--beta", "3", "-n", "50", "--correct", "mh", "--burn-in", "5",
                           "--out", str(out))
    assert code == 0, err
    report = json.loads((tmp_path / "s.csv.json").read_text())
    assert report["reward_calls"] == 50 * 6 and 0 <= report["acceptance"] <= 1 and report["kernel"] == "independent"
    assert "acceptance" in err and len(out.read_text().splitlines()) == 51


@pytest.mark.parametrize("kernel", ["back-and-forth", "mixture"])
def test_sample_with_other_kernels(run_dir, kernel):
    code, stdout, err = run_cli("sample", str(run_dir), "--beta", "2", "-n", "20", "--correct", "mh",
                                "--kernel", kernel, "--burn-in", "3")
    assert code == 0, err
    assert len(stdout.splitlines()) == 21 and f'"kernel": "{kernel}"' in err


def test_sample_at_a_target_mean_reward(run_dir):
    code, stdout, err = run_cli("sample", str(run_dir), "--target-mean-reward", "0.4", "-n", "10")
    assert code == 0, err
    assert err.startswith("beta ") and "add --correct mh" in err
    assert abs(float(err.split("estimated mean reward ")[1].split()[0]) - 0.4) < 1e-3
    assert len(stdout.splitlines()) == 11


@pytest.mark.parametrize("args,message", [
    (["--beta", "2", "--target-mean-reward", "1"], "exactly one of"),
    ([], "exactly one of"),
    (["--beta", "2", "--burn-in", "5"], "add --correct mh"),
    (["--beta", "2", "--correct", "mh", "--chains", "0"], "chains must be a positive integer"),
    (["--target-mean-reward", "1000"], "outside what this reward reaches"),
    (["--beta", "2", "--correct", "mh", "--kernel", "mixture", "--marginal"], "--marginal needs"),
])
def test_sample_bad_input_is_one_line(run_dir, args, message):
    code, _, err = run_cli("sample", str(run_dir), *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_correct_on_a_baseline_run_is_refused(tmp_path):
    out = tmp_path / "rnd"
    assert run_cli("train", *TINY, "--method", "random", "--steps", "2", "--out", str(out))[0] == 0
    code, _, err = run_cli("sample", str(out), "--beta", "2", "--correct", "mh")
    assert code == 2 and "baseline" in err


def test_eval_shows_estimates_beside_the_learned_log_z(run_dir):
    code, stdout, err = run_cli("eval", str(run_dir), "--betas", "1,2", "--samples", "300", "--json")
    assert code == 0, err
    row = json.loads(stdout)["betas"]["2"]
    assert row["log_z_model"] == pytest.approx(row["log_z"]) and row["is_ess"] > 1
    assert abs(row["log_z_is"] - row["log_z_target"]) < abs(row["log_z_model"] - row["log_z_target"]) + 0.5


@pytest.mark.parametrize("args,message", [
    (["--beta", "2", "--correct", "mh", "--back-steps", "2"], "--back-steps applies to the back-and-forth"),
    (["--beta", "2", "--correct", "mh", "-n", "5", "--chains", "10"], "more than the 5 samples"),
    (["--beta", "2", "--correct", "MH", "--kernel", "INDEPENDENT", "-n", "5"], None),
])
def test_sample_chain_options(run_dir, args, message):
    code, _, err = run_cli("sample", str(run_dir), *args)
    assert (code == 0) if message is None else (code == 2 and message in err and len(err.strip().splitlines()) == 1)


def test_sidecar_of_an_earlier_corrected_draw_is_removed(run_dir, tmp_path):
    out = tmp_path / "s.csv"
    assert run_cli("sample", str(run_dir), "--beta", "2", "-n", "5", "--correct", "mh", "--out", str(out))[0] == 0
    report = json.loads((tmp_path / "s.csv.json").read_text())
    assert report["run"] == str(run_dir) and report["step"] == 20 and report["seed"] == 0
    assert run_cli("sample", str(run_dir), "--beta", "2", "-n", "5", "--out", str(out))[0] == 0
    assert not (tmp_path / "s.csv.json").exists()
    code, _, err = run_cli("sample", str(run_dir), "--beta", "2", "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_eval_with_nothing_to_evaluate(run_dir):
    code, _, err = run_cli("eval", str(run_dir), "--no-exact", "--samples", "0")
    assert code == 2 and "nothing to evaluate" in err
