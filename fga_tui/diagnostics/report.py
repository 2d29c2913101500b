"""Diagnose one sample: trace + symmetry + metrics + attention + audit + ablations -> Report.

``diagnose`` runs the engine (the only torch work here); everything after the traces is numpy.
The JSON form is the public contract ``fga-tui.report/1`` (documented in the README).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fga_tui.diagnostics.attention import (
    AttentionSummary,
    divergence_profile,
    first_uniform_stage,
    pairwise_jsd,
    row_entropy,
    summarize_attention,
)
from fga_tui.diagnostics.evidence import Evidence, Probe, Verdict
from fga_tui.diagnostics.rules import probe_symptom, symptom
from fga_tui.diagnostics.same_words import distinct_count, same_word_pairs
from fga_tui.diagnostics.separation import (
    InputGroups,
    input_groups,
    separation_profile,
)
from fga_tui.diagnostics.separation import separation as separation_of
from fga_tui.diagnostics.severity import Severity
from fga_tui.diagnostics.similarity import StageMetrics, stage_metrics
from fga_tui.diagnostics.verdict import compare_with_baseline, decide
from fga_tui.trace import Ablation, Trace

SCHEMA = "fga-tui.report/1"
TOP_K = 8


@dataclass(frozen=True, eq=False)
class Report:
    """The diagnosis of one sample under one checkpoint (see ``to_json`` for the contract).

    ``intervention``: the active intervention specs ([] = the model as trained); every render
    says so on its first line. ``verdicts`` holds only the current findings (of the intervened
    model, when one is active), HEALTHY first when it is earned, then by severity. Under an
    intervention with a baseline, each verdict's ``vs_baseline`` is ``persists`` or ``new``
    and ``resolved`` lists the baseline's problem verdicts (warning or worse) that the
    intervention made disappear, marked ``resolved``; they never count for ``worst_severity``
    or ``--fail-on``. A resolved verdict about the symptom carries ``symptom_persists`` in its
    evidence: true means it merely no longer applies while atoms still read alike (the renders
    say "no longer applies", not "resolved").
    """

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
    intervention: list[str] = field(default_factory=list)
    resolved: list[Verdict] = field(default_factory=list)
    attribution: dict[str, Any] | None = None
    grounding: dict[str, Any] | None = None
    text_reliance: dict[str, Any] | None = None

    @property
    def worst_severity(self) -> Severity:
        return Severity.worst(v.severity for v in self.verdicts)

    @property
    def codes(self) -> list[str]:
        return [v.code for v in self.verdicts]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "intervention": list(self.intervention),
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
            "resolved": [v.to_json() for v in self.resolved],
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


def _closest_groups(
    trace: Trace, groups: InputGroups
) -> tuple[tuple[str, str] | None, float | None]:
    """The two input groups (elements) whose mean head-averaged attention rows differ least,
    and that JSD in bits; (None, None) without attention or with one group."""
    if trace.atom_to_text is None or groups.count < 2:
        return None, None
    avg = trace.atom_to_text.mean(axis=0)  # [N, L]
    members = groups.members(trace.elements)
    means = np.stack([avg[m].mean(axis=0) for m in members])
    J = pairwise_jsd(means, trace.token_mask)
    iu = np.triu_indices(groups.count, 1)
    k = int(np.argmin(J[iu]))
    a, b = int(iu[0][k]), int(iu[1][k])
    return (groups.names[a], groups.names[b]), float(J[a, b])


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


#: head-averaged rows whose normalised entropy is this close to 1 read every token alike
UNIFORM_ENTROPY_GAP = 1e-6


def _uniform_attention(trace: Trace) -> bool:
    """Is every atom's head-averaged attention row uniform over the valid tokens?"""
    if trace.atom_to_text is None:
        return False
    entropy = row_entropy(trace.atom_to_text.mean(axis=0), trace.token_mask)
    return bool(entropy.min() >= 1.0 - UNIFORM_ENTROPY_GAP)


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
    baseline_diagnosis: Diagnosis | None = None,
) -> Diagnosis:
    """Everything fga-tui knows about one sample, with verdicts.

    ``audit_result`` reuses an audit already computed for this checkpoint (it depends on the
    weights, not on the sample's values), skipping its backward pass.

    Runs the trace (unless given), the audit (one backward pass) and, when they can tell causes
    apart, the ablations: bypassing middle fusion, and feeding the attention block from the stage
    where atoms are most distinct. ``attribution`` adds gradient attribution, grounding and text
    reliance (``diagnostics.attribution.add_attribution``: one backward pass and a batched
    integration over the model's head).

    Under an intervention (``ablation`` active) the sample is also diagnosed as trained (or
    ``baseline_diagnosis`` is reused, e.g. the TUI's cached view), and every verdict is marked
    ``persists``/``new`` against it, with its vanished problems listed as ``resolved``.
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
    plain = None
    if trace.ablation.active:
        # Every verdict under an intervention is compared with the model as trained.
        plain = baseline_diagnosis or diagnose(
            loaded,
            prepared,
            run_ablations=run_ablations,
            audit=audit,
            stopwords=stopwords,
            audit_result=audit_result,
            attribution=attribution,
        )
    symmetry = analyse_symmetry(prepared.sample.structure)
    orbits = [list(map(int, o)) for o in symmetry.orbits]
    # Measured once: the ablations choose their stage from it and the report shows it.
    separation = separation_profile(trace.features, trace.stages, orbits, trace.elements)
    traces: dict[str, Trace] = {}
    if run_ablations and not trace.ablation.active:
        traces = cause_ablations(loaded, prepared, trace, orbits, separation=separation)
    diagnosis = assemble(
        loaded,
        prepared,
        trace,
        separation=separation,
        audit_result=audit_result,
        ablation_traces=traces,
        stopwords=stopwords,
        symmetry=symmetry,
        intervention=trace.ablation.specs,
        baseline_verdicts=None if plain is None else plain.report.verdicts,
    )
    if not attribution or trace.atom_to_text is None:
        return diagnosis
    from fga_tui.diagnostics.attribution import add_attribution

    att = engine.run_attribution(loaded, prepared, trace.ablation, trace=trace)
    diagnosis = add_attribution(diagnosis, att, verdicts=True)
    if plain is not None:
        diagnosis = _compare_attribution_verdicts(diagnosis, plain)
    return diagnosis


def _compare_attribution_verdicts(diagnosis: Diagnosis, plain: Diagnosis) -> Diagnosis:
    """Give TEXT_IGNORED/UNGROUNDED (added after ``assemble``) their ``vs_baseline`` too."""
    import dataclasses

    from fga_tui.diagnostics.rules_attribution import CODES as ATTRIBUTION_CODES
    from fga_tui.diagnostics.verdict import compare_with_baseline, sort_verdicts

    report = diagnosis.report
    ours = [v for v in report.verdicts if v.code in ATTRIBUTION_CODES]
    theirs = [v for v in plain.report.verdicts if v.code in ATTRIBUTION_CODES]
    marked, resolved = compare_with_baseline(ours, theirs)
    rest = [v for v in report.verdicts if v.code not in ATTRIBUTION_CODES]
    report = dataclasses.replace(
        report,
        verdicts=sort_verdicts([*rest, *marked]),
        resolved=[*report.resolved, *resolved],
    )
    return dataclasses.replace(diagnosis, report=report)


def cause_ablations(
    loaded: Any,
    prepared: Any,
    trace: Trace,
    orbits: list[list[int]],
    *,
    separation: dict[str, float | None] | None = None,
) -> dict[str, Trace]:
    """The ablations that separate causes for this checkpoint (skipping meaningless ones).

    ``separation``: the trace's separation profile, when already measured."""
    from fga_tui import engine

    out: dict[str, Trace] = {}
    if loaded.config.fusion_indices:
        out["no_fusion"] = engine.run_trace(
            loaded, prepared, Ablation(no_fusion=True), counterfactuals=False
        )
    if "fga" in trace.stages:
        sep = separation or separation_profile(trace.features, trace.stages, orbits, trace.elements)
        known = {s: v for s, v in sep.items() if v is not None and s not in ("fga", "embed")}
        if known:
            best = max(known, key=lambda s: known[s])
            if best != fga_input_stage(trace):
                out[f"fga_from={best}"] = engine.run_trace_fga_from(loaded, prepared, trace, best)
    return out


