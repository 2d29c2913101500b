"""Verdict rules on attribution, text reliance and grounding: ``TEXT_IGNORED``, ``UNGROUNDED``.

One function per code (``text_ignored``, ``ungrounded``), each reading ``AttributionEvidence``
(built from an ``Attribution`` and two ``Grounding`` s by ``attribution_evidence``) and
returning a list of ``Verdict`` (empty when the rule does not fire).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fga_tui.diagnostics.verdict import Verdict

#: the codes these rules emit (added to a report after the verdict engine's own).
CODES = ("TEXT_IGNORED", "UNGROUNDED")
#: "barely moves": |prediction − no-text prediction| at most this fraction of the prediction.
TEXT_EFFECT_MAX = 0.01
#: the words carry "almost none" of the text's effect: deleting them all moves the prediction
#: by at most this fraction of |prediction − no-text prediction|.
WORDS_SHARE_MAX = 0.05
#: an element "reads about others" when its atoms' mean grounding is below this.
GROUNDED_MIN = 0.5
#: UNGROUNDED fires when at least this fraction of the elements the text names read about others.
UNGROUNDED_ELEMENTS = 0.5

REMEDIES = {
    "TEXT_IGNORED": (
        "Do not read the attention as an explanation of the prediction; check that the text "
        "path is trained (attribution pane, `report` text_reliance) or drop the text branch."
    ),
    "UNGROUNDED": (
        "Atoms read about other elements: check the text names sites the way the structure "
        "does, or train with a grounding/diversity term (fga_tui.training)."
    ),
}


@dataclass(frozen=True)
class AttributionEvidence:
    """What the two rules read.

    ``prediction``/``prediction_no_text``/``prediction_no_words`` as in
    ``fga_tui.diagnostics.attribution.Attribution``; ``grounding`` per element (mean over its
    atoms, attention-based; NaN-free: elements without a value are left out), ``text_share`` the
    chance level of each element, ``named`` the cell elements the text names.
    """

    prediction: float
    prediction_no_text: float
    prediction_no_words: float | None = None
    has_fga: bool = True
    grounding: dict[str, float] = field(default_factory=dict)
    text_share: dict[str, float] = field(default_factory=dict)
    named: tuple[str, ...] = ()


def _verdict(code: str, message: str, **evidence: Any) -> Verdict:
    return Verdict(code, "warning", message, evidence, REMEDIES[code])


def text_ignored(ev: AttributionEvidence) -> list[Verdict]:
    """``TEXT_IGNORED``: the prediction barely moves without the text, or without the words the
    atoms read, so attention patterns are cosmetic.

    Evidence: ``change`` = |prediction − no-text prediction| and ``relative_change`` = change /
    max(|prediction|, |no-text prediction|); fires (``reason`` "text") when relative_change ≤
    ``TEXT_EFFECT_MAX`` (1 %; a prediction of exactly 0 both ways counts as unmoved). Otherwise,
    with fine-grained attention, ``words_share`` = |prediction − prediction with every word
    deleted| / change; fires (``reason`` "words") when words_share ≤ ``WORDS_SHARE_MAX`` (5 %):
    the text matters only through its [CLS] vector, not through what the atoms attend to.
    """
    if not (math.isfinite(ev.prediction) and math.isfinite(ev.prediction_no_text)):
        return []
    change = abs(ev.prediction - ev.prediction_no_text)
    scale = max(abs(ev.prediction), abs(ev.prediction_no_text))
    relative = 0.0 if scale == 0 else change / scale
    if relative <= TEXT_EFFECT_MAX:
        return [
            _verdict(
                "TEXT_IGNORED",
                f"the prediction moves by {100 * relative:.2g} % without the text "
                f"({ev.prediction:.4g} -> {ev.prediction_no_text:.4g}): the text, and the "
                "attention over it, do not matter to it",
                reason="text",
                change=change,
                relative_change=relative,
                threshold=TEXT_EFFECT_MAX,
            )
        ]
    if not ev.has_fga or ev.prediction_no_words is None:
        return []
    words = abs(ev.prediction - ev.prediction_no_words)
    share = words / change
    if share > WORDS_SHARE_MAX:
        return []
    return [
        _verdict(
            "TEXT_IGNORED",
            f"the text moves the prediction by {change:.3g}, but deleting every word the atoms "
            f"read moves it by {words:.3g} ({100 * share:.2g} % of that): the text acts "
            "through its [CLS] vector, and the atom-word attention is cosmetic",
            reason="words",
            change=change,
            words_change=words,
            words_share=share,
            threshold=WORDS_SHARE_MAX,
        )
    ]


def ungrounded(ev: AttributionEvidence) -> list[Verdict]:
    """``UNGROUNDED``: atoms read mostly about other elements than their own.

    Needs a text naming at least two of the cell's elements (with one, grounding is trivially
    complete). Evidence: per element the mean attention grounding of its atoms (share of its
    element-word attention on words naming its own element) and the text share (the chance
    level). Fires when at least ``UNGROUNDED_ELEMENTS`` (half) of the named elements with a value
    have a grounding below ``GROUNDED_MIN`` (0.5).
    """
    if len(ev.named) < 2:
        return []
    values = {el: g for el, g in ev.grounding.items() if el in ev.named and math.isfinite(g)}
    if not values:
        return []
    low = sorted(el for el, g in values.items() if g < GROUNDED_MIN)
    if len(low) < UNGROUNDED_ELEMENTS * len(values):
        return []
    shown = ", ".join(f"{el} {values[el]:.2f}" for el in low)
    return [
        _verdict(
            "UNGROUNDED",
            f"{len(low)} of {len(values)} elements read mostly about other elements "
            f"(own-element share {shown}; below {GROUNDED_MIN})",
            elements=low,
            grounding={el: values[el] for el in sorted(values)},
            text_share={el: ev.text_share.get(el) for el in sorted(values)},
            threshold=GROUNDED_MIN,
        )
    ]


def attribution_verdicts(ev: AttributionEvidence) -> list[Verdict]:
    """Both rules, in code order."""
    return text_ignored(ev) + ungrounded(ev)


def attribution_evidence(attribution: Any, by_attention: Any) -> AttributionEvidence:
    """Evidence from an ``Attribution`` (may be None: then only grounding) and the attention
    ``Grounding`` (may be None)."""
    grounding: dict[str, float] = {}
    share: dict[str, float] = {}
    named: tuple[str, ...] = ()
    if by_attention is not None:
        grounding = {k: v for k, v in by_attention.per_element().items() if math.isfinite(v)}
        share = dict(by_attention.text_share)
        named = tuple(by_attention.named)
    if attribution is None:
        return AttributionEvidence(
            math.nan, math.nan, None, by_attention is not None, grounding, share, named
        )
    return AttributionEvidence(
        prediction=attribution.prediction,
        prediction_no_text=attribution.prediction_no_text,
        prediction_no_words=attribution.prediction_no_words,
        has_fga=attribution.atom_to_text is not None,
        grounding=grounding,
        text_share=share,
        named=named,
    )
