"""Hypergrid (Bengio et al. 2021): an ``ndim``-dimensional grid of side ``height``, rewards near corners."""

from __future__ import annotations

import torch

from thermogfn.config import HYPERGRID_DEFAULTS
from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.base import Shaping, Task, TaskDefaults

MAX_TABLE = 2**22


class HypergridTask(Task):
    """``R(x) = R0 + R1 * prod_i 1[|x_i/(H-1) - 0.5| > 0.25] + R2 * prod_i 1[0.3 < |x_i/(H-1) - 0.5| < 0.4]``.

    Objects are coordinate vectors in ``{0..H-1}^ndim``; strings are comma-joined coordinates (``'0,7,3,1'``).
    Identity shaping (the target is ``R**beta``). Distance is Manhattan (L1 on coordinates), the natural
    metric on a grid. Modes are the objects attaining the table's maximum (``R0+R1+R2`` whenever the R2 band
    holds a grid point, i.e. ``2**ndim`` of them for ``H=8``).
    """

    mdp_kinds = ("hypergrid",)
    distance = "manhattan"

    def __init__(self, ndim: int = HYPERGRID_DEFAULTS["ndim"], height: int = HYPERGRID_DEFAULTS["height"],
                 r0: float = HYPERGRID_DEFAULTS["r0"], r1: float = HYPERGRID_DEFAULTS["r1"],
                 r2: float = HYPERGRID_DEFAULTS["r2"]) -> None:
        if int(ndim) != ndim or ndim < 1 or int(height) != height or height < 2:
            raise ThermoGFNError(f"hypergrid needs integer ndim >= 1 and height >= 2, got ndim={ndim}, "
                                 f"height={height}")
        if height > 1000 or ndim > 64 or height**ndim >= 2**62:
            raise ThermoGFNError(f"hypergrid of height {height} in {ndim} dimensions is too large; keep height <= "
                                 "1000, ndim <= 64 and height**ndim < 2**62")
        if r0 <= 0 or r1 < 0 or r2 < 0:
            raise ThermoGFNError(f"hypergrid needs r0 > 0 and r1, r2 >= 0, got r0={r0}, r1={r1}, r2={r2}")
        self.name = "hypergrid"
        self.ndim, self.height = int(ndim), int(height)
        self.vocab_size = self.height
        self.length = self.ndim
        self.r0, self.r1, self.r2 = float(r0), float(r1), float(r2)
        self.shaping = Shaping()
        # benchmarks/tune_defaults.py; conditioning: benchmarks/faithful_default.py
        self.defaults = TaskDefaults(hidden=64, eps=0.0, rounds=1000, lr=3e-3, conditioning="logit+layer")
        self._table: torch.Tensor | None = None
        self._modes: torch.Tensor | None = None

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        ax = (x.to(torch.float64) / (self.height - 1) - 0.5).abs()
        outer = (ax > 0.25).all(-1).to(torch.float64)
        band = ((ax > 0.3) & (ax < 0.4)).all(-1).to(torch.float64)
        return self.r0 + self.r1 * outer + self.r2 * band

    def table(self) -> torch.Tensor | None:
        if self.n_objects > MAX_TABLE:
            return None
        if self._table is None:
            self._table = self.raw_reward(self.all_objects())
        return self._table

    def mode_index(self) -> torch.Tensor | None:
        table = self.table()
        if table is None:
            return None
        if self._modes is None:
            self._modes = torch.nonzero(torch.isclose(table, table.max(), rtol=1e-12, atol=0.0)).reshape(-1)
        return self._modes

    def decode(self, x: torch.Tensor) -> list[str]:
        return [",".join(map(str, row)) for row in x.to(torch.int64).tolist()]

    def encode(self, strings: list[str]) -> torch.Tensor:
        if isinstance(strings, str):
            strings = [strings]
        rows = []
        for s in strings:
            try:
                row = [int(p) for p in str(s).split(",")]
            except ValueError:
                row = None
            if row is None or len(row) != self.ndim or not all(0 <= v < self.height for v in row):
                example = ",".join(["0"] * self.ndim)
                raise ThermoGFNError(f"hypergrid point {s!r} is malformed; write {self.ndim} comma-separated "
                                     f"integers in 0..{self.height - 1}, e.g. {example!r}")
            rows.append(row)
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), self.ndim)
