"""The pure-torch fork model reproduces the fork's own outputs for the fixture (<= 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fga_tui.io.types import TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.tracer import trace_batch
from fga_tui.structure.types import CrystalGraph
from fga_tui.trace import Ablation

TOL = 1e-5
EXPECTED_STAGE = {
    "embed": "x_atom_embedding",
    "fusion.2": "x_middle_fusion_2",
    "fga": "x_fine_grained",
}


@pytest.fixture(scope="module")
def fork_model(fork_ckpt) -> ALIGNNText:
    from fga_tui.io.checkpoint import load_checkpoint
    from fga_tui.model.config_build import config_from_checkpoint

    raw = load_checkpoint(fork_ckpt)
    model = ALIGNNText(config_from_checkpoint(raw))
    model.load_state_dict(raw.state_dict, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def nacl_graph(expected) -> CrystalGraph:
    e = expected
    return CrystalGraph(
        e["atomic_numbers"],
        e["atom_features_in"],
        e["edge_src"],
        e["edge_dst"],
        e["edge_r"],
        e["lg_src"],
        e["lg_dst"],
        e["lg_h"],
    )


@pytest.fixture(scope="module")
def nacl_states(nacl_tokens) -> TokenStates:
    t = np.load(nacl_tokens)
    return TokenStates(tuple(t["tokens"]), t["embeddings"], t["mask"].astype(bool))


def expected_key(stage: str) -> str:
    return EXPECTED_STAGE.get(stage, "x_" + stage.replace(".", "_"))


def assert_matches_fixture(trace, expected) -> None:
    assert list(trace.stages) == [
        "embed",
        "alignn.0",
        "alignn.1",
        "alignn.2",
        "fusion.2",
        "alignn.3",
        "gcn.0",
        "gcn.1",
        "gcn.2",
        "gcn.3",
        "fga",
    ]
    for stage in trace.stages:
        err = np.abs(trace.features[stage] - expected[expected_key(stage)]).max()
        assert err <= TOL, f"{stage}: {err}"
    assert np.abs(trace.atom_to_text - expected["atom_to_text"][0]).max() <= TOL
    assert np.abs(trace.text_to_atom - expected["text_to_atom"][0]).max() <= TOL
    assert abs(trace.prediction - float(expected["predictions"])) <= TOL


def test_single_structure_matches_fork_outputs(fork_model, nacl_graph, nacl_states, expected):
    (trace,) = trace_batch(fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")])
    assert_matches_fixture(trace, expected)
    assert list(trace.tokens) == list(expected["tokens"])


def test_global_attention_is_exactly_one(fork_model, nacl_graph, nacl_states):
    (trace,) = trace_batch(fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")])
    for weights in trace.global_attention.values():
        assert weights.shape == (4,)
        assert np.all(weights == 1.0)


def test_batched_with_padding_matches_single(fork_model, nacl_graph, nacl_states, expected):
    # A second, larger structure (4 atoms) and a longer text force padding of both atoms and
    # tokens for the NaCl entry.
    rng = np.random.default_rng(3)
    g = nacl_graph
    big = CrystalGraph(
        np.concatenate([g.atomic_numbers, g.atomic_numbers]),
        np.concatenate([g.atom_features, g.atom_features[::-1]]),
        np.concatenate([g.edge_src, g.edge_src + 2]),
        np.concatenate([g.edge_dst, g.edge_dst + 2]),
        np.concatenate([g.edge_r, g.edge_r * 1.01]),
        np.concatenate([g.lg_src, g.lg_src + g.num_edges]),
        np.concatenate([g.lg_dst, g.lg_dst + g.num_edges]),
        np.concatenate([g.lg_h, g.lg_h]),
    )
    long_text = TokenStates(
        tuple(f"w{i}" for i in range(50)),
        rng.standard_normal((50, 768)).astype(np.float32),
        np.ones(50, dtype=bool),
    )
    traces = trace_batch(
        fork_model,
        [big, nacl_graph, big],
        [long_text, nacl_states, long_text],
        [("Na", "Cl", "Na", "Cl"), ("Na", "Cl"), ("Na", "Cl", "Na", "Cl")],
    )
    assert_matches_fixture(traces[1], expected)
    assert traces[0].atom_to_text.shape == (8, 4, 50)
    assert traces[1].atom_to_text.shape == (8, 2, 36)
    np.testing.assert_allclose(traces[0].prediction, traces[2].prediction, atol=1e-6)


def test_counterfactual_at_the_attention_input_is_the_real_attention(
    fork_model, nacl_graph, nacl_states
):
    (trace,) = trace_batch(fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")])
    assert set(trace.counterfactual) == set(trace.stages)
    # Same queries and keys; all stages run as one batched matmul, so equal to float rounding.
    np.testing.assert_allclose(trace.counterfactual["gcn.3"], trace.atom_to_text, atol=1e-6)
    assert trace.queries["gcn.3"].shape == (8, 2, 8)
    assert trace.keys.shape == (8, 36, 8)
    for weights in trace.counterfactual.values():
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_no_fusion_ablation_bypasses_fusion(fork_model, nacl_graph, nacl_states, expected):
    (plain,) = trace_batch(fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")])
    (abl,) = trace_batch(
        fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")], ablation=Ablation(no_fusion=True)
    )
    assert "fusion.2" not in abl.stages
    # Identical up to the fusion point, different after it.
    np.testing.assert_array_equal(abl.features["alignn.2"], plain.features["alignn.2"])
    assert np.abs(abl.features["alignn.3"] - plain.features["alignn.3"]).max() > 1e-3
    assert abl.ablation.no_fusion


def test_fga_from_earlier_stage_truncates_the_gnn(fork_model, nacl_graph, nacl_states):
    (abl,) = trace_batch(
        fork_model,
        [nacl_graph],
        [nacl_states],
        [("Na", "Cl")],
        ablation=Ablation(fga_from="alignn.1"),
    )
    assert list(abl.stages) == ["embed", "alignn.0", "alignn.1", "fga"]
    np.testing.assert_allclose(abl.counterfactual["alignn.1"], abl.atom_to_text, atol=1e-6)


def test_fga_from_unknown_stage_is_rejected(fork_model, nacl_graph, nacl_states):
    with pytest.raises(ValueError, match="unknown stage"):
        trace_batch(
            fork_model,
            [nacl_graph],
            [nacl_states],
            [("Na", "Cl")],
            ablation=Ablation(fga_from="gcn.9"),
        )


def test_model_runs_on_float64_free_cpu_and_is_deterministic(fork_model, nacl_graph, nacl_states):
    a = trace_batch(fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")])[0]
    b = trace_batch(fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")])[0]
    assert a.prediction == b.prediction
    assert torch.get_default_dtype() == torch.float32


def test_end_to_end_from_the_sample_file_matches(fork_ckpt, nacl_json, nacl_tokens, expected):
    """io -> our graph builder -> model: the whole engine path reproduces the fork's numbers."""
    from fga_tui import engine

    loaded = engine.load_model(fork_ckpt, device="cpu")
    prepared = engine.prepare_sample(loaded, engine.load_sample(nacl_json), tokens_path=nacl_tokens)
    trace = engine.run_trace(loaded, prepared)
    assert_matches_fixture(trace, expected)


