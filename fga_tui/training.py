"""Remedy 4 on the training side: an attention-diversity loss and a monitor for it.

Why: a model trained on the property loss alone has no reason to let different atoms read
different words; the fine-grained attention often settles on one ranking of tokens shared by every
atom (the "all atoms show the same top words" bug). Adding ``λ · attention_diversity_loss`` to the
task loss rewards atoms whose attention rows differ, and ``DiversityMonitor`` tracks the same
metrics the diagnosis reports (cross-atom JSD, argmax agreement) while training.

Works with any training loop around :class:`fga_tui.model.alignn_text.ALIGNNText`:
``forward_with_attention`` returns the model output *and* the differentiable atom→text weights
(``Capture`` keeps detached copies, which cannot carry a gradient).

Example (runs as is; ``examples/train_demo.py`` is the full version)::

    import torch
    from fga_tui.io.types import Structure
    from fga_tui.model.alignn_text import ALIGNNText
    from fga_tui.model.batch import collate_graphs, collate_tokens
    from fga_tui.model.config import ModelConfig
    from fga_tui.structure.graph import build_graph
    from fga_tui.text.demo_encoder import DemoTextEncoder
    from fga_tui.training import (
        DiversityMonitor, attention_diversity_loss, forward_with_attention,
    )

    encoder = DemoTextEncoder.load()
    config = ModelConfig(multimodal=True, alignn_layers=1, gcn_layers=1, hidden_features=32,
                         embedding_features=16, text_hidden_dim=encoder.width,
                         use_fine_grained_attention=True, fine_grained_hidden_dim=32,
                         fine_grained_num_heads=4)
    model = ALIGNNText(config).train()
    cscl = Structure(4.1 * torch.eye(3).double().numpy(),
                     torch.tensor([[0.0, 0, 0], [0.5, 0.5, 0.5]]).double().numpy(), ("Cs", "Cl"))
    graphs = collate_graphs([build_graph(cscl)] * 2)
    text = collate_tokens([encoder.encode("CsCl crystallizes in the cubic Pm-3m space group.")] * 2)
    target = torch.tensor([[1.0], [1.0]])

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    monitor = DiversityMonitor()
    for step in range(3):
        out, a2t, node_mask = forward_with_attention(model, graphs, text)
        diversity = attention_diversity_loss(a2t, node_mask, text.mask)
        loss = torch.nn.functional.mse_loss(out, target) + 10.0 * diversity
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        stats = monitor.update(a2t, node_mask, text.mask, step=step, task_loss=float(loss))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fga_tui.diagnostics.attention import argmax_agreement, mean_pairwise_jsd


def attention_diversity_loss(
    atom_to_text: torch.Tensor, node_mask: torch.Tensor, token_mask: torch.Tensor
) -> torch.Tensor:
    """Minus the across-atom variance of head-averaged attention (a scalar to *add* to the loss).

    ``atom_to_text`` [B, H, M, L] (softmax over tokens), ``node_mask`` bool [B, M] (real atoms),
    ``token_mask`` bool [B, L] (real tokens). With ``Ā_b[i, l] = mean_h A[b, h, i, l]``, ``n_b``
    atoms and ``L_b`` valid tokens in graph b::

        μ_b[l]  = (1/n_b) Σ_i Ā_b[i, l]                                  (mean over atoms)
        V_b     = (1/L_b) Σ_l (1/n_b) Σ_i (Ā_b[i, l] − μ_b[l])²           (population variance)
        loss    = −(1/B) Σ_b V_b

    Only valid atoms and tokens enter; a 1-atom graph has V_b = 0 (it still counts in the mean
    over the B graphs). Since each row sums to 1, ``0 ≥ loss ≥ −(L−1)/L²``: values are small
    (≈ −1e-3 for 50 tokens), so weights λ of 1-100 are typical. Atoms of one symmetry orbit
    have identical rows whatever the weights, so the loss can only separate orbits.
    """
    if atom_to_text.dim() != 4:
        raise ValueError(f"atom_to_text must be [B, H, M, L], got {tuple(atom_to_text.shape)}")
    avg = atom_to_text.mean(dim=1)  # [B, M, L]
    atoms = node_mask.to(torch.bool)[:, :, None]
    tokens = token_mask.to(torch.bool)[:, None, :]
    # where(), not a product: padded rows are never NaN here, but they are not ours to trust.
    avg = torch.where(atoms & tokens, avg, torch.zeros_like(avg))
    n = atoms.sum(dim=1).clamp(min=1).to(avg.dtype)  # [B, 1]
    mean = avg.sum(dim=1) / n  # [B, L]
    dev = torch.where(atoms & tokens, avg - mean[:, None, :], torch.zeros_like(avg))
    var = (dev * dev).sum(dim=1) / n  # [B, L]
    num_tokens = tokens[:, 0, :].sum(dim=1).clamp(min=1).to(avg.dtype)  # [B]
    per_graph = var.sum(dim=1) / num_tokens
    return -per_graph.mean()


def forward_with_attention(
    model: torch.nn.Module, batch: Any, text: Any, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``model(batch, text, **kwargs)``; return (output [B, out], atom→text weights
    [B, H, M, L] still attached to the graph, node mask bool [B, M]).

    A forward hook on ``model.fine_grained_attention`` picks the weights up as the block returns
    them (pre-dropout, as ``Capture`` records them), so nothing is computed twice.
    """
    block = getattr(model, "fine_grained_attention", None)
    if block is None:
        raise ValueError("the model has no fine-grained attention (use_fine_grained_attention)")
    grabbed: dict[str, torch.Tensor] = {}

    def hook(module: torch.nn.Module, args: tuple, kw: dict, output: Any) -> None:
        grabbed["atom_to_text"] = output.atom_to_text
        grabbed["node_mask"] = args[2] if len(args) > 2 else kw["node_mask"]

    handle = block.register_forward_hook(hook, with_kwargs=True)
    try:
        out = model(batch, text, **kwargs)
    finally:
        handle.remove()
    if "atom_to_text" not in grabbed:
        raise ValueError("the fine-grained attention did not run in this forward")
    return out, grabbed["atom_to_text"], grabbed["node_mask"]


