"""Each verdict rule on hand-built evidence: a case that fires, one that must not, thresholds
pinned just either side of their boundary, and the exact stage named."""

from __future__ import annotations

import pytest

from fga_tui.diagnostics.audit import AuditResult, Finding
from fga_tui.diagnostics.evidence import CODES, Evidence, Probe, Verdict
from fga_tui.diagnostics.rules import (
    BLOCKS_HEALTHY,
    DISTINCT_JSD_BITS,
    DROP_FACTOR,
    LAYER_SHRINK,
    RULES,
    SHARED_DOMINATES_FRACTION,
    TREND_KEEP,
    attention_untrained,
    degenerate_softmax,
    feature_collapse,
    fga_missing,
    fusion_homogenizes,
    healthy,
    no_gradient_path,
    oversmoothing,
    shared_query_dominates,
    smoothing_trend,
    symmetry_equivalent,
    symptom,
)
from fga_tui.diagnostics.separation import COLLAPSE_SEPARATION
from fga_tui.diagnostics.severity import Severity
from fga_tui.diagnostics.verdict import compare_with_baseline, decide

GCN = ("embed", "alignn.0", "gcn.0", "gcn.1", "gcn.2", "gcn.3", "fga")
FUSION = ("embed", "alignn.0", "fusion.0", "alignn.1", "gcn.0", "fga")


def profile(stages, values) -> dict:
    return dict(zip([s for s in stages if s != "fga"], values, strict=True))


def chain(start: float, ratios) -> list[float]:
    out = [start]
    for r in ratios:
        out.append(out[-1] * r)
    return out


def ev(**changes) -> Evidence:
    """A healthy 3-element, 3-orbit cell read by a GCN stack; ``changes`` break one thing."""
    base = dict(
        stages=GCN,
        labels=("Ba_0", "Hf_1", "Li_2"),
        orbits=[[0], [1], [2]],
        separation=profile(GCN, [1.0, 0.95, 0.9, 0.9, 0.9, 0.9]),
        has_fga=True,
        multimodal=True,
        fga_input_stage="gcn.3",
        attention_jsd=0.3,
        shared_fraction=0.1,
        group_names=("Ba", "Hf", "Li"),
        closest_groups=("Ba", "Li"),
        closest_group_jsd=0.2,
        num_atoms=3,
    )
    base.update(changes)
    return Evidence(**base)


def audit(*findings: Finding) -> AuditResult:
    return AuditResult("ckpt.pt", None, 10, 100, tuple(findings))


def one(verdicts: list[Verdict]) -> Verdict:
    assert len(verdicts) == 1, verdicts
    return verdicts[0]


# --- registry ----------------------------------------------------------------------------------


def test_every_rule_has_a_public_code_and_a_docstring_naming_its_thresholds():
    assert [r.code for r in RULES][-1] == "HEALTHY"  # reads every earlier verdict
    for rule in RULES:
        assert rule.code in CODES
        assert rule.check.__doc__ and rule.code in rule.check.__doc__
    assert "TREND_KEEP" in oversmoothing.__doc__
    assert "DISTINCT_JSD_BITS" in healthy.__doc__
    assert BLOCKS_HEALTHY["OVERSMOOTHING"] is Severity.WARNING
    assert BLOCKS_HEALTHY["ATTENTION_UNTRAINED"] is Severity.ERROR
    assert "NO_GRADIENT_PATH" not in BLOCKS_HEALTHY


def test_decide_puts_healthy_first_then_errors_warnings_info():
    nog = Finding("no_gradient", "warning", "m", ("m.weight",), {"module": "m"})
    verdicts = decide(ev(audit=audit(nog), degenerate=("global attention",)))
    assert [(v.code, v.severity) for v in verdicts] == [
        ("HEALTHY", "info"),
        ("NO_GRADIENT_PATH", "warning"),
        ("DEGENERATE_SOFTMAX", "info"),
    ]


def test_non_finite_numbers_give_verdicts_and_strict_json():
    import json

    nan = float("nan")
    e = ev(separation=profile(GCN, [1.0, nan, nan, 0.5, 0.5, nan]), shared_fraction=nan)
    for v in decide(e) + decide(alike(closest_group_jsd=nan, attention_jsd=nan)):
        json.dumps(v.to_json(), allow_nan=False)


