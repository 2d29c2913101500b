"""A Cartesian sample builds upstream's exact graph (tie shells depend on the last bits)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fga_tui import engine


def upstream_edges(lattice, coords, elements, cartesian):
    graphs = pytest.importorskip("alignn.graphs")
    from jarvis.core.atoms import Atoms

    atoms = Atoms(lattice_mat=lattice, coords=coords, elements=elements, cartesian=cartesian)
    res = graphs.nearest_neighbor_edges(atoms=atoms, cutoff=8, max_neighbors=12, use_canonize=True)
    edges = res[0] if isinstance(res, tuple) else res
    out = graphs.build_undirected_edgedata(atoms=atoms, edges=edges)
    u, v, r = (np.asarray(x) for x in out[:3])
    return sorted(
        zip(u.tolist(), v.tolist(), np.round(np.asarray(r, float), 5).tolist(), strict=True)
    )


@pytest.mark.parametrize("a", [5.43, 5.431, 5.47])
def test_cartesian_silicon_matches_upstream(tmp_path, a):
    lattice = [[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]
    frac = np.array([[0, 0, 0], [0.25, 0.25, 0.25]])
    cart = (frac @ np.array(lattice)).tolist()
    path = tmp_path / "si.json"
    path.write_text(
        json.dumps(
            {
                "jid": "si",
                "atoms": {
                    "lattice_mat": lattice,
                    "coords": cart,
                    "elements": ["Si", "Si"],
                    "cartesian": True,
                },
            }
        )
    )
    sample = engine.load_sample(path)
    assert sample.structure.source_cart is not None
    graph = engine.prepare_sample(None, sample).graph
    ours = sorted(
        zip(
            graph.edge_src.tolist(),
            graph.edge_dst.tolist(),
            np.round(graph.edge_r.astype(float), 5).tolist(),
            strict=True,
        )
    )
    assert ours == upstream_edges(lattice, cart, ["Si", "Si"], True)
