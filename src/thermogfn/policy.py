"""The GFlowNet model: a trunk (an MLP over the one-hot state by default; see :mod:`thermogfn.networks`) with
forward, backward and flow heads, conditioned on beta in one of four ways (``none``, ``layer``, ``logit``,
``logit+layer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from thermogfn.conditioning import BetaEmbedding, ConstantLogZ, LogitScale, LogZ
from thermogfn.config import CONDITIONINGS, ModelConfig
from thermogfn.mdp import MDP
from thermogfn.networks import make_trunk


@dataclass
class BetaContext:
    """Per-row quantities that depend on beta alone, computed once per batch."""

    beta: torch.Tensor  # (B,)
    embedding: torch.Tensor | None  # (B, E) for layer conditioning
    g_forward: torch.Tensor | None  # (B,) for logit conditioning
    g_backward: torch.Tensor | None

    def repeat(self, times: int) -> BetaContext:
        """Each row repeated ``times`` times (row-major), to match flattened (B*T, ...) states."""

        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat_interleave(times, dim=0)

        return BetaContext(rep(self.beta), rep(self.embedding), rep(self.g_forward), rep(self.g_backward))

    def select(self, rows: torch.Tensor) -> BetaContext:
        """The rows ``rows`` of every per-row quantity."""

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[rows]

        return BetaContext(pick(self.beta), pick(self.embedding), pick(self.g_forward), pick(self.g_backward))


@dataclass
class StepOutput:
    """Log-probabilities over distinct children/parents (invalid ones -inf) and the state flow."""

    log_pf: torch.Tensor  # (N, n_forward)
    log_pb: torch.Tensor  # (N, n_back)
    log_flow: torch.Tensor | None  # (N,)


class GFlowNetModel(nn.Module):
    """P_F(.|s; beta), P_B(.|s'; beta), log F(s; beta) and log Z(beta) for one MDP."""

    def __init__(self, mdp: MDP, cfg: ModelConfig, beta_support: tuple[float, float], with_flow: bool = False):
        super().__init__()
        if cfg.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}")
        self.mdp, self.cfg = mdp, cfg
        self.use_layer = "layer" in cfg.conditioning
        self.use_logit = "logit" in cfg.conditioning
        self.embed = BetaEmbedding(cfg.layer_encoding, cfg.beta_input, beta_support) if self.use_layer else None
        self._snapshot: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None
        self.trunk = make_trunk(cfg.architecture or "mlp", mdp, cfg.hidden, cfg.layers,
                                self.embed.dim if self.embed is not None else 0)
        # a trunk with forward_logits (the graph trunk) gives the forward logits itself: no pf_head
        self.pf_head = None if hasattr(self.trunk, "forward_logits") else nn.Linear(cfg.hidden, mdp.n_forward)
        self.pb_head = nn.Linear(cfg.hidden, mdp.n_back) if cfg.learn_pb else None
        # log F(s; beta) = beta * u(s) + v(s): first order in beta, exact at a fixed beta
        self.flow_head = nn.Linear(cfg.hidden, 2) if with_flow else None
        self.g_forward = LogitScale(cfg.g_kind, cfg.beta_input, beta_support) if self.use_logit else None
        self.g_backward = (LogitScale(cfg.g_kind, cfg.beta_input, beta_support)
                           if self.use_logit and cfg.learn_pb else None)
        self.log_z = ConstantLogZ(mdp.log_n_objects) if cfg.conditioning == "none" else LogZ(mdp.log_n_objects)

    def policy_parameters(self) -> list[nn.Parameter]:
        """Everything but log Z (which trains at its own learning rate)."""
        skip = {id(p) for p in self.log_z.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def context(self, beta: torch.Tensor) -> BetaContext:
        return BetaContext(
            beta,
            self.embed(beta) if self.embed is not None else None,
            self.g_forward(beta) if self.g_forward is not None else None,
            self.g_backward(beta) if self.g_backward is not None else None,
        )

    def _features(self, states: torch.Tensor, ctx: BetaContext) -> torch.Tensor:
        if self._snapshot is not None and not torch.is_grad_enabled():
            return self._snapshot(states, ctx.embedding)
        return self.trunk(states, ctx.embedding)

    def _features_and_logits(self, states: torch.Tensor, ctx: BetaContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Trunk features and raw forward logits (from pf_head, or the trunk's own ``forward_logits``)."""
        if self.pf_head is None:
            return self.trunk.forward_logits(states, ctx.embedding)
        h = self._features(states, ctx)
        return h, self.pf_head(h)

    @contextmanager
    def rollout_weights(self) -> Iterator[None]:
        """Within, network calls without gradients use the trunk's snapshot of the current weights (laid out for
        small batches; see ``MLPTrunk.snapshot``), taken once: for the steps of one rollout, between optimiser
        steps. Trunks without a snapshot run as they are."""
        take = getattr(self.trunk, "snapshot", None)
        self._snapshot = take() if take is not None else None
        try:
            yield
        finally:
            self._snapshot = None

    def _scale(self, logits: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        if g is not None:
            logits = logits * g.unsqueeze(-1)
        return logits.clamp(-self.cfg.logit_clip, self.cfg.logit_clip)

    def forward_log_probs(self, states: torch.Tensor, ctx: BetaContext, depth: int | None = None) -> torch.Tensor:
        """Log P_F over distinct children (N, n_forward); the rollout's one network call per step. ``depth``: all
        rows are this many moves from s0 (see :meth:`MDP.step`)."""
        logits = self._scale(self._features_and_logits(states, ctx)[1], ctx.g_forward)
        return torch.log_softmax(self.mdp.merge_forward(states, logits, depth), dim=-1)

    def backward_log_probs(self, states: torch.Tensor, ctx: BetaContext | None,
                           features: torch.Tensor | None = None, depth: int | None = None) -> torch.Tensor:
        """Log P_B over distinct parents (N, n_back); uniform unless P_B is learned. -inf rows at s0."""
        if self.pb_head is None:
            logits = torch.zeros(states.shape[0], self.mdp.n_back, device=states.device)
        else:
            assert ctx is not None, "a learned P_B needs the beta context"
            features = self._features(states, ctx) if features is None else features
            logits = self._scale(self.pb_head(features), ctx.g_backward)
        merged = self.mdp.merge_backward(states, logits, depth)
        if depth is not None and depth > 0:
            return torch.log_softmax(merged, dim=-1)  # no row is at s0
        # s0 has no parent: give it a dummy finite row so log_softmax (and its gradient) stays NaN-free
        at_root = torch.isinf(merged).all(-1, keepdim=True)
        return torch.log_softmax(merged.masked_fill(at_root, 0.0), dim=-1)

    def step_outputs(self, states: torch.Tensor, ctx: BetaContext) -> StepOutput:
        """P_F, P_B and flow of many states in one trunk pass (used by the objectives)."""
        h, logits = self._features_and_logits(states, ctx)
        logits = self._scale(logits, ctx.g_forward)
        log_pf = torch.log_softmax(self.mdp.merge_forward(states, logits), dim=-1)
        log_pb = self.backward_log_probs(states, ctx, h)
        log_flow = None
        if self.flow_head is not None:
            u, v = self.flow_head(h).unbind(-1)
            log_flow = ctx.beta * u + v
        return StepOutput(log_pf, log_pb, log_flow)
