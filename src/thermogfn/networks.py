"""Trunks of the policy: a batch of states ``(B, state_dim)`` int64, plus the beta embedding of layer
conditioning (or None), to one feature vector ``(B, hidden)`` that the forward, backward and flow heads read.

- ``mlp``: the MLP over the one-hot state (every MDP; the default everywhere).
- ``transformer``: a small pre-norm transformer encoder over the tokens of a sequence state. A token's position is
  given twice, counted from the start and from the end of the *filled* part, so a prepend changes the start index
  of every token but none of the end indices (and an append the reverse): both ends of the growing string are
  anchored. Padding is masked out of attention and pooling, and only the longest filled prefix of the batch is
  computed, so a rollout step at length t costs O(t), not O(L). A learned CLS token (plus an embedding of the
  filled length) makes the empty state s0 well defined; layer conditioning's beta embedding is one more token.
  Features: the CLS output and the mean over filled tokens, through a linear layer.
- ``conv``: residual dilated 1-D convolutions over the token embeddings (zero outside the filled part, so a
  prepend shifts the features exactly); pooled by masked mean and max, plus a filled-length embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from thermogfn.conditioning import mlp
from thermogfn.config import ARCHITECTURES, GRAPH_MDPS, TRANSFORMER_HEADS
from thermogfn.errors import ThermoGFNError
from thermogfn.mdp import MDP
from thermogfn.mdp.fragments import FragmentGraph

WIDE_INPUT = 512  # one-hot inputs wider than this enter the first layer as a sum of its columns


class MLPTrunk(nn.Sequential):
    """LeakyReLU MLP over ``mdp.encode(states)`` (with the beta embedding concatenated): ``layers`` hidden layers
    of width ``hidden`` then the feature layer. A Sequential, so parameter names (``trunk.0.weight``, ...) and
    initialisation are those of every earlier version.

    For a one-hot encoding wider than :data:`WIDE_INPUT` (long sequences, big alphabets), rollouts (the snapshot,
    no gradients) compute the first layer as the sum of the weight columns of each position's value
    (``embedding_bag``): the same function with state_dim instead of state_dim x classes multiply-adds per unit.
    With gradients the dense one-hot product stays: ``embedding_bag``'s backward was slower than the GEMM's."""

    def __init__(self, mdp: MDP, hidden: int, layers: int, beta_dim: int = 0):
        super().__init__(*mlp([mdp.encoding_dim + beta_dim] + [hidden] * layers + [hidden]), nn.LeakyReLU())
        self.encode = mdp.encode
        self.width = mdp.encoding_dim if mdp.encoding_classes and mdp.encoding_dim > WIDE_INPUT else 0
        if self.width:  # column of (position i, value v) in the one-hot encoding: i * classes + v
            self.register_buffer("column0", torch.arange(mdp.state_dim) * mdp.encoding_classes, persistent=False)

    def _first_layer(self, states: torch.Tensor, embedding: torch.Tensor | None, columns_t: torch.Tensor,
                     rest_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Pre-activation of the first layer from the columns of the one-hot entries (``columns_t``: the one-hot
        part of W^T, ``rest_t``: the beta embedding's part)."""
        h = F.embedding_bag(states + self.column0, columns_t, mode="sum") + bias
        return h if embedding is None else torch.addmm(h, embedding, rest_t)

    def forward(self, states: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        x = self.encode(states)
        if embedding is not None:
            x = torch.cat([x, embedding], dim=-1)
        return super().forward(x)

    def snapshot(self) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
        """The same features without gradients, from a copy of the current weights laid out for small batches:
        ``x @ W^T`` with ``W^T`` stored contiguously is ~1.6x faster than ``linear`` at 16 rows (benchmarks/
        README.md), and the activations run in place. Valid until the next optimiser step (one rollout)."""
        slope = next(m.negative_slope for m in self if isinstance(m, nn.LeakyReLU))
        layers = [(m.weight.detach().t().contiguous(), m.bias.detach()) for m in self if isinstance(m, nn.Linear)]
        encode, width = self.encode, self.width

        def features(states: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
            if width:
                weight_t, bias = layers[0]
                x = F.leaky_relu_(self._first_layer(states, embedding, weight_t[:width], weight_t[width:], bias),
                                  slope)
                rest = layers[1:]
            else:
                x = encode(states)
                if embedding is not None:
                    x = torch.cat([x, embedding], dim=-1)
                rest = layers
            for weight_t, bias in rest:  # every Linear of the trunk is followed by a LeakyReLU
                x = F.leaky_relu_(torch.addmm(bias, x, weight_t), slope)
            return x

        return features


def filled_prefix(states: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mask (B, W), lengths (B,), W): the filled part of each left-aligned state (tokens before its first pad),
    cut to the batch's longest filled part W >= 1 (everything after is padding in every row)."""
    filled = (states != pad).cumprod(-1).bool()
    lengths = filled.sum(-1)
    width = max(1, int(lengths.max())) if states.shape[0] else 1  # one (masked) column keeps s0-only batches valid
    return filled[:, :width], lengths, width


CHUNK_TOKENS = 65_536  # a batch of more padded tokens runs in chunks of ~CHUNK_TOKENS / 2 filled tokens
CHECKPOINT_FLOATS = 2**26  # with gradients, recompute chunks in backward when tokens x width x layers exceeds this


class _SequenceTrunk(nn.Module):
    """Token embeddings and the batching shared by the token-wise trunks.

    The objectives score every state of every trajectory in one call: at length L that is ~L^2/2 tokens per
    trajectory, padded to L^2. Such a batch is sorted by filled length and cut into chunks of about
    ``CHUNK_TOKENS / 2`` filled tokens, each cut to its own longest state (about half the padded work), and when
    gradients are needed and the activations would be large, each chunk is recomputed in backward
    (``torch.utils.checkpoint``) instead of kept: memory stays at one chunk's. Rollout steps (equal lengths) and
    small batches (TFBind8) take the single-call path.
    """

    def __init__(self, mdp: MDP, hidden: int, layers: int):
        super().__init__()
        if not hasattr(mdp, "K") or not hasattr(mdp, "L"):
            raise ThermoGFNError(f"the token-wise trunks (transformer, conv) need a sequence MDP, not {mdp.name!r}")
        self.pad, self.length, self.hidden, self.layers = mdp.K, mdp.L, hidden, layers
        self.token = nn.Embedding(mdp.K + 1, hidden)
        self.filled_length = nn.Embedding(mdp.L + 1, hidden)

    def forward(self, states: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        filled = (states != self.pad).cumprod(-1).sum(-1)
        width = max(1, int(filled.max())) if states.shape[0] else 1
        if states.shape[0] * width <= CHUNK_TOKENS:
            return self._features(states, embedding)
        order = filled.argsort(stable=True)
        ends = (filled[order].clamp_min(1).cumsum(0) // (CHUNK_TOKENS // 2)).unique_consecutive(return_counts=True)[1]
        recompute = torch.is_grad_enabled() and int(filled.sum()) * self.hidden * self.layers > CHECKPOINT_FLOATS
        parts = []
        for idx in order.split(ends.tolist()):
            emb = embedding[idx] if embedding is not None else None
            if recompute:
                parts.append(checkpoint(self._features, states[idx], emb, use_reentrant=False))
            else:
                parts.append(self._features(states[idx], emb))
        return torch.cat(parts).index_select(0, order.argsort())

    def _features(self, states: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _tokens(self, states: torch.Tensor):
        mask, lengths, width = filled_prefix(states, self.pad)
        tokens = states[:, :width].masked_fill(~mask, self.pad)  # anything beyond the filled part reads as pad
        return self.token(tokens), mask, lengths, width


class _Block(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + FF(LN(x)) with a GELU feed-forward of ``ff`` x width."""

    def __init__(self, width: int, heads: int, ff: int = 2):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, ff * width), nn.GELU(), nn.Linear(ff * width, width))

    def forward(self, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.ff(self.norm2(x))


class TransformerTrunk(_SequenceTrunk):
    """Pre-norm transformer over [CLS, beta?, tokens]; positions from both ends of the filled part."""

    def __init__(self, mdp: MDP, hidden: int, layers: int, beta_dim: int = 0, heads: int = TRANSFORMER_HEADS):
        super().__init__(mdp, hidden, layers)
        if hidden % heads:
            raise ValueError(f"the transformer's width {hidden} must be a multiple of its {heads} heads")
        self.from_start = nn.Embedding(mdp.L, hidden)
        self.from_end = nn.Embedding(mdp.L, hidden)
        self.cls = nn.Parameter(torch.zeros(hidden))
        self.beta = nn.Linear(beta_dim, hidden) if beta_dim else None
        self.blocks = nn.ModuleList(_Block(hidden, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(2 * hidden, hidden)
        for emb in (self.token, self.filled_length, self.from_start, self.from_end):
            nn.init.normal_(emb.weight, std=0.02)
        self.n_prefix = 2 if beta_dim else 1

    def _features(self, states: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        x, mask, lengths, width = self._tokens(states)
        pos = torch.arange(width)
        end = (lengths[:, None] - 1 - pos).clamp_min(0)
        x = x + self.from_start.weight[:width] + self.from_end(end)
        prefix = [(self.cls + self.filled_length(lengths))[:, None]]
        if self.beta is not None:
            assert embedding is not None, "layer conditioning needs the beta embedding"
            prefix.append(self.beta(embedding)[:, None])
        x = torch.cat(prefix + [x], dim=1)
        keys = torch.cat([mask.new_ones(mask.shape[0], self.n_prefix), mask], dim=1)[:, None, None, :]
        for block in self.blocks:
            x = block(x, keys)
        x = self.norm(x)
        tok = x[:, self.n_prefix:]
        mean = (tok * mask[..., None]).sum(1) / lengths.clamp_min(1)[:, None]
        return F.leaky_relu(self.out(torch.cat([x[:, 0], mean], dim=-1)))


class ConvTrunk(_SequenceTrunk):
    """Residual dilated convolutions (kernel 5, dilation 1, 2, 4, ...) over the filled tokens, zero elsewhere."""

    def __init__(self, mdp: MDP, hidden: int, layers: int, beta_dim: int = 0, kernel: int = 5):
        super().__init__(mdp, hidden, layers)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, padding=(kernel // 2) * 2**i, dilation=2**i)
                                   for i in range(layers))
        self.out = nn.Linear(3 * hidden + beta_dim, hidden)

    def _features(self, states: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        x, mask, lengths, width = self._tokens(states)
        m = mask[:, None, :].to(x.dtype)
        x = x.transpose(1, 2) * m  # (B, hidden, W)
        for conv in self.convs:
            x = x + F.leaky_relu(conv(x)) * m
        mean = x.sum(-1) / lengths.clamp_min(1)[:, None]
        top = x.masked_fill(~mask[:, None, :], float("-inf")).amax(-1)
        top = torch.where(lengths[:, None] > 0, top, 0.0)
        parts = [mean, top, self.filled_length(lengths)]
        if embedding is not None:
            parts.append(embedding)
        return F.leaky_relu(self.out(torch.cat(parts, dim=-1)))


class GraphTrunk(nn.Module):
    """Message passing over the block tree of ``mdp.graph(states)``, with structured forward logits.

    Only the blocks are computed, packed over the batch (P nodes: cost grows with the molecules, not with N). A
    block's node starts as its type's embedding + its own bond atom's + the sum of its open stems' atom embeddings
    (+ the layer-conditioning beta embedding, projected). Each of ``layers`` rounds sends a message up and one down
    every tree edge, ``leaky(W h_sender + b[bond])`` with weights per direction and an embedding of the bond's two
    atoms (parent side, child side), summed at the receiver (index_add), then updates every node residually from
    [h, from children, from parent]. Features: mean and max over the blocks, plus an embedding of their number (at 0:
    the s0 token) and the beta projection. Forward logits: attaching entry e at open stem k of slot i reads [node i,
    stem k's atom, features] through a small MLP to V logits (closed stems, invalid anyway, get 0); first-block and
    stop logits are linear in the features.
    """

    def __init__(self, mdp: MDP, hidden: int, layers: int, beta_dim: int = 0):
        super().__init__()
        if not hasattr(mdp, "graph"):
            raise ThermoGFNError(f"architecture graph reads the block graphs of the {', '.join(GRAPH_MDPS)} MDP, "
                                 f"not {mdp.name!r} states")
        self.graph, self.n, self.n_types, self.vocab, self.atoms = mdp.graph, mdp.N, mdp.n_types, mdp.V, mdp.n_atoms + 1
        self.block_type = nn.Embedding(mdp.n_types + 1, hidden)
        self.own_atom = nn.Embedding(self.atoms, hidden)
        self.stem = nn.Embedding(self.atoms, hidden)  # an open stem's atom: summed into its node; read by attach
        self.beta = nn.Linear(beta_dim, hidden) if beta_dim else None
        self.message = nn.ModuleList(nn.Linear(hidden, 2 * hidden) for _ in range(layers))  # [up, down] per round
        self.bond = nn.ModuleList(nn.Embedding(self.atoms ** 2, 2 * hidden) for _ in range(layers))
        self.update = nn.ModuleList(nn.Linear(3 * hidden, hidden) for _ in range(layers))
        self.size = nn.Embedding(mdp.N + 1, hidden)
        self.out = nn.Linear(2 * hidden, hidden)
        self.attach_node = nn.Linear(hidden, hidden)
        self.attach_global = nn.Linear(hidden, hidden, bias=False)
        self.attach = nn.Linear(hidden, mdp.V)
        self.first_stop = nn.Linear(hidden, mdp.V + 1)
        # padding of the parent, parent-atom and own-atom columns: empty slots read as these whatever they hold
        pads = torch.tensor([mdp.N] * mdp.N + [mdp.n_atoms] * (2 * mdp.N))
        self.register_buffer("pads", pads, persistent=False)

    def _encode(self, states: torch.Tensor,
                embedding: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, FragmentGraph, torch.Tensor]:
        """The blocks' node states (P, H) packed in slot order, their flat slot indices (P,) into (B * N), the graph
        tensors and the features (B, H)."""
        n, batch = self.n, states.shape[0]
        empty = states[:, :n] == self.n_types
        g = self.graph(torch.cat([states[:, :n], torch.where(empty.repeat(1, 3), self.pads, states[:, n: 4 * n])], 1))
        present = g.present.flatten()
        nodes = present.nonzero().squeeze(1)
        row = nodes // n
        # each block's parent in the packed order; the root's is a sink at P (dropped)
        packed = present.cumsum(0) - 1
        parent = g.parent.flatten()[nodes]
        to_parent = torch.where(parent < n, packed[row * n + parent.clamp_max(n - 1)], len(nodes))
        edge = (parent < n)[:, None].to(self.size.weight.dtype)  # 1 where a block has a parent
        stem_atom, stem_open = g.stem_atom.flatten(0, 1)[nodes], g.stem_open.flatten(0, 1)[nodes]
        open_atoms = edge.new_zeros(len(nodes), self.atoms).scatter_add(1, stem_atom, stem_open.to(edge.dtype))
        h = self.block_type(g.types.flatten()[nodes]) + self.own_atom(g.own_atom.flatten()[nodes])
        h = h + open_atoms @ self.stem.weight
        beta = None
        if self.beta is not None:
            assert embedding is not None, "layer conditioning needs the beta embedding"
            beta = self.beta(embedding)
            h = h + beta[row]
        pair = g.parent_atom.flatten()[nodes] * self.atoms + g.own_atom.flatten()[nodes]
        for message, bond, update in zip(self.message, self.bond, self.update, strict=True):
            up, down = message(h).chunk(2, -1)
            bond_up, bond_down = bond(pair).chunk(2, -1)
            sent = F.leaky_relu(up + bond_up) * edge
            from_children = h.new_zeros(len(nodes) + 1, h.shape[1]).index_add(0, to_parent, sent)[:-1]
            from_parent = F.leaky_relu(F.pad(down, (0, 0, 0, 1))[to_parent] + bond_down) * edge
            h = h + F.leaky_relu(update(torch.cat([h, from_children, from_parent], -1)))
        count = g.present.sum(-1)
        pooled = h.new_zeros(batch, h.shape[1])
        mean = pooled.index_add(0, row, h) / count.clamp_min(1)[:, None]
        top = pooled.scatter_reduce(0, row[:, None].expand_as(h), h, "amax", include_self=False)
        pre = self.out(torch.cat([mean, top], -1)) + self.size(count)
        return h, nodes, g, F.leaky_relu(pre if beta is None else pre + beta)

    def forward(self, states: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self._encode(states, embedding)[3]

    def forward_logits(self, states: torch.Tensor,
                       embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, H) and forward logits (B, n_forward) in the MDP's action order: first blocks, then
        ``V + e * S + i * R + k`` (the open stems' logits copied into (B, N, R, V), then one permute), then stop."""
        h, nodes, g, features = self._encode(states, embedding)
        batch, n, r = g.stem_open.shape
        node, k = g.stem_open.flatten(0, 1)[nodes].nonzero(as_tuple=True)  # open stems: packed node, position
        pre = (self.attach_node(h)[node] + self.stem(g.stem_atom.flatten(0, 1)[nodes[node], k])
               + self.attach_global(features)[nodes[node] // n])
        logits = self.attach(F.leaky_relu(pre))
        attach = h.new_zeros(batch * n * r, self.vocab).index_copy(0, nodes[node] * r + k, logits)
        attach = attach.view(batch, n, r, -1).permute(0, 3, 1, 2).flatten(1)
        first_stop = self.first_stop(features)
        return features, torch.cat([first_stop[:, : self.vocab], attach, first_stop[:, self.vocab:]], 1)


def make_trunk(architecture: str, mdp: MDP, hidden: int, layers: int, beta_dim: int = 0) -> nn.Module:
    """The trunk ``architecture`` (one of :data:`~thermogfn.config.ARCHITECTURES`) for ``mdp``."""
    if architecture == "mlp":
        return MLPTrunk(mdp, hidden, layers, beta_dim)
    if architecture == "transformer":
        return TransformerTrunk(mdp, hidden, layers, beta_dim)
    if architecture == "conv":
        return ConvTrunk(mdp, hidden, layers, beta_dim)
    if architecture == "graph":
        return GraphTrunk(mdp, hidden, layers, beta_dim)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}")
