"""Diagnose one sample: trace + symmetry + metrics + attention + audit + ablations -> Report.

``diagnose`` runs the engine (the only torch work here); everything after the traces is numpy.
The JSON form is the public contract ``fga-tui.report/1`` of shared/DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fga_tui.diagnostics.attention import (
    AttentionSummary,
    divergence_profile,
    first_uniform_stage,
    summarize_attention,
)
from fga_tui.diagnostics.separation import separation_profile
from fga_tui.diagnostics.similarity import StageMetrics, stage_metrics
from fga_tui.diagnostics.verdict import Evidence, Verdict, decide
from fga_tui.trace import Ablation, Trace

SCHEMA = "fga-tui.report/1"
TOP_K = 8


@dataclass(frozen=True, eq=False)
class Report:
    """The diagnosis of one sample under one checkpoint (see ``to_json`` for the contract)."""

    sample: dict[str, Any]
    checkpoint: dict[str, Any]
    stages: list[StageMetrics]
    orbits: list[list[int]]
    labels: list[str]
    top_words: list[dict[str, Any]]
    verdicts: list[Verdict]
    prediction: float
    separation: dict[str, float | None] = field(default_factory=dict)
    attention: dict[str, Any] | None = None
    profile: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] | None = None
    ablations: dict[str, Any] = field(default_factory=dict)
    symmetry: dict[str, Any] = field(default_factory=dict)
    attribution: dict[str, Any] | None = None
    grounding: dict[str, Any] | None = None
    text_reliance: dict[str, Any] | None = None

    @property
    def worst_severity(self) -> str:
        order = ("info", "warning", "error")
        return max((v.severity for v in self.verdicts), key=order.index, default="info")

    @property
    def codes(self) -> list[str]:
        return [v.code for v in self.verdicts]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "sample": self.sample,
            "checkpoint": self.checkpoint,
            "prediction": self.prediction,
            "stages": [
                {**m.to_json(), "orbit_separation": self.separation.get(m.name)}
                for m in self.stages
            ],
            "orbits": self.orbits,
            "labels": self.labels,
            "symmetry": self.symmetry,
            "top_words": self.top_words,
            "attention": self.attention,
            "attention_by_stage": self.profile,
            "verdicts": [v.to_json() for v in self.verdicts],
            "audit": self.audit,
            "ablations": self.ablations,
            "attribution": self.attribution,
            "grounding": self.grounding,
            "text_reliance": self.text_reliance,
        }

    def to_text(self) -> str:
        from fga_tui.diagnostics.render import report_text

        return report_text(self)

    def to_markdown(self) -> str:
        from fga_tui.diagnostics.render import report_markdown

        return report_markdown(self)


@dataclass(frozen=True, eq=False)
class Diagnosis:
    """A report together with the traces and numbers it was built from (for the TUI)."""

    trace: Trace
    report: Report
    metrics: dict[str, StageMetrics]
    attention: AttentionSummary | None
    symmetry: Any
    audit: Any
    ablation_traces: dict[str, Trace] = field(default_factory=dict)
    attribution: Any = None
    attribution_evidence: Any = None


def _top_words(
    trace: Trace, k: int = TOP_K, stopwords: set[str] | None = None, keep: set[str] | None = None
) -> list[dict]:
    from fga_tui.diagnostics.words import top_words

    if trace.atom_to_text is None:
        return []
    ranked = top_words(
        trace.atom_to_text, trace.tokens, trace.token_mask, k=k, stopwords=stopwords, keep=keep
    )
    return [
        {"atom": label, "words": [[w, round(float(x), 6)] for w, x in words]}
        for label, words in zip(trace.labels, ranked, strict=True)
    ]


#: "the same top words" as a user reads them: at least 4 of the top 5 in common, and each
#: atom's first word among the other's first two (a near-tie for first place is still "same").
SAME_TOP_K = 5
SAME_TOP_SHARED = 4
MAX_PAIRS_SHOWN = 20


def _pair_same(a: list[str], b: list[str]) -> bool:
    if not a or not b or a[0] not in b[:2] or b[0] not in a[:2]:
        return False
    return len(set(a) & set(b)) >= min(SAME_TOP_SHARED, len(a), len(b))


def _same_top_word_pairs(top: list[dict], orbits: list[list[int]]) -> list[tuple[int, int]]:
    """Pairs of orbit representatives (atom indices) that show the same top words."""
    return _count_same_top_word_pairs(top, orbits, None)[1]


def _count_same_top_word_pairs(
    top: list[dict], orbits: list[list[int]], keep: int | None
) -> tuple[int, list[tuple[int, int]]]:
    """(how many pairs of orbit representatives show the same top words, the first ``keep``
    of them (all when None), in representative order).

    ``_pair_same`` on every pair, vectorised: a cell without symmetry has N²/2 pairs (12 M at
    4,860 atoms took 40 s as a Python loop). Words become ids; each list's repeated words and
    its padding get unique negative ids, so equal ids count the words two lists share.
    """
    if len(orbits) < 2 or not top:
        return 0, []
    reps = [o[0] for o in orbits]
    lists = [[w for w, _ in top[i]["words"][:SAME_TOP_K]] for i in reps]
    vocab: dict[str, int] = {}
    g = len(reps)
    ids = -1 - np.arange(g * SAME_TOP_K, dtype=np.int64).reshape(g, SAME_TOP_K)
    for r, words in enumerate(lists):
        seen: set[str] = set()
        for k, w in enumerate(words):
            if w not in seen:
                seen.add(w)
                ids[r, k] = vocab.setdefault(w, len(vocab))
    lengths = np.array([len(w) for w in lists])
    first = np.array([vocab.get(w[0], -1) if w else -1 for w in lists])
    count, out = 0, []
    chunk = max(1, 4_000_000 // (g * SAME_TOP_K * SAME_TOP_K))
    for start in range(0, g, chunk):
        rows = slice(start, min(g, start + chunk))
        shared = (ids[rows, None, :, None] == ids[None, :, None, :]).sum(axis=(2, 3))
        a_in_b = (first[rows, None] == ids[None, :, 0]) | (first[rows, None] == ids[None, :, 1])
        b_in_a = (first[None, :] == ids[rows, 0, None]) | (first[None, :] == ids[rows, 1, None])
        need = np.minimum(np.minimum(SAME_TOP_SHARED, lengths[rows, None]), lengths[None, :])
        ok = a_in_b & b_in_a & (shared >= need) & (lengths[rows, None] > 0) & (lengths > 0)
        ok &= np.arange(g)[None, :] > np.arange(rows.start, rows.stop)[:, None]
        count += int(ok.sum())
        if keep is None or len(out) < keep:
            found = np.argwhere(ok)
            if keep is not None:
                found = found[: keep - len(out)]
            out.extend((reps[i + start], reps[j]) for i, j in found)
    return count, out


#: an atom whose head-averaged attention puts less than this on real words reads nothing
SPECIAL_ONLY_MASS = 0.05


def _special_token_atoms(trace: Trace, atoms: list[int]) -> list[int]:
    """Atoms (of ``atoms``) that attend almost only to special tokens ([CLS], [SEP], ...)."""
    from fga_tui.diagnostics.words import SPECIAL_TOKENS

    if trace.atom_to_text is None:
        return []
    avg = trace.atom_to_text.mean(axis=0)  # [N, L]
    mask = np.ones(len(trace.tokens), bool) if trace.token_mask is None else trace.token_mask
    words = mask & np.array([t not in SPECIAL_TOKENS for t in trace.tokens], dtype=bool)
    mass = avg[:, words].sum(axis=1)
    return [i for i in atoms if mass[i] < SPECIAL_ONLY_MASS]


def _cross_orbit_jsd(trace: Trace, orbits: list[list[int]]) -> float | None:
    if trace.atom_to_text is None:
        return None
    return summarize_attention(trace.atom_to_text, trace.token_mask, orbits).cross_orbit_jsd


def fga_input_stage(trace: Trace) -> str | None:
    """The stage whose node features the fine-grained block read (the one before ``fga``)."""
    if "fga" not in trace.stages:
        return None
    return trace.stages[trace.stages.index("fga") - 1]


def diagnose(
    loaded: Any,
    prepared: Any,
    *,
    ablation: Ablation | None = None,
    baseline: dict | None = None,
    baseline_path: str | None = None,
    run_ablations: bool = True,
    audit: bool = True,
    stopwords: set[str] | None = None,
    trace: Trace | None = None,
    audit_result: Any = None,
    attribution: bool = True,
) -> Diagnosis:
    """Everything fga-tui knows about one sample, with verdicts.

    ``audit_result`` reuses an audit already computed for this checkpoint (it depends on the
    weights, not on the sample's values), skipping its backward pass.

    Runs the trace (unless given), the audit (one backward pass) and, when they can tell causes
    apart, the ablations: bypassing middle fusion, and feeding the attention block from the stage
    where atoms are most distinct. ``attribution`` adds gradient attribution, grounding and text
    reliance (``diagnostics.attribution.add_attribution``: one backward pass and a batched
    integration over the model's head).
    """
    from fga_tui import engine
    from fga_tui.diagnostics.audit import audit_model
    from fga_tui.structure.symmetry import analyse_symmetry

    ablation = ablation or Ablation()
    if trace is None:
        trace = engine.run_trace(loaded, prepared, ablation)
    if audit_result is None and audit:
        # The backward pass runs on a small built-in probe cell: which parameters get gradient
        # is a property of the model, and a 500-atom sample would cost seconds for nothing.
        audit_result = audit_model(loaded, baseline, baseline_path=baseline_path)
    symmetry = analyse_symmetry(prepared.sample.structure)
    traces: dict[str, Trace] = {}
    if run_ablations and not trace.ablation.active:
        traces = cause_ablations(loaded, prepared, trace, symmetry.orbits)
    diagnosis = assemble(
        loaded,
        prepared,
        trace,
        audit_result=audit_result,
        ablation_traces=traces,
        stopwords=stopwords,
        symmetry=symmetry,
    )
    if not attribution or trace.atom_to_text is None:
        return diagnosis
    from fga_tui.diagnostics.attribution import add_attribution

    att = engine.run_attribution(loaded, prepared, trace.ablation, trace=trace)
    return add_attribution(diagnosis, att)


def cause_ablations(
    loaded: Any, prepared: Any, trace: Trace, orbits: list[list[int]]
) -> dict[str, Trace]:
    """The ablations that separate causes for this checkpoint (skipping meaningless ones)."""
    from fga_tui import engine

    out: dict[str, Trace] = {}
    if loaded.config.fusion_indices:
        out["no_fusion"] = engine.run_trace(
            loaded, prepared, Ablation(no_fusion=True), counterfactuals=False
        )
    if "fga" in trace.stages:
        sep = separation_profile(trace.features, trace.stages, orbits, trace.elements)
        known = {s: v for s, v in sep.items() if v is not None and s not in ("fga", "embed")}
        if known:
            best = max(known, key=lambda s: known[s])
            if best != fga_input_stage(trace):
                out[f"fga_from={best}"] = engine.run_trace(
                    loaded, prepared, Ablation(fga_from=best), counterfactuals=False
                )
    return out


def assemble(
    loaded: Any,
    prepared: Any,
    trace: Trace,
    *,
    audit_result: Any = None,
    ablation_traces: dict[str, Trace] | None = None,
    stopwords: set[str] | None = None,
    symmetry: Any = None,
    lean: bool = False,
) -> Diagnosis:
    """Metrics, attention analysis and verdicts from traces already computed (numpy only).

    ``lean`` (dataset scans): stage metrics only for the stage feeding the attention and no
    per-stage attention profile; the verdicts need neither (they read the orbit separation,
    which is computed for every stage either way).
    """
    from fga_tui.structure.symmetry import analyse_symmetry

    ablation_traces = ablation_traces or {}
    sample = prepared.sample
    sym = symmetry if symmetry is not None else analyse_symmetry(sample.structure)
    orbits = [list(map(int, o)) for o in sym.orbits]
    graph = prepared.graph
    fin_stage = fga_input_stage(trace) or trace.stages[-1]
    metrics = {
        s: stage_metrics(s, trace.features[s], graph.edge_src, graph.edge_dst, orbits)
        for s in trace.stages
        if not lean or s == fin_stage
    }
    separation = separation_profile(trace.features, trace.stages, orbits, trace.elements)

    att = None
    profile = []
    if trace.atom_to_text is not None:
        fin = fga_input_stage(trace)
        att = summarize_attention(
            trace.atom_to_text, trace.token_mask, orbits, trace.queries.get(fin), trace.keys
        )
        if not lean:
            profile = divergence_profile(trace.counterfactual, trace.token_mask, orbits)

    ablations: dict[str, Any] = {}
    no_fusion_sep = no_fusion_jsd = None
    fga_from_stage = fga_from_jsd = None
    for name, t in ablation_traces.items():
        sep_t = separation_profile(t.features, t.stages, orbits, t.elements)
        in_stage = fga_input_stage(t) or t.stages[-1]
        jsd_t = _cross_orbit_jsd(t, orbits)
        ablations[name] = {
            "separation_at_fga_input": sep_t.get(in_stage),
            "attention_cross_orbit_jsd": jsd_t,
            "prediction": t.prediction,
        }
        if t.ablation.no_fusion:
            no_fusion_sep, no_fusion_jsd = sep_t.get(in_stage), jsd_t
        elif t.ablation.fga_from is not None:
            fga_from_stage, fga_from_jsd = t.ablation.fga_from, jsd_t

    keep = {el.lower() for el in trace.elements}
    top = _top_words(trace, stopwords=stopwords, keep=keep)
    degenerate = []
    for name, w in trace.global_attention.items():
        if w.size and np.all(w == 1.0):
            degenerate.append(f"global cross-modal attention ({name.replace('_', ' ')})")
    if trace.text_to_atom is not None and trace.num_atoms == 1:
        degenerate.append("text_to_atom (1-atom cell)")
    gates = {
        k.rsplit(".", 1)[0]: float(np.mean(v))
        for k, v in trace.extras.items()
        if k.endswith(".gate")
    }
    multi = any(len(o) > 1 for o in orbits)
    labels = trace.labels
    special_only = [labels[i] for i in _special_token_atoms(trace, [o[0] for o in orbits])]
    n_same, same_pairs = _count_same_top_word_pairs(top, orbits, MAX_PAIRS_SHOWN)
    n_pairs = len(orbits) * (len(orbits) - 1) // 2
    degree = np.bincount(graph.edge_dst, minlength=trace.num_atoms)
    broken = [
        (o, [int(degree[i]) for i in o]) for o in orbits if len({int(degree[i]) for i in o}) > 1
    ]
    evidence = Evidence(
        stages=trace.stages,
        labels=trace.labels,
        orbits=orbits,
        separation=separation,
        has_fga=trace.atom_to_text is not None,
        multimodal=loaded.config.multimodal,
        fga_input_stage=fga_input_stage(trace),
        attention_jsd=None if att is None else att.cross_orbit_jsd,
        same_top_words=None if len(orbits) < 2 or not top else n_same == n_pairs,
        same_word_pairs=[(labels[a], labels[b]) for a, b in same_pairs[:MAX_PAIRS_SHOWN]],
        shared_fraction=None
        if att is None or att.decomposition is None
        else att.decomposition.shared_fraction,
        profile=profile,
        first_uniform_stage=first_uniform_stage(profile) if profile else None,
        within_orbit_max_dev=max(m.within_orbit_max_dev or 0.0 for m in metrics.values())
        if multi
        else None,
        fusion_gates=gates,
        no_fusion_separation=no_fusion_sep,
        no_fusion_jsd=no_fusion_jsd,
        fga_from_stage=fga_from_stage,
        fga_from_jsd=fga_from_jsd,
        audit=audit_result,
        degenerate=degenerate,
        num_atoms=trace.num_atoms,
        broken_orbits=broken,
        special_only=special_only,
    )
    verdicts = decide(evidence)
    report = Report(
        sample={
            "id": sample.id,
            "path": None if sample.source is None else str(sample.source),
            "formula": _formula(trace.elements),
            "num_atoms": trace.num_atoms,
            "target": sample.target,
            "num_tokens": len(trace.tokens),
        },
        checkpoint=loaded.info.to_json(loaded.config),
        stages=[metrics[s] for s in trace.stages if s in metrics],
        orbits=orbits,
        labels=trace.labels,
        top_words=top,
        verdicts=verdicts,
        prediction=trace.prediction,
        separation=separation,
        attention=None if att is None else att.to_json(),
        profile=[
            {
                "stage": p.stage,
                "jsd": p.jsd,
                "cross_orbit_jsd": p.cross_orbit_jsd,
                "argmax_agreement": p.argmax_agreement,
            }
            for p in profile
        ],
        audit=None if audit_result is None else audit_result.to_json(),
        ablations={"active": trace.ablation.describe(), **ablations},
        symmetry={
            "spacegroup": sym.spacegroup,
            "number": sym.number,
            "wyckoffs": list(sym.wyckoffs) if sym.wyckoffs is not None else None,
            "first_uniform_attention_stage": evidence.first_uniform_stage,
        },
    )
    return Diagnosis(trace, report, metrics, att, sym, audit_result, dict(ablation_traces))


def _formula(elements: tuple[str, ...]) -> str:
    counts: dict[str, int] = {}
    for el in elements:
        counts[el] = counts.get(el, 0) + 1
    return "".join(f"{el}{n if n > 1 else ''}" for el, n in counts.items())
