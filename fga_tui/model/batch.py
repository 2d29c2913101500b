"""Collate crystal graphs and token states into padded torch batches for the model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fga_tui.io.types import TokenStates
from fga_tui.model.layers import EdgeIndex
from fga_tui.structure.types import CrystalGraph


@dataclass(frozen=True)
class GraphBatch:
    """B crystal graphs concatenated with offsets (DGL's batching, without DGL).

    ``node_graph`` [N] maps each atom to its graph; ``num_nodes`` atoms per graph.
    """

    atom_features: torch.Tensor  # float32 [N, F]
    bond_r: torch.Tensor  # float32 [E, 3]
    angle_cos: torch.Tensor  # float32 [T]
    graph: EdgeIndex
    line_graph: EdgeIndex
    node_graph: torch.Tensor  # int64 [N]
    num_nodes: tuple[int, ...]

    @property
    def batch_size(self) -> int:
        return len(self.num_nodes)

    @property
    def device(self) -> torch.device:
        return self.atom_features.device


@dataclass(frozen=True)
class TextBatch:
    """Token states padded to the longest text: ``states`` [B, L, T], ``mask`` bool [B, L]."""

    states: torch.Tensor
    mask: torch.Tensor
    tokens: tuple[tuple[str, ...], ...]


def collate_graphs(
    graphs: Sequence[CrystalGraph], device: torch.device | str = "cpu"
) -> GraphBatch:
    """Concatenate graphs, shifting atom indices (atom graph) and bond indices (line graph)."""
    if not graphs:
        raise ValueError("collate_graphs needs at least one graph")
    node_off = np.cumsum([0] + [g.num_nodes for g in graphs])
    edge_off = np.cumsum([0] + [g.num_edges for g in graphs])
    src = np.concatenate([g.edge_src + node_off[i] for i, g in enumerate(graphs)])
    dst = np.concatenate([g.edge_dst + node_off[i] for i, g in enumerate(graphs)])
    lsrc = np.concatenate([g.lg_src + edge_off[i] for i, g in enumerate(graphs)])
    ldst = np.concatenate([g.lg_dst + edge_off[i] for i, g in enumerate(graphs)])
    node_graph = np.concatenate([np.full(g.num_nodes, i) for i, g in enumerate(graphs)])

    def t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

    return GraphBatch(
        atom_features=t(np.concatenate([g.atom_features for g in graphs]), torch.float32),
        bond_r=t(np.concatenate([g.edge_r for g in graphs]), torch.float32),
        angle_cos=t(np.concatenate([g.lg_h for g in graphs]), torch.float32),
        graph=EdgeIndex(t(src, torch.int64), t(dst, torch.int64), int(node_off[-1])),
        line_graph=EdgeIndex(t(lsrc, torch.int64), t(ldst, torch.int64), int(edge_off[-1])),
        node_graph=t(node_graph, torch.int64),
        num_nodes=tuple(g.num_nodes for g in graphs),
    )


def collate_tokens(states: Sequence[TokenStates], device: torch.device | str = "cpu") -> TextBatch:
    """Pad token states to the longest sequence (padding rows are zeros, masked out)."""
    if not states:
        raise ValueError("collate_tokens needs at least one text")
    dims = {s.embeddings.shape[1] for s in states}
    if len(dims) != 1:
        raise ValueError(f"token states have different widths {sorted(dims)}")
    width = dims.pop()
    length = max(s.length for s in states)
    padded = np.zeros((len(states), length, width), dtype=np.float32)
    mask = np.zeros((len(states), length), dtype=bool)
    for i, s in enumerate(states):
        padded[i, : s.length] = s.embeddings
        mask[i, : s.length] = np.asarray(s.mask, dtype=bool)
    return TextBatch(
        states=torch.from_numpy(padded).to(device),
        mask=torch.from_numpy(mask).to(device),
        tokens=tuple(tuple(s.tokens) for s in states),
    )


def pad_nodes(x: torch.Tensor, num_nodes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, C] concatenated node rows -> zero-padded [B, M, C] and a bool mask [B, M]."""
    b, m = len(num_nodes), max(num_nodes)
    counts = torch.as_tensor(num_nodes, device=x.device)
    mask = torch.arange(m, device=x.device)[None, :] < counts[:, None]
    padded = x.new_zeros((b, m, x.shape[1]))
    padded[mask] = x
    return padded, mask
