"""The sEH binding proxy of Bengio et al. (2021): the pretrained MPNN of the fragment GFlowNet, in plain PyTorch.

Architecture (GFNOrg/gflownet ``MPNNet_v2`` v2, as recursionpharma/gflownet ``bengio2021flow`` loads it): a linear
embedding of 71 atom features, 12 rounds of an edge-conditioned convolution (NNConv, mean over incoming edges,
root weight applied as ``x @ W.T``) followed by a GRU, Set2Set pooling (3 steps) and a linear output.

Atom features (71 columns): 0-4 type one-hot H, C, N, O, F and 5 any other element; 6-8 unused (zero); 9 aromatic;
10-12 SP, SP2, SP3; 13 total H count; 14-69 atomic number 1..56 one-hot; 70 the stem mask. Bonds are sent both ways
with a one-hot of single/double/triple/aromatic; a molecule without bonds gets one self-loop on atom 0 with zero
bond features, as in the original. The stem mask is all zeros when no stems are given (recursionpharma), else 1 at
the stem atoms, at atom 0 when a molecule has none (the 2021 code). The NNConv edge network's output depends on
the bond type only, so the five possible edge matrices are computed once per batch.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.chem import INSTALL_HINT, _chem
from thermogfn.tasks.data import data_dir as resolve_data_dir
from thermogfn.tasks.data import require_file, sha256_of
from thermogfn.tasks.fragments import FOLDER

__all__ = ["PARAMS_NAME", "PARAMS_SHA256", "PARAMS_ARRAYS_SHA256", "MolGraphs", "SEHProxy", "featurize",
           "params_digest", "params_file_ok", "seh_reward"]

PARAMS_NAME = "bengio2021_seh_mpnn_params.npz"
PARAMS_SHA256 = "83168c271a1661f31d78e9c387520a4f4f586df6e6b5c733cda014e8563e1236"
# sha256 of the arrays themselves (see params_digest): accepts an .npz whose compressed bytes differ (another zlib)
PARAMS_ARRAYS_SHA256 = "6da82da7047bb815f859624da4175735a3fa7e756e65052962476755d752f434"
HOW_TO_GET = ("run `thermogfn data fetch sehfrag`, or pass --data-dir DIR / set THERMOGFN_DATA_DIR to a folder "
              f"holding {FOLDER}/{PARAMS_NAME} (mols/data/pretrained_proxy/best_params.pkl.gz in GFNOrg/gflownet, "
              "its 22 arrays saved as p00..p21)")
N_PARAMS = 22
N_ATOMIC_NUMBERS = 56
N_FEATURES = 71
DIM = 64
N_CONV_STEPS = 12
SET2SET_STEPS = 3
REWARD_FLOOR = 1e-4
_TYPE_COL = {1: 0, 6: 1, 7: 2, 8: 3, 9: 4}  # H C N O F; any other element -> column 5
_AROMATIC, _SP, _NUM_HS, _ZONE, _STEM = 9, 10, 13, 13, 70  # column of atomic number z is _ZONE + z
_SELF_LOOP = 4  # edge type of the zero-feature self-loop of a bond-less molecule


def params_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the arrays in key order: ``"name:dtype:shape\\n"`` then the little-endian float32 bytes."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k], dtype="<f4")
        h.update(f"{k}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read_params(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ThermoGFNError(f"data file {path} is not a readable .npz ({type(exc).__name__}); re-download it: "
                             f"{HOW_TO_GET}") from None


def params_file_ok(path: Path) -> bool:
    """Whether ``path`` holds the proxy weights: its bytes match, or else its arrays do."""
    if sha256_of(path) == PARAMS_SHA256:
        return True
    try:
        return params_digest(_read_params(path)) == PARAMS_ARRAYS_SHA256
    except ThermoGFNError:
        return False


@dataclass(frozen=True)
class MolGraphs:
    """Molecules as one disjoint graph: atom features, directed edges with bond type 0-4, graph of each atom."""

    x: torch.Tensor  # (atoms, 71) float32
    edge_src: torch.Tensor  # (edges,) int64
    edge_dst: torch.Tensor  # (edges,) int64
    edge_type: torch.Tensor  # (edges,) int64: single, double, triple, aromatic, self-loop
    batch: torch.Tensor  # (atoms,) int64
    n_graphs: int


def featurize(mols: Sequence[Any], stem_atoms: Sequence[Sequence[int]] | None = None) -> MolGraphs:
    """The proxy's input graph for RDKit molecules (none of them None); ``stem_atoms`` as in :class:`SEHProxy`."""
    chem = _chem()
    hyb = {chem.HybridizationType.SP: 0, chem.HybridizationType.SP2: 1, chem.HybridizationType.SP3: 2}
    bond_type = {chem.BondType.SINGLE: 0, chem.BondType.DOUBLE: 1, chem.BondType.TRIPLE: 2,
                 chem.BondType.AROMATIC: 3}
    if stem_atoms is not None and len(stem_atoms) != len(mols):
        raise ThermoGFNError(f"got {len(stem_atoms)} stem lists for {len(mols)} molecules")
    zs: list[int] = []
    cols: list[int] = []  # (atom, column) pairs set to 1, flattened
    num_hs: list[int] = []
    src: list[int] = []
    dst: list[int] = []
    etype: list[int] = []
    sizes: list[int] = []
    for g, mol in enumerate(mols):
        start = len(zs)
        for atom in mol.GetAtoms():
            i, z = len(zs), atom.GetAtomicNum()
            if not 1 <= z <= N_ATOMIC_NUMBERS:
                raise ThermoGFNError(f"atom {atom.GetSymbol()} (atomic number {z}) is outside the proxy's "
                                     f"elements 1..{N_ATOMIC_NUMBERS}")
            zs.append(z)
            cols += (i, _TYPE_COL.get(z, 5), i, _ZONE + z)
            if atom.GetIsAromatic():
                cols += (i, _AROMATIC)
            h = hyb.get(atom.GetHybridization())
            if h is not None:
                cols += (i, _SP + h)
            num_hs.append(atom.GetTotalNumHs(includeNeighbors=True))
        n = len(zs) - start
        if n == 0:
            raise ThermoGFNError(f"molecule {g} has no atoms")
        sizes.append(n)
        n_bonds = 0
        for bond in mol.GetBonds():
            t = bond_type.get(bond.GetBondType())
            if t is None:
                raise ThermoGFNError(f"molecule {g} has a {bond.GetBondType()} bond; the proxy knows single, double, "
                                     "triple and aromatic bonds")
            a, b = start + bond.GetBeginAtomIdx(), start + bond.GetEndAtomIdx()
            src += (a, b)
            dst += (b, a)
            etype += (t, t)
            n_bonds += 1
        if n_bonds == 0:
            src.append(start)
            dst.append(start)
            etype.append(_SELF_LOOP)
        if stem_atoms is not None:
            stems = list(stem_atoms[g]) or [0]
            if not all(0 <= s < n for s in stems):
                raise ThermoGFNError(f"stem atoms {stems} of molecule {g} are not among its {n} atoms")
            cols += [v for s in stems for v in (start + s, _STEM)]
    x = torch.zeros(len(zs), N_FEATURES)
    ones = torch.tensor(cols, dtype=torch.int64).view(-1, 2)
    x[ones[:, 0], ones[:, 1]] = 1.0
    x[:, _NUM_HS] = torch.tensor(num_hs, dtype=torch.float32)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes, dtype=torch.int64))
    return MolGraphs(x, torch.tensor(src, dtype=torch.int64), torch.tensor(dst, dtype=torch.int64),
                     torch.tensor(etype, dtype=torch.int64), batch, len(sizes))


