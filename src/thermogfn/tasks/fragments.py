"""The 105-fragment vocabulary of the Bengio et al. (2021) fragment GFlowNet and molecule assembly from fragments.

``blocks_PDB_105.json`` (GFNOrg/gflownet ``mols/data``) lists 105 entries with 72 distinct SMILES; entries with the
same SMILES differ in the order of ``block_r``, whose first atom is the one that bonds to the parent block.
A molecule is a list of block indices plus junction bonds ``[block_i, block_j, atom_in_i, atom_in_j]``; it is
assembled as in the original code: the blocks' molecules are combined in order (atoms of block k follow those of
blocks < k), one single bond is added per junction, each bonded atom with an explicit H loses one, and the result
is sanitised (None when that fails). Loading the vocabulary needs no RDKit; assembly imports it lazily.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.chem import _chem, join_fragments
from thermogfn.tasks.data import data_dir as resolve_data_dir
from thermogfn.tasks.data import require_file

__all__ = ["FOLDER", "VOCAB_NAME", "VOCAB_SHA256", "BlockTypes", "FragmentVocab", "block_types", "count_atoms",
           "load_vocab", "row_tree"]

FOLDER = "seh_proxy"
VOCAB_NAME = "blocks_PDB_105.json"
VOCAB_SHA256 = "0fcc09130c2e03046ecf3ccc6cb5f903abdb912a541b3f9f2d4578ab01453b88"
HOW_TO_GET = ("run `thermogfn data fetch sehfrag`, or pass --data-dir DIR / set THERMOGFN_DATA_DIR to a folder "
              f"holding {FOLDER}/{VOCAB_NAME} (mols/data/{VOCAB_NAME} in GFNOrg/gflownet)")
CACHE_SIZE = 1 << 14
# Heavy atoms of a SMILES: bracket atoms, two-letter organic-subset atoms, then one-letter (aromatic) ones.
_ATOM_RE = re.compile(r"\[[^\]]*\]|Br|Cl|[BCNOPSFI]|[bcnops]")


def count_atoms(smiles: str) -> int:
    """Number of atoms RDKit creates for ``smiles`` (no implicit H), counted without RDKit."""
    return len(_ATOM_RE.findall(smiles))


@dataclass(frozen=True)
class FragmentVocab:
    """Fragment vocabulary, one entry per block index (plain Python data).

    ``block_r[i]`` lists block i's attachment atoms, the first being the one that bonds to its parent;
    ``fragment_id[i]`` is the index of block i's SMILES among the distinct SMILES (in order of first appearance).
    """

    names: tuple[str, ...]
    smiles: tuple[str, ...]
    block_r: tuple[tuple[int, ...], ...]
    n_atoms: tuple[int, ...]
    fragment_id: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.smiles)

    @property
    def n_fragments(self) -> int:
        """Number of distinct SMILES."""
        return max(self.fragment_id) + 1

    def atom_offsets(self, blockidxs: Sequence[int]) -> list[int]:
        """Index of each block's first atom in the assembled molecule."""
        out, n = [], 0
        for b in blockidxs:
            out.append(n)
            n += self.n_atoms[b]
        return out

    def stem_atoms(self, blockidxs: Sequence[int], stems: Sequence[Sequence[int]]) -> list[int]:
        """Molecule atom indices of open stems given as ``[block, atom_in_block]``."""
        starts = self.atom_offsets(blockidxs)
        return [starts[b] + a for b, a in stems]

    def assemble(self, blockidxs: Sequence[int], jbonds: Sequence[Sequence[int]]) -> Any:
        """The sanitised RDKit molecule (None if sanitising fails or there are no blocks); cached, do not modify it.

        Raises :class:`ThermoGFNError` for a block or atom index out of range, or when RDKit is missing.
        """
        return self._cached_assemble(tuple(int(b) for b in blockidxs), tuple(tuple(int(v) for v in j) for j in jbonds))

    def smiles_of(self, blockidxs: Sequence[int], jbonds: Sequence[Sequence[int]]) -> str | None:
        """Canonical SMILES of the assembled molecule (None if it does not sanitise)."""
        mol = self.assemble(blockidxs, jbonds)
        return None if mol is None else _chem().MolToSmiles(mol)

    @functools.cached_property
    def _cached_assemble(self) -> Any:
        return functools.lru_cache(maxsize=CACHE_SIZE)(self._assemble)

    @functools.cached_property
    def _block_mols(self) -> tuple[Any, ...]:
        chem = _chem()
        mols = tuple(chem.MolFromSmiles(s) for s in self.smiles)
        for i, m in enumerate(mols):
            if m is None or m.GetNumAtoms() != self.n_atoms[i]:
                raise ThermoGFNError(f"block {i} ({self.smiles[i]!r}) does not parse to {self.n_atoms[i]} atoms")
        return mols

    def _assemble(self, blockidxs: tuple[int, ...], jbonds: tuple[tuple[int, ...], ...]) -> Any:
        _chem()  # RDKit is there, or a one-line error naming the chem extra
        if not blockidxs:
            return None
        if any(b < 0 or b >= len(self) for b in blockidxs):
            raise ThermoGFNError(f"block indices must lie in 0..{len(self) - 1}, got {list(blockidxs)}")
        frags = self._block_mols
        starts = self.atom_offsets(blockidxs)
        bonds = []
        for j in jbonds:
            if len(j) != 4 or not all(0 <= j[k] < len(blockidxs) for k in (0, 1)) or not all(
                    0 <= j[k + 2] < self.n_atoms[blockidxs[j[k]]] for k in (0, 1)):
                raise ThermoGFNError(f"junction bond {list(j)} is not [block_i, block_j, atom_in_i, atom_in_j] "
                                     f"within blocks {list(blockidxs)}")
            bonds.append((starts[j[0]] + j[2], starts[j[1]] + j[3]))
        return join_fragments([frags[b] for b in blockidxs], bonds)


