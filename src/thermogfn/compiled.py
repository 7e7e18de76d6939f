"""Optional ``torch.compile`` of the rollouts of a GFlowNet round (``--compile``).

On small tensors a round is bound by per-operation overhead (benchmarks/README.md), not arithmetic. Compiling
fuses a chunk of ``COMPILE_CHUNK`` rollout steps (forward and backward) into a few C++ kernels per call. Each
distinct shape compiles once per process (tens of seconds; inductor caches kernels on disk, so later processes
start faster). The loss stays eager: compiled on this CPU, its forward and backward were slower than eager
(benchmarks/README.md). The rollouts draw the same actions from the same pre-drawn noise as the eager code, so
a run's results do not depend on the flag beyond the last bits of the network's outputs (which can flip a
near-tie); the config records it and a resume uses the same. Where ``torch.compile`` fails (no C++ compiler, an
unsupported platform), the first failure prints one line and the run continues eagerly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from thermogfn.sampling import backward_steps, forward_steps

COMPILE_CHUNK = 8  # rollout steps per compiled call: one call per fixed-length sequence of <= 8 tokens


class _Compiled:
    """``fn`` compiled on first use; falls back to ``fn`` for good if compiling or running the compiled code fails."""

    failed = False  # one failure turns compilation off for the process (and the warning is printed once)

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.compiled = torch.compile(fn, dynamic=False)

    def __call__(self, *args: Any) -> Any:
        if _Compiled.failed:
            return self.fn(*args)
        try:
            return self.compiled(*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
            _Compiled.failed = True
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            print(f"thermogfn: torch.compile is unavailable here ({first}); continuing without --compile",
                  file=sys.stderr)
            return self.fn(*args)


class CompiledRound:
    """The compiled rollout steps of one trainer (see the module docstring)."""

    def __init__(self) -> None:
        self.forward_steps = _Compiled(forward_steps)
        self.backward_steps = _Compiled(backward_steps)
        self.chunk = COMPILE_CHUNK
