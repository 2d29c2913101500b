"""Run the model once with capture (and interventions) and split the batch into per-structure
``Trace`` objects.

Counterfactual attention costs one small query projection for all stages at once (the tokens'
keys are reused), so a full trace is barely more expensive than a plain forward. Every captured
tensor crosses to the host once, whole, and is sliced per structure there: on a GPU, hundreds
of small device-to-host copies would cost more than the forward.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from fga_tui.io.types import TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.batch import GraphBatch, TextBatch, collate_graphs, collate_tokens
from fga_tui.model.hooks import Cache, caching_hooks, hooks, run_with_cache
from fga_tui.model.intervene import intervention_hooks
from fga_tui.structure.types import CrystalGraph
from fga_tui.trace import Ablation, Trace

#: Counterfactuals of all stages are computed in one batched call below this many weights.
CF_BATCH_LIMIT = 1 << 25


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def _own(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of one structure's slice of a batch array.

    Numpy's reductions sum in an order that depends on the memory layout (einsum over the
    queries and keys, views of [B, M, H, d] tensors permuted to [B, H, M, d], does not sum like
    over the same values in C order), so a metric's last bit would depend on whether the trace
    crossed a process boundary (pickling stores arrays in C order). Owned copies make the
    diagnosis of a trace the same in any process, and a trace no longer pins its whole batch.
    """
    return np.array(a, dtype=a.dtype, order="C", copy=True)


#: Hook points a trace does not keep: the token states are the input, the logits are the
#: weights before softmax, and ``gnn.out`` equals the stage before ``fga``.
NOT_TRACED = frozenset({"text.states", "fga.logits", "gnn.out"})


def node_mask_of(batch: GraphBatch) -> torch.Tensor:
    """bool [B, M]: real atoms of each graph in the zero-padded layout (atoms first)."""
    counts = torch.as_tensor(batch.num_nodes, device=batch.node_graph.device)
    return torch.arange(int(counts.max()), device=counts.device)[None, :] < counts[:, None]


