"""The 2021 fragment vocabulary, molecule assembly and sEH MPNN proxy against the 950 reference molecules.

Needs ``../shared/data/seh_proxy`` (or ``$THERMOGFN_DATA_DIR``) and RDKit; each test skips with the reason otherwise.
The proxy runs in float64 here: it reproduces both reference columns to an absolute error below 1e-10 (1e-14
measured); float32 stays within 2e-5 absolute.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from thermogfn.errors import DataNotFoundError, ThermoGFNError
from thermogfn.tasks import fragments, seh_proxy
from thermogfn.tasks.data import data_dir
from thermogfn.tasks.fetch import data_status
from thermogfn.tasks.fragments import FragmentVocab, load_vocab
from thermogfn.tasks.seh_proxy import SEHProxy, seh_reward

DATA = data_dir(None, fragments.FOLDER)
REFERENCE = DATA / "reference_scores.csv"
needs_data = pytest.mark.skipif(
    not all((DATA / f).is_file() for f in (fragments.VOCAB_NAME, seh_proxy.PARAMS_NAME, REFERENCE.name)),
    reason=f"sEH proxy data not found in {DATA}; set THERMOGFN_DATA_DIR or run `thermogfn data fetch sehfrag`")
pytestmark = needs_data


@pytest.fixture(scope="module")
def rdkit_chem() -> Any:
    return pytest.importorskip("rdkit.Chem", reason="RDKit missing: pip install 'thermogfn[chem]'")


@pytest.fixture(scope="module")
def vocab() -> FragmentVocab:
    return load_vocab()


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    with open(REFERENCE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key in ("blockidxs", "jbonds", "stems"):
            row[key] = json.loads(row[key])
    return rows


@pytest.fixture(scope="module")
def mols(rdkit_chem: Any, vocab: FragmentVocab, reference: list[dict[str, Any]]) -> list[Any]:
    return [vocab.assemble(r["blockidxs"], r["jbonds"]) for r in reference]


@pytest.fixture(scope="module")
def proxy64(rdkit_chem: Any) -> SEHProxy:
    return SEHProxy.load(dtype=torch.float64, batch_size=1024)


def _column(reference: list[dict[str, Any]], key: str) -> torch.Tensor:
    return torch.tensor([float(r[key]) for r in reference], dtype=torch.float64)


def test_vocab(vocab: FragmentVocab, rdkit_chem: Any) -> None:
    assert len(vocab) == 105 and vocab.n_fragments == 72
    assert vocab.smiles[2] == vocab.smiles[1] == "CO"
    assert vocab.block_r[1] == (0, 1) and vocab.block_r[2] == (1, 0, 0, 0)
    assert vocab.fragment_id[1] == vocab.fragment_id[2] != vocab.fragment_id[0]
    assert list(vocab.n_atoms) == [rdkit_chem.MolFromSmiles(s).GetNumAtoms() for s in vocab.smiles]
    assert vocab.atom_offsets([0, 1, 4]) == [0, 6, 8]
    assert vocab.stem_atoms([0, 1, 4], [[2, 3], [0, 5]]) == [11, 5]


def test_assembly_matches_reference(vocab: FragmentVocab, mols: list[Any], reference: list[dict[str, Any]],
                                    rdkit_chem: Any) -> None:
    assert [rdkit_chem.MolToSmiles(m) for m in mols] == [r["smiles"] for r in reference]
    r = reference[0]
    assert vocab.assemble(r["blockidxs"], r["jbonds"]) is mols[0]  # cached
    assert vocab.smiles_of([], []) is None
    # F (block 25) bonded to two carbons (block 8) has valence 2: sanitising fails, giving None rather than an error
    assert vocab.assemble([25, 8, 8], [[0, 1, 0, 0], [0, 2, 0, 0]]) is None
    with pytest.raises(ThermoGFNError, match="0..104"):
        vocab.assemble([105], [])
    with pytest.raises(ThermoGFNError, match="junction bond"):
        vocab.assemble([25, 8], [[0, 1, 1, 0]])


def test_proxy_reproduces_reference(proxy64: SEHProxy, vocab: FragmentVocab, mols: list[Any],
                                    reference: list[dict[str, Any]]) -> None:
    zero = proxy64(mols)
    stems = [vocab.stem_atoms(r["blockidxs"], r["stems"]) for r in reference]
    with_stems = proxy64(mols, stems)
    assert zero.dtype == torch.float64 and zero.shape == (950,)
    assert (zero - _column(reference, "proxy_zero_mask")).abs().max() < 1e-10
    assert (with_stems - _column(reference, "proxy_stem_mask")).abs().max() < 1e-10
    stored = _column(reference, "stored_reward")
    reward = seh_reward(with_stems, "bengio2021")
    above = with_stems > 0.1
    assert int(above.sum()) == 923
    assert ((reward - stored).abs() / stored)[above].max() < 1e-9
    assert torch.equal(reward[~above], stored[~above])


def test_float32_and_batching(proxy64: SEHProxy, mols: list[Any], reference: list[dict[str, Any]]) -> None:
    ref = _column(reference, "proxy_zero_mask")[:100]
    proxy32 = SEHProxy.load(batch_size=256)
    assert (proxy32(mols[:100]).double() - ref).abs().max() < 2e-5
    small = SEHProxy.load(dtype=torch.float64, batch_size=7)
    assert (small(mols[:30]) - proxy64(mols[:30])).abs().max() < 1e-12


def test_none_molecules_and_rewards(proxy64: SEHProxy, mols: list[Any], rdkit_chem: Any) -> None:
    methane, benzene = rdkit_chem.MolFromSmiles("C"), rdkit_chem.MolFromSmiles("c1ccccc1")
    out = proxy64([None, mols[0], methane, None, benzene], [[], [], [], [0], [2, 3]])
    assert out[[0, 3]].isnan().all() and out[[1, 2, 4]].isfinite().all()
    assert proxy64([None]).isnan().all() and proxy64([]).shape == (0,)
    r = seh_reward(torch.tensor([float("nan"), -1.0, 4.0, 1e4]))
    assert r.tolist() == pytest.approx([1e-4, 1e-4, 0.5, 100.0])
    floor = (0.1 / 8) ** 10
    r2021 = seh_reward(torch.tensor([float("nan"), -1.0, 8.0]), "bengio2021")
    assert r2021.tolist() == pytest.approx([floor, floor, 1.0])
    with pytest.raises(ThermoGFNError, match="unknown sEH reward transform"):
        seh_reward(r, "exp")
    with pytest.raises(ThermoGFNError, match="2 stem lists for 1 molecules"):
        proxy64([methane], [[], []])
    with pytest.raises(ThermoGFNError, match="not among its 1 atoms"):
        proxy64([methane], [[1]])
    with pytest.raises(ThermoGFNError, match="outside the proxy's elements"):
        proxy64([rdkit_chem.MolFromSmiles("[U]")])


def _one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as exc:
        load_vocab(tmp_path)
    assert "thermogfn data fetch sehfrag" in _one_line(exc) and fragments.VOCAB_NAME in str(exc.value)
    with pytest.raises(DataNotFoundError) as exc:
        SEHProxy.load(tmp_path)
    assert "thermogfn data fetch sehfrag" in _one_line(exc) and seh_proxy.PARAMS_NAME in str(exc.value)
    text = (DATA / fragments.VOCAB_NAME).read_bytes()
    (tmp_path / fragments.VOCAB_NAME).write_bytes(text.replace(b"c1ccccc1", b"c1ccncc1", 1))
    with pytest.raises(ThermoGFNError, match="is corrupt") as exc:
        load_vocab(tmp_path)
    assert "thermogfn data fetch sehfrag" in _one_line(exc)
    (tmp_path / seh_proxy.PARAMS_NAME).write_bytes(b"not a zip")
    with pytest.raises(ThermoGFNError, match="not a readable .npz") as exc:
        SEHProxy.load(tmp_path)
    _one_line(exc)
    with np.load(DATA / seh_proxy.PARAMS_NAME) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["p21"] = arrays["p21"] + 1
    np.savez(tmp_path / seh_proxy.PARAMS_NAME, **arrays)
    with pytest.raises(ThermoGFNError, match="is corrupt") as exc:
        SEHProxy.load(tmp_path)
    _one_line(exc)


def test_rebuilt_npz_is_accepted_by_its_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               rdkit_chem: Any) -> None:
    """An .npz with other bytes (another zlib, or np.savez) but the same arrays loads and counts as present."""
    folder = tmp_path / fragments.FOLDER
    folder.mkdir()
    shutil.copy(DATA / fragments.VOCAB_NAME, folder)
    with np.load(DATA / seh_proxy.PARAMS_NAME) as data:
        np.savez(folder / seh_proxy.PARAMS_NAME, **{k: data[k] for k in data.files})
    assert SEHProxy.load(folder)([rdkit_chem.MolFromSmiles("CCO")]).isfinite().all()
    monkeypatch.setenv("THERMOGFN_DATA_DIR", str(tmp_path))
    assert {row.task: row.status for row in data_status()}["sehfrag"] == "ok"


def test_missing_rdkit(vocab: FragmentVocab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rdkit", None)  # `from rdkit import Chem` now raises ImportError
    fresh = dataclasses.replace(vocab)  # same data, empty assembly cache
    assert fresh.n_atoms == vocab.n_atoms  # loading needs no RDKit
    with pytest.raises(ThermoGFNError, match=r"install the chem extra: pip install 'thermogfn\[chem\]'") as exc:
        fresh.assemble([0, 1], [[0, 1, 0, 0]])
    _one_line(exc)
    with pytest.raises(ThermoGFNError, match=r"sEH proxy .* RDKit.*thermogfn\[chem\]") as exc:
        SEHProxy.load()
    _one_line(exc)
