"""The two protocol commands on tiny budgets: outputs written, completed runs reused on a repeat."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from cli_helpers import run_cli

TINY = ["--task", "hypergrid", "--seeds", "2", "--hidden", "16", "--batch-size", "4"]


def test_mode_seeking_writes_tables_and_plots_and_reuses_runs(tmp_path: Path, monkeypatch, capsys):
    out = tmp_path / "bench"
    args = ["bench", "mode-seeking", *TINY, "--methods", "logit,none", "--rounds", "8", "--checkpoints", "4,8",
            "--out", str(out)]
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * 2 * 2  # methods x seeds x checkpoints
    assert {r["method"] for r in rows} == {"logit", "none"} and {r["round"] for r in rows} == {"4", "8"}
    assert all(int(r["reward_calls"]) == 4 * int(r["round"]) for r in rows)
    assert all(float(r["top100_reward"]) > 0 for r in rows)
    for png in ("modes.png", "top100_reward.png", "g_beta.png"):
        assert (out / png).stat().st_size > 1000, png
    assert "| logit | 8 |" in stdout and "±" in stdout
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoints/*.pt")}
    code, _, err = run_cli(*args)
    assert code == 0 and err.count("reusing") == 4
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoints/*.pt")}


def test_offline_reports_each_beta_with_exact_tv(tmp_path: Path, monkeypatch, capsys):
    out = tmp_path / "offline"
    code, stdout, err = run_cli("bench", "offline", *TINY, "--methods", "logit,layer",
                                "--rounds", "6", "--betas", "1,10,100", "--samples", "64", "--out", str(out))
    assert code == 0, err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * 2 * 3
    assert all(0 <= float(r["tv"]) <= 1 for r in rows)
    for png in ("top100_reward_vs_beta.png", "tv_vs_beta.png"):
        assert (out / png).stat().st_size > 1000
    assert all((out / "runs" / f"{m}-s{s}" / "eval_offline.json").is_file() for m in ("logit", "layer")
               for s in (0, 1))


def test_unknown_method_is_one_line(tmp_path: Path, monkeypatch, capsys):
    code, _, err = run_cli("bench", "mode-seeking", *TINY, "--methods", "logit,nope",
                           "--out", str(tmp_path))
    assert code == 2 and err.startswith("error: unknown method 'nope'") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["mode-seeking", "--checkpoints", "a"], "not a comma-separated list"),
    (["mode-seeking", "--rounds", "0"], "--rounds must be at least 1"),
    (["mode-seeking", "--jobs", "0"], "--jobs must be at least 1"),
    (["mode-seeking", "--methods", "logit,LOGIT"], "more than once"),
    (["offline", "--methods", "logit,ppo"], "needs them"),
])
def test_bench_bad_input_before_any_training(tmp_path, args, message):
    out = tmp_path / "b"
    code, _, err = run_cli("bench", *args, "--task", "hypergrid", "--seeds", "1", "--out", str(out))
    assert code == 2 and message in err and not (out / "runs").exists()
