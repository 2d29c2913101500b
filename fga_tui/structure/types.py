"""The crystal graph handed to the model (numpy arrays, one structure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class CrystalGraph:
    """Upstream ALIGNN's k-nearest crystal graph and its line graph, as plain arrays.

    Atom graph: N nodes, E directed edges ``edge_src[e] -> edge_dst[e]`` with displacement
    ``edge_r[e]`` (float32 [E, 3], Å, src -> dst). Edges come in reverse pairs (2k, 2k+1).
    Line graph: T edges ``lg_src[t] -> lg_dst[t]`` between atom-graph edges e1 -> e2 with
    dst(e1) == src(e2) and e1 != e2, sorted by (e1, e2); ``lg_h`` float32 [T] is the bond-angle
    cosine at the shared atom. ``atom_features`` float32 [N, 92] (CGCNN).
    """

    atomic_numbers: np.ndarray  # int64 [N]
    atom_features: np.ndarray  # float32 [N, F]
    edge_src: np.ndarray  # int64 [E]
    edge_dst: np.ndarray  # int64 [E]
    edge_r: np.ndarray  # float32 [E, 3]
    lg_src: np.ndarray  # int64 [T]
    lg_dst: np.ndarray  # int64 [T]
    lg_h: np.ndarray  # float32 [T]

    @property
    def num_nodes(self) -> int:
        return int(self.atomic_numbers.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_src.shape[0])

    @property
    def num_lg_edges(self) -> int:
        return int(self.lg_src.shape[0])