def test_the_symptom_cannot_be_asked_without_the_attention():
    # Numbers that would read as the symptom are ignored once there is no FGA block.
    assert symptom(ev(has_fga=False, closest_group_jsd=0.0, same_word_pair_count=3)) is None
    assert symptom(ev(closest_group_jsd=0.0)) is True
    assert symptom(ev(closest_group_jsd=None, same_word_pair_count=3)) is None
    assert symptom(ev(closest_group_jsd=DISTINCT_JSD_BITS)) is False
    assert symptom(ev(closest_group_jsd=DISTINCT_JSD_BITS, same_word_pair_count=1)) is True


# --- SYMMETRY_EQUIVALENT -----------------------------------------------------------------------


def test_symmetry_equivalent_fires_for_a_multi_atom_orbit_only():
    e = ev(
        labels=("Ba_0", "Ba_1", "Hf_2", "Li_3"),
        orbits=[[0, 1], [2], [3]],
        num_atoms=4,
        within_orbit_max_dev=1e-6,
    )
    v = one(symmetry_equivalent(e))
    assert v.severity is Severity.INFO
    assert v.evidence["orbits"] == [[0, 1], [2], [3]]
    assert "{Ba_0, Ba_1} are symmetry-equivalent" in v.message
    assert symmetry_equivalent(ev()) == []


def test_one_orbit_and_one_element_cells_cannot_show_differences():
    v = one(symmetry_equivalent(ev(orbits=[[0, 1, 2]], group_names=("Si",), num_atoms=3)))
    assert "cannot show attention differences" in v.message
    v = one(symmetry_equivalent(ev(group_names=("Si",), labels=("Si_0", "Si_1", "Si_2"))))
    assert "the input does not tell them apart" in v.message


def test_graph_that_breaks_an_orbit_is_named():
    e = ev(
        labels=("Ba_0", "Ba_1", "Li_2"),
        orbits=[[0, 1], [2]],
        broken_orbits=[([0, 1], [19, 20])],
        within_orbit_max_dev=0.03,
    )
    v = one(symmetry_equivalent(e))
    assert v.evidence["graph_breaks_symmetry"] == [{"atoms": [0, 1], "in_degree": [19, 20]}]
    assert "Ba_0, Ba_1 have 19/20 bonds" in v.message


# --- FGA_MISSING -------------------------------------------------------------------------------


def test_fga_missing_warns_for_multimodal_and_informs_for_text_free():
    assert one(fga_missing(ev(has_fga=False))).severity is Severity.WARNING
    assert one(fga_missing(ev(has_fga=False, multimodal=False))).severity is Severity.INFO
    assert fga_missing(ev()) == []


# --- FEATURE_COLLAPSE --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "fires"),
    [(0.999 * COLLAPSE_SEPARATION, True), (COLLAPSE_SEPARATION, False)],
)
def test_feature_collapse_boundary_and_first_stage_of_the_final_stretch(last, fires):
    sep = profile(GCN, [1.0, 0.5, 1e-4, 0.5, 1e-4, last])  # gcn.0 dips and recovers
    found = feature_collapse(ev(separation=sep))
    if not fires:
        assert found == []
        return
    v = one(found)
    assert (v.severity, v.evidence["stage"]) == (Severity.ERROR, "gcn.2")


# --- FUSION_HOMOGENIZES ------------------------------------------------------------------------


def fusion_ev(after: float, final: float, probe: Probe | None = None, **kw) -> Evidence:
    sep = profile(FUSION, [1.0, 1.0, after, final, final])
    return ev(
        stages=FUSION,
        separation=sep,
        fga_input_stage="gcn.0",
        probes=() if probe is None else (probe,),
        fusion_gates={"fusion.0": 0.98},
        **kw,
    )


@pytest.mark.parametrize(
    ("after", "fires"), [(0.0999, True), (DROP_FACTOR * 1.0, False)], ids=["drop", "no-drop"]
)
def test_fusion_drop_boundary_with_a_restoring_probe(after, fires):
    probe = Probe("no-fusion", separation_at_fga_input=0.9, closest_group_jsd=0.3)
    found = fusion_homogenizes(fusion_ev(after, 0.05, probe))
    if not fires:
        assert found == []
        return
    v = one(found)
    assert (v.severity, v.evidence["stage"]) == (Severity.ERROR, "fusion.0")
    assert v.evidence["mean_gate"] == 0.98
    assert v.evidence["ablation"]["separation_at_fga_input"] == 0.9


