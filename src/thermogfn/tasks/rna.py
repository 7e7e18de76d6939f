"""RNA binding L14_RNA1/2/3 (FLEXS ``RNABinding``): 14-nt RNA scored by ViennaRNA duplex energy to a target.

Needs the ``rna`` extra (``ViennaRNA==2.8.0``, the version the reference normalisers were computed with).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import ModuleType

import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.modes import ThresholdModeRule
from thermogfn.tasks.base import (
    Shaping,
    Task,
    TaskDefaults,
    check_min_length,
    objects_to_strings,
    strings_to_objects,
)
from thermogfn.tasks.data import data_dir as resolve_data_dir
from thermogfn.tasks.data import require_file

ALPHABET = "UCGA"  # Logit-GFN's order (FLEXS uses ACGU)
LENGTH = 14
VIENNA_VERSION = "2.8.0"
INSTALL_HINT = "install the rna extra: pip install 'thermogfn[rna]'"
# FLEXS flexs==0.2.8 flexs/landscapes/rna.py registry(): L14_RNAk uses targets[k-1] (one target each).
TARGETS = {
    1: "GAACGAGGCACAUUCCGGCUCGCCCGGCCCAUGUGAGCAUGGGCCGGACCCCGUCCGCGCGGGGCCCCCGCGCGGACGGGGGCGAGCCGGAAUGUGCCUC",
    2: "GAGGCACAUUCCGGCUCGCCCCCGUCCGCGCGGGGGCCCCGCGCGGACGGGGUCCGGCCCGCGCGGGGCCCCCGCGCGGGAGCCGGAAUGUGCCUCGUUC",
    3: "CCGGUGAUACUGUUAGUGGUCACGGUGCAUUUAUAGCGCUAAAGUACAGUCUUCCCCUGUUGAACGGCGCCAUUGCAUACAGGGCCAGCCGCGUAACGCC",
}
# duplexfold(revcomp(target), target).energy * 14 / 100 under ViennaRNA 2.8.0 (README of the data folder).
NORMS = {1: -36.414, 2: -37.842, 3: -30.184}
# Substitutes for the unknown max over 4^14 used by the S_max scaling: the best fitness reached by 300
# steepest-ascent hill climbs (all 42 Hamming-1 neighbours per step, random starts, ViennaRNA 2.8.0).
# RNA1: equals the best of the 336 listed modes (GGGGGCCCCGCGCG); RNA2: GGGGGCCCCGCGCG; RNA3: GCGGCUGGCCCUGU.
R_MAX = {1: 1.0545394628439608, 2: 1.0147455208498493, 3: 1.1164855552610655}
# Mode rule for RNA2/3: threshold at the same fraction of R_MAX as the weakest listed RNA1 mode
# (0.62338661 / 1.05453946 = 0.5911, i.e. the same shaped reward 10 * 0.5911**8 = 0.149).
MODE_FRACTION = 0.6233866095457790 / R_MAX[1]
# Distance 3, not the list's minimum pairwise distance 2: on the 336 RNA1 modes plus their 13,967 Hamming-1
# neighbours (9,791 of the 14,303 are above the threshold), the rule fed in random order counts 3,521 modes
# with distance 2 but 332 with distance 3 (334 in descending-fitness order), close to the list's 336.
MODE_MIN_DISTANCE = 3
TARGETS_NAME = "l14_rna_targets.json"
TARGETS_SHA256 = "98b125c1e8988c803f25fe4590cc55488c4ac04cf62f33d90bde28cc98aabcb1"
MODES_NAME = "modes_rna1.txt"
MODES_SHA256 = "33d0979484ae030e7408875f21fc27cf37054592ecb6fa3b6bdbc873d679b87c"
N_MODES_RNA1 = 336
POOL_MIN_BATCH = 256
HOW_TO_GET = ("pass --data-dir DIR or set THERMOGFN_DATA_DIR to a folder holding rna/" + MODES_NAME +
              " (336 L14_RNA1 modes: dbsxodud-11/logit-gfn datasets/rna/modes_rna1.pkl, one sequence a line)")
_COMPLEMENT = str.maketrans("ACGU", "UGCA")


def import_rna() -> ModuleType:
    """The ViennaRNA module ``RNA``; a one-line :class:`ThermoGFNError` when it is not installed."""
    try:
        import RNA
    except ImportError:
        raise ThermoGFNError(f"the RNA tasks need ViennaRNA (module RNA), which is not installed; "
                             f"{INSTALL_HINT}") from None
    return RNA


def norm_of(target: str) -> float:
    """FLEXS normaliser ``duplexfold(revcomp(target), target).energy * 14 / len(target)``."""
    revcomp = target.translate(_COMPLEMENT)[::-1]
    return import_rna().duplexfold(revcomp, target).energy * LENGTH / len(target)


def fold_fitness(job: tuple[tuple[str, ...], tuple[float, ...], list[str]]) -> list[float]:
    """Fitness of each sequence: mean over targets of ``duplexfold(target, seq).energy / norm``.

    Module-level (picklable) so a process pool can run it; ``job = (targets, norms, sequences)``.
    """
    targets, norms, seqs = job
    duplexfold = import_rna().duplexfold
    return [sum(duplexfold(t, s).energy / n for t, n in zip(targets, norms, strict=True)) / len(targets)
            for s in seqs]


def targets_from_json(directory: str | os.PathLike) -> dict[int, tuple[str, float]]:
    """``{k: (target, norm)}`` from the data folder's checksummed ``l14_rna_targets.json``."""
    path = require_file(directory, TARGETS_NAME, TARGETS_SHA256, HOW_TO_GET.replace(MODES_NAME, TARGETS_NAME))
    problems = json.loads(path.read_text(encoding="utf-8"))["problems"]
    return {k: (problems[f"L14_RNA{k}"]["target"], float(problems[f"L14_RNA{k}"]["norm"])) for k in (1, 2, 3)}


