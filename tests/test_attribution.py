"""Attribution: gradients against finite differences (float64), integrated-gradients
completeness on the demo and the fork fixture, text reliance and the trace.npz keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fga_tui import engine
from fga_tui.interventions import Interventions
from fga_tui.io.types import Structure, TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.attribution import TextAttributor, cast_batch
from fga_tui.model.batch import collate_graphs, collate_tokens
from fga_tui.model.config import ModelConfig
from fga_tui.model.hooks import hooks
from fga_tui.structure.graph import build_graph

DEMO = Path(engine.__file__).parent / "data" / "demo"
FIXTURES = Path(__file__).parent / "fixtures"


def _tiny(fusion: bool) -> ALIGNNText:
    torch.manual_seed(0)
    config = ModelConfig(
        multimodal=True,
        alignn_layers=2,
        gcn_layers=1,
        hidden_features=16,
        embedding_features=8,
        text_hidden_dim=8,
        projection_dim=8,
        use_fine_grained_attention=True,
        fine_grained_hidden_dim=16,
        fine_grained_num_heads=2,
        use_cross_modal_attention=True,
        cross_modal_hidden_dim=16,
        cross_modal_num_heads=2,
        use_middle_fusion=fusion,
        middle_fusion_layers="0",
        middle_fusion_hidden_dim=8,
    )
    model = ALIGNNText(config).double().eval()
    with torch.no_grad():  # LayerNorms start at identity: give every parameter a real value
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def _cscl_graph():
    s = Structure(4.1 * np.eye(3), np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]), ("Cs", "Cl"))
    return build_graph(s)


def _tokens(length: int = 6) -> TokenStates:
    rng = np.random.default_rng(3)
    return TokenStates(
        ("[CLS]", "cs", "is", "bonded", "cl", "[SEP]")[:length],
        rng.standard_normal((length, 8)).astype(np.float32),
        np.ones(length, dtype=bool),
    )


def _full_prediction(model: ALIGNNText, graph, tokens, fwd_hooks=()) -> float:
    batch = collate_graphs([graph])
    batch = cast_batch(batch, torch.float64)
    text = collate_tokens([tokens])
    text = type(text)(text.states.double(), text.mask, text.tokens)
    with torch.no_grad(), hooks(model, list(fwd_hooks)):
        return float(model(batch, text)[0, 0])


@pytest.mark.parametrize("fusion", [False, True])
def test_attention_gradient_matches_finite_differences(fusion: bool) -> None:
    model = _tiny(fusion)
    graph, tokens = _cscl_graph(), _tokens()
    weights, grad = TextAttributor(model, graph, tokens).attention_gradient()
    eps = 1e-6
    for h, i, t in [(0, 0, 1), (1, 1, 4), (0, 1, 0), (1, 0, 5)]:

        def bump(delta: float, h=h, i=i, t=t):
            def fn(x, _point):
                out = x.clone()
                out[0, h, i, t] += delta
                return out

            return [("attn.atom_to_text", fn)]

        up = _full_prediction(model, graph, tokens, bump(eps))
        down = _full_prediction(model, graph, tokens, bump(-eps))
        numeric = (up - down) / (2 * eps)
        assert float(grad[h, i, t]) == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    assert weights.shape == (2, 2, 6)


@pytest.mark.parametrize("fusion", [False, True])
def test_token_state_gradient_of_the_head_matches_finite_differences(fusion: bool) -> None:
    """The function integrated (the head with the encoder at the real text) differentiates
    like its finite differences; with the real text it is the full model's prediction."""
    model = _tiny(fusion)
    graph, tokens = _cscl_graph(), _tokens()
    attributor = TextAttributor(model, graph, tokens)
    states = attributor.states.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(attributor.head(states).sum(), [states])
    assert float(attributor.head(attributor.states)[0].detach()) == pytest.approx(
        _full_prediction(model, graph, tokens), abs=1e-12
    )
    eps = 1e-6
    for t, d in [(0, 0), (1, 3), (4, 7), (5, 2)]:
        up, down = attributor.states.clone(), attributor.states.clone()
        up[0, t, d] += eps
        down[0, t, d] -= eps
        with torch.no_grad():
            numeric = float(attributor.head(up)[0] - attributor.head(down)[0]) / (2 * eps)
        assert float(grad[0, t, d]) == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("fusion", [False, True])
