"""Hook points and capture must not change a number: a traced forward is the plain forward
plus references, and hook points leave the state_dict keys alone.

Checked bit for bit (``torch.equal``) on the fork fixture model (multimodal: middle fusion,
fine-grained and global cross-modal attention) and on a random upstream-shaped model, and the
captured stage names are exactly the public contract ``config.stage_names()``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fga_tui.io.types import TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.batch import GraphBatch, TextBatch, collate_graphs, collate_tokens
from fga_tui.model.config import FIELD_NAMES, ModelConfig
from fga_tui.model.hooks import hook_points, hooks, run_with_cache, run_with_hooks
from fga_tui.model.intervene import intervention_hooks
from fga_tui.structure.types import CrystalGraph
from fga_tui.trace import Ablation

FIXTURES = Path(__file__).parent / "fixtures"


def _nacl_graph() -> CrystalGraph:
    e = np.load(FIXTURES / "nacl.expected.npz")
    return CrystalGraph(
        atomic_numbers=e["atomic_numbers"],
        atom_features=e["atom_features_in"],
        edge_src=e["edge_src"],
        edge_dst=e["edge_dst"],
        edge_r=e["edge_r"],
        lg_src=e["lg_src"],
        lg_dst=e["lg_dst"],
        lg_h=e["lg_h"],
    )


def _nacl_tokens() -> TokenStates:
    t = np.load(FIXTURES / "nacl.tokens.npz")
    return TokenStates(tuple(str(s) for s in t["tokens"]), t["embeddings"], t["mask"].astype(bool))


def _fork_state_dict() -> dict[str, torch.Tensor]:
    """The fixture checkpoint's weights through the safe loader when it exists (its config is
    a pickled ``models.alignn.ALIGNNConfig``), else the plain init state_dict."""
    try:
        from fga_tui.io.checkpoint import load_checkpoint
    except ImportError:
        return torch.load(FIXTURES / "fork_init_state.pt", weights_only=True)
    return dict(load_checkpoint(FIXTURES / "fork_ckpt.pt").state_dict)


@pytest.fixture(scope="module")
def fork_model() -> ALIGNNText:
    fields = json.loads((FIXTURES / "fork_ckpt.expected-config.json").read_text())
    config = ModelConfig(**{k: v for k, v in fields.items() if k in FIELD_NAMES}, multimodal=True)
    model = ALIGNNText(config)
    model.load_state_dict(_fork_state_dict(), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def upstream_model() -> ALIGNNText:
    torch.manual_seed(0)
    model = ALIGNNText(ModelConfig(hidden_features=64, embedding_features=32))
    with torch.no_grad():
        for name, p in model.named_buffers():
            if name.endswith("running_mean"):
                p.normal_(0.0, 0.3)
            elif name.endswith("running_var"):
                p.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def graphs() -> GraphBatch:
    graph = _nacl_graph()
    return collate_graphs([graph, graph])


@pytest.fixture(scope="module")
def text() -> TextBatch:
    tokens = _nacl_tokens()
    return collate_tokens([tokens, tokens])


def _both(
    model: ALIGNNText, graphs: GraphBatch, text: TextBatch | None, **ablation: object
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(plain output, traced output, captured stage names in forward order) under ``ablation``."""
    interventions = Ablation(**ablation)
    stages = model.stage_names(interventions)
    with torch.no_grad():
        fwd = intervention_hooks(model, interventions, graphs)
        plain = run_with_hooks(model, graphs, text, fwd_hooks=fwd)
        with hooks(model, intervention_hooks(model, interventions, graphs)):
            traced, cache = run_with_cache(model, graphs, text)
    return plain, traced, [n for n in cache if n in stages]


def test_capture_leaves_fork_prediction_bit_identical(
    fork_model: ALIGNNText, graphs: GraphBatch, text: TextBatch
) -> None:
    with torch.no_grad():
        plain = fork_model(graphs, text)
        traced, cache = run_with_cache(fork_model, graphs, text)
    assert torch.equal(plain, traced)
    assert [n for n in cache if n in fork_model.config.stage_names()] == (
        fork_model.config.stage_names()
    )
    assert cache["attn.atom_to_text"].shape == (2, 8, 2, 36)


