"""Run directories: a corrupt config.json is one line and a non-zero exit, and no failing command damages a finished
run (config.json, metrics.jsonl, checkpoints/ stay byte-identical)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from cli_helpers import HOSTILE_TMP, TINY_HYPERGRID, assert_clean, new_dir, run_cli


@pytest.mark.parametrize("text", ['"str"', '{"steps": "x"}', '{"model": {"hidden": "x"}}', "[1]", "{", "\x00\xff",
                                  '{"task": 3}', '{"unknown": 1}', "null", "3"])
def test_corrupt_config_json(text, tmp_path):
    (tmp_path / "config.json").write_text(text, errors="surrogateescape")
    result = run_cli("eval", str(tmp_path))
    assert result[0] != 0
    assert_clean(*result)


def _snapshot(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}


FAILING = {
    "resume negative steps": ["--resume", "--steps", "-3", "--no-progress"],
    "resume bad steps": ["--resume", "--steps", "x", "--no-progress"],
    "overwrite bad beta": ["--overwrite", *TINY_HYPERGRID, "--steps", "2", "--beta-train", "uniform:3:1"],
    "overwrite bad explore": ["--overwrite", *TINY_HYPERGRID, "--steps", "2", "--beta-explore", "normal:1"],
    "overwrite bad eps": ["--overwrite", *TINY_HYPERGRID, "--steps", "2", "--eps", "2"],
    "overwrite bad task": ["--overwrite", "--task", "nope", "--steps", "2", "--no-progress"],
    "overwrite missing data": ["--overwrite", "--task", "tfbind8", "--data-dir", "/nonexistent", "--no-progress"],
    "plain train on a run": [*TINY_HYPERGRID, "--steps", "2"],
    "overwrite missing offline data": ["--overwrite", *TINY_HYPERGRID, "--steps", "2", "--offline", "--offline-data",
                                       "/nonexistent.csv"],
    "overwrite nan reward": ["--overwrite", "--task", "{nan}", "--alphabet", "AB", "--length", "3", "--steps", "2",
                             "--no-progress"],
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_failing_command_leaves_the_run_intact(case, finished_run):
    run = new_dir() / "run"
    shutil.copytree(finished_run, run)
    nan_file = HOSTILE_TMP / "reward_nan.py"
    nan_file.write_text("import numpy as np\n\ndef reward(seqs):\n    return np.full(len(seqs), np.nan)\n")
    before = _snapshot(run)
    assert {"config.json", "metrics.jsonl"} <= set(before) and any(k.startswith("checkpoints/") for k in before)
    args = [a.replace("{nan}", f"{nan_file}:reward") for a in FAILING[case]]
    code, out, err = run_cli("train", *args, "--out", str(run))
    assert code != 0
    assert_clean(code, out, err)
    assert _snapshot(run) == before