def assemble(
    loaded: Any,
    prepared: Any,
    trace: Trace,
    *,
    separation: dict[str, float | None] | None = None,
    audit_result: Any = None,
    ablation_traces: dict[str, Trace] | None = None,
    stopwords: set[str] | None = None,
    symmetry: Any = None,
    lean: bool = False,
    intervention: Sequence[str] = (),
    baseline_verdicts: Sequence[Verdict] | None = None,
) -> Diagnosis:
    """Metrics, attention analysis and verdicts from traces already computed (numpy only).

    ``separation``: the trace's separation profile, when already measured (over the same
    orbits and elements).

    ``lean`` (dataset scans): stage metrics only for the stage feeding the attention and no
    per-stage attention profile; the verdicts need neither (they read the separation, which is
    computed for every stage either way).

    ``intervention``: the active specs (default: those ``trace`` was run under); the report says
    so first. ``baseline_verdicts``: the verdicts of the same sample without interventions; each
    current verdict is then marked ``persists``/``new`` and the baseline's vanished problems
    are listed as ``resolved`` (``verdict.compare_with_baseline``).
    """
    from fga_tui.structure.symmetry import analyse_symmetry

    ablation_traces = ablation_traces or {}
    active = list(intervention) or list(trace.ablation.specs)
    sample = prepared.sample
    sym = symmetry if symmetry is not None else analyse_symmetry(sample.structure)
    orbits = [list(map(int, o)) for o in sym.orbits]
    groups = input_groups(orbits, trace.elements)
    graph = prepared.graph
    fin_stage = fga_input_stage(trace) or trace.stages[-1]
    metrics = {
        s: stage_metrics(s, trace.features[s], graph.edge_src, graph.edge_dst, orbits)
        for s in trace.stages
        if not lean or s == fin_stage
    }
    if separation is None:
        separation = separation_profile(
            trace.features, trace.stages, orbits, trace.elements, groups=groups
        )

    att = None
    profile = []
    if trace.atom_to_text is not None:
        fin = fga_input_stage(trace)
        att = summarize_attention(
            trace.atom_to_text, trace.token_mask, orbits, trace.queries.get(fin), trace.keys
        )
        if not lean:
            profile = divergence_profile(trace.counterfactual, trace.token_mask, orbits)

    keep = {el.lower() for el in trace.elements}
    labels = trace.labels
    ablations: dict[str, Any] = {}
    probes = []
    for name, t in ablation_traces.items():
        # only the stage the attention read is compared (each stage costs a Gram matrix)
        sep_in = separation_of(t.features[fga_input_stage(t) or t.stages[-1]], groups)
        jsd_t = _cross_orbit_jsd(t, orbits)
        closest_t, closest_jsd_t = _closest_groups(t, groups)
        pairs_t = same_word_pairs(_top_words(t, stopwords=stopwords, keep=keep), orbits, t.elements)
        probe = Probe(
            spec=", ".join(t.ablation.specs) or name,
            separation_at_fga_input=sep_in,
            attention_jsd=jsd_t,
            closest_groups=closest_t,
            closest_group_jsd=closest_jsd_t,
            same_word_pairs=tuple((labels[a], labels[b]) for a, b in pairs_t.shown),
            same_word_pair_count=pairs_t.count,
            prediction=t.prediction,
        )
        probes.append(probe)
        ablations[name] = {
            "separation_at_fga_input": sep_in,
            "attention_cross_orbit_jsd": jsd_t,
            "closest_group_jsd": closest_jsd_t,
            "same_top_word_pairs": [list(p) for p in probe.same_word_pairs],
            "symptom_persists": probe_symptom(probe),
            "prediction": t.prediction,
        }

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
    special_only = [labels[i] for i in _special_token_atoms(trace, [o[0] for o in orbits])]
    same_pairs = same_word_pairs(top, orbits, trace.elements)
    distinct = distinct_count(trace.features[fin_stage], same_pairs, separation.get(fin_stage))
    closest, closest_jsd = _closest_groups(trace, groups)
    degree = np.bincount(graph.edge_dst, minlength=trace.num_atoms)
    broken = [
        (o, [int(degree[i]) for i in o]) for o in orbits if len({int(degree[i]) for i in o}) > 1
    ]
    evidence = Evidence(
        stages=trace.stages,
        labels=labels,
        orbits=orbits,
        separation=separation,
        has_fga=trace.atom_to_text is not None,
        multimodal=loaded.config.multimodal,
        fga_input_stage=fga_input_stage(trace),
        attention_jsd=None if att is None else att.cross_orbit_jsd,
        shared_fraction=None
        if att is None or att.decomposition is None
        else att.decomposition.shared_fraction,
        group_names=groups.names,
        same_word_pairs=[(labels[a], labels[b]) for a, b in same_pairs.shown],
        same_word_pair_count=same_pairs.count,
        same_word_distinct_count=distinct,
        closest_groups=closest,
        closest_group_jsd=closest_jsd,
        first_uniform_stage=first_uniform_stage(profile) if profile else None,
        within_orbit_max_dev=max(m.within_orbit_max_dev or 0.0 for m in metrics.values())
        if multi
        else None,
        fusion_gates=gates,
        probes=tuple(probes),
        audit=audit_result,
        degenerate=degenerate,
        num_atoms=trace.num_atoms,
        broken_orbits=broken,
        special_only=special_only,
        uniform_attention=_uniform_attention(trace),
        intervention=tuple(active),
    )
    verdicts = decide(evidence)
    resolved: list[Verdict] = []
    if baseline_verdicts is not None:
        verdicts, resolved = compare_with_baseline(verdicts, baseline_verdicts, symptom(evidence))
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
        labels=labels,
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
            "input_groups": [[int(i) for i in m] for m in groups.members(trace.elements)],
            "first_uniform_attention_stage": evidence.first_uniform_stage,
        },
        intervention=active,
        resolved=resolved,
    )
    return Diagnosis(trace, report, metrics, att, sym, audit_result, dict(ablation_traces))


def _formula(elements: tuple[str, ...]) -> str:
    counts: dict[str, int] = {}
    for el in elements:
        counts[el] = counts.get(el, 0) + 1
    return "".join(f"{el}{n if n > 1 else ''}" for el, n in counts.items())
