"""Spaces too large for int64 indices (20 letters at length 64 and 256, DNA at length 200): objects are keyed by
their tokens, so they train, sample, evaluate and resume; the reward function scores each sequence once."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.evaluate import draw_samples, evaluate, load_run
from thermogfn.loop import train
from thermogfn.mdp import PrependAppendMDP
from thermogfn.replay import ReplayBuffer
from thermogfn.rundir import RunDir
from thermogfn.tasks.base import hashable_keys
from thermogfn.tasks.custom import CustomTask

PROTEIN = "ACDEFGHIKLMNPQRSTVWY"
TINY = {"batch_size": 8, "replay_batch": 8, "log_every": 1, "checkpoint_every": 1, "seed": 1,
        "model": ModelConfig(hidden=16, layers=1)}


class CountingReward:
    """``1 + count of W`` per sequence, remembering how often each sequence was scored."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, seqs: list[str]) -> np.ndarray:
        self.calls.update(seqs)
        return np.array([1.0 + s.count("W") for s in seqs])


def _cfg(length: int, steps: int, alphabet: str = PROTEIN, **kw) -> RunConfig:
    return RunConfig(task="custom", alphabet=alphabet, length=length, steps=steps, **{**TINY, **kw})


def test_keys_by_tokens_beyond_int64():
    small, big = CustomTask(np.ones_like, "AB", 3), CustomTask(np.ones_like, PROTEIN, 64)
    assert small.indexable and small.object_keys(small.encode(["BAB"])).tolist() == [5]
    assert not big.indexable and big.n_objects == 20**64
    x = torch.randint(20, (5, 64), generator=torch.Generator().manual_seed(0))
    keys = big.object_keys(x)
    assert keys.dtype == torch.uint8 and keys.shape == (5, 64)
    assert torch.equal(big.objects_from_keys(keys), x)
    assert torch.equal(big.keys_from_hashable(hashable_keys(keys)), keys)
    assert len(set(hashable_keys(torch.cat([keys, keys])))) == 5
    with pytest.raises(ValueError, match="object_keys"):
        big.object_index(x)
    mdp = PrependAppendMDP(20, 256)
    assert mdp.log_n_objects == pytest.approx(256 * np.log(20)) and mdp.n_states() > 2**1000
    with pytest.raises(ValueError, match="int64"):
        mdp.state_index(mdp.initial(1))


def test_replay_dedups_token_keys():
    buf = ReplayBuffer(64)
    x = torch.randint(20, (4, 64), generator=torch.Generator().manual_seed(0))
    x = torch.cat([x, x[:2]])
    buf.add(x, torch.zeros(6, dtype=torch.float64), x.to(torch.uint8))
    assert len(buf) == 4


def test_protein_64_trains_samples_evaluates_and_resumes(tmp_path):
    whole = CountingReward()
    task = CustomTask(whole, PROTEIN, 64)
    ref = train(_cfg(64, 4), tmp_path / "whole", task=task, progress=False, plots=False)
    assert max(whole.calls.values()) == 1 and sum(whole.calls.values()) == len(whole.calls) > 0
    assert ref.oracle.calls == 4 * 8

    parts = CountingReward()
    task2 = CustomTask(parts, PROTEIN, 64)
    train(_cfg(64, 2), tmp_path / "parts", task=task2, progress=False, plots=False)
    resumed = train(_cfg(64, 4), tmp_path / "parts", task=task2, progress=False, plots=False, resume=True)
    assert max(parts.calls.values()) == 1 and parts.calls == whole.calls
    a, b = (RunDir(tmp_path / d).load_latest_checkpoint() for d in ("whole", "parts"))
    for key, value in a["method"]["model"].items():
        assert torch.equal(value, b["method"]["model"][key]), key
    assert torch.equal(a["samples"], b["samples"]) and a["samples"].shape == (32, 64)
    assert torch.equal(a["reward_cache"]["keys"], b["reward_cache"]["keys"])
    assert torch.equal(a["method"]["buffer"]["x"], b["method"]["buffer"]["x"])
    assert torch.equal(torch.cat(resumed.samples), torch.cat(ref.samples))

    x, raw = draw_samples(resumed, 1.0, 10)
    assert x.shape == (10, 64) and torch.equal(raw, task.raw_reward(x))
    result = evaluate(load_run(tmp_path / "parts", task2), [1.0], None, 50)["betas"]["1"]
    assert result["n"] == 50 and "tv" not in result and np.isfinite(result["log_z_is"])


def test_protein_256_and_dna_200_through_the_cli(tmp_path):
    reward = tmp_path / "reward.py"
    reward.write_text("import numpy as np\n\ndef reward(seqs):\n"
                      "    return np.array([1.0 + s.count('W') + s.count('G') for s in seqs])\n")
    small = ["--hidden", "8", "--layers", "1", "--batch-size", "4", "--replay-batch", "4", "--no-progress"]
    for alphabet, length in ((PROTEIN, 256), ("ACGT", 200)):
        run = tmp_path / f"run{length}"
        code, _, err = run_cli("train", "--task", f"{reward}:reward", "--alphabet", alphabet, "--length",
                               str(length), "--steps", "2", *small, "--out", str(run))
        assert code == 0, err
    run = tmp_path / "run256"
    code, _, err = run_cli("train", "--resume", str(run), "--steps", "3")
    assert code == 0, err
    out = tmp_path / "samples.csv"
    code, _, err = run_cli("sample", str(run), "--beta", "1", "-n", "5", "--out", str(out))
    assert code == 0, err
    rows = list(csv.reader(out.open()))[1:]
    assert len(rows) == 5 and all(len(r[0]) == 256 and set(r[0]) <= set(PROTEIN) for r in rows)
    code, stdout, err = run_cli("eval", str(run), "--betas", "1", "--samples", "50", "--json")
    assert code == 0, err
    result = json.loads(stdout)["betas"]["1"]
    assert result["n"] == 50 and "tv" not in result
    code, _, err = run_cli("eval", str(run), "--exact", "--samples", "0")
    assert code != 0 and "Drop --exact" in err and len(err.strip().splitlines()) == 1

