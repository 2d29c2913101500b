"""The crystal graph equals upstream ALIGNN's, checked against upstream's own functions.

Oracle: ``alignn.graphs.nearest_neighbor_edges`` + ``build_undirected_edgedata`` (they run without
DGL on a jarvis ``Atoms``), a plain-loop line graph and upstream's ``compute_bond_cosines``. One
test runs the real ``Graph.atom_dgl_multigraph`` through DGL when DGL is importable. Edge order
is not part of the contract, so edges are compared as multisets of (src, dst, r) and line-graph
edges as multisets of (bond e1, bond e2, cosine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pytest

from fga_tui.io.types import Structure
from fga_tui.structure.features import (
    CGCNN_DIM,
    atomic_number,
    cgcnn_features,
    element_symbols,
)
from fga_tui.structure.graph import build_graph, build_graphs, line_graph
from fga_tui.structure.neighbors import all_neighbors, frac_from_cart
from fga_tui.structure.types import CrystalGraph

FIXTURES = Path(__file__).parent / "fixtures"


def _fcc_primitive(a: float) -> np.ndarray:
    return (np.ones((3, 3)) - np.eye(3)) * (a / 2)


def _cell(lattice, frac, elements) -> Structure:
    return Structure(
        np.asarray(lattice, dtype=np.float64),
        np.asarray(frac, dtype=np.float64).reshape(-1, 3),
        tuple(elements),
    )


def cu_fcc() -> Structure:
    return _cell(_fcc_primitive(3.615), [[0, 0, 0]], ["Cu"])


def si_diamond(a: float = 5.43) -> Structure:
    return _cell(_fcc_primitive(a), [[0, 0, 0], [0.25, 0.25, 0.25]], ["Si", "Si"])


def srtio3() -> Structure:
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return _cell(np.eye(3) * 3.905, frac, ["Sr", "Ti", "O", "O", "O"])


def triclinic() -> Structure:
    lattice = [[4.1, 0.3, -0.2], [0.9, 5.3, 0.4], [-0.7, 1.1, 6.2]]
    frac = [[0.02, 0.11, 0.07], [0.48, 0.37, 0.61], [0.81, 0.72, 0.23], [0.33, 0.9, 0.88]]
    return _cell(lattice, frac, ["Ba", "Hf", "O", "Li"])


def supercell(s: Structure, reps: tuple[int, int, int]) -> Structure:
    shifts = np.array(
        [(i, j, k) for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])]
    )
    frac = ((s.frac_coords[None, :, :] + shifts[:, None, :]) / np.array(reps)).reshape(-1, 3)
    lattice = s.lattice * np.array(reps)[:, None]
    return _cell(lattice, frac, s.elements * len(shifts))


def cubic4(a: float, elements: list[str]) -> Structure:
    """Four atoms on the fcc sites of a cubic cell."""
    frac = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return _cell(np.eye(3) * a, frac, elements)


def jiggled(s: Structure, scale: float, seed: int) -> Structure:
    """``s`` with every fractional coordinate moved by N(0, scale): breaks exact ties."""
    noise = np.random.default_rng(seed).normal(scale=scale, size=s.frac_coords.shape)
    return _cell(s.lattice, s.frac_coords + noise, s.elements)


def nacl() -> Structure:
    atoms = json.loads((FIXTURES / "nacl.json").read_text())["atoms"]
    assert atoms["cartesian"] is False
    return _cell(atoms["lattice_mat"], atoms["coords"], atoms["elements"])


# ---------------------------------------------------------------- upstream oracle


def upstream_edges(s: Structure, cutoff: float = 8.0, use_canonize: bool = True):
    """(src, dst, r float32) from upstream's own k-NN edge builder."""
    graphs = pytest.importorskip("alignn.graphs")
    from jarvis.core.atoms import Atoms

    atoms = Atoms(
        lattice_mat=s.lattice, coords=s.frac_coords, elements=list(s.elements), cartesian=False
    )
    edges, _ = graphs.nearest_neighbor_edges(
        atoms=atoms, cutoff=cutoff, max_neighbors=12, use_canonize=use_canonize
    )
    u, v, r, _ = graphs.build_undirected_edgedata(atoms, edges)
    return u.numpy().astype(np.int64), v.numpy().astype(np.int64), r.numpy().astype(np.float32)


