"""The research fork's cross-modal modules, with its parameter names.

Shapes: B graphs, M = max atoms per graph (zero-padded), L tokens, H heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fga_tui.model.hooks import HookPoint


class ProjectionHead(nn.Module):
    """The fork's ProjectionHead: ``LayerNorm(dropout(fc(GELU(p))) + p)``, ``p = projection(x)``."""

    def __init__(self, embedding_dim: int, projection_dim: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.projection = nn.Linear(embedding_dim, projection_dim)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(projection_dim, projection_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(projection_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(x)
        h = self.dropout(self.fc(self.gelu(projected)))
        return self.layer_norm(h + projected)


class MiddleFusionModule(nn.Module):
    """Gated injection of the projected text vector into every node of its graph::

        tau  = text_transform(t)            (Linear, ReLU, Dropout, Linear), one per graph
        gate = sigmoid(gate.0([x || tau]))
        x'   = dropout(LayerNorm(x + gate * tau))

    ``num_heads`` exists in the fork's config but is unused (kept for config compatibility).
    The fork's module also prints debug shapes on every call; this one does not.
    """

    def __init__(
        self, node_dim: int, text_dim: int = 64, hidden_dim: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.text_transform = nn.Sequential(
            nn.Linear(text_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, node_dim),
        )
        self.gate = nn.Sequential(nn.Linear(node_dim * 2, node_dim), nn.Sigmoid())
        self.layer_norm = nn.LayerNorm(node_dim)
        self.dropout = nn.Dropout(dropout)
        self.hook_text = HookPoint()  # fusion.k.text  [B, C] per-graph text vector tau
        self.hook_gate = HookPoint()  # fusion.k.gate  [N, C] gate values in (0, 1)

    def forward(
        self, x: torch.Tensor, text: torch.Tensor, node_graph: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (fused x [N, C], per-graph text vector tau [B, C], gate values [N, C])."""
        tau = self.hook_text(self.text_transform(text))
        tau_nodes = tau[node_graph]
        gate = self.hook_gate(self.gate(torch.cat([x, tau_nodes], dim=-1)))
        fused = self.dropout(self.layer_norm(x + gate * tau_nodes))
        return fused, tau, gate


@dataclass
class FineGrainedOutput:
    """What the fine-grained block produced (all [B, ...], padded)."""

    nodes: torch.Tensor  # [B, M, C] enhanced node features
    tokens: torch.Tensor  # [B, L, T] enhanced token states (feed nothing downstream)
    atom_to_text: torch.Tensor  # [B, H, M, L] softmax over tokens, pre-dropout
    text_to_atom: torch.Tensor  # [B, H, L, M] softmax over atoms, pre-dropout
    queries: torch.Tensor  # [B, H, M, d] a2t queries (unscaled; logits = Q·Kᵀ * scale)
    keys: torch.Tensor  # [B, H, L, d] a2t keys


class FineGrainedCrossModalAttention(nn.Module):
    """Atom<->token multi-head attention (fork's FineGrainedCrossModalAttention).

    a2t: atoms query tokens (padded tokens masked to -inf) -> ``atom_to_text`` and a residual
    ``LayerNorm_node(X + node_output(ctx))``. t2a: tokens query atoms (padded atoms masked) ->
    ``text_to_atom``; its token output never reaches the loss in the fork, so the t2a weights get
    no gradient there (the audit checks this by a backward pass).
    """

    def __init__(
        self,
        node_dim: int,
        token_dim: int = 768,
        hidden_dim: int = 256,
        num_heads: int = 8,
        dropout: float = 0.1,
        use_projection: bool = True,
    ) -> None:
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.use_projection = use_projection
        node_in = hidden_dim if use_projection else node_dim
        token_in = hidden_dim if use_projection else token_dim
        if use_projection:
            self.node_proj_in = nn.Linear(node_dim, hidden_dim)
            self.token_proj_in = nn.Linear(token_dim, hidden_dim)
        self.a2t_query = nn.Linear(node_in, hidden_dim)
        self.a2t_key = nn.Linear(token_in, hidden_dim)
        self.a2t_value = nn.Linear(token_in, hidden_dim)
        self.t2a_query = nn.Linear(token_in, hidden_dim)
        self.t2a_key = nn.Linear(node_in, hidden_dim)
        self.t2a_value = nn.Linear(node_in, hidden_dim)
        self.node_output = nn.Linear(hidden_dim, node_dim)
        self.token_output = nn.Linear(hidden_dim, token_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm_node = nn.LayerNorm(node_dim)
        self.layer_norm_token = nn.LayerNorm(token_dim)
        self.scale = self.head_dim**-0.5
        self.hook_queries = HookPoint()  # fga.queries  [B, H, M, d] a2t queries (unscaled)
        self.hook_keys = HookPoint()  # fga.keys  [B, H, L, d] a2t keys
        self.hook_logits = HookPoint()  # fga.logits  [B, H, M, L] scaled, padded tokens -inf
        self.hook_atom_to_text = HookPoint()  # attn.atom_to_text  [B, H, M, L]
        self.hook_text_to_atom = HookPoint()  # attn.text_to_atom  [B, H, L, M]

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n, _ = x.shape
        return x.permute(0, 2, 1, 3).contiguous().view(b, n, self.hidden_dim)

    def project_nodes(self, nodes: torch.Tensor) -> torch.Tensor:
        return self.node_proj_in(nodes) if self.use_projection else nodes

    def project_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_proj_in(tokens) if self.use_projection else tokens

    def atom_queries(self, nodes: torch.Tensor) -> torch.Tensor:
        """Unscaled a2t queries [B, H, M, d] for node features [B, M, C]."""
        return self._heads(self.a2t_query(self.project_nodes(nodes)))

    def token_keys(self, tokens: torch.Tensor) -> torch.Tensor:
        """a2t keys [B, H, L, d] for token states [B, L, T]."""
        return self._heads(self.a2t_key(self.project_tokens(tokens)))

    def attend(
        self, queries: torch.Tensor, keys: torch.Tensor, token_mask: torch.Tensor
    ) -> torch.Tensor:
        """Atom-to-token weights [B, H, M, L]: ``softmax(Q·Kᵀ * scale)`` over unmasked tokens,
        computed in the fork's order (product, then scale) so counterfactuals match bit for bit."""
        logits = torch.matmul(queries, keys.transpose(-2, -1)) * self.scale
        logits = logits.masked_fill(~token_mask[:, None, None, :], float("-inf"))
        return F.softmax(self.hook_logits(logits), dim=-1)

    def forward(
        self,
        nodes: torch.Tensor,
        tokens: torch.Tensor,
        node_mask: torch.Tensor,
        token_mask: torch.Tensor,
    ) -> FineGrainedOutput:
        node_h = self.project_nodes(nodes)
        token_h = self.project_tokens(tokens)

        q = self.hook_queries(self._heads(self.a2t_query(node_h)))
        k = self.hook_keys(self._heads(self.a2t_key(token_h)))
        v = self._heads(self.a2t_value(token_h))
        a2t = self.hook_atom_to_text(self.attend(q, k, token_mask))
        ctx = self._merge(torch.matmul(self.dropout(a2t), v))
        nodes_out = self.layer_norm_node(nodes + self.node_output(ctx))

        q2 = self._heads(self.t2a_query(token_h))
        k2 = self._heads(self.t2a_key(node_h))
        v2 = self._heads(self.t2a_value(node_h))
        logits2 = torch.matmul(q2, k2.transpose(-2, -1)) * self.scale
        logits2 = logits2.masked_fill(~node_mask[:, None, None, :], float("-inf"))
        t2a = self.hook_text_to_atom(F.softmax(logits2, dim=-1))
        ctx2 = self._merge(torch.matmul(self.dropout(t2a), v2))
        tokens_out = self.layer_norm_token(tokens + self.token_output(ctx2))
        return FineGrainedOutput(
            nodes=nodes_out,
            tokens=tokens_out,
            atom_to_text=a2t,
            text_to_atom=t2a,
            queries=q,
            keys=k,
        )


class CrossModalAttention(nn.Module):
    """The fork's global graph<->text attention over sequences of length 1.

    Its softmax runs over a single key, so the weights are identically 1.0 and the context is
    the value projection: query and key weights have no effect (and get zero gradient).
    """

    def __init__(
        self,
        graph_dim: int = 64,
        text_dim: int = 64,
        hidden_dim: int = 256,
        num_heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.g2t_query = nn.Linear(graph_dim, hidden_dim)
        self.g2t_key = nn.Linear(text_dim, hidden_dim)
        self.g2t_value = nn.Linear(text_dim, hidden_dim)
        self.t2g_query = nn.Linear(text_dim, hidden_dim)
        self.t2g_key = nn.Linear(graph_dim, hidden_dim)
        self.t2g_value = nn.Linear(graph_dim, hidden_dim)
        self.graph_output = nn.Linear(hidden_dim, graph_dim)
        self.text_output = nn.Linear(hidden_dim, text_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm_graph = nn.LayerNorm(graph_dim)
        self.layer_norm_text = nn.LayerNorm(text_dim)
        self.scale = self.head_dim**-0.5
        self.hook_graph_to_text = HookPoint()  # global.graph_to_text  [B, H, 1, 1]
        self.hook_text_to_graph = HookPoint()  # global.text_to_graph  [B, H, 1, 1]

    def _attend(
        self,
        query: nn.Linear,
        key: nn.Linear,
        value: nn.Linear,
        q_in: torch.Tensor,
        kv_in: torch.Tensor,
        hook: HookPoint,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = q_in.shape[0]

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, 1, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

        q, k, v = heads(query(q_in)), heads(key(kv_in)), heads(value(kv_in))
        weights = hook(F.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1))
        ctx = torch.matmul(self.dropout(weights), v).permute(0, 2, 1, 3).reshape(b, self.hidden_dim)
        return ctx, weights

    def forward(
        self, graph: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (enhanced graph [B, G], enhanced text [B, T], g2t [B,H,1,1], t2g [B,H,1,1])."""
        ctx_g, w_g2t = self._attend(
            self.g2t_query, self.g2t_key, self.g2t_value, graph, text, self.hook_graph_to_text
        )
        ctx_t, w_t2g = self._attend(
            self.t2g_query, self.t2g_key, self.t2g_value, text, graph, self.hook_text_to_graph
        )
        enhanced_graph = self.layer_norm_graph(graph + self.graph_output(ctx_g))
        enhanced_text = self.layer_norm_text(text + self.text_output(ctx_t))
        return enhanced_graph, enhanced_text, w_g2t, w_t2g
