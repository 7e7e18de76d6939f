"""--device: the CPU path is the default and unchanged; CUDA is refused cleanly where torch sees none; MDP lookup
tables move with the model. (GPU numbers: benchmarks/gpu.py, run where a GPU is present.)"""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import TINY_HYPERGRID, assert_clean, new_dir, run_cli

from thermogfn.mdp import make_mdp


def _metrics(run) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "time" not in k and "seconds" not in k} for r in rows]


def test_auto_on_a_cpu_machine_is_the_cpu_run():
    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here: auto would train on it")
    runs = []
    for device in ("cpu", "auto"):
        out = new_dir() / "run"
        code, _, err = run_cli("train", *TINY_HYPERGRID, "--steps", "4", "--log-every", "1", "--device", device,
                               "--out", str(out))
        assert code == 0, err
        runs.append(_metrics(out))
    assert runs[0] == runs[1]


def test_cuda_without_a_gpu_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here")
    out = new_dir() / "run"
    code, stdout, err = run_cli("train", *TINY_HYPERGRID, "--steps", "2", "--device", "cuda", "--out", str(out))
    assert code != 0 and "--device cuda" in err and "--device cpu" in err
    assert_clean(code, stdout, err)
    assert not out.exists()  # no half-made run directory


def test_baselines_refuse_a_device():
    code, stdout, err = run_cli("train", *TINY_HYPERGRID, "--steps", "2", "--method", "random", "--device", "auto",
                                "--out", str(new_dir() / "run"))
    assert code != 0 and "runs on the CPU" in err
    assert_clean(code, stdout, err)


@pytest.mark.parametrize("kind,vocab,length", [("prepend-append", 4, 6), ("append", 3, 5), ("hypergrid", 5, 3)])
def test_mdp_tables_and_new_states_follow_the_device(kind, vocab, length):
    mdp = make_mdp(kind, vocab, length).to("meta")
    tables = [v for v in vars(mdp).values() if isinstance(v, torch.Tensor)]
    assert tables and all(t.device.type == "meta" for t in tables)
    assert mdp.initial(3).device.type == "meta"
