"""Variable-length sequences (--min-length): objects of every length min_length..length, padded with the token K.

Checked: the object index (by length, then lexicographic, as the MDP enumerates), strings in and out, the exact DP
against brute-force enumeration of every path, training towards R^beta/Z over all lengths, the command line
(train, sample, eval, resume), offline data, diversity, uniform random objects, and every refusal."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from cli_helpers import FEW, assert_clean, assert_one_line, custom_reward_file, garbage, new_dir, run_cli
from hypothesis import given
from hypothesis import strategies as st
from test_exact import random_model

from thermogfn.config import ModelConfig, RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.exact import exact_metrics, target_distribution, terminal_distribution
from thermogfn.gfn import GFlowNetTrainer
from thermogfn.kernels import enumerate_trajectories, path_log_probs
from thermogfn.loop import train
from thermogfn.mdp import make_mdp
from thermogfn.offline_data import bottom_half, read_offline_data
from thermogfn.tasks import make_task
from thermogfn.tasks.custom import CustomTask

TINY = {"batch_size": 8, "replay_batch": 8, "log_every": 1, "checkpoint_every": 1, "seed": 1,
        "model": ModelConfig(hidden=16, layers=1)}


def peptide(seqs: list[str]) -> np.ndarray:
    """A peptide-like reward: charge (K, R) helps, length near 3 helps."""
    return np.array([1.0 + s.count("K") + 2 * s.count("R") + 2.0 / (1 + abs(len(s) - 3)) for s in seqs])


def abc(min_length: int = 2, length: int = 4) -> CustomTask:
    return CustomTask(peptide, "AKR", length, name="pep", min_length=min_length)


# ---------------------------------------------------------------------------------------------- objects
def test_index_by_length_then_lexicographic_as_the_mdp_enumerates():
    task = abc()
    assert task.variable_length and task.min_length == 2 and task.n_objects == 9 + 27 + 81
    x = task.all_objects()
    strings = task.decode(x)
    assert strings[:4] == ["AA", "AK", "AR", "KA"] and strings[9] == "AAA" and strings[-1] == "RRRR"
    assert [len(s) for s in strings] == [2] * 9 + [3] * 27 + [4] * 81
    assert len(set(strings)) == task.n_objects and not any("\x00" in s for s in strings)
    assert torch.equal(task.object_index(x), torch.arange(task.n_objects))
    assert torch.equal(task.encode(strings), x)
    assert torch.equal(x[0], torch.tensor([0, 0, 3, 3]))  # left-aligned, padded with K = 3
    # the MDP's levels min..L, in order, are the objects in index order
    mdp = make_mdp("prepend-append", 3, 4, min_length=2)
    levels = torch.cat(mdp.states_by_level()[2:])
    assert torch.equal(task.object_index(mdp.terminal_object(levels)), torch.arange(task.n_objects))
    assert mdp.log_n_objects == pytest.approx(math.log(task.n_objects))
    # the reward function gets the strings as they are
    assert torch.equal(task.table(), torch.from_numpy(peptide(strings)))


@pytest.mark.parametrize("k,length,lo", [(1, 4, 2), (2, 5, 1), (4, 3, 2), (5, 2, 1), (3, 3, 3)])
def test_index_is_a_bijection_in_mdp_order(k, length, lo):
    task = CustomTask(lambda s: np.ones(len(s)), "ABCDE"[:k], length, min_length=lo)
    assert task.n_objects == sum(k**n for n in range(lo, length + 1))
    x = task.all_objects()
    assert torch.equal(task.object_index(x), torch.arange(task.n_objects))
    assert torch.equal(task.encode(task.decode(x)), x)
    mdp = make_mdp("prepend-append", k, length, min_length=lo)
    stops = torch.cat(mdp.states_by_level()[lo:])
    assert torch.equal(mdp.terminal_object(stops), x)
    assert mdp.forward_mask(stops)[:, mdp.stop].all()


def test_a_fixed_length_task_is_unchanged():
    fixed, same = CustomTask(peptide, "AKR", 4), CustomTask(peptide, "AKR", 4, min_length=4)
    assert not same.variable_length and same.n_objects == fixed.n_objects == 81
    assert torch.equal(same.all_objects(), fixed.all_objects())
    with pytest.raises(ThermoGFNError, match="exactly 4 characters"):
        same.encode(["AK"])


@pytest.mark.parametrize("bad", ["A", "AKRAK", "AXK"])
def test_encode_names_the_allowed_lengths(bad):
    with pytest.raises(ThermoGFNError) as info:
        abc().encode(["AK", bad])
    assert_one_line(info.value)
    assert repr(bad) in str(info.value) and ("2 to 4 characters" in str(info.value) or "alphabet" in str(info.value))


def test_token_keys_beyond_int64_hold_the_pad():
    task = CustomTask(peptide, "ACDEFGHIKLMNPQRSTVWY", 64, min_length=10)
    assert not task.indexable and task.key_dtype == torch.uint8
    x = task.encode(["ACDEFGHIKL", "W" * 64, "K" * 33])
    assert torch.equal(task.objects_from_keys(task.object_keys(x)), x)
    assert [len(s) for s in task.decode(x)] == [10, 64, 33]
    assert int(task.lengths(x).sum()) == 107


def test_uniform_objects_weigh_each_length_by_its_count():
    task = abc()
    x = task.uniform_objects(30_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(task.lengths(x), minlength=5)[2:].double() / 30_000
    want = torch.tensor([9, 27, 81], dtype=torch.float64) / 117
    assert torch.allclose(counts, want, atol=0.01)
    assert set(task.decode(x[:200])) <= set(task.decode(task.all_objects()))


def test_diversity_is_levenshtein_on_the_strings():
    task = abc()
    x = task.encode(["AK", "AKR", "RKA"])
    # AK-AKR 1 (insert), AK-RKA 2, AKR-RKA 2: mean 5/3
    assert task.diversity(x) == pytest.approx(5 / 3)


# ---------------------------------------------------------------------------------------------- exact
@pytest.mark.parametrize("kind", ["prepend-append", "append"])
def test_exact_dp_matches_brute_force_paths(kind):
    """Alphabet 3, lengths 2..4: the DP's terminal distribution sums to 1 and equals the sum over every complete
    trajectory (enumerated) of its P_F; stops happen at every allowed length; the target covers every length."""
    task = abc()
    mdp = make_mdp(kind, 3, 4, min_length=2)
    model = random_model(mdp, "logit+layer", "positive", seed=3, beta=2.0)
    p = terminal_distribution(model, task, 2.0)
    assert p.shape == (117,) and float(p.sum()) == pytest.approx(1.0, abs=1e-6)
    traj = enumerate_trajectories(mdp, 2.0)
    assert set(traj.n.tolist()) == {2, 3, 4}
    log_pf, _ = path_log_probs(model, traj)
    brute = torch.zeros(117, dtype=torch.float64).index_add_(0, task.object_index(traj.objects), log_pf.exp())
    assert torch.allclose(p, brute, atol=1e-6, rtol=0)
    per_length = [float(p[task.lengths(task.all_objects()) == n].sum()) for n in (2, 3, 4)]
    assert all(m > 0.01 for m in per_length)
    q, log_z = target_distribution(task, 2.0)
    raw = torch.from_numpy(peptide(task.decode(task.all_objects())))
    assert log_z == pytest.approx(float(torch.logsumexp(2.0 * raw.log(), 0)))
    assert torch.allclose(q, raw**2 / (raw**2).sum())


def test_training_lowers_exact_tv():
    task = abc()
    trainer = GFlowNetTrainer(RunConfig(task="pep", steps=150, batch_size=16, replay_batch=16, seed=0,
                                        beta_train="uniform:1:2", model=ModelConfig(hidden=32)), task)
    before = exact_metrics(trainer.model, task, 1.5)["tv"]
    while trainer.step < 150:
        trainer.train_round()
    after = exact_metrics(trainer.model, task, 1.5)
    assert after["mass"] == pytest.approx(1.0, abs=1e-6)
    assert after["tv"] < 0.5 * before and after["tv"] < 0.15, (before, after["tv"])


# ---------------------------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def reward_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("reward") / "peptide.py"
    path.write_text("import numpy as np\n\ndef reward(seqs):\n"
                    "    return np.array([1.0 + s.count('K') + 2 * s.count('R') + 2.0 / (1 + abs(len(s) - 3))"
                    " for s in seqs])\n")
    return path


def _train_args(reward_file, out, *extra):
    return ("train", "--task", f"{reward_file}:reward", "--alphabet", "AKR", "--length", "4", "--hidden", "16",
            "--layers", "1", "--batch-size", "8", "--replay-batch", "8", "--no-progress", "--out", str(out), *extra)


def test_cli_train_sample_eval_resume(reward_file, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(*_train_args(reward_file, run, "--min-length", "2", "--steps", "3",
                                        "--checkpoint-every", "1"))
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["min_length"] == 2 and RunConfig.from_dict(cfg).identity()["min_length"] == 2
    code, out, err = run_cli("sample", str(run), "--beta", "2", "-n", "40")
    assert code == 0, err
    rows = [line.split(",") for line in out.splitlines()[1:]]
    assert len(rows) == 40 and all(2 <= len(s) <= 4 and set(s) <= set("AKR") for s, _ in rows)
    assert len({len(s) for s, _ in rows}) > 1
    assert all(float(r) == pytest.approx(float(peptide([s])[0]), rel=1e-5) for s, r in rows)
    code, out, err = run_cli("eval", str(run), "--betas", "1,2", "--samples", "50", "--json")
    assert code == 0, err
    res = json.loads(out)["betas"]["2"]
    assert 0 <= res["tv"] <= 1 and res["mass"] == pytest.approx(1.0, abs=1e-6) and res["top100_diversity"] > 0
    # resume keeps min_length; a checkpoint from another min_length is refused
    code, _, err = run_cli("train", "--resume", str(run), "--steps", "4", "--no-progress")
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["min_length"] == 2
    code, _, err = run_cli("train", "--resume", str(run), "--min-length", "3", "--no-progress")
    assert assert_clean(code, "", err) == "error" and "--min-length" in err
    cfg["min_length"] = 3
    (run / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli("train", "--resume", str(run), "--steps", "5", "--no-progress")
    assert assert_clean(code, "", err) == "error" and "another task or config" in err


def test_resume_is_bit_identical(tmp_path):
    task = abc()
    cfg = RunConfig(task="pep", min_length=2, steps=4, **TINY)
    straight = train(cfg, tmp_path / "straight", task=task, progress=False, plots=False)
    train(RunConfig(task="pep", min_length=2, steps=2, **TINY), tmp_path / "split", task=task, progress=False,
          plots=False)
    resumed = train(cfg, tmp_path / "split", task=task, progress=False, plots=False, resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert torch.equal(torch.cat(straight.samples), torch.cat(resumed.samples))
    assert straight.cfg.min_length == 2 and RunConfig.from_dict(straight.cfg.to_dict()) == straight.cfg


def test_min_length_equal_to_length_is_todays_fixed_length_run(tmp_path):
    a = train(RunConfig(task="pep", steps=3, **TINY), tmp_path / "a", task=CustomTask(peptide, "AKR", 4),
              progress=False, plots=False)
    b = train(RunConfig(task="pep", steps=3, min_length=4, **TINY), tmp_path / "b",
              task=CustomTask(peptide, "AKR", 4, min_length=4), progress=False, plots=False)
    assert a.cfg == b.cfg and a.cfg.min_length is None
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert torch.equal(torch.cat(a.samples), torch.cat(b.samples))


@pytest.mark.parametrize("task,extra,needle", [
    ("tfbind8", (), "task tfbind8 scores strings of one length"),
    ("qm9str", (), "task qm9str scores strings of one length"),
    ("hypergrid", (), "task hypergrid scores points of a fixed dimension"),
    ("custom", ("--min-length", "0"), "--min-length must be an integer in 1..4"),
    ("custom", ("--min-length", "5"), "--min-length must be an integer in 1..4"),
    ("custom", ("--method", "mcmc"), "the mcmc baseline's point mutations keep a sequence's length"),
    ("custom", ("--method", "sa"), "the sa baseline's point mutations keep a sequence's length"),
])
def test_refusals_are_one_line(reward_file, tmp_path, task, extra, needle):
    if task == "custom":
        args = _train_args(reward_file, tmp_path / "run", "--steps", "1", *extra)
        if "--min-length" not in extra:
            args = (*args, "--min-length", "2")
    else:
        args = ("train", "--task", task, "--min-length", "3", "--steps", "1", "--no-progress", "--out",
                str(tmp_path / "run"))
    code, out, err = run_cli(*args)
    assert assert_clean(code, out, err) == "error" and needle in err, err
    assert "drop --min-length" in err or "1..4" in err
    assert not (tmp_path / "run").exists()


@FEW
@given(min_length=st.one_of(st.integers(-3, 9).map(str), garbage))
def test_min_length_fuzz(min_length):
    code, out, err = run_cli("train", "--task", f"{custom_reward_file}:reward", "--alphabet", "AB", "--length", "3",
                             f"--min-length={min_length}", "--steps", "1", "--hidden", "8", "--layers", "1",
                             "--batch-size", "2", "--replay-batch", "0", "--no-progress", "--out",
                             str(new_dir() / "run"))
    assert assert_clean(code, out, err) in ("ok", "usage", "error")
    if code == 0:
        assert 1 <= int(min_length) <= 3


def test_task_object_and_config_must_agree(tmp_path):
    with pytest.raises(ThermoGFNError, match="does not match the task object's min_length 2"):
        train(RunConfig(task="pep", min_length=3, steps=1, **TINY), tmp_path / "r", task=abc(), progress=False)
    with pytest.raises(ThermoGFNError, match="drop --min-length"):
        make_task("tfbind8", min_length=8)


# ---------------------------------------------------------------------------------------------- offline data
def test_offline_data_of_several_lengths(tmp_path):
    task = abc()
    path = tmp_path / "data.csv"
    path.write_text("sequence,reward\nAK,2.0\nAKR,3.5\nRRRR,1.5\n")
    x, raw = read_offline_data(str(path), task)
    assert task.decode(x) == ["AK", "AKR", "RRRR"] and raw.tolist() == [2.0, 3.5, 1.5]
    path.write_text("sequence,reward\nAK,2.0\nA,3.5\n")
    with pytest.raises(ThermoGFNError, match=r"line 3: sequence 'A' has length 1; sequences must have 2 to 4"):
        read_offline_data(str(path), task)
    x, raw = bottom_half(task)
    assert torch.equal(raw, task.table()[task.object_index(x)]) and len(set(task.lengths(x).tolist())) > 1


def test_offline_training_on_shorter_sequences(tmp_path):
    task = abc()
    path = tmp_path / "data.csv"
    path.write_text("sequence,reward\n" + "".join(f"{s},{r}\n" for s, r in
                                                  zip(["AK", "KR", "AKR", "RRKA"], peptide(["AK", "KR", "AKR", "RRKA"]),
                                                      strict=True)))
    trainer = train(RunConfig(task="pep", steps=3, offline=True, offline_data=str(path), **TINY), tmp_path / "r",
                    task=task, progress=False, plots=False)
    assert trainer.step == 3 and trainer.oracle.calls == 0


# ---------------------------------------------------------------------------------------------- RNA
try:
    import RNA  # noqa: F401
except ImportError:
    HAVE_RNA = False
else:
    HAVE_RNA = True


@pytest.mark.skipif(not HAVE_RNA, reason="ViennaRNA not installed (pip install 'thermogfn[rna]')")
def test_rna_scores_shorter_sequences(tmp_path):
    from thermogfn.tasks.rna import RNABindingTask, fold_fitness

    task = RNABindingTask(2, workers=1, min_length=10)
    seqs = ["GGGGGCCCCG", "GGGGGCCCCGCGCG", "UCGAUCGAUCGA"]
    x = task.encode(seqs)
    assert task.decode(x) == seqs and task.lengths(x).tolist() == [10, 14, 12]
    want = fold_fitness((task.targets, task.norms, seqs))
    assert task.raw_reward(x).tolist() == pytest.approx(want)
    with pytest.raises(ThermoGFNError, match="10 to 14 characters"):
        task.encode(["GGGCC"])
    rule = task.mode_rule()
    rule.update(x, torch.full((3,), 10.0))
    assert rule.n_found == 3  # padded rows compare position by position (lengths differ: far apart)
    with pytest.raises(ThermoGFNError, match="--min-length must be an integer in 1..14"):
        RNABindingTask(2, min_length=15)
    code, out, err = run_cli("train", "--task", "rna2", "--min-length", "12", "--hidden", "16", "--layers", "1",
                             "--batch-size", "4", "--replay-batch", "4", "--steps", "2", "--no-progress", "--out",
                             str(tmp_path / "run"))
    assert code == 0, err
    code, out, err = run_cli("sample", str(tmp_path / "run"), "--beta", "1", "-n", "30")
    assert code == 0, err
    assert all(12 <= len(line.split(",")[0]) <= 14 for line in out.splitlines()[1:])
