"""What each verdict rule tells the user, word for word: code, severity, message, evidence and
remedy for one canonical case per rule and branch.

The rule tests (test_verdict_rules.py) pin when a rule fires and which stage it names; these pin
what the verdict then says, so a changed message, a dropped evidence field or a wrong number
fails here. An intended change of wording is edited into EXPECTED by hand, read as a diff.
"""

from __future__ import annotations

import pytest
from test_verdict_rules import GCN, alike, audit, chain, ev, fusion_ev, gcn_ev, profile

from fga_tui.diagnostics import rules as R
from fga_tui.diagnostics.audit import Finding
from fga_tui.diagnostics.evidence import Probe
from fga_tui.diagnostics.verdict import decide

A2T_NAMES = [
    f"fine_grained_attention.a2t_{p}.{w}" for p in ("query", "key") for w in ("weight", "bias")
]
A2T = Finding("unchanged", "error", "x", (*A2T_NAMES, "fine_grained_attention.a2t_query.extra"), {})
T2A = Finding(
    "looks_untrained",
    "warning",
    "x",
    ("fine_grained_attention.t2a_value.weight", "fine_grained_attention.token_output.weight"),
    {},
)
NOG = Finding("zero_gradient", "warning", "x", ("m.weight",), {"module": "cross.g2t_query"})
PERSISTS = Probe(
    "no-fusion",
    separation_at_fga_input=0.9,
    closest_group_jsd=0.3,
    same_word_pairs=(("Ba_0", "Li_2"),),
    same_word_pair_count=1,
)
TWO_FUSIONS = ("embed", "alignn.0", "fusion.0", "alignn.1", "fusion.1", "gcn.0", "fga")
ALIKE_FROM = Probe(
    "fga-from=gcn.0",
    separation_at_fga_input=0.5,
    attention_jsd=0.01,
    closest_group_jsd=0.01,
    closest_groups=("Ba", "Hf"),
)
READS_ALIKE = Probe(
    "fga-from=alignn.0",
    same_word_pairs=(("Ba_0", "Li_2"),),
    same_word_pair_count=1,
    closest_group_jsd=0.3,
)
THREE_FUSIONS = ("embed", "alignn.0", "fusion.0", "fusion.1", "fusion.2", "alignn.1", "fga")
COLLAPSED = profile(GCN, [1.0, 0.5, 0.2, 1e-4, 1e-5, 2e-5])

