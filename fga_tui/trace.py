"""Trace: everything one forward pass produced, keyed by the public stage names.

One forward fills a ``Trace``; panes, metrics and exports read from it and nothing re-runs the
model for a number it already has. Ablations produce a new ``Trace``; a trace is never mutated.

Contract (README, 'Output contracts'): stage names in forward order are ``embed``, ``alignn.0`` ...,
``fusion.k`` right after ``alignn.k`` when middle fusion runs there, ``gcn.0`` ..., ``fga``.
``trace.npz`` holds ``stages``, ``elements``, ``tokens``, ``prediction``, ``features.<stage>``
[N, D], ``attn.atom_to_text`` [H, N, L], ``attn.text_to_atom`` [H, L, N] and
``cf.atom_to_text.<stage>`` [H, N, L]; with attribution (``engine.with_attribution``) also
``attr.atom_to_text`` [N, L], ``attr.tokens`` [L] and ``grounding`` [N] (NaN where the text
names no element).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fga_tui.interventions import Interventions

#: The classic name for an intervention set (``Ablation(no_fusion=True)`` still works).
Ablation = Interventions


@dataclass(frozen=True, eq=False)
class Trace:
    """Per-stage node features, attention and the prediction for one structure.

    ``features[stage]`` float32 [N, D]; ``atom_to_text`` float32 [H, N, L] (softmax over valid
    tokens); ``text_to_atom`` float32 [H, L, N]; ``counterfactual[stage]`` float32 [H, N, L] is the
    fine-grained attention recomputed with queries from that stage's features. ``queries[stage]``
    [H, N, d] and ``keys`` [H, L, d] are the scaled attention inputs behind those weights (for the
    shared-vs-atom-specific logit decomposition). ``token_mask`` bool [L] marks real tokens.
    ``global_attention`` holds the fork's graph<->text weights [H] (constant 1.0 by construction);
    ``extras`` other named intermediates (``fusion.k.gate`` [N, C], ``text.embedding`` [P]).
    ``attribution`` [N, L] gradient-weighted attention, ``token_attribution`` [L] integrated
    gradients, ``grounding`` [N] each atom's attention share on its own element's tokens.
    """

    stages: tuple[str, ...]
    features: dict[str, np.ndarray]
    elements: tuple[str, ...]
    prediction: float
    tokens: tuple[str, ...] = ()
    token_mask: np.ndarray | None = None
    atom_to_text: np.ndarray | None = None
    text_to_atom: np.ndarray | None = None
    counterfactual: dict[str, np.ndarray] = field(default_factory=dict)
    queries: dict[str, np.ndarray] = field(default_factory=dict)
    keys: np.ndarray | None = None
    global_attention: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    ablation: Ablation = field(default_factory=Ablation)
    timings: dict[str, float] = field(default_factory=dict)
    attribution: np.ndarray | None = None
    token_attribution: np.ndarray | None = None
    grounding: np.ndarray | None = None

    @property
    def num_atoms(self) -> int:
        return len(self.elements)

    @property
    def has_attention(self) -> bool:
        return self.atom_to_text is not None

    @property
    def labels(self) -> list[str]:
        return [f"{el}_{i}" for i, el in enumerate(self.elements)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The trace.npz contract as a dict of numpy arrays."""
        arrays: dict[str, np.ndarray] = {
            "stages": np.array(self.stages, dtype=str),
            "elements": np.array(self.elements, dtype=str),
            "tokens": np.array(self.tokens, dtype=str),
            "prediction": np.array(self.prediction, dtype=np.float64),
        }
        if self.token_mask is not None:
            arrays["token_mask"] = np.asarray(self.token_mask, dtype=bool)
        for stage in self.stages:
            arrays[f"features.{stage}"] = np.asarray(self.features[stage], dtype=np.float32)
        if self.atom_to_text is not None:
            arrays["attn.atom_to_text"] = np.asarray(self.atom_to_text, dtype=np.float32)
        if self.text_to_atom is not None:
            arrays["attn.text_to_atom"] = np.asarray(self.text_to_atom, dtype=np.float32)
        for stage, weights in self.counterfactual.items():
            arrays[f"cf.atom_to_text.{stage}"] = np.asarray(weights, dtype=np.float32)
        for key, value in (
            ("attr.atom_to_text", self.attribution),
            ("attr.tokens", self.token_attribution),
            ("grounding", self.grounding),
        ):
            if value is not None:
                arrays[key] = np.asarray(value, dtype=np.float32)
        arrays["ablation"] = np.array(self.ablation.describe())
        arrays["intervention"] = np.array(self.ablation.specs, dtype=str)
        return arrays

    def save_npz(self, path: str | Path) -> Path:
        """Write ``trace.npz`` atomically (temporary file in the same folder, then rename)."""
        from fga_tui.io.atomic import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.to_arrays())
        return atomic_write_bytes(path, buffer.getvalue())


def load_trace_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``trace.npz`` back as plain arrays (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
