"""Molecules from block strings (QM9str, sEHstr) and their Tanimoto diversity; RDKit is imported lazily.

Decoding follows the reference string MDP (maxwshen/gflownet ``MolStrMDP.state_to_bgl``): every block has two
attachment atoms ``block_r = [left, right]``; block i's *right* atom bonds to block i+1's *left* atom with a
single bond (the first block's left and the last block's right stay open), and each bonded atom with explicit
hydrogens (``[nH]``, ``[nH+]``) loses one per bond before sanitising. Single-atom blocks list the same atom
twice (``C`` is ``[0, 0]``), so e.g. ``00000`` in QM9str is pentane. A block file whose blocks do not all have
exactly two attachments is rejected (the reference asserts the same).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.data import data_dir as resolve_data_dir
from thermogfn.tasks.data import require_file

if TYPE_CHECKING:
    from thermogfn.tasks.base import Task

__all__ = [
    "BLOCK_FILES",
    "Blocks",
    "have_rdkit",
    "load_blocks",
    "decode_molecules",
    "decode_smiles",
    "to_smiles",
    "morgan_fingerprints",
    "mean_pairwise_tanimoto_distance",
    "molecule_diversity",
]

INSTALL_HINT = "install the chem extra: pip install 'thermogfn[chem]'"
# task name -> (data folder, block file, sha256)
BLOCK_FILES: dict[str, tuple[str, str, str]] = {
    "qm9str": ("qm9str", "block_qm9str_v1.json", "e73281df42a2151f994db124825a695506e95a00532478370191d65d45b18f70"),
    "sehstr": ("sehstr", "block_18.json", "ea866ee94d8e56a91d72e5dafe10dd7cc00cfcbc7d1bd040224c14507d513776"),
}
_warned_fallback = False


def _chem() -> Any:
    """The ``rdkit.Chem`` module, or a :class:`ThermoGFNError` saying how to install it."""
    try:
        from rdkit import Chem
    except ImportError:
        raise ThermoGFNError(f"molecule decoding needs RDKit; {INSTALL_HINT}") from None
    return Chem


def have_rdkit() -> bool:
    """Whether RDKit can be imported."""
    try:
        _chem()
    except ThermoGFNError:
        return False
    return True


@dataclass(frozen=True)
class Blocks:
    """Building blocks: SMILES and (left, right) attachment atom indices, in alphabet order."""

    smiles: tuple[str, ...]
    attach: tuple[tuple[int, int], ...]


@functools.lru_cache(maxsize=8)
def _read_blocks(path: Path) -> Blocks:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        n = len(spec["block_smi"])
        smiles = tuple(str(spec["block_smi"][str(i)]) for i in range(n))
        rs = [list(spec["block_r"][str(i)]) for i in range(n)]
    except (ValueError, KeyError, TypeError) as exc:
        raise ThermoGFNError(f"{path} is not a block file with block_smi/block_r keyed 0..n-1 ({exc}); "
                             "re-download it") from None
    bad = [i for i, r in enumerate(rs) if len(r) != 2]
    if bad:
        raise ThermoGFNError(f"{path}: block(s) {bad} do not have exactly 2 attachment atoms; string decoding "
                             "needs a left and a right attachment per block")
    return Blocks(smiles, tuple((int(r[0]), int(r[1])) for r in rs))


def load_blocks(task_name: str, data_dir: str | os.PathLike | None = None) -> Blocks:
    """The checked block file of ``task_name`` (``qm9str`` or ``sehstr``), located like the task's data."""
    if task_name not in BLOCK_FILES:
        raise ThermoGFNError(f"task {task_name!r} has no molecule blocks; known: {', '.join(BLOCK_FILES)}")
    folder, name, sha = BLOCK_FILES[task_name]
    how = (f"pass --data-dir DIR or set THERMOGFN_DATA_DIR to a folder holding {folder}/{name} "
           f"(datasets/{folder}/{name} in dbsxodud-11/logit-gfn)")
    return _read_blocks(require_file(resolve_data_dir(data_dir, folder), name, sha, how).resolve())


@functools.lru_cache(maxsize=8)
def _block_mols(blocks: Blocks) -> tuple[Any, ...]:
    chem = _chem()
    mols = tuple(chem.MolFromSmiles(s) for s in blocks.smiles)
    for s, m, (a, b) in zip(blocks.smiles, mols, blocks.attach, strict=True):
        if m is None or max(a, b) >= m.GetNumAtoms():
            raise ThermoGFNError(f"block {s!r} does not parse or has attachment atoms {a, b} out of range")
    return mols