CASES = {
    "symmetry_one_orbit": lambda: R.symmetry_equivalent(
        ev(orbits=[[0, 1, 2]], group_names=("Si",), labels=("Si_0", "Si_1", "Si_2"))
    ),
    "symmetry_one_element": lambda: R.symmetry_equivalent(
        ev(group_names=("Si",), labels=("Si_0", "Si_1", "Si_2"))
    ),
    "symmetry_broken": lambda: R.symmetry_equivalent(
        ev(
            labels=("Ba_0", "Ba_1", "Li_2"),
            orbits=[[0, 1], [2]],
            group_names=("Ba", "Li"),
            broken_orbits=[([0, 1], [19, 20])],
            within_orbit_max_dev=0.0312,
        )
    ),
    "fga_missing": lambda: (
        R.fga_missing(ev(has_fga=False)) + R.fga_missing(ev(has_fga=False, multimodal=False))
    ),
    "feature_collapse_set_by": lambda: R.feature_collapse(
        ev(separation=COLLAPSED, intervention=("mean-ablate=gcn.1", "no-fusion"))
    ),
    "fusion": lambda: R.fusion_homogenizes(
        fusion_ev(
            0.05,
            0.05,
            Probe(
                "no-fusion", separation_at_fga_input=0.9, attention_jsd=0.27, closest_group_jsd=0.3
            ),
        )
    ),
    "oversmoothing": lambda: R.oversmoothing(
        gcn_ev(
            [0.67] * 4,
            probes=(
                Probe(
                    "fga-from=alignn.0",
                    separation_at_fga_input=0.95,
                    attention_jsd=0.26,
                    closest_group_jsd=0.25,
                ),
            ),
        )
    ),
    "attention_untrained": lambda: R.attention_untrained(ev(audit=audit(A2T, T2A))),
    "shared_query": lambda: R.shared_query_dominates(alike(shared_fraction=0.9)),
    "no_gradient": lambda: R.no_gradient_path(ev(audit=audit(NOG))),
    "degenerate": lambda: R.degenerate_softmax(
        ev(degenerate=("global attention",), uniform_attention=True, intervention=("no-text",))
    ),
    "healthy": lambda: R.healthy(
        ev(
            closest_group_jsd=0.2,
            attention_jsd=0.31,
            special_only=("Ba_0", "Hf_1", "Li_2", "Li_3", "Li_4"),
        )
    ),
    "healthy_text_free": lambda: R.healthy(ev(has_fga=False, multimodal=False)),
    "symptom_without_cause": lambda: R.healthy(
        alike(shared_fraction=0.3, separation=profile(GCN, [1.0, *chain(1.0, [0.8] * 4)]))
    ),
    "fusion_persists": lambda: R.fusion_homogenizes(fusion_ev(0.05, 0.05, PERSISTS)),
    "oversmoothing_collapsed": lambda: R.oversmoothing(gcn_ev([0.1, 0.1, 0.05, 0.9])),
    "shared_query_below": lambda: decide(alike(shared_fraction=0.1, closest_group_jsd=0.4))[:1],
    "fusion_two_stages_no_probe": lambda: R.fusion_homogenizes(
        ev(
            stages=TWO_FUSIONS,
            separation=dict(zip(TWO_FUSIONS[:-1], [1.0, 1.0, 0.1, 0.1, 1e-4, 1e-4], strict=True)),
            fga_input_stage="gcn.0",
        )
    ),
    "oversmoothing_probe_alike": lambda: R.oversmoothing(gcn_ev([0.67] * 4, probes=(ALIKE_FROM,))),
    "symptom_no_lead": lambda: R.healthy(
        alike(shared_fraction=None, separation=profile(GCN, [1.0] * 6))
    ),
    "symptom_smoothing_excluded": lambda: R.healthy(
        alike(
            shared_fraction=0.3,
            separation=profile(GCN, [1.0, *chain(1.0, [0.8] * 4)]),
            probes=(READS_ALIKE,),
        )
    ),
    "shared_query_more_pairs": lambda: R.shared_query_dominates(
        alike(
            same_word_pairs=[
                ("Ba_0", "Li_2"),
                ("Ba_0", "Hf_1"),
                ("Hf_1", "Li_2"),
                ("Li_2", "Ba_0"),
            ],
            same_word_pair_count=4,
        )
    ),
    "symptom_by_attention_unnamed": lambda: R.healthy(
        ev(closest_groups=None, closest_group_jsd=0.01, shared_fraction=0.2)
    ),
    "healthy_unmeasured": lambda: R.healthy(
        ev(closest_groups=None, attention_jsd=None, separation=profile(GCN, [1.0] * 5 + [None]))
    ),
    "feature_collapse_two_specs": lambda: R.feature_collapse(
        ev(separation=COLLAPSED, intervention=("mean-ablate=gcn.1", "patch=gcn.1:Hf_1<-Ba_0"))
    ),
    "symmetry_two_broken": lambda: R.symmetry_equivalent(
        ev(
            labels=("Ba_0", "Ba_1", "Li_2", "Li_3"),
            orbits=[[0, 1], [2, 3]],
            group_names=("Ba", "Li"),
            num_atoms=4,
            broken_orbits=[([0, 1], [19, 20]), ([2, 3], [12, 14])],
        )
    ),
    "fusion_one_of_three_loses": lambda: R.fusion_homogenizes(
        ev(
            stages=THREE_FUSIONS,
            separation=dict(
                zip(THREE_FUSIONS[:-1], [1.0, 1.0, 1.0, 1.5, 1.5e-4, 1.5e-4], strict=True)
            ),
            fga_input_stage="alignn.1",
        )
    ),
    "decide_blocked": lambda: decide(ev(audit=audit(A2T))),
}

