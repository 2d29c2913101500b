"""Verdict rules at edges the per-rule tests leave open: FGA_MISSING's two cases, the stages an
intervention sets, a smoothing decline after a fusion stage or after a run that does not
qualify, and how NO_GRADIENT_PATH lists its modules."""

from __future__ import annotations

import pytest
from test_verdict_rules import GCN, audit, chain, ev, fusion_ev, one, profile

from fga_tui.diagnostics.audit import Finding
from fga_tui.diagnostics.evidence import Probe
from fga_tui.diagnostics.rules import (
    _loss,
    _ratio,
    attention_untrained,
    fga_missing,
    fusion_loss,
    intervened_stages,
    no_gradient_path,
    oversmoothing,
    shared_query_dominates,
    smoothing_trend,
    symmetry_equivalent,
)
from fga_tui.diagnostics.separation import COLLAPSE_SEPARATION
from fga_tui.diagnostics.severity import Severity
from fga_tui.diagnostics.verdict import decide


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


def test_attention_untrained_messages_name_the_parameters_and_the_branch():
    a2t = Finding(
        "unchanged",
        "error",
        "x",
        (
            "fine_grained_attention.a2t_query.weight",
            "fine_grained_attention.a2t_key.weight",
            "fine_grained_attention.a2t_query.bias",
        ),
        {},
    )
    t2a = Finding(
        "looks_untrained",
        "warning",
        "x",
        ("fine_grained_attention.t2a_key.weight", "fine_grained_attention.token_output.weight"),
        {},
    )
    errors, warnings = attention_untrained(ev(audit=audit(a2t, t2a)))
    assert (errors.code, errors.severity, errors.evidence["branch"]) == (
        "ATTENTION_UNTRAINED",
        Severity.ERROR,
        "atom_to_text",
    )
    assert errors.message == (
        "The atom->text attention projections look untrained (fine_grained_attention.a2t_key."
        "weight, fine_grained_attention.a2t_query.bias, fine_grained_attention.a2t_query.weight)"
        ": its weights carry no learned meaning."
    )
    assert (warnings.code, warnings.severity) == ("ATTENTION_UNTRAINED", Severity.WARNING)
    assert errors.evidence["stage"] == warnings.evidence["stage"] == "fga"
    assert warnings.message == (
        "The text->atom branch of the fine-grained attention never trained (2 tensors): do not "
        "interpret text_to_atom weights."
    )


def test_symmetry_equivalent_messages_for_orbits_one_element_and_a_broken_symmetry():
    v = one(symmetry_equivalent(ev(orbits=[[0, 1], [2]], labels=("Ba_0", "Ba_1", "Li_2"))))
    assert (v.code, v.severity) == ("SYMMETRY_EQUIVALENT", Severity.INFO)
    assert v.message == (
        "{Ba_0, Ba_1} are symmetry-equivalent: identical features and top words within each "
        "group are expected, not a collapse."
    )
    two = one(
        symmetry_equivalent(ev(orbits=[[0, 1], [2, 3]], num_atoms=4, labels=("A", "B", "C", "D")))
    )
    assert two.message.startswith("{A, B}; {C, D} are symmetry-equivalent")
    mono = one(symmetry_equivalent(ev(group_names=("Na",), orbits=[[0], [1], [2]])))
    assert mono.message == (
        "All atoms are Na: the input does not tell them apart, so this sample cannot show "
        "whether different atoms read different words."
    )
    both = one(symmetry_equivalent(ev(group_names=("Na",), orbits=[[0, 1], [2]])))
    assert both.message.endswith(
        "not a collapse. All atoms are Na: the input does not tell them apart, so this sample "
        "cannot show whether different atoms read different words."
    )
    single = one(symmetry_equivalent(ev(group_names=("Na",), orbits=[[0, 1, 2]])))
    assert "All atoms are Na" not in single.message
    assert single.message.startswith("All 3 atoms are symmetry-equivalent")
    broken = one(
        symmetry_equivalent(
            ev(
                orbits=[[0, 1], [2]],
                broken_orbits=(((0, 1), (12, 14)),),
                within_orbit_max_dev=0.0312,
            )
        )
    )
    assert broken.message.endswith(
        " But the crystal graph breaks this symmetry (Ba_0, Hf_1 have 12/14 bonds: upstream's "
        "k-nearest rule cuts a tie shell by exact float comparison), so their features differ "
        "by up to 0.031."
    )
    assert broken.evidence["within_orbit_max_dev"] == 0.0312
    assert broken.evidence["graph_breaks_symmetry"] == [{"atoms": [0, 1], "in_degree": [12, 14]}]


# --- losses count up to the stage the attention reads, never after it --------------------------

