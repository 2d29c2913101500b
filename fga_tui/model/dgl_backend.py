"""The optional DGL layer: import shim, CrystalGraph <-> DGL conversion, upstream ALIGNN runner.

This is the only module of fga-tui that knows DGL. The engine never needs it (the model is pure
torch); it exists so upstream ALIGNN (``alignn.models.alignn.ALIGNN``, DGL message passing) can
serve as a test oracle and a benchmark baseline on exactly the same graphs and weights.
Install it with ``pip install 'fga-tui[dgl]'`` (dgl 2.1.0, pandas, alignn).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from fga_tui.io.types import Structure
from fga_tui.structure.types import CrystalGraph

INSTALL_HINT = "install the dgl extra: pip install 'fga-tui[dgl]'"

_dgl: types.ModuleType | None = None


def _dgl_module_names() -> set[str]:
    return {name for name in sys.modules if name == "dgl" or name.startswith("dgl.")}


def _forget(names: set[str]) -> None:
    for name in names:
        sys.modules.pop(name, None)


def _import_packaging() -> types.ModuleType | None:
    """``packaging`` (with ``packaging.version``) from wherever it imports, or None."""
    with contextlib.suppress(ImportError):
        importlib.import_module("setuptools")  # puts setuptools' vendored copies on sys.path
    for name in ("packaging", "setuptools._vendor.packaging"):
        try:
            module = importlib.import_module(name)
            importlib.import_module(f"{name}.version")
        except ImportError:
            continue
        return module
    return None


def _register_shims() -> set[str]:
    """Register the two stand-ins PyPI's dgl 2.1.0 needs on current torch; return their names.

    - ``setuptools.extern.packaging``: ``dgl.utils`` falls back to it when ``packaging`` is not
      importable, but setuptools >= 70 dropped ``setuptools.extern`` (and current torch needs
      setuptools >= 77). We alias whichever ``packaging`` imports (the standalone distribution,
      or setuptools' vendored copy, which ``import setuptools`` puts on ``sys.path``).
    - ``dgl.graphbolt``: dgl 2.1.0 ships graphbolt's C++ library only for torch 2.0-2.2.1 and
      its ``__init__`` raises FileNotFoundError otherwise (or ModuleNotFoundError where a
      torchdata without ``datapipes`` is installed). ``dgl.distributed`` imports it but only
      touches it when graphbolt is actually used, which fga-tui never does, so an empty package
      module is enough.
    """
    added: set[str] = set()
    try:
        importlib.import_module("setuptools.extern.packaging")
    except ImportError:
        packaging = _import_packaging()
        if packaging is not None:
            extern = sys.modules.get("setuptools.extern")
            if extern is None:
                extern = types.ModuleType("setuptools.extern")
                extern.__path__ = []
                sys.modules["setuptools.extern"] = extern
                added.add("setuptools.extern")
            extern.packaging = packaging  # type: ignore[attr-defined]
            sys.modules["setuptools.extern.packaging"] = packaging
            added.add("setuptools.extern.packaging")
    graphbolt = types.ModuleType("dgl.graphbolt", "Empty stand-in: fga-tui never uses graphbolt.")
    graphbolt.__path__ = []
    sys.modules["dgl.graphbolt"] = graphbolt
    added.add("dgl.graphbolt")
    return added


def import_dgl() -> types.ModuleType:
    """Return the ``dgl`` module, importing it once (cached), with shims only if needed.

    The plain import is tried first so an environment where DGL works as shipped is left
    untouched. When it fails, the half-imported ``dgl.*`` modules are dropped, the shims of
    ``_register_shims`` are registered and the import is retried; if that fails too, every
    module the attempt added is removed again and ImportError is raised.
    """
    global _dgl
    if _dgl is not None:
        return _dgl
    if importlib.util.find_spec("dgl") is None:
        raise ImportError(f"DGL is not installed; {INSTALL_HINT}")
    before = _dgl_module_names()
    try:
        module = importlib.import_module("dgl")
    except Exception as plain_error:
        _forget(_dgl_module_names() - before)
        shims = _register_shims()
        try:
            module = importlib.import_module("dgl")
        except Exception as exc:
            _forget((_dgl_module_names() - before) | shims)
            raise ImportError(
                f"DGL is installed but cannot be imported ({exc}; without shims: "
                f"{plain_error}); {INSTALL_HINT} (dgl==2.1.0)"
            ) from exc
    _dgl = module
    return module


def _as_numpy(t: torch.Tensor, dtype: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype, copy=False))


def bond_cosines(r_src: torch.Tensor, r_dst: torch.Tensor) -> torch.Tensor:
    """Upstream ``compute_bond_cosines`` for line-graph edges ``a->b, b->c``: the cosine of the
    angle at b, ``clamp((-r_ab)·r_bc / (|r_ab| |r_bc|), -1, 1)`` (same float32 operations)."""
    r1 = -r_src
    r2 = r_dst
    cos = torch.sum(r1 * r2, dim=1) / (torch.norm(r1, dim=1) * torch.norm(r2, dim=1))
    return torch.clamp(cos, -1, 1)


def to_dgl(graph: CrystalGraph) -> tuple[Any, Any]:
    """A ``CrystalGraph`` as upstream's DGL pair ``(g, lg)``.

    ``g.ndata["atom_features"]`` [N, F], ``g.edata["r"]`` [E, 3] (float32), and
    ``lg = g.line_graph(shared=True)`` with ``lg.edata["h"]`` [T] taken from ``graph.lg_h``.
    Raises ValueError if DGL's line graph does not list the bond pairs in the order of
    ``graph.lg_src/lg_dst`` (the model would then see a different line graph than upstream's).
    """
    dgl = import_dgl()
    src = torch.from_numpy(np.asarray(graph.edge_src, dtype=np.int64))
    dst = torch.from_numpy(np.asarray(graph.edge_dst, dtype=np.int64))
    g = dgl.graph((src, dst), num_nodes=graph.num_nodes)
    g.ndata["atom_features"] = torch.as_tensor(graph.atom_features, dtype=torch.float32)
    g.edata["r"] = torch.as_tensor(graph.edge_r, dtype=torch.float32)
    lg = g.line_graph(shared=True)
    lsrc, ldst = lg.edges()
    if not (
        np.array_equal(lsrc.numpy(), np.asarray(graph.lg_src))
        and np.array_equal(ldst.numpy(), np.asarray(graph.lg_dst))
    ):
        raise ValueError(
            "the CrystalGraph's line graph differs from DGL's line_graph(shared=True) "
            f"({graph.num_lg_edges} vs {lg.num_edges()} bond pairs, or a different order)"
        )
    lg.edata["h"] = torch.as_tensor(graph.lg_h, dtype=torch.float32)
    return g, lg


def from_dgl(
    g: Any, lg: Any, atomic_numbers: Sequence[int] | np.ndarray | None = None
) -> CrystalGraph:
    """Upstream's DGL pair ``(g, lg)`` as a ``CrystalGraph`` (edge and bond-pair order kept).

    DGL graphs carry no atomic numbers: pass them, or they are 0 ("unknown", as
    ``structure.features.atomic_number`` says for an unknown symbol). ``lg_h`` is read from
    ``lg.edata["h"]``, or computed upstream's way when the line graph has no angles yet.
    """
    src, dst = g.edges()
    lsrc, ldst = lg.edges()
    r = g.edata["r"].detach().to(torch.float32)
    h = lg.edata["h"] if "h" in lg.edata else bond_cosines(r[lsrc.long()], r[ldst.long()])
    n = g.num_nodes()
    z = np.zeros(n, np.int64) if atomic_numbers is None else np.asarray(atomic_numbers, np.int64)
    if z.shape != (n,):
        raise ValueError(f"{z.shape[0]} atomic numbers for a graph of {n} atoms")
    return CrystalGraph(
        atomic_numbers=z,
        atom_features=_as_numpy(g.ndata["atom_features"], np.float32),
        edge_src=_as_numpy(src, np.int64),
        edge_dst=_as_numpy(dst, np.int64),
        edge_r=_as_numpy(r, np.float32),
        lg_src=_as_numpy(lsrc, np.int64),
        lg_dst=_as_numpy(ldst, np.int64),
        lg_h=_as_numpy(h, np.float32),
    )


GraphLike = CrystalGraph | tuple[Any, Any]


def batch_dgl(graphs: Sequence[GraphLike]) -> tuple[Any, Any]:
    """``dgl.batch`` of the atom graphs and of the line graphs (as upstream's collate does)."""
    if not graphs:
        raise ValueError("batch_dgl needs at least one graph")
    dgl = import_dgl()
    pairs = [to_dgl(item) if isinstance(item, CrystalGraph) else item for item in graphs]
    return dgl.batch([g for g, _ in pairs]), dgl.batch([lg for _, lg in pairs])


def _upstream_module(name: str) -> types.ModuleType:
    """An ``alignn`` module with DGL bound: alignn binds ``dgl = None`` when it was imported
    before DGL was importable (i.e. before our shims), so such a module is reloaded."""
    import_dgl()
    with warnings.catch_warnings():
        # alignn's pydantic v1-style config and numpy-2 copy semantics warn; nothing to act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(name)
        if module.dgl is None:
            module = importlib.reload(module)
    return module


def upstream_graph(structure: Structure) -> tuple[Any, Any]:
    """Upstream's own ``(g, lg)`` for ``structure``: jarvis neighbour search and
    ``Graph.atom_dgl_multigraph`` with the released models' settings (k-nearest, cutoff 8 Å,
    12 neighbours, CGCNN features, canonized images, line graph). The graph builder's oracle."""
    from jarvis.core.atoms import Atoms

    graphs = _upstream_module("alignn.graphs")
    atoms = Atoms(
        lattice_mat=np.asarray(structure.lattice, dtype=float),
        coords=np.asarray(structure.frac_coords, dtype=float),
        elements=list(structure.elements),
        cartesian=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return graphs.Graph.atom_dgl_multigraph(
            atoms,
            neighbor_strategy="k-nearest",
            cutoff=8.0,
            max_neighbors=12,
            atom_features="cgcnn",
            use_canonize=True,
            compute_line_graph=True,
        )


def upstream_model(
    state_dict: Mapping[str, torch.Tensor] | None, config_kwargs: Mapping[str, Any]
) -> torch.nn.Module:
    """Upstream ``ALIGNN(ALIGNNConfig(name="alignn", **config_kwargs))`` in eval mode.

    ``state_dict`` is loaded with ``strict=True``; ``None`` keeps upstream's random init.
    """
    upstream = _upstream_module("alignn.models.alignn")
    kwargs = {k: v for k, v in config_kwargs.items() if k != "name"}
    model = upstream.ALIGNN(upstream.ALIGNNConfig(name="alignn", **kwargs))
    if state_dict is not None:
        model.load_state_dict(dict(state_dict), strict=True)
    return model.eval()


def upstream_forward(model: torch.nn.Module, graphs: Sequence[GraphLike]) -> torch.Tensor:
    """Upstream forward over one DGL batch of ``graphs``, reshaped to [B, out] (upstream
    squeezes its output; ALIGNNText does not)."""
    g, lg = batch_dgl(graphs)
    with torch.no_grad():
        out = model((g, lg, None))
    return out.reshape(len(graphs), -1)


def run_upstream(
    model_state_dict: Mapping[str, torch.Tensor] | None,
    upstream_config_kwargs: Mapping[str, Any],
    graphs: Sequence[GraphLike],
) -> torch.Tensor:
    """Upstream ALIGNN's prediction [B, out] for ``graphs`` (CrystalGraphs or DGL ``(g, lg)``
    pairs), with the given weights: the reference the pure-torch model is checked against."""
    model = upstream_model(model_state_dict, upstream_config_kwargs)
    return upstream_forward(model, graphs)
