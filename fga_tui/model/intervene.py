"""Interventions as hooks: each spec of ``fga_tui.interventions`` becomes hook functions on the
model's named hook points, for one batch. Weights are never touched.

Order matters when specs meet at one point, so hooks are attached in three passes: first the
specs that change a value (``no-text``, ``mean-ablate``, ``patch``, in the order given), then the
hooks that remember a stage's value, then the ones that replace a later point with it
(``no-fusion``: ``fusion.k`` <- ``alignn.k``; ``fga-from=S``: ``gnn.out`` <- S). So
``mean-ablate=alignn.1`` with ``fga-from=alignn.1`` feeds the attention the ablated features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fga_tui.interventions import Intervention, Interventions
from fga_tui.model.batch import GraphBatch
from fga_tui.model.hooks import HookFn, HookPoint, NameFilter


def _mean_over_atoms(batch: GraphBatch) -> HookFn:
    """Node features [N, C] -> each graph's mean row, broadcast back to its atoms."""

    def fn(x: torch.Tensor, _point: HookPoint) -> torch.Tensor:
        sums = x.new_zeros((batch.batch_size, x.shape[1])).index_add_(0, batch.node_graph, x)
        counts = torch.as_tensor(batch.num_nodes, dtype=x.dtype, device=x.device)
        return (sums / counts[:, None]).index_select(0, batch.node_graph)

    return fn


def _patch(batch: GraphBatch, dst: int, src: int) -> HookFn:
    """Node features [N, C] with atom ``dst`` of every graph given atom ``src``'s row."""
    offsets = [0]
    for n in batch.num_nodes[:-1]:
        offsets.append(offsets[-1] + int(n))
    for n in batch.num_nodes:
        if max(dst, src) >= int(n):
            raise ValueError(f"atom {max(dst, src)} is out of range for a {int(n)}-atom graph")
    rows_dst = torch.tensor([o + dst for o in offsets], device=batch.node_graph.device)
    rows_src = torch.tensor([o + src for o in offsets], device=batch.node_graph.device)

    def fn(x: torch.Tensor, _point: HookPoint) -> torch.Tensor:
        out = x.clone()
        out[rows_dst] = x[rows_src]
        return out

    return fn


def _no_text(x: torch.Tensor, _point: HookPoint) -> torch.Tensor:
    return torch.zeros_like(x)


def intervention_hooks(
    model: torch.nn.Module, interventions: Interventions | Sequence[Intervention], batch: GraphBatch
) -> list[tuple[NameFilter, HookFn]]:
    """``(hook point, fn)`` pairs that apply ``interventions`` to one forward over ``batch``."""
    items = list(interventions)
    saved: dict[str, torch.Tensor] = {}

    def remember(name: str) -> HookFn:
        def fn(x: torch.Tensor, _point: HookPoint) -> None:
            saved[name] = x

        return fn

    def replay(name: str) -> HookFn:
        def fn(_x: torch.Tensor, _point: HookPoint) -> torch.Tensor:
            return saved[name]

        return fn

    change: list[tuple[NameFilter, HookFn]] = []
    save: list[tuple[NameFilter, HookFn]] = []
    take: list[tuple[NameFilter, HookFn]] = []
    for item in items:
        if item.kind == "no-text":
            if not model.config.multimodal:
                raise ValueError("no-text: this model reads no text")
            change.append(("text.states", _no_text))
        elif item.kind == "mean-ablate":
            change.append((item.stage, _mean_over_atoms(batch)))
        elif item.kind == "patch":
            change.append((item.stage, _patch(batch, item.dst.index, item.src.index)))
        elif item.kind == "no-fusion":
            for k in model.config.fusion_indices if model.config.multimodal else ():
                save.append((f"alignn.{k}", remember(f"alignn.{k}")))
                take.append((f"fusion.{k}", replay(f"alignn.{k}")))
        elif item.kind == "fga-from":
            save.append((item.stage, remember(item.stage)))
            take.append(("gnn.out", replay(item.stage)))
        else:  # the vocabulary is closed: a new kind must be handled here
            raise ValueError(f"unknown intervention kind {item.kind!r}")
    return change + save + take
