"""Run the model once with capture and split the batch into per-structure ``Trace`` objects.

Counterfactual attention costs one small query projection per stage (the tokens' keys are
reused), so a full trace is barely more expensive than a plain forward.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from fga_tui.io.types import TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.batch import collate_graphs, collate_tokens
from fga_tui.model.capture import Capture
from fga_tui.structure.types import CrystalGraph
from fga_tui.trace import Ablation, Trace


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def trace_batch(
    model: ALIGNNText,
    graphs: Sequence[CrystalGraph],
    token_states: Sequence[TokenStates] | None,
    elements: Sequence[Sequence[str]],
    *,
    ablation: Ablation | None = None,
    counterfactuals: bool = True,
) -> list[Trace]:
    """One traced forward over a batch; returns one ``Trace`` per graph (model in eval mode)."""
    ablation = ablation or Ablation()
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    batch = collate_graphs(graphs, device)
    text = collate_tokens(token_states, device) if model.config.multimodal else None
    capture = Capture()
    with torch.inference_mode():
        out = model(
            batch, text, capture=capture, no_fusion=ablation.no_fusion, fga_from=ablation.fga_from
        )
        cf: dict[str, torch.Tensor] = {}
        queries: dict[str, torch.Tensor] = {}
        if counterfactuals and model.has_fga and text is not None:
            keys = capture.tensors["fga.keys"]
            for stage in capture.stages:
                cf[stage], queries[stage] = model.counterfactual_attention(
                    capture.features[stage], batch, keys, text.mask
                )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    forward_s = time.perf_counter() - t0

    out_np = _np(out)
    offsets = np.cumsum([0, *batch.num_nodes])
    scale = model.fine_grained_attention.scale if model.has_fga else 1.0
    traces = []
    for i, graph in enumerate(graphs):
        n = graph.num_nodes
        lo, hi = offsets[i], offsets[i + 1]
        tokens: tuple[str, ...] = ()
        mask = None
        a2t = t2a = keys_i = None
        if text is not None:
            length = token_states[i].length
            tokens = tuple(token_states[i].tokens)
            mask = _np(text.mask[i, :length]).astype(bool)
            if "attn.atom_to_text" in capture.tensors:
                a2t = _np(capture.tensors["attn.atom_to_text"][i, :, :n, :length])
                t2a = _np(capture.tensors["attn.text_to_atom"][i, :, :length, :n])
                keys_i = _np(capture.tensors["fga.keys"][i, :, :length])
        extras = {}
        for name, value in capture.tensors.items():
            if name.startswith("fusion.") and name.endswith(".gate"):
                extras[name] = _np(value[lo:hi])
            elif name.startswith("fusion.") and name.endswith(".text"):
                extras[name] = _np(value[i])
        if "text.embedding" in capture.tensors:
            extras["text.embedding"] = _np(capture.tensors["text.embedding"][i])
        pred = out_np[i].reshape(-1)
        traces.append(
            Trace(
                stages=tuple(capture.stages),
                features={s: _np(capture.features[s][lo:hi]) for s in capture.stages},
                elements=tuple(elements[i]),
                prediction=float(pred[0]) if pred.size == 1 else float(pred.max()),
                tokens=tokens,
                token_mask=mask,
                atom_to_text=a2t,
                text_to_atom=t2a,
                counterfactual={s: _np(w[i, :, :n, : len(tokens)]) for s, w in cf.items()},
                queries={s: _np(q[i, :, :n]) * scale for s, q in queries.items()},
                keys=keys_i,
                global_attention={
                    name.split(".", 1)[1]: _np(capture.tensors[name][i]).reshape(-1)
                    for name in ("global.graph_to_text", "global.text_to_graph")
                    if name in capture.tensors
                },
                extras=extras,
                ablation=ablation,
                timings={"forward_s": forward_s / len(graphs)},
            )
        )
    return traces
