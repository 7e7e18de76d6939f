"""Rollouts: the Gumbel-max sampler draws from (1 - eps) P + eps uniform(valid), and the eager fast paths (fixed
length, several lengths) give exactly the trajectories of the generic chunked steps that --compile uses."""

from __future__ import annotations

import pytest
import torch

from thermogfn.config import ModelConfig
from thermogfn.mdp import make_mdp
from thermogfn.policy import GFlowNetModel
from thermogfn.sampling import ActionNoise, backward_rollout, backward_steps, choose, forward_rollout, forward_steps

FIELDS = ("states", "actions", "back_actions", "n", "objects", "beta")


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_gumbel_max_draws_the_mixture(eps):
    log_p = torch.log(torch.tensor([[0.5, 0.3, 0.0, 0.2]]))  # action 2 invalid (-inf)
    draws = 200_000
    noise = ActionNoise.draw(1, draws, 4, eps, torch.Generator().manual_seed(0), torch.device("cpu"))
    picks = choose(log_p.expand(draws, -1), noise.gumbel[0], None if noise.explore is None else noise.explore[0])
    freq = torch.bincount(picks, minlength=4).double() / draws
    want = (1 - eps) * log_p.exp()[0].double() + eps * torch.tensor([1 / 3, 1 / 3, 0.0, 1 / 3], dtype=torch.float64)
    assert freq[2] == 0
    assert torch.allclose(freq, want, atol=4 * (0.25 / draws) ** 0.5)  # 4 standard errors


def _model(kind: str, vocab: int, length: int, min_length: int | None = None, learn_pb: bool = False):
    torch.manual_seed(0)
    mdp = make_mdp(kind, vocab, length, min_length)
    return GFlowNetModel(mdp, ModelConfig(conditioning="logit", hidden=16, learn_pb=learn_pb), (1.0, 3.0))


@pytest.mark.parametrize("kind,vocab,length,min_length", [
    ("prepend-append", 3, 5, None), ("append", 4, 4, None), ("prepend-append", 3, 5, 2), ("hypergrid", 4, 3, None)])
@pytest.mark.parametrize("chunk", [1, 3])
def test_eager_rollouts_equal_the_chunked_steps(kind, vocab, length, min_length, chunk):
    model = _model(kind, vocab, length, min_length, learn_pb=True)
    beta = torch.linspace(1.0, 3.0, 64)
    eager = forward_rollout(model, beta, 0.2, torch.Generator().manual_seed(1))
    chunked = forward_rollout(model, beta, 0.2, torch.Generator().manual_seed(1), forward_steps, chunk)
    for field in FIELDS:
        assert torch.equal(getattr(eager, field), getattr(chunked, field)), field
    back = backward_rollout(model, eager.objects, beta, torch.Generator().manual_seed(2))
    back_chunked = backward_rollout(model, eager.objects, beta, torch.Generator().manual_seed(2), backward_steps,
                                    chunk)
    for field in FIELDS:
        assert torch.equal(getattr(back, field), getattr(back_chunked, field)), field
    assert torch.equal(back.objects, eager.objects)