@pytest.mark.parametrize(("restored", "fires"), [(0.5001, True), (0.5, False)])
def test_fusion_needs_the_probe_to_restore_ten_times_the_final_separation(restored, fires):
    probe = Probe("no-fusion", separation_at_fga_input=restored, closest_group_jsd=0.3)
    found = fusion_homogenizes(fusion_ev(0.05, 0.05, probe))  # final 0.05 -> need > 0.5
    assert bool(found) is fires


@pytest.mark.parametrize(
    ("after", "fires"), [(0.999 * COLLAPSE_SEPARATION, True), (COLLAPSE_SEPARATION, False)]
)
def test_fusion_without_a_probe_fires_only_on_a_collapsed_output(after, fires):
    assert bool(fusion_homogenizes(fusion_ev(after, after))) is fires


@pytest.mark.parametrize(("keep", "fires"), [(0.3333, True), (0.3334, False)])
def test_fusion_stages_losing_together_are_one_verdict_at_the_worst(keep, fires):
    # Two fusion stages: 0.3333 * 0.3 = 0.09999 < 0.1 <= 0.3334 * 0.3 = 0.10002.
    stages = ("embed", "alignn.0", "fusion.0", "alignn.1", "fusion.1", "gcn.0", "fga")
    sep = dict(zip(stages[:-1], chain(1.0, [1.0, keep, 1.0, 0.3, 1.0]), strict=True))
    probe = Probe("no-fusion", separation_at_fga_input=2.0, closest_group_jsd=0.3)
    e = ev(stages=stages, separation=sep, fga_input_stage="gcn.0", probes=(probe,))
    found = fusion_homogenizes(e)
    assert bool(found) is fires
    if fires:
        v = one(found)
        assert v.evidence["stage"] == "fusion.1"  # the stage that loses the most
        assert v.evidence["fusion_keep"] == pytest.approx(0.3333 * 0.3, rel=1e-3)


def test_fusion_is_not_the_cause_when_atoms_read_alike_without_it():
    persists = Probe(
        "no-fusion",
        separation_at_fga_input=0.9,
        closest_group_jsd=0.3,
        same_word_pairs=(("Ba_0", "Li_2"),),
        same_word_pair_count=1,
    )
    v = one(fusion_homogenizes(fusion_ev(0.05, 0.05, persists)))
    assert v.severity is Severity.WARNING
    assert "fusion is not the cause" in v.message and "Ba_0 = Li_2" in v.message
    assert v.evidence["ablation"]["symptom_persists"] is True
    # A collapsed fusion output stays an error: identical features are a defect anyway.
    v = one(fusion_homogenizes(fusion_ev(1e-5, 1e-5, persists)))
    assert v.severity is Severity.ERROR and "not the only cause" in v.message


# --- OVERSMOOTHING -----------------------------------------------------------------------------


def gcn_ev(ratios, alignn: float = 1.0, **kw) -> Evidence:
    return ev(separation=profile(GCN, [1.0, *chain(alignn, ratios)]), **kw)


def test_every_gcn_layer_losing_a_third_is_oversmoothing_on_the_layer_that_crosses():
    v = one(oversmoothing(gcn_ev([0.67] * 4)))  # 5x over four layers, nothing collapsed
    assert v.severity is Severity.WARNING
    assert v.evidence["stage"] == "gcn.3"  # 0.67^3 = 0.30 > 0.25 > 0.67^4 = 0.20
    assert v.evidence["decline_from"] == "gcn.0"
    assert v.evidence["peak_stage"] == "alignn.0"
    assert v.evidence["layers_keep"] == pytest.approx(0.67**4, rel=1e-3)


@pytest.mark.parametrize(("ratio", "fires"), [(0.7070, True), (0.7072, False)])
def test_trend_keep_boundary(ratio, fires):
    # 0.7070^4 = 0.24986 < TREND_KEEP = 0.25 < 0.7072^4 = 0.25014
    assert TREND_KEEP == 0.25
    assert bool(oversmoothing(gcn_ev([ratio] * 4))) is fires


