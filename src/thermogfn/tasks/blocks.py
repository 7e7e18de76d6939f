"""What the molecule-as-block-string tasks (QM9str, sEHstr) share: their alphabet, mode list file, and
molecule decoding for SMILES and Tanimoto diversity."""

from __future__ import annotations

from pathlib import Path

import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.base import Task, objects_to_strings, strings_to_objects
from thermogfn.tasks.data import require_file


class BlockStringTask(Task):
    """A fixed-length string of building blocks; subclasses set the alphabet, data path and mode file."""

    alphabet: str
    data_path: Path
    modes_file: tuple[str, str, int]  # file name, sha256, expected number of distinct modes
    how_to_get: str
    _modes: torch.Tensor | None = None

    def mode_index(self) -> torch.Tensor:
        if self._modes is None:
            name, sha256, expected = self.modes_file
            path = require_file(self.data_path, name, sha256, self.how_to_get)
            idx = torch.unique(self.object_index(self.encode(path.read_text(encoding="utf-8").split())))
            if len(idx) != expected:
                raise ThermoGFNError(f"{path} lists {len(idx)} distinct modes, expected {expected}; re-download it")
            self._modes = idx
        return self._modes

    def smiles(self, x: torch.Tensor) -> list[str | None]:
        """SMILES of the molecules the block strings decode to (see :mod:`thermogfn.tasks.chem`)."""
        from thermogfn.tasks.chem import decode_smiles

        return decode_smiles(self.name, x, self.data_path)

    def diversity(self, x: torch.Tensor) -> float:
        """Mean pairwise ``1 - Tanimoto`` (Morgan r=2, 1024 bits); Hamming without RDKit (warned once)."""
        from thermogfn.tasks.chem import molecule_diversity

        return molecule_diversity(self, x)

    def decode(self, x: torch.Tensor) -> list[str]:
        return objects_to_strings(x, self.alphabet)

    def encode(self, strings: list[str]) -> torch.Tensor:
        return strings_to_objects(strings, self.alphabet, self.length)
