"""thermogfn: temperature-conditional GFlowNets with learned logit scaling (Logit-GFN).

Quick use::

    import thermogfn as tg
    trainer = tg.train(tg.RunConfig(task="tfbind8", steps=2000), "runs/tfbind8")
    print(tg.exact_metrics(trainer.model, trainer.task, beta=10.0)["tv"])
    x, reward = tg.draw_samples(trainer, beta=10.0, n=100)
"""

from thermogfn.config import RunConfig
from thermogfn.errors import ThermoGFNError
from thermogfn.evaluate import draw_samples, evaluate, load_run
from thermogfn.exact import exact_metrics, target_distribution, terminal_distribution
from thermogfn.policy import GFlowNetModel, ModelConfig
from thermogfn.priors import BetaPrior, parse_beta_prior
from thermogfn.tasks import Shaping, Task, make_task
from thermogfn.tasks.custom import CustomTask
from thermogfn.train import Trainer, train

__version__ = "0.1.0"

__all__ = [
    "BetaPrior", "CustomTask", "GFlowNetModel", "ModelConfig", "RunConfig", "Shaping", "Task", "ThermoGFNError",
    "Trainer", "draw_samples", "evaluate", "exact_metrics", "load_run", "make_task", "parse_beta_prior",
    "target_distribution", "terminal_distribution", "train",
]
