"""Matching verdicts against the unintervened baseline by subject: the attention branch or the
degenerate weights, one to one, warnings resolving at their boundary."""

from __future__ import annotations

from fga_tui.diagnostics.evidence import Verdict
from fga_tui.diagnostics.severity import Severity
from fga_tui.diagnostics.verdict import compare_with_baseline


def V(code: str, severity: str, **evidence) -> Verdict:
    return Verdict(code, Severity.of(severity), code.lower(), evidence)


def test_degenerate_softmax_verdicts_match_on_their_weights():
    baseline = [V("DEGENERATE_SOFTMAX", "warning", weights="text_to_atom")]
    current = [V("DEGENERATE_SOFTMAX", "warning", weights="global_attention")]
    marked, resolved = compare_with_baseline(current, baseline)
    assert [v.vs_baseline for v in marked] == ["new"]
    assert [(v.evidence["weights"], v.vs_baseline) for v in resolved] == [
        ("text_to_atom", "resolved")
    ]
    same, gone = compare_with_baseline(baseline, baseline)
    assert [v.vs_baseline for v in same] == ["persists"] and gone == []


def test_each_baseline_verdict_matches_one_current_verdict_only():
    baseline = [V("OVERSMOOTHING", "warning", stage="gcn.1")]
    current = [V("FEATURE_COLLAPSE", "error"), V("OVERSMOOTHING", "warning", stage="gcn.1")]
    current.append(V("OVERSMOOTHING", "warning"))
    marked, resolved = compare_with_baseline(current, baseline)
    assert [v.vs_baseline for v in marked] == ["new", "persists", "new"]
    assert resolved == []


def test_a_vanished_warning_resolves_and_a_vanished_info_does_not():
    baseline = [V("SYMMETRY_EQUIVALENT", "info"), V("NO_GRADIENT_PATH", "warning")]
    _, resolved = compare_with_baseline([], baseline)
    assert [v.code for v in resolved] == ["NO_GRADIENT_PATH"]