EXPECTED = {
    "symmetry_one_orbit": [
        {
            "code": "SYMMETRY_EQUIVALENT",
            "severity": "info",
            "message": "All 3 atoms are symmetry-equivalent: identical features "
            "and top words are expected, so this sample cannot show "
            "attention differences.",
            "evidence": {
                "orbits": [[0, 1, 2]],
                "input_groups": ["Si"],
                "within_orbit_max_dev": None,
                "graph_breaks_symmetry": [],
            },
        }
    ],
    "symmetry_one_element": [
        {
            "code": "SYMMETRY_EQUIVALENT",
            "severity": "info",
            "message": "All atoms are Si: the input does not tell them apart, "
            "so this sample cannot show whether different atoms "
            "read different words.",
            "evidence": {
                "orbits": [[0], [1], [2]],
                "input_groups": ["Si"],
                "within_orbit_max_dev": None,
                "graph_breaks_symmetry": [],
            },
        }
    ],
    "symmetry_broken": [
        {
            "code": "SYMMETRY_EQUIVALENT",
            "severity": "info",
            "message": "{Ba_0, Ba_1} are symmetry-equivalent: identical features "
            "and top words within each group are expected, not a "
            "collapse. But the crystal graph breaks this symmetry (Ba_0, "
            "Ba_1 have 19/20 bonds: upstream's k-nearest rule cuts a tie "
            "shell by exact float comparison), so their features differ "
            "by up to 0.031.",
            "evidence": {
                "orbits": [[0, 1], [2]],
                "input_groups": ["Ba", "Li"],
                "within_orbit_max_dev": 0.0312,
                "graph_breaks_symmetry": [{"atoms": [0, 1], "in_degree": [19, 20]}],
            },
        }
    ],
    "fga_missing": [
        {
            "code": "FGA_MISSING",
            "severity": "warning",
            "message": "The checkpoint has no fine-grained attention module: there are "
            "no per-atom top words to explain.",
            "evidence": {},
            "remedy": "Remedy 6 (enable fine-grained attention) to get atom-token attention.",
        },
        {
            "code": "FGA_MISSING",
            "severity": "info",
            "message": "Text-free ALIGNN checkpoint: no atom-token attention; only "
            "feature diagnostics apply.",
            "evidence": {},
            "remedy": "Remedy 6 (enable fine-grained attention) to get atom-token attention.",
        },
    ],
    "feature_collapse_set_by": [
        {
            "code": "FEATURE_COLLAPSE",
            "severity": "error",
            "message": "Atoms of different elements (so of different "
            "symmetry orbits) have identical features from gcn.1 "
            "on (separation 0.0001 < 0.001). The intervention "
            "mean-ablate=gcn.1 sets these features.",
            "evidence": {
                "stage": "gcn.1",
                "set_by_intervention": ["mean-ablate=gcn.1"],
                "separation": {
                    "embed": 1.0,
                    "alignn.0": 0.5,
                    "gcn.0": 0.2,
                    "gcn.1": 0.0001,
                    "gcn.2": 1e-05,
                    "gcn.3": 2e-05,
                },
            },
            "remedy": "Find the stage where separation drops; see the cause verdict.",
        }
    ],
    "fusion": [
        {
            "code": "FUSION_HOMOGENIZES",
            "severity": "error",
            "message": "Middle fusion makes atoms alike: at fusion.0 separation 1 -> 0.05; "
            "bypassing it restores 0.9 at gcn.0.",
            "evidence": {
                "stage": "fusion.0",
                "separation_before": 1.0,
                "separation_after": 0.05,
                "fusion_keep": 0.05,
                "fusion_ratios": {"fusion.0": 0.05},
                "mean_gate": 0.98,
                "ablation": {
                    "no_fusion": True,
                    "separation_at_fga_input": 0.9,
                    "attention_cross_orbit_jsd": 0.27,
                    "symptom_persists": False,
                },
            },
            "remedy": "Disable or weaken middle fusion: remedy 1 (no middle fusion); check "
            "with --intervene no-fusion.",
        }
    ],
    "oversmoothing": [
        {
            "code": "OVERSMOOTHING",
            "severity": "warning",
            "message": "Separation shrinks at every layer from gcn.0 to gcn.3 (1 at "
            "alignn.0 -> 0.2 at gcn.3, 20 % kept); atoms become alike from "
            "gcn.3. Read from alignn.0, the atoms read different words.",
            "evidence": {
                "stage": "gcn.3",
                "decline_from": "gcn.0",
                "peak_stage": "alignn.0",
                "layers_keep": 0.2015,
                "kept_at_fga_input": 0.2015,
                "layer_ratios": {"gcn.0": 0.67, "gcn.1": 0.67, "gcn.2": 0.67, "gcn.3": 0.67},
                "separation": {
                    "embed": 1.0,
                    "alignn.0": 1.0,
                    "gcn.0": 0.67,
                    "gcn.1": 0.4489,
                    "gcn.2": 0.3008,
                    "gcn.3": 0.2015,
                },
                "ablation": {
                    "fga_from": "alignn.0",
                    "attention_cross_orbit_jsd": 0.26,
                    "symptom_persists": False,
                },
            },
            "remedy": "Remedy 2 (fewer layers before the attention) (check with "
            "--intervene fga-from=STAGE), or remedy 3 (residuals and "
            "normalisation).",
        }
    ],
    "attention_untrained": [
        {
            "code": "ATTENTION_UNTRAINED",
            "severity": "error",
            "message": "The atom->text attention projections look untrained "
            "(fine_grained_attention.a2t_key.bias, "
            "fine_grained_attention.a2t_key.weight, "
            "fine_grained_attention.a2t_query.bias, "
            "fine_grained_attention.a2t_query.extra): its weights "
            "carry no learned meaning.",
            "evidence": {
                "stage": "fga",
                "branch": "atom_to_text",
                "parameters": [
                    "fine_grained_attention.a2t_key.bias",
                    "fine_grained_attention.a2t_key.weight",
                    "fine_grained_attention.a2t_query.bias",
                    "fine_grained_attention.a2t_query.extra",
                    "fine_grained_attention.a2t_query.weight",
                ],
            },
            "remedy": "Remedy 5 (train the attention block): check it is in the "
            "optimiser and the loss.",
        },
        {
            "code": "ATTENTION_UNTRAINED",
            "severity": "warning",
            "message": "The text->atom branch of the fine-grained attention "
            "never trained (2 tensors): do not interpret "
            "text_to_atom weights.",
            "evidence": {
                "stage": "fga",
                "branch": "text_to_atom",
                "parameters": [
                    "fine_grained_attention.t2a_value.weight",
                    "fine_grained_attention.token_output.weight",
                ],
            },
            "remedy": "Remedy 5 (train the attention block): check it is in the "
            "optimiser and the loss.",
        },
    ],
    "shared_query": [
        {
            "code": "SHARED_QUERY_DOMINATES",
            "severity": "error",
            "message": "Atoms differ at gcn.3 (separation 0.9) but atoms of different "
            "elements read the same top words (Ba_0 = Li_2): the query part "
            "shared by all atoms carries 90% of the logit variance.",
            "evidence": {
                "stage": "fga",
                "shared_fraction": 0.9,
                "attention_cross_orbit_jsd": 0.3,
                "separation_at_fga_input": 0.9,
                "same_top_word_pairs": [["Ba_0", "Li_2"]],
                "same_top_word_pair_count": 1,
                "closest_groups": ["Ba", "Li"],
                "closest_group_jsd": 0.2,
            },
            "remedy": "Retrain: remedy 4 (attention-diversity training) "
            "(fga_tui.training) so queries use atom-specific directions.",
        }
    ],
    "no_gradient": [
        {
            "code": "NO_GRADIENT_PATH",
            "severity": "warning",
            "message": "1 module gets no (or exactly zero) gradient by construction: "
            "cross.g2t_query.",
            "evidence": {"modules": ["cross.g2t_query"]},
            "remedy": "Do not interpret these weights; connect their output to the loss.",
        }
    ],
    "degenerate": [
        {
            "code": "DEGENERATE_SOFTMAX",
            "severity": "info",
            "message": "global attention is a softmax over one element: identically 1.0 "
            "by construction.",
            "evidence": {"weights": "global attention"},
            "remedy": "Constant by construction; ignore these weights.",
        },
        {
            "code": "DEGENERATE_SOFTMAX",
            "severity": "info",
            "message": "Under no-text every token looks the same to the attention, so "
            "atom->text attention is uniform by construction: identical words "
            "for every atom are expected here, not a finding.",
            "evidence": {"stage": "fga", "weights": "atom_to_text (no-text)"},
            "remedy": "Constant by construction; ignore these weights.",
        },
    ],
    "healthy": [
        {
            "code": "HEALTHY",
            "severity": "info",
            "message": "Atoms of different elements read different words and attend "
            "differently (closest: Ba vs Li, JSD 0.2 >= 0.05 bits; cross-orbit "
            "mean 0.31); their features stay distinct (separation 0.9 at gcn.3). "
            "Ba_0, Hf_1, Li_2, Li_3 attend almost only to special tokens "
            "([CLS]/[SEP]), so their top words carry no weight.",
            "evidence": {
                "stage": "fga",
                "attention_cross_orbit_jsd": 0.31,
                "closest_groups": ["Ba", "Li"],
                "closest_group_jsd": 0.2,
                "separation_at_fga_input": 0.9,
                "special_token_atoms": ["Ba_0", "Hf_1", "Li_2", "Li_3", "Li_4"],
            },
        }
    ],
    "healthy_text_free": [
        {
            "code": "HEALTHY",
            "severity": "info",
            "message": "Features of different elements stay distinct (separation 0.9 at gcn.3).",
            "evidence": {"separation_at_final": 0.9},
        }
    ],
    "symptom_without_cause": [
        {
            "code": "OVERSMOOTHING",
            "severity": "warning",
            "message": "Atoms of different elements read the same top words "
            "(Ba_0 = Li_2), but no cause reaches its threshold "
            "(shared query part 30 % of the logit variance; layers "
            "remove 59 % of the separation; fusion removes 0 %). "
            "Filed under OVERSMOOTHING, the largest contributor.",
            "evidence": {
                "stage": "gcn.3",
                "below_threshold": True,
                "contributions": {"shared_query": 0.3, "smoothing": 0.5904, "fusion": 0.0},
                "excluded_by_probe": [],
                "attention_cross_orbit_jsd": 0.3,
                "separation_at_fga_input": 0.4096,
                "same_top_word_pairs": [["Ba_0", "Li_2"]],
                "same_top_word_pair_count": 1,
                "closest_groups": ["Ba", "Li"],
                "closest_group_jsd": 0.2,
            },
            "remedy": "Remedy 2 (fewer layers before the attention) (check "
            "with --intervene fga-from=STAGE), or remedy 3 "
            "(residuals and normalisation).",
        }
    ],
    "fusion_persists": [
        {
            "code": "FUSION_HOMOGENIZES",
            "severity": "warning",
            "message": "Middle fusion makes atoms alike: at fusion.0 separation 1 "
            "-> 0.05; bypassing it restores 0.9 at gcn.0. But fusion is "
            "not the cause of the shared words: with no-fusion, atoms of "
            "different elements read the same top words (Ba_0 = Li_2).",
            "evidence": {
                "stage": "fusion.0",
                "separation_before": 1.0,
                "separation_after": 0.05,
                "fusion_keep": 0.05,
                "fusion_ratios": {"fusion.0": 0.05},
                "mean_gate": 0.98,
                "ablation": {
                    "no_fusion": True,
                    "separation_at_fga_input": 0.9,
                    "attention_cross_orbit_jsd": None,
                    "symptom_persists": True,
                },
            },
            "remedy": "Disable or weaken middle fusion: remedy 1 (no middle "
            "fusion); check with --intervene no-fusion.",
        }
    ],
    "oversmoothing_collapsed": [
        {
            "code": "OVERSMOOTHING",
            "severity": "error",
            "message": "Separation shrinks at every layer from gcn.0 to "
            "gcn.2 (1 at alignn.0 -> 0.00045 at gcn.3, 0.045 % "
            "kept); atoms become alike from gcn.2 and are "
            "identical at the attention input.",
            "evidence": {
                "stage": "gcn.2",
                "decline_from": "gcn.0",
                "peak_stage": "alignn.0",
                "layers_keep": 0.0005,
                "kept_at_fga_input": 0.00045,
                "layer_ratios": {"gcn.0": 0.1, "gcn.1": 0.1, "gcn.2": 0.05},
                "separation": {
                    "embed": 1.0,
                    "alignn.0": 1.0,
                    "gcn.0": 0.1,
                    "gcn.1": 0.01,
                    "gcn.2": 0.0005,
                    "gcn.3": 0.00045,
                },
                "ablation": {
                    "fga_from": None,
                    "attention_cross_orbit_jsd": None,
                    "symptom_persists": None,
                },
            },
            "remedy": "Remedy 2 (fewer layers before the attention) (check "
            "with --intervene fga-from=STAGE), or remedy 3 "
            "(residuals and normalisation).",
        }
    ],
    "shared_query_below": [
        {
            "code": "SHARED_QUERY_DOMINATES",
            "severity": "warning",
            "message": "Atoms of different elements read the same top words "
            "(Ba_0 = Li_2), but no cause reaches its threshold "
            "(shared query part 10 % of the logit variance; layers "
            "remove 10 % of the separation; fusion removes 0 %). "
            "Filed under SHARED_QUERY_DOMINATES, the largest "
            "contributor.",
            "evidence": {
                "stage": "fga",
                "below_threshold": True,
                "contributions": {"shared_query": 0.1, "smoothing": 0.1, "fusion": 0.0},
                "excluded_by_probe": [],
                "attention_cross_orbit_jsd": 0.3,
                "separation_at_fga_input": 0.9,
                "same_top_word_pairs": [["Ba_0", "Li_2"]],
                "same_top_word_pair_count": 1,
                "closest_groups": ["Ba", "Li"],
                "closest_group_jsd": 0.4,
            },
            "remedy": "Retrain: remedy 4 (attention-diversity training) "
            "(fga_tui.training) so queries use atom-specific "
            "directions.",
        }
    ],
    "fusion_two_stages_no_probe": [
        {
            "code": "FUSION_HOMOGENIZES",
            "severity": "error",
            "message": "Middle fusion makes atoms alike: at fusion.1 "
            "separation 0.1 -> 0.0001, 0.01 % kept over all "
            "fusion stages (no bypass probe ran).",
            "evidence": {
                "stage": "fusion.1",
                "separation_before": 0.1,
                "separation_after": 0.0001,
                "fusion_keep": 0.0001,
                "fusion_ratios": {"fusion.0": 0.1, "fusion.1": 0.001},
                "mean_gate": None,
                "ablation": {
                    "no_fusion": True,
                    "separation_at_fga_input": None,
                    "attention_cross_orbit_jsd": None,
                    "symptom_persists": None,
                },
            },
            "remedy": "Disable or weaken middle fusion: remedy 1 (no "
            "middle fusion); check with --intervene "
            "no-fusion.",
        }
    ],
    "oversmoothing_probe_alike": [
        {
            "code": "OVERSMOOTHING",
            "severity": "warning",
            "message": "Separation shrinks at every layer from gcn.0 to "
            "gcn.3 (1 at alignn.0 -> 0.2 at gcn.3, 20 % kept); "
            "atoms become alike from gcn.3. Read from gcn.0, "
            "Ba and Hf atoms attend almost alike (JSD 0.01 < "
            "0.05 bits).",
            "evidence": {
                "stage": "gcn.3",
                "decline_from": "gcn.0",
                "peak_stage": "alignn.0",
                "layers_keep": 0.2015,
                "kept_at_fga_input": 0.2015,
                "layer_ratios": {"gcn.0": 0.67, "gcn.1": 0.67, "gcn.2": 0.67, "gcn.3": 0.67},
                "separation": {
                    "embed": 1.0,
                    "alignn.0": 1.0,
                    "gcn.0": 0.67,
                    "gcn.1": 0.4489,
                    "gcn.2": 0.3008,
                    "gcn.3": 0.2015,
                },
                "ablation": {
                    "fga_from": "gcn.0",
                    "attention_cross_orbit_jsd": 0.01,
                    "symptom_persists": True,
                },
            },
            "remedy": "Remedy 2 (fewer layers before the attention) "
            "(check with --intervene fga-from=STAGE), or remedy "
            "3 (residuals and normalisation).",
        }
    ],
    "symptom_no_lead": [
        {
            "code": "SHARED_QUERY_DOMINATES",
            "severity": "warning",
            "message": "Atoms of different elements read the same top words (Ba_0 = "
            "Li_2), but no cause reaches its threshold (shared query "
            "part — of the logit variance; layers remove 0 % of the "
            "separation; fusion removes 0 %). Filed under "
            "SHARED_QUERY_DOMINATES, the largest contributor: with no "
            "other lead, the attention is where distinct atoms come to "
            "read alike.",
            "evidence": {
                "stage": "fga",
                "below_threshold": True,
                "contributions": {"shared_query": None, "smoothing": 0.0, "fusion": 0.0},
                "excluded_by_probe": [],
                "attention_cross_orbit_jsd": 0.3,
                "separation_at_fga_input": 1.0,
                "same_top_word_pairs": [["Ba_0", "Li_2"]],
                "same_top_word_pair_count": 1,
                "closest_groups": ["Ba", "Li"],
                "closest_group_jsd": 0.2,
            },
            "remedy": "Retrain: remedy 4 (attention-diversity training) "
            "(fga_tui.training) so queries use atom-specific "
            "directions.",
        }
    ],
    "symptom_smoothing_excluded": [
        {
            "code": "SHARED_QUERY_DOMINATES",
            "severity": "warning",
            "message": "Atoms of different elements read the same top "
            "words (Ba_0 = Li_2), but no cause reaches its "
            "threshold (shared query part 30 % of the logit "
            "variance; layers remove 59 % of the separation "
            "(but with fga-from=alignn.0 atoms still read "
            "alike); fusion removes 0 %). Filed under "
            "SHARED_QUERY_DOMINATES, the largest contributor.",
            "evidence": {
                "stage": "fga",
                "below_threshold": True,
                "contributions": {"shared_query": 0.3, "smoothing": 0.5904, "fusion": 0.0},
                "excluded_by_probe": ["smoothing"],
                "attention_cross_orbit_jsd": 0.3,
                "separation_at_fga_input": 0.4096,
                "same_top_word_pairs": [["Ba_0", "Li_2"]],
                "same_top_word_pair_count": 1,
                "closest_groups": ["Ba", "Li"],
                "closest_group_jsd": 0.2,
            },
            "remedy": "Retrain: remedy 4 (attention-diversity training) "
            "(fga_tui.training) so queries use atom-specific "
            "directions.",
        }
    ],
    "shared_query_more_pairs": [
        {
            "code": "SHARED_QUERY_DOMINATES",
            "severity": "error",
            "message": "Atoms differ at gcn.3 (separation 0.9) but atoms of "
            "different elements read the same top words (Ba_0 = "
            "Li_2, Ba_0 = Hf_1, Hf_1 = Li_2, +1 more): the query "
            "part shared by all atoms carries 90% of the logit "
            "variance.",
            "evidence": {
                "stage": "fga",
                "shared_fraction": 0.9,
                "attention_cross_orbit_jsd": 0.3,
                "separation_at_fga_input": 0.9,
                "same_top_word_pairs": [
                    ["Ba_0", "Li_2"],
                    ["Ba_0", "Hf_1"],
                    ["Hf_1", "Li_2"],
                    ["Li_2", "Ba_0"],
                ],
                "same_top_word_pair_count": 4,
                "closest_groups": ["Ba", "Li"],
                "closest_group_jsd": 0.2,
            },
            "remedy": "Retrain: remedy 4 (attention-diversity training) "
            "(fga_tui.training) so queries use atom-specific "
            "directions.",
        }
    ],
    "symptom_by_attention_unnamed": [
        {
            "code": "SHARED_QUERY_DOMINATES",
            "severity": "warning",
            "message": "Atoms of two elements attend almost alike (JSD "
            "0.01 < 0.05 bits), but no cause reaches its "
            "threshold (shared query part 20 % of the logit "
            "variance; layers remove 10 % of the "
            "separation; fusion removes 0 %). Filed under "
            "SHARED_QUERY_DOMINATES, the largest "
            "contributor.",
            "evidence": {
                "stage": "fga",
                "below_threshold": True,
                "contributions": {"shared_query": 0.2, "smoothing": 0.1, "fusion": 0.0},
                "excluded_by_probe": [],
                "attention_cross_orbit_jsd": 0.3,
                "separation_at_fga_input": 0.9,
                "same_top_word_pairs": [],
                "same_top_word_pair_count": 0,
                "closest_groups": None,
                "closest_group_jsd": 0.01,
            },
            "remedy": "Retrain: remedy 4 (attention-diversity "
            "training) (fga_tui.training) so queries use "
            "atom-specific directions.",
        }
    ],
    "healthy_unmeasured": [
        {
            "code": "HEALTHY",
            "severity": "info",
            "message": "Atoms of different elements read different words and "
            "attend differently (closest: two elements, JSD 0.2 >= "
            "0.05 bits; cross-orbit mean 0).",
            "evidence": {
                "stage": "fga",
                "attention_cross_orbit_jsd": None,
                "closest_groups": [],
                "closest_group_jsd": 0.2,
                "separation_at_fga_input": None,
                "special_token_atoms": [],
            },
        }
    ],
    "feature_collapse_two_specs": [
        {
            "code": "FEATURE_COLLAPSE",
            "severity": "error",
            "message": "Atoms of different elements (so of different "
            "symmetry orbits) have identical features from "
            "gcn.1 on (separation 0.0001 < 0.001). The "
            "intervention mean-ablate=gcn.1, "
            "patch=gcn.1:Hf_1<-Ba_0 sets these features.",
            "evidence": {
                "stage": "gcn.1",
                "set_by_intervention": ["mean-ablate=gcn.1", "patch=gcn.1:Hf_1<-Ba_0"],
                "separation": {
                    "embed": 1.0,
                    "alignn.0": 0.5,
                    "gcn.0": 0.2,
                    "gcn.1": 0.0001,
                    "gcn.2": 1e-05,
                    "gcn.3": 2e-05,
                },
            },
            "remedy": "Find the stage where separation drops; see the cause verdict.",
        }
    ],
    "symmetry_two_broken": [
        {
            "code": "SYMMETRY_EQUIVALENT",
            "severity": "info",
            "message": "{Ba_0, Ba_1}; {Li_2, Li_3} are symmetry-equivalent: "
            "identical features and top words within each group are "
            "expected, not a collapse. But the crystal graph breaks "
            "this symmetry (Ba_0, Ba_1 have 19/20; Li_2, Li_3 have "
            "12/14 bonds: upstream's k-nearest rule cuts a tie shell "
            "by exact float comparison), so their features differ by "
            "up to 0.",
            "evidence": {
                "orbits": [[0, 1], [2, 3]],
                "input_groups": ["Ba", "Li"],
                "within_orbit_max_dev": None,
                "graph_breaks_symmetry": [
                    {"atoms": [0, 1], "in_degree": [19, 20]},
                    {"atoms": [2, 3], "in_degree": [12, 14]},
                ],
            },
        }
    ],
    "fusion_one_of_three_loses": [
        {
            "code": "FUSION_HOMOGENIZES",
            "severity": "error",
            "message": "Middle fusion makes atoms alike: at fusion.2 "
            "separation 1.5 -> 0.00015 (no bypass probe ran).",
            "evidence": {
                "stage": "fusion.2",
                "separation_before": 1.5,
                "separation_after": 0.00015,
                "fusion_keep": 0.0001,
                "fusion_ratios": {"fusion.0": 1.0, "fusion.1": 1.5, "fusion.2": 0.0001},
                "mean_gate": None,
                "ablation": {
                    "no_fusion": True,
                    "separation_at_fga_input": None,
                    "attention_cross_orbit_jsd": None,
                    "symptom_persists": None,
                },
            },
            "remedy": "Disable or weaken middle fusion: remedy 1 (no "
            "middle fusion); check with --intervene "
            "no-fusion.",
        }
    ],
    "decide_blocked": [
        {
            "code": "ATTENTION_UNTRAINED",
            "severity": "error",
            "message": "The atom->text attention projections look untrained "
            "(fine_grained_attention.a2t_key.bias, "
            "fine_grained_attention.a2t_key.weight, "
            "fine_grained_attention.a2t_query.bias, "
            "fine_grained_attention.a2t_query.extra): its weights carry "
            "no learned meaning.",
            "evidence": {
                "stage": "fga",
                "branch": "atom_to_text",
                "parameters": [
                    "fine_grained_attention.a2t_key.bias",
                    "fine_grained_attention.a2t_key.weight",
                    "fine_grained_attention.a2t_query.bias",
                    "fine_grained_attention.a2t_query.extra",
                    "fine_grained_attention.a2t_query.weight",
                ],
            },
            "remedy": "Remedy 5 (train the attention block): check it is in the "
            "optimiser and the loss.",
        }
    ],
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_verdicts_read_exactly(name):
    assert [v.to_json() for v in CASES[name]()] == EXPECTED[name]


def test_every_rule_and_severity_is_pinned_here():
    seen = {(v["code"], v["severity"]) for verdicts in EXPECTED.values() for v in verdicts}
    assert {code for code, _ in seen} == {rule.code for rule in R.RULES}
    assert len(seen) == 15  # FGA_MISSING, ATTENTION_UNTRAINED and the causes at two levels
