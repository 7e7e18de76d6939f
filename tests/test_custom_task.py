"""Custom reward functions (--task FILE:FUNCTION, thermogfn.tasks.custom), hostile: whatever a reward function
returns or raises, however long it runs, and whatever --alphabet/--length come with it, the result is a valid reward
or one RewardError/ThermoGFNError line (on the command line: one line, exit 2, no traceback)."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
import torch
from cli_helpers import (
    AB3,
    FAST,
    HOSTILE_TMP,
    assert_clean,
    assert_one_line,
    chars,
    custom_reward_file,
    garbage,
    new_dir,
    run_cli,
)
from hypothesis import given
from hypothesis import strategies as st

from thermogfn.errors import RewardError, ThermoGFNError
from thermogfn.tasks.custom import CustomTask


@FAST
@given(alphabet=st.one_of(st.text(chars, max_size=6), garbage),
       length=st.one_of(st.integers(-3, 70).map(str), garbage))
def test_custom_alphabet_length_fuzz(alphabet, length):
    code, out, err = run_cli("train", "--task", f"{custom_reward_file}:reward", f"--alphabet={alphabet}",
                             f"--length={length}", "--steps", "1", "--hidden", "8", "--layers", "1", "--batch-size",
                             "2", "--replay-batch", "0", "--no-progress", "--out", str(new_dir() / "run"))
    assert_clean(code, out, err)


def _gen(n):
    yield from range(n)


def _returns(value):
    return lambda seqs: value(len(seqs)) if callable(value) else value


RETURNS = {
    "none": None, "string": "1.0", "strings": lambda n: ["1.0"] * n, "bytes": b"\x01\x02",
    "objects": lambda n: np.array([object()] * n), "bools": lambda n: np.ones(n, dtype=bool),
    "complex": lambda n: np.ones(n, dtype=complex), "generator": _gen, "dict": lambda n: {i: 1.0 for i in range(n)},
    "set": lambda n: set(range(n)), "scalar": 1.0, "0-d": lambda n: np.float64(2), "row": lambda n: np.ones((1, n)),
    "matrix": lambda n: np.ones((n, 2)), "short": lambda n: np.ones(n - 1), "long": lambda n: np.ones(n + 1),
    "nested": lambda n: [[1.0, 2.0]] * n, "ragged": lambda n: [[1.0], [1.0, 2.0]] * n,
    "nan": lambda n: np.full(n, np.nan),    "inf": lambda n: np.full(n, np.inf), "neg": lambda n: -np.ones(n),
    "zero": lambda n: np.zeros(n),
    "huge int": lambda n: [10**400] * n, "float128": lambda n: np.ones(n, dtype=np.longdouble),
    "tensor grad": lambda n: torch.ones(n, requires_grad=True) * 2,
    "half inf": lambda n: np.full(n, np.inf, np.float16),
    "strided": lambda n: np.ones(2 * n)[::2], "readonly": lambda n: np.broadcast_to(np.float64(1.0), (n,)),
    "int8": lambda n: np.ones(n, dtype=np.int8), "list of tensors": lambda n: [torch.ones(2)] * n,
    "str tensor-like": lambda n: np.array(["a"] * n), "datetime": lambda n: np.array(["2020-01-01"] * n, "M8[D]"),
}


@pytest.mark.parametrize("name", sorted(RETURNS))
def test_reward_return_values(name):
    task = CustomTask(_returns(RETURNS[name]), "AB", 3, name=f"r_{name.replace(' ', '_')}")
    x = task.all_objects()[:5]
    try:
        r = task.raw_reward(x)
    except RewardError as exc:
        assert_one_line(exc)
        assert f"r_{name.replace(' ', '_')}" in str(exc)
        return
    assert r.dtype == torch.float64 and r.shape == (5,) and torch.isfinite(r).all() and (r > 0).all()
    assert not r.requires_grad


class _BadStr(Exception):
    def __str__(self):
        raise RuntimeError("no")


EXCEPTIONS = st.one_of(
    st.builds(lambda cls, msg: cls(msg), st.sampled_from([ValueError, KeyError, RuntimeError, ZeroDivisionError,
                                                          OSError, MemoryError, AssertionError, ImportError]),
              st.text(max_size=400)),
    st.builds(lambda code: SystemExit(code), st.one_of(st.none(), st.integers(), st.text(max_size=20))),
    st.just(_BadStr()), st.just(StopIteration()), st.just(RecursionError("maximum recursion depth exceeded")),
)


@FAST
@given(exc=EXCEPTIONS)
def test_reward_raising_anything(exc):
    def fn(seqs):
        raise exc

    with pytest.raises(RewardError) as info:
        CustomTask(fn, "AB", 3, name="boom").raw_reward(AB3.all_objects()[:3])
    assert_one_line(info.value)
    assert type(exc).__name__ in str(info.value) and len(str(info.value)) < 500


@FAST
@given(values=st.lists(st.one_of(st.floats(), st.integers(-10**20, 10**20), st.booleans(), st.none(),
                                 st.text(max_size=3)), min_size=0, max_size=10),
       floor=st.sampled_from([None, 0.5]))
def test_reward_random_lists(values, floor):
    task = CustomTask(lambda seqs: values, "AB", 3, reward_min=floor)
    n = len(values) if 1 <= len(values) <= 8 else 3
    try:
        r = task.raw_reward(task.all_objects()[:n])
    except RewardError as exc:
        assert_one_line(exc)
        return
    assert r.shape == (n,) and torch.isfinite(r).all() and (floor is not None or (r > 0).all())


def test_reward_hostile_through_the_cli():
    path = HOSTILE_TMP / "reward_multiline.py"
    path.write_text("def reward(seqs):\n    raise ValueError('line one\\nline two\\n' + 'x' * 5000)\n")
    code, out, err = run_cli("train", "--task", f"{path}:reward", "--alphabet", "AB", "--length", "3", "--steps", "1",
                             "--no-progress", "--out", str(new_dir() / "run"))
    assert code == 2 and assert_clean(code, out, err) == "error" and "ValueError" in err


@pytest.mark.parametrize("body", [
    "time.sleep(30)",
    "while True:\n        try:\n            time.sleep(30)\n        except Exception:\n            pass",
    "x = 0\n    while True:\n        x += 1",
])
def test_reward_timeout(body):
    ns: dict = {}
    exec(f"import time\ndef slow(seqs):\n    {body}\n", ns)  # noqa: S102 - test fixture code
    before = signal.getsignal(signal.SIGALRM)
    task = CustomTask(ns["slow"], "AB", 3, name="slow", timeout=0.2)
    start = time.monotonic()
    with pytest.raises(RewardError, match=r"slow took longer than 0.2 s on 3 sequences") as info:
        task.raw_reward(AB3.all_objects()[:3])
    assert time.monotonic() - start < 3
    assert_one_line(info.value)
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_reward_timeout_keeps_an_outer_timer_and_handler():
    fired = []

    def outer(signum, frame):
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, outer)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.6)
        task = CustomTask(lambda s: np.ones(len(s)), "AB", 3, timeout=5)
        assert task.raw_reward(AB3.all_objects()[:3]).tolist() == [1, 1, 1]
        assert signal.getsignal(signal.SIGALRM) is outer and 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.6
        time.sleep(0.8)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_reward_timeout_fast_function_and_other_threads():
    task = CustomTask(lambda s: (time.sleep(0.3), np.ones(len(s)))[1], "AB", 3, timeout=0.05)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(task.raw_reward(AB3.all_objects()[:2])))
    thread.start()
    thread.join()
    assert result and result[0].tolist() == [1, 1]  # no signals off the main thread: no limit, no crash
    quick = CustomTask(lambda s: np.ones(len(s)), "AB", 3, timeout=0.05)
    quick.raw_reward(AB3.all_objects()[:2])
    time.sleep(0.1)  # no alarm left armed to fire later
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "1", True])
def test_reward_timeout_validated(timeout):
    with pytest.raises(ThermoGFNError, match="--reward-timeout") as info:
        CustomTask(lambda s: np.ones(len(s)), "AB", 3, timeout=timeout)
    assert_one_line(info.value)


@pytest.mark.parametrize("alphabet, length", [("ACGT", 4097), ("A", 10**6), ("AB", 10**9)])
def test_custom_sequence_too_long(alphabet, length):
    with pytest.raises(ThermoGFNError, match="shorten --length") as info:
        CustomTask(lambda s: np.ones(len(s)), alphabet, length)
    assert_one_line(info.value)