def _join(ids: list[int], blocks: Blocks) -> Any:
    """One molecule from block ids (None if RDKit cannot sanitise it)."""
    frags = _block_mols(blocks)
    starts = [0]
    for i in ids[:-1]:
        starts.append(starts[-1] + frags[i].GetNumAtoms())
    bonds = [(starts[k] + blocks.attach[ids[k]][1], starts[k + 1] + blocks.attach[ids[k + 1]][0])
             for k in range(len(ids) - 1)]
    return join_fragments([frags[i] for i in ids], bonds)


def join_fragments(mols: list[Any], bonds: list[tuple[int, int]]) -> Any:
    """The molecules ``mols`` combined in order (atoms of the k-th follow those before it), with a single bond
    per pair of atom indices in ``bonds``, each bonded atom with explicit hydrogens losing one per bond;
    sanitised, or None when RDKit cannot sanitise it."""
    chem = _chem()
    mol = mols[0]
    for m in mols[1:]:
        mol = chem.CombineMols(mol, m)
    rw = chem.RWMol(mol)
    for a, b in bonds:
        rw.AddBond(a, b, chem.BondType.SINGLE)
        for atom in (rw.GetAtomWithIdx(a), rw.GetAtomWithIdx(b)):
            if atom.GetNumExplicitHs() > 0:
                atom.SetNumExplicitHs(atom.GetNumExplicitHs() - 1)
    out = rw.GetMol()
    from rdkit import rdBase

    quiet = rdBase.BlockLogs()  # no console noise for an invalid molecule, while it lives
    try:
        chem.SanitizeMol(out)
    except Exception:  # noqa: BLE001 - RDKit raises several exception types for invalid chemistry
        return None
    finally:
        del quiet
    return out


def decode_molecules(task_name: str, x: torch.Tensor, data_dir: str | os.PathLike | None = None) -> list[Any]:
    """RDKit molecules (None where sanitising fails) for block strings ``x`` (LongTensor (B, L))."""
    blocks = load_blocks(task_name, data_dir)
    rows = x.detach().to("cpu", torch.int64).tolist()
    if any(v < 0 or v >= len(blocks.smiles) for row in rows for v in row):
        raise ThermoGFNError(f"block ids must lie in 0..{len(blocks.smiles) - 1} for task {task_name}")
    return [_join(row, blocks) if row else None for row in rows]


def to_smiles(mols: list[Any]) -> list[str | None]:
    """Canonical SMILES of each molecule (None stays None)."""
    chem = _chem()
    return [None if m is None else chem.MolToSmiles(m) for m in mols]


def decode_smiles(task_name: str, x: torch.Tensor, data_dir: str | os.PathLike | None = None) -> list[str | None]:
    """Canonical SMILES of the molecules the block strings ``x`` decode to."""
    return to_smiles(decode_molecules(task_name, x, data_dir))


def morgan_fingerprints(mols: list[Any], radius: int = 2, n_bits: int = 1024) -> list[Any]:
    """Morgan bit-vector fingerprints (same bits as ``GetMorganFingerprintAsBitVect(mol, radius, n_bits)``)."""
    _chem()
    from rdkit.Chem import rdFingerprintGenerator

    if any(m is None for m in mols):
        raise ThermoGFNError("cannot fingerprint a molecule that failed to decode (None)")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return [gen.GetFingerprint(m) for m in mols]


def mean_pairwise_tanimoto_distance(mols: list[Any], radius: int = 2, n_bits: int = 1024) -> float:
    """True mean of ``1 - Tanimoto`` over unordered pairs of Morgan fingerprints (0.0 for fewer than 2)."""
    n = len(mols)
    if n < 2:
        return 0.0
    from rdkit import DataStructs

    fps = morgan_fingerprints(mols, radius, n_bits)
    total = sum(len(fps) - 1 - i - sum(DataStructs.BulkTanimotoSimilarity(fps[i], fps[i + 1:]))
                for i in range(n - 1))
    return total / (n * (n - 1) / 2)


def molecule_diversity(task: Task, x: torch.Tensor) -> float:
    """Tanimoto diversity of a molecule task's objects; Hamming (warned once) when RDKit is missing."""
    global _warned_fallback
    if not have_rdkit():
        from thermogfn.metrics import mean_pairwise_distance

        if not _warned_fallback:
            warnings.warn(f"RDKit not found: {task.name} diversity falls back to Hamming distance; {INSTALL_HINT}",
                          RuntimeWarning, stacklevel=2)
            _warned_fallback = True
        return mean_pairwise_distance(x, task.distance)  # type: ignore[arg-type]
    return mean_pairwise_tanimoto_distance(decode_molecules(task.name, x, getattr(task, "data_path", None)))