def test_integrated_gradients_are_complete_on_the_tiny_model(fusion: bool) -> None:
    model = _tiny(fusion)
    graph, tokens = _cscl_graph(), _tokens()
    attributor = TextAttributor(model, graph, tokens)
    prediction, no_text = attributor.predictions()
    zero = TokenStates(tokens.tokens, np.zeros_like(tokens.embeddings), tokens.mask)
    assert prediction == pytest.approx(_full_prediction(model, graph, tokens), abs=1e-12)
    assert no_text == pytest.approx(_full_prediction(model, graph, zero), abs=1e-12)
    gaps = {}
    for steps in (8, 64):
        ig = attributor.integrated_gradients(steps)
        total = float(np.sum(ig.tokens, dtype=np.float64))
        assert ig.delta == pytest.approx(total - (prediction - no_text), abs=1e-6)
        gaps[steps] = abs(ig.delta) / abs(prediction - no_text)
    assert gaps[64] <= 0.02 and gaps[64] < gaps[8] / 4  # converges with the steps
    assert (ig.encoder_leg == 0.0) is (not fusion)


def test_without_fusion_the_path_is_plain_integrated_gradients() -> None:
    """No middle fusion: the two-leg path is the straight line, so Captum on the whole model
    gives the same token attributions."""
    from captum.attr import IntegratedGradients

    model = _tiny(False)
    graph, tokens = _cscl_graph(), _tokens()
    attributor = TextAttributor(model, graph, tokens)
    ours = attributor.integrated_gradients(32).tokens
    batch = attributor.batch
    mask = attributor.mask

    def whole(states: torch.Tensor) -> torch.Tensor:
        from fga_tui.model.batch import TextBatch

        copies = states.shape[0]
        big = cast_batch(collate_graphs([graph] * copies), torch.float64)
        text = TextBatch(states, mask.expand(copies, -1), ((),) * copies)
        return model(big, text)[:, 0]

    assert batch.batch_size == 1
    ref = IntegratedGradients(whole).attribute(
        attributor.states, baselines=attributor.states * 0, n_steps=32, method="gausslegendre"
    )
    np.testing.assert_allclose(ours, ref[0].sum(-1).numpy(), rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def demo_problem():
    loaded = engine.load_model(DEMO / "demo_problem.pt", device="cpu")
    prepared = engine.prepare_sample(loaded, engine.load_sample(DEMO / "ba4hfli.json"))
    return loaded, prepared


@pytest.fixture(scope="module")
def fork():
    loaded = engine.load_model(FIXTURES / "fork_ckpt.pt", device="cpu")
    sample = engine.load_sample(FIXTURES / "nacl.json")
    prepared = engine.prepare_sample(loaded, sample, tokens_path=FIXTURES / "nacl.tokens.npz")
    return loaded, prepared


@pytest.mark.parametrize("which", ["demo_problem", "fork"])
def test_completeness_gap_is_under_five_percent(which: str, request) -> None:
    loaded, prepared = request.getfixturevalue(which)
    att = engine.run_attribution(loaded, prepared)
    trace = engine.run_trace(loaded, prepared)
    no_text = engine.run_trace(loaded, prepared, Interventions.parse(["no-text"]))
    assert att.prediction == pytest.approx(trace.prediction, abs=1e-5)
    assert att.prediction_no_text == pytest.approx(no_text.prediction, abs=1e-5)
    assert att.steps == 32
    assert att.completeness_gap is not None and att.completeness_gap <= 0.05
    total = float(np.sum(att.tokens, dtype=np.float64))
    assert att.delta == pytest.approx(total - (att.prediction - att.prediction_no_text), abs=1e-9)
    n, length = trace.num_atoms, len(trace.tokens)
    assert att.atom_to_text.shape == (n, length) and att.tokens.shape == (length,)
    assert att.atom_to_text.min() >= 0.0


def test_word_deletions_are_the_top_attributed_words(demo_problem) -> None:
    loaded, prepared = demo_problem
    att = engine.run_attribution(loaded, prepared, delete_top_k=3)
    assert len(att.deletions) == 3
    scores = [abs(d.attribution) for d in att.deletions]
    assert scores == sorted(scores, reverse=True)
    # "ba" is every Ba mention: all its occurrences are deleted together.
    tokens = prepared.tokens.tokens
    for d in att.deletions:
        assert {tokens[i] for i in d.positions} == {d.word}
        assert d.change == pytest.approx(d.prediction - att.prediction)
    attributor = TextAttributor(loaded.model, prepared.graph, prepared.tokens)
    unchanged = attributor.masked_predictions([np.ones(len(tokens), bool)])
    assert unchanged[0] == pytest.approx(att.prediction, abs=1e-6)
    assert att.prediction_no_words is not None


def test_interventions_apply_to_attribution(demo_problem) -> None:
    loaded, prepared = demo_problem
    ablation = Interventions(no_fusion=True)
    att = engine.run_attribution(loaded, prepared, ablation)
    trace = engine.run_trace(loaded, prepared, ablation)
    assert att.prediction == pytest.approx(trace.prediction, abs=1e-5)
    assert att.encoder_leg == 0.0  # fusion bypassed: the encoder reads no text
    assert engine.run_attribution(loaded, prepared, Interventions.parse(["no-text"])) is None


def test_export_writes_attribution_keys(tmp_path, fork) -> None:
    loaded, prepared = fork
    trace = engine.run_trace(loaded, prepared)
    full = engine.with_attribution(trace, engine.run_attribution(loaded, prepared))
    path = full.save_npz(tmp_path / "trace.npz")
    from fga_tui.trace import load_trace_npz

    arrays = load_trace_npz(path)
    n, length = trace.num_atoms, len(trace.tokens)
    assert arrays["attr.atom_to_text"].shape == (n, length)
    assert arrays["attr.tokens"].shape == (length,)
    assert arrays["grounding"].shape == (n,)
    assert {arrays[k].dtype for k in ("attr.atom_to_text", "attr.tokens", "grounding")} == {
        np.dtype(np.float32)
    }
    # The existing keys are unchanged.
    before = trace.to_arrays()
    for key, value in before.items():
        np.testing.assert_array_equal(arrays[key], value)
    assert set(arrays) - set(before) == {"attr.atom_to_text", "attr.tokens", "grounding"}


def test_report_has_attribution_grounding_and_text_reliance(demo_problem) -> None:
    import json

    from fga_tui.diagnostics.attribution import add_attribution
    from fga_tui.diagnostics.report import diagnose

    loaded, prepared = demo_problem
    diag = diagnose(loaded, prepared, run_ablations=False, audit=False)
    out = json.loads(json.dumps(diag.report.to_json(), allow_nan=False))
    att, ground, rel = out["attribution"], out["grounding"], out["text_reliance"]
    assert [e["atom"] for e in att["top_words"]] == diag.trace.labels
    assert att["completeness_gap"] <= 0.05
    assert rel["prediction"] == pytest.approx(diag.trace.prediction, abs=1e-5)
    assert len(rel["deletions"]) == 5
    assert set(ground["per_element"]) == {"Ba", "Hf", "Li"}
    assert [a["atom"] for a in ground["per_atom"]] == diag.trace.labels
    assert diag.trace.grounding.shape == (6,) and diag.trace.attribution.shape[0] == 6
    text, md = diag.report.to_text(), diag.report.to_markdown()
    assert "without the text -0.6293" in text and "completeness gap" in text
    assert "## Text reliance and grounding" in md and "Hf 0.14 (0.27)" in md
    assert (
        "text reliance"
        not in diagnose(
            loaded, prepared, run_ablations=False, audit=False, attribution=False
        ).report.to_text()
    )
    # diagnose() runs the two rules; without attribution they cannot fire.
    assert {"TEXT_IGNORED", "UNGROUNDED"} <= set(diag.report.codes)
    plain = diagnose(loaded, prepared, run_ablations=False, audit=False, attribution=False)
    assert plain.report.attribution is None and plain.trace.attribution is None
    assert not {"TEXT_IGNORED", "UNGROUNDED"} & set(plain.report.codes)
    judged = add_attribution(plain, diag.attribution, verdicts=True)
    assert {"TEXT_IGNORED", "UNGROUNDED"} <= set(judged.report.codes)
    assert add_attribution(plain, diag.attribution).report.codes == plain.report.codes


@pytest.mark.parametrize("spec", ["mean-ablate=fga", "patch=fga:Hf_4<-Ba_0", "fga-from=alignn.1"])
def test_attribution_predictions_follow_every_intervention(demo_problem, spec) -> None:
    loaded, prepared = demo_problem
    ablation = Interventions.parse([spec])
    att = engine.run_attribution(loaded, prepared, ablation, steps=8, delete_top_k=1)
    assert att.prediction == pytest.approx(
        engine.run_trace(loaded, prepared, ablation).prediction, abs=1e-5
    )
    assert att.prediction_no_text == pytest.approx(
        engine.run_trace(
            loaded, prepared, ablation.with_(Interventions.parse(["no-text"]).items[0])
        ).prediction,
        abs=1e-5,
    )


@pytest.mark.parametrize("specs", [[], ["no-fusion"], ["fga-from=alignn.1"]])
def test_reusing_the_trace_encoder_output_gives_the_same_numbers(demo_problem, specs) -> None:
    loaded, prepared = demo_problem
    ablation = Interventions.parse(specs)
    trace = engine.run_trace(loaded, prepared, ablation)
    alone = engine.run_attribution(loaded, prepared, ablation, steps=8)
    reused = engine.run_attribution(loaded, prepared, ablation, steps=8, trace=trace)
    assert reused.prediction == alone.prediction
    assert reused.prediction_no_text == alone.prediction_no_text
    np.testing.assert_array_equal(reused.tokens, alone.tokens)
    np.testing.assert_array_equal(reused.atom_to_text, alone.atom_to_text)
    # a trace under other interventions is not reused
    other = engine.run_trace(loaded, prepared, Interventions.parse(["mean-ablate=gcn.0"]))
    mismatched = engine.run_attribution(loaded, prepared, ablation, steps=8, trace=other)
    assert mismatched.prediction == alone.prediction


NAN = float("nan")


@pytest.mark.parametrize(
    ("checkpoint", "ba", "hf", "li", "words_share_max"),
    [
        ("demo_problem.pt", 0.706, 0.140, 0.190, 0.001),
        ("demo_fixed.pt", 0.000, NAN, NAN, 0.001),
    ],
)
def test_demo_pair_grounding_and_text_reliance(checkpoint, ba, hf, li, words_share_max) -> None:
    """The measured demo numbers: both checkpoints use the text through [CLS] (the prediction
    moves by almost half or more without it, by under 0.1 % of that without the words the atoms
    read). The problem's Hf and Li atoms read mostly about Ba; the fixed one's one-hot attention
    sends Ba to the "1" of "Li(1)" and Hf and Li to "in" (no element word: undefined)."""
    from fga_tui.diagnostics.grounding import grounding

    loaded = engine.load_model(DEMO / checkpoint, device="cpu")
    prepared = engine.prepare_sample(loaded, engine.load_sample(DEMO / "ba4hfli.json"))
    trace = engine.run_trace(loaded, prepared)
    att = engine.run_attribution(loaded, prepared, trace=trace)
    g = grounding(trace.atom_to_text, trace.tokens, trace.token_mask, trace.elements)
    expected = {"Ba": ba, "Hf": hf, "Li": li}
    assert g.per_element() == pytest.approx(expected, abs=2e-3, nan_ok=True)
    assert att.relative_text_effect > 0.45
    assert att.words_share < words_share_max
    assert att.completeness_gap < 0.01
