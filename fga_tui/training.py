"""Remedy 4 on the training side: attention-diversity losses and a monitor for them.

Why: a model trained on the property loss alone has no reason to let different atoms read
different words; its fine-grained attention stays near-uniform with one token ranking shared by
every atom (the "all atoms show the same top words" bug, diagnosed as SHARED_QUERY_DOMINATES).

* ``attention_diversity_loss``: minus the across-atom variance of the attention weights; add
  ``λ ·`` it to the task loss to reward atoms whose rows differ.
* ``shared_query_loss``: the share of the logit variance all atoms have in common (the number
  behind SHARED_QUERY_DOMINATES), scale-free. On its own the variance term is met most cheaply by
  scaling one shared ranking differently per atom, and then saturates the softmax; with this
  term the queries turn towards atom-specific rankings instead (see ``examples/train_demo.py``).
* ``forward_with_attention``: the model output with the differentiable attention, queries and
  keys, taken from the model's hook points without detaching (a trace keeps detached copies,
  which cannot carry a gradient).
* ``DiversityMonitor``: the diagnosis's attention metrics per batch, with a history.

Works with any training loop around :class:`fga_tui.model.alignn_text.ALIGNNText`.

Example (runs as is; ``examples/train_demo.py`` is the full version)::

    import torch
    from fga_tui.io.types import Structure
    from fga_tui.model.alignn_text import ALIGNNText
    from fga_tui.model.batch import collate_graphs, collate_tokens
    from fga_tui.model.config import ModelConfig
    from fga_tui.structure.graph import build_graph
    from fga_tui.text.demo_encoder import DemoTextEncoder
    from fga_tui.training import (
        DiversityMonitor, attention_diversity_loss, forward_with_attention, shared_query_loss,
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
        fw = forward_with_attention(model, graphs, text)
        loss = (
            torch.nn.functional.mse_loss(fw.output, target)
            + 30.0 * attention_diversity_loss(fw.atom_to_text, fw.node_mask, text.mask)
            + 0.3 * shared_query_loss(fw.queries, fw.keys, fw.node_mask, text.mask)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        stats = monitor.update(fw.atom_to_text, fw.node_mask, text.mask,
                               queries=fw.queries, keys=fw.keys, step=step, loss=loss.item())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from fga_tui.diagnostics.attention import argmax_agreement, mean_pairwise_jsd


def attention_diversity_loss(
    atom_to_text: torch.Tensor,
    node_mask: torch.Tensor,
    token_mask: torch.Tensor,
    *,
    per_head: bool = False,
) -> torch.Tensor:
    """Minus the across-atom variance of head-averaged attention (a scalar to *add* to the loss).

    ``atom_to_text`` [B, H, M, L] (softmax over tokens), ``node_mask`` bool [B, M] (real atoms),
    ``token_mask`` bool [B, L] (the tokens to measure; pass the real tokens, or fewer, e.g.
    without [CLS]/[SEP], to measure only rankable words). With ``Ā_b[i, l] = mean_h A[b, h, i, l]``,
    ``n_b`` atoms and ``L_b`` masked-in tokens in graph b::

        μ_b[l]  = (1/n_b) Σ_i Ā_b[i, l]                                  (mean over atoms)
        V_b     = (1/L_b) Σ_l (1/n_b) Σ_i (Ā_b[i, l] − μ_b[l])²           (population variance)
        loss    = −(1/B) Σ_b V_b

    Only valid atoms and tokens enter; a 1-atom graph has V_b = 0 (it still counts in the mean
    over the B graphs). Rows sum to at most 1, so ``0 ≥ loss ≥ −(L−1)/L²``; near-uniform
    attention gives ~1e-7, one-hot rows on different tokens ~1/(2L). Atoms of one symmetry orbit
    have identical rows whatever the weights, so the loss can only separate orbits.

    ``per_head=True`` uses each head's weights instead of their mean (``V`` averaged over heads
    too). Observed on the demo data: the loss is flat around uniform attention, so a large
    weight (λ≈30 for L≈100) is needed to leave it, after which rows run to one-hot; with the
    head mean all heads settle on one partition of the atoms (often cations vs anions), per head
    the heads pick different partitions, and their average tells more orbits apart.
    """
    if atom_to_text.dim() != 4:
        raise ValueError(f"atom_to_text must be [B, H, M, L], got {tuple(atom_to_text.shape)}")
    if per_head:
        b, h, m, length = atom_to_text.shape
        return attention_diversity_loss(
            atom_to_text.reshape(b * h, 1, m, length),
            node_mask.repeat_interleave(h, dim=0),
            token_mask.repeat_interleave(h, dim=0),
        )
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
    return -(var.sum(dim=1) / num_tokens).mean()


def shared_query_loss(
    queries: torch.Tensor,
    keys: torch.Tensor,
    node_mask: torch.Tensor,
    token_mask: torch.Tensor,
    eps: float = 1e-12,
) -> torch.Tensor:
    """The share of the attention-logit variance that every atom has in common, in [0, 1].

    ``queries`` [B, H, M, d], ``keys`` [B, H, L, d] as the fine-grained block computes them (any
    common scale cancels). Per graph and head, with logits ``s_il = q_i·k_l`` and
    ``q_i = q̄ + δ_i`` (the diagnosis's logit decomposition, SHARED_QUERY_DOMINATES)::

        shared = Var_l(q̄·k_l)           (ranks tokens identically for every atom)
        atom   = mean_l Var_i(s_il)      (how much atoms disagree about a token)
        loss   = mean over (graph, head) of shared / (shared + atom)

    over valid atoms and the masked-in tokens; graphs with one atom are left out. Why: the
    attention-diversity loss rewards atoms for attending *differently* and is met most cheaply by
    scaling one shared ranking up for some atoms and down for others; this term is
    scale-free, so it moves the queries' direction, not their size, towards atom-specific
    token rankings.
    """
    atoms = node_mask.to(torch.bool)  # [B, M]
    tokens = token_mask.to(torch.bool)  # [B, L]
    logits = torch.matmul(queries, keys.transpose(-2, -1))  # [B, H, M, L]
    a = atoms[:, None, :, None].to(logits.dtype)
    t = tokens[:, None, None, :].to(logits.dtype)
    n = a.sum(dim=2, keepdim=True).clamp(min=1)  # [B, 1, 1, 1]
    num_t = t.sum(dim=3, keepdim=True).clamp(min=1)
    logits = logits * a * t
    shared_row = logits.sum(dim=2, keepdim=True) / n  # q̄·k_l  [B, H, 1, L]
    shared_mean = shared_row.sum(dim=3, keepdim=True) / num_t
    shared = (((shared_row - shared_mean) * t) ** 2).sum(dim=3) / num_t[..., 0]  # [B, H, 1]
    dev = (logits - shared_row) * a * t
    atom = (dev**2).sum(dim=(2, 3)) / (n[..., 0, 0] * num_t[..., 0, 0])  # [B, H]
    fraction = shared[..., 0] / (shared[..., 0] + atom + eps)  # [B, H]
    many = atoms.sum(dim=1) > 1  # [B]
    if not bool(many.any()):
        return fraction.sum() * 0.0
    return fraction[many].mean()


def element_contrast_loss(
    atom_to_text: torch.Tensor,
    node_mask: torch.Tensor,
    token_mask: torch.Tensor,
    groups: torch.Tensor,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Mean cosine similarity between the head-averaged attention rows of *different* groups
    (e.g. elements), each pair of groups weighted equally, in [0, 1]; add ``λ ·`` it to the loss.

    ``groups`` int [B, M] (any labels; padded atoms are ignored through ``node_mask``). For
    atoms i, j of groups g ≠ h in one graph the weight is 1 / (n_g n_h), so every pair of
    elements counts once however many atoms each has. Why: the variance term rewards the
    largest split of a cell's atoms and is met once one element reads differently from the
    rest, so two elements can keep reading the same words (in the A4BC demo cell Ba and Li did;
    with atom pairs weighted alike, the four Ba atoms drowned the single Hf-Li pair and Hf and
    Li settled on one word). The cosine is scale-free and reaches 0 only when every pair of
    different-element rows puts its weight on different tokens. Graphs with a single group
    contribute nothing; with none in the batch the loss is 0 (still differentiable).
    """
    avg = atom_to_text.mean(dim=1)  # [B, M, L]
    avg = torch.where(token_mask.to(torch.bool)[:, None, :], avg, torch.zeros_like(avg))
    unit = avg / avg.norm(dim=-1, keepdim=True).clamp_min(eps)
    cos = torch.matmul(unit, unit.transpose(1, 2))  # [B, M, M]
    atoms = node_mask.to(torch.bool)
    same = (groups[:, :, None] == groups[:, None, :]) & atoms[:, :, None] & atoms[:, None, :]
    size = same.sum(dim=2).clamp(min=1).to(cos.dtype)  # [B, M] atoms in each atom's group
    pairs = ~same & atoms[:, :, None] & atoms[:, None, :]
    weight = pairs.to(cos.dtype) / (size[:, :, None] * size[:, None, :])
    total = weight.sum()
    if float(total) == 0.0:
        return cos.sum() * 0.0
    return (cos * weight).sum() / total


class AttentionForward(NamedTuple):
    """What ``forward_with_attention`` returns (all still attached to the autograd graph)."""

    output: torch.Tensor  # [B, out]
    atom_to_text: torch.Tensor  # [B, H, M, L] softmax over tokens, pre-dropout
    node_mask: torch.Tensor  # bool [B, M]
    queries: torch.Tensor  # [B, H, M, d] atom->text queries (unscaled)
    keys: torch.Tensor  # [B, H, L, d] atom->text keys


def forward_with_attention(
    model: torch.nn.Module, batch: Any, text: Any, interventions: Any = None
) -> AttentionForward:
    """Run ``model(batch, text)`` and return its output with the fine-grained attention's
    weights, node mask, queries and keys, still attached to the autograd graph.

    The tensors come from the model's named hook points (``attn.atom_to_text``,
    ``fga.queries``, ``fga.keys``), captured without detaching; nothing is computed twice.
    ``interventions`` (an ``fga_tui.interventions.Interventions``) runs the same forward under
    them, e.g. to train against ``no-fusion``.
    """
    from fga_tui.model.hooks import hooks, run_with_cache
    from fga_tui.model.intervene import intervention_hooks
    from fga_tui.model.tracer import node_mask_of

    if getattr(model, "fine_grained_attention", None) is None:
        raise ValueError("the model has no fine-grained attention (use_fine_grained_attention)")
    wanted = ("attn.atom_to_text", "fga.queries", "fga.keys")
    with hooks(model, intervention_hooks(model, interventions or (), batch)):
        out, cache = run_with_cache(model, batch, text, names=wanted, detach=False)
    return AttentionForward(
        out,
        cache["attn.atom_to_text"],
        node_mask_of(batch),
        cache["fga.queries"],
        cache["fga.keys"],
    )


class DiversityMonitor:
    """Attention-diversity metrics per batch, with a history (one dict per ``update``).

    Per graph with at least two atoms, on the head-averaged weights of its valid atoms and tokens
    (``fga_tui.diagnostics.attention``, numpy on detached copies): mean pairwise JSD between atom
    rows in bits (``jsd``), the fraction of atoms sharing the modal top token
    (``argmax_agreement``) and, when orbits are given, the JSD between atoms of different orbits
    (``cross_orbit_jsd``, the number ``diagnose`` reports). Batch values are means over those
    graphs (None when there is none), plus ``diversity_loss`` (the differentiable loss's value)
    and, given queries and keys, ``shared_fraction``.
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
        queries: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
        step: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Measure one batch, append the record to ``history`` and return it.

        ``orbits``: per graph, its symmetry orbits (lists of atom indices) or None. With
        ``queries`` and ``keys`` the record has ``shared_fraction`` (``shared_query_loss``).
        ``extra`` (e.g. ``task_loss=...``, ``epoch=...``) is stored in the record as given.
        """
        with torch.no_grad():
            loss = float(attention_diversity_loss(atom_to_text, node_mask, token_mask))
            shared = None
            if queries is not None and keys is not None:
                shared = float(shared_query_loss(queries, keys, node_mask, token_mask))
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
            "shared_fraction": shared,
            "graphs": len(jsds),
            **extra,
        }
        self.history.append(record)
        return record
