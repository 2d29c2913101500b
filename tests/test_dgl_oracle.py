"""Upstream ALIGNN (DGL) is the oracle: the pure-torch model must give its numbers.

Same weights (seeded random Linear weights, BatchNorm statistics far from the defaults) are loaded
into upstream ``alignn.models.alignn.ALIGNN`` and into ``ALIGNNText`` with ``strict=True``, and
both run on the same crystal graphs: a 1-atom fcc Cu, 2-atom diamond Si, 5-atom cubic SrTiO3, a
triclinic 5-atom cell and the 135-atom SrTiO3 3x3x3 supercell, one at a time and all in one batch.

Needs the dgl extra (dgl 2.1.0 + alignn); skipped without it.
"""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

dgl_backend = pytest.importorskip("fga_tui.model.dgl_backend")
try:
    dgl = dgl_backend.import_dgl()
except ImportError as exc:
    pytest.skip(f"DGL unavailable: {exc}", allow_module_level=True)
pytest.importorskip("alignn")
pytest.importorskip("jarvis.core.atoms")

from fga_tui.io.types import Structure  # noqa: E402
from fga_tui.model.alignn_text import ALIGNNText  # noqa: E402
from fga_tui.model.batch import collate_graphs  # noqa: E402
from fga_tui.model.config import ModelConfig  # noqa: E402
from fga_tui.model.hooks import run_with_cache  # noqa: E402
from fga_tui.structure.graph import build_graph  # noqa: E402
from fga_tui.structure.types import CrystalGraph  # noqa: E402

pytestmark = [
    pytest.mark.dgl,
    # alignn's builder passes numpy's copy=False protocol a tensor; harmless, not ours.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:alignn.graphs"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:alignn.models.alignn"),
]

TOL = 1e-5  # absolute, on predictions
FEATURE_TOL = 1e-4  # absolute, on per-stage node features (magnitudes up to ~10)

SMALL = {"hidden_features": 64, "embedding_features": 32, "alignn_layers": 3, "gcn_layers": 2}
TINY = {"hidden_features": 32, "embedding_features": 16, "alignn_layers": 2, "gcn_layers": 2}


def _cells() -> dict[str, Structure]:
    fcc = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    sto_frac = np.array(
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], float
    )
    sto = ("Sr", "Ti", "O", "O", "O")
    shifts = np.array([(i, j, k) for i in range(3) for j in range(3) for k in range(3)], float)
    triclinic = np.array([[4.3, 0.0, 0.0], [0.9, 5.0, 0.0], [1.1, -0.7, 6.4]])
    triclinic_frac = np.array(
        [[0.1, 0.2, 0.3], [0.6, 0.45, 0.8], [0.35, 0.85, 0.15], [0.8, 0.1, 0.55], [0.3, 0.6, 0.62]]
    )
    return {
        "Cu_fcc_1": Structure(fcc * 3.615, np.zeros((1, 3)), ("Cu",)),
        "Si_diamond_2": Structure(fcc * 5.43, np.array([[0, 0, 0], [0.25] * 3]), ("Si", "Si")),
        "SrTiO3_5": Structure(np.eye(3) * 3.905, sto_frac, sto),
        "triclinic_5": Structure(triclinic, triclinic_frac, ("Li", "Mn", "O", "O", "P")),
        "SrTiO3_3x3x3_135": Structure(
            np.eye(3) * 3.905 * 3,
            ((sto_frac[None, :, :] + shifts[:, None, :]) / 3).reshape(-1, 3),
            sto * 27,
        ),
    }


@pytest.fixture(scope="module")
def cells() -> dict[str, Structure]:
    return _cells()


@pytest.fixture(scope="module")
def graphs(cells: dict[str, Structure]) -> dict[str, CrystalGraph]:
    """The graphs both models run on: ``build_graph``'s; the DGL side gets ``to_dgl`` of the
    same graph, so these tests isolate the model from the graph builder."""
    return {name: build_graph(s) for name, s in cells.items()}


