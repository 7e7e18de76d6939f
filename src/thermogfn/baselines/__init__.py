"""Baselines the paper compares against, one readable module each, on the same tasks, MDPs and run format."""

from __future__ import annotations

from thermogfn.baselines.random_search import RandomSearch

BASELINES = {"random": RandomSearch}

__all__ = ["BASELINES"]
