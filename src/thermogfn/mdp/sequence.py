"""Sequence MDPs: ``append`` (left to right, a tree) and ``prepend-append`` (the paper's).

A state is a left-aligned string padded with the token ``K`` (= vocab size); stop is forced at length L and, with
``min_length`` below L (variable-length objects), allowed from length ``min_length`` on. Objects are the stopped
states themselves: padded rows (B, L).
"""

from __future__ import annotations

import math

import torch

from thermogfn.mdp.base import MDP, NEG_INF


class _SequenceMDP(MDP):
    def __init__(self, vocab_size: int, length: int, min_length: int | None = None):
        self.K = vocab_size
        self.L = length
        self.min_length = length if min_length is None else min_length
        if not 1 <= self.min_length <= length:
            raise ValueError(f"min_length must lie in 1..{length}, got {min_length}")
        self.state_dim = length
        self.max_steps = length
        self.encoding_dim = length * (vocab_size + 1)
        self.encoding_classes = vocab_size + 1
        if self.min_length == length:
            self.log_n_objects = length * math.log(vocab_size)
        else:  # log sum_{n=min}^{L} K^n, in log space (K^L overflows floats for long sequences)
            terms = torch.arange(self.min_length, length + 1, dtype=torch.float64) * math.log(vocab_size)
            self.log_n_objects = float(torch.logsumexp(terms, 0))
        self.fixed_length = self.min_length == length  # no early stops: rollouts skip bookkeeping
        self._pos = torch.arange(length)
        self._one_hot = torch.eye(vocab_size + 1)
        self._at = torch.eye(length + 1, length, dtype=torch.bool)  # row l: position l (none for l = L)
        counts = [vocab_size**n for n in range(length + 1)]
        self._n_states = sum(counts)
        # offsets[l] = number of states shorter than l; lets state_index enumerate strings by length (int64 spaces)
        self._offsets: torch.Tensor | None = None
        if self._n_states < 2**63:
            counts_t = torch.tensor(counts, dtype=torch.int64)
            self._offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts_t.cumsum(0)[:-1]])
            # row l, position i < l: K^(l-1-i), the place value of token i in a string of length l (else 0)
            exps = (torch.arange(length + 1)[:, None] - 1 - self._pos).clamp_min(0)
            self._place_values = torch.where(self._pos < torch.arange(length + 1)[:, None], vocab_size**exps, 0)

    def _forward_tables(self, n_grow: int) -> None:
        """Allowed forward actions depend only on the length l: grow (``n_grow`` actions) below L, stop (last)
        from ``min_length`` on (forced at L). Row l of ``_forward_allowed``; ``_invalid_forward`` is the
        complement, for masking logits in one indexing op."""
        lengths = torch.arange(self.L + 1)[:, None]
        self._forward_allowed = torch.cat([(lengths < self.L).expand(-1, n_grow), lengths >= self.min_length], 1)
        self._invalid_forward = ~self._forward_allowed

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return self._forward_allowed[self.lengths(states)]

    def _mask_logits(self, logits: torch.Tensor, lengths: torch.Tensor | int) -> torch.Tensor:
        return logits.masked_fill(self._invalid_forward[lengths], NEG_INF)

    def merge_forward(self, states: torch.Tensor, logits: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return self._mask_logits(logits, self._lengths(states, depth))

    def lengths(self, states: torch.Tensor) -> torch.Tensor:
        return (states != self.K).sum(-1)

    def _lengths(self, states: torch.Tensor, depth: int | None) -> torch.Tensor | int:
        """Every row's length: ``depth`` when the caller knows that all rows have it (no per-row count)."""
        return self.lengths(states) if depth is None else depth

    def initial(self, batch: int) -> torch.Tensor:
        return torch.full((batch, self.L), self.K, dtype=torch.int64, device=self.device)

    def encode(self, states: torch.Tensor) -> torch.Tensor:
        return self._one_hot[states].flatten(-2)  # a table lookup: one_hot would check the range (a host sync)

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., 0] == self.K

    def terminal_object(self, states: torch.Tensor) -> torch.Tensor:
        return states

    def terminal_state(self, objects: torch.Tensor) -> torch.Tensor:
        return objects.to(torch.int64)

    def _append(self, states: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor | int) -> torch.Tensor:
        put = self._at[lengths]  # (B, L) or, for one known length, (L,)
        return torch.where(put, tokens[:, None], states)

    def _delete_last(self, states: torch.Tensor, lengths: torch.Tensor | int) -> torch.Tensor:
        return torch.where(self._at[lengths - 1], self.K, states)

    def n_states(self) -> int:
        return self._n_states

    def states_by_level(self) -> list[torch.Tensor]:
        levels = []
        for n in range(self.L + 1):
            idx = torch.arange(self.K**n, dtype=torch.int64)
            digits = (idx[:, None] // self.K ** torch.arange(n - 1, -1, -1)) % self.K if n else idx[:, None][:, :0]
            pad = torch.full((len(idx), self.L - n), self.K, dtype=torch.int64)
            levels.append(torch.cat([digits, pad], dim=1))
        return levels

    def state_index(self, states: torch.Tensor) -> torch.Tensor:
        if self._offsets is None:
            raise ValueError(f"{self.K}-letter sequences of length {self.L} have too many states for int64 indices")
        lengths = self.lengths(states)
        # base-K value of the first `length` tokens: weight K^(length-1-i) for position i < length (a table row)
        return self._offsets[lengths] + (states.clamp_max(self.K - 1) * self._place_values[lengths]).sum(-1)


class AppendMDP(_SequenceMDP):
    """Left-to-right generation: forward ``append(c)``, backward ``delete-last``. One path per object."""

    name = "append"

    def __init__(self, vocab_size: int, length: int, min_length: int | None = None):
        super().__init__(vocab_size, length, min_length)
        self.n_actions = vocab_size
        self.n_back = 1
        self._forward_tables(self.n_actions)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return (self.lengths(states) > 0)[:, None]

    def step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        grow = actions < self.K
        child = self._append(states, actions.clamp_max(self.K - 1), self._lengths(states, depth))
        return torch.where(grow[:, None], child, states)

    def back_step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        return self._delete_last(states, self._lengths(states, depth))

    def backward_action_of(self, children: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(actions)

    def forward_action_of(self, parents: torch.Tensor, back_actions: torch.Tensor,
                          children: torch.Tensor) -> torch.Tensor:
        last = (self.lengths(children) - 1).clamp_min(0)
        return children.gather(1, last[:, None]).squeeze(1)


class PrependAppendMDP(_SequenceMDP):
    """The paper's MDP: forward ``prepend(c)`` (actions 0..K-1) or ``append(c)`` (K..2K-1);
    backward ``delete-first`` (0) or ``delete-last`` (1). Equal children/parents are merged.
    """

    name = "prepend-append"

    def __init__(self, vocab_size: int, length: int, min_length: int | None = None):
        super().__init__(vocab_size, length, min_length)
        self.n_actions = 2 * vocab_size
        self.n_back = 2
        self._forward_tables(self.n_actions)
        # row c < K: only c can be both prepended and appended to c^n; row K (the empty string): every token
        self._first_token_duplicates = torch.cat([torch.eye(vocab_size, dtype=torch.bool),
                                                  torch.ones(1, vocab_size, dtype=torch.bool)])

    def _homopolymer(self, states: torch.Tensor, lengths: torch.Tensor | int) -> torch.Tensor:
        """Bool (B,): the state is c^n for its first token c (true for the empty string too: its first 'token' is
        the pad, which fills all L >= 0 places; a non-empty string holds at most n copies of its first token)."""
        return (states == states[:, :1]).sum(-1) >= lengths

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return (self.lengths(states) > 0)[:, None].expand(-1, 2)

    def _forward_duplicates(self, states: torch.Tensor, lengths: torch.Tensor | int | None = None) -> torch.Tensor:
        """Bool (B, K): append(c) gives the same child as prepend(c) (state is empty or c^n)."""
        lengths = self.lengths(states) if lengths is None else lengths
        # full states only stop: nothing to merge (and no -inf pairs)
        merging = self._homopolymer(states, lengths) & (lengths < self.L)
        return self._first_token_duplicates[states[:, 0]] & merging[:, None]

    def merge_forward(self, states: torch.Tensor, logits: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        lengths = self._lengths(states, depth)
        logits = self._mask_logits(logits, lengths)
        if isinstance(lengths, int) and lengths == self.L:
            return logits  # full strings only stop: nothing to merge
        dup = self._forward_duplicates(states, lengths)
        pre, app, stop = logits[:, : self.K], logits[:, self.K: 2 * self.K], logits[:, 2 * self.K:]
        pre = torch.where(dup, torch.logaddexp(pre, app), pre)
        app = app.masked_fill(dup, NEG_INF)
        return torch.cat([pre, app, stop], dim=1)

    def merge_backward(self, states: torch.Tensor, logits: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        lengths = self._lengths(states, depth)
        if isinstance(lengths, int):
            logits = logits if lengths > 0 else torch.full_like(logits, NEG_INF)
        else:
            logits = logits.masked_fill(~(lengths > 0)[:, None], NEG_INF)
        dup = self._homopolymer(states, lengths) & (lengths > 0)
        first = torch.where(dup, torch.logaddexp(logits[:, 0], logits[:, 1]), logits[:, 0])
        last = logits[:, 1].masked_fill(dup, NEG_INF)
        return torch.stack([first, last], dim=1)

    def step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        lengths = self._lengths(states, depth)
        tokens = actions % self.K
        prepended = torch.cat([tokens[:, None], states[:, :-1]], dim=1)
        appended = self._append(states, tokens, lengths)
        child = torch.where((actions < self.K)[:, None], prepended, appended)
        return torch.where((actions == self.stop)[:, None], states, child)

    def back_step(self, states: torch.Tensor, actions: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        lengths = self._lengths(states, depth)
        dropped_first = torch.cat([states[:, 1:], torch.full_like(states[:, :1], self.K)], dim=1)
        return torch.where((actions == 0)[:, None], dropped_first, self._delete_last(states, lengths))

    def backward_action_of(self, children: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        back = (actions >= self.K).long()  # prepend -> delete-first (0), append -> delete-last (1)
        homo = self._homopolymer(children, self.lengths(children))
        return torch.where(homo, 0, back)

    def forward_action_of(self, parents: torch.Tensor, back_actions: torch.Tensor,
                          children: torch.Tensor) -> torch.Tensor:
        last = (self.lengths(children) - 1).clamp_min(0)
        first_tok = children[:, 0]
        last_tok = children.gather(1, last[:, None]).squeeze(1)
        action = torch.where(back_actions == 0, first_tok, self.K + last_tok)
        dup = self._forward_duplicates(parents).gather(1, (action % self.K)[:, None]).squeeze(1)
        return torch.where(dup, action % self.K, action)
