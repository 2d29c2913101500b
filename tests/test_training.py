"""fga_tui.training: the attention-diversity loss (remedy 4) and its monitor."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from fga_tui import training
from fga_tui.diagnostics.attention import logit_decomposition
from fga_tui.io.types import Structure, TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.batch import collate_graphs, collate_tokens
from fga_tui.model.config import ModelConfig
from fga_tui.structure.graph import build_graph
from fga_tui.training import (
    DiversityMonitor,
    attention_diversity_loss,
    forward_with_attention,
    shared_query_loss,
)

TINY = ModelConfig(
    multimodal=True,
    alignn_layers=1,
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
)


def _two_atoms_hand_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Graph 0: 2 atoms (+1 padded row) over 3 valid tokens (+1 padded); graph 1: one atom."""
    A = torch.zeros(2, 2, 3, 4)
    A[0, 0, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # head 0, atom 0
    A[0, 1, 0] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # head 1, atom 0 -> mean (.5, .5, 0)
    A[0, 0, 1] = torch.tensor([0.0, 0.0, 1.0, 0.0])  # head 0, atom 1
    A[0, 1, 1] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # head 1, atom 1 -> mean (0, .5, .5)
    A[0, :, 2] = 0.9  # padded atom row: garbage that must not count
    A[1, :, 0] = torch.tensor([0.2, 0.3, 0.5, 0.0])
    A[1, :, 1:] = 0.7  # padded rows of the one-atom graph
    node_mask = torch.tensor([[True, True, False], [True, False, False]])
    token_mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    return A, node_mask, token_mask


def _cscl() -> Structure:
    return Structure(4.1 * np.eye(3), np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]), ("Cs", "Cl"))


def _perovskite() -> Structure:
    coords = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return Structure(4.0 * np.eye(3), coords.astype(float), ("Sr", "Ti", "O", "O", "O"))


def _tokens(length: int, width: int, seed: int) -> TokenStates:
    rng = np.random.default_rng(seed)
    return TokenStates(
        tuple(f"w{i}" for i in range(length)),
        rng.standard_normal((length, width)).astype(np.float32),
        np.ones(length, dtype=bool),
    )


def _tiny_inputs():
    graphs = collate_graphs([build_graph(_cscl()), build_graph(_perovskite())])
    text = collate_tokens([_tokens(7, 8, 1), _tokens(9, 8, 2)])
    return graphs, text


def test_loss_is_zero_when_every_atom_attends_alike() -> None:
    row = torch.softmax(torch.randn(5), dim=0)
    A = row.expand(2, 3, 4, 5).clone()
    loss = attention_diversity_loss(
        A, torch.ones(2, 4, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)
    )
    assert loss.abs().item() < 1e-9


def test_loss_matches_the_hand_computed_value() -> None:
    # Head means: atom 0 (.5, .5, 0), atom 1 (0, .5, .5). Per-token population variance across
    # the two atoms: .0625, 0, .0625 -> mean over 3 valid tokens = 1/24. Graph 1 has one atom and
    # contributes 0 to the mean over B = 2 graphs: loss = -(1/24) / 2 = -1/48.
    A, node_mask, token_mask = _two_atoms_hand_example()
    loss = attention_diversity_loss(A, node_mask, token_mask)
    assert loss.item() == pytest.approx(-1.0 / 48.0, abs=1e-7)


def test_per_head_variance_is_averaged_over_heads() -> None:
    # Head 0: atom 0 (1, 0, 0), atom 1 (0, 0, 1) -> variance (.25 + 0 + .25) / 3 = 1/6.
    # Head 1: both atoms (0, 1, 0) -> 0. Graph 0: 1/12; graph 1 (one atom): 0 -> loss -1/24.
    A, node_mask, token_mask = _two_atoms_hand_example()
    loss = attention_diversity_loss(A, node_mask, token_mask, per_head=True)
    assert loss.item() == pytest.approx(-1.0 / 24.0, abs=1e-7)


def test_loss_is_negative_and_bounded_for_one_hot_rows_on_different_tokens() -> None:
    L = 6
    A = torch.eye(L)[None, None, :2, :]  # two atoms, one-hot on tokens 0 and 1
    loss = attention_diversity_loss(
        A, torch.ones(1, 2, dtype=torch.bool), torch.ones(1, L, dtype=torch.bool)
    )
    assert loss.item() == pytest.approx(-0.5 / L)
    assert loss.item() >= -(L - 1) / L**2


def test_loss_gradient_reaches_the_atom_query_projection() -> None:
    torch.manual_seed(0)
    model = ALIGNNText(TINY).train()
    graphs, text = _tiny_inputs()
    out, a2t, node_mask, queries, keys = forward_with_attention(model, graphs, text)
    assert out.shape == (2, 1)
    assert queries.shape == (2, 2, 5, 8) and keys.shape == (2, 2, 9, 8)
    assert a2t.shape == (2, 2, 5, 9) and a2t.requires_grad
    assert node_mask.tolist() == [[True, True, False, False, False], [True] * 5]
    attention_diversity_loss(a2t, node_mask, text.mask).backward()
    grad = model.fine_grained_attention.a2t_query.weight.grad
    assert grad is not None and grad.abs().sum().item() > 0


def test_shared_query_loss_is_the_diagnosis_shared_fraction() -> None:
    torch.manual_seed(1)
    q, k = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 7, 4)
    node_mask = torch.tensor([[True, True, True, False, False]])
    token_mask = torch.tensor([[True] * 6 + [False]])
    expected = [
        logit_decomposition(q[0, h, :3].numpy(), k[0, h].numpy(), token_mask[0].numpy())
        for h in range(2)
    ]
    loss = shared_query_loss(q, k, node_mask, token_mask)
    assert loss.item() == pytest.approx(np.mean([d.shared_fraction for d in expected]), rel=1e-5)


