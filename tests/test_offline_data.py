"""Offline data (--offline-data CSV files), hostile: every bad file is one ThermoGFNError line naming the line at
fault; good files (BOM, CRLF, another header, identical duplicates) are read as written. Property tests plus
hand-picked cases."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from cli_helpers import (
    AB3,
    AB3_SEQS,
    FAST,
    assert_clean,
    assert_one_line,
    chars,
    custom_reward_file,
    new_dir,
    run_cli,
)
from hypothesis import assume, given
from hypothesis import strategies as st

from thermogfn.errors import ThermoGFNError
from thermogfn.offline_data import read_offline_data
from thermogfn.tasks.custom import CustomTask

rewards = st.floats(1e-6, 1e6, allow_nan=False).map(lambda r: float(f"{r:.6g}"))
datasets = st.dictionaries(st.sampled_from(AB3_SEQS), rewards, min_size=1, max_size=8)


def _csv(rows: list[list[str]], header: tuple[str, ...] = ("sequence", "reward")) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _read(data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    path = new_dir() / "data.csv"
    path.write_bytes(data)
    return read_offline_data(str(path), AB3)


def _error(data: bytes) -> str:
    with pytest.raises(ThermoGFNError) as info:
        _read(data)
    assert_one_line(info.value)
    return str(info.value)


@FAST
@given(data=datasets, dup=st.lists(st.integers(0, 7), max_size=4))
def test_offline_valid_and_identical_duplicates(data, dup):
    rows = [[s, repr(r)] for s, r in data.items()]
    rows += [rows[i % len(rows)] for i in dup]
    x, r = _read(_csv(rows))
    assert AB3.decode(x) == list(data) and r.tolist() == list(data.values())


@FAST
@given(data=datasets, which=st.integers(0, 7), other=rewards)
def test_offline_conflicting_duplicate_names_the_sequence(data, which, other):
    rows = [[s, repr(r)] for s, r in data.items()]
    seq, r = rows[which % len(rows)]
    assume(float(other) != float(r))
    msg = _error(_csv([*rows, [seq, repr(other)]]))
    assert repr(seq) in msg and f"line {len(rows) + 2}" in msg


bad_rewards = st.one_of(st.sampled_from(["nan", "NaN", "inf", "-inf", "1e999", "-1", "0", "-0.0", "", "x", "1,5",
                                         "0x1p3", "1e", "--1", "None"]),
                        st.text(chars, max_size=6).filter(lambda t: not _parses_positive(t)))


def _parses_positive(text: str) -> bool:
    try:
        value = float(text.strip())
    except ValueError:
        return False
    return 0 < value < float("inf")


@FAST
@given(data=datasets, which=st.integers(0, 7), bad=bad_rewards)
def test_offline_bad_reward_names_the_line(data, which, bad):
    rows = [[s, repr(r)] for s, r in data.items()]
    k = which % len(rows)
    rows[k] = [rows[k][0], bad]
    msg = _error(_csv(rows))
    if "\n" not in bad and "\r" not in bad:
        assert f"line {k + 2}" in msg, msg


@FAST
@given(data=datasets, which=st.integers(0, 7), seq=st.text(chars | st.just("\x00"), max_size=6))
def test_offline_wrong_alphabet_or_length_names_the_line(data, which, seq):
    assume(seq.strip() not in AB3_SEQS and seq.strip())
    rows = [[s, repr(r)] for s, r in data.items()]
    k = which % len(rows)
    rows[k] = [seq, rows[k][1]]
    msg = _error(_csv(rows))
    if not any(c in seq for c in "\n\r\x00"):
        assert f"line {k + 2}" in msg, msg


@FAST
@given(data=datasets, which=st.integers(0, 7), extra=st.lists(st.text(chars, max_size=3), min_size=1, max_size=3))
def test_offline_wrong_column_count(data, which, extra):
    rows = [[s, repr(r)] for s, r in data.items()]
    k = which % len(rows)
    rows[k] = [*rows[k], *extra] if which % 2 else rows[k][:1]
    assume(any(f.strip() for f in rows[k]))
    msg = _error(_csv(rows))
    assert "line" in msg


@FAST
@given(data=datasets, cut=st.floats(0, 1))
def test_offline_truncated_at_a_random_byte(data, cut):
    full = _csv([[s, repr(r)] for s, r in data.items()])
    part = full[:int(cut * len(full))]
    try:
        x, r = _read(part)
    except ThermoGFNError as exc:
        assert_one_line(exc)
        return
    got = dict(zip(AB3.decode(x), r.tolist(), strict=True))
    assert set(got) <= set(data)
    assert all(got[s] == data[s] for s in list(got)[:-1])  # only a cut last number can read differently


@FAST
@given(blob=st.binary(max_size=300))
def test_offline_binary_garbage(blob):
    try:
        _read(blob)
    except ThermoGFNError as exc:
        assert_one_line(exc)


@pytest.mark.parametrize("content, expect", [
    (b"", "no rows"),
    (b"sequence,reward\n", "no rows"),
    (b"sequence,reward\n\n\n  \n", "no rows"),
    (b"\n\n", "no rows"),
    (b"ABA,1.0\nBBB,2\n", "line 1"),
    (b"sequence\nABA\n", "line 1"),
    (b"sequence,reward,extra\nABA,1,2\n", "line 1"),
    (b"sequence,reward\nABA,1\x00\n", "NUL"),
    (b"sequence,reward\nABA,1\nAB\xe9,2\n", "line 3"),
    (b"sequence,reward\nABA,1\n\"ABB,2\n", "line"),
    (b"sequence,reward\n" + b"A" * 200_000 + b",1\n", "line 2"),
    (b"sequence,reward\nABA,1\nABA,2\n", "'ABA'"),
    (b"sequence,reward\nABA,1e400\n", "line 2"),
    (b"sequence,reward\nABA,0\n", "<= 0"),
    (b"sequence,reward\nABA,-2\n", "<= 0"),
    (b"sequence,reward\nabA,2\n", "line 2"),
    (b"sequence,reward\nABAB,2\n", "length"),
])
def test_offline_hand_cases(content, expect):
    assert expect in _error(content)


@pytest.mark.parametrize("content", [
    b"\xef\xbb\xbfsequence,reward\r\nABA,1\r\nBBB,2.5\r\n",  # BOM and CRLF
    b"seq,score\n ABA , 1 \nBBB,2.5",  # another header, spaces, no final newline
    b"sequence,reward\nABA,1\n\nBBB,2.5\nABA,1.0\n",  # blank line, identical duplicate
])
def test_offline_hand_cases_accepted(content):
    x, r = _read(content)
    assert AB3.decode(x) == ["ABA", "BBB"] and r.tolist() == [1.0, 2.5]


def test_offline_directory_and_missing_file(tmp_path):
    for path, expect in ((tmp_path, "directory"), (tmp_path / "nope.csv", "not found")):
        with pytest.raises(ThermoGFNError, match=expect) as info:
            read_offline_data(str(path), AB3)
        assert_one_line(info.value)


def test_offline_zero_reward_allowed_with_a_floor(tmp_path):
    task = CustomTask(lambda s: np.ones(len(s)), "AB", 3, reward_min=0.01)
    (tmp_path / "d.csv").write_text("sequence,reward\nABA,0\nBBB,-1\n")
    assert read_offline_data(str(tmp_path / "d.csv"), task)[1].tolist() == [0.0, -1.0]


def test_offline_bad_file_through_the_cli():
    data = new_dir() / "d.csv"
    data.write_text("sequence,reward\nABA,1\nABC,2\n")
    code, out, err = run_cli("train", "--task", f"{custom_reward_file}:reward", "--alphabet", "AB", "--length", "3",
                             "--offline", "--offline-data", str(data), "--steps", "1", "--no-progress",
                             "--out", str(new_dir() / "run"))
    assert code == 2 and assert_clean(code, out, err) == "error" and "line 3" in err