def counterfactuals_all(
    model: ALIGNNText,
    cache: Cache,
    stages: Sequence[str],
    batch: GraphBatch,
    token_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Atom-to-token weights [S, B, H, M, L] and queries [S, B, H, M, d] for every captured
    stage, as if the fine-grained block read that stage's node features."""
    fga = model.fine_grained_attention
    keys = cache["fga.keys"]  # [B, H, L, d]
    node_mask = node_mask_of(batch)  # [B, M]
    feats = torch.stack([cache[s] for s in stages])  # [S, N, C]
    s, b, m = feats.shape[0], *node_mask.shape
    padded = feats.new_zeros((s, b, m, feats.shape[-1]))
    padded[:, node_mask] = feats
    queries = fga.atom_queries(padded.view(s * b, m, -1))  # [S*B, H, M, d]
    if s * b * fga.num_heads * m * keys.shape[2] <= CF_BATCH_LIMIT:
        weights = fga.attend(queries, keys.repeat(s, 1, 1, 1), token_mask.repeat(s, 1))
    else:  # bound memory: one stage at a time
        weights = torch.cat([fga.attend(q, keys, token_mask) for q in queries.split(b)], dim=0)
    return weights.view(s, b, *weights.shape[1:]), queries.view(s, b, *queries.shape[1:])


def trace_batch(
    model: ALIGNNText,
    graphs: Sequence[CrystalGraph],
    token_states: Sequence[TokenStates] | None,
    elements: Sequence[Sequence[str]],
    *,
    ablation: Ablation | None = None,
    counterfactuals: bool = True,
) -> list[Trace]:
    """One traced forward over a batch; returns one ``Trace`` per graph (model in eval mode).

    ``ablation`` (an ``Interventions`` set) is applied through the model's hook points; the
    trace records the values that flow downstream of each intervention. Without
    ``counterfactuals`` the traces still carry the queries of the stage that fed the attention
    (for the logit decomposition), taken from the forward itself.
    """
    ablation = ablation or Ablation()
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    batch = collate_graphs(graphs, device)
    text = collate_tokens(token_states, device) if model.config.multimodal else None
    stages = tuple(model.stage_names(ablation))
    dropped = {s for s in model.config.stage_names() if s not in stages}
    with torch.inference_mode():
        with hooks(model, intervention_hooks(model, ablation, batch)):
            out, cache = run_with_cache(
                model,
                batch,
                text,
                names=lambda n: (
                    n not in NOT_TRACED
                    and n not in dropped
                    and not any(n.startswith(f"{d}.") for d in dropped)
                ),
            )
        has_attention = "attn.atom_to_text" in cache
        cf_w = cf_q = None
        if counterfactuals and has_attention:
            cf_w, cf_q = counterfactuals_all(model, cache, stages, batch, text.mask)
    return _split(
        model,
        graphs,
        token_states,
        elements,
        stages,
        ablation,
        batch,
        text,
        cache,
        out,
        cf_w,
        cf_q,
        t0,
    )


def _split(
    model: ALIGNNText,
    graphs: Sequence[CrystalGraph],
    token_states: Sequence[TokenStates] | None,
    elements: Sequence[Sequence[str]],
    stages: tuple[str, ...],
    ablation: Ablation,
    batch: GraphBatch,
    text: TextBatch | None,
    cache: Cache,
    out: torch.Tensor,
    cf_w: torch.Tensor | None,
    cf_q: torch.Tensor | None,
    t0: float,
) -> list[Trace]:
    """The captured tensors of one batch, moved to the host once and cut into ``Trace``s
    (``t0``: when the forward started; the timing includes the copies to the host)."""
    has_attention = "attn.atom_to_text" in cache
    host = {name: _np(t) for name, t in cache.items() if name not in stages}
    feats = _np(torch.cat([cache[s] for s in stages], dim=1))
    cf_np = None if cf_w is None else _np(cf_w)
    cq_np = None if cf_q is None else _np(cf_q)
    out_np = _np(out)
    mask_np = None if text is None else text.mask.cpu().numpy()
    forward_s = time.perf_counter() - t0
    widths = np.cumsum([0] + [cache[s].shape[1] for s in stages])
    offsets = np.cumsum([0, *batch.num_nodes])
    scale = model.fine_grained_attention.scale if model.has_fga else 1.0
    fin = stages[stages.index("fga") - 1] if "fga" in stages else None
    traces = []
    for i, graph in enumerate(graphs):
        n = graph.num_nodes
        lo, hi = offsets[i], offsets[i + 1]
        tokens: tuple[str, ...] = ()
        mask = None
        a2t = t2a = keys_i = None
        counterfactual: dict[str, np.ndarray] = {}
        queries: dict[str, np.ndarray] = {}
        if text is not None:
            length = token_states[i].length
            tokens = tuple(token_states[i].tokens)
            mask = _own(mask_np[i, :length].astype(bool))
            if has_attention:
                a2t = _own(host["attn.atom_to_text"][i, :, :n, :length])
                t2a = _own(host["attn.text_to_atom"][i, :, :length, :n])
                keys_i = _own(host["fga.keys"][i, :, :length])
                if cf_np is not None:
                    for k, s in enumerate(stages):
                        counterfactual[s] = _own(cf_np[k, i, :, :n, :length])
                        queries[s] = _own(cq_np[k, i, :, :n] * scale)
                elif fin is not None:
                    queries[fin] = _own(host["fga.queries"][i, :, :n] * scale)
        extras = {}
        for name, value in host.items():
            if name.startswith("fusion.") and name.endswith(".gate"):
                extras[name] = _own(value[lo:hi])
            elif name.startswith("fusion.") and name.endswith(".text"):
                extras[name] = _own(value[i])
        if "text.embedding" in host:
            extras["text.embedding"] = _own(host["text.embedding"][i])
        pred = out_np[i].reshape(-1)
        traces.append(
            Trace(
                stages=stages,
                features={
                    s: _own(feats[lo:hi, widths[k] : widths[k + 1]]) for k, s in enumerate(stages)
                },
                elements=tuple(elements[i]),
                prediction=float(pred[0]) if pred.size == 1 else float(pred.max()),
                tokens=tokens,
                token_mask=mask,
                atom_to_text=a2t,
                text_to_atom=t2a,
                counterfactual=counterfactual,
                queries=queries,
                keys=keys_i,
                global_attention={
                    name.split(".", 1)[1]: _own(host[name][i].reshape(-1))
                    for name in ("global.graph_to_text", "global.text_to_graph")
                    if name in host
                },
                extras=extras,
                ablation=ablation,
                timings={"forward_s": forward_s / len(graphs)},
            )
        )
    return traces


def trace_fga_from(
    model: ALIGNNText,
    graph: CrystalGraph,
    token_states: TokenStates,
    elements: Sequence[str],
    base: Trace,
    stage: str,
) -> Trace:
    """``trace_batch`` of one graph under ``fga-from=stage`` (without counterfactuals), from
    ``base``, the same graph traced without interventions.

    The intervention only changes what the attention block reads, so every stage up to
    ``stage`` holds the same numbers as in ``base``: only the head (attention, readout,
    output layers) runs, not the graph encoder again. On a 4,860-atom cell that is the
    difference between a second and a whole forward.
    """
    if base.ablation.active or stage not in base.stages or not model.has_fga:
        raise ValueError(f"fga-from={stage}: needs a trace without interventions that has it")
    ablation = Ablation(fga_from=stage)
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    batch = collate_graphs([graph], device)
    text = collate_tokens([token_states], device)
    stages = tuple(model.stage_names(ablation))
    cache = Cache()
    with torch.inference_mode():
        with hooks(model, caching_hooks(cache, lambda n: n not in NOT_TRACED)):
            states, text_emb = model.read_text(text)
            x = torch.as_tensor(base.features[stage], device=device)
            out = model.head(x, batch, states, text.mask, text_emb)
        for s in stages[:-1]:
            cache[s] = torch.as_tensor(base.features[s], device=device)
        for name, value in base.extras.items():
            if name.startswith("fusion.") and name.rsplit(".", 1)[0] in stages:
                v = torch.as_tensor(value, device=device)
                cache[name] = v[None] if name.endswith(".text") else v
    return _split(
        model,
        [graph],
        [token_states],
        [elements],
        stages,
        ablation,
        batch,
        text,
        cache,
        out,
        None,
        None,
        t0,
    )[0]
