"""thermogfn.flat: parameters as views of one buffer per group train like the originals, gradients accumulate in
the flat buffer, and per-parameter Adam states of older checkpoints load into the flat layout."""

from __future__ import annotations

import copy

import torch
from torch import nn

from thermogfn.flat import FlatParameters


def _nets() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.LeakyReLU(), nn.Linear(16, 16), nn.LeakyReLU(), nn.Linear(16, 1))
    return net, copy.deepcopy(net)


def _loss(net: nn.Module, step: int) -> torch.Tensor:
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(step))
    return (net(x) - x.sum(1, keepdim=True)).pow(2).mean()


def test_flat_training_matches_per_parameter_training():
    plain, flat_net = _nets()
    groups = [list(flat_net[:3].parameters()), list(flat_net[3:].parameters())]
    flat = FlatParameters(groups)
    assert len(flat.tensors) == 2 and flat.tensors[0].numel() == sum(p.numel() for p in groups[0])
    opt_plain = torch.optim.Adam([{"params": list(plain[:3].parameters()), "lr": 1e-2},
                                  {"params": list(plain[3:].parameters()), "lr": 1e-3}], fused=True)
    opt_flat = torch.optim.Adam([{"params": [flat.tensors[0]], "lr": 1e-2}, {"params": [flat.tensors[1]], "lr": 1e-3}],
                                fused=True)
    for step in range(20):
        opt_plain.zero_grad(set_to_none=True)
        _loss(plain, step).backward()
        torch.nn.utils.clip_grad_norm_(list(plain.parameters()), 1.0)
        opt_plain.step()
        flat.zero_grad()
        _loss(flat_net, step).backward()
        grads = torch.cat([p.grad.reshape(-1) for p in flat_net.parameters()])
        assert torch.equal(grads, torch.cat([t.grad for t in flat.tensors]))  # accumulated in the flat buffer
        torch.nn.utils.clip_grad_norm_(flat.tensors, 1.0)
        opt_flat.step()
    for a, b in zip(plain.parameters(), flat_net.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert flat_net.state_dict().keys() == plain.state_dict().keys()


def test_per_parameter_adam_state_loads_into_the_flat_layout():
    plain, flat_net = _nets()
    opt_plain = torch.optim.Adam([{"params": list(plain[:3].parameters())}, {"params": list(plain[3:].parameters())}])
    _loss(plain, 0).backward()
    opt_plain.step()
    flat = FlatParameters([list(flat_net[:3].parameters()), list(flat_net[3:].parameters())])
    opt_flat = torch.optim.Adam([{"params": [flat.tensors[0]]}, {"params": [flat.tensors[1]]}])
    opt_flat.load_state_dict(flat.flatten_optimizer_state(opt_plain.state_dict()))
    moments = torch.cat([opt_plain.state[p]["exp_avg"].reshape(-1) for p in plain.parameters()])
    loaded = torch.cat([opt_flat.state[t]["exp_avg"] for t in flat.tensors])
    assert torch.equal(moments, loaded)
    assert float(opt_flat.state[flat.tensors[0]]["step"]) == 1.0
    assert flat.flatten_optimizer_state(opt_flat.state_dict())["param_groups"][0]["params"] == [0]
