"""Capturing must not change a number: a traced forward is the plain forward plus references.

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
from fga_tui.model.capture import Capture
from fga_tui.model.config import FIELD_NAMES, ModelConfig
from fga_tui.structure.types import CrystalGraph

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
) -> tuple[torch.Tensor, torch.Tensor, Capture]:
    capture = Capture()
    with torch.no_grad():
        plain = model(graphs, text, **ablation)
        traced = model(graphs, text, capture=capture, **ablation)
    return plain, traced, capture


def test_capture_leaves_fork_prediction_bit_identical(
    fork_model: ALIGNNText, graphs: GraphBatch, text: TextBatch
) -> None:
    plain, traced, capture = _both(fork_model, graphs, text)
    assert torch.equal(plain, traced)
    assert capture.stages == fork_model.config.stage_names()
    assert set(capture.features) == set(capture.stages)
    assert "attn.atom_to_text" in capture.tensors


def test_capture_leaves_upstream_prediction_bit_identical(
    upstream_model: ALIGNNText, graphs: GraphBatch
) -> None:
    plain, traced, capture = _both(upstream_model, graphs, None)
    assert torch.equal(plain, traced)
    assert capture.stages == upstream_model.config.stage_names()
    assert capture.stages == ["embed", *(f"alignn.{k}" for k in range(4))] + [
        f"gcn.{k}" for k in range(4)
    ]


@pytest.mark.parametrize(
    "ablation", [{"no_fusion": True}, {"fga_from": "alignn.1"}, {"fga_from": "fusion.2"}]
)
def test_capture_under_ablation_is_bit_identical_and_names_its_stages(
    fork_model: ALIGNNText, graphs: GraphBatch, text: TextBatch, ablation: dict
) -> None:
    plain, traced, capture = _both(fork_model, graphs, text, **ablation)
    assert torch.equal(plain, traced)
    assert capture.stages == fork_model.stage_names(**ablation)


def test_trace_batch_with_counterfactuals_reports_the_plain_prediction(
    fork_model: ALIGNNText, graphs: GraphBatch, text: TextBatch
) -> None:
    from fga_tui.model.tracer import trace_batch

    graph, tokens = _nacl_graph(), _nacl_tokens()
    traces = trace_batch(fork_model, [graph, graph], [tokens, tokens], [("Na", "Cl")] * 2)
    with torch.no_grad():
        plain = fork_model(graphs, text)
    for i, trace in enumerate(traces):
        assert trace.prediction == float(plain[i, 0])
        assert list(trace.stages) == fork_model.config.stage_names()
        assert set(trace.counterfactual) == set(trace.stages)
