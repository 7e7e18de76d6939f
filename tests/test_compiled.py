"""--compile: compiled rollouts draw the same trajectories as eager ones, and a failing torch.compile falls back to
eager training with one line on stderr."""

from __future__ import annotations

import pytest
import torch

from thermogfn import compiled
from thermogfn.config import ModelConfig
from thermogfn.mdp import make_mdp
from thermogfn.policy import GFlowNetModel
from thermogfn.sampling import backward_rollout, forward_rollout

FIELDS = ("states", "actions", "back_actions", "n", "objects")


def _model() -> GFlowNetModel:
    torch.manual_seed(0)
    return GFlowNetModel(make_mdp("prepend-append", 3, 4), ModelConfig(conditioning="logit", hidden=8), (1.0, 3.0))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own, while compiling
def test_compiled_rollouts_equal_eager_ones():
    model, rnd = _model(), compiled.CompiledRound()
    beta = torch.linspace(1.0, 3.0, 32)
    eager = forward_rollout(model, beta, 0.1, torch.Generator().manual_seed(0))
    fast = forward_rollout(model, beta, 0.1, torch.Generator().manual_seed(0), rnd.forward_steps, rnd.chunk)
    assert not compiled._Compiled.failed, "torch.compile failed here"
    for field in FIELDS:
        assert torch.equal(getattr(eager, field), getattr(fast, field)), field
    back = backward_rollout(model, eager.objects, beta, torch.Generator().manual_seed(1))
    back_fast = backward_rollout(model, eager.objects, beta, torch.Generator().manual_seed(1), rnd.backward_steps,
                                 rnd.chunk)
    for field in FIELDS:
        assert torch.equal(getattr(back, field), getattr(back_fast, field)), field


def test_a_failing_compiler_falls_back_to_eager(monkeypatch, capsys):
    def broken(fn, **_):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nlong traceback")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(compiled._Compiled, "failed", False)
    model, rnd = _model(), compiled.CompiledRound()
    beta = torch.full((8,), 2.0)
    fast = forward_rollout(model, beta, 0.0, torch.Generator().manual_seed(0), rnd.forward_steps, rnd.chunk)
    eager = forward_rollout(model, beta, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(fast.objects, eager.objects)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no C++ compiler found" in err[0] and "continuing without --compile" in err[0]
    monkeypatch.setattr(compiled._Compiled, "failed", False)
