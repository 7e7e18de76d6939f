"""User-defined sequence rewards: a Python function over strings (``file.py:fn`` or ``pkg.mod:fn``)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from thermogfn.errors import RewardError, ThermoGFNError
from thermogfn.tasks.base import (
    Shaping,
    Task,
    TaskDefaults,
    check_min_length,
    check_raw_rewards,
    objects_to_strings,
    strings_to_objects,
)

RewardFn = Callable[[list[str]], object]
MAX_TABLE = 2**20
MAX_LENGTH = 4096
TABLE_CHUNK = 65_536


def _one_line(text: object, limit: int = 300) -> str:
    """``str(text)`` on one line, at most ``limit`` characters; never raises (a user's ``__str__`` may)."""
    try:
        line = " ".join(str(text).split())
    except Exception:  # noqa: BLE001 - a broken __str__ in user code
        line = f"<{type(text).__name__} whose message cannot be printed>"
    return line if len(line) <= limit else line[:limit] + "..."


class _RewardTimeout(BaseException):
    """Raised by SIGALRM inside a slow reward function (a BaseException, so user ``except Exception``
    clauses do not swallow it)."""


def _on_alarm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise _RewardTimeout


def _call_with_timeout(fn: RewardFn, strings: list[str], timeout: float | None) -> object:
    """``fn(strings)``, interrupted by SIGALRM after ``timeout`` seconds when in the main thread.

    Off the main thread (signals cannot be used there) or without ``timeout`` it simply calls ``fn``. The
    previous SIGALRM handler and any running ITIMER_REAL timer are restored afterwards. Code that blocks in C
    without checking for signals is interrupted only when it returns to Python.
    """
    if timeout is None or not hasattr(signal, "setitimer") \
            or threading.current_thread() is not threading.main_thread():
        return fn(strings)
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    start = time.monotonic()
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn(strings)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler if old_handler is not None else signal.SIG_DFL)
        if old_delay > 0:  # someone else's timer was running: let it continue
            left = max(old_delay - (time.monotonic() - start), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


class CustomTask(Task):
    """Sequences of ``length`` characters over ``alphabet`` scored by ``fn(list[str]) -> rewards``; with
    ``min_length``, sequences of every length ``min_length..length`` (``fn`` gets the strings as they are).

    Shaping ``Shaping(exponent, reward_min, 0)``: identity by default, so the target is ``r**beta``. Rewards
    must be positive unless ``reward_min`` (a floor) is given. :meth:`table` enumerates the space only when
    it has at most 2**20 objects; any alphabet and any length up to ``MAX_LENGTH`` train (objects of spaces too
    large for int64 indices are keyed by their tokens, see :meth:`Task.object_keys`).

    ``timeout`` (seconds per call of ``fn``, None: no limit) turns a reward function that hangs into a
    :class:`RewardError`; it uses SIGALRM, so it applies only when scoring runs in the main thread.
    """

    def __init__(self, fn: RewardFn, alphabet: str, length: int, name: str = "custom",
                 reward_min: float | None = None, exponent: float = 1.0,
                 timeout: float | None = None, min_length: int | None = None) -> None:
        if not callable(fn):
            raise ThermoGFNError(f"reward function {name} is a {type(fn).__name__}, not callable")
        if not isinstance(alphabet, str) or len(alphabet) < 1 or len(set(alphabet)) != len(alphabet) \
                or "\x00" in alphabet:
            raise ThermoGFNError(f"--alphabet must be a non-empty string of unique characters, "
                                 f"got {alphabet!r}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ThermoGFNError(f"--length must be an integer >= 1, got {length!r}")
        if length > MAX_LENGTH:
            raise ThermoGFNError(f"--length {length} is over {MAX_LENGTH}, the longest sequence trained here (a "
                                 "trajectory holds every prefix, so memory grows as length**2); shorten --length")
        check_min_length(min_length, length)
        if reward_min is not None and not reward_min > 0:
            raise ThermoGFNError(f"--reward-min must be > 0 (it floors rewards before the log), "
                                 f"got {reward_min}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not (timeout > 0 and math.isfinite(timeout))):
            raise ThermoGFNError(f"--reward-timeout must be a positive finite number of seconds, got {timeout!r}")
        self.timeout = None if timeout is None else float(timeout)
        self.fn = fn
        self.name = name
        self.alphabet = alphabet
        self.vocab_size = len(alphabet)
        self.length = length
        self.min_length = min_length
        self.reward_min = reward_min
        self.shaping = Shaping(float(exponent), reward_min, 0.0)
        # benchmarks/tune_defaults.py; conditioning: benchmarks/faithful_default.py
        self.defaults = TaskDefaults(hidden=128, eps=0.05, rounds=1000, lr=3e-3, conditioning="logit+layer")
        self._table: torch.Tensor | None = None

    def score_strings(self, strings: list[str]) -> torch.Tensor:
        """Call the user function on ``strings`` and validate its output (float64, (n,))."""
        source = f"reward function {self.name}"
        try:
            raw = _call_with_timeout(self.fn, list(strings), self.timeout)
        except _RewardTimeout:
            raise RewardError(f"{source} took longer than {self.timeout:g} s on {len(strings)} sequences; "
                              "make it faster or raise --reward-timeout") from None
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure inside user code is reported alike
            message = _one_line(exc)
            raise RewardError(f"{source} raised {type(exc).__name__}{': ' + message if message else ''}; "
                              "fix the function") from None
        if isinstance(raw, torch.Tensor):
            raw = raw.detach().cpu()
        floor = self.reward_min is not None
        return check_raw_rewards(raw, len(strings), allow_nonpositive=floor, source=source)

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        if self._table is not None:
            return self._table[self.object_index(x)]
        return self.score_strings(self.decode(x))

    def table(self) -> torch.Tensor | None:
        """All rewards in index order (computed once, in chunks of 65,536), or None for spaces over 2**20."""
        if self.n_objects > MAX_TABLE:
            return None
        if self._table is None:
            idx = torch.arange(self.n_objects)
            chunks = idx.split(TABLE_CHUNK)
            parts = [self.score_strings(self.decode(self.objects_from_index(c))) for c in chunks]
            self._table = torch.cat(parts)
        return self._table

    def decode(self, x: torch.Tensor) -> list[str]:
        return objects_to_strings(x, self.alphabet)

    def encode(self, strings: list[str]) -> torch.Tensor:
        return strings_to_objects(strings, self.alphabet, self.length, self.min_length)


def load_reward_function(spec: str) -> tuple[RewardFn, str]:
    """Load ``path/to/file.py:function`` or ``package.module:function``; returns ``(function, name)``.

    Every failure is a one-line :class:`ThermoGFNError` naming the problem.
    """
    target, sep, attr = str(spec).rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise ThermoGFNError(f"reward spec {spec!r} is malformed; write path/to/file.py:function "
                             "or package.module:function")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    if is_file:
        path = Path(target).expanduser()
        if not path.is_file():
            raise ThermoGFNError(f"reward file {path} not found (from spec {spec!r})")
        mod_name = "thermogfn_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        mspec = importlib.util.spec_from_file_location(mod_name, path)
        if mspec is None or mspec.loader is None:
            raise ThermoGFNError(f"reward file {path} cannot be imported as Python; give a .py file")
        module = importlib.util.module_from_spec(mspec)
        sys.modules[mod_name] = module
        try:
            mspec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - user code
            sys.modules.pop(mod_name, None)
            raise ThermoGFNError(f"importing reward file {path} raised {type(exc).__name__}: "
                                 f"{_one_line(exc)}") from None
        where = f"file {path}"
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ThermoGFNError(f"reward module {target!r} is not importable ({_one_line(exc)}); "
                                 "check the name and PYTHONPATH, or give path/to/file.py:function") from None
        except Exception as exc:  # noqa: BLE001 - user code
            raise ThermoGFNError(f"importing reward module {target!r} raised {type(exc).__name__}: "
                                 f"{_one_line(exc)}") from None
        where = f"module {target}"
    if not hasattr(module, attr):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:10]
        raise ThermoGFNError(f"{where} has no function {attr!r} "
                             f"(callables there: {', '.join(public) or 'none'})")
    fn = getattr(module, attr)
    if not callable(fn):
        raise ThermoGFNError(f"{where}: {attr!r} is a {type(fn).__name__}, not a callable")
    return fn, attr
