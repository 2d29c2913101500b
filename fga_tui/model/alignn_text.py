"""The model: upstream ALIGNN, optionally with the research fork's text modules.

One class covers both because the fork is upstream ALIGNN plus modules; which ones exist is
decided by ``ModelConfig`` so that state_dicts of either load with ``strict=True``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from fga_tui.model.batch import GraphBatch, TextBatch, pad_nodes
from fga_tui.model.capture import Capture
from fga_tui.model.config import ModelConfig
from fga_tui.model.fusion import (
    CrossModalAttention,
    FineGrainedCrossModalAttention,
    MiddleFusionModule,
    ProjectionHead,
)
from fga_tui.model.layers import ALIGNNConv, EdgeGatedGraphConv, MLPLayer, RBFExpansion

HEAD_WIDTH = 64  # the fork's fc1 output width (fixed in its code)


class ALIGNNText(nn.Module):
    """ALIGNN (+ text projection, middle fusion, fine-grained and global cross-modal attention).

    ``forward`` returns the model output [B, out] after the link (and the classification
    activation); ``capture`` collects the named stages and attention without changing a number;
    ``no_fusion`` bypasses middle fusion and ``fga_from`` ends the GNN after that stage and feeds
    its node features to the fine-grained block (or the readout when there is none).
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

    @property
    def has_fga(self) -> bool:
        return hasattr(self, "fine_grained_attention")

    def stage_names(self, *, no_fusion: bool = False, fga_from: str | None = None) -> list[str]:
        """Stage names this forward will record, in order, under the given ablation."""
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

    def encode_text(self, text: TextBatch) -> torch.Tensor:
        """The fork's text vector: ``text_projection`` of the first ([CLS]) token state."""
        return self.text_projection(text.states[:, 0, :])

    def forward(
        self,
        batch: GraphBatch,
        text: TextBatch | None = None,
        *,
        capture: Capture | None = None,
        no_fusion: bool = False,
        fga_from: str | None = None,
    ) -> torch.Tensor:
        c = self.config
        if c.multimodal and text is None:
            raise ValueError("this model needs text token states")
        if fga_from is not None:
            self.stage_names(no_fusion=no_fusion, fga_from=fga_from)  # validates the name

        def record(stage: str, x: torch.Tensor) -> bool:
            if capture is not None:
                capture.record(stage, x)
            return stage == fga_from

        text_emb = self.encode_text(text) if c.multimodal else None
        if capture is not None and text_emb is not None:
            capture.keep("text.embedding", text_emb)

        x = self.atom_embedding(batch.atom_features)
        stop = record("embed", x)
        if not stop and (len(self.alignn_layers) or len(self.gcn_layers)):
            y = self.edge_embedding(torch.norm(batch.bond_r, dim=1))
            z = self.angle_embedding(batch.angle_cos) if len(self.alignn_layers) else None
            for k, layer in enumerate(self.alignn_layers):
                x, y, z = layer(batch.graph, batch.line_graph, x, y, z)
                stop = record(f"alignn.{k}", x)
                key = f"layer_{k}"
                if (
                    not stop
                    and not no_fusion
                    and c.multimodal
                    and key in self.middle_fusion_modules
                ):
                    x, tau, gate = self.middle_fusion_modules[key](x, text_emb, batch.node_graph)
                    if capture is not None:
                        capture.keep(f"fusion.{k}.text", tau)
                        capture.keep(f"fusion.{k}.gate", gate)
                    stop = record(f"fusion.{k}", x)
                if stop:
                    break
            if not stop:
                for k, layer in enumerate(self.gcn_layers):
                    x, y = layer(batch.graph, x, y)
                    if record(f"gcn.{k}", x):
                        break

        if c.multimodal and self.has_fga:
            padded, node_mask = pad_nodes(x, batch.num_nodes)
            fg = self.fine_grained_attention(padded, text.states, node_mask, text.mask)
            x = fg.nodes[node_mask]
            if capture is not None:
                capture.keep("attn.atom_to_text", fg.atom_to_text)
                capture.keep("attn.text_to_atom", fg.text_to_atom)
                capture.keep("fga.queries", fg.queries)
                capture.keep("fga.keys", fg.keys)
                capture.keep("fga.tokens", fg.tokens)
                capture.keep("node_mask", node_mask)
                capture.record("fga", x)

        h = self.readout(x, batch)
        if not c.multimodal:
            out = self.fc(h)
        else:
            h = self.graph_projection(h)
            if hasattr(self, "cross_modal_attention"):
                g, t, w_g2t, w_t2g = self.cross_modal_attention(h, text_emb)
                if capture is not None:
                    capture.keep("global.graph_to_text", w_g2t)
                    capture.keep("global.text_to_graph", w_t2g)
                h = (g + t) / 2
            else:
                h = torch.cat([h, text_emb], dim=1)
            out = self.fc(F.relu(self.fc1(h)))
        out = self.apply_link(out)
        return out

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

    def counterfactual_attention(
        self,
        features: torch.Tensor,
        batch: GraphBatch,
        keys: torch.Tensor,
        token_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Atom-to-token weights [B, H, M, L] and queries if the block read ``features`` [N, C]."""
        padded, _ = pad_nodes(features, batch.num_nodes)
        q = self.fine_grained_attention.atom_queries(padded)
        return self.fine_grained_attention.attend(q, keys, token_mask), q
