"""Shared test helpers: running the ``thermogfn`` command in-process (much faster than a subprocess), and the
hostile-input toolkit (clean-failure assertions, hypothesis settings and strategies, scratch folders) used by the
component test files. Hostile input means: every bad flag, data file or reward function is one line on stderr, a
non-zero exit, no traceback, and nothing already written is damaged."""

from __future__ import annotations

import contextlib
import io
import itertools
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from thermogfn.cli import main
from thermogfn.tasks.custom import CustomTask


def run_cli(*args: str, plots: bool = False) -> tuple[int, str, str]:
    """``thermogfn ARGS`` in-process: (exit code, stdout, stderr). Any exception other than SystemExit escapes."""
    out, err = io.StringIO(), io.StringIO()
    patches = contextlib.ExitStack()
    patches.enter_context(mock.patch.object(sys, "argv", ["thermogfn", *args]))
    if not plots:  # matplotlib is most of a tiny run's time and not what is tested here
        patches.enter_context(mock.patch("thermogfn.loop.write_plots"))
    code = 0
    with patches, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------- hostile input
FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
FEW = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

# the tiniest hypergrid run, logging and checkpointing every round (add --steps and --out)
TINY_HYPERGRID = ["--task", "hypergrid", "--ndim", "2", "--height", "3", "--hidden", "8", "--layers", "1",
                  "--batch-size", "4", "--replay-batch", "4", "--log-every", "1", "--checkpoint-every", "1",
                  "--no-progress"]
HOSTILE_TMP = Path(tempfile.mkdtemp(prefix="thermogfn_hostile_"))  # hypothesis examples cannot use tmp_path


def new_dir() -> Path:
    """A fresh empty folder (under HOSTILE_TMP)."""
    return Path(tempfile.mkdtemp(dir=HOSTILE_TMP))


def assert_clean(code: int, out: str, err: str) -> str:
    """Exit 0, or a clean failure: one 'error: ...' line, or click's usage block ending in one 'Error: ...' line."""
    assert "Traceback" not in err and "Traceback" not in out
    if code == 0:
        return "ok"
    assert code in (1, 2), (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    if lines and lines[0].startswith("Usage:"):
        assert lines[-1].startswith("Error: ") and len(lines) <= 4, err
        return "usage"
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > 8, err
    return "error"


def assert_one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text.strip() and "\n" not in text and "\r" not in text and "Traceback" not in text, text


chars = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))  # argv cannot hold these
number_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["", " ", "nan", "-inf", "inf", "1e999", "-0", "0", "0x10", "1_0", "\u0661", "1e-400", "3.4e38",
                     "1e-45", "+2", " 2 ", "2.", ".5", "1/2", "True"]),
)
garbage = st.one_of(st.text(chars, max_size=12), number_text,
                    st.sampled_from(["--", "-h", "--help", "-", "=", ":", "::", "\n", "a\nb", "\t", "'", '"']))

# a valid custom reward file (--task FILE:reward) and the task over {A,B}^3 that reward files and CSVs are read for
custom_reward_file = HOSTILE_TMP / "reward_ok.py"
custom_reward_file.write_text("import numpy as np\n\ndef reward(seqs):\n    return np.arange(len(seqs)) + 1.0\n")
AB3 = CustomTask(lambda s: np.ones(len(s)), "AB", 3, name="ab3")
AB3_SEQS = ["".join(t) for t in itertools.product("AB", repeat=3)]