def assert_same_trace(got, want) -> None:
    """Every field of two traces, exactly (timings aside)."""
    assert got.stages == want.stages
    assert got.ablation.specs == want.ablation.specs
    assert got.tokens == want.tokens and got.elements == want.elements
    assert got.prediction == want.prediction
    for name in want.stages:
        np.testing.assert_array_equal(got.features[name], want.features[name])
    for name in ("atom_to_text", "text_to_atom", "keys", "token_mask"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert set(got.queries) == set(want.queries)
    for name in want.queries:
        np.testing.assert_array_equal(got.queries[name], want.queries[name])
    assert got.counterfactual == want.counterfactual == {}
    assert set(got.global_attention) == set(want.global_attention)
    for name in want.global_attention:
        np.testing.assert_array_equal(got.global_attention[name], want.global_attention[name])
    assert set(got.extras) == set(want.extras)
    for name in want.extras:
        np.testing.assert_array_equal(got.extras[name], want.extras[name])


@pytest.mark.parametrize("stage", ["embed", "alignn.1", "fusion.2", "alignn.3", "gcn.2"])
def test_fga_from_by_head_replay_equals_the_full_forward(
    fork_model, nacl_graph, nacl_states, stage
):
    from fga_tui.model.tracer import trace_fga_from

    (base,) = trace_batch(fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")])
    (full,) = trace_batch(
        fork_model,
        [nacl_graph],
        [nacl_states],
        [("Na", "Cl")],
        ablation=Ablation(fga_from=stage),
        counterfactuals=False,
    )
    got = trace_fga_from(fork_model, nacl_graph, nacl_states, ("Na", "Cl"), base, stage)
    assert_same_trace(got, full)
    assert got.prediction != base.prediction  # the replay did change what the head read


def test_fga_from_replay_needs_a_trace_without_interventions(fork_model, nacl_graph, nacl_states):
    from fga_tui.model.tracer import trace_fga_from

    (nf,) = trace_batch(
        fork_model, [nacl_graph], [nacl_states], [("Na", "Cl")], ablation=Ablation(no_fusion=True)
    )
    with pytest.raises(ValueError, match="without interventions"):
        trace_fga_from(fork_model, nacl_graph, nacl_states, ("Na", "Cl"), nf, "alignn.1")