STAGES = ("embed", "alignn.0", "fusion.0", "alignn.1", "fusion.1", "gcn.0", "fga")


def staged(values, fga_input_stage="alignn.1", **kw):
    sep = dict(zip(STAGES[:-1], values, strict=True))
    return ev(stages=STAGES, separation=sep, fga_input_stage=fga_input_stage, **kw)


def test_fusion_loss_counts_fusion_stages_up_to_the_attention_input_only():
    # fusion.0 keeps 0.8 of alignn.0's 0.9; fusion.1 (after the input alignn.1) keeps 0.1.
    loss = fusion_loss(staged([1.0, 0.9, 0.72, 0.72, 0.072, 0.072]))
    assert loss is not None
    assert (loss.stage, loss.before, loss.after) == ("fusion.0", 0.9, 0.72)
    assert loss.keep == pytest.approx(0.8) and loss.ratios == {"fusion.0": pytest.approx(0.8)}
    # Read from gcn.0, both fusion stages count and fusion.1 is the worst.
    loss = fusion_loss(staged([1.0, 0.9, 0.72, 0.72, 0.072, 0.072], "gcn.0"))
    assert (loss.stage, loss.before, loss.after) == ("fusion.1", 0.72, 0.072)
    assert loss.keep == pytest.approx(0.08)
    # An input that is no feature stage: every stage counts.
    assert (
        fusion_loss(staged([1.0, 0.9, 0.72, 0.72, 0.072, 0.072], "elsewhere")).stage == "fusion.1"
    )


def test_fusion_stages_that_keep_or_gain_separation_lose_nothing():
    assert fusion_loss(staged([1.0, 0.9, 0.9, 0.9, 0.9, 0.9], "gcn.0")) is None  # ratio 1.0
    assert fusion_loss(staged([1.0, 0.9, 1.35, 1.35, 1.35, 1.35], "gcn.0")) is None  # 1.5
    loss = fusion_loss(staged([1.0, 0.9, 1.35, 1.35, 0.675, 0.675], "gcn.0"))
    assert loss.ratios == {"fusion.0": pytest.approx(1.5), "fusion.1": pytest.approx(0.5)}
    assert loss.keep == pytest.approx(0.5)  # the gain does not offset the loss


def test_layer_losses_stop_at_the_attention_input_and_gains_do_not_offset_them():
    # alignn.0 keeps 0.5; alignn.1 (the input) gains 1.5x; gcn.0, after the input, keeps 0.1.
    e = staged([1.0, 0.5, 0.5, 0.75, 0.75, 0.075])
    assert _loss(e, lambda s: s.startswith(("alignn.", "gcn."))) == pytest.approx(0.5)
    e = staged([1.0, 0.5, 0.5, 0.75, 0.75, 0.075], "fusion.1")  # gcn.0 right after the input
    assert _loss(e, lambda s: s.startswith(("alignn.", "gcn."))) == pytest.approx(0.5)
    assert _loss(staged([1.0, 0.5, 0.5, 0.75, 0.75, 0.075], "gcn.0"), lambda s: True) == (
        pytest.approx(1 - 0.5 * 0.1)
    )


@pytest.mark.parametrize(
    ("final", "severity"),
    [(COLLAPSE_SEPARATION, Severity.WARNING), (0.999 * COLLAPSE_SEPARATION, Severity.ERROR)],
)
def test_oversmoothing_is_an_error_only_below_the_collapse_level(final, severity):
    v = one(oversmoothing(ev(separation=profile(GCN, [1.0, 1.0, 0.1, 0.01, 0.005, final]))))
    assert (v.severity, v.evidence["stage"]) == (severity, "gcn.3" if final < 1e-3 else "gcn.0")
    identical = v.message.endswith("and are identical at the attention input.")
    assert identical is (severity is Severity.ERROR)


def test_a_ratio_needs_both_separations_and_an_input_at_or_above_the_collapse_level():
    e = ev(separation=profile(GCN, [1.0, COLLAPSE_SEPARATION, 5e-4, None, 0.5, 0.25]))
    assert _ratio(e, "embed") is None  # nothing before the first stage
    assert _ratio(e, "gcn.0") == 0.5  # its input sits exactly at the collapse level: counted
    assert _ratio(e, "gcn.1") is None  # its own separation is unknown
    assert _ratio(e, "gcn.2") is None  # its input's is unknown
    assert _ratio(e, "gcn.3") == 0.5
    below = ev(separation=profile(GCN, [1.0, 0.999 * COLLAPSE_SEPARATION, 5e-4, 1, 1, 1]))
    assert _ratio(below, "gcn.0") is None  # below the collapse level: float noise


