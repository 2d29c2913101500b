"""The model: upstream ALIGNN, optionally with the research fork's text modules.

One class covers both because the fork is upstream ALIGNN plus modules; which ones exist is
decided by ``ModelConfig`` so that state_dicts of either load with ``strict=True``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fga_tui.model.batch import GraphBatch, TextBatch, pad_nodes
from fga_tui.model.config import ModelConfig
from fga_tui.model.fusion import (
    CrossModalAttention,
    FineGrainedCrossModalAttention,
    MiddleFusionModule,
    ProjectionHead,
)
from fga_tui.model.hooks import HookPoint
from fga_tui.model.layers import ALIGNNConv, EdgeGatedGraphConv, MLPLayer, RBFExpansion

HEAD_WIDTH = 64  # the fork's fc1 output width (fixed in its code)


class ALIGNNText(nn.Module):
    """ALIGNN (+ text projection, middle fusion, fine-grained and global cross-modal attention).

    ``forward`` returns the model output [B, out] after the link (and the classification
    activation) and stays a straight pipeline: capture and interventions go through the named
    hook points (``fga_tui.model.hooks``; names in ``hook_points()``), never through arguments.
    Hook points (shapes; N atoms of the batch, B graphs, M max atoms, L tokens, H heads):

    * stages ``embed``, ``alignn.k``, ``fusion.k``, ``gcn.k`` [N, C], ``fga`` [N, C] (after the
      fine-grained attention);
    * ``gnn.out`` [N, C]: the node features the fine-grained block (or the readout) reads;
    * ``text.states`` [B, L, T] token states as the model reads them; ``text.embedding`` [B, P];
    * ``fusion.k.text`` [B, C], ``fusion.k.gate`` [N, C];
    * ``fga.queries`` [B, H, M, d], ``fga.keys`` [B, H, L, d], ``fga.logits`` [B, H, M, L],
      ``attn.atom_to_text`` [B, H, M, L], ``attn.text_to_atom`` [B, H, L, M];
    * ``global.graph_to_text``, ``global.text_to_graph`` [B, H, 1, 1].
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.extra_features:
            raise ValueError("extra_features models are not supported")
        self.config = config
        c = config
        hidden = c.hidden_features
        self.atom_embedding = MLPLayer(c.atom_input_features, hidden)
        self.edge_embedding = nn.Sequential(
            RBFExpansion(0.0, 8.0, c.edge_input_features),
            MLPLayer(c.edge_input_features, c.embedding_features),
            MLPLayer(c.embedding_features, hidden),
        )
        self.angle_embedding = nn.Sequential(
            RBFExpansion(-1.0, 1.0, c.triplet_input_features),
            MLPLayer(c.triplet_input_features, c.embedding_features),
            MLPLayer(c.embedding_features, hidden),
        )
        self.alignn_layers = nn.ModuleList(
            ALIGNNConv(hidden, hidden, c.graph_dropout) for _ in range(c.alignn_layers)
        )
        self.gcn_layers = nn.ModuleList(
            EdgeGatedGraphConv(hidden, hidden, c.graph_dropout) for _ in range(c.gcn_layers)
        )
        out_width = c.num_classes if (c.classification and not c.multimodal) else c.output_features
        if c.multimodal:
            proj = c.projection_dim
            self.graph_projection = ProjectionHead(hidden, proj)
            self.text_projection = ProjectionHead(c.text_hidden_dim, proj)
            self.middle_fusion_modules = nn.ModuleDict(
                {
                    f"layer_{k}": MiddleFusionModule(
                        hidden, proj, c.middle_fusion_hidden_dim, c.middle_fusion_dropout
                    )
                    for k in c.fusion_indices
                }
            )
            if c.use_fine_grained_attention:
                self.fine_grained_attention = FineGrainedCrossModalAttention(
                    hidden,
                    c.text_hidden_dim,
                    c.fine_grained_hidden_dim,
                    c.fine_grained_num_heads,
                    c.fine_grained_dropout,
                    c.fine_grained_use_projection,
                )
            if c.use_cross_modal_attention:
                self.cross_modal_attention = CrossModalAttention(
                    proj,
                    proj,
                    c.cross_modal_hidden_dim,
                    c.cross_modal_num_heads,
                    c.cross_modal_dropout,
                )
                self.fc1 = nn.Linear(proj, HEAD_WIDTH)
            else:
                self.fc1 = nn.Linear(2 * proj, HEAD_WIDTH)
            self.fc = nn.Linear(HEAD_WIDTH, out_width)
        else:
            self.fc = nn.Linear(hidden, out_width)
        if c.link == "log":
            # Upstream and the fork overwrite the bias with a 0-dim tensor (log of 0.7).
            self.fc.bias.data = torch.tensor(math.log(0.7), dtype=torch.float)
        # Hook points own no parameters: state_dict keys stay upstream's and the fork's.
        self.hook_text_states = HookPoint()
        self.hook_text_embedding = HookPoint()
        self.hook_embed = HookPoint()
        self.alignn_hooks = nn.ModuleList(HookPoint() for _ in range(c.alignn_layers))
        self.fusion_hooks = nn.ModuleDict(
            {f"layer_{k}": HookPoint() for k in (c.fusion_indices if c.multimodal else ())}
        )
        self.gcn_hooks = nn.ModuleList(HookPoint() for _ in range(c.gcn_layers))
        self.hook_gnn_out = HookPoint()
        self.hook_fga = HookPoint()
        self._name_hook_points()

    def _name_hook_points(self) -> None:
        """Give every hook point its public name (stage names and internals)."""
        names = {
            self.hook_text_states: "text.states",
            self.hook_text_embedding: "text.embedding",
            self.hook_embed: "embed",
            self.hook_gnn_out: "gnn.out",
        }
        names.update({h: f"alignn.{k}" for k, h in enumerate(self.alignn_hooks)})
        names.update({h: f"gcn.{k}" for k, h in enumerate(self.gcn_hooks)})
        for key, h in self.fusion_hooks.items():
            k = key.split("_", 1)[1]
            names[h] = f"fusion.{k}"
            names[self.middle_fusion_modules[key].hook_text] = f"fusion.{k}.text"
            names[self.middle_fusion_modules[key].hook_gate] = f"fusion.{k}.gate"
        if self.has_fga:
            fga = self.fine_grained_attention
            names[self.hook_fga] = "fga"
            names[fga.hook_queries] = "fga.queries"
            names[fga.hook_keys] = "fga.keys"
            names[fga.hook_logits] = "fga.logits"
            names[fga.hook_atom_to_text] = "attn.atom_to_text"
            names[fga.hook_text_to_atom] = "attn.text_to_atom"
        if hasattr(self, "cross_modal_attention"):
            cma = self.cross_modal_attention
            names[cma.hook_graph_to_text] = "global.graph_to_text"
            names[cma.hook_text_to_graph] = "global.text_to_graph"
        for point, name in names.items():
            point.name = name

    @property
    def has_fga(self) -> bool:
        return hasattr(self, "fine_grained_attention")

    def stage_names(
        self,
        interventions: Any = None,
        *,
        no_fusion: bool = False,
        fga_from: str | None = None,
    ) -> list[str]:
        """Stage names a trace records, in order, under ``interventions`` (an
        ``Interventions`` set) or the two classic switches."""
        if interventions is not None:
            no_fusion = no_fusion or interventions.no_fusion
            fga_from = fga_from or interventions.fga_from
        names = [
            s for s in self.config.stage_names() if not (no_fusion and s.startswith("fusion."))
        ]
        if fga_from is not None:
            if fga_from not in names or fga_from == "fga":
                raise ValueError(f"unknown stage {fga_from!r}")
            names = names[: names.index(fga_from) + 1]
            if self.has_fga:
                names.append("fga")
        return names

    def forward(self, batch: GraphBatch, text: TextBatch | None = None) -> torch.Tensor:
        c = self.config
        if c.multimodal and text is None:
            raise ValueError("this model needs text token states")
        states, text_emb = self.read_text(text)
        x = self.encode(batch, text_emb)
        return self.head(x, batch, states, None if text is None else text.mask, text_emb)

    def embed_text(self, states: torch.Tensor) -> torch.Tensor:
        """The fork's text vector [B, P]: text_projection of the first ([CLS]) token state."""
        return self.text_projection(states[:, 0, :])

    def read_text(self, text: TextBatch | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(token states [B, L, T], text vector [B, P]) through their hook points; (None, None)
        for a graph-only model."""
        if not self.config.multimodal or text is None:
            return None, None
        states = self.hook_text_states(text.states)
        return states, self.hook_text_embedding(self.embed_text(states))

    def encode(self, batch: GraphBatch, text_emb: torch.Tensor | None) -> torch.Tensor:
        """The graph encoder: node features [N, C] after the last GNN layer (``gnn.out``).

        The text reaches it only through ``text_emb`` (middle fusion), i.e. only through the
        [CLS] token state: attribution relies on this to run the encoder once per text vector.
        """
        x = self.hook_embed(self.atom_embedding(batch.atom_features))
        if len(self.alignn_layers) or len(self.gcn_layers):
            y = self.edge_embedding(torch.norm(batch.bond_r, dim=1))
            z = self.angle_embedding(batch.angle_cos) if len(self.alignn_layers) else None
            for k, layer in enumerate(self.alignn_layers):
                x, y, z = layer(batch.graph, batch.line_graph, x, y, z)
                x = self.alignn_hooks[k](x)
                key = f"layer_{k}"
                if key in self.fusion_hooks:
                    x, _, _ = self.middle_fusion_modules[key](x, text_emb, batch.node_graph)
                    x = self.fusion_hooks[key](x)
            for k, layer in enumerate(self.gcn_layers):
                x, y = layer(batch.graph, x, y)
                x = self.gcn_hooks[k](x)
        return self.hook_gnn_out(x)

    def head(
        self,
        x: torch.Tensor,
        batch: GraphBatch,
        states: torch.Tensor | None,
        token_mask: torch.Tensor | None,
        text_emb: torch.Tensor | None,
    ) -> torch.Tensor:
        """Everything after the graph encoder: fine-grained attention, readout, fusion with the
        text vector and the output layers. Reads only ``batch.num_nodes``, ``node_graph`` and
        ``batch_size`` of the batch (attribution runs it on many copies of one graph)."""
        c = self.config
        if c.multimodal and self.has_fga:
            padded, node_mask = pad_nodes(x, batch.num_nodes)
            fg = self.fine_grained_attention(padded, states, node_mask, token_mask)
            x = self.hook_fga(fg.nodes[node_mask])

        h = self.readout(x, batch)
        if not c.multimodal:
            out = self.fc(h)
        else:
            h = self.graph_projection(h)
            if hasattr(self, "cross_modal_attention"):
                g, t, _, _ = self.cross_modal_attention(h, text_emb)
                h = (g + t) / 2
            else:
                h = torch.cat([h, text_emb], dim=1)
            out = self.fc(F.relu(self.fc1(h)))
        return self.apply_link(out)

    def apply_link(self, out: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.link == "log":
            out = torch.exp(out)
        elif c.link == "logit":
            out = torch.sigmoid(out)
        if c.classification:
            # Upstream: LogSoftmax over classes; the fork: a sigmoid.
            out = torch.sigmoid(out) if c.multimodal else F.log_softmax(out, dim=1)
        return out

    @staticmethod
    def readout(x: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        """Mean over each graph's atoms (DGL AvgPooling)."""
        sums = x.new_zeros((batch.batch_size, x.shape[1])).index_add_(0, batch.node_graph, x)
        counts = torch.as_tensor(batch.num_nodes, dtype=x.dtype, device=x.device)
        return sums / counts[:, None]