def test_shared_query_loss_is_one_for_equal_queries_and_zero_for_opposite_ones() -> None:
    k = torch.randn(1, 1, 6, 3)
    same = torch.tensor([1.0, -2.0, 0.5]).expand(1, 1, 2, 3)
    opposite = torch.stack([same[0, 0, 0], -same[0, 0, 0]])[None, None]
    atoms, tokens = torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 6, dtype=torch.bool)
    assert shared_query_loss(same, k, atoms, tokens).item() == pytest.approx(1.0)
    assert shared_query_loss(opposite, k, atoms, tokens).item() == pytest.approx(0.0)
    one_atom = torch.tensor([[True, False]])
    assert shared_query_loss(same, k, one_atom, tokens).item() == 0.0


def test_shared_query_loss_gradient_reaches_the_atom_query_projection() -> None:
    torch.manual_seed(0)
    model = ALIGNNText(TINY).train()
    graphs, text = _tiny_inputs()
    fw = forward_with_attention(model, graphs, text)
    shared_query_loss(fw.queries, fw.keys, fw.node_mask, text.mask).backward()
    grad = model.fine_grained_attention.a2t_query.weight.grad
    assert grad is not None and grad.abs().sum().item() > 0


def test_forward_with_attention_refuses_a_model_without_fine_grained_attention() -> None:
    model = ALIGNNText(TINY.replace(use_fine_grained_attention=False))
    graphs, text = _tiny_inputs()
    with pytest.raises(ValueError, match="fine-grained"):
        forward_with_attention(model, graphs, text)


def test_optimising_only_the_diversity_loss_raises_cross_atom_jsd() -> None:
    torch.manual_seed(0)
    model = ALIGNNText(TINY).eval()  # no dropout: the measurement is deterministic
    graphs, text = _tiny_inputs()
    monitor = DiversityMonitor()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for step in range(15):
        fw = forward_with_attention(model, graphs, text)
        a2t, node_mask = fw.atom_to_text, fw.node_mask
        monitor.update(a2t, node_mask, text.mask, step=step)
        loss = attention_diversity_loss(a2t, node_mask, text.mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    jsd = monitor.series("jsd")
    losses = monitor.series("diversity_loss")
    assert jsd[-1] > 5 * jsd[0]
    assert losses[-1] < losses[0] < 0


def test_monitor_reports_jsd_agreement_and_keeps_a_history() -> None:
    A, node_mask, token_mask = _two_atoms_hand_example()
    monitor = DiversityMonitor()
    first = monitor.update(A, node_mask, token_mask, orbits=[[[0], [1]], None], epoch=3)
    assert first["graphs"] == 1  # the one-atom graph has no pair to compare
    assert first["diversity_loss"] == pytest.approx(-1.0 / 48.0, abs=1e-7)
    # JSD between (.5, .5, 0) and (0, .5, .5): each shares half its mass -> 0.5 bits.
    assert first["jsd"] == pytest.approx(0.5)
    assert first["cross_orbit_jsd"] == pytest.approx(0.5)
    assert first["argmax_agreement"] == pytest.approx(0.5)
    assert first["epoch"] == 3 and first["step"] == 0
    same = monitor.update(A[:, :, :1].expand(2, 2, 3, 4), node_mask, token_mask)
    assert same["jsd"] == 0.0 and same["cross_orbit_jsd"] is None and same["step"] == 1
    assert monitor.last is same and len(monitor.history) == 2


def test_module_docstring_example_runs() -> None:
    pytest.importorskip("fga_tui.text.demo_encoder")
    from fga_tui.text.demo_encoder import packaged_dir

    if not (packaged_dir() / "encoder.json").exists():
        pytest.skip("the packaged demo encoder is not built")
    code = re.search(r"::\n\n(.*)", training.__doc__, re.S).group(1)
    scope: dict = {}
    exec(
        compile("\n".join(line[4:] for line in code.splitlines()), "training-example", "exec"),
        scope,
    )
    assert len(scope["monitor"].history) == 3
    assert np.isfinite(scope["stats"]["diversity_loss"])


def test_element_contrast_loss_is_the_mean_cosine_of_different_element_rows() -> None:
    from fga_tui.training import element_contrast_loss

    # One graph, 3 atoms (elements 1, 1, 2), 2 heads, 3 tokens; the last token is padding.
    a = torch.tensor(
        [[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64
    ).expand(1, 2, 3, 3)
    node_mask = torch.tensor([[True, True, True]])
    token_mask = torch.tensor([[True, True, False]])
    groups = torch.tensor([[1, 1, 2]])
    # Pairs of different elements: (0,2), (1,2) and their mirrors, each cos = 0.5/sqrt(0.5).
    expected = 0.5 / (0.5**0.5)
    got = element_contrast_loss(a, node_mask, token_mask, groups)
    assert abs(float(got) - expected) < 1e-12
    # Disjoint rows -> 0; one group only -> 0 and still differentiable.
    b = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)[:, None]
    assert float(element_contrast_loss(b, node_mask[:, :2], token_mask, groups[:, 1:])) == 0.0
    x = a.clone().requires_grad_(True)
    same = element_contrast_loss(x, node_mask, token_mask, torch.tensor([[7, 7, 7]]))
    same.backward()
    assert float(same.detach()) == 0.0 and x.grad is not None
    # Padded atoms never count, whatever their group.
    padded = torch.cat([a, a[:, :, :1]], dim=2)
    mask4 = torch.tensor([[True, True, True, False]])
    got4 = element_contrast_loss(padded, mask4, token_mask, torch.tensor([[1, 1, 2, 3]]))
    assert abs(float(got4) - expected) < 1e-12
