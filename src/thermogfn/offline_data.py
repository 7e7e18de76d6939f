"""Offline training data: a CSV of (sequence, reward) rows, or the paper's bottom half of a task's table."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks import Task


def read_offline_data(path: str, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """A CSV with a header and columns ``sequence,reward`` -> objects and raw rewards."""
    p = Path(path)
    if not p.is_file():
        raise ThermoGFNError(f"offline data {path} not found; pass a CSV with columns sequence,reward")
    seqs, rewards = [], []
    with p.open(newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if i == 0 or not row:
                continue
            if len(row) < 2:
                raise ThermoGFNError(f"{path} line {i + 1}: expected sequence,reward")
            try:
                rewards.append(float(row[1]))
            except ValueError:
                raise ThermoGFNError(f"{path} line {i + 1}: reward {row[1]!r} is not a number") from None
            seqs.append(row[0])
    if not seqs:
        raise ThermoGFNError(f"{path} holds no rows; expected a header then sequence,reward rows")
    return task.encode(seqs), torch.tensor(rewards, dtype=torch.float64)


def bottom_half(task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's offline training set: every object with raw reward <= the median."""
    table = task.table()
    if table is None:
        raise ThermoGFNError(f"task {task.name} has no full table; give offline data with --offline-data")
    keep = torch.nonzero(table <= table.median()).squeeze(1)
    return task.objects_from_index(keep), table[keep].double()
