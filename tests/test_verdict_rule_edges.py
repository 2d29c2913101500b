"""Verdict rules at edges the per-rule tests leave open: FGA_MISSING's two cases, the stages an
intervention sets, a smoothing decline after a fusion stage or after a run that does not
qualify, and how NO_GRADIENT_PATH lists its modules."""

from __future__ import annotations

from test_verdict_rules import audit, chain, ev, one, profile

from fga_tui.diagnostics.audit import Finding
from fga_tui.diagnostics.rules import (
    fga_missing,
    intervened_stages,
    no_gradient_path,
    oversmoothing,
)
from fga_tui.diagnostics.severity import Severity


def test_fga_missing_warns_for_a_multimodal_model_and_informs_for_a_text_free_one():
    v = one(fga_missing(ev(has_fga=False)))
    assert (v.code, v.severity) == ("FGA_MISSING", Severity.WARNING)
    assert v.message == (
        "The checkpoint has no fine-grained attention module: there are no per-atom top words "
        "to explain."
    )
    v = one(fga_missing(ev(multimodal=False, has_fga=False)))
    assert (v.code, v.severity) == ("FGA_MISSING", Severity.INFO)
    assert v.message == (
        "Text-free ALIGNN checkpoint: no atom-token attention; only feature diagnostics apply."
    )
    assert fga_missing(ev()) == []


def test_stages_set_by_an_intervention():
    assert intervened_stages(ev(intervention=("mean-ablate=gcn.1",))) == {"gcn.1"}
    assert intervened_stages(ev(intervention=("patch=gcn.2:Hf_1<-Ba_0",))) == {"gcn.2"}
    both = ev(intervention=("no-fusion", "mean-ablate= alignn.0 ", "fga-from=gcn.1"))
    assert intervened_stages(both) == {"alignn.0"}
    assert intervened_stages(ev(intervention=("mean-ablate=",))) == set()


def test_a_decline_after_a_fusion_stage_is_still_found():
    stages = ("embed", "alignn.0", "fusion.0", "alignn.1", "gcn.0", "gcn.1", "fga")
    seps = [1.0, 1.0, 1.0, *chain(1.0, [0.5, 0.4, 0.5])[1:]]
    v = one(
        oversmoothing(ev(stages=stages, separation=profile(stages, seps), fga_input_stage="gcn.1"))
    )
    assert v.evidence["decline_from"] == "alignn.1"


def test_a_later_decline_is_found_after_an_earlier_run_too_short_to_count():
    stages = ("embed", "alignn.0", "alignn.1", "gcn.0", "gcn.1", "gcn.2", "fga")
    # alignn.0 shrinks alone (one layer: not a trend), alignn.1 recovers, then gcn.0-gcn.2 decline
    seps = [1.0, 0.5, 1.0, 0.5, 0.2, 0.08]
    v = one(
        oversmoothing(ev(stages=stages, separation=profile(stages, seps), fga_input_stage="gcn.2"))
    )
    assert v.evidence["decline_from"] == "gcn.0"


def _module(name: str, kind: str = "no_gradient") -> Finding:
    return Finding(kind, "warning", "m", (f"{name}.weight",), {"module": name})


def test_no_gradient_path_lists_five_modules_then_an_ellipsis():
    five = [_module(f"m{i}") for i in range(5)]
    v = one(no_gradient_path(ev(audit=audit(*five))))
    assert v.message.endswith(": m0, m1, m2, m3, m4.")
    v = one(no_gradient_path(ev(audit=audit(*five, _module("m5", "zero_gradient")))))
    assert v.message.endswith(": m0, m1, m2, m3, m4 ....")
    assert v.evidence["modules"] == ["m0", "m1", "m2", "m3", "m4", "m5"]
    unnamed = Finding("no_gradient", "warning", "m", ("x.weight",), {})
    assert one(no_gradient_path(ev(audit=audit(unnamed)))).evidence["modules"] == ["?"]
    assert no_gradient_path(ev(audit=audit(_module("m", "unchanged")))) == []
