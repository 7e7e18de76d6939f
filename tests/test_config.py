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


def test_hypergrid_rewards_from_the_command_line():
    out = new_dir() / "run"
    code, _, err = run_cli("train", *TINY_HYPERGRID, "--steps", "1", "--r0", "0.1", "--r2", "3", "--out", str(out))
    assert code == 0, err
    from thermogfn.rundir import RunDir
    from thermogfn.tasks import load_task

    cfg = RunDir(out).load_config()
    assert (cfg.r0, cfg.r1, cfg.r2) == (0.1, 0.5, 3.0)
    from thermogfn.tasks.hypergrid import HypergridTask

    want = HypergridTask(ndim=cfg.ndim, height=cfg.height, r0=0.1, r2=3.0).table()
    assert load_task(cfg).table().equal(want) and float(want.min()) == 0.1


@pytest.mark.parametrize("flags", [["--r0", "0.1"], ["--r1", "1", "--ndim", "3"]])
def test_hypergrid_reward_flags_refused_elsewhere(flags):
    code, out, err = run_cli("train", "--task", "tfbind8", *flags, "--steps", "1", "--out", str(new_dir() / "run"))
    assert code != 0 and ("apply to the hypergrid" in err or "applies to the hypergrid" in err)
    assert_clean(code, out, err)


def test_hypergrid_rejects_a_nonpositive_r0():
    code, out, err = run_cli("train", *TINY_HYPERGRID, "--steps", "1", "--r0", "0", "--out", str(new_dir() / "run"))
    assert code != 0 and "r0 > 0" in err
    assert_clean(code, out, err)