@pytest.mark.parametrize(("second", "fires"), [(0.8999, True), (LAYER_SHRINK, False)])
def test_a_trend_needs_two_layers_that_each_shrink_by_a_tenth(second, fires):
    # gcn.0 keeps 1/4, gcn.1 `second` (exactly 0.9 in floats: its input is 1.0), then 0.95
    # twice: together 0.25 * 0.9 * 0.95^2 = 0.203 < 0.25 either way; only the count differs.
    sep = profile(GCN, [4.0, 4.0, *chain(1.0, [second, 0.95, 0.95])])
    found = oversmoothing(ev(separation=sep))
    assert bool(found) is fires
    if fires:  # 1.0, 0.9, 0.855, 0.812 against alignn.0's 4.0: below a quarter from gcn.1
        assert one(found).evidence["stage"] == "gcn.1"


def test_a_layer_that_restores_separation_breaks_the_trend():
    # Two declines of 0.36 each, 0.13 end to end: not *consistent* shrinking.
    e = ev(
        stages=("embed", "gcn.0", "gcn.1", "gcn.2", "gcn.3", "gcn.4", "fga"),
        separation={
            "embed": 1.0,
            **dict(
                zip(
                    ["gcn.0", "gcn.1", "gcn.2", "gcn.3", "gcn.4"],
                    chain(0.6, [0.6, 1.01, 0.6, 0.6]),
                    strict=True,
                )
            ),
        },
        fga_input_stage="gcn.4",
    )
    assert oversmoothing(e) == []


def test_separation_recovered_before_the_attention_is_not_oversmoothing():
    assert oversmoothing(gcn_ev([0.5, 0.5, 0.5, 3.0])) == []  # ends at 0.375 of its start


def test_collapsed_attention_input_after_a_decline_is_an_error_at_the_collapse_crossing():
    v = one(oversmoothing(gcn_ev([0.1, 0.1, 0.05, 0.9])))  # 0.1, 0.01, 5e-4, 4.5e-4
    assert v.severity is Severity.ERROR
    assert v.evidence["stage"] == "gcn.2"
    assert v.evidence["decline_from"] == "gcn.0"


def test_fusion_stages_neither_count_nor_break_a_run():
    stages = ("embed", "alignn.0", "fusion.0", "alignn.1", "gcn.0", "fga")
    sep = dict(zip(stages[:-1], [1.0, 0.6, 0.6, 0.36, 0.216], strict=True))
    trend = smoothing_trend(ev(stages=stages, separation=sep, fga_input_stage="gcn.0"))
    assert trend is not None
    assert trend.layers == ("alignn.0", "alignn.1", "gcn.0")
    assert (trend.start, trend.stage) == ("embed", "gcn.0")


def test_noise_below_the_collapse_level_is_not_a_trend():
    # Fusion collapsed the atoms; later layers wobble at 1e-6 (float noise).
    sep = profile(FUSION, [1.0, 1.0, 1e-6, 5e-7, 2e-7])
    assert smoothing_trend(ev(stages=FUSION, separation=sep, fga_input_stage="gcn.0")) is None


def test_a_stage_set_by_an_intervention_is_not_blamed_on_the_layers():
    # Hf_1 patched with Ba_0's features at gcn.1: identical from there on.
    sep = profile(GCN, [1.0, 0.8, 0.7, 0.0, 0.0, 0.0])
    assert one(oversmoothing(ev(separation=sep))).severity is Severity.ERROR
    patched = ev(separation=sep, intervention=("patch=gcn.1:Hf_1<-Ba_0",))
    assert oversmoothing(patched) == []
    v = one(feature_collapse(patched))
    assert v.evidence["stage"] == "gcn.1"
    assert v.evidence["set_by_intervention"] == ["patch=gcn.1:Hf_1<-Ba_0"]
    assert "The intervention patch=gcn.1:Hf_1<-Ba_0 sets these features." in v.message
    assert one(feature_collapse(ev(separation=sep))).evidence["set_by_intervention"] == []


def test_oversmoothing_cites_the_fga_from_probe():
    probe = Probe("fga-from=alignn.0", closest_group_jsd=0.3)
    v = one(oversmoothing(gcn_ev([0.67] * 4, probes=(probe,))))
    assert "Read from alignn.0, the atoms read different words" in v.message
    assert v.evidence["ablation"]["fga_from"] == "alignn.0"
    assert v.evidence["ablation"]["symptom_persists"] is False


# --- ATTENTION_UNTRAINED -----------------------------------------------------------------------


