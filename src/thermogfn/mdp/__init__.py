"""Batched MDPs over which the GFlowNet builds objects."""

from thermogfn.config import MDP_KINDS
from thermogfn.errors import ThermoGFNError
from thermogfn.mdp.base import MDP
from thermogfn.mdp.fragments import FragmentMDP
from thermogfn.mdp.hypergrid import HypergridMDP
from thermogfn.mdp.sequence import AppendMDP, PrependAppendMDP
from thermogfn.tasks.base import Task


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
    if kind == "fragments":
        raise ThermoGFNError("the fragments MDP needs a fragment task (--task sehfrag)")
    raise ThermoGFNError(f"unknown MDP '{kind}'; choose one of {', '.join(MDP_KINDS)}")


def task_mdp(kind: str, task: Task) -> MDP:
    """The MDP ``kind`` that builds ``task``'s objects: fragment trees from its vocabulary, else token rows."""
    if kind == "fragments":
        vocab = getattr(task, "vocab", None)
        if vocab is None:
            raise ThermoGFNError(f"the fragments MDP builds molecules from a fragment vocabulary; task {task.name} "
                                 "has none")
        return FragmentMDP(vocab.block_r, vocab.fragment_id, task.max_blocks, task.min_blocks)
    return make_mdp(kind, task.vocab_size, task.length, task.min_length)


__all__ = ["MDP", "MDP_KINDS", "AppendMDP", "FragmentMDP", "HypergridMDP", "PrependAppendMDP", "make_mdp",
           "task_mdp"]