def loop_line_graph(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference line graph, spelled out: e1 -> e2 iff dst(e1) == src(e2) and e1 != e2."""
    out: dict[int, list[int]] = {}
    for e, s in enumerate(src.tolist()):
        out.setdefault(s, []).append(e)
    pairs = [(e1, e2) for e1, d in enumerate(dst.tolist()) for e2 in out.get(d, []) if e2 != e1]
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def upstream_cosines(r: np.ndarray, lg_src: np.ndarray, lg_dst: np.ndarray) -> np.ndarray:
    """Upstream's ``compute_bond_cosines`` fed through a stand-in for DGL's edge batch."""
    graphs = pytest.importorskip("alignn.graphs")
    import torch

    rt = torch.from_numpy(r)
    batch = types.SimpleNamespace(src={"r": rt[lg_src]}, dst={"r": rt[lg_dst]})
    return graphs.compute_bond_cosines(batch)["h"].numpy()


def upstream_reference(s: Structure, cutoff: float = 8.0, use_canonize: bool = True):
    u, v, r = upstream_edges(s, cutoff, use_canonize)
    lg_src, lg_dst = loop_line_graph(u, v)
    return u, v, r, lg_src, lg_dst, upstream_cosines(r, lg_src, lg_dst)


# ---------------------------------------------------------------- multiset comparison


def _bond_keys(src, dst, r) -> np.ndarray:
    """int64 [E, 5]: (src, dst, r in mÅ) — a bond identity robust to sub-µÅ noise."""
    return np.column_stack([src, dst, np.rint(np.asarray(r, np.float64) * 1e3)]).astype(np.int64)


def _sorted_rows(keys: np.ndarray, values: np.ndarray):
    order = np.lexsort(keys.T[::-1])
    return keys[order], values[order]


def assert_same_edges(g: CrystalGraph, src, dst, r) -> None:
    mine_k, mine_r = _sorted_rows(_bond_keys(g.edge_src, g.edge_dst, g.edge_r), g.edge_r)
    ref_k, ref_r = _sorted_rows(_bond_keys(src, dst, r), np.asarray(r, np.float32))
    assert mine_k.shape == ref_k.shape
    np.testing.assert_array_equal(mine_k, ref_k)
    np.testing.assert_allclose(mine_r, ref_r, rtol=0, atol=1e-6)


def assert_same_line_graph(g: CrystalGraph, src, dst, r, lg_src, lg_dst, lg_h) -> None:
    def rows(es, ed, er, ls, ld):
        bonds = _bond_keys(es, ed, er)
        return np.concatenate([bonds[ls], bonds[ld]], axis=1)

    mine_k, mine_h = _sorted_rows(
        rows(g.edge_src, g.edge_dst, g.edge_r, g.lg_src, g.lg_dst), g.lg_h
    )
    ref_k, ref_h = _sorted_rows(rows(src, dst, r, lg_src, lg_dst), np.asarray(lg_h, np.float32))
    assert mine_k.shape == ref_k.shape
    np.testing.assert_array_equal(mine_k, ref_k)
    np.testing.assert_allclose(mine_h, ref_h, rtol=0, atol=1e-6)


def assert_matches_upstream(s: Structure, **kwargs) -> CrystalGraph:
    u, v, r, lg_src, lg_dst, lg_h = upstream_reference(s, **kwargs)
    g = build_graph(s, **kwargs)
    assert_same_edges(g, u, v, r)
    assert_same_line_graph(g, u, v, r, lg_src, lg_dst, lg_h)
    return g


# ---------------------------------------------------------------- features


def test_cgcnn_features_equal_jarvis_get_node_attributes_for_every_element():
    specie = pytest.importorskip("jarvis.core.specie")
    symbols = [*element_symbols(), "Xx"]  # Z 101-103 and an unknown symbol use the Z=100 row
    mine = cgcnn_features([atomic_number(sym) for sym in symbols])
    ref = np.array([specie.get_node_attributes(sym, "cgcnn") for sym in symbols], np.float32)
    assert mine.shape == (len(symbols), CGCNN_DIM) and mine.dtype == np.float32
    np.testing.assert_array_equal(mine, ref)
    np.testing.assert_array_equal(mine[-1], mine[99])


def test_atomic_numbers_follow_jarvis_elements_json():
    specie = pytest.importorskip("jarvis.core.specie")
    assert len(element_symbols()) == len(specie.chem_data) == 103
    for sym, props in specie.chem_data.items():
        assert atomic_number(sym) == props["Z"]
    assert atomic_number("Ba") == 56 and atomic_number("Xx") == 0


def test_building_a_graph_imports_neither_torch_dgl_nor_jarvis_atoms():
    code = (
        "import sys, numpy as np\n"
        "from fga_tui.io.types import Structure\n"
        "from fga_tui.structure.graph import build_graph\n"
        "from fga_tui.structure.symmetry import analyse_symmetry\n"
        "s = Structure(np.eye(3) * 3.9, np.zeros((1, 3)), ('Po',))\n"
        "g = build_graph(s); analyse_symmetry(s)\n"
        "assert g.atom_features.shape == (1, 92), g.atom_features.shape\n"
        "bad = [m for m in ('torch', 'dgl', 'jarvis.core.atoms', 'jarvis.core.specie', 'textual')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------- graph == upstream


def test_cu_fcc_self_image_bonds_are_doubled_24_edges_552_angles():
    g = assert_matches_upstream(cu_fcc())
    assert (g.num_edges, g.num_lg_edges) == (24, 552)
    # Quirk A: 12 physical bonds, each directed self-image edge stored twice.
    assert len(np.unique(np.rint(g.edge_r * 1e3), axis=0)) == 12


def test_si_diamond_56_edges_1520_angles():
    g = assert_matches_upstream(si_diamond(5.43))
    assert (g.num_edges, g.num_lg_edges) == (56, 1520)
    np.testing.assert_array_equal(np.bincount(g.edge_src), [28, 28])


def test_si_diamond_tie_shell_is_decided_by_float64_last_bits_like_upstream():
    # a = 5.431: the second shell (12 Si at equal distance on paper) differs in the last bits,
    # so site 1 keeps only part of it. Upstream does the same: 50 edges, not 56.
    g = assert_matches_upstream(si_diamond(5.431))
    assert (g.num_edges, g.num_lg_edges) == (50, 1226)


def test_srtio3_perovskite_matches_upstream():
    g = assert_matches_upstream(srtio3())
    assert (g.num_edges, g.num_lg_edges) == (76, 1184)


def test_triclinic_four_element_cell_matches_upstream():
    g = assert_matches_upstream(triclinic())
    assert g.num_edges > 4 * 12
    np.testing.assert_array_equal(g.atomic_numbers, [56, 72, 8, 3])


def test_random_cells_match_upstream():
    rng = np.random.default_rng(7)
    for _ in range(6):
        n = int(rng.integers(1, 6))
        lattice = np.diag(rng.uniform(3.0, 7.0, 3)) + rng.normal(scale=0.8, size=(3, 3))
        elements = rng.choice(["O", "Na", "Fe", "Bi"], size=n).tolist()
        assert_matches_upstream(_cell(lattice, rng.random((n, 3)), elements))


def test_supercells_with_100_plus_atoms_match_upstream():
    # 250-atom Si with the tie-sensitive lattice constant, and a perturbed 108-atom fcc oxide.
    assert assert_matches_upstream(supercell(si_diamond(5.431), (5, 5, 5))).num_nodes == 250
    big = jiggled(supercell(cubic4(4.2, ["Mg", "O", "O", "Mg"]), (3, 3, 3)), 0.003, seed=3)
    assert assert_matches_upstream(big).num_nodes == 108


def test_small_cutoff_grows_radius_like_upstream():
    # cutoff 2 Å finds nobody in Cu; upstream grows it to max(a, b, c), then doubles.
    assert assert_matches_upstream(cu_fcc(), cutoff=2.0).num_edges == 24
    molecule_in_box = _cell(
        np.eye(3) * 9.0, [[0, 0, 0], [0.12, 0, 0], [0, 0.11, 0.02]], ["C", "N", "O"]
    )
    assert_matches_upstream(molecule_in_box)


def test_without_canonize_matches_upstream():
    assert_matches_upstream(triclinic(), use_canonize=False)
    assert_matches_upstream(si_diamond(5.431), use_canonize=False)


def test_cartesian_input_matches_upstream_when_the_source_positions_are_passed():
    # jarvis searches with Cartesian input as given; frac @ round(L, 5) can differ in the last
    # bit and flip 12th-shell ties (at a = 5.47 the frac route gives 52 edges, upstream 50).
    graphs = pytest.importorskip("alignn.graphs")
    from jarvis.core.atoms import Atoms

    for a in (5.415, 5.46, 5.47):
        lattice = _fcc_primitive(a)
        cart = np.array([[0.0, 0.0, 0.0], [a / 4, a / 4, a / 4]])
        atoms = Atoms(lattice_mat=lattice, coords=cart, elements=["Si", "Si"], cartesian=True)
        edges, _ = graphs.nearest_neighbor_edges(
            atoms=atoms, cutoff=8.0, max_neighbors=12, use_canonize=True
        )
        u, v, r, _ = graphs.build_undirected_edgedata(atoms, edges)
        s = _cell(lattice, frac_from_cart(lattice, cart), ["Si", "Si"])
        np.testing.assert_array_equal(s.frac_coords, atoms.frac_coords)
        g = build_graph(s, cart_coords=cart)
        assert_same_edges(g, u.numpy(), v.numpy(), r.numpy().astype(np.float32))
        if a == 5.47:
            assert g.num_edges == 50 and build_graph(s).num_edges == 52


def test_nacl_fixture_matches_recorded_upstream_graph():
    ref = np.load(FIXTURES / "nacl.expected.npz")
    g = build_graph(nacl())
    assert (g.num_edges, g.num_lg_edges) == (60, 1752) == (ref["num_edges"], ref["num_lg_edges"])
    np.testing.assert_array_equal(g.atomic_numbers, ref["atomic_numbers"])
    np.testing.assert_array_equal(g.atom_features, ref["atom_features_in"])
    assert_same_edges(g, ref["edge_src"], ref["edge_dst"], ref["edge_r"])
    assert_same_line_graph(
        g,
        ref["edge_src"],
        ref["edge_dst"],
        ref["edge_r"],
        ref["lg_src"],
        ref["lg_dst"],
        ref["lg_h"],
    )
    np.testing.assert_array_equal(np.bincount(g.edge_dst), ref["in_degree"])


def test_edge_vectors_and_cosines_are_bit_identical_to_upstream():
    # Not just close: the same float64 arithmetic gives the same float32 bits, which is what
    # makes the 12th-shell tie decisions agree.
    # SrTiO3 has right angles: cos must be +0.0 like torch, not -0.0.
    for s in (si_diamond(5.431), triclinic(), srtio3()):
        u, v, r, _, _, lg_h = upstream_reference(s)
        g = build_graph(s)
        mine = np.sort(np.column_stack([g.edge_src, g.edge_dst, g.edge_r.view(np.int32)]), axis=0)
        ref = np.sort(np.column_stack([u, v, r.view(np.int32)]), axis=0)
        np.testing.assert_array_equal(mine, ref)
        np.testing.assert_array_equal(
            np.sort(g.lg_h.view(np.int32)), np.sort(lg_h.astype(np.float32).view(np.int32))
        )


def test_cell_list_search_finds_exactly_the_brute_force_neighbours():
    rng = np.random.default_rng(5)
    cells = [cu_fcc(), srtio3(), triclinic(), supercell(srtio3(), (2, 2, 2))]
    for _ in range(4):  # skewed cells, atoms partly outside [0, 1)
        n = int(rng.integers(2, 30))
        lattice = np.diag(rng.uniform(3, 12, 3)) + rng.normal(scale=1.5, size=(3, 3))
        cells.append(_cell(lattice, rng.random((n, 3)) * 1.6 - 0.3, ["O"] * n))
    for s in cells:
        for r in (2.0, 5.0, 8.0):
            found = [
                all_neighbors(s.lattice, s.frac_coords, r, method=m) for m in ("brute", "cells")
            ]
            rows = [
                np.column_stack([f.center, f.neighbor, f.image, f.distance.view(np.int64)])
                for f in found
            ]
            brute, cells_ = (x[np.lexsort(x.T[::-1])] for x in rows)
            assert brute.shape[0] > 0 or r < 5
            np.testing.assert_array_equal(brute, cells_)


# ---------------------------------------------------------------- layout contracts


def test_edges_come_in_reverse_pairs_and_line_graph_is_sorted():
    g = build_graph(triclinic())
    np.testing.assert_array_equal(g.edge_src[0::2], g.edge_dst[1::2])
    np.testing.assert_array_equal(g.edge_dst[0::2], g.edge_src[1::2])
    np.testing.assert_array_equal(g.edge_r[0::2], -g.edge_r[1::2])
    assert g.edge_r.dtype == np.float32 and g.lg_h.dtype == np.float32
    assert g.edge_src.dtype == np.int64 and g.lg_src.dtype == np.int64
    key = g.lg_src * g.num_edges + g.lg_dst
    assert np.all(np.diff(key) > 0)  # sorted by (e1, e2), no duplicates
    assert np.all(g.edge_dst[g.lg_src] == g.edge_src[g.lg_dst])
    assert not np.any(g.lg_src == g.lg_dst)
    ref_src, ref_dst = loop_line_graph(g.edge_src, g.edge_dst)
    np.testing.assert_array_equal(g.lg_src, ref_src)
    np.testing.assert_array_equal(g.lg_dst, ref_dst)
    # backtracking pairs a->b->a are present, with cosine +1
    back = (
        g.lg_dst
        == np.where(
            np.arange(g.num_edges) % 2 == 0, np.arange(g.num_edges) + 1, np.arange(g.num_edges) - 1
        )[g.lg_src]
    )
    assert back.sum() == g.num_edges
    np.testing.assert_allclose(g.lg_h[back], 1.0, rtol=0, atol=2e-7)  # float32 rounding


def test_line_graph_of_a_self_loop_excludes_the_loop_itself():
    lg_src, lg_dst = line_graph(np.array([0, 0, 1]), np.array([0, 1, 0]), 2)
    assert list(zip(lg_src.tolist(), lg_dst.tolist(), strict=True)) == [
        (0, 1),
        (1, 2),
        (2, 0),
        (2, 1),
    ]


def test_thousand_atom_cell_builds_with_bounded_memory():
    big = jiggled(supercell(cubic4(4.0, ["Ni", "Al", "Ni", "Al"]), (5, 5, 10)), 0.002, seed=11)
    tracemalloc.start()
    try:
        g = build_graph(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert g.num_nodes == 1000
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert np.bincount(g.edge_src, minlength=1000).min() >= 12
    assert g.num_lg_edges == int(np.bincount(g.edge_src)[g.edge_dst].sum()) - int(
        np.sum(g.edge_src == g.edge_dst)
    )


@pytest.mark.dgl
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # upstream's numpy-2 copy= chatter
def test_real_upstream_builder_through_dgl_agrees():
    """``Graph.atom_dgl_multigraph`` itself (DGL line graph and apply_edges) as the oracle."""
    pytest.importorskip("alignn.graphs")
    dgl_backend = pytest.importorskip("fga_tui.model.dgl_backend")
    try:
        dgl = dgl_backend.import_dgl()  # the project's shim for PyPI's dgl 2.1.0
    except ImportError as exc:
        pytest.skip(str(exc))
    from alignn import graphs
    from jarvis.core.atoms import Atoms

    if graphs.dgl is None:  # alignn.graphs was imported before the shims
        graphs.dgl = dgl
    for s in (cu_fcc(), srtio3(), triclinic()):
        atoms = Atoms(lattice_mat=s.lattice, coords=s.frac_coords, elements=list(s.elements))
        ug, ulg = graphs.Graph.atom_dgl_multigraph(
            atoms,
            neighbor_strategy="k-nearest",
            cutoff=8.0,
            max_neighbors=12,
            atom_features="cgcnn",
            use_canonize=True,
            compute_line_graph=True,
        )
        u, v = (x.numpy().astype(np.int64) for x in ug.edges())
        r = ug.edata["r"].numpy()
        lu, lv = (x.numpy().astype(np.int64) for x in ulg.edges())
        g = build_graph(s)
        np.testing.assert_array_equal(g.atom_features, ug.ndata["atom_features"].numpy())
        assert_same_edges(g, u, v, r)
        assert_same_line_graph(g, u, v, r, lu, lv, ulg.edata["h"].numpy())


def test_build_graphs_in_spawned_workers_equals_serial():
    structures = [cu_fcc(), srtio3(), triclinic(), nacl()]
    serial = build_graphs(structures)
    parallel = build_graphs(structures, processes=2)
    assert [g.num_edges for g in serial] == [24, 76, serial[2].num_edges, 60]
    for a, b in zip(serial, parallel, strict=True):
        for name in ("edge_src", "edge_dst", "edge_r", "lg_src", "lg_dst", "lg_h", "atom_features"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
