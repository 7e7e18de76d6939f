"""thermogfn: temperature-conditional GFlowNets with learned logit scaling (Logit-GFN).

Quick use::

    import thermogfn as tg
    trainer = tg.train(tg.RunConfig(task="tfbind8", steps=2000), "runs/tfbind8")
    print(tg.exact_metrics(trainer.model, trainer.task, beta=10.0)["tv"])
    x, reward = tg.draw_samples(trainer, beta=10.0, n=100)

Names are imported on first use, so ``import thermogfn`` (and the command line's help) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BetaPrior": "thermogfn.priors", "parse_beta_prior": "thermogfn.priors",
    "RunConfig": "thermogfn.config", "ModelConfig": "thermogfn.config",
    "ThermoGFNError": "thermogfn.errors",
    "draw_samples": "thermogfn.evaluate", "evaluate": "thermogfn.evaluate", "load_run": "thermogfn.evaluate",
    "draw_corrected": "thermogfn.evaluate", "estimate": "thermogfn.evaluate",
    "beta_for_mean_reward": "thermogfn.evaluate",
    "exact_metrics": "thermogfn.exact", "target_distribution": "thermogfn.exact",
    "terminal_distribution": "thermogfn.exact",
    "GFlowNetModel": "thermogfn.policy",
    "Shaping": "thermogfn.tasks", "Task": "thermogfn.tasks", "make_task": "thermogfn.tasks",
    "CustomTask": "thermogfn.tasks.custom",
    "GFlowNetTrainer": "thermogfn.gfn",
    "METHODS": "thermogfn.methods", "make_trainer": "thermogfn.methods",
    "train": "thermogfn.loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'thermogfn' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    # bind every export of that module now: importing ``thermogfn.evaluate`` sets the package attribute
    # ``evaluate`` to the module, which must not hide the function of the same name
    globals().update({n: getattr(module, n) for n, m in _EXPORTS.items() if m == _EXPORTS[name]})
    return globals()[name]


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
