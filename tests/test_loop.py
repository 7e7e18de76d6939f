"""The run loop (thermogfn.loop.train) and the train/sample commands around it: refusing to replace runs, leaving
no half-made run directory, resuming by the short form, what metrics and config record, and failing writes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.loop import train
from thermogfn.rundir import RunDir

TINY = ["--task", "hypergrid", "--ndim", "2", "--height", "4", "--hidden", "16", "--batch-size", "8",
        "--replay-batch", "8", "--log-every", "5", "--checkpoint-every", "10", "--no-progress"]


def tiny_cfg(steps: int = 10) -> RunConfig:
    return RunConfig(task="hypergrid", ndim=2, height=4, model=ModelConfig(hidden=16), batch_size=8,
                     replay_batch=8, steps=steps, log_every=5, checkpoint_every=10)


@pytest.mark.parametrize("method", ["ppoo", "GFlowNet"])
def test_unknown_method_is_one_line_and_leaves_no_directory(tmp_path, method):
    out = tmp_path / "x"
    code, _, err = run_cli("train", *TINY, "--method", method, "--steps", "3", "--out", str(out))
    assert code == 2 and "Traceback" not in err and "ppo" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_method_names_ignore_case(tmp_path):
    code, _, err = run_cli("train", *TINY, "--method", "RANDOM", "--steps", "3", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["method"] == "random"


def test_bad_prior_leaves_no_directory(tmp_path):
    out = tmp_path / "deep" / "x"
    code, _, err = run_cli("train", *TINY, "--beta-train", "uniform:3:1", "--out", str(out))
    assert code == 2 and "A > B" in err
    assert not out.exists()


def test_failure_in_the_first_round_leaves_no_directory(tmp_path, monkeypatch):
    from thermogfn.gfn import GFlowNetTrainer

    def broken(self):
        raise ThermoGFNError("reward server down")

    monkeypatch.setattr(GFlowNetTrainer, "train_round", broken)
    with pytest.raises(ThermoGFNError, match="server down"):
        train(tiny_cfg(), tmp_path / "run", progress=False, plots=False)
    assert not (tmp_path / "run").exists()


def test_api_refuses_to_replace_a_run_unless_asked(tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(), out, progress=False)
    assert (out / "plots" / "training.png").is_file() and (out / "plots" / "conditioning.png").is_file()
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(ThermoGFNError, match="already holds a run"):
        train(tiny_cfg(), out, progress=False, plots=False)
    assert (out / "metrics.jsonl").read_text() == before and (out / "plots" / "training.png").is_file()
    replaced = train(RunConfig(**{**tiny_cfg().__dict__, "seed": 1}), out, progress=False, plots=False,
                     overwrite=True)
    assert replaced.step == 10 and json.loads((out / "config.json").read_text())["seed"] == 1


def test_resume_by_the_short_form(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", *TINY, "--steps", "10", "--out", str(out))[0] == 0
    code, _, err = run_cli("train", "--resume", str(out), "--steps", "20", "--no-progress")
    assert code == 0, err
    assert "trained 20 rounds" in err
    assert [r["step"] for r in RunDir(out).read_metrics()] == [5, 10, 15, 20]
    code, _, err = run_cli("train", "--resume", str(tmp_path / "nothing"), "--no-progress")
    assert code == 2 and "not a run directory" in err and not (tmp_path / "nothing").exists()


def test_interruption_hint_uses_the_short_form(tmp_path, monkeypatch):
    from thermogfn import loop

    class Stopped(loop.StopFlag):
        def __enter__(self):
            self.requested = True
            return self

    monkeypatch.setattr(loop, "StopFlag", Stopped)
    out = tmp_path / "run"
    code, _, err = run_cli("train", *TINY, "--steps", "10", "--out", str(out))
    assert code == 130 and f"thermogfn train --resume {out}`" in err
    assert RunDir(out).checkpoint_paths()[0].name == "step_00000001.pt"


def test_steps_must_be_positive(tmp_path):
    code, _, err = run_cli("train", *TINY, "--steps", "0", "--out", str(tmp_path / "run"))
    assert code == 2 and "--steps must be >= 1" in err and not (tmp_path / "run").exists()


def test_metrics_record_the_betas_drawn(tmp_path):
    out = tmp_path / "run"
    cfg = RunConfig(**{**tiny_cfg(30).__dict__, "beta_train": "uniform:1:3", "beta_explore": "constant:2.5"})
    train(cfg, out, progress=False, plots=False)
    rows = RunDir(out).read_metrics()
    assert all(r["beta_drawn_mean"] == pytest.approx(2.5) for r in rows)  # what the round drew
    assert all(r["beta_prior_mean"] == pytest.approx(2.0) for r in rows)  # where log_z is reported


def test_config_records_what_was_used(tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(), out, progress=False, plots=False)
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["ndim"], cfg["height"]) == (2, 4)
    (tmp_path / "gc.py").write_text("def reward(seqs):\n    return [1.0 + s.count('G') for s in seqs]\n")
    custom = RunConfig(task=f"{tmp_path / 'gc.py'}:reward", alphabet="ACGT", length=3, model=ModelConfig(hidden=16),
                       steps=2, batch_size=4, replay_batch=4)
    train(custom, tmp_path / "custom", progress=False, plots=False)
    cfg = json.loads((tmp_path / "custom" / "config.json").read_text())
    assert cfg["ndim"] is None and cfg["height"] is None and cfg["data_dir"] is None


def test_config_records_the_data_folder(tmp_path):
    from thermogfn.tasks.data import data_dir
    from thermogfn.tasks.tfbind8 import NPZ_NAME

    folder = data_dir(None, "tfbind8")
    if not (folder / NPZ_NAME).is_file():
        pytest.skip(f"TFBind8 data not found in {folder}; run `thermogfn data fetch tfbind8`")
    out = tmp_path / "run"
    train(RunConfig(task="tfbind8", steps=1, batch_size=4, replay_batch=4), out, progress=False, plots=False)
    assert Path(json.loads((out / "config.json").read_text())["data_dir"]) == folder


def test_full_disk_names_the_file_and_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = RunDir.save_checkpoint

    def full_after_first(self, step, state):
        if step > 10:
            raise OSError(28, "No space left on device", str(self.path / "checkpoints" / f"step_{step:08d}.pt"))
        return real(self, step, state)

    monkeypatch.setattr(RunDir, "save_checkpoint", full_after_first)
    with pytest.raises(ThermoGFNError) as info:
        train(tiny_cfg(20), out, progress=False, plots=False)
    msg = str(info.value)
    assert "step_00000020.pt" in msg and "No space left" in msg and "step_00000010.pt" in msg
    assert f"--resume {out}" in msg


def test_sample_reports_respects_umask_and_creates_only_its_own_folder(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", *TINY, "--steps", "5", "--out", str(run))[0] == 0
    old = os.umask(0o022)
    try:
        out = tmp_path / "new" / "s.csv"
        code, stdout, err = run_cli("sample", str(run), "--beta", "2", "-n", "7", "--out", str(out))
    finally:
        os.umask(old)
    assert code == 0, err
    assert "wrote 7 samples" in err and str(out) in err and stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    code, _, err = run_cli("sample", str(run), "--beta", "2", "--out", str(tmp_path / "a" / "b" / "s.csv"))
    assert code == 2 and "does not exist" in err and not (tmp_path / "a").exists()


def test_top100_over_fewer_distinct_samples_says_how_many():
    from thermogfn.metrics import sample_summary

    x = torch.tensor([[0, 0], [0, 0], [0, 0], [1, 1]])
    raw = torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64)
    summary = sample_summary(x, raw, None, None)
    assert summary["top100_n"] == 2 and summary["top100_reward"] == pytest.approx(1.5)
    assert summary["mean_reward"] == pytest.approx(1.75)


@pytest.mark.parametrize("extra,message", [
    (["--ls-iterations", "3"], "add --local-search"),
    (["--method", "sa", "--local-search", "2"], "baseline has none"),
    (["--method-param", "mutations=2"], "takes none"),
    (["--offline", "--local-search", "2"], "makes none"),
])
def test_options_that_do_not_apply_are_refused(tmp_path, extra, message):
    out = tmp_path / "run"
    code, _, err = run_cli("train", *TINY, "--steps", "2", *extra, "--out", str(out))
    assert code == 2 and message in err and not out.exists()


def test_resume_refuses_other_options_and_too_few_steps(tmp_path):
    out = tmp_path / "run"
    assert run_cli("train", *TINY, "--steps", "10", "--out", str(out))[0] == 0
    code, _, err = run_cli("train", "--resume", str(out), "--height", "6", "--task", "tfbind8")
    assert code == 2 and "drop --height, --task" in err
    code, _, err = run_cli("train", "--resume", str(out), "--steps", "5", "--no-progress")
    assert code == 2 and "already at round 10" in err


def test_a_custom_reward_run_loads_from_another_folder(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "gc.py").write_text("def reward(seqs):\n    return [1.0 + s.count('G') for s in seqs]\n")
    monkeypatch.chdir(tmp_path / "a")
    assert run_cli("train", "--task", "gc.py:reward", "--alphabet", "ACGT", "--length", "3", "--steps", "2",
                   "--no-progress", "--out", "run")[0] == 0
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("eval", "a/run", "--betas", "1", "--samples", "10")
    assert code == 0, err


def test_one_line_usage_errors_and_any_letter_case(tmp_path):
    code, _, err = run_cli("train", *TINY, "--kernel", "x", "--out", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error:")
    code, _, err = run_cli("train", *TINY, "--conditioning", "LOGIT", "--steps", "2", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["conditioning"] == "logit"