def test_untrained_atom_to_text_is_an_error_and_text_to_atom_a_warning():
    a2t = Finding("unchanged", "error", "x", ("fine_grained_attention.a2t_query.weight",), {})
    t2a = Finding("looks_untrained", "warning", "x", ("fine_grained_attention.t2a_key.weight",), {})
    found = attention_untrained(ev(audit=audit(a2t, t2a)))
    assert [(v.severity, v.evidence["branch"], v.evidence["stage"]) for v in found] == [
        (Severity.ERROR, "atom_to_text", "fga"),
        (Severity.WARNING, "text_to_atom", "fga"),
    ]
    other = Finding("unchanged", "error", "x", ("gcn_layers.0.src_gate.weight",), {})
    assert attention_untrained(ev(audit=audit(other))) == []
    assert attention_untrained(ev(audit=audit(a2t), has_fga=False)) == []


# --- SHARED_QUERY_DOMINATES --------------------------------------------------------------------


def alike(**kw) -> Evidence:
    """Ba_0 and Li_2 read the same top words; their features differ."""
    base = dict(same_word_pairs=[("Ba_0", "Li_2")], same_word_pair_count=1, shared_fraction=0.9)
    base.update(kw)
    return ev(**base)


@pytest.mark.parametrize(
    ("fraction", "fires"), [(0.5001, True), (SHARED_DOMINATES_FRACTION, False)]
)
def test_shared_fraction_boundary(fraction, fires):
    found = shared_query_dominates(alike(shared_fraction=fraction))
    assert bool(found) is fires
    if fires:
        v = one(found)
        assert (v.severity, v.evidence["stage"]) == (Severity.ERROR, "fga")
        assert v.evidence["same_top_word_pairs"] == [["Ba_0", "Li_2"]]
        assert "Ba_0 = Li_2" in v.message


@pytest.mark.parametrize(("jsd", "fires"), [(0.0499, True), (DISTINCT_JSD_BITS, False)])
def test_attention_alike_without_shared_words_is_the_symptom_too(jsd, fires):
    e = ev(shared_fraction=0.9, closest_group_jsd=jsd)
    assert bool(shared_query_dominates(e)) is fires


@pytest.mark.parametrize(
    ("final", "fires"), [(COLLAPSE_SEPARATION, True), (0.999 * COLLAPSE_SEPARATION, False)]
)
def test_shared_query_needs_distinct_features(final, fires):
    e = alike(separation=profile(GCN, [1.0, 0.9, 0.5, 0.1, 0.01, final]))
    assert bool(shared_query_dominates(e)) is fires


@pytest.mark.parametrize(("distinct", "fires"), [(1, True), (0, False)])
def test_a_patched_pair_does_not_hide_other_pairs_reading_alike(distinct, fires):
    # One pair made identical (separation 0), another reading alike with distinct features.
    e = alike(
        separation=profile(GCN, [1.0, 0.9, 0.9, 0.9, 0.9, 0.0]),
        same_word_pairs=[("Ba_0", "Hf_1"), ("Ba_0", "Li_2")],
        same_word_pair_count=2,
        same_word_distinct_count=distinct,
    )
    found = shared_query_dominates(e)
    assert bool(found) is fires
    if fires:
        assert "1 of the pairs below have distinct features" in one(found).message


def test_shared_query_is_not_blamed_on_an_untrained_query():
    a2t = Finding("unchanged", "error", "x", ("fine_grained_attention.a2t_key.weight",), {})
    assert shared_query_dominates(alike(audit=audit(a2t))) == []


# --- NO_GRADIENT_PATH / DEGENERATE_SOFTMAX -----------------------------------------------------


def test_no_gradient_path_lists_modules():
    f = Finding("zero_gradient", "warning", "x", ("m.weight",), {"module": "cross.g2t_query"})
    v = one(no_gradient_path(ev(audit=audit(f))))
    assert (v.severity, v.evidence["modules"]) == (Severity.WARNING, ["cross.g2t_query"])
    assert no_gradient_path(ev(audit=audit())) == []


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (1, "1 module gets no (or exactly zero) gradient by construction: m0."),
        (2, "2 modules get no (or exactly zero) gradient by construction: m0, m1."),
        (5, "5 modules get no (or exactly zero) gradient by construction: m0, m1, m2, m3, m4."),
        (6, "6 modules get no (or exactly zero) gradient by construction: m0, m1, m2, m3, m4 ...."),
    ],
)
def test_no_gradient_path_message_counts_and_lists_five_at_most(count, message):
    found = [Finding("no_gradient", "warning", "x", (), {"module": f"m{i}"}) for i in range(count)]
    v = one(no_gradient_path(ev(audit=audit(*found))))
    assert v.message == message
    assert v.evidence["modules"] == [f"m{i}" for i in range(count)]


