"""Running the ``thermogfn`` command in-process from tests (much faster than a subprocess)."""

from __future__ import annotations

import contextlib
import io
import sys
from unittest import mock

from thermogfn.cli import main


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
