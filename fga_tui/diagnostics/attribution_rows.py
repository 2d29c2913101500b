"""Grounding and text reliance over a dataset: flat per-row fields and their aggregation.

``row_fields`` turns one sample's trace (and attribution, when computed) into the JSON fields of
its scan row; ``AttributionAggregate`` collects them over rows, per element (is Hf grounded in
general, or in one sample?) and over the dataset, in ``StreamingStats`` (memory bounded by the
elements seen, not by the rows). Numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fga_tui.diagnostics.streaming import StreamingStats


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def row_fields(trace: Any, attribution: Any = None) -> dict[str, Any]:
    """Scan-row fields of one sample: ``grounding`` {``mean``, ``per_element``, ``named``}
    (attention-based; absent without attention) and, with an ``Attribution``,
    ``text_reliance`` {``prediction_no_text``, ``change``, ``relative_change``,
    ``words_share``, ``completeness_gap``, ``top_word``}."""
    from fga_tui.diagnostics.grounding import grounding

    out: dict[str, Any] = {}
    if trace.atom_to_text is not None:
        g = grounding(trace.atom_to_text, trace.tokens, trace.token_mask, trace.elements)
        out["grounding"] = {
            "mean": _num(g.mean()),
            "per_element": {el: _num(v) for el, v in g.per_element().items()},
            "named": list(g.named),
        }
    if attribution is not None:
        top = attribution.deletions[0] if attribution.deletions else None
        out["text_reliance"] = {
            "prediction_no_text": _num(attribution.prediction_no_text),
            "change": _num(attribution.text_effect),
            "relative_change": _num(attribution.relative_text_effect),
            "words_share": _num(attribution.words_share),
            "completeness_gap": _num(attribution.completeness_gap),
            "top_word": None if top is None else top.word,
            "top_word_change": None if top is None else _num(top.change),
        }
    return out


def _distribution(values: StreamingStats | Iterable[float]) -> dict[str, float] | None:
    stats = values if isinstance(values, StreamingStats) else StreamingStats(values)
    if not stats.n:
        return None
    q = stats.quantiles([0.0, 0.5, 1.0])
    return {"n": stats.n, "min": q[0], "median": q[1], "max": q[2], "mean": stats.mean}


@dataclass
class AttributionAggregate:
    """Grounding per element and over samples, text reliance over samples (from scan rows)."""

    per_element: dict[str, StreamingStats] = field(default_factory=dict)
    sample_grounding: StreamingStats = field(default_factory=StreamingStats)
    unnamed: int = 0
    relative_change: StreamingStats = field(default_factory=StreamingStats)
    words_share: StreamingStats = field(default_factory=StreamingStats)
    completeness_gap: StreamingStats = field(default_factory=StreamingStats)
    #: relative text effect of the samples whose cell holds each element
    reliance_by_element: dict[str, StreamingStats] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        """Take one successful row's fields (rows without them are skipped)."""
        ground = row.get("grounding")
        if ground is not None:
            if not ground["named"]:
                self.unnamed += 1
            for el, value in ground["per_element"].items():
                if value is not None:
                    self.per_element.setdefault(el, StreamingStats()).add(value)
            if ground["mean"] is not None:
                self.sample_grounding.add(ground["mean"])
        rel = row.get("text_reliance")
        if rel is not None:
            for key, acc in (
                ("relative_change", self.relative_change),
                ("words_share", self.words_share),
                ("completeness_gap", self.completeness_gap),
            ):
                if rel.get(key) is not None:
                    acc.add(rel[key])
            if ground is not None and rel.get("relative_change") is not None:
                for el in ground["per_element"]:
                    self.reliance_by_element.setdefault(el, StreamingStats()).add(
                        rel["relative_change"]
                    )

    @property
    def empty(self) -> bool:
        return not (self.sample_grounding.n or self.unnamed or self.relative_change.n)

    def to_json(self) -> dict[str, Any] | None:
        if self.empty:
            return None
        return {
            "grounding": {
                "samples": _distribution(self.sample_grounding),
                "text_names_no_element": self.unnamed,
                "per_element": {el: _distribution(v) for el, v in sorted(self.per_element.items())},
            },
            "text_reliance": {
                "relative_change": _distribution(self.relative_change),
                "words_share": _distribution(self.words_share),
                "completeness_gap": _distribution(self.completeness_gap),
                "per_element": {
                    el: _distribution(v) for el, v in sorted(self.reliance_by_element.items())
                },
            },
        }

    def to_text_lines(self) -> list[str]:
        if self.empty:
            return []
        out = []
        d = _distribution(self.sample_grounding)
        if d:
            out.append(
                f"  grounding (own-element share)  {d['min']:.3g} / {d['median']:.3g} / "
                f"{d['max']:.3g}  ({self.unnamed} texts name no element)"
            )
        for el, values in sorted(self.per_element.items(), key=lambda kv: (kv[1].mean, kv[0])):
            rel = self.reliance_by_element.get(el)
            extra = (
                ""
                if not rel or not rel.n
                else f"; text moves its samples by {rel.quantiles([0.5])[0]:.3g} (median)"
            )
            out.append(f"    {el:<3} grounding {values.mean:.3g} over {values.n} samples{extra}")
        for name, values in (
            ("text moves prediction (rel.)", self.relative_change),
            ("words' share of text effect", self.words_share),
        ):
            d = _distribution(values)
            if d:
                out.append(f"  {name:<30} {d['min']:.3g} / {d['median']:.3g} / {d['max']:.3g}")
        return out
