"""RNA binding tasks (ViennaRNA) and the threshold mode rule."""

from __future__ import annotations

import pytest
import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.modes import ThresholdModeRule
from thermogfn.tasks.data import data_dir

try:
    import RNA  # noqa: F401
except ImportError:
    HAVE_RNA = False
else:
    HAVE_RNA = True

needs_rna = pytest.mark.skipif(not HAVE_RNA, reason="ViennaRNA not installed (pip install 'thermogfn[rna]')")
RNA_DIR = data_dir(None, "rna")
needs_data = pytest.mark.skipif(not (RNA_DIR / "modes_rna1.txt").is_file(), reason=f"no RNA data in {RNA_DIR}")


@pytest.fixture(scope="module")
def rna1():
    from thermogfn.tasks.rna import RNABindingTask

    task = RNABindingTask(1, workers=2)
    yield task
    task.close()


# -- ThresholdModeRule ---------------------------------------------------------------------------------
def _x(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[int(c) for c in r] for r in rows])


def test_mode_rule_greedy_in_arrival_order() -> None:
    rule = ThresholdModeRule(threshold=0.5, min_distance=2)
    x = _x(["0000", "0001", "0011", "1111", "0000"])
    raw = torch.tensor([0.9, 1.0, 0.6, 0.4, 0.9])
    # 0000 accepted; 0001 at distance 1 rejected (arrival order, not reward order); 0011 at distance 2
    # accepted; 1111 below threshold; the repeated 0000 is not new.
    assert rule.update(x, raw) == 2
    assert rule.modes.tolist() == [[0, 0, 0, 0], [0, 0, 1, 1]]
    assert rule.mode_rewards.tolist() == pytest.approx([0.9, 0.6])
    assert rule.update(_x(["1100", "0010"]), torch.tensor([0.5, 0.7])) == 1  # 0010 is 1 away from 0000/0011
    assert rule.n_found == 3
    assert rule.count(x, raw) == 2 and rule.n_found == 3  # count() leaves the state alone


def test_mode_rule_distance_and_threshold() -> None:
    x = _x(["000", "011", "111"])
    raw = torch.ones(3)
    assert ThresholdModeRule(1.0, 1).count(x, raw) == 3
    assert ThresholdModeRule(1.0, 2).count(x, raw) == 2
    assert ThresholdModeRule(1.0, 3).count(x, raw) == 2  # 000 and 111
    assert ThresholdModeRule(1.0, 4).count(x, raw) == 1
    assert ThresholdModeRule(1.5, 1).count(x, raw) == 0
    with pytest.raises(ValueError, match="min_distance"):
        ThresholdModeRule(0.5, 0)
    with pytest.raises(ValueError, match="expected x"):
        ThresholdModeRule(0.5, 1).update(x, torch.ones(2))


def test_mode_rule_state_round_trip() -> None:
    rule = ThresholdModeRule(0.5, 2)
    rule.update(_x(["0000", "0011", "1100"]), torch.tensor([0.7, 0.8, 0.2]))
    other = ThresholdModeRule(0.5, 2)
    other.load_state_dict(rule.state_dict())
    assert torch.equal(other.modes, rule.modes) and torch.equal(other.mode_rewards, rule.mode_rewards)
    assert other.update(_x(["0001", "1111"]), torch.tensor([0.9, 0.9])) == 1  # memory survives the round trip
    empty = ThresholdModeRule(0.5, 2)
    empty.load_state_dict(ThresholdModeRule(0.5, 2).state_dict())
    assert empty.n_found == 0
    with pytest.raises(ValueError, match="threshold"):
        ThresholdModeRule(0.6, 2).load_state_dict(rule.state_dict())


# -- RNA tasks -----------------------------------------------------------------------------------------
@needs_rna
def test_normalisers_reproduce() -> None:
    from thermogfn.tasks.rna import NORMS, TARGETS, norm_of

    for k in (1, 2, 3):
        assert norm_of(TARGETS[k]) == pytest.approx(NORMS[k], abs=1e-3)


@needs_data
def test_embedded_targets_match_data() -> None:
    from thermogfn.tasks.rna import NORMS, TARGETS, targets_from_json

    got = targets_from_json(RNA_DIR)
    for k in (1, 2, 3):
        assert got[k][0] == TARGETS[k] and got[k][1] == pytest.approx(NORMS[k], abs=1e-9)