def test_an_attention_input_that_is_no_feature_stage_has_no_trend_and_all_losses_count():
    e = ev(fga_input_stage="elsewhere", separation=profile(GCN, [1.0, 0.5, 0.25, 0.1, 0.05, 0.02]))
    assert smoothing_trend(e) is None
    assert _loss(e, lambda s: s.startswith("gcn.")) == pytest.approx(1 - 0.02 / 0.5)


def test_a_trend_stops_at_the_attention_input():
    e = ev(fga_input_stage="gcn.1", separation=profile(GCN, [1.0, 1.0, 0.5, 0.2, 0.02, 0.002]))
    trend = smoothing_trend(e)
    assert (trend.layers, trend.start, trend.stage) == (("gcn.0", "gcn.1"), "alignn.0", "gcn.1")


CUSTOM = ("embed", "gcn.0", "gcn.1", "fusion.0", "fga")


@pytest.mark.parametrize(
    ("values", "trend"),
    [
        ([1.0, 0.5, 0.25, 0.2], False),  # the layers keep exactly TREND_KEEP: not less
        ([1.0, 0.5, 0.2, 0.2], True),
        ([1.0, 0.5, 0.1, 0.25], False),  # fusion restores exactly TREND_KEEP by the input
        ([1.0, 0.5, 0.1, 0.24], True),
    ],
)
def test_trend_keep_is_strict_for_the_layers_and_for_the_input(values, trend):
    sep = dict(zip(CUSTOM[:-1], values, strict=True))
    e = ev(stages=CUSTOM, separation=sep, fga_input_stage="fusion.0")
    assert (smoothing_trend(e) is not None) is trend


def test_a_run_that_does_not_qualify_does_not_hide_a_later_one():
    stages = ("embed", "alignn.0", "alignn.1", "gcn.0", "gcn.1", "gcn.2", "fga")
    values = [1.0, 0.8, 0.64, 1.0, 0.4, 0.16]  # run 1 keeps 64 %; gcn.0 recovers; run 2 16 %
    e = ev(
        stages=stages,
        separation=dict(zip(stages[:-1], values, strict=True)),
        fga_input_stage="gcn.2",
    )
    trend = smoothing_trend(e)
    assert (trend.layers, trend.start) == (("gcn.1", "gcn.2"), "gcn.0")


def test_equal_declines_go_to_the_earliest():
    stages = ("embed", "alignn.0", "alignn.1", "gcn.0", "gcn.1", "gcn.2", "fga")
    values = [1.0, 0.5, 0.125, 1.0, 0.5, 0.125]  # both runs keep exactly 1/8
    e = ev(
        stages=stages,
        separation=dict(zip(stages[:-1], values, strict=True)),
        fga_input_stage="gcn.2",
    )
    assert smoothing_trend(e).layers == ("alignn.0", "alignn.1")


def test_an_unmeasured_stage_in_a_collapsed_tail_counts_as_collapsed():
    e = ev(separation=profile(GCN, [1.0, 1.0, 0.1, 0.01, None, 1e-4]))
    assert smoothing_trend(e).stage == "gcn.2"


@pytest.mark.parametrize("final", [COLLAPSE_SEPARATION, 0.5])
def test_shared_query_names_the_separation_when_it_is_at_or_above_the_collapse_level(final):
    e = ev(
        separation=profile(GCN, [1.0, 1.0, 1.0, 1.0, 1.0, final]),
        same_word_pairs=[("Ba_0", "Li_2")],
        same_word_pair_count=1,
        shared_fraction=0.9,
    )
    v = one(shared_query_dominates(e))
    assert v.message.startswith(f"Atoms differ at gcn.3 (separation {final:.2g}) but ")


@pytest.mark.parametrize(("atoms", "fires"), [(1, False), (2, True)])
def test_one_element_needs_two_atoms_to_be_worth_saying(atoms, fires):
    labels = tuple(f"Si_{i}" for i in range(atoms))
    e = ev(num_atoms=atoms, labels=labels, orbits=[[i] for i in range(atoms)], group_names=("Si",))
    assert bool(symmetry_equivalent(e)) is fires


def test_a_fusion_warning_blocks_healthy_and_the_symptom_fallback():
    # Fusion loses the separation, but atoms read alike without it too: FUSION_HOMOGENIZES is
    # only a warning, yet still the one verdict (no HEALTHY, no "symptom without cause").
    persists = Probe(
        "no-fusion",
        separation_at_fga_input=0.9,
        closest_group_jsd=0.3,
        same_word_pairs=(("Ba_0", "Li_2"),),
        same_word_pair_count=1,
    )
    e = fusion_ev(0.05, 0.05, persists, same_word_pairs=[("Ba_0", "Li_2")], same_word_pair_count=1)
    assert [(v.code, v.severity) for v in decide(e)] == [("FUSION_HOMOGENIZES", Severity.WARNING)]
