"""QM9str: 5 building blocks out of 11, scored by a proxy HOMO-LUMO gap (a full table)."""

from __future__ import annotations

import os

import numpy as np
import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.tasks.base import Shaping, TaskDefaults
from thermogfn.tasks.blocks import BlockStringTask
from thermogfn.tasks.data import data_dir as resolve_data_dir
from thermogfn.tasks.data import require_file

ALPHABET = "0123456789a"
LENGTH = 5
N_OBJECTS = len(ALPHABET) ** LENGTH
TABLE_NAME = "qm9str_rewards.npz"
TABLE_SHA256 = "8ffbf932ba962e8f0e38aa2ab7f2300cf89fdeb67717f305855af101c8f358cc"
MODES_NAME = "modes_qm9str.txt"
MODES_SHA256 = "3726ae7b48a81ee45a58209d559e55097cc2c1b63d805704ee97df3df2a2dde2"
N_MODES = 364
HOW_TO_GET = ("pass --data-dir DIR or set THERMOGFN_DATA_DIR to a folder holding qm9str/ (files from "
              "dbsxodud-11/logit-gfn datasets/qm9str, converted as in shared/data/qm9str/README.md)")


class QM9StrTask(BlockStringTask):
    """Strings of 5 blocks over ``0123456789a``; raw reward = proxy gap (607 are <= 0: shaping clips them).

    Shaping ``100 * (max(r, 0.001) / max r)**5``; modes: the 364 given strings.
    """

    alphabet = ALPHABET

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        self.name = "qm9str"
        self.vocab_size = len(ALPHABET)
        self.length = LENGTH
        self.data_path = resolve_data_dir(data_dir, "qm9str")
        path = require_file(self.data_path, TABLE_NAME, TABLE_SHA256, HOW_TO_GET)
        with np.load(path) as data:
            r = np.asarray(data["reward"]).reshape(-1)
        if r.shape != (N_OBJECTS,) or not np.isfinite(r).all():
            raise ThermoGFNError(f"{path} has shape {r.shape} or non-finite rewards; expected {N_OBJECTS} "
                                 "finite values; re-download it")
        self._table = torch.from_numpy(r.astype(np.float64))
        self.shaping = Shaping.scaled(exponent=5, r_min=0.001, s_max=100, r_max=float(self._table.max()))
        self.defaults = TaskDefaults(hidden=1024, eps=0.1, rounds=2000, lr=1e-4)
        self.modes_file = (MODES_NAME, MODES_SHA256, N_MODES)
        self.how_to_get = HOW_TO_GET

    def raw_reward(self, x: torch.Tensor) -> torch.Tensor:
        return self._table[self.object_index(x)]

    def table(self) -> torch.Tensor:
        return self._table