def test_capture_leaves_upstream_prediction_bit_identical(
    upstream_model: ALIGNNText, graphs: GraphBatch
) -> None:
    plain, traced, stages = _both(upstream_model, graphs, None)
    assert torch.equal(plain, traced)
    assert stages == upstream_model.config.stage_names()
    assert stages == ["embed", *(f"alignn.{k}" for k in range(4))] + [f"gcn.{k}" for k in range(4)]


@pytest.mark.parametrize(
    "ablation", [{"no_fusion": True}, {"fga_from": "alignn.1"}, {"fga_from": "fusion.2"}]
)
def test_capture_under_ablation_is_bit_identical_and_names_its_stages(
    fork_model: ALIGNNText, graphs: GraphBatch, text: TextBatch, ablation: dict
) -> None:
    plain, traced, stages = _both(fork_model, graphs, text, **ablation)
    assert torch.equal(plain, traced)
    expected = fork_model.stage_names(Ablation(**ablation))
    assert stages == expected


def test_hook_points_add_no_state_dict_keys(fork_model: ALIGNNText) -> None:
    keys = set(fork_model.state_dict())
    assert len(keys) == 345
    assert not any("hook" in k for k in keys)
    fresh = ALIGNNText(fork_model.config)
    fresh.load_state_dict(fork_model.state_dict(), strict=True)


def test_hook_points_are_named_by_the_public_vocabulary(fork_model: ALIGNNText) -> None:
    names = set(hook_points(fork_model))
    stages = set(fork_model.config.stage_names())
    internals = {
        "text.states",
        "text.embedding",
        "gnn.out",
        "fusion.2.text",
        "fusion.2.gate",
        "fga.queries",
        "fga.keys",
        "fga.logits",
        "attn.atom_to_text",
        "attn.text_to_atom",
        "global.graph_to_text",
        "global.text_to_graph",
    }
    assert names == stages | internals


def test_hooks_are_removed_when_the_forward_raises(
    fork_model: ALIGNNText, graphs: GraphBatch, text: TextBatch
) -> None:
    def boom(x: torch.Tensor, _point: object) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), torch.no_grad():
        run_with_hooks(fork_model, graphs, text, fwd_hooks=[("gcn.1", boom)])
    assert all(not p._forward_hooks for p in hook_points(fork_model).values())
    with pytest.raises(KeyError, match=r"gcn\.9"):
        run_with_hooks(fork_model, graphs, text, fwd_hooks=[("gcn.9", boom)])


def test_no_fusion_equals_a_model_without_the_fusion_call(
    fork_model: ALIGNNText, graphs: GraphBatch, text: TextBatch
) -> None:
    import copy

    reference = copy.deepcopy(fork_model)
    reference.fusion_hooks = torch.nn.ModuleDict()  # forward skips fusion for absent hooks
    with torch.no_grad():
        expected = reference(graphs, text)
        fwd = intervention_hooks(fork_model, Ablation(no_fusion=True), graphs)
        got = run_with_hooks(fork_model, graphs, text, fwd_hooks=fwd)
        plain = fork_model(graphs, text)
    assert torch.equal(got, expected)
    assert not torch.equal(got, plain)


def test_no_text_makes_the_prediction_independent_of_the_text(
    fork_model: ALIGNNText, graphs: GraphBatch, text: TextBatch
) -> None:
    other = TextBatch(torch.randn_like(text.states) * 3.0, text.mask, text.tokens)
    fwd = [intervention_hooks(fork_model, Ablation.parse(["no-text"]), graphs)] * 2
    with torch.no_grad():
        a = run_with_hooks(fork_model, graphs, text, fwd_hooks=fwd[0])
        b = run_with_hooks(fork_model, graphs, other, fwd_hooks=fwd[1])
        shorter = TextBatch(text.states[:, :10], text.mask[:, :10], text.tokens)
        c = run_with_hooks(fork_model, graphs, shorter, fwd_hooks=fwd[0])
        plain = fork_model(graphs, text)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(a, c, rtol=0, atol=1e-6)
    assert float((a - plain).abs().max()) > 1e-4
