"""Capture: what a traced forward records, keyed by the public stage names.

Recording keeps a detached reference to tensors the forward creates anyway (no copies, no extra
compute), so a traced forward computes exactly the same numbers as a plain one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Capture:
    """Filled by ``ALIGNNText.forward(..., capture=Capture())``.

    ``features[stage]`` [N, C] (all graphs of the batch concatenated), ``tensors`` holds the
    other intermediates by name (``attn.atom_to_text`` [B, H, M, L], ``attn.text_to_atom``
    [B, H, L, M], ``fga.queries`` [B, H, M, d], ``fga.keys`` [B, H, L, d], ``fusion.k.gate``
    [N, C], ``fusion.k.text`` [B, C], ``global.graph_to_text`` / ``global.text_to_graph``
    [B, H, 1, 1], ``text.embedding`` [B, P]).
    """

    stages: list[str] = field(default_factory=list)
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def record(self, stage: str, x: torch.Tensor) -> None:
        self.stages.append(stage)
        self.features[stage] = x.detach()

    def keep(self, name: str, value: torch.Tensor) -> None:
        self.tensors[name] = value.detach()
