"""Batched MDPs over which the GFlowNet builds objects."""

from thermogfn.config import MDP_KINDS
from thermogfn.errors import ThermoGFNError
from thermogfn.mdp.base import MDP
from thermogfn.mdp.fragments import FragmentMDP
from thermogfn.mdp.hypergrid import HypergridMDP
from thermogfn.mdp.sequence import AppendMDP, PrependAppendMDP


def make_mdp(kind: str, vocab_size: int, length: int, min_length: int | None = None) -> MDP:
    """Build the MDP ``kind`` for objects in ``{0..vocab_size-1}^length`` (sequence MDPs: of every length
    ``min_length..length`` when ``min_length`` is given)."""
    if kind == "prepend-append":
        return PrependAppendMDP(vocab_size, length, min_length)
    if kind == "append":
        return AppendMDP(vocab_size, length, min_length)
    if kind == "hypergrid":
        if min_length is not None and min_length != length:
            raise ThermoGFNError("the hypergrid MDP builds points of a fixed dimension; min_length does not apply")
        return HypergridMDP(vocab_size, length)
    raise ThermoGFNError(f"unknown MDP '{kind}'; choose one of {', '.join(MDP_KINDS)}")


__all__ = ["MDP", "MDP_KINDS", "AppendMDP", "FragmentMDP", "HypergridMDP", "PrependAppendMDP", "make_mdp"]