def _default_context() -> str:
    """'fork' where it is safe and cheap (Linux: no re-import of ``__main__``, ~10 ms start), else 'spawn'."""
    return "fork" if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() \
        else "spawn"


class RNABindingTask(Task):
    """L14_RNA{which}: sequences of 14 nt over ``UCGA`` scored by ViennaRNA duplex binding to a 100-nt target.

    ``r(x) = duplexfold(target, x).energy / norm`` with ``norm = duplexfold(revcomp(target), target).energy
    * 14 / 100`` computed with the installed ViennaRNA (a warning when it differs from the 2.8.0 value the
    reference used). ``r`` is ~1 for the best binders and can exceed 1 or be negative.

    Shaping ``10 * (max(r, 0.001) / R_MAX)**8``. The true max over 4^14 is unknown (the reference scaled by
    the max of an unpublished full table). Substitute ``R_MAX``: the best fitness reached by 300 steepest-ascent
    hill climbs from random starts: RNA1 1.0545394628, RNA2 1.0147455208, RNA3 1.1164855553. For RNA1 this
    equals the best of its 336 listed modes (local maxima, most likely including the table's max), which
    supports the procedure; sequences beating it would get shaped rewards slightly above 10.

    Modes: RNA1 has the 336-sequence list (:meth:`mode_index`, needs the data folder); RNA2/RNA3 have none and
    use :meth:`mode_rule`: ``ThresholdModeRule(0.5911 * R_MAX, 3)``: the weakest listed RNA1 mode's share of
    its max (0.623 / 1.0545; shaped reward 0.149), and the distance at which the rule, applied to RNA1 samples
    in arbitrary order, counts about as many modes as the list has (see ``MODE_MIN_DISTANCE``).

    ``min_length`` (1..14) also allows shorter sequences (duplexfold scores any length; the normaliser and
    ``R_MAX`` stay those of length 14, so shorter binders score lower). Their padded rows count as far apart in
    the mode rule as their differing positions plus their length difference (Hamming on the padded rows).

    Rewards are cached by object index. Uncached batches of >= 256 sequences are scored by a reused process
    pool of ``workers`` processes (default ``min(4, os.cpu_count())``; ``workers=1`` disables it), started
    with ``mp_context`` (default 'fork' on Linux, else 'spawn'); a broken pool falls back to inline scoring.
    """

    alphabet = ALPHABET

    def __init__(self, which: int, data_dir: str | os.PathLike | None = None, workers: int | None = None,
                 mp_context: str | None = None, min_length: int | None = None) -> None:
        if which not in (1, 2, 3):
            raise ThermoGFNError(f"RNA task must be 1, 2 or 3 (L14_RNA1/2/3), got {which!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ThermoGFNError(f"workers must be an integer >= 1, got {workers!r}")
        check_min_length(min_length, LENGTH)
        rna = import_rna()
        self.which = which
        self.name = f"rna{which}"
        self.vocab_size = len(ALPHABET)
        self.length = LENGTH
        self.min_length = min_length
        self.targets: tuple[str, ...] = (TARGETS[which],)
        self.norms: tuple[float, ...] = tuple(norm_of(t) for t in self.targets)
        if not math.isclose(self.norms[0], NORMS[which], abs_tol=1e-6):
            warnings.warn(f"ViennaRNA {getattr(rna, '__version__', '?')} gives the {self.name} normaliser "
                          f"{self.norms[0]:.3f}, not {NORMS[which]} (ViennaRNA {VIENNA_VERSION}); rewards will "
                          f"differ from the reference: {INSTALL_HINT}", stacklevel=2)
        self.data_path = resolve_data_dir(data_dir, "rna")
        self.workers = workers if workers is not None else min(4, os.cpu_count() or 1)
        self.mp_context = mp_context or _default_context()
        self.pool_min_batch = POOL_MIN_BATCH
        self.shaping = Shaping.scaled(exponent=8, r_min=0.001, s_max=10, r_max=R_MAX[which])
        self.defaults = TaskDefaults(hidden=1024, eps=0.01, rounds=5000, lr=1e-4)
        self._cache: dict[int, float] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._modes: torch.Tensor | None = None

    # -- rewards ---------------------------------------------------------------------------------------
    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.dim() != 2 or x.shape[1] != LENGTH:
            raise ThermoGFNError(f"{self.name} objects must have shape (B, {LENGTH}), got {tuple(x.shape)}")
        top = self.vocab_size - 1 + int(self.variable_length)  # the pad of shorter sequences
        if x.numel() and (int(x.min()) < 0 or int(x.max()) > top):
            raise ThermoGFNError(f"{self.name} objects must hold codes 0..{top} ({ALPHABET}"
                                 f"{', then the pad' if top >= self.vocab_size else ''})")
        idx = self.object_index(x).tolist()
        cache = self._cache
        todo = list(dict.fromkeys(i for i in idx if i not in cache))
        if todo:
            seqs = self.decode(self.objects_from_index(torch.tensor(todo, dtype=torch.int64)))
            cache.update(zip(todo, self._evaluate(seqs), strict=True))
        return torch.tensor([cache[i] for i in idx], dtype=torch.float64)

    def score_strings(self, strings: list[str]) -> torch.Tensor:
        """Raw fitness of sequences given as strings over ``UCGA`` (any order of the letters is fine)."""
        return self.raw_reward(self.encode(strings))

    def _evaluate(self, seqs: list[str]) -> list[float]:
        """Fitness of uncached sequences: inline for small batches, else in the process pool."""
        if len(seqs) < self.pool_min_batch or self.workers <= 1:
            return fold_fitness((self.targets, self.norms, seqs))
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(self.mp_context))
        size = -(-len(seqs) // (4 * self.workers))
        jobs = [(self.targets, self.norms, seqs[i:i + size]) for i in range(0, len(seqs), size)]
        try:
            with warnings.catch_warnings():  # Python >= 3.12 warns on fork() from a threaded process (torch)
                warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
                return [f for part in self._pool.map(fold_fitness, jobs) for f in part]
        except BrokenProcessPool as exc:
            self.close()
            self.workers = 1
            warnings.warn(f"{self.name}: the reward process pool failed ({exc}); scoring inline from now on "
                          "(with mp_context='spawn', guard your script with `if __name__ == '__main__':`)",
                          RuntimeWarning, stacklevel=3)
            return fold_fitness((self.targets, self.norms, seqs))

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def clear_cache(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        """Shut the process pool down (it is recreated on demand)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"] = None
        return state

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- modes -----------------------------------------------------------------------------------------
    def mode_index(self) -> torch.Tensor | None:
        """RNA1: sorted indices of the 336 listed modes (from the data folder); RNA2/3: None."""
        if self.which != 1:
            return None
        if self._modes is None:
            path = require_file(self.data_path, MODES_NAME, MODES_SHA256, HOW_TO_GET)
            idx = torch.unique(self.object_index(self.encode(path.read_text(encoding="utf-8").split())))
            if len(idx) != N_MODES_RNA1:
                raise ThermoGFNError(f"{path} lists {len(idx)} distinct modes, expected {N_MODES_RNA1}; "
                                     "re-download it")
            self._modes = idx
        return self._modes

    def mode_rule(self) -> ThresholdModeRule | None:
        """A fresh :class:`ThresholdModeRule` for RNA2/3 (no mode list exists); None for RNA1."""
        return None if self.which == 1 else ThresholdModeRule(self.mode_threshold, MODE_MIN_DISTANCE)

    @property
    def mode_threshold(self) -> float:
        """Raw-fitness threshold of :meth:`mode_rule`: ``0.5911 * R_MAX`` (RNA1: its weakest listed mode)."""
        return MODE_FRACTION * R_MAX[self.which]

    # -- strings ---------------------------------------------------------------------------------------
    def decode(self, x: torch.Tensor) -> list[str]:
        return objects_to_strings(x, ALPHABET)

    def encode(self, strings: list[str]) -> torch.Tensor:
        return strings_to_objects(strings, ALPHABET, LENGTH, self.min_length)

