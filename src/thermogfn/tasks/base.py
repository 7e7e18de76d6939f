"""What a task is: objects as integer tensors, a batched raw reward, shaping into a log-reward, modes."""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from thermogfn.errors import RewardError
from thermogfn.modes import ModeTracker, ThresholdModeRule


@dataclass(frozen=True)
class Shaping:
    """``log R(x) = log_scale + exponent * log(max(r, r_min))``.

    ``r_min=None`` means no clipping: raw rewards must then be strictly positive.
    Computed in log space so that beta * log R never overflows.
    """

    exponent: float = 1.0
    r_min: float | None = None
    log_scale: float = 0.0

    @classmethod
    def scaled(cls, exponent: float, r_min: float, s_max: float, r_max: float) -> Shaping:
        """Shaping ``C * max(r, r_min)**k`` with C chosen so that the reward of ``r_max`` is ``s_max``."""
        top = max(r_max, r_min)
        return cls(exponent, r_min, math.log(s_max) - exponent * math.log(top))

    def log_reward(self, raw: torch.Tensor) -> torch.Tensor:
        raw = raw.to(torch.float64)
        if self.r_min is not None:
            raw = raw.clamp_min(self.r_min)
        return self.log_scale + self.exponent * torch.log(raw)


INDEX_LIMIT = 2**62  # spaces at least this large key objects by their tokens instead of an int64 index


@functools.lru_cache(maxsize=64)
def count_objects(vocab_size: int, length: int, min_length: int | None = None) -> int:
    """Number of strings over ``vocab_size`` letters of every length ``min_length..length`` (default: exactly
    ``length``), a Python int of any size."""
    lo = length if min_length is None else min_length
    return sum(vocab_size**n for n in range(lo, length + 1))


@functools.lru_cache(maxsize=64)
def _length_offsets(vocab_size: int, length: int, min_length: int) -> torch.Tensor:
    """int64 (length + 1,): ``offsets[n]`` = number of objects shorter than ``n`` (lengths ``min_length..``); the
    index of a length-``n`` object is ``offsets[n]`` plus its base-K value (indexable spaces only)."""
    offsets, total = [], 0
    for n in range(length + 1):
        offsets.append(total)
        if n >= min_length:
            total += vocab_size**n
    return torch.tensor(offsets, dtype=torch.int64)


def hashable_keys(keys: torch.Tensor) -> list:
    """Object keys (:meth:`Task.object_keys`) as hashable Python values: ints for indices, bytes for token rows."""
    if keys.dim() == 1:
        return keys.tolist()
    rows = keys.detach().cpu().contiguous().numpy()
    return [row.tobytes() for row in rows]


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _exc_text(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, at most ``limit`` characters; never raises."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - a broken __str__ in user code
        text = "<message unavailable>"
    return text if len(text) <= limit else text[:limit] + "..."


def check_raw_rewards(raw: object, n: int, *, allow_nonpositive: bool, source: str) -> torch.Tensor:
    """Validate what a reward function returned: a finite float vector of length ``n``.

    Raises :class:`RewardError` with a one-line message naming the problem and the fix.
    """
    import numpy as np

    if isinstance(raw, np.ndarray):
        raw = np.array(raw)  # a private, writable copy (torch warns on read-only arrays and shares memory)
    try:
        t = torch.as_tensor(raw)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is the user's reward's fault
        raise RewardError(f"{source} returned {type(raw).__name__}, not numbers ({_exc_text(exc)}); "
                          "return a 1-D array/tensor of floats, one per sequence") from None
    if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in _INT_DTYPES):
        raise RewardError(f"{source} returned dtype {t.dtype}; return floats, one per sequence")
    t = t.to(torch.float64).reshape(-1) if t.dim() == 2 and t.shape[1] == 1 else t.to(torch.float64)
    if t.shape != (n,):
        raise RewardError(f"{source} returned shape {tuple(t.shape)} for {n} sequences; "
                          f"return a 1-D array of length {n}")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise RewardError(f"{source} returned {bad} NaN/inf reward(s); return finite rewards")
    if not allow_nonpositive and (t <= 0).any():
        bad = int((t <= 0).sum())
        raise RewardError(f"{source} returned {bad} reward(s) <= 0; rewards must be positive "
                          "(or set a reward floor with --reward-min)")
    return t.clone()  # never share memory with what the user's function may change later


