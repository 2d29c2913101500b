"""TEXT_IGNORED and UNGROUNDED on hand-built evidence: fire, must not fire, and boundaries."""

from __future__ import annotations

import math

import pytest

from fga_tui.diagnostics.rules_attribution import (
    GROUNDED_MIN,
    TEXT_EFFECT_MAX,
    WORDS_SHARE_MAX,
    AttributionEvidence,
    attribution_verdicts,
    text_ignored,
    ungrounded,
)


def _ev(**kw) -> AttributionEvidence:
    base = dict(prediction=2.0, prediction_no_text=1.0, prediction_no_words=1.5)
    base.update(kw)
    return AttributionEvidence(**base)


def test_text_ignored_fires_when_the_prediction_barely_moves_without_text() -> None:
    # 1.0 / 100.0 is exactly the threshold in floating point
    (v,) = text_ignored(_ev(prediction=100.0, prediction_no_text=100.0 - 100 * TEXT_EFFECT_MAX))
    assert v.code == "TEXT_IGNORED" and v.severity == "warning"
    assert v.evidence["reason"] == "text"
    assert v.evidence["relative_change"] == pytest.approx(TEXT_EFFECT_MAX)


def test_text_ignored_boundary_just_above_the_threshold_does_not_fire() -> None:
    moved = 2.0 * (1 - 1.01 * TEXT_EFFECT_MAX)
    assert text_ignored(_ev(prediction_no_text=moved, prediction_no_words=moved)) == []


def test_a_prediction_of_zero_both_ways_is_unmoved() -> None:
    (v,) = text_ignored(_ev(prediction=0.0, prediction_no_text=0.0))
    assert v.evidence["relative_change"] == 0.0


def test_text_ignored_fires_when_only_the_words_do_not_matter() -> None:
    # the text moves it by 20; deleting every word moves it by 1 = exactly the threshold share
    ev = _ev(
        prediction=20.0, prediction_no_text=0.0, prediction_no_words=20.0 - 20 * WORDS_SHARE_MAX
    )
    (v,) = text_ignored(ev)
    assert v.evidence["reason"] == "words"
    assert v.evidence["words_share"] == pytest.approx(WORDS_SHARE_MAX)


def test_words_that_matter_keep_text_ignored_quiet() -> None:
    assert text_ignored(_ev(prediction_no_words=2.0 - 1.01 * WORDS_SHARE_MAX)) == []
    assert text_ignored(_ev(prediction_no_words=1.2)) == []


def test_words_reason_needs_fine_grained_attention_and_a_measurement() -> None:
    assert text_ignored(_ev(prediction_no_words=2.0, has_fga=False)) == []
    assert text_ignored(_ev(prediction_no_words=None)) == []
    assert text_ignored(_ev(prediction=math.nan)) == []


def test_ungrounded_fires_when_half_the_named_elements_read_about_others() -> None:
    ev = _ev(
        grounding={"Ba": 0.9, "Hf": 0.2}, text_share={"Ba": 0.6, "Hf": 0.4}, named=("Ba", "Hf")
    )
    (v,) = ungrounded(ev)
    assert v.code == "UNGROUNDED" and v.evidence["elements"] == ["Hf"]
    assert v.evidence["grounding"] == {"Ba": 0.9, "Hf": 0.2}
    assert v.evidence["text_share"]["Hf"] == 0.4


def test_ungrounded_boundaries() -> None:
    named = ("Ba", "Hf", "Li")
    # exactly at the threshold is grounded
    at = {"Ba": GROUNDED_MIN, "Hf": GROUNDED_MIN, "Li": 0.1}
    assert ungrounded(_ev(grounding=at, named=named)) == []  # 1 of 3 below: less than half
    below = {"Ba": 0.9, "Hf": GROUNDED_MIN - 1e-9, "Li": 0.1}
    assert len(ungrounded(_ev(grounding=below, named=named))) == 1  # 2 of 3


def test_ungrounded_needs_two_named_elements_and_values() -> None:
    assert ungrounded(_ev(grounding={"Si": 0.1}, named=("Si",))) == []
    assert ungrounded(_ev(grounding={}, named=("Na", "Cl"))) == []
    # an element the text does not name is not judged
    ev = _ev(grounding={"Na": 0.9, "Cl": 0.1, "K": 0.0}, named=("Na", "Cl", "X"))
    assert ungrounded(ev)[0].evidence["elements"] == ["Cl"]


def test_both_rules_in_code_order() -> None:
    ev = _ev(prediction_no_text=2.0, grounding={"Na": 0.1, "Cl": 0.1}, named=("Na", "Cl"))
    assert [v.code for v in attribution_verdicts(ev)] == ["TEXT_IGNORED", "UNGROUNDED"]