@dataclass(frozen=True)
class BlockTypes:
    """What a block contributes to a molecule once placed: its fragment and the multiset of its attachment atoms.

    Entries with one SMILES and the same atoms in another order (another atom bonding to the parent) are one
    *type*: ``type_of[entry]``; per type, ``atoms`` (sorted), ``fragment`` and ``entry`` (its first entry).
    Types are numbered in order of first appearance."""

    type_of: tuple[int, ...]
    atoms: tuple[tuple[int, ...], ...]
    fragment: tuple[int, ...]
    entry: tuple[int, ...]


def block_types(block_r: Sequence[Sequence[int]], fragment_id: Sequence[int]) -> BlockTypes:
    """The block types of a vocabulary given as ``block_r`` and ``fragment_id`` per entry."""
    keys: dict[tuple[int, tuple[int, ...]], int] = {}
    type_of = tuple(keys.setdefault((int(f), tuple(sorted(int(a) for a in r))), len(keys))
                    for f, r in zip(fragment_id, block_r, strict=True))
    return BlockTypes(type_of, tuple(k[1] for k in keys), tuple(k[0] for k in keys),
                      tuple(type_of.index(t) for t in range(len(keys))))


def row_tree(row: Sequence[int], n_slots: int, empty_type: int) -> tuple[list[int], list[tuple[int, int, int, int]]]:
    """A fragment tree stored as one row (``n_slots`` slots of: type, parent slot, parent atom, own atom, in four
    column groups; slots in preorder, empty ones ``empty_type``): the types of its blocks and its bonds
    ``(parent, child, atom in parent, atom in child)``."""
    types = [int(t) for t in row[:n_slots] if t != empty_type]
    bonds = [(int(row[n_slots + i]), i, int(row[2 * n_slots + i]), int(row[3 * n_slots + i]))
             for i in range(1, len(types))]
    return types, bonds


@functools.lru_cache(maxsize=8)
def _read_vocab(path: Path) -> FragmentVocab:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        n = len(spec["block_smi"])
        keys = [str(i) for i in range(n)]
        names = tuple(str(spec["block_name"][k]) for k in keys)
        smiles = tuple(str(spec["block_smi"][k]) for k in keys)
        block_r = tuple(tuple(int(a) for a in spec["block_r"][k]) for k in keys)
    except (ValueError, KeyError, TypeError) as exc:
        raise ThermoGFNError(f"{path} is not a fragment file with block_name/block_smi/block_r keyed 0..n-1 "
                             f"({type(exc).__name__}: {exc}); {HOW_TO_GET}") from None
    n_atoms = tuple(count_atoms(s) for s in smiles)
    bad = [i for i in range(n) if not block_r[i] or not all(0 <= a < n_atoms[i] for a in block_r[i])]
    if bad:
        raise ThermoGFNError(f"{path}: block(s) {bad} have no attachment atoms or ones out of range; {HOW_TO_GET}")
    distinct = {s: k for k, s in enumerate(dict.fromkeys(smiles))}
    return FragmentVocab(names, smiles, block_r, n_atoms, tuple(distinct[s] for s in smiles))


def load_vocab(data_dir: str | os.PathLike | None = None) -> FragmentVocab:
    """The checksummed 105-fragment vocabulary from ``seh_proxy/`` (located like task data)."""
    return _read_vocab(require_file(resolve_data_dir(data_dir, FOLDER), VOCAB_NAME, VOCAB_SHA256, HOW_TO_GET).resolve())