def check_min_length(min_length: object, length: int) -> None:
    """A one-line :class:`ThermoGFNError` unless ``min_length`` is None or an integer in ``1..length``."""
    from thermogfn.errors import ThermoGFNError

    if min_length is None:
        return
    if isinstance(min_length, bool) or not isinstance(min_length, int) or not 1 <= min_length <= length:
        raise ThermoGFNError(f"--min-length must be an integer in 1..{length} (the length; the empty sequence is "
                             f"no object), got {min_length!r}")


@dataclass
class TaskDefaults:
    """Hyper-parameters a task prefers (the paper's, for the paper's tasks)."""

    hidden: int = 128
    eps: float = 0.01
    rounds: int = 2000
    lr: float = 1e-3  # the paper's tasks use its 1e-4
    conditioning: str = "logit"  # the paper's method on the paper's tasks; chosen by exact TV elsewhere
    architecture: str = "mlp"  # the policy's trunk (benchmarks/sequence_policy.py)
    extra: dict = field(default_factory=dict)


class Task(ABC):
    """A reward over integer vectors ``x`` in ``{0..vocab_size-1}^length``.

    Sequence tasks use the string MDPs; ``hypergrid`` uses its own (``mdp_kinds`` says which). Tasks whose reward
    scores any length may also hold shorter objects (:attr:`min_length` below ``length``): an object is then a
    row of ``length`` tokens, left-aligned and padded with the token :attr:`pad` (= ``vocab_size``).
    """

    name: str
    vocab_size: int
    length: int
    shaping: Shaping
    defaults: TaskDefaults
    mdp_kinds: tuple[str, ...] = ("prepend-append", "append")
    distance: str = "hamming"
    # every token at every position is an object (uniform draws, point mutations); False: objects are rows that
    # only the task's MDP builds (fragment trees)
    token_objects: bool = True
    object_column = "sequence"  # what `thermogfn sample` calls the decoded objects

    @abstractmethod
    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw reward r(x) as float64 (B,), for ``x`` a LongTensor (B, length). Validated, finite."""

    def log_reward(self, x: torch.Tensor) -> torch.Tensor:
        """Shaped log-reward log R(x) (float64, (B,))."""
        return self.shaping.log_reward(self.raw_reward(x))

    @property
    def min_length(self) -> int:
        """The shortest object: objects have every length ``min_length..length`` (default ``length``: fixed)."""
        value = getattr(self, "_min_length", None)
        return self.length if value is None else value

    @min_length.setter
    def min_length(self, value: int | None) -> None:
        self._min_length = value

    @property
    def variable_length(self) -> bool:
        """Whether objects shorter than ``length`` exist (padded with :attr:`pad`)."""
        return self.min_length < self.length

    @property
    def pad(self) -> int:
        """The token that pads objects shorter than ``length`` (the sequence MDPs' empty position)."""
        return self.vocab_size

    def lengths(self, x: torch.Tensor) -> torch.Tensor:
        """Length of each object (B,): its tokens before the padding."""
        if not self.variable_length:
            return torch.full((x.shape[0],), self.length, dtype=torch.int64)
        return (x != self.pad).sum(-1)

    @property
    def n_objects(self) -> int:
        """Size of the space (a Python int of any size): ``sum of K**n for n in min_length..length``."""
        if not self.variable_length:
            return self.vocab_size**self.length
        return count_objects(self.vocab_size, self.length, self.min_length)

    def space_text(self) -> str:
        """The space in words for messages, e.g. ``4**8`` or ``4**3 + ... + 4**8``."""
        k, lo, hi = self.vocab_size, self.min_length, self.length
        return f"{k}**{hi}" if lo == hi else f"{k}**{lo} + ... + {k}**{hi}"

    @property
    def indexable(self) -> bool:
        """Whether every object has an int64 index (:meth:`object_index`); else objects are keyed by tokens."""
        return self.n_objects < INDEX_LIMIT

    @property
    def key_dtype(self) -> torch.dtype:
        """dtype of :meth:`object_keys`: int64 indices, or the smallest integer type holding the tokens."""
        if self.indexable:
            return torch.int64
        tokens = self.vocab_size + int(self.variable_length)  # the pad token too
        return torch.uint8 if tokens <= 256 else torch.int16 if tokens <= 2**15 else torch.int32

    def object_keys(self, x: torch.Tensor) -> torch.Tensor:
        """A key per object: the index (B,) where :attr:`indexable`, else the tokens (B, length) as ``key_dtype``."""
        return self.object_index(x) if self.indexable else x.to(self.key_dtype)

    def objects_from_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`object_keys` (LongTensor (B, length))."""
        return self.objects_from_index(keys) if self.indexable else keys.to(torch.int64).reshape(-1, self.length)

    def keys_from_hashable(self, keys: list) -> torch.Tensor:
        """Inverse of :func:`hashable_keys`: a key tensor from ints or row bytes."""
        if self.indexable:
            return torch.tensor(keys, dtype=torch.int64)
        if not keys:
            return torch.zeros(0, self.length, dtype=self.key_dtype)
        flat = torch.frombuffer(bytearray(b"".join(keys)), dtype=self.key_dtype)
        return flat.reshape(len(keys), self.length)

    def _index_weights(self) -> torch.Tensor:
        if not self.indexable:
            raise ValueError(f"task {self.name} has {self.space_text()} objects, too many for int64 indices; use "
                             "object_keys")
        return self.vocab_size ** torch.arange(self.length - 1, -1, -1, dtype=torch.int64)

    def object_index(self, x: torch.Tensor) -> torch.Tensor:
        """Index of each object: by length (shortest first), then lexicographic (mixed radix, first position most
        significant); with a fixed length, the lexicographic index. Indexable tasks only."""
        if not self.variable_length:
            return (x.to(torch.int64) * self._index_weights()).sum(-1)
        powers = self._index_weights().flip(0)  # K**0 .. K**(L-1)
        x = x.to(torch.int64)
        lengths = (x != self.pad).sum(-1)
        pos = torch.arange(self.length)
        exps = (lengths[:, None] - 1 - pos).clamp_min(0)
        weights = torch.where(pos < lengths[:, None], powers[exps], 0)
        offsets = _length_offsets(self.vocab_size, self.length, self.min_length)
        return offsets[lengths] + (x.clamp_max(self.vocab_size - 1) * weights).sum(-1)

    def objects_from_index(self, index: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`object_index`."""
        weights = self._index_weights()
        index = index.to(torch.int64)
        if not self.variable_length:
            return (index[:, None] // weights) % self.vocab_size
        offsets = _length_offsets(self.vocab_size, self.length, self.min_length)
        starts = offsets[self.min_length:].contiguous()
        lengths = self.min_length + torch.searchsorted(starts, index, right=True) - 1
        value = index - offsets[lengths]
        pos = torch.arange(self.length)
        exps = (lengths[:, None] - 1 - pos).clamp_min(0)
        digits = (value[:, None] // weights.flip(0)[exps]) % self.vocab_size
        return torch.where(pos < lengths[:, None], digits, self.pad)

    def uniform_objects(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` objects drawn uniformly from the whole space (a length ``l`` with probability proportional to
        ``K**l``, then uniform tokens)."""
        x = torch.randint(self.vocab_size, (n, self.length), generator=generator)
        if not self.variable_length:
            return x
        lengths = torch.arange(self.min_length, self.length + 1)
        weights = torch.softmax(lengths.double() * math.log(self.vocab_size), 0)
        drawn = lengths[torch.multinomial(weights, n, replacement=True, generator=generator)]
        return torch.where(torch.arange(self.length) < drawn[:, None], x, self.pad)

    def all_objects(self) -> torch.Tensor:
        """Every object, in index order (only for enumerable tasks)."""
        return self.objects_from_index(torch.arange(self.n_objects))

    def table(self) -> torch.Tensor | None:
        """Raw rewards of every object in index order, if the task has a full table (else None)."""
        return None

    def log_reward_bound(self) -> float | None:
        """The maximum of log R over the space, attained by some object (the table's by default), or None if
        unknown. It is log Z(beta)'s m (:class:`thermogfn.conditioning.LogZ`): log Z(beta) >= beta * m."""
        table = self.table()
        if table is None:
            return None
        if not hasattr(self, "_log_reward_bound"):
            self._log_reward_bound = float(self.shaping.log_reward(table).max())
        return self._log_reward_bound

    def mode_index(self) -> torch.Tensor | None:
        """Sorted object indices of the task's mode set, if it has one."""
        return None

    def mode_rule(self) -> ThresholdModeRule | None:
        """A rule that recognises modes without a list (for tasks with no mode set), or None."""
        return None

    def mode_counter(self) -> ModeTracker | ThresholdModeRule | None:
        """A fresh counter of modes found: the mode set if the task has one, else its mode rule."""
        index = self.mode_index()
        return ModeTracker(index) if index is not None else self.mode_rule()

    def diversity(self, x: torch.Tensor) -> float:
        """Mean pairwise distance among the objects ``x`` over unordered pairs (``self.distance`` by default;
        molecule tasks use ``1 - Tanimoto``; objects of variable length the Levenshtein distance of their
        unpadded strings)."""
        from thermogfn.metrics import mean_pairwise_distance

        if self.variable_length:
            return mean_pairwise_distance(x, "levenshtein", self.lengths(x))
        return mean_pairwise_distance(x, self.distance)  # type: ignore[arg-type]

    @abstractmethod
    def decode(self, x: torch.Tensor) -> list[str]:
        """Objects to human-readable strings."""

    @abstractmethod
    def encode(self, strings: list[str]) -> torch.Tensor:
        """Strings to objects; a wrong alphabet or length raises ThermoGFNError naming the fix."""


def objects_to_strings(x: torch.Tensor, alphabet: str) -> list[str]:
    """Integer objects (B, L) to strings over ``alphabet`` (vectorised, no per-sample loop). The pad token
    ``len(alphabet)`` of shorter (left-aligned) objects is dropped."""
    import numpy as np

    chars = np.array([*alphabet, "\x00"], dtype="<U1")  # numpy strings drop trailing NULs: the padding
    codes = x.detach().to("cpu", torch.int64).numpy()
    if codes.ndim != 2:
        raise ValueError(f"expected objects of shape (B, L), got {tuple(codes.shape)}")
    if codes.shape[1] == 0:
        return [""] * codes.shape[0]
    return np.ascontiguousarray(chars[codes]).view(f"<U{codes.shape[1]}")[:, 0].tolist()


def _short(s: str, limit: int = 60) -> str:
    """``repr(s)``, cut after ``limit`` characters so that an error message stays short."""
    return repr(s) if len(s) <= limit else repr(s[:limit]) + f"... ({len(s)} characters)"


def strings_to_objects(strings: list[str], alphabet: str, length: int, min_length: int | None = None) -> torch.Tensor:
    """Strings over ``alphabet`` of exactly ``length`` characters (or, with ``min_length``, of ``min_length`` to
    ``length``: shorter ones left-aligned and padded with ``len(alphabet)``) to a LongTensor (B, length).

    Raises :class:`ThermoGFNError` naming the allowed alphabet/length for any bad string.
    """
    strings = _string_list(strings, alphabet)
    if not strings:
        return torch.zeros(0, length, dtype=torch.int64)
    if min_length is not None and min_length < length:
        return _strings_to_padded(strings, alphabet, length, min_length)
    import numpy as np

    from thermogfn.errors import ThermoGFNError

    # Python lengths: numpy drops trailing NUL characters, so np.char.str_len would undercount them
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    if (lengths != length).any():
        s = strings[int(np.argmax(lengths != length))]
        raise ThermoGFNError(f"sequence {_short(s)} has length {len(s)}; sequences must have exactly {length} "
                             f"characters from {alphabet!r}")
    if length == 0:
        return torch.zeros(len(strings), 0, dtype=torch.int64)
    arr = np.array(strings, dtype=f"<U{length}")  # fixed width: a dropped trailing NUL reads back as code 0
    cp = np.ascontiguousarray(arr).view(np.uint32).reshape(len(strings), length).astype(np.int64)
    lookup = np.full(max(ord(c) for c in alphabet) + 1, -1, dtype=np.int64)
    lookup[[ord(c) for c in alphabet]] = np.arange(len(alphabet))
    codes = lookup[np.minimum(cp, len(lookup) - 1)]
    codes[cp >= len(lookup)] = -1
    if (codes < 0).any():
        s = strings[int(np.argmax((codes < 0).any(1)))]
        raise ThermoGFNError(f"sequence {_short(s)} has characters outside the alphabet {alphabet!r} "
                             f"(length {length}); use only those")
    return torch.from_numpy(codes)


def _string_list(strings: list[str] | str, alphabet: str) -> list[str]:
    """``strings`` as a list (one string alone becomes a list of one); anything but strings is a one-line error."""
    from thermogfn.errors import ThermoGFNError

    strings = [strings] if isinstance(strings, str) else list(strings)
    bad_type = next((s for s in strings if not isinstance(s, str)), None)
    if bad_type is not None:
        raise ThermoGFNError(f"expected strings over {alphabet!r}, got {type(bad_type).__name__} "
                             f"{repr(bad_type)[:60]}")
    return strings


def _strings_to_padded(strings: list[str], alphabet: str, length: int, min_length: int) -> torch.Tensor:
    """:func:`strings_to_objects` for a non-empty list of strings of lengths ``min_length..length``."""
    import numpy as np

    from thermogfn.errors import ThermoGFNError

    pad = len(alphabet)
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    wrong = (lengths < min_length) | (lengths > length)
    if wrong.any():
        s = strings[int(np.argmax(wrong))]
        raise ThermoGFNError(f"sequence {_short(s)} has length {len(s)}; sequences must have {min_length} to "
                             f"{length} characters from {alphabet!r}")
    arr = np.array(strings, dtype=f"<U{length}")  # shorter strings are NUL-filled: masked below by their length
    cp = np.ascontiguousarray(arr).view(np.uint32).reshape(len(strings), length).astype(np.int64)
    lookup = np.full(max(ord(c) for c in alphabet) + 1, -1, dtype=np.int64)
    lookup[[ord(c) for c in alphabet]] = np.arange(len(alphabet))
    codes = lookup[np.minimum(cp, len(lookup) - 1)]
    codes[cp >= len(lookup)] = -1
    inside = np.arange(length)[None, :] < lengths[:, None]
    if ((codes < 0) & inside).any():
        s = strings[int(np.argmax(((codes < 0) & inside).any(1)))]
        raise ThermoGFNError(f"sequence {_short(s)} has characters outside the alphabet {alphabet!r} "
                             f"(length {min_length} to {length}); use only those")
    return torch.from_numpy(np.where(inside, codes, pad))
