"""The intervention vocabulary: parsing, validation against a model and sample, and what each
spec does to a real forward (the demo checkpoints and the fork fixture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fga_tui import engine
from fga_tui.interventions import (
    AtomRef,
    Intervention,
    Interventions,
    parse_intervention,
)
from fga_tui.io.errors import InputError

DEMO = Path(__file__).parent.parent / "fga_tui" / "data" / "demo"


@pytest.fixture(scope="module")
def demo() -> tuple[engine.LoadedModel, engine.PreparedSample]:
    loaded = engine.load_model(DEMO / "demo_problem.pt", device="cpu")
    prepared = engine.prepare_sample(loaded, engine.load_sample(DEMO / "ba4hfli.json"))
    return loaded, prepared


@pytest.fixture(scope="module")
def fork(fork_ckpt, nacl_json, nacl_tokens) -> tuple[engine.LoadedModel, engine.PreparedSample]:
    loaded = engine.load_model(fork_ckpt, device="cpu")
    prepared = engine.prepare_sample(loaded, engine.load_sample(nacl_json), tokens_path=nacl_tokens)
    return loaded, prepared


# ---- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("no-fusion", Intervention("no-fusion")),
        ("no_text", Intervention("no-text")),
        (" fga-from = gcn.1 ", Intervention("fga-from", "gcn.1")),
        ("mean-ablate=alignn.0", Intervention("mean-ablate", "alignn.0")),
        (
            "patch=gcn.0:Hf_4<-Ba_0",
            Intervention("patch", "gcn.0", AtomRef(4, "Hf"), AtomRef(0, "Ba")),
        ),
        ("patch=fga:5<-0", Intervention("patch", "fga", AtomRef(5), AtomRef(0))),
    ],
)
def test_specs_parse_and_print_back(spec: str, parsed: Intervention) -> None:
    got = parse_intervention(spec)
    assert got == parsed
    assert parse_intervention(got.spec) == got


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no-fusions", "is not an intervention"),
        ("no-fusion=1", "takes no value"),
        ("fga-from", "needs a stage"),
        ("mean-ablate=layer3", "is not a stage name"),
        ("patch=gcn.0:Hf_4", "patch=STAGE:DST<-SRC"),
        ("patch=gcn.0:Hf4<-Ba_0", "is not an atom"),
        ("patch=gcn.x:1<-0", "is not a stage name"),
    ],
)
def test_a_bad_spec_is_one_input_error_naming_it(spec: str, says: str) -> None:
    with pytest.raises(InputError, match="--intervene") as err:
        parse_intervention(spec)
    assert says in err.value.message
    assert spec in err.value.message


def test_aliases_merge_with_specs_and_duplicates_count_once() -> None:
    ivs = Interventions.parse(["no-fusion", "no-text", "no-fusion"], fga_from="gcn.0")
    assert ivs.specs == ["no-fusion", "no-text", "fga-from=gcn.0"]
    assert ivs.no_fusion and ivs.no_text and ivs.fga_from == "gcn.0"
    assert Interventions(no_fusion=True) == Interventions.parse(["no-fusion"])
    assert hash(Interventions(no_fusion=True)) == hash(Interventions.parse(["no-fusion"]))
    assert not Interventions().active and Interventions().describe() == "none"
    with pytest.raises(InputError, match="fga-from given twice"):
        Interventions.parse(["fga-from=gcn.0", "fga-from=gcn.1"])


# ---- validation against a model and a sample ------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "says"),
    [
        (["mean-ablate=gcn.3"], "'gcn.3' is not a stage of this run"),
        (["fga-from=alignn.1", "patch=gcn.0:1<-0"], "'gcn.0' is not a stage of this run"),
        (["no-fusion", "mean-ablate=fusion.0"], "'fusion.0' is not a stage of this run"),
        (["patch=gcn.0:6<-0"], "atom 6 does not exist (6 atoms, 0-5)"),
        (["patch=gcn.0:Ba_4<-Ba_0"], "atom 4 is Hf, not Ba"),
    ],
)
def test_impossible_interventions_are_user_errors(demo, specs: list[str], says: str) -> None:
    loaded, prepared = demo
    with pytest.raises(InputError) as err:
        engine.run_trace(loaded, prepared, Interventions.parse(specs))
    assert says in err.value.message


def test_no_text_on_a_text_free_model_is_a_user_error() -> None:
    import torch

    from fga_tui.model.alignn_text import ALIGNNText
    from fga_tui.model.config import ModelConfig

    config = ModelConfig(hidden_features=16, embedding_features=8, alignn_layers=1, gcn_layers=1)
    loaded = engine.model_from_state(config, ALIGNNText(config).state_dict())
    with pytest.raises(InputError, match="no-text: this checkpoint reads no text"):
        engine.check_ablation(loaded, Interventions.parse(["no-text"]))
    assert torch.get_default_dtype() == torch.float32


# ---- effects on a real forward ----------------------------------------------------------------


def test_patch_at_the_attention_input_copies_the_attention_row(demo) -> None:
    loaded, prepared = demo
    assert loaded.stage_names()[-2:] == ["gcn.0", "fga"]  # gcn.0 feeds the attention
    plain = engine.run_trace(loaded, prepared)
    patched = engine.run_trace(loaded, prepared, Interventions.parse(["patch=gcn.0:Hf_4<-Ba_0"]))
    assert patched.ablation.specs == ["patch=gcn.0:Hf_4<-Ba_0"]
    np.testing.assert_array_equal(patched.features["gcn.0"][4], patched.features["gcn.0"][0])
    np.testing.assert_allclose(patched.atom_to_text[:, 4], patched.atom_to_text[:, 0], atol=1e-7)
    assert np.abs(plain.atom_to_text[:, 4] - plain.atom_to_text[:, 0]).max() > 1e-3
    # Everything before the patched stage is untouched; other atoms' rows too.
    np.testing.assert_array_equal(patched.features["alignn.3"], plain.features["alignn.3"])
    np.testing.assert_allclose(patched.atom_to_text[:, 5], plain.atom_to_text[:, 5], atol=1e-6)


def test_mean_ablation_at_the_attention_input_gives_every_atom_the_same_words(demo) -> None:
    from fga_tui.diagnostics.words import top_words

    loaded, prepared = demo
    trace = engine.run_trace(loaded, prepared, Interventions.parse(["mean-ablate=gcn.0"]))
    a2t = trace.atom_to_text
    np.testing.assert_allclose(a2t, np.broadcast_to(a2t[:, :1], a2t.shape), atol=1e-6)
    ranked = top_words(a2t, trace.tokens, trace.token_mask, k=5)
    assert all([w for w, _ in r] == [w for w, _ in ranked[0]] for r in ranked)
    feats = trace.features["gcn.0"]
    np.testing.assert_allclose(feats, np.broadcast_to(feats.mean(axis=0), feats.shape), atol=1e-5)


def test_mean_ablating_the_embedding_collapses_every_later_stage(demo) -> None:
    """ALIGNN's edge-gated update aggregates neighbours as a gate-weighted *mean*
    (sum sigma(e_ij) x_j / sum sigma(e_ij)), so identical node inputs stay identical whatever the
    bonds: with the embedding mean-ablated no later stage can tell atoms apart."""
    loaded, prepared = demo
    trace = engine.run_trace(loaded, prepared, Interventions.parse(["mean-ablate=embed"]))
    for stage in trace.stages:
        feats = trace.features[stage]
        assert np.abs(feats - feats[:1]).max() < 1e-4, stage  # float32 summation order
    plain = engine.run_trace(loaded, prepared)
    assert np.abs(plain.features["gcn.0"] - plain.features["gcn.0"][:1]).max() > 1e-2


def test_no_text_changes_the_prediction_and_makes_attention_uniform(fork) -> None:
    loaded, prepared = fork
    plain = engine.run_trace(loaded, prepared)
    blind = engine.run_trace(loaded, prepared, Interventions.parse(["no-text"]))
    assert blind.stages == plain.stages
    valid = blind.token_mask
    a2t = blind.atom_to_text[..., valid]
    np.testing.assert_allclose(a2t, 1.0 / valid.sum(), atol=1e-6)
    assert abs(blind.prediction - plain.prediction) > 1e-3
    np.testing.assert_array_equal(blind.features["alignn.2"], plain.features["alignn.2"])


def test_no_fusion_via_the_vocabulary_equals_the_classic_switch(fork) -> None:
    loaded, prepared = fork
    a = engine.run_trace(loaded, prepared, Interventions.parse(["no-fusion"]))
    b = engine.run_trace(loaded, prepared, engine.Ablation(no_fusion=True))
    assert a.stages == b.stages and "fusion.2" not in a.stages
    assert a.prediction == b.prediction
    assert not any(k.startswith("fusion.") for k in a.extras)


def test_interventions_combine_in_a_fixed_order(fork) -> None:
    """mean-ablate at the stage fga-from reads: the attention gets the ablated features."""
    loaded, prepared = fork
    trace = engine.run_trace(
        loaded, prepared, Interventions.parse(["fga-from=alignn.1", "mean-ablate=alignn.1"])
    )
    assert list(trace.stages) == ["embed", "alignn.0", "alignn.1", "fga"]
    np.testing.assert_allclose(trace.atom_to_text[:, 0], trace.atom_to_text[:, 1], atol=1e-7)


def test_trace_npz_lists_the_interventions(demo, tmp_path: Path) -> None:
    from fga_tui.trace import load_trace_npz

    loaded, prepared = demo
    trace = engine.run_trace(loaded, prepared, Interventions.parse(["no-text", "no-fusion"]))
    arrays = load_trace_npz(trace.save_npz(tmp_path / "trace.npz"))
    assert list(arrays["intervention"]) == ["no-text", "no-fusion"]
    assert str(arrays["ablation"]) == "no-text, no-fusion"
