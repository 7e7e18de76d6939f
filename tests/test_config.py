"""Run settings (thermogfn.config): resolve() rejects bad numbers with one line, exit 2, no traceback."""

from __future__ import annotations

import pytest
from cli_helpers import TINY_HYPERGRID, assert_clean, new_dir, run_cli

# numeric flags whose bad values must be rejected by resolve() (once a traceback or a silent "success")
BAD_NUMBERS = [["--lr", "nan"], ["--lr", "inf"], ["--lr", "-1"], ["--lr-logz", "nan"], ["--hidden", "-5"],
               ["--hidden", "0"], ["--layers", "0"], ["--layers", "-1"], ["--log-every", "0"],
               ["--log-every", "-1"], ["--checkpoint-every", "0"], ["--checkpoint-every", "-3"],
               ["--objective", "subtb", "--subtb-lambda", "nan"], ["--subtb-lambda", "-1"],
               ["--seed", str(2**70)]]


@pytest.mark.parametrize("flags", BAD_NUMBERS, ids=lambda f: " ".join(f))
def test_train_rejects_bad_numeric_flags(flags):
    code, out, err = run_cli("train", *TINY_HYPERGRID, "--steps", "2", *flags, "--out", str(new_dir() / "run"))
    assert code != 0
    assert_clean(code, out, err)