def test_degenerate_softmax_one_info_each():
    found = degenerate_softmax(ev(degenerate=("a", "b")))
    assert [(v.severity, v.evidence["weights"]) for v in found] == [
        (Severity.INFO, "a"),
        (Severity.INFO, "b"),
    ]


# --- HEALTHY and the symptom without a cause ---------------------------------------------------


@pytest.mark.parametrize(("jsd", "healthy_"), [(DISTINCT_JSD_BITS, True), (0.0499, False)])
def test_healthy_needs_materially_different_attention(jsd, healthy_):
    v = one(healthy(ev(closest_group_jsd=jsd, shared_fraction=0.1)))
    if healthy_:
        assert (v.code, v.severity, v.evidence["stage"]) == ("HEALTHY", Severity.INFO, "fga")
        assert v.evidence["closest_groups"] == ["Ba", "Li"]
    else:
        assert v.code != "HEALTHY" and v.severity is Severity.WARNING
        assert "Ba and Li atoms attend almost alike" in v.message


def test_one_pair_reading_the_same_words_is_never_healthy():
    v = one(decide(alike(shared_fraction=0.1, closest_group_jsd=0.4))[:1])
    assert v.code == "SHARED_QUERY_DOMINATES" and v.severity is Severity.WARNING
    assert v.evidence["below_threshold"] is True
    assert "HEALTHY" not in [x.code for x in decide(alike(shared_fraction=0.1))]


def test_symptom_without_cause_goes_to_the_largest_contributor():
    # Layers remove 1 - 0.8^4 = 59 % of the separation; the shared part holds 30 %.
    smooth = alike(shared_fraction=0.3, separation=profile(GCN, [1.0, *chain(1.0, [0.8] * 4)]))
    v = one(healthy(smooth))
    assert (v.code, v.severity) == ("OVERSMOOTHING", Severity.WARNING)
    assert v.evidence["stage"] == "gcn.3"
    assert v.evidence["contributions"]["smoothing"] == pytest.approx(1 - 0.8**4, rel=1e-3)
    # Reading from before the layers does not help: the layers are ruled out.
    probe = Probe(
        "fga-from=alignn.0",
        same_word_pairs=(("Ba_0", "Li_2"),),
        same_word_pair_count=1,
        closest_group_jsd=0.3,
    )
    v = one(healthy(alike(shared_fraction=0.3, separation=smooth.separation, probes=(probe,))))
    assert (v.code, v.evidence["stage"]) == ("SHARED_QUERY_DOMINATES", "fga")
    assert v.evidence["excluded_by_probe"] == ["smoothing"]


def test_symptom_with_no_contributor_at_all_goes_to_the_attention():
    flat = profile(GCN, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])  # no layer loses anything
    v = one(healthy(alike(shared_fraction=None, separation=flat)))
    assert (v.code, v.severity, v.evidence["stage"]) == (
        "SHARED_QUERY_DOMINATES",
        Severity.WARNING,
        "fga",
    )
    assert v.evidence["contributions"] == {"shared_query": None, "smoothing": 0.0, "fusion": 0.0}
    assert "with no other lead" in v.message


def test_symptom_without_cause_can_point_at_fusion():
    sep = profile(FUSION, [1.0, 1.0, 0.3, 0.3, 0.3])  # fusion keeps 30 %: no 10x drop
    e = alike(stages=FUSION, separation=sep, fga_input_stage="gcn.0", shared_fraction=0.2)
    v = one(healthy(e))
    assert (v.code, v.severity) == ("FUSION_HOMOGENIZES", Severity.WARNING)
    persists = Probe(
        "no-fusion",
        same_word_pairs=(("Ba_0", "Li_2"),),
        same_word_pair_count=1,
        closest_group_jsd=0.3,
    )
    e = alike(
        stages=FUSION,
        separation=sep,
        fga_input_stage="gcn.0",
        shared_fraction=0.2,
        probes=(persists,),
    )
    assert one(healthy(e)).code == "SHARED_QUERY_DOMINATES"


def test_a_problem_verdict_blocks_healthy_and_the_fallback():
    blocker = Verdict("OVERSMOOTHING", Severity.WARNING, "x", {"stage": "gcn.3"})
    assert healthy(alike(), (blocker,)) == []
    assert healthy(ev(), (blocker,)) == []
    info = Verdict("SYMMETRY_EQUIVALENT", Severity.INFO, "x")
    assert one(healthy(ev(), (info,))).code == "HEALTHY"


