"""Parameters as views of one flat buffer per optimiser group, with their gradients as views of a twin buffer.

On small networks, zeroing, clipping and the (fused) Adam step are bound by per-tensor Python work: ~10 tensors
cost ~0.5 ms a step on this machine (benchmarks/README.md). With every parameter a view of one buffer per group,
each of them touches one tensor per group; backward still accumulates into each parameter's ``.grad`` (a view of
the gradient buffer, accumulated in place), and a module's ``state_dict`` and ``load_state_dict`` work as before.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class FlatParameters:
    """The parameters of each group in ``groups`` moved into one flat :class:`nn.Parameter` (``tensors``, one per
    non-empty group), which an optimiser then updates in place of the originals."""

    def __init__(self, groups: list[list[nn.Parameter]]):
        self.sizes = [[p.numel() for p in params] for params in groups if params]
        self.tensors: list[nn.Parameter] = []
        for params in (g for g in groups if g):
            data = torch.cat([p.detach().reshape(-1) for p in params])
            grad = torch.zeros_like(data)
            offset = 0
            for p in params:
                n = p.numel()
                p.data = data[offset: offset + n].view_as(p)
                p.grad = grad[offset: offset + n].view_as(p)  # backward accumulates into it in place
                offset += n
            flat = nn.Parameter(data)
            flat.grad = grad
            self.tensors.append(flat)

    def zero_grad(self) -> None:
        for flat in self.tensors:
            assert flat.grad is not None
            flat.grad.zero_()

    def flatten_optimizer_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """An Adam ``state_dict`` saved with one entry per original parameter (older checkpoints) in the flat
        layout: each group's moments concatenated in parameter order (absent ones as zeros); unchanged if flat."""
        groups = state["param_groups"]
        if [len(g["params"]) for g in groups] == [1] * len(groups):
            return state
        out_state: dict[int, dict[str, Any]] = {}
        new_groups = []
        for i, (group, sizes) in enumerate(zip(groups, self.sizes, strict=True)):
            entries = [state["state"].get(index, {}) for index in group["params"]]
            flat: dict[str, Any] = {}
            for key in ("exp_avg", "exp_avg_sq"):
                flat[key] = torch.cat([e[key].reshape(-1) if key in e else torch.zeros(n)
                                       for e, n in zip(entries, sizes, strict=True)])
            steps = [e["step"] for e in entries if "step" in e]
            if steps:
                flat["step"] = steps[0].clone() if isinstance(steps[0], torch.Tensor) else torch.tensor(steps[0])
                out_state[i] = flat
            new_groups.append({**group, "params": [i]})
        return {"state": out_state, "param_groups": new_groups}