def _randomize_(model: nn.Module, seed: int) -> None:
    """Seeded Linear weights with unit-ish gain and BatchNorm statistics far from (0, 1), so
    that eval-mode BN, biases and every layer's weights matter to the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                fan_in = module.weight.shape[1]
                w = torch.randn(module.weight.shape, generator=gen) * (1.2 / math.sqrt(fan_in))
                module.weight.copy_(w)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, nn.BatchNorm1d):
                c = module.num_features
                module.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                module.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(c, generator=gen) * 0.2)
                module.num_batches_tracked.fill_(11)


def _pair(kwargs: dict[str, Any], seed: int) -> tuple[nn.Module, ALIGNNText]:
    """(upstream ALIGNN, ALIGNNText) with identical random weights, both in eval mode."""
    upstream = dgl_backend.upstream_model(None, kwargs)
    _randomize_(upstream, seed)
    ours = ALIGNNText(ModelConfig(**kwargs))
    ours.load_state_dict(upstream.state_dict(), strict=True)
    return upstream, ours.eval()


def _ours(model: ALIGNNText, graphs: list[CrystalGraph]):
    with torch.no_grad():
        return model(collate_graphs(graphs))


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def test_import_dgl_is_cached() -> None:
    assert dgl_backend.import_dgl() is dgl_backend.import_dgl() is dgl


def test_missing_dgl_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(dgl_backend, "_dgl", None)
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "dgl" else real_find_spec(name, *a),
    )
    with pytest.raises(ImportError, match=r"pip install 'fga-tui\[dgl\]'"):
        dgl_backend.import_dgl()


def test_a_dgl_that_fails_even_with_shims_leaves_no_modules_behind(tmp_path: Path) -> None:
    """A broken DGL: ImportError with the hint, and no ``dgl.*`` or shim left registered."""
    fake = tmp_path / "dgl"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "from . import core\nraise OSError('libdgl.so: cannot open')\n"
    )
    (fake / "core.py").write_text("")
    script = textwrap.dedent(
        """
        import sys
        from fga_tui.model import dgl_backend
        try:
            dgl_backend.import_dgl()
        except ImportError as exc:
            assert "fga-tui[dgl]" in str(exc) and "libdgl.so" in str(exc), exc
        else:
            raise SystemExit("no ImportError")
        left = [m for m in sys.modules if m.split(".")[0] == "dgl"]
        left += [m for m in sys.modules if m.split(".")[:2] == ["setuptools", "extern"]]
        assert not left, left
        assert dgl_backend._dgl is None
        """
    )
    env_path = [str(tmp_path), *sys.path]
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": ":".join(p for p in env_path if p)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def small_pair() -> tuple[nn.Module, ALIGNNText]:
    return _pair(SMALL, seed=1)


def test_to_dgl_line_graph_is_dgls_own_line_graph(graphs: dict[str, CrystalGraph]) -> None:
    for name, graph in graphs.items():
        g, lg = dgl_backend.to_dgl(graph)  # raises if DGL's line_graph order differs
        assert g.num_nodes() == graph.num_nodes and g.num_edges() == graph.num_edges, name
        fresh = g.line_graph(shared=True)
        fresh.apply_edges(importlib.import_module("alignn.graphs").compute_bond_cosines)
        assert torch.equal(fresh.edata["h"], lg.edata["h"]), name
        back = dgl_backend.from_dgl(g, lg, graph.atomic_numbers)
        for field in ("atomic_numbers", "atom_features", "edge_src", "edge_dst", "edge_r"):
            assert np.array_equal(getattr(back, field), getattr(graph, field)), (name, field)
        for field in ("lg_src", "lg_dst", "lg_h"):
            assert np.array_equal(getattr(back, field), getattr(graph, field)), (name, field)


def test_to_dgl_rejects_a_line_graph_in_another_order(graphs: dict[str, CrystalGraph]) -> None:
    graph = graphs["Si_diamond_2"]
    swapped = CrystalGraph(
        graph.atomic_numbers,
        graph.atom_features,
        graph.edge_src,
        graph.edge_dst,
        graph.edge_r,
        graph.lg_src[::-1].copy(),
        graph.lg_dst[::-1].copy(),
        graph.lg_h[::-1].copy(),
    )
    with pytest.raises(ValueError, match="line graph"):
        dgl_backend.to_dgl(swapped)


def test_small_model_matches_upstream_per_structure(
    small_pair: tuple[nn.Module, ALIGNNText],
    graphs: dict[str, CrystalGraph],
) -> None:
    upstream, ours = small_pair
    errors = {}
    for name, graph in graphs.items():
        expected = dgl_backend.upstream_forward(upstream, [graph])
        got = _ours(ours, [graph])
        errors[name] = _max_err(got, expected)
    assert max(errors.values()) <= TOL, errors


def test_small_model_matches_upstream_batched(
    small_pair: tuple[nn.Module, ALIGNNText],
    graphs: dict[str, CrystalGraph],
) -> None:
    upstream, ours = small_pair
    all_graphs = list(graphs.values())
    expected = dgl_backend.upstream_forward(upstream, all_graphs)  # one dgl.batch
    got = _ours(ours, all_graphs)
    errors = {name: _max_err(got[i], expected[i]) for i, name in enumerate(graphs)}
    assert max(errors.values()) <= TOL, errors
    # A batch must not mix graphs: each row equals that graph run alone.
    for i, graph in enumerate(all_graphs):
        assert _max_err(got[i : i + 1], _ours(ours, [graph])) <= TOL


def test_stage_features_match_upstream_layer_outputs(
    small_pair: tuple[nn.Module, ALIGNNText], graphs: dict[str, CrystalGraph]
) -> None:
    """``embed``, ``alignn.k`` and ``gcn.k`` are upstream's atom_embedding / layer outputs."""
    upstream, ours = small_pair
    seen: dict[str, torch.Tensor] = {}

    def hook(stage: str) -> Callable[..., None]:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            seen[stage] = output[0] if isinstance(output, tuple) else output

        return record

    modules = {"embed": upstream.atom_embedding}
    modules |= {f"alignn.{k}": m for k, m in enumerate(upstream.alignn_layers)}
    modules |= {f"gcn.{k}": m for k, m in enumerate(upstream.gcn_layers)}
    handles = [m.register_forward_hook(hook(stage)) for stage, m in modules.items()]
    try:
        batch = [graphs["SrTiO3_5"], graphs["triclinic_5"]]
        dgl_backend.upstream_forward(upstream, batch)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        _, cache = run_with_cache(ours, collate_graphs(batch), names=list(modules))
    assert list(cache) == list(modules)
    errors = {s: _max_err(cache[s], seen[s]) for s in cache}
    assert max(errors.values()) <= FEATURE_TOL, errors


