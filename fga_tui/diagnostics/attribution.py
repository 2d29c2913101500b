"""Attribution and text reliance of one sample, as numbers (numpy; the gradients are computed
by ``fga_tui.model.attribution`` through ``engine.run_attribution``).

Attention says where an atom looks; attribution says what moves the prediction ("attention is
not explanation": Jain & Wallace 2019, NAACL; Wiegreffe & Pinter 2019, EMNLP). Text reliance is
the blunt test: the prediction with and without the text (the ``no-text`` intervention), and
with each of the most attributed words deleted from what the attention can read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fga_tui.diagnostics.words import group_wordpieces, top_words

#: Words deleted one at a time for text reliance.
DELETE_TOP_K = 5
#: A prediction change smaller than this fraction of the prediction leaves the gap undefined.
TINY_CHANGE = 1e-9


@dataclass(frozen=True)
class WordDeletion:
    """One word (all its occurrences and pieces) masked out of the attention's reach."""

    word: str
    attribution: float
    positions: tuple[int, ...]
    prediction: float
    change: float

    def to_json(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "attribution": _num(self.attribution),
            "positions": list(self.positions),
            "prediction": _num(self.prediction),
            "change": _num(self.change),
        }


@dataclass(frozen=True, eq=False)
class Attribution:
    """Everything ``engine.run_attribution`` measured for one sample.

    ``atom_to_text`` float32 [N, L] gradient-weighted attention (None without fine-grained
    attention); ``tokens`` float32 [L] integrated gradients (Σ ≈ prediction − no-text
    prediction); ``delta`` = Σ tokens − (prediction − prediction_no_text).
    """

    atom_to_text: np.ndarray | None
    tokens: np.ndarray
    token_strings: tuple[str, ...]
    token_mask: np.ndarray | None
    prediction: float
    prediction_no_text: float
    delta: float
    encoder_leg: float
    steps: int
    deletions: tuple[WordDeletion, ...] = ()
    prediction_no_words: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def text_effect(self) -> float:
        """prediction − prediction without text."""
        return self.prediction - self.prediction_no_text

    @property
    def completeness_gap(self) -> float | None:
        """|Σ attributions − (prediction − no-text prediction)| / |prediction − no-text
        prediction|; None when the text moves the prediction by (almost) nothing."""
        effect = abs(self.text_effect)
        if effect <= TINY_CHANGE * max(1.0, abs(self.prediction)):
            return None
        return abs(self.delta) / effect

    @property
    def words_share(self) -> float | None:
        """|prediction − prediction without words| / |prediction − no-text prediction|."""
        if self.prediction_no_words is None or self.completeness_gap is None:
            return None
        return abs(self.prediction - self.prediction_no_words) / abs(self.text_effect)

    @property
    def relative_text_effect(self) -> float | None:
        """|prediction − no-text prediction| / max(|prediction|, |no-text prediction|)."""
        scale = max(abs(self.prediction), abs(self.prediction_no_text))
        return None if scale == 0 else abs(self.text_effect) / scale


def ranked_words(
    tokens: Sequence[str], mask: Any, scores: np.ndarray, k: int = DELETE_TOP_K
) -> list[tuple[str, float, tuple[int, ...]]]:
    """The ``k`` words with the largest |attribution| (pieces and repeats summed; special tokens
    left out) as (word, attribution, token positions)."""
    totals: dict[str, float] = {}
    where: dict[str, list[int]] = {}
    for text, idx in group_wordpieces(tokens, mask):
        totals[text] = totals.get(text, 0.0) + float(np.sum(scores[list(idx)]))
        where.setdefault(text, []).extend(idx)
    order = sorted(totals, key=lambda w: -abs(totals[w]))  # stable: text order among ties
    return [(w, totals[w], tuple(where[w])) for w in order[:k]]


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def attribution_json(att: Attribution, labels: Sequence[str], k: int = 8) -> dict[str, Any]:
    """The report's ``attribution`` section: per atom top words by gradient-weighted attention,
    the words by integrated gradients, and the completeness gap."""
    per_atom = []
    if att.atom_to_text is not None:
        ranked = top_words(att.atom_to_text, att.token_strings, att.token_mask, k=k)
        per_atom = [
            {"atom": label, "words": [[w, _num(x)] for w, x in words]}
            for label, words in zip(labels, ranked, strict=True)
        ]
    words = ranked_words(att.token_strings, att.token_mask, att.tokens, k)
    return {
        "method": "gradient-weighted attention; integrated gradients from no-text",
        "top_words": per_atom,
        "integrated_gradients": {
            "words": [[w, _num(x)] for w, x, _ in words],
            "sum": _num(float(np.sum(att.tokens))),
            "special_tokens": _num(
                float(att.tokens.sum())
                - sum(
                    float(np.sum(att.tokens[list(i)]))
                    for _, i in group_wordpieces(att.token_strings, att.token_mask)
                )
            ),
            "encoder_leg": _num(att.encoder_leg),
            "steps": att.steps,
        },
        "completeness_gap": _num(att.completeness_gap),
        "completeness_delta": _num(att.delta),
    }


