"""Baselines the paper compares against, one readable module each, on the same tasks, MDPs and run format."""

from __future__ import annotations

from thermogfn.baselines.a2c import A2C
from thermogfn.baselines.annealing import SimulatedAnnealing
from thermogfn.baselines.mcmc import MCMC
from thermogfn.baselines.ppo import PPO
from thermogfn.baselines.random_search import RandomSearch
from thermogfn.baselines.sac import SAC

BASELINES = {"random": RandomSearch, "mcmc": MCMC, "sa": SimulatedAnnealing, "ppo": PPO, "a2c": A2C, "sac": SAC}

__all__ = ["BASELINES"]