@needs_rna
@needs_data
def test_rna1_modes_fitness_range(rna1) -> None:
    modes = rna1.mode_index()
    assert modes.shape == (336,)
    assert rna1.mode_rule() is None and rna1.mode_threshold == pytest.approx(0.6233866095)
    f = rna1.raw_reward(rna1.objects_from_index(modes[::40]))
    assert bool(((f >= 0.623) & (f <= 1.0546)).all())
    top = rna1.score_strings(["GGGGGCCCCGCGCG"])  # the best RNA1 mode: shaped reward S_max = 10
    assert float(top) == pytest.approx(1.0545394628, abs=1e-9)
    assert float(rna1.log_reward(rna1.encode(["GGGGGCCCCGCGCG"]))) == pytest.approx(torch.log(torch.tensor(10.0)))


@needs_rna
def test_cache_avoids_recomputation(monkeypatch) -> None:
    from thermogfn.tasks import rna as rna_mod

    calls: list[int] = []
    real = rna_mod.fold_fitness

    def counting(job):
        calls.append(len(job[2]))
        return real(job)

    monkeypatch.setattr(rna_mod, "fold_fitness", counting)
    task = rna_mod.RNABindingTask(2, workers=1)
    x = task.encode(["GGGGGCCCCGCGCG", "AUGGGCCGGACCCC", "GGGGGCCCCGCGCG"])
    first = task.raw_reward(x)
    assert calls == [2] and task.cache_size == 2  # the duplicate is folded once
    second = task.raw_reward(x[[1, 0]])
    assert calls == [2]
    assert torch.equal(second, first[[1, 0]])
    task.raw_reward(task.encode(["AUGGGCCGGACCCC", "UCUUGGGGACUUUU"]))
    assert calls == [2, 1]
    assert task.mode_index() is None
    rule = task.mode_rule()
    assert rule.min_distance == 3 and rule.threshold == pytest.approx(0.62338661 / 1.05453946 * 1.01474552)


@needs_rna
def test_pool_matches_inline(rna1) -> None:
    from thermogfn.tasks.rna import fold_fitness

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (300, 14), generator=g)
    rna1.clear_cache()
    pooled = rna1.raw_reward(x)
    assert rna1._pool is not None  # 300 >= 256 uncached sequences went to the pool
    inline = torch.tensor(fold_fitness((rna1.targets, rna1.norms, rna1.decode(x))), dtype=torch.float64)
    assert torch.equal(pooled, inline)


@needs_rna
def test_alphabet_length_and_shape_errors(rna1) -> None:
    assert rna1.alphabet == "UCGA" and rna1.length == 14 and rna1.vocab_size == 4
    assert rna1.encode(["UCGAUCGAUCGAUC"]).tolist() == [[0, 1, 2, 3] * 3 + [0, 1]]
    with pytest.raises(ThermoGFNError, match="length"):
        rna1.encode(["UCGA"])
    with pytest.raises(ThermoGFNError, match="alphabet"):
        rna1.encode(["TCGATCGATCGATC"])
    with pytest.raises(ThermoGFNError, match="shape"):
        rna1.raw_reward(torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(ThermoGFNError, match="codes"):
        rna1.raw_reward(torch.full((1, 14), 4))


@needs_rna
def test_registry_and_arguments() -> None:
    from thermogfn.tasks import make_task
    from thermogfn.tasks.rna import RNABindingTask

    task = make_task("rna3", workers=1)
    assert isinstance(task, RNABindingTask) and task.name == "rna3" and task.workers == 1
    assert task.defaults.hidden == 1024 and task.defaults.rounds == 5000
    with pytest.raises(ThermoGFNError, match="1, 2 or 3"):
        RNABindingTask(4)
    with pytest.raises(ThermoGFNError, match="workers"):
        RNABindingTask(1, workers=0)


def test_missing_vienna_is_one_line(monkeypatch) -> None:
    import sys

    from thermogfn.tasks import rna as rna_mod

    monkeypatch.setitem(sys.modules, "RNA", None)  # makes `import RNA` raise ImportError
    with pytest.raises(ThermoGFNError, match=r"pip install 'thermogfn\[rna\]'") as info:
        rna_mod.RNABindingTask(1)
    assert "\n" not in str(info.value)