def text_reliance_json(att: Attribution) -> dict[str, Any]:
    """The report's ``text_reliance`` section."""
    return {
        "prediction": _num(att.prediction),
        "prediction_no_text": _num(att.prediction_no_text),
        "change": _num(att.text_effect),
        "relative_change": _num(att.relative_text_effect),
        "prediction_no_words": _num(att.prediction_no_words),
        "words_share": _num(att.words_share),
        "deletions": [d.to_json() for d in att.deletions],
    }


def add_attribution(
    diagnosis: Any, attribution: Attribution | None, *, verdicts: bool = False
) -> Any:
    """A copy of ``diagnosis`` (``fga_tui.diagnostics.report.Diagnosis``) whose report has the
    ``attribution``, ``grounding`` and ``text_reliance`` sections, and whose trace carries the
    ``attr.*`` and ``grounding`` arrays. ``verdicts`` also adds the ``TEXT_IGNORED`` /
    ``UNGROUNDED`` verdicts to the report (HEALTHY stays: it answers another question)."""
    import dataclasses

    trace, report, evidence = attribution_parts(
        diagnosis.trace, diagnosis.report, attribution, verdicts=verdicts
    )
    return dataclasses.replace(
        diagnosis,
        trace=trace,
        report=report,
        attribution=attribution,
        attribution_evidence=evidence,
    )


def attribution_parts(
    trace: Any, report: Any, attribution: Attribution | None, *, verdicts: bool = False
) -> tuple[Any, Any, Any]:
    """(trace with the ``attr.*``/``grounding`` arrays, report with the three sections, the
    ``AttributionEvidence``) for a trace and its report (see ``add_attribution``)."""
    import dataclasses

    from fga_tui.diagnostics.grounding import grounding, grounding_json
    from fga_tui.diagnostics.rules_attribution import attribution_evidence, attribution_verdicts
    from fga_tui.diagnostics.verdict import sort_verdicts
    from fga_tui.engine import with_attribution

    by_attention = by_attribution = None
    if trace.atom_to_text is not None:
        by_attention = grounding(trace.atom_to_text, trace.tokens, trace.token_mask, trace.elements)
    if attribution is not None and attribution.atom_to_text is not None:
        by_attribution = grounding(
            attribution.atom_to_text, trace.tokens, trace.token_mask, trace.elements
        )
    evidence = attribution_evidence(attribution, by_attention)
    extra = attribution_verdicts(evidence) if verdicts else []
    found = list(report.verdicts)
    if extra:
        # HEALTHY (atoms of different elements attend differently) answers another question
        # than these (does the reading matter, is it about the atom), so it stays and leads.
        found = sort_verdicts([*found, *extra])
    report = dataclasses.replace(
        report,
        verdicts=found,
        attribution=None if attribution is None else attribution_json(attribution, trace.labels),
        grounding=None
        if by_attention is None and by_attribution is None
        else grounding_json(by_attention, by_attribution, trace.labels),
        text_reliance=None if attribution is None else text_reliance_json(attribution),
    )
    return with_attribution(trace, attribution), report, evidence


def report_lines(report: Any, *, markdown: bool = False) -> list[str]:
    """Text or Markdown lines of a report's ``text_reliance``, ``attribution`` and ``grounding``
    sections (nothing when the report has none)."""
    rel, att, ground = report.text_reliance, report.attribution, report.grounding
    if rel is None and att is None and ground is None:
        return []
    out = ["", "## Text reliance and grounding" if markdown else "text reliance and grounding:"]
    bullet = "- " if markdown else "  "

    def f(x: float | None, spec: str = ".4g") -> str:
        return "—" if x is None else format(x, spec)

    if rel is not None:
        out.append(
            f"{bullet}prediction {f(rel['prediction'])}, without the text "
            f"{f(rel['prediction_no_text'])} (change {f(rel['change'])}); without its words "
            f"{f(rel['prediction_no_words'])} (words' share {f(rel['words_share'], '.2%')})"
        )
        if rel["deletions"]:
            out.append(
                f"{bullet}deleting a word: "
                + ", ".join(f"{d['word']} {f(d['change'], '+.3g')}" for d in rel["deletions"])
            )
    if att is not None:
        ig = att["integrated_gradients"]
        out.append(
            f"{bullet}integrated gradients ({ig['steps']} steps, from no-text): "
            + ", ".join(f"{w} {f(x, '+.3g')}" for w, x in ig["words"][:5])
            + f"; special tokens {f(ig['special_tokens'], '+.3g')}; completeness gap "
            f"{f(att['completeness_gap'], '.2%')}"
        )
    if ground is not None:
        if ground.get("note"):
            out.append(f"{bullet}grounding: {ground['note']}")
        else:
            per = ground["per_element"]
            out.append(
                f"{bullet}grounding (own-element share; chance in brackets): "
                + ", ".join(
                    f"{el} {f(v['attention'], '.2f')} ({f(v['text_share'], '.2f')})"
                    for el, v in per.items()
                )
            )
    return out
