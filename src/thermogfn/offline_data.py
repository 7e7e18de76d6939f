"""Offline training data: a CSV of (sequence, reward) rows, or the paper's bottom half of a task's table."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks import Task

FORMAT = "a CSV with a header line then sequence,reward rows"


def _short(text: str, limit: int = 40) -> str:
    """``repr`` of ``text``, cut to about ``limit`` characters (always one line)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_text(p: Path, path: str) -> str:
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ThermoGFNError(f"offline data {path} cannot be read ({exc.strerror or exc}); pass {FORMAT}") from None
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise ThermoGFNError(f"offline data {path} line {line}: contains a NUL byte (a binary file?); pass {FORMAT}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ThermoGFNError(f"offline data {path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                             f"pass {FORMAT}") from None


def read_offline_data(path: str, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """A CSV with a header and columns ``sequence,reward`` -> objects and raw rewards.

    Rows are checked one by one: exactly two columns, a finite reward (> 0 unless the task floors rewards),
    a sequence the task can encode. A sequence listed twice with the same reward is kept once; with
    different rewards it is an error. Blank lines are skipped. Every problem is a one-line
    :class:`ThermoGFNError` naming the file and the line.
    """
    p = Path(path)
    if p.is_dir():
        raise ThermoGFNError(f"offline data {path} is a directory; pass {FORMAT}")
    if not p.is_file():
        raise ThermoGFNError(f"offline data {path} not found; pass {FORMAT}")
    text = _read_text(p, path)
    positive = getattr(task.shaping, "r_min", None) is None
    seqs: list[str] = []
    rewards: list[float] = []
    first_line: dict[str, tuple[int, float]] = {}
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    header_seen = False
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ThermoGFNError(f"offline data {path} line {reader.line_num}: malformed CSV ({exc}); "
                                 f"pass {FORMAT}") from None
        line = reader.line_num
        row = [field.strip() for field in row]
        if not any(row):
            continue
        where = f"offline data {path} line {line}"
        if len(row) != 2:
            raise ThermoGFNError(f"{where}: expected 2 columns sequence,reward, got {len(row)}")
        if not header_seen:
            header_seen = True
            if _is_number(row[1]):
                raise ThermoGFNError(f"{where} looks like data, not a header; "
                                     "start the file with the header line sequence,reward")
            continue
        seq, text_reward = row
        try:
            reward = float(text_reward)
        except ValueError:
            raise ThermoGFNError(f"{where}: reward {_short(text_reward)} is not a number") from None
        if not math.isfinite(reward):
            raise ThermoGFNError(f"{where}: reward {_short(text_reward)} is not finite; give finite rewards")
        if positive and reward <= 0:
            raise ThermoGFNError(f"{where}: reward {_short(text_reward)} is <= 0; task {task.name} needs "
                                 "positive rewards (custom tasks: or set --reward-min)")
        previous = first_line.get(seq)
        if previous is not None:
            if previous[1] != reward:
                raise ThermoGFNError(f"{where}: sequence {_short(seq)} has reward {reward:g} here but "
                                     f"{previous[1]:g} on line {previous[0]}; give each sequence one reward")
            continue  # an identical duplicate: keep the first
        first_line[seq] = (line, reward)
        seqs.append(seq)
        rewards.append(reward)
        lines.append(line)
    if not seqs:
        raise ThermoGFNError(f"offline data {path} holds no rows; pass {FORMAT}")
    try:
        x = task.encode(seqs)
    except ThermoGFNError as exc:
        for seq, line in zip(seqs, lines, strict=True):  # find the line to name
            try:
                task.encode([seq])
            except ThermoGFNError as one:
                raise ThermoGFNError(f"offline data {path} line {line}: {one}") from None
        raise ThermoGFNError(f"offline data {path}: {exc}") from None
    return x, torch.tensor(rewards, dtype=torch.float64)


def bottom_half(task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's offline training set: every object with raw reward <= the median."""
    table = task.table()
    if table is None:
        raise ThermoGFNError(f"task {task.name} has no full table; give offline data with --offline-data")
    keep = torch.nonzero(table <= table.median()).squeeze(1)
    return task.objects_from_index(keep), table[keep].double()
