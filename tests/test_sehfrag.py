"""The fragment-graph sEH task end to end: rewards of MDP-built molecules equal the reference proxy scores, the
Tanimoto mode rule, training / sampling / corrected sampling / evaluation / bench from the command line, the
baselines that apply, and one-line refusals. Needs ``../shared/data/seh_proxy`` and RDKit (skips with the reason
otherwise)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

from thermogfn.config import RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.mdp import task_mdp
from thermogfn.methods import make_trainer
from thermogfn.tasks import fragments, seh_proxy
from thermogfn.tasks.data import data_dir
from thermogfn.tasks.seh_proxy import seh_reward

DATA = data_dir(None, fragments.FOLDER)
REFERENCE = DATA / "reference_scores.csv"
pytestmark = [
    pytest.mark.skipif(not all((DATA / f).is_file() for f in (fragments.VOCAB_NAME, seh_proxy.PARAMS_NAME,
                                                             REFERENCE.name)),
                       reason=f"sEH proxy data not found in {DATA}; run `thermogfn data fetch sehfrag`"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def task():
    pytest.importorskip("rdkit", reason="RDKit missing: pip install 'thermogfn[chem]'")
    from thermogfn.tasks.sehfrag import SEHFragTask

    return SEHFragTask()


@pytest.fixture(scope="module")
def reference_objects(task):
    """The first 64 reference molecules as the MDP's canonical objects, with their recursionpharma scores."""
    mdp = task_mdp("fragments", task)
    with open(REFERENCE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:64]
    states = torch.stack([mdp.from_blocks(json.loads(r["blockidxs"]), json.loads(r["jbonds"])) for r in rows])
    scores = torch.tensor([float(r["proxy_zero_mask"]) for r in rows], dtype=torch.float64)
    return mdp.terminal_object(states), scores, [r["smiles"] for r in rows]


def test_rewards_of_mdp_built_molecules_are_the_reference_scores(task, reference_objects):
    x, scores, smiles = reference_objects
    assert task.decode(x) == smiles
    expected = seh_reward(scores, "clip")
    assert torch.allclose(task.raw_reward(x), expected, rtol=0, atol=5e-6)  # the proxy runs in float32
    assert task.invalid_molecules == 0


def test_tanimoto_mode_rule_keeps_dissimilar_high_reward_molecules(task, reference_objects):
    x, _, _ = reference_objects
    rule = task.mode_rule()
    assert rule.threshold == pytest.approx(0.9)
    high = torch.full((x.shape[0],), 1.0, dtype=torch.float64)
    n = rule.count_in(x, None, high)
    assert 1 <= n <= x.shape[0]
    # a repeat of the same molecules adds nothing; low rewards are never modes
    assert rule.update(x, high) == n and rule.update(x, high) == 0
    assert rule.count_in(x, None, torch.full_like(high, 0.5)) == 0
    fresh = task.mode_rule()
    fresh.load_state_dict(rule.state_dict())
    assert fresh.n_found == n and fresh.update(x, high) == 0
    assert 0.5 < task.diversity(x) < 1.0


def test_train_sample_and_corrected_sample_from_the_command_line(tmp_path: Path):
    out = tmp_path / "run"
    code, _, err = run_cli("train", "--task", "sehfrag", "--steps", "3", "--batch-size", "4", "--hidden", "16",
                           "--architecture", "graph", "--beta-train", "uniform:1:64", "--no-progress",
                           "--out", str(out))
    assert code == 0, err
    code, stdout, err = run_cli("sample", str(out), "--beta", "32", "-n", "5")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert len(rows) == 5
    from rdkit import Chem

    from thermogfn.tasks.seh_proxy import SEHProxy

    rescored = seh_reward(SEHProxy.load()([Chem.MolFromSmiles(r["smiles"]) for r in rows]), "clip")
    assert torch.allclose(torch.tensor([float(r["reward"]) for r in rows]), rescored.float(), rtol=1e-4)
    code, stdout, err = run_cli("sample", str(out), "--beta", "32", "-n", "3", "--correct", "mh", "--burn-in", "3")
    assert code == 0, err
    assert len(list(csv.DictReader(io.StringIO(stdout)))) == 3
    code, stdout, err = run_cli("eval", str(out), "--betas", "8,32", "--samples", "16")  # no exact evaluation here
    assert code == 0, err
    row = next(line for line in stdout.splitlines() if line.startswith("| 32 |")).split("|")
    header = next(line for line in stdout.splitlines() if "mean_reward" in line).split("|")
    assert 1e-4 <= float(row[header.index(" mean_reward ")]) <= 100
    assert "tv" not in header


def test_bench_with_a_graph_policy_and_a_baseline(tmp_path: Path):
    out = tmp_path / "bench"
    code, stdout, err = run_cli("bench", "mode-seeking", "--task", "sehfrag", "--methods", "logit,random",
                                "--architecture", "graph", "--seeds", "1", "--rounds", "2", "--batch-size", "4",
                                "--hidden", "16", "--out", str(out))
    assert code == 0, err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["method"] for r in rows} == {"logit", "random"} and all(float(r["top100_reward"]) > 0 for r in rows)
    assert json.loads((out / "runs" / "logit-s0" / "config.json").read_text())["model"]["architecture"] == "graph"


@pytest.mark.parametrize("method", ["random", "ppo"])
def test_baselines_over_the_fragment_mdp(task, method):
    trainer = make_trainer(RunConfig(task="sehfrag", method=method, batch_size=4, steps=2), task)
    for _ in range(2):
        trainer.train_round()
    x = torch.cat(trainer.samples)
    assert x.shape[0] == 8
    mdp = task_mdp("fragments", task)
    assert bool((mdp.n_blocks(mdp.terminal_state(task.objects_from_keys(x))) >= 2).all())


def test_refusals_are_one_line(task, tmp_path: Path):
    with pytest.raises(ThermoGFNError, match="mutates tokens"):
        make_trainer(RunConfig(task="sehfrag", method="mcmc", steps=1), task)
    with pytest.raises(ThermoGFNError, match="unknown sEH reward transform"):
        type(task)(transform="square")
    with pytest.raises(ThermoGFNError, match="cannot be read from strings"):
        task.encode(["CCO"])
    code, _, err = run_cli("train", "--task", "sehfrag", "--architecture", "transformer", "--steps", "1",
                           "--out", str(tmp_path / "refused"))
    assert code == 2 and "transformer" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "refused").exists()
