"""Verdicts on constructed failure cases (edited fixture weights) with known answers.

Each case changes the real fork checkpoint in one controlled way and asserts the exact verdict
codes and the stage they name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fga_tui import engine
from fga_tui.diagnostics.report import diagnose
from fga_tui.io.checkpoint import load_checkpoint
from fga_tui.model.config_build import config_from_checkpoint

DATA = Path(__file__).parent / "data"
CAUSES = {"FEATURE_COLLAPSE", "FUSION_HOMOGENIZES", "OVERSMOOTHING", "SHARED_QUERY_DOMINATES"}


@pytest.fixture(scope="module")
def fork(fork_ckpt):
    raw = load_checkpoint(fork_ckpt)
    return config_from_checkpoint(raw), {k: v.clone() for k, v in raw.state_dict.items()}


def run(fork, nacl_tokens, sample: Path, edit=None, **kwargs):
    config, state = fork
    state = {k: v.clone() for k, v in state.items()}
    if edit is not None:
        edit(state, config)
    loaded = engine.model_from_state(config, state)
    prepared = engine.prepare_sample(loaded, engine.load_sample(sample), tokens_path=nacl_tokens)
    kwargs.setdefault("audit", False)
    kwargs.setdefault("attribution", False)  # TEXT_IGNORED/UNGROUNDED: test_rules_attribution
    return diagnose(loaded, prepared, **kwargs).report


def codes(report, severity: str | None = None) -> set[str]:
    return {v.code for v in report.verdicts if severity is None or v.severity == severity}


def verdict(report, code: str):
    (v,) = [v for v in report.verdicts if v.code == code]
    return v


def saturate_fusion(state, config) -> None:
    """Gate ~1 and a text vector 1e5 times larger than the node features: LayerNorm(x + tau)
    then equals LayerNorm(tau) for every atom."""
    prefix = "middle_fusion_modules.layer_2."
    state[prefix + "gate.0.weight"].zero_()
    state[prefix + "gate.0.bias"].fill_(30.0)
    state[prefix + "text_transform.3.weight"].mul_(1e5)
    state[prefix + "text_transform.3.bias"].mul_(1e5)


def averaging_update(state, prefix: str, hidden: int, rate: float, offset: float) -> None:
    """The node update at ``prefix`` becomes x' = x + SiLU(rate (mean_neighbours(x) - x) +
    offset): all edge gates equal (a plain neighbour mean), no batch-norm rescaling."""
    eye = torch.eye(hidden)
    for gate in ("src_gate", "dst_gate", "edge_gate"):
        state[prefix + gate + ".weight"].zero_()
        state[prefix + gate + ".bias"].zero_()
    state[prefix + "dst_update.weight"].copy_(rate * eye)
    state[prefix + "dst_update.bias"].zero_()
    state[prefix + "src_update.weight"].copy_(-rate * eye)
    state[prefix + "src_update.bias"].fill_(offset)
    state[prefix + "bn_nodes.running_mean"].zero_()
    state[prefix + "bn_nodes.running_var"].fill_(1.0)
    state[prefix + "bn_nodes.weight"].fill_(1.0)
    state[prefix + "bn_nodes.bias"].zero_()


def smoothing_stack(state, config) -> None:
    """Every node update becomes x' = x + SiLU(0.3 (mean_neighbours(x) - x) + 20): a damped
    neighbour average plus a shared offset, so atoms converge layer by layer. Fusion is shut
    (gate ~0) so it cannot be blamed."""
    prefixes = [f"alignn_layers.{k}.node_update." for k in range(config.alignn_layers)]
    prefixes += [f"gcn_layers.{k}." for k in range(config.gcn_layers)]
    for p in prefixes:
        averaging_update(state, p, config.hidden_features, 0.3, 20.0)
    state["middle_fusion_modules.layer_2.gate.0.bias"].fill_(-30.0)


def zero_query(state, config) -> None:
    state["fine_grained_attention.a2t_query.weight"].zero_()


def sharpen_query(state, config) -> None:
    """40x the query weights, no shared bias: atom differences are amplified, but so is the
    direction every atom shares (the features' common mean)."""
    state["fine_grained_attention.a2t_query.weight"].mul_(40.0)
    state["fine_grained_attention.a2t_query.bias"].zero_()
    state["fine_grained_attention.node_proj_in.bias"].zero_()


def gcn_smoothing(state, config) -> None:
    """Only the GCN layers smooth: x' = x + SiLU(0.2 (mean_neighbours(x) - x) + 1.5), so each
    loses about a third of the separation without ever collapsing it."""
    for k in range(config.gcn_layers):
        averaging_update(state, f"gcn_layers.{k}.", config.hidden_features, 0.2, 1.5)


def atom_specific_query(fork, nacl_tokens, sample: Path):
    """An edit that makes the query read only what differs between atoms: the direction of
    this sample's mean projected feature is removed from the query weights (40x), so the
    shared query part is exactly zero (remedy 4 taken to its end)."""
    config, state = fork
    loaded = engine.model_from_state(config, state)
    prepared = engine.prepare_sample(loaded, engine.load_sample(sample), tokens_path=nacl_tokens)
    trace = engine.run_trace(loaded, prepared)
    X = torch.tensor(trace.features[trace.stages[trace.stages.index("fga") - 1]])

    def edit(state, config) -> None:
        state["fine_grained_attention.node_proj_in.bias"].zero_()
        m = (X @ state["fine_grained_attention.node_proj_in.weight"].T).mean(0)
        m = m / m.norm()
        keep = torch.eye(len(m)) - torch.outer(m, m)
        w = state["fine_grained_attention.a2t_query.weight"]
        state["fine_grained_attention.a2t_query.weight"].copy_(40.0 * w @ keep)
        state["fine_grained_attention.a2t_query.bias"].zero_()

    return edit


def test_saturated_fusion_gate_is_named_at_fusion_2(fork, nacl_tokens):
    report = run(fork, nacl_tokens, DATA / "ba4hfli.json", saturate_fusion)
    v = verdict(report, "FUSION_HOMOGENIZES")
    assert v.severity == "error"
    assert v.evidence["stage"] == "fusion.2"
    assert v.evidence["separation_after"] < 1e-3 < v.evidence["separation_before"]
    assert v.evidence["mean_gate"] > 0.99
    # The no-fusion ablation is cited and restores distinct atoms; without fusion the fixture
    # still reads alike (it is shared-query dominated), so fusion is not the only cause.
    assert v.evidence["ablation"]["separation_at_fga_input"] > 0.1
    assert v.evidence["ablation"]["symptom_persists"] is True
    assert "not the only cause" in v.message
    assert verdict(report, "FEATURE_COLLAPSE").evidence["stage"] == "fusion.2"
    assert "OVERSMOOTHING" not in codes(report)
    assert "HEALTHY" not in codes(report)


def test_zeroed_query_projection_gives_shared_query_dominates(fork, nacl_tokens):
    report = run(fork, nacl_tokens, DATA / "ba4hfli.json", zero_query)
    assert codes(report, "error") == {"SHARED_QUERY_DOMINATES"}
    v = verdict(report, "SHARED_QUERY_DOMINATES")
    assert v.evidence["stage"] == "fga"
    assert v.evidence["shared_fraction"] == pytest.approx(1.0)
    assert v.evidence["separation_at_fga_input"] > 0.1  # the features do differ
    assert v.evidence["attention_cross_orbit_jsd"] < 1e-9  # identical attention rows
    assert v.evidence["same_top_word_pair_count"] == 3  # Ba = Hf, Ba = Li, Hf = Li


def test_symmetry_equivalent_atoms_are_not_a_collapse(fork, nacl_tokens):
    report = run(fork, nacl_tokens, DATA / "ba4hfli.json", sharpen_query)
    v = verdict(report, "SYMMETRY_EQUIVALENT")
    assert v.severity == "info"
    assert v.evidence["orbits"] == [[0, 1, 2, 3], [4], [5]]
    assert v.evidence["within_orbit_max_dev"] < 1e-4
    assert not codes(report) & {"FEATURE_COLLAPSE", "OVERSMOOTHING", "FUSION_HOMOGENIZES"}
    # Identical top words inside the Ba orbit, as symmetry demands.
    words = {e["atom"]: [w for w, _ in e["words"][:5]] for e in report.top_words}
    assert words["Ba_0"] == words["Ba_1"] == words["Ba_2"] == words["Ba_3"]


def test_graph_that_breaks_symmetry_is_reported(fork, nacl_tokens):
    # At a = 6.1 Å upstream's exact-float 12th-shell cut keeps a tie shell for Ba_1 only.
    report = run(fork, nacl_tokens, DATA / "ba4hfli_tiecut.json", run_ablations=False)
    v = verdict(report, "SYMMETRY_EQUIVALENT")
    broken = v.evidence["graph_breaks_symmetry"]
    assert broken[0]["atoms"] == [0, 1, 2, 3]
    assert broken[0]["in_degree"] == [19, 20, 19, 19]
    assert v.evidence["within_orbit_max_dev"] > 1e-2
    assert "breaks this symmetry" in v.message


def test_oversmoothing_stack_is_named_where_atoms_become_alike(fork, nacl_tokens):
    report = run(fork, nacl_tokens, DATA / "ba4hfli.json", smoothing_stack)
    assert "FUSION_HOMOGENIZES" not in codes(report)
    v = verdict(report, "OVERSMOOTHING")
    assert v.severity == "error"
    sep = v.evidence["separation"]
    # Separation decays monotonically through the GCN layers.
    gcn = [sep[f"gcn.{k}"] for k in range(4)]
    assert gcn == sorted(gcn, reverse=True)
    # It first falls below the collapse level (1e-3) at gcn.2, where both verdicts put it.
    assert sep["gcn.1"] >= 1e-3 > sep["gcn.2"]
    assert v.evidence["stage"] == "gcn.2"
    assert v.evidence["decline_from"] == "alignn.0"
    assert verdict(report, "FEATURE_COLLAPSE").evidence["stage"] == "gcn.2"


def test_gcn_layers_losing_a_third_each_are_oversmoothing_on_a_two_atom_cell(
    fork, nacl_tokens, fixtures
):
    report = run(fork, nacl_tokens, fixtures / "nacl.json", gcn_smoothing)
    v = verdict(report, "OVERSMOOTHING")
    assert v.severity == "warning"  # nothing collapsed: a trend, not an end state
    ratios = [v.evidence["layer_ratios"][f"gcn.{k}"] for k in range(4)]
    assert all(0.55 < r < 0.75 for r in ratios), ratios
    sep = report.separation
    assert sep["gcn.3"] > 0.1  # far from collapsed
    # Below a quarter of the input separation first at gcn.2.
    assert sep["gcn.1"] >= 0.25 * sep["embed"] > sep["gcn.2"]
    assert v.evidence["stage"] == "gcn.2"
    assert "FEATURE_COLLAPSE" not in codes(report)
    assert "HEALTHY" not in codes(report)


def test_untrained_token_to_atom_branch_with_its_init_baseline(fork, nacl_tokens, fixtures):
    from fga_tui.diagnostics.audit import load_baseline

    base = load_baseline(str(fixtures / "fork_init_state.pt"))
    report = run(
        fork,
        nacl_tokens,
        fixtures / "nacl.json",
        audit=True,
        baseline=base,
        baseline_path="fork_init_state.pt",
        run_ablations=False,
    )
    untrained = [v for v in report.verdicts if v.code == "ATTENTION_UNTRAINED"]
    assert [v.severity for v in untrained] == ["warning"]
    params = set(untrained[0].evidence["parameters"])
    assert {
        "fine_grained_attention.t2a_query.weight",
        "fine_grained_attention.t2a_key.weight",
        "fine_grained_attention.t2a_value.weight",
        "fine_grained_attention.token_output.weight",
    } <= params
    assert not any("a2t_" in p for p in params)
    nog = verdict(report, "NO_GRADIENT_PATH")
    assert "fine_grained_attention.t2a_query" in nog.evidence["modules"]
    assert "cross_modal_attention.g2t_query" in nog.evidence["modules"]
    assert "DEGENERATE_SOFTMAX" in codes(report)


def test_attention_that_separates_atoms_is_healthy(fork, nacl_tokens):
    sample = DATA / "ba4hfli.json"
    report = run(fork, nacl_tokens, sample, atom_specific_query(fork, nacl_tokens, sample))
    assert report.verdicts[0].code == "HEALTHY"
    assert not codes(report, "error") and not codes(report, "warning")
    v = verdict(report, "HEALTHY")
    assert v.evidence["closest_group_jsd"] >= 0.05
    words = {e["atom"]: [w for w, _ in e["words"][:5]] for e in report.top_words}
    for a, b in (("Ba_0", "Hf_4"), ("Ba_0", "Li_5"), ("Hf_4", "Li_5")):
        assert len(set(words[a]) & set(words[b])) < 4, (a, b, words)


def test_scaling_the_query_keeps_the_shared_direction_dominant(fork, nacl_tokens):
    # Attention differs (cross-orbit JSD > 0.1 bits) but Hf_4 and Li_5 still read the same
    # words, led by "nacl6": never HEALTHY while that symptom stands.
    report = run(fork, nacl_tokens, DATA / "ba4hfli.json", sharpen_query)
    assert "HEALTHY" not in codes(report)
    v = verdict(report, "SHARED_QUERY_DOMINATES")
    assert v.severity == "error"
    assert v.evidence["same_top_word_pairs"] == [["Hf_4", "Li_5"]]
    assert v.evidence["attention_cross_orbit_jsd"] > 0.1
    assert v.evidence["shared_fraction"] > 0.9


def test_the_fixture_itself_is_shared_query_dominated(fork, nacl_tokens, fixtures):
    report = run(fork, nacl_tokens, fixtures / "nacl.json", run_ablations=False)
    v = verdict(report, "SHARED_QUERY_DOMINATES")
    assert v.severity == "error"
    assert v.evidence["shared_fraction"] == pytest.approx(0.686, abs=2e-3)
    assert v.evidence["same_top_word_pairs"] == [["Na_0", "Cl_1"]]
    assert v.evidence["closest_group_jsd"] == pytest.approx(0.0459, abs=2e-3)


def test_text_free_upstream_model_has_no_attention_to_explain(tmp_path, fixtures):
    from fga_tui.model.alignn_text import ALIGNNText
    from fga_tui.model.config import ModelConfig

    torch.manual_seed(0)
    config = ModelConfig(hidden_features=32, embedding_features=16, alignn_layers=2, gcn_layers=2)
    loaded = engine.model_from_state(config, ALIGNNText(config).state_dict())
    prepared = engine.prepare_sample(loaded, engine.load_sample(fixtures / "nacl.json"))
    report = diagnose(loaded, prepared, audit=False).report
    assert verdict(report, "FGA_MISSING").severity == "info"
    assert report.top_words == []
    assert "SHARED_QUERY_DOMINATES" not in codes(report)


def test_atoms_reading_only_special_tokens_are_found():
    import numpy as np

    from fga_tui.diagnostics.report import _special_token_atoms
    from fga_tui.trace import Trace

    tokens = ("[CLS]", "ba", "is", "[SEP]")
    a2t = np.zeros((2, 3, 4), np.float32)
    a2t[:, 0, 0] = 0.951  # atom 0: 4.9 % on real words, under the 5 % line
    a2t[:, 0, 1] = 0.049
    a2t[:, 1, 0] = 0.949  # atom 1: 5.1 %, over it
    a2t[:, 1, 1] = 0.051
    a2t[:, 2, 2] = 1.0  # atom 2: on "is"
    trace = Trace(
        stages=("embed",),
        features={"embed": np.eye(3, dtype=np.float32)},
        elements=("Ba", "Hf", "Li"),
        prediction=0.0,
        tokens=tokens,
        token_mask=np.ones(4, bool),
        atom_to_text=a2t,
    )
    assert _special_token_atoms(trace, [0, 1, 2]) == [0]
