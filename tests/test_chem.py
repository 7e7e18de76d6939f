"""Molecule decoding of QM9str/sEHstr block strings and Tanimoto diversity (needs RDKit and the shared data)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.metrics import mean_pairwise_distance
from thermogfn.tasks import chem
from thermogfn.tasks.base import strings_to_objects
from thermogfn.tasks.data import data_dir
from thermogfn.tasks.qm9str import QM9StrTask


def _need_blocks(task_name: str) -> None:
    folder, name, _ = chem.BLOCK_FILES[task_name]
    d = data_dir(None, folder)
    if not (d / name).is_file():
        pytest.skip(f"shared data not found ({d / name}); set THERMOGFN_DATA_DIR to run this test")


@pytest.fixture(scope="module")
def rdkit_chem() -> Any:
    """The rdkit.Chem module (skips without RDKit)."""
    return pytest.importorskip("rdkit.Chem", reason="RDKit missing: pip install 'thermogfn[chem]'")


@pytest.fixture(scope="module")
def qm9str() -> QM9StrTask:
    d = data_dir(None, "qm9str")
    if not (d / "qm9str_rewards.npz").is_file():
        pytest.skip(f"shared data not found ({d}); set THERMOGFN_DATA_DIR to run this test")
    return QM9StrTask(d)


def _canon(rdkit_chem: Any, smiles: str) -> str:
    return rdkit_chem.MolToSmiles(rdkit_chem.MolFromSmiles(smiles))


def test_qm9str_blocks_and_strings(rdkit_chem: Any) -> None:
    _need_blocks("qm9str")
    blocks = chem.load_blocks("qm9str")
    assert len(blocks.smiles) == 11
    singles = chem.decode_smiles("qm9str", torch.arange(11)[:, None])
    assert singles == [_canon(rdkit_chem, s) for s in blocks.smiles]
    strings = ["00000", "03000", "30000", "34000", "01234", "789a0"]
    got = chem.decode_smiles("qm9str", strings_to_objects(strings, "0123456789a", 5))
    assert got[0] == "CCCCC"  # the single-carbon block chains into pentane
    assert got[1] == _canon(rdkit_chem, "CC(F)CCC")  # CF joins at its carbon on both sides
    assert got[2] == _canon(rdkit_chem, "FCCCCC")
    assert got[3] == _canon(rdkit_chem, "FCC(=O)CCC")  # CF's right atom (C) bonds to C=O's left atom (C)
    g = torch.Generator().manual_seed(0)
    mols = chem.decode_molecules("qm9str", torch.randint(0, 11, (100, 5), generator=g))
    for smi in chem.to_smiles(mols):
        assert smi is not None and rdkit_chem.MolFromSmiles(smi) is not None


def test_sehstr_strings(rdkit_chem: Any) -> None:
    _need_blocks("sehstr")
    assert len(chem.load_blocks("sehstr").smiles) == 18
    # block 4 (pyridinium, attachments [3 = [nH+], 1]): the second copy bonds at its N, which loses its H
    assert chem.decode_smiles("sehstr", torch.tensor([[4, 4]])) == [_canon(rdkit_chem, "c1cc[n+](-c2ccc[nH+]c2)cc1")]
    g = torch.Generator().manual_seed(0)
    smiles = chem.decode_smiles("sehstr", torch.randint(0, 18, (100, 6), generator=g))
    assert all(s is not None and rdkit_chem.MolFromSmiles(s) is not None for s in smiles)
    with pytest.raises(ThermoGFNError, match="0..17"):
        chem.decode_molecules("sehstr", torch.tensor([[18, 0]]))


def test_tanimoto(rdkit_chem: Any) -> None:
    from rdkit import DataStructs

    a, b = rdkit_chem.MolFromSmiles("CCCCCO"), rdkit_chem.MolFromSmiles("c1ccccc1N")
    assert chem.mean_pairwise_tanimoto_distance([a, rdkit_chem.MolFromSmiles("OCCCCC")]) == 0.0
    assert chem.mean_pairwise_tanimoto_distance([a]) == 0.0
    fa, fb = chem.morgan_fingerprints([a, b])
    assert fa.GetNumBits() == 1024
    d = 1 - DataStructs.TanimotoSimilarity(fa, fb)
    assert 0 < d <= 1
    # pairs (a, a), (a, b), (a, b): the true mean over the 3 unordered pairs, not halved
    assert chem.mean_pairwise_tanimoto_distance([a, a, b]) == pytest.approx(2 * d / 3, abs=1e-12)
    with pytest.raises(ThermoGFNError, match="None"):
        chem.mean_pairwise_tanimoto_distance([a, None])


def test_task_diversity(rdkit_chem: Any, qm9str: QM9StrTask) -> None:
    x = qm9str.encode(["00000", "00000", "789a0", "a7a7a"])
    want = chem.mean_pairwise_tanimoto_distance(chem.decode_molecules("qm9str", x))
    assert qm9str.diversity(x) == pytest.approx(want) and 0 < want < 1
    assert qm9str.smiles(x[:1]) == ["CCCCC"]


def test_fallback_without_rdkit(qm9str: QM9StrTask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rdkit", None)  # makes `import rdkit` fail
    assert not chem.have_rdkit()
    with pytest.raises(ThermoGFNError, match=r"pip install 'thermogfn\[chem\]'"):
        chem.decode_molecules("qm9str", torch.zeros(1, 5, dtype=torch.long))
    monkeypatch.setattr(chem, "_warned_fallback", False)
    x = qm9str.encode(["00000", "01234", "789a0"])
    with pytest.warns(RuntimeWarning, match="Hamming"):
        assert qm9str.diversity(x) == mean_pairwise_distance(x, "hamming")