def test_no_healthy_when_the_question_cannot_be_asked():
    assert healthy(ev(closest_group_jsd=None, closest_groups=None)) == []


def test_text_free_model_is_healthy_on_distinct_features():
    v = one(healthy(ev(has_fga=False, multimodal=False, fga_input_stage=None)))
    assert v.code == "HEALTHY"
    assert v.evidence["separation_at_final"] == 0.9


def test_uniform_attention_under_no_text_is_by_construction_not_a_finding():
    e = alike(uniform_attention=True, intervention=("no-text",))
    v = one(degenerate_softmax(e))
    assert (v.severity, v.evidence["weights"]) == (Severity.INFO, "atom_to_text (no-text)")
    assert healthy(e) == []
    # Uniform without no-text (flat logits in the checkpoint) stays a finding.
    assert degenerate_softmax(alike(uniform_attention=True)) == []
    assert one(healthy(alike(uniform_attention=True))).severity is Severity.WARNING
    assert one(healthy(alike(intervention=("no-text",)))).severity is Severity.WARNING


def test_healthy_names_atoms_that_read_only_special_tokens():
    v = one(healthy(ev(special_only=("Ba_0",))))
    assert v.evidence["special_token_atoms"] == ["Ba_0"]
    assert "Ba_0 attend almost only to special tokens" in v.message


# --- against the model as trained --------------------------------------------------------------


def V(code, severity, stage=None, **evidence) -> Verdict:
    if stage is not None:
        evidence["stage"] = stage
    return Verdict(code, Severity.of(severity), code.lower(), evidence)


def test_verdicts_persist_appear_or_resolve_against_the_baseline():
    baseline = [
        V("FUSION_HOMOGENIZES", "error", "fusion.2"),
        V("SHARED_QUERY_DOMINATES", "error", "fga"),
        V("ATTENTION_UNTRAINED", "error", "fga", branch="atom_to_text"),
        V("ATTENTION_UNTRAINED", "warning", "fga", branch="text_to_atom"),
        V("OVERSMOOTHING", "warning", "gcn.3"),
        V("DEGENERATE_SOFTMAX", "info"),
    ]
    current = [
        V("SHARED_QUERY_DOMINATES", "error", "fga"),
        V("ATTENTION_UNTRAINED", "warning", "fga", branch="text_to_atom"),
        V("OVERSMOOTHING", "warning", "gcn.1"),
        V("FEATURE_COLLAPSE", "error", "gcn.2"),
    ]
    marked, resolved = compare_with_baseline(current, baseline)
    assert [(v.code, v.vs_baseline) for v in marked] == [
        ("SHARED_QUERY_DOMINATES", "persists"),
        ("ATTENTION_UNTRAINED", "persists"),
        ("OVERSMOOTHING", "persists"),
        ("FEATURE_COLLAPSE", "new"),
    ]
    assert marked[1].evidence["branch"] == "text_to_atom"
    assert marked[2].evidence["baseline_stage"] == "gcn.3"
    assert "baseline_stage" not in marked[0].evidence
    # Only problems resolve; the info verdict that vanished is not news.
    assert [(v.code, v.evidence.get("branch"), v.vs_baseline) for v in resolved] == [
        ("FUSION_HOMOGENIZES", None, "resolved"),
        ("ATTENTION_UNTRAINED", "atom_to_text", "resolved"),
    ]
    assert marked[0].to_json()["vs_baseline"] == "persists"
    assert "vs_baseline" not in current[0].to_json()
    assert all("symptom_persists" not in v.evidence for v in resolved)


@pytest.mark.parametrize("persists", [True, False])
def test_a_vanished_cause_says_whether_atoms_still_read_alike(persists):
    baseline = [V("SHARED_QUERY_DOMINATES", "error", "fga"), V("NO_GRADIENT_PATH", "warning")]
    current = [V("FEATURE_COLLAPSE", "error", "gcn.0")]
    _, resolved = compare_with_baseline(current, baseline, symptom_persists=persists)
    assert [(v.code, v.evidence.get("symptom_persists")) for v in resolved] == [
        ("SHARED_QUERY_DOMINATES", persists),
        ("NO_GRADIENT_PATH", None),  # not about the symptom
    ]
