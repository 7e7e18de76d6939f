"""sEHstr: the vectorised tree ensemble against a per-node reference, modes, random mean, exact maximum, task."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from thermogfn.tasks import make_task
from thermogfn.tasks.data import data_dir
from thermogfn.tasks.sehstr import R_MAX, R_MAX_STRING, TREES_NAME, GBTProxy, SEHStrTask


@pytest.fixture(scope="module")
def task() -> SEHStrTask:
    d = data_dir(None, "sehstr")
    if not (d / TREES_NAME).is_file():
        pytest.skip(f"shared data not found ({d / TREES_NAME}); set THERMOGFN_DATA_DIR to run this test")
    return SEHStrTask(d)


def _reference(arrays: dict[str, np.ndarray], x: np.ndarray, n_blocks: int) -> np.ndarray:
    """Walk every tree node by node, as sklearn does: left iff one-hot feature <= threshold."""
    a = {k: v.tolist() for k, v in arrays.items() if k != "baseline"}
    out = []
    for s in x.tolist():
        onehot = [0.0] * (n_blocks * len(s))
        for p, b in enumerate(s):
            onehot[p * n_blocks + b] = 1.0
        total = float(arrays["baseline"])
        for t in range(len(a["left"])):
            n = 0
            while not a["is_leaf"][t][n]:
                go_left = onehot[a["feature_idx"][t][n]] <= a["threshold"][t][n]
                n = a["left"][t][n] if go_left else a["right"][t][n]
            total += a["value"][t][n]
        out.append(total)
    return np.array(out)


def _trees(task: SEHStrTask) -> dict[str, np.ndarray]:
    with np.load(Path(task.data_path) / TREES_NAME) as d:
        return {k: np.asarray(d[k]) for k in ("feature_idx", "threshold", "left", "right", "is_leaf", "value",
                                               "baseline")}


def test_matches_reference(task: SEHStrTask) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randint(0, 18, (200, 6), generator=g), task.encode([R_MAX_STRING])])
    got = task.raw_reward(x)
    assert got.dtype == torch.float64 and got.shape == (201,)
    np.testing.assert_allclose(got.numpy(), _reference(_trees(task), x.numpy(), 18), rtol=0, atol=1e-9)


def _random_ensemble(rng: np.random.Generator, n_trees: int, n_blocks: int, length: int) -> dict[str, np.ndarray]:
    """Random trees (up to 15 nodes) with thresholds that send a one-hot feature left/right/either way."""
    size = 15
    arrays = {"feature_idx": np.zeros((n_trees, size), np.int32), "threshold": np.zeros((n_trees, size)),
              "left": np.zeros((n_trees, size), np.int32), "right": np.zeros((n_trees, size), np.int32),
              "is_leaf": np.ones((n_trees, size), bool), "value": rng.normal(size=(n_trees, size))}
    for t in range(n_trees):
        frontier, used = [0], 1
        while frontier and used + 2 <= size:
            n = frontier.pop(int(rng.integers(len(frontier))))
            arrays["is_leaf"][t, n] = False
            arrays["feature_idx"][t, n] = rng.integers(n_blocks * length)
            arrays["threshold"][t, n] = rng.choice([0.5, 0.5, 0.5, -0.5, 1.5, 0.0, 1.0])
            arrays["left"][t, n], arrays["right"][t, n] = used, used + 1
            frontier += [used, used + 1]
            used += 2
    return arrays


def test_random_ensembles_and_exhaustive_max() -> None:
    rng = np.random.default_rng(1)
    n_blocks, length = 3, 4
    arrays = _random_ensemble(rng, 7, n_blocks, length)
    proxy = GBTProxy(**arrays, baseline=0.25, n_blocks=n_blocks, length=length)
    x = torch.cartesian_prod(*[torch.arange(n_blocks)] * length)  # all 81 strings, lexicographic
    got = proxy(x)
    np.testing.assert_allclose(got.numpy(), _reference({**arrays, "baseline": np.array(0.25)}, x.numpy(), n_blocks),
                               rtol=0, atol=1e-12)
    best, arg, ties = proxy.exhaustive_max(chunk=2)
    assert best == float(got.max()) and arg == int(got.argmax()) and ties == int((got == got.max()).sum())


def test_modes(task: SEHStrTask) -> None:
    modes = task.mode_index()
    assert modes.shape == (159,) and bool((modes[1:] > modes[:-1]).all())
    r = task.raw_reward(task.objects_from_index(modes))
    assert float(r.min()) >= 6.69 and float(r.max()) <= 6.89


def test_random_mean_and_maximum(task: SEHStrTask) -> None:
    g = torch.Generator().manual_seed(2)
    r = task.raw_reward(torch.randint(0, 18, (100_000, 6), generator=g))
    assert abs(float(r.mean()) - 4.494) < 0.02  # all-strings mean 4.494294 (= the ensemble's baseline)
    assert float(r.max()) <= R_MAX and float(r.min()) > -3
    assert float(task.raw_reward(task.encode([R_MAX_STRING]))[0]) == R_MAX
    assert task.log_reward_bound() == pytest.approx(math.log(10), abs=1e-12)


def test_task_interface(task: SEHStrTask) -> None:
    made = make_task("sehstr", data_dir=str(task.data_path))
    assert isinstance(made, SEHStrTask) and made.table() is None and made.n_objects == 18**6
    assert (made.name, made.vocab_size, made.length, made.alphabet) == ("sehstr", 18, 6, "0123456789abcdefgh")
    assert (made.defaults.hidden, made.defaults.eps, made.defaults.rounds, made.defaults.lr) == (1024, 0.1, 2000, 1e-4)
    x = made.encode(["ag550c", "000000"])
    assert made.decode(x) == ["ag550c", "000000"]
    log_r = made.log_reward(x)
    assert float(log_r[0]) == pytest.approx(math.log(10))
    r1 = max(float(made.raw_reward(x)[1]), 1e-3)
    assert float(log_r[1]) == pytest.approx(math.log(10) + 6 * math.log(r1 / R_MAX))
