"""What the panes show, precomputed in the worker (numpy only, no Textual, no torch).

A ``View`` is built once per (sample, ablation) from a diagnosis. Everything a stage step needs
is already here (per-stage norms, per-stage N×N matrices in every mode, the curves), so stepping
on the UI thread is an index lookup plus a repaint. Top words are ranked on the UI thread from
the attention arrays (a few hundred microseconds at 500 atoms) and cached by ``View.top_words``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fga_tui.trace import Ablation, Trace
from fga_tui.tui.state import ATTRIBUTION, MODES, SEVERITY_MARK

__all__ = ["CURVES", "MODES", "SEVERITY_MARK", "VerdictRow", "View", "build_view"]

#: Up to this many atoms the heat map shows every atom; above it, orbits or elements.
FULL_MATRIX_MAX = 48
#: Rankings of every atom's top words kept per view (per source, head, stopwords): at 500
#: atoms each is ~5,000 tuples, and 64 of them made a long session grow by tens of MB.
WORDS_CACHE = 8
#: Curves across stages, in legend order: (key, label).
CURVES = (
    ("xorbit", "x-orbit centred corr"),
    ("mad", "MAD"),
    ("erank", "effective rank"),
)


@dataclass(frozen=True)
class VerdictRow:
    """One verdict as the panel shows it (a copy, so the view holds no diagnostics objects)."""

    code: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str | None = None
    vs_baseline: str | None = None  # persists | new, under an intervention


@dataclass(frozen=True, eq=False)
class View:
    """Everything the panes need for one (sample, ablation).

    ``norms`` float32 [S, N]: L2 norm of every atom's features at every stage. ``matrices[mode]``
    float32 [S, G, G] over heat-map rows ``groups`` (atoms in orbit order when ``aggregate`` is
    None, else block means over orbits or elements, diagonal blocks excluding i == j).
    ``curves[key]`` float64 [S] (NaN where undefined). ``attention`` [H, N, L] is the actual
    fine-grained attention, ``counterfactual[stage]`` [H, N, L] the attention re-read from that
    stage. ``trace`` and ``report`` are kept for snapshots. ``grounding`` [N] each atom's
    attention share on its own element's words (NaN: undefined); ``attribution`` [N, L]
    gradient-weighted attention and ``text_reliance`` arrive later (``with_attribution``).
    """

    checkpoint: str
    layout: str
    sample_path: str
    sample_id: str
    formula: str
    index: int
    device: str
    prediction: float
    target: float | None
    spacegroup: str
    labels: tuple[str, ...]
    elements: tuple[str, ...]
    orbit_of: np.ndarray
    orbits: list[list[int]]
    wyckoffs: tuple[str, ...]
    coordination: np.ndarray | None
    stages: tuple[str, ...]
    norms: np.ndarray
    matrices: dict[str, np.ndarray]
    groups: list[list[int]]
    group_names: list[str]
    aggregate: str | None
    separators: frozenset[int]
    curves: dict[str, np.ndarray]
    curve_labels: dict[str, str]
    tokens: tuple[str, ...]
    token_mask: np.ndarray | None
    attention: np.ndarray | None
    counterfactual: dict[str, np.ndarray]
    fga_input: str | None
    verdicts: tuple[VerdictRow, ...]
    audit_lines: tuple[str, ...]
    ablation: Ablation
    ablation_notes: tuple[str, ...]
    timings: dict[str, float]
    input_choices: tuple[str, ...] = ()
    has_fusion: bool = False
    trace: Any = None
    report: Any = None
    grounding: np.ndarray | None = None
    attribution: np.ndarray | None = None
    text_reliance: dict[str, Any] | None = None
    _words: dict[tuple, list[list[tuple[str, float]]]] = field(default_factory=dict, repr=False)
    #: Identifies this view in the panes' picture caches. Not ``id(view)``: views leave the
    #: bounded cache and are freed, and a new one may get a freed one's id.
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def num_atoms(self) -> int:
        return len(self.labels)

    @property
    def num_heads(self) -> int:
        return 0 if self.attention is None else int(self.attention.shape[0])

    def group_of(self, atom: int) -> int:
        """The heat-map row holding ``atom``."""
        for g, members in enumerate(self.groups):
            if atom in members:
                return g
        return 0

    def attention_at(self, stage: str | None) -> np.ndarray | None:
        """[H, N, L]: the actual attention (``stage`` None) or the counterfactual from ``stage``;
        ``ATTRIBUTION`` gives the gradient-weighted attention as one head [1, N, L]."""
        if stage is None:
            return self.attention
        if stage == ATTRIBUTION:
            return None if self.attribution is None else self.attribution[None]
        return self.counterfactual.get(stage)

    def with_attribution(self, trace: Trace, report: Any) -> View:
        """This view with a trace and report that carry attribution
        (``diagnostics.attribution.attribution_parts``): snapshots then carry the new numbers."""
        from dataclasses import replace

        return replace(
            self,
            trace=trace,
            report=report,
            grounding=trace.grounding if trace.grounding is not None else self.grounding,
            attribution=trace.attribution,
            text_reliance=getattr(report, "text_reliance", None),
            _words={},
            uid=uuid.uuid4().hex,  # new content: the panes must not reuse its pictures
        )

    def top_words(
        self, source: str | None, head: int | None, k: int = 10, stopwords: Any = None
    ) -> list[list[tuple[str, float]]] | None:
        """Per atom, the ``k`` heaviest words (cached); None when there is no such attention."""
        from fga_tui.diagnostics.words import top_words

        key = (source, head, k, None if stopwords is None else id(stopwords))
        cached = self._words.pop(key, None)
        if cached is not None:
            self._words[key] = cached  # most recently used last
            return cached
        A = self.attention_at(source)
        if A is None:
            return None
        if source == ATTRIBUTION:
            head = None
        keep = {el.lower() for el in self.elements}
        ranked = top_words(
            A, self.tokens, self.token_mask, k=k, head=head, stopwords=stopwords, keep=keep
        )
        if len(self._words) >= WORDS_CACHE:  # each holds every atom's list: keep a few
            self._words.pop(next(iter(self._words)))
        self._words[key] = ranked
        return ranked


def _float(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def heatmap_groups(
    labels: Sequence[str],
    elements: Sequence[str],
    orbits: Sequence[Sequence[int]],
    full_max: int = FULL_MATRIX_MAX,
) -> tuple[list[list[int]], list[str], str | None, frozenset[int]]:
    """Heat-map rows: every atom in orbit order (separators between orbits) up to ``full_max``
    atoms; else one row per orbit (separators between elements); else one per element."""
    n = len(labels)
    if n <= full_max:
        groups = [[a] for o in orbits for a in o]
        names = [labels[g[0]] for g in groups]
        starts, pos = set(), 0
        for o in orbits:
            if pos:
                starts.add(pos)
            pos += len(o)
        return groups, names, None, frozenset(starts)
    if len(orbits) <= full_max:
        first_seen: dict[str, int] = {}
        for el in elements:
            first_seen.setdefault(el, len(first_seen))
        ordered = sorted(orbits, key=lambda o: (first_seen[elements[o[0]]], o[0]))
        names = [labels[o[0]] if len(o) == 1 else f"{labels[o[0]]}×{len(o)}" for o in ordered]
        starts = frozenset(
            g
            for g in range(1, len(ordered))
            if elements[ordered[g][0]] != elements[ordered[g - 1][0]]
        )
        return [list(o) for o in ordered], names, "orbit", starts
    order: dict[str, list[int]] = {}
    for i, el in enumerate(elements):
        order.setdefault(el, []).append(i)
    names = [f"{el}×{len(m)}" for el, m in order.items()]
    return list(order.values()), names, "element", frozenset()


def stage_matrices(
    features: Mapping[str, np.ndarray],
    stages: Sequence[str],
    groups: list[list[int]],
    aggregate: str | None,
) -> dict[str, np.ndarray]:
    """float32 [S, G, G] per mode (see ``View.matrices``)."""
    from fga_tui.diagnostics.similarity import (
        EXACT_MAX_ATOMS,
        block_mean,
        block_mean_embedded,
        centered_correlation,
        cosine_matrix,
        raw_correlation,
        similarity_embedding,
    )

    funcs = {"centred": centered_correlation, "raw": raw_correlation, "cosine": cosine_matrix}
    order = np.array([g[0] for g in groups]) if aggregate is None else None
    out: dict[str, np.ndarray] = {}
    for mode, func in funcs.items():
        mats = []
        for stage in stages:
            X = features[stage]
            if aggregate is not None and len(X) > EXACT_MAX_ATOMS:
                # Group sums of unit rows: no N×N matrix (5,000 atoms: 200 MB each).
                M = block_mean_embedded(similarity_embedding(X, mode), groups)
            else:
                M = func(X)
                M = M[np.ix_(order, order)] if aggregate is None else block_mean(M, groups)
            mats.append(M.astype(np.float32))
        out[mode] = np.stack(mats)
    return out


def build_view(
    trace: Trace,
    *,
    metrics: Mapping[str, Any],
    orbits: Sequence[Sequence[int]],
    wyckoffs: Sequence[str] | None,
    spacegroup: str,
    coordination: np.ndarray | None,
    verdicts: Sequence[Any],
    audit_lines: Sequence[str],
    ablation_notes: Sequence[str] = (),
    fga_input: str | None = None,
    meta: Mapping[str, Any] | None = None,
    report: Any = None,
    full_max: int = FULL_MATRIX_MAX,
) -> View:
    """Precompute a ``View`` from a trace and its diagnosis pieces (numpy; runs in the worker)."""
    meta = dict(meta or {})
    n = trace.num_atoms
    orbits = [list(map(int, o)) for o in orbits] or [[i] for i in range(n)]
    orbit_of = np.zeros(n, dtype=np.int64)
    for g, o in enumerate(orbits):
        orbit_of[o] = g
    labels = tuple(trace.labels)
    groups, names, aggregate, separators = heatmap_groups(labels, trace.elements, orbits, full_max)
    norms = np.stack(
        [
            np.linalg.norm(np.asarray(trace.features[s], dtype=np.float64), axis=1)
            for s in trace.stages
        ]
    ).astype(np.float32)
    multi_orbit = len(orbits) > 1
    xorb = [
        metrics[s].cross_orbit_centered_corr if multi_orbit else metrics[s].mean_centered_corr
        for s in trace.stages
    ]
    curves = {
        "xorbit": np.array([_float(x) for x in xorb]),
        "mad": np.array([_float(metrics[s].mad) for s in trace.stages]),
        "erank": np.array([_float(metrics[s].effective_rank) for s in trace.stages]),
    }
    curve_labels = dict(CURVES)
    if not multi_orbit:
        curve_labels["xorbit"] = "centred corr (one orbit)"
    rows = tuple(
        VerdictRow(
            v.code,
            v.severity,
            v.message,
            dict(v.evidence),
            getattr(v, "remedy", None),
            getattr(v, "vs_baseline", None),
        )
        for v in verdicts
    )
    return View(
        checkpoint=str(meta.get("checkpoint", "")),
        layout=str(meta.get("layout", "")),
        sample_path=str(meta.get("sample_path", "")),
        sample_id=str(meta.get("sample_id", "")),
        formula=str(meta.get("formula", "")),
        index=int(meta.get("index", 0)),
        device=str(meta.get("device", "")),
        prediction=float(trace.prediction),
        target=meta.get("target"),
        spacegroup=spacegroup,
        labels=labels,
        elements=tuple(trace.elements),
        orbit_of=orbit_of,
        orbits=orbits,
        wyckoffs=tuple(wyckoffs) if wyckoffs is not None else ("?",) * n,
        coordination=None if coordination is None else np.asarray(coordination),
        stages=tuple(trace.stages),
        norms=norms,
        matrices=stage_matrices(trace.features, trace.stages, groups, aggregate),
        groups=groups,
        group_names=names,
        aggregate=aggregate,
        separators=separators,
        curves=curves,
        curve_labels=curve_labels,
        tokens=tuple(str(t) for t in trace.tokens),
        token_mask=None if trace.token_mask is None else np.asarray(trace.token_mask, bool),
        attention=trace.atom_to_text,
        counterfactual=dict(trace.counterfactual),
        fga_input=fga_input,
        verdicts=rows,
        audit_lines=tuple(audit_lines),
        ablation=trace.ablation,
        ablation_notes=tuple(ablation_notes),
        timings=dict(meta.get("timings", {})),
        input_choices=tuple(meta.get("input_choices", ())),
        has_fusion=bool(meta.get("has_fusion", any(s.startswith("fusion.") for s in trace.stages))),
        trace=trace,
        report=report,
        grounding=_attention_grounding(trace),
    )


def _attention_grounding(trace: Trace) -> np.ndarray | None:
    """[N] the attention grounding (cheap: numpy over the attention the trace already has)."""
    if trace.grounding is not None:
        return trace.grounding
    if trace.atom_to_text is None:
        return None
    from fga_tui.diagnostics.grounding import grounding

    return grounding(trace.atom_to_text, trace.tokens, trace.token_mask, trace.elements).per_atom


def view_from_diagnosis(diagnosis: Any, prepared: Any, meta: Mapping[str, Any]) -> View:
    """``build_view`` from a ``fga_tui.diagnostics.report.Diagnosis``."""
    from fga_tui.diagnostics.report import fga_input_stage
    from fga_tui.structure.symmetry import coordination_numbers

    trace = diagnosis.trace
    report = diagnosis.report
    sym = diagnosis.symmetry
    try:
        coordination = coordination_numbers(prepared.sample.structure)
    except ValueError:
        coordination = None
    notes = []
    for name, info in report.ablations.items():
        if name == "active" or not isinstance(info, dict):
            continue
        sep = info.get("separation_at_fga_input")
        jsd = info.get("attention_cross_orbit_jsd")
        parts = [name]
        if sep is not None:
            parts.append(f"separation {sep:.3g}")
        if jsd is not None:
            parts.append(f"x-orbit JSD {jsd:.3g} bits")
        if info.get("prediction") is not None:
            parts.append(f"prediction {info['prediction']:.4g}")
        notes.append(", ".join(parts))
    audit_lines = () if diagnosis.audit is None else diagnosis.audit.summary_lines()
    full = dict(meta)
    full.setdefault("formula", report.sample.get("formula", ""))
    full.setdefault("target", report.sample.get("target"))
    full.setdefault("sample_id", report.sample.get("id", ""))
    return build_view(
        trace,
        metrics=diagnosis.metrics,
        orbits=report.orbits,
        wyckoffs=getattr(sym, "wyckoffs", None),
        spacegroup=str(getattr(sym, "spacegroup", "unknown")),
        coordination=coordination,
        verdicts=report.verdicts,
        audit_lines=audit_lines,
        ablation_notes=notes,
        fga_input=fga_input_stage(trace),
        meta=full,
        report=report,
    )