class SEHProxy(nn.Module):
    """The pretrained sEH MPNN; ``proxy(mols, stem_atoms=None)`` returns raw predictions (NaN where a mol is None).

    ``stem_atoms`` (one list of atom indices per molecule) sets the stem-mask feature as the 2021 code did; without
    it the column is zero, as recursionpharma/gflownet scores molecules. Molecules are scored ``batch_size`` at a
    time, in the module's dtype (on the 950 reference molecules float64 is within 1e-14 of the 2021 scores, float32
    within 6e-6, absolute).
    """

    def __init__(self, params: Mapping[str, np.ndarray], batch_size: int = 256) -> None:
        super().__init__()
        if batch_size < 1:
            raise ThermoGFNError(f"batch_size must be at least 1, got {batch_size}")
        p = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in params.items()}
        self.batch_size = batch_size
        self.lin0 = nn.Linear(N_FEATURES, DIM)
        self.edge_net = nn.Sequential(nn.Linear(4, 128), nn.LeakyReLU(), nn.Linear(128, DIM * DIM))
        self.root = nn.Parameter(p["p02"])
        self.conv_bias = nn.Parameter(p["p03"])
        self.gru = nn.GRUCell(DIM, DIM)
        self.lstm = nn.LSTMCell(2 * DIM, DIM)
        self.lin3 = nn.Linear(2 * DIM, 1)
        mapping = {self.lin0: ("p00", "p01"), self.edge_net[0]: ("p04", "p05"), self.edge_net[2]: ("p06", "p07"),
                   self.lin3: ("p20", "p21")}
        for layer, (w, b) in mapping.items():
            layer.weight.data, layer.bias.data = p[w], p[b]
        for cell, first in ((self.gru, 8), (self.lstm, 16)):
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            for i, name in enumerate(names):
                getattr(cell, name).data = p[f"p{first + i:02d}"]
        self.requires_grad_(False)
        self.act = nn.LeakyReLU()

    @classmethod
    def load(cls, data_dir: str | os.PathLike | None = None, *, dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu", batch_size: int = 256) -> SEHProxy:
        """The proxy with the checked weights from ``seh_proxy/`` (located like task data); needs RDKit."""
        _need_rdkit()
        path = require_file(resolve_data_dir(data_dir, FOLDER), PARAMS_NAME, None, HOW_TO_GET)
        params = _read_params(path)
        if sha256_of(path) != PARAMS_SHA256 and params_digest(params) != PARAMS_ARRAYS_SHA256:
            raise ThermoGFNError(f"data file {path} is corrupt (neither its sha256 nor its arrays match); "
                                 f"re-download it: {HOW_TO_GET}")
        return cls(params, batch_size).to(device=device, dtype=dtype)

    def forward(self, mols: Sequence[Any], stem_atoms: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
        """Raw predictions, shape ``(len(mols),)``, NaN for None molecules."""
        if stem_atoms is not None and len(stem_atoms) != len(mols):
            raise ThermoGFNError(f"got {len(stem_atoms)} stem lists for {len(mols)} molecules")
        ref = self.root
        out = torch.full((len(mols),), math.nan, dtype=ref.dtype, device=ref.device)
        valid = [i for i, m in enumerate(mols) if m is not None]
        with torch.no_grad():
            for lo in range(0, len(valid), self.batch_size):
                idx = valid[lo:lo + self.batch_size]
                stems = None if stem_atoms is None else [stem_atoms[i] for i in idx]
                out[torch.tensor(idx, device=ref.device)] = self.predict(featurize([mols[i] for i in idx], stems))
        return out

    def predict(self, g: MolGraphs) -> torch.Tensor:
        """Raw predictions for featurised molecules, shape ``(g.n_graphs,)``."""
        dev, dt = self.root.device, self.root.dtype
        x, batch = g.x.to(dev, dt), g.batch.to(dev)
        src, dst = g.edge_src.to(dev), g.edge_dst.to(dev)
        n = x.shape[0]
        # The edge network's output for each of the 5 possible edge features, and the edges grouped by that feature.
        w = self.edge_net(torch.cat([torch.eye(4, device=dev, dtype=dt), torch.zeros(1, 4, device=dev, dtype=dt)]))
        w = w.view(5, DIM, DIM)
        edge_type, order = torch.sort(g.edge_type.to(dev), stable=True)
        src, dst = src[order], dst[order]
        bounds = [0, *torch.bincount(edge_type, minlength=5).cumsum(0).tolist()]
        groups = [(t, bounds[t], bounds[t + 1]) for t in range(5) if bounds[t + 1] > bounds[t]]
        deg = torch.zeros(n, device=dev, dtype=dt).index_add_(0, dst, torch.ones_like(dst, dtype=dt))
        inv_deg = (1.0 / deg.clamp(min=1.0)).unsqueeze(1)
        h = self.act(self.lin0(x))
        for _ in range(N_CONV_STEPS):
            h_src = h[src]
            msg = torch.cat([h_src[lo:hi] @ w[t] for t, lo, hi in groups])
            agg = torch.zeros_like(h).index_add_(0, dst, msg) * inv_deg
            m = self.act(agg + h @ self.root.T + self.conv_bias)
            h = self.gru(m, h)
        return self.lin3(self._set2set(h, batch, g.n_graphs)).squeeze(1)

    def _set2set(self, h: torch.Tensor, batch: torch.Tensor, n_graphs: int) -> torch.Tensor:
        q_star = h.new_zeros(n_graphs, 2 * DIM)
        state = (h.new_zeros(n_graphs, DIM), h.new_zeros(n_graphs, DIM))
        for _ in range(SET2SET_STEPS):
            state = self.lstm(q_star, state)
            q = state[0]
            e = (h * q[batch]).sum(-1)
            e_max = e.new_full((n_graphs,), -math.inf).scatter_reduce(0, batch, e, "amax")
            a = (e - e_max[batch]).exp()
            a = a / (a.new_zeros(n_graphs).index_add_(0, batch, a)[batch] + 1e-16)  # softmax within each graph
            r = h.new_zeros(n_graphs, DIM).index_add_(0, batch, a.unsqueeze(1) * h)
            q_star = torch.cat([q, r], 1)
        return q_star


def _need_rdkit() -> None:
    try:
        _chem()
    except ThermoGFNError:
        raise ThermoGFNError(f"the sEH proxy featurises molecules with RDKit, which is not installed; "
                             f"{INSTALL_HINT}") from None


SEH_TRANSFORMS = ("clip", "bengio2021")


def seh_reward(proxy_values: torch.Tensor, transform: str = "clip") -> torch.Tensor:
    """Reward from raw proxy values; NaN (a molecule that failed to assemble) gets the transform's floor.

    ``"clip"`` (recursionpharma's sEH task, the default): ``proxy / 8`` clipped to ``[1e-4, 100]``, NaN -> 1e-4.
    ``"bengio2021"`` (the 2021 paper): ``(max(0.1, proxy) / 8) ** 10``, NaN -> ``(0.1 / 8) ** 10``.
    """
    if transform == "clip":
        return torch.nan_to_num(proxy_values / 8, nan=0.0).clamp(REWARD_FLOOR, 100.0)
    if transform == "bengio2021":
        return (torch.nan_to_num(proxy_values, nan=0.1).clamp(min=0.1) / 8) ** 10
    raise ThermoGFNError(f"unknown sEH reward transform {transform!r}; choose one of {', '.join(SEH_TRANSFORMS)}")