class DiversityMonitor:
    """Attention-diversity metrics per batch, with a history (one dict per ``update``).

    Per graph with at least two atoms, on the head-averaged weights of its valid atoms and tokens
    (``fga_tui.diagnostics.attention``, numpy on detached copies): mean pairwise JSD between atom
    rows in bits (``jsd``), the fraction of atoms sharing the modal top token
    (``argmax_agreement``) and, when orbits are given, the JSD between atoms of different orbits
    (``cross_orbit_jsd``, the number ``diagnose`` reports). Batch values are means over those
    graphs (None when there is none), plus ``diversity_loss`` (the differentiable loss's value).
    """

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    @property
    def last(self) -> dict[str, Any] | None:
        return self.history[-1] if self.history else None

    def series(self, key: str) -> list[Any]:
        """One metric over the history, e.g. ``monitor.series("jsd")``."""
        return [h.get(key) for h in self.history]

    def update(
        self,
        atom_to_text: torch.Tensor,
        node_mask: torch.Tensor,
        token_mask: torch.Tensor,
        *,
        orbits: Sequence[Sequence[Sequence[int]] | None] | None = None,
        step: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Measure one batch, append the record to ``history`` and return it.

        ``orbits``: per graph, its symmetry orbits (lists of atom indices) or None; ``extra``
        (e.g. ``task_loss=...``, ``epoch=...``) is stored in the record as given.
        """
        with torch.no_grad():
            loss = float(attention_diversity_loss(atom_to_text, node_mask, token_mask))
        A = atom_to_text.detach().to("cpu", torch.float64).numpy()
        atoms = node_mask.detach().to("cpu").numpy().astype(bool)
        tokens = token_mask.detach().to("cpu").numpy().astype(bool)
        jsds, agreements, cross = [], [], []
        for b in range(A.shape[0]):
            n = int(atoms[b].sum())
            if n < 2:
                continue
            rows = A[b][:, :n, :]  # pad_nodes puts a graph's atoms first
            jsds.append(mean_pairwise_jsd(rows, tokens[b]))
            agreements.append(argmax_agreement(rows.mean(axis=0), tokens[b]))
            if orbits is not None and orbits[b] is not None:
                value = mean_pairwise_jsd(rows, tokens[b], "cross_orbit", orbits[b])
                if value is not None:
                    cross.append(value)
        record: dict[str, Any] = {
            "step": len(self.history) if step is None else step,
            "diversity_loss": loss,
            "jsd": float(np.mean(jsds)) if jsds else None,
            "argmax_agreement": float(np.mean(agreements)) if agreements else None,
            "cross_orbit_jsd": float(np.mean(cross)) if cross else None,
            "graphs": len(jsds),
            **extra,
        }
        self.history.append(record)
        return record