def test_default_config_matches_upstream() -> None:
    upstream, ours = _pair({}, seed=2)
    assert len(upstream.state_dict()) == 279
    graph = dgl_backend.from_dgl(*dgl_backend.upstream_graph(_cells()["SrTiO3_5"]))
    err = _max_err(_ours(ours, [graph]), dgl_backend.upstream_forward(upstream, [graph]))
    assert err <= TOL


def test_log_link_model_with_0_dim_bias_loads_and_matches(
    graphs: dict[str, CrystalGraph],
) -> None:
    upstream, ours = _pair({**TINY, "link": "log"}, seed=3)
    assert upstream.state_dict()["fc.bias"].dim() == 0
    batch = [graphs["Si_diamond_2"], graphs["SrTiO3_5"]]
    expected = dgl_backend.upstream_forward(upstream, batch)
    assert _max_err(_ours(ours, batch), expected) <= TOL


def test_classification_model_log_softmax_matches(graphs: dict[str, CrystalGraph]) -> None:
    upstream, ours = _pair({**TINY, "classification": True, "num_classes": 3}, seed=4)
    batch = [graphs["Cu_fcc_1"], graphs["triclinic_5"]]
    expected = dgl_backend.upstream_forward(upstream, batch)
    got = _ours(ours, batch)
    assert got.shape == (2, 3)
    assert _max_err(got, expected) <= TOL
    assert torch.allclose(got.exp().sum(dim=1), torch.ones(2), atol=1e-6)


def test_run_upstream_takes_a_state_dict_and_crystal_graphs(
    small_pair: tuple[nn.Module, ALIGNNText], graphs: dict[str, CrystalGraph]
) -> None:
    upstream, ours = small_pair
    graph = graphs["Cu_fcc_1"]
    out = dgl_backend.run_upstream(upstream.state_dict(), SMALL, [graph])
    assert out.shape == (1, 1)
    assert _max_err(out, _ours(ours, [graph])) <= TOL


def test_our_graph_builder_and_model_reproduce_upstreams_pipeline(
    cells: dict[str, Structure],
) -> None:
    """End to end: structure -> (upstream builder + upstream ALIGNN) vs (build_graph +
    ALIGNNText); the supercell's tied neighbour shells make this a check of the builder too."""
    upstream, ours = _pair(TINY, seed=5)
    for name, structure in cells.items():
        expected = dgl_backend.upstream_forward(upstream, [dgl_backend.upstream_graph(structure)])
        assert _max_err(_ours(ours, [build_graph(structure)]), expected) <= TOL, name
