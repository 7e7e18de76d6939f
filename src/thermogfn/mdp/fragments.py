"""The fragment-graph MDP of the Bengio et al. (2021) sEH benchmark: molecules as trees of vocabulary blocks.

Vocabulary (plain data, as in ``blocks_PDB_105.json``): entry ``e`` is a fragment ``fragment_id[e]`` with attachment
atoms ``block_r[e]`` (an atom may repeat: several stems on it). The first block is placed with all of ``block_r[e]``
open; a later entry ``e`` bonds its atom ``block_r[e][0]`` to an open stem and opens ``block_r[e][1:]``. So a block
only ever owns the multiset of ``block_r[e]``: its **type** is ``(fragment_id, sorted block_r)``, and entries of one
type differ only in the atom they bond through (the original code's translation table). The atoms of a type that are
some entry's ``block_r[0]`` are its *attachable* atoms.

State: the molecule as an unrooted tree of typed blocks whose edges carry the bonded atom at each end, in a
**canonical form**, so that every construction order gives one row. With ``N = max_blocks`` the row holds, per slot
``i < N``: ``type``, ``parent`` slot, ``parent_atom`` (atom of the parent on the bond) and ``own_atom`` (atom of block
``i`` on it), columns ``[0:N] [N:2N] [2N:3N] [3N:4N]`` (padding: ``n_types``, ``N``, ``n_atoms``, ``n_atoms``; the
root has parent ``N``), then one column ``last`` (see below). Canonical form: the tree is rooted at the block whose
AHU code (type, own atom, sorted (atom, child code) pairs) is smallest and laid out in preorder with children sorted
by (parent atom, code); isomorphic trees (same types, same bonded atoms) give equal rows.

``last`` is the slot of the block that the last forward ``step`` added (``N``: unknown, after ``back_step``,
``terminal_state``, or at s0). It is provenance, not identity: it lets ``backward_action_of`` name the removed block
from the child alone. ``encode``, ``state_index``, ``is_initial`` and ``terminal_object`` ignore it (objects have it
reset to ``N``); compare states with :meth:`FragmentMDP.identity`.

Forward actions: ``e`` (``< V``, only at s0) places entry ``e`` as the first block; ``V + e * S + i * R + k`` attaches
entry ``e`` at stem position ``k`` of slot ``i`` (``R``: most attachment atoms of a type, ``S = N * R``), position
``k`` being the k-th atom of the slot type's sorted multiset; of several stems on one atom, the first ones count as
used. Stop: allowed from ``min_blocks`` blocks (or when nothing can be attached), forced at ``max_blocks``.
Backward action ``j``: remove block ``j``, a leaf whose own bonded atom is attachable for its type (so that
re-attaching it is a forward action), or the only block. When the removed leaf was the construction's first block,
its neighbour simply keeps all its atoms: as a lone or root block, all of a type's atoms are stems, so nothing else
changes (the original gives the remaining block the translated entry; here types make that implicit).

Merging (exact: one canonical action per distinct child or parent): forward, entries of one type with the same
first atom, stems on one atom of a slot, stems of different slots in one orbit of the tree's automorphisms (equal
rooted codes), and the rarer pairs whose children are isomorphic only by mapping the new block onto an old leaf of
the same type (e.g. A(atom 1)-B(atom 0) built from A or from B when A, B are one type): those candidates are built and
compared. The first block is merged by type. Backward: leaves whose removal gives the same canonical parent.

Limitations: no atom-level (RDKit) symmetry, so two atoms of a block that are chemically equivalent but numbered
differently give different states (the original resolves some with RDKit in its translation table), and molecules
are compared as block graphs, not as molecules. Stop is also allowed where nothing can be attached (no open stem)
below ``min_blocks``, so no state is a dead end. Enumeration (``n_states`` ...) is for tiny vocabularies only. The
canonicalisation runs in Python, cached per distinct row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from thermogfn.errors import ThermoGFNError
from thermogfn.mdp.base import MDP, NEG_INF
from thermogfn.tasks.fragments import block_types, row_tree

Adjacency = list[list[tuple[int, int, int]]]  # adj[u]: (neighbour v, atom of u, atom of v) per bond
Code = tuple  # nested AHU code (type, own atom, ((atom, child code), ...))
_CACHE_LIMIT = 100_000  # analysed rows kept (cleared when full)


@dataclass
class _Analysis:
    """What the merges and the action maps need about one canonical row."""

    n: int
    types: list[int]
    adj: Adjacency
    stem_rep: list[int]  # (S,) canonical stem position of each open position, -1 where closed
    leaf_rep: list[int]  # (N,) canonical removable slot for each removable slot, -1 elsewhere
    redirect: dict[int, int]  # attach actions (canonical by entry class and stem orbit) merged into a smaller one


@dataclass
class FragmentGraph:
    """Tensors for a graph network over a batch of states (N = max_blocks, R = most stems of a type).

    types (B, N): block type per slot (``n_types`` where empty); present (B, N) bool;
    parent (B, N): parent slot (``N`` for the root and empty slots); parent_atom / own_atom (B, N): bonded atom in
    the parent / in the block (``n_atoms`` where none); stem_atom (B, N, R): atom of each stem position (``n_atoms``
    past the type's stems); stem_open (B, N, R) bool: the open stems (the attachable positions of forward actions).
    """

    types: torch.Tensor
    present: torch.Tensor
    parent: torch.Tensor
    parent_atom: torch.Tensor
    own_atom: torch.Tensor
    stem_atom: torch.Tensor
    stem_open: torch.Tensor


def _code(types: list[int], adj: Adjacency, v: int, p: int, own: int, memo: dict[tuple[int, int], Code]) -> Code:
    """AHU code of the subtree at ``v`` hanging from ``p`` (``-1``: root) by ``v``'s atom ``own``."""
    key = (v, p)
    if key not in memo:
        kids = sorted((a_v, _code(types, adj, w, v, a_w, memo)) for w, a_v, a_w in adj[v] if w != p)
        memo[key] = (types[v], own, tuple(kids))
    return memo[key]


def _canonical(types: list[int], adj: Adjacency) -> tuple[list[tuple[int, int, int, int]], list[int], list[Code]]:
    """Canonical slots ``(type, parent slot or -1, parent atom or -1, own atom or -1)``, the slot of every node and
    the rooted code at every node."""
    memo: dict[tuple[int, int], Code] = {}
    roots = [_code(types, adj, u, -1, -1, memo) for u in range(len(types))]
    order: list[tuple[int, int, int, int]] = []
    slot_of = [0] * len(types)

    def visit(v: int, p: int, parent_slot: int, parent_atom: int, own: int) -> None:
        slot_of[v] = len(order)
        order.append((types[v], parent_slot, parent_atom, own))
        kids = sorted(((a_v, memo[(w, v)], w, a_w) for w, a_v, a_w in adj[v] if w != p), key=lambda x: x[:2])
        for a_v, _, w, a_w in kids:
            visit(w, v, slot_of[v], a_v, a_w)

    visit(min(range(len(types)), key=roots.__getitem__), -1, -1, -1, -1)
    return order, slot_of, roots


def _without(types: list[int], adj: Adjacency, j: int) -> tuple[list[int], Adjacency, list[int]]:
    """The tree without leaf ``j`` and the new index of every old node (-1 for ``j``)."""
    new = [u - (u > j) if u != j else -1 for u in range(len(types))]
    kept = [u for u in range(len(types)) if u != j]
    return ([types[u] for u in kept], [[(new[w], a, b) for w, a, b in adj[u] if w != j] for u in kept], new)


class FragmentMDP(MDP):
    """Fragment-tree MDP; see the module docstring for states, actions and merging.

    Vocabulary tables: ``type_of[e]`` (type of entry e), ``type_atoms[t]`` (sorted attachment atoms: the stem
    positions), ``type_fragment[t]``, ``entry_for[(t, atom)]`` (the entry of type t bonding through atom),
    ``first_entry[t]``, ``attachable[t]``; sizes ``V`` entries, ``N`` = max_blocks slots, ``R`` stem positions per
    slot, ``n_types``, ``n_atoms``. :meth:`graph` gives the tensors of a graph network, :meth:`encode` the MLP's."""

    name = "fragments"

    def __init__(self, block_r: Sequence[Sequence[int]], fragment_id: Sequence[int], max_blocks: int = 8,
                 min_blocks: int = 2, enumeration_limit: int = 200_000):
        if len(block_r) != len(fragment_id) or not block_r or any(len(r) == 0 for r in block_r):
            raise ThermoGFNError("block_r and fragment_id need one entry per vocabulary block, each with an atom")
        if not 1 <= min_blocks <= max_blocks:
            raise ThermoGFNError(f"need 1 <= min_blocks <= max_blocks, got {min_blocks}, {max_blocks}")
        self.V, self.N, self.min_blocks = len(block_r), max_blocks, min_blocks
        self.block_r = [list(map(int, r)) for r in block_r]
        types = block_types(block_r, fragment_id)
        self.type_of = list(types.type_of)
        self.n_types = len(types.atoms)
        self.type_atoms = [list(a) for a in types.atoms]
        self.type_fragment = list(types.fragment)
        self.R = max(len(a) for a in self.type_atoms)
        self.n_atoms = max(max(r) for r in self.block_r) + 1
        self.S = self.N * self.R
        # entry_for[(type, atom)]: the first entry of the type that bonds through atom; first_entry[type]
        self.entry_for: dict[tuple[int, int], int] = {}
        for e in range(self.V):
            self.entry_for.setdefault((self.type_of[e], self.block_r[e][0]), e)
        self.first_entry = list(types.entry)
        self.attachable = [{a for (t2, a) in self.entry_for if t2 == t} for t in range(self.n_types)]
        self._entry_rep = torch.tensor([self.entry_for[(self.type_of[e], self.block_r[e][0])] for e in range(self.V)])
        self._root_rep = torch.tensor([self.first_entry[t] for t in self.type_of])
        # rank of each stem position among the positions of its atom, and its atom (n_atoms past the stems)
        pos_atom = torch.full((self.n_types + 1, self.R), self.n_atoms, dtype=torch.int64)
        pos_rank = torch.zeros(self.n_types + 1, self.R, dtype=torch.int64)
        self._rank: list[list[int]] = []
        for t, atoms in enumerate(self.type_atoms):
            ranks = [atoms[:k].count(a) for k, a in enumerate(atoms)]
            self._rank.append(ranks)
            pos_atom[t, : len(atoms)] = torch.tensor(atoms)
            pos_rank[t, : len(atoms)] = torch.tensor(ranks)
        self._pos_atom, self._pos_rank = pos_atom, pos_rank

        self.state_dim = 4 * self.N + 1
        self.n_actions = self.V + self.V * self.S
        self.n_back = self.N
        self.max_steps = self.N
        self.slot_width = self.n_types + 1 + self.N + 1 + 2 * (self.n_atoms + 1) + self.R
        self.encoding_dim = self.N * self.slot_width
        self._eye_type, self._eye_slot = torch.eye(self.n_types + 1), torch.eye(self.N + 1)
        self._eye_atom = torch.eye(self.n_atoms + 1)
        self.enumeration_limit = enumeration_limit
        self._cache: dict[bytes, _Analysis] = {}
        self._levels: list[torch.Tensor] | None = None
        self._index: dict[tuple[int, ...], int] | None = None

    # -- rows and trees -----------------------------------------------------------------------------------
    def _empty_row(self) -> list[int]:
        n, pad = self.N, self.n_atoms
        return [self.n_types] * n + [n] * n + [pad] * (2 * n) + [n]

    def _row(self, order: list[tuple[int, int, int, int]], last: int) -> list[int]:
        row, n = self._empty_row(), self.N
        for i, (t, p, pa, own) in enumerate(order):
            row[i] = t
            if p >= 0:
                row[n + i], row[2 * n + i], row[3 * n + i] = p, pa, own
        row[4 * n] = last
        return row

    def _tree(self, row: Sequence[int]) -> tuple[list[int], Adjacency]:
        types, bonds = row_tree(row, self.N, self.n_types)
        adj: Adjacency = [[] for _ in types]
        for p, i, pa, own in bonds:
            adj[i].append((p, own, pa))
            adj[p].append((i, pa, own))
        return types, adj

    def _canonical_row(self, types: list[int], adj: Adjacency, node: int = -1) -> list[int]:
        """The canonical row of a tree; ``last`` is the slot of ``node`` (``N`` when -1)."""
        if not types:
            return self._empty_row()
        order, slot_of, _ = _canonical(types, adj)
        return self._row(order, slot_of[node] if node >= 0 else self.N)

    def identity(self, states: torch.Tensor) -> torch.Tensor:
        """The rows without the ``last`` column: equal exactly for equal states."""
        return states[..., : 4 * self.N]

    def _analysis(self, row: Sequence[int], key: bytes) -> _Analysis:
        found = self._cache.get(key)
        if found is not None:
            return found
        types, adj = self._tree(row)
        n = len(types)
        stem_rep, leaf_rep = [-1] * self.S, [-1] * self.N
        if n:
            _, _, roots = _canonical(types, adj)
            first: dict[tuple[Code, int], int] = {}
            for i, t in enumerate(types):
                used: dict[int, int] = {}
                for _, a, _ in adj[i]:
                    used[a] = used.get(a, 0) + 1
                for k, a in enumerate(self.type_atoms[t]):
                    if self._rank[t][k] >= used.get(a, 0):
                        stem_rep[i * self.R + k] = first.setdefault((roots[i], a), i * self.R + k)
            parents: dict[tuple[int, ...], int] = {}
            for j in range(n):
                if n == 1 or (len(adj[j]) == 1 and adj[j][0][1] in self.attachable[types[j]]):
                    parent = tuple(self._canonical_row(*_without(types, adj, j)[:2])[: 4 * self.N])
                    leaf_rep[j] = parents.setdefault(parent, j)
        found = _Analysis(n, types, adj, stem_rep, leaf_rep, self._redirects(types, adj, stem_rep))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _redirects(self, types: list[int], adj: Adjacency, stem_rep: list[int]) -> dict[int, int]:
        """Attach actions of different (entry class, stem orbit) that give one child. The child's isomorphism then
        maps the new block onto an old block Y of the same type that is a leaf bonded like the new one (or the lone
        block): only those candidates are built and compared."""
        n = len(types)
        if not n or n >= self.N:
            return {}
        candidates = set()
        for y, t in enumerate(types):
            if n == 1:
                pairs = [(self.entry_for[(t, own)], None) for own in self.attachable[t]]
            elif len(adj[y]) == 1 and (t, adj[y][0][1]) in self.entry_for:
                pairs = [(self.entry_for[(t, adj[y][0][1])], adj[y][0][2])]
            else:
                continue
            for e, atom in pairs:
                candidates.update(self.V + e * self.S + p for p, r in enumerate(stem_rep) if r == p and (
                    atom is None or self.type_atoms[types[p // self.R]][p % self.R] == atom))
        children: dict[tuple[int, ...], int] = {}
        redirect = {}
        for a in sorted(candidates):
            e, p = divmod(a - self.V, self.S)
            i, k = divmod(p, self.R)
            child_types, own, atom = types + [self.type_of[e]], self.block_r[e][0], self.type_atoms[types[i]][k]
            child_adj = [list(x) for x in adj] + [[(i, own, atom)]]
            child_adj[i].append((n, atom, own))
            first = children.setdefault(tuple(self._canonical_row(child_types, child_adj)[: 4 * self.N]), a)
            if first != a:
                redirect[a] = first
        return redirect

    def _analyses(self, states: torch.Tensor) -> list[_Analysis]:
        rows = states.detach().cpu().numpy()
        ident = rows[:, : 4 * self.N]
        return [self._analysis(rows[b].tolist(), ident[b].tobytes()) for b in range(rows.shape[0])]

    # -- the MDP interface --------------------------------------------------------------------------------
    def initial(self, batch: int) -> torch.Tensor:
        return self._tensor([self._empty_row()] * batch, self.device)

    def _tensor(self, rows: list[list[int]], device: torch.device) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.int64, device=device).reshape(len(rows), self.state_dim)

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        return states[:, 0] == self.n_types

    def n_blocks(self, states: torch.Tensor) -> torch.Tensor:
        return (states[:, : self.N] != self.n_types).sum(-1)

    def graph(self, states: torch.Tensor) -> FragmentGraph:
        """The block graph of ``states`` as tensors (see :class:`FragmentGraph`), without Python loops."""
        n, pad = self.N, self.n_atoms
        types, parent = states[:, :n], states[:, n: 2 * n]
        parent_atom, own = states[:, 2 * n: 3 * n], states[:, 3 * n: 4 * n]
        # used[b, slot, atom]: bonds at each atom of each slot (pads land in the spare slot N / atom n_atoms)
        used = torch.zeros(states.shape[0], (n + 1) * (pad + 1), dtype=torch.int64, device=states.device)
        slots = torch.arange(n, device=states.device).expand_as(own)
        used.scatter_add_(1, slots * (pad + 1) + own, torch.ones_like(own))
        used.scatter_add_(1, parent * (pad + 1) + parent_atom, torch.ones_like(own))
        used = used.view(-1, n + 1, pad + 1)[:, :n]
        stem_atom = self._pos_atom[types]
        stem_open = (stem_atom < pad) & (self._pos_rank[types] >= used.gather(2, stem_atom))
        return FragmentGraph(types, types != self.n_types, parent, parent_atom, own, stem_atom, stem_open)

    def encode(self, states: torch.Tensor) -> torch.Tensor:
        """Per slot: one-hot type, parent slot, parent atom, own atom, and the open-stem mask; concatenated."""
        g = self.graph(states)
        parts = [self._eye_type[g.types], self._eye_slot[g.parent], self._eye_atom[g.parent_atom],
                 self._eye_atom[g.own_atom], g.stem_open.float()]
        return torch.cat(parts, -1).flatten(-2)

    def _forward_rep(self, states: torch.Tensor) -> torch.Tensor:
        """(B, n_forward): the canonical action of every valid forward action, -1 for invalid ones."""
        an = self._analyses(states)
        dev = states.device
        n = torch.tensor([a.n for a in an], device=dev)
        stem = torch.tensor([a.stem_rep for a in an], dtype=torch.int64, device=dev)  # (B, S)
        grow = (n > 0) & (n < self.N)
        attach = self.V + self._entry_rep.to(dev)[None, :, None] * self.S + stem[:, None, :]
        attach = attach.masked_fill(~grow[:, None, None] | (stem[:, None, :] < 0), -1).flatten(1)
        root = torch.where((n == 0)[:, None], self._root_rep.to(dev), -1)
        can_stop = (n >= self.min_blocks) | ((n > 0) & ((stem < 0).all(-1) | (n == self.N)))
        stop = torch.where(can_stop, self.stop, -1)[:, None]
        rep = torch.cat([root, attach, stop], 1)
        for b, a in enumerate(an):
            for source, target in a.redirect.items():
                rep[b].masked_fill_(rep[b] == source, target)
        return rep

    def _backward_rep(self, states: torch.Tensor) -> torch.Tensor:
        return torch.tensor([a.leaf_rep for a in self._analyses(states)], dtype=torch.int64, device=states.device)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return self._forward_rep(states) >= 0

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return self._backward_rep(states) >= 0

    def merge_forward(self, states: torch.Tensor, logits: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return _merge(logits, self._forward_rep(states))

    def merge_backward(self, states: torch.Tensor, logits: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return _merge(logits, self._backward_rep(states))

    def step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        rows, out = states.tolist(), []
        for row, a in zip(rows, actions.tolist(), strict=True):
            types, adj = self._tree(row)
            if a == self.stop or a < 0:
                out.append(row)
            elif not types:
                out.append(self._canonical_row([self.type_of[a]], [[]], 0) if a < self.V else row)
            else:
                e, s = divmod(a - self.V, self.S)
                i, k = divmod(s, self.R)
                if (a < self.V or len(types) >= self.N or i >= len(types) or k >= len(self.type_atoms[types[i]])
                        or self._rank[types[i]][k] < sum(a_i == self.type_atoms[types[i]][k] for _, a_i, _ in adj[i])):
                    out.append(row)  # an invalid attachment (no slot left, or a closed stem): unchanged
                    continue
                v, atom, own = len(types), self.type_atoms[types[i]][k], self.block_r[e][0]
                types.append(self.type_of[e])
                adj.append([(i, own, atom)])
                adj[i].append((v, atom, own))
                out.append(self._canonical_row(types, adj, v))
        return self._tensor(out, states.device)

    def back_step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        out = []
        for row, j in zip(states.tolist(), actions.tolist(), strict=True):
            types, adj = self._tree(row)
            if j >= len(types) or (len(types) > 1 and len(adj[j]) != 1):
                out.append(row)  # s0 or an invalid removal: unchanged
            else:
                out.append(self._canonical_row(*_without(types, adj, j)[:2]))
        return self._tensor(out, states.device)

    def backward_action_of(self, children: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The removal of the block that ``step`` added (read from ``last``); 0 for stops and unknown rows."""
        out = []
        for an, row, a in zip(self._analyses(children), children.tolist(), actions.tolist(), strict=True):
            last = row[4 * self.N]
            ok = 0 <= a < self.stop and last < an.n
            out.append(max(an.leaf_rep[last], 0) if ok else 0)
        return torch.tensor(out, dtype=torch.int64, device=children.device)

    def forward_action_of(self, parents: torch.Tensor, back_actions: torch.Tensor,
                          children: torch.Tensor) -> torch.Tensor:
        """The canonical action that re-attaches the block removed by ``back_actions`` (0 for invalid rows)."""
        out = [0] * children.shape[0]
        moved = torch.nonzero((self.identity(parents) != self.identity(children)).any(-1)).reshape(-1)
        if moved.numel():  # rows of a backward rollout past their start repeat the object: nothing to re-attach
            for b, an, j in zip(moved.tolist(), self._analyses(children[moved]), back_actions[moved].tolist(),
                                strict=True):
                out[b] = self._reattach(an, j)
        return torch.tensor(out, dtype=torch.int64, device=children.device)

    def _reattach(self, an: _Analysis, j: int) -> int:
        if j >= an.n or an.leaf_rep[j] < 0:
            return 0
        if an.n == 1:
            return self.first_entry[an.types[0]]
        (w, own, atom), = an.adj[j]
        types, adj, new = _without(an.types, an.adj, j)
        order, slot_of, _ = _canonical(types, adj)
        parent_row = self._row(order, self.N)
        parent = self._analysis(parent_row, np.asarray(parent_row[: 4 * self.N], dtype=np.int64).tobytes())
        slot = slot_of[new[w]]
        stem = next(r for r, a in zip(parent.stem_rep[slot * self.R: (slot + 1) * self.R],
                                      self.type_atoms[parent.types[slot]], strict=False) if a == atom and r >= 0)
        action = self.V + self.entry_for[(an.types[j], own)] * self.S + stem
        return parent.redirect.get(action, action)

    def terminal_object(self, states: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.identity(states), torch.full_like(states[:, :1], self.N)], 1)

    def terminal_state(self, objects: torch.Tensor) -> torch.Tensor:
        return self.terminal_object(objects.to(torch.int64))

    # -- molecules in the original's format -------------------------------------------------------------
    def _construction(self, row: Sequence[int]) -> list[tuple[int, int, int, int]]:
        """The blocks in a valid construction order: (node, parent index in that order or -1, parent atom, own atom),
        every non-first block bonding through an attachable atom. Raises if there is none."""
        types, adj = self._tree(row)
        for root in range(len(types)):
            order, pos, ok = [(root, -1, -1, -1)], {root: 0}, True
            for v, _, _, _ in order:  # grows while iterating: breadth first
                for w, a_v, a_w in adj[v]:
                    if w not in pos:
                        ok &= a_w in self.attachable[types[w]]
                        pos[w] = len(order)
                        order.append((w, pos[v], a_v, a_w))
            if ok:
                return order
        raise ThermoGFNError("no construction order bonds every block through an attachable atom")

    def to_blocks(self, row: torch.Tensor) -> tuple[list[int], list[list[int]]]:
        """``(blockidxs, jbonds)`` of one state as the original stores a molecule: vocabulary entries in a
        construction order, bonds ``[block_i, block_j, atom_in_i, atom_in_j]`` (atom indices local to each block)."""
        values = row.tolist()
        order = self._construction(values)
        types = self._tree(values)[0]
        blocks = [self.first_entry[types[v]] if p < 0 else self.entry_for[(types[v], own)]
                  for v, p, _, own in order]
        jbonds = [[p, i, pa, own] for i, (_, p, pa, own) in enumerate(order) if p >= 0]
        return blocks, jbonds

    def stems(self, row: torch.Tensor) -> list[list[int]]:
        """The open stems ``[block, atom]`` of one state, blocks numbered as in :meth:`to_blocks`."""
        values = row.tolist()
        types, adj = self._tree(values)
        out = []
        for i, (v, _, _, _) in enumerate(self._construction(values)):
            free = list(self.type_atoms[types[v]])
            for _, a, _ in adj[v]:
                free.remove(a)
            out += [[i, a] for a in free]
        return out

    def from_blocks(self, blockidxs: Sequence[int], jbonds: Sequence[Sequence[int]]) -> torch.Tensor:
        """The canonical state (state_dim,) of a molecule given as the original stores it. Each block's type is its
        entry's (fragment, attachment atoms); which atom it bonds through may be any of them. Raises
        :class:`ThermoGFNError` for molecules that this MDP cannot build."""
        n = len(blockidxs)
        if not 1 <= n <= self.N or len(jbonds) != n - 1:
            raise ThermoGFNError(f"need a tree of 1..{self.N} blocks, got {n} blocks and {len(jbonds)} bonds")
        if any(not 0 <= int(e) < self.V for e in blockidxs):
            raise ThermoGFNError(f"block entries must lie in 0..{self.V - 1}, got {list(blockidxs)}")
        if any(len(b) != 4 or not (0 <= int(b[0]) < n and 0 <= int(b[1]) < n) for b in jbonds):
            raise ThermoGFNError(f"bonds must be [block_i, block_j, atom_i, atom_j] with blocks in 0..{n - 1}")
        types = [self.type_of[int(e)] for e in blockidxs]
        adj: Adjacency = [[] for _ in types]
        for i, j, a_i, a_j in (map(int, b) for b in jbonds):
            adj[i].append((j, a_i, a_j))
            adj[j].append((i, a_j, a_i))
        for v, t in enumerate(types):
            free = list(self.type_atoms[t])
            for _, a, _ in adj[v]:
                if a not in free:
                    raise ThermoGFNError(f"block {v} bonds atom {a}, which is not one of its open stems")
                free.remove(a)
        reach = [0]  # n - 1 bonds reaching all n blocks: a tree (checked before the codes, which assume one)
        for u in reach:
            for w, _, _ in adj[u]:
                if w not in reach:
                    reach.append(w)
        if len(reach) != n:
            raise ThermoGFNError("the bonds do not connect the blocks into one tree")
        row = self._canonical_row(types, adj)
        self._construction(row)
        return torch.tensor(row, dtype=torch.int64)

    # -- enumeration (tiny vocabularies) ------------------------------------------------------------------
    def _upper_bound(self) -> float:
        """Crude bound on the number of states: T types, then E (type, atom) attachments at <= k R stems."""
        grow = len(self.entry_for)
        return sum(self.n_types * math.prod(grow * k * self.R for k in range(1, n)) for n in range(1, self.N + 1)) + 1

    def states_by_level(self) -> list[torch.Tensor]:
        """Every state by number of blocks (rows with ``last`` = N). Raises for spaces past ``enumeration_limit``."""
        if self._levels is None:
            if self._upper_bound() > self.enumeration_limit:
                raise ThermoGFNError(f"the fragment MDP ({self.V} entries, {self.N} blocks) is too large to enumerate")
            levels = [self.initial(1)]
            for _ in range(self.N):
                level = levels[-1]
                moves = torch.isfinite(self.merge_forward(level, torch.zeros(len(level), self.n_forward)))
                moves[:, self.stop] = False
                rows, acts = moves.nonzero(as_tuple=True)
                if not len(rows):
                    break
                children = self.terminal_object(self.step(level[rows], acts))
                levels.append(torch.unique(children, dim=0))
            self._levels = levels
            flat = torch.cat(levels)
            self._index = {tuple(r): i for i, r in enumerate(self.identity(flat).tolist())}
        return self._levels

    def n_states(self) -> int:
        return sum(len(level) for level in self.states_by_level())

    def state_index(self, states: torch.Tensor) -> torch.Tensor:
        self.states_by_level()
        assert self._index is not None
        return torch.tensor([self._index[tuple(r)] for r in self.identity(states).tolist()], dtype=torch.int64)

    @property
    def log_n_objects(self) -> float:  # type: ignore[override]
        """Log of the number of molecules: exact where enumerable, else an estimate (only log Z's initial value):
        E (type, atom) attachments at the mean number of open stems, over the (n-1)! orders of n blocks."""
        if self._upper_bound() <= self.enumeration_limit:
            levels = self.states_by_level()
            stops = sum(int(self.forward_mask(level)[:, self.stop].sum()) for level in levels)
            return math.log(stops)
        mean_r = sum(len(a) for a in self.type_atoms) / self.n_types
        terms = []
        for n in range(self.min_blocks, self.N + 1):
            stems = [max(1.0, mean_r + (k - 1) * (mean_r - 2)) for k in range(1, n)]
            terms.append(math.log(self.n_types) + sum(math.log(len(self.entry_for) * s / k)
                                                     for k, s in enumerate(stems, 1)))
        return float(torch.logsumexp(torch.tensor(terms), 0))


def _merge(logits: torch.Tensor, rep: torch.Tensor) -> torch.Tensor:
    """Log-sum-exp of the logits of each class into its representative column (``rep``: representative of every
    column, -1 for invalid ones); every other column -inf."""
    valid = rep >= 0
    idx = rep.clamp_min(0)
    x = logits.masked_fill(~valid, NEG_INF)
    top = torch.full_like(x, NEG_INF).scatter_reduce(1, idx, x, "amax").detach()
    shifted = torch.where(valid, x - top.gather(1, idx).masked_fill(~valid, 0.0), NEG_INF)
    total = torch.zeros_like(x).scatter_add(1, idx, shifted.exp())
    return torch.where(total > 0, top + total.masked_fill(total <= 0, 1.0).log(), NEG_INF)
