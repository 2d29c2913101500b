"""The k-NN selection around the neighbour search: radius growth, the tied shell, canonization,
and how ``build_graphs`` spreads work over processes (a recording pool stands in for the real
one, whose spawned workers are tested against the serial path in test_structure_graph.py)."""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import pytest

from fga_tui.io.types import Structure
from fga_tui.structure import graph
from fga_tui.structure.graph import build_graph, build_graphs, knn_bonds, knn_neighbors


def _cell(lattice, frac, elements) -> Structure:
    return Structure(
        np.asarray(lattice, dtype=np.float64),
        np.asarray(frac, dtype=np.float64).reshape(-1, 3),
        tuple(elements),
    )


def simple_cubic(a: float = 3.0) -> Structure:
    return _cell(np.eye(3) * a, [[0, 0, 0]], ["Po"])


# --- knn_neighbors ----------------------------------------------------------------------------


def test_no_atoms_and_no_neighbours_wanted_are_refused():
    with pytest.raises(ValueError) as err:
        knn_neighbors(np.eye(3) * 3, np.zeros((0, 3)))
    assert str(err.value) == "a crystal graph needs at least one atom"
    with pytest.raises(ValueError, match="max_neighbors must be >= 1, not 0"):
        knn_neighbors(np.eye(3) * 3, [[0, 0, 0]], max_neighbors=0)
    assert knn_neighbors(np.eye(3) * 3, [[0, 0, 0]], cutoff=3.0, max_neighbors=1).radius == 3.0


def test_the_radius_grows_to_the_longest_lattice_vector_then_doubles(monkeypatch):
    radii = []
    real = graph.all_neighbors

    def spy(lattice, frac, r, **kw):
        radii.append(r)
        return real(lattice, frac, r, **kw)

    monkeypatch.setattr(graph, "all_neighbors", spy)
    lattice = np.diag([10.0, 10.0, 9.0])
    found = knn_neighbors(lattice, [[0, 0, 0]], cutoff=2.0, max_neighbors=12)
    # 2 Å: nothing; 10 Å (the longest vector): 6 neighbours, not yet 12; then 20 Å.
    assert radii == [2.0, 10.0, 20.0]
    assert found.radius == 20.0 and found.counts().min() >= 12


def test_enough_neighbours_at_the_first_radius_stop_the_search(monkeypatch):
    radii = []
    real = graph.all_neighbors
    monkeypatch.setattr(
        graph, "all_neighbors", lambda *a, **kw: radii.append(a[2]) or real(*a, **kw)
    )
    found = knn_neighbors(np.eye(3) * 3.0, [[0, 0, 0]], cutoff=3.0, max_neighbors=6)
    assert radii == [3.0] and found.counts().tolist() == [6]


def test_giving_up_names_the_radius_reached(monkeypatch):
    monkeypatch.setattr(graph, "_MAX_RADIUS_GROWTHS", 2)
    with pytest.raises(RuntimeError, match=r"no 12 neighbours per site even within 20.0 Å"):
        knn_neighbors(np.diag([10.0, 10.0, 9.0]), [[0, 0, 0]], cutoff=2.0)


# --- knn_bonds --------------------------------------------------------------------------------


def test_a_shell_tied_at_the_kth_distance_enters_whole():
    """Simple cubic: the 1st..6th neighbours are tied at a; asking for 4 keeps all 6."""
    a, b, img = knn_bonds(np.eye(3) * 3.0, [[0, 0, 0]], cutoff=3.5, max_neighbors=4)
    assert len(a) == 6 and set(a.tolist()) == set(b.tolist()) == {0}
    assert sorted(map(tuple, img.tolist())) == sorted(
        [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    )
    assert a.dtype == b.dtype == img.dtype == np.int64


def test_each_sites_own_kth_distance_decides_for_it():
    """Two sites with different nearest distances: each keeps its own first shell."""
    lattice = np.diag([10.0, 10.0, 10.0])
    frac = [[0, 0, 0], [0.2, 0, 0], [0.5, 0.5, 0.5]]  # 0 and 1 are 2 Å apart; 2 is far
    a, b, _ = knn_bonds(lattice, frac, cutoff=8.0, max_neighbors=1, use_canonize=False)
    pairs = sorted(zip(a.tolist(), b.tolist(), strict=True))
    assert (0, 1) in pairs and (1, 0) in pairs
    assert {p for p in pairs if p[0] == 2} == {(2, 1)}  # 2's nearest: 1 (6.4 Å), not 0 (8.7 Å)


def test_canonization_stores_each_bond_once_from_the_lower_index():
    lattice = np.eye(3) * 4.0
    frac = [[0, 0, 0], [0.5, 0.5, 0.5]]
    a, b, img = knn_bonds(lattice, frac, cutoff=4.0, max_neighbors=8)
    assert np.all(a <= b)
    raw_a, raw_b, raw_img = knn_bonds(
        lattice, frac, cutoff=4.0, max_neighbors=8, use_canonize=False
    )
    assert np.any(raw_a > raw_b)
    # the 1 -> 0 bonds, canonized, are the 0 -> 1 bonds with negated images
    back = {
        tuple(-np.array(i)) for x, y, i in zip(raw_a, raw_b, raw_img.tolist(), strict=True) if x > y
    }
    fwd = {tuple(i) for x, y, i in zip(a, b, img.tolist(), strict=True) if (x, y) == (0, 1)}
    assert back <= fwd


def test_the_graph_of_a_simple_cubic_cell_has_its_first_shell_and_angles():
    g = build_graph(simple_cubic(), max_neighbors=6)
    assert g.num_nodes == 1 and g.num_edges == 12  # 6 self-image bonds, each stored twice
    np.testing.assert_allclose(np.linalg.norm(g.edge_r, axis=1), 3.0, rtol=1e-7)
    assert sorted(set(np.round(g.lg_h, 6).tolist())) == [-1.0, 0.0, 1.0]


# --- build_graphs -----------------------------------------------------------------------------


class RecordingPool:
    """Stands in for ProcessPoolExecutor: records how it was made, maps in this process."""

    made: ClassVar[list[dict]] = []

    def __init__(self, max_workers, mp_context):
        RecordingPool.made.append({"workers": max_workers, "start": mp_context.get_start_method()})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items, chunksize):
        RecordingPool.made[-1]["chunksize"] = chunksize
        return map(fn, items)


@pytest.fixture
def pool(monkeypatch):
    RecordingPool.made = []
    monkeypatch.setattr(graph, "ProcessPoolExecutor", RecordingPool)
    return RecordingPool.made


def _cells(n: int) -> list[Structure]:
    return [simple_cubic(3.0 + 0.1 * i) for i in range(n)]


@pytest.mark.parametrize("processes", [None, 1])
def test_one_process_builds_in_this_process_in_order(pool, processes):
    graphs = build_graphs(_cells(3), processes=processes, max_neighbors=6)
    assert pool == []
    lengths = [float(np.linalg.norm(g.edge_r[0])) for g in graphs]
    assert lengths == pytest.approx([3.0, 3.1, 3.2], rel=1e-6)


def test_several_processes_use_spawned_workers_capped_by_the_work(pool):
    graphs = build_graphs(_cells(3), processes=8, max_neighbors=6)
    assert pool == [{"workers": 3, "start": "spawn", "chunksize": 1}]
    assert [g.num_edges for g in graphs] == [12, 12, 12]
    build_graphs(_cells(40), processes=2, max_neighbors=6)
    assert pool[-1] == {"workers": 2, "start": "spawn", "chunksize": 5}  # 40 // (4 * 2)


def test_zero_processes_means_one_per_cpu(pool, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    build_graphs(_cells(30), processes=0, max_neighbors=6)
    assert pool == [{"workers": 3, "start": "spawn", "chunksize": 2}]
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one, in this process
    build_graphs(_cells(2), processes=0, max_neighbors=6)
    assert len(pool) == 1


def test_build_options_reach_every_worker(pool):
    [serial] = build_graphs([simple_cubic()], cutoff=3.5, max_neighbors=4, use_canonize=False)
    [first, _] = build_graphs(
        [simple_cubic(), simple_cubic()],
        processes=2,
        cutoff=3.5,
        max_neighbors=4,
        use_canonize=False,
    )
    expected = build_graph(simple_cubic(), cutoff=3.5, max_neighbors=4, use_canonize=False)
    for g in (serial, first):
        np.testing.assert_array_equal(g.edge_r, expected.edge_r)
    assert expected.num_edges != build_graph(simple_cubic()).num_edges


def test_bond_cosines_are_computed_from_float32_vectors_whatever_the_input():
    """Upstream computes the angles in float32 from the float32 bond vectors: float64 input is
    rounded to float32 first, so both give the same bits."""
    rng = np.random.default_rng(2)
    r64 = rng.normal(size=(4, 3))
    lg_src, lg_dst = np.array([0, 1, 2, 3, 0]), np.array([1, 2, 3, 0, 2])
    from_double = graph.bond_cosines(r64, lg_src, lg_dst)
    from_single = graph.bond_cosines(r64.astype(np.float32), lg_src, lg_dst)
    assert from_double.dtype == np.float32
    np.testing.assert_array_equal(from_double, from_single)


def test_build_graphs_passes_its_options_to_every_graph(pool):
    s = Structure(
        lattice=np.array([[4.0, 0.0, 0.0], [0.5, 4.2, 0.0], [0.3, 0.2, 4.5]]),
        frac_coords=np.array([[0.1, 0.2, 0.3], [0.6, 0.7, 0.9], [0.95, 0.05, 0.5]]),
        elements=["Na", "Cl", "K"],
    )
    canon, plain = build_graph(s), build_graph(s, use_canonize=False)
    assert canon.num_edges != plain.num_edges  # the option matters for this cell (42 vs 74)
    for processes in (1, 2):
        (g,) = build_graphs([s], processes=processes)
        assert np.array_equal(g.edge_r, canon.edge_r)
        (g,) = build_graphs([s], processes=processes, use_canonize=False)
        assert np.array_equal(g.edge_r, plain.edge_r)


def test_line_graph_of_edges_into_a_node_without_outgoing_edges():
    # 0 -> 1 -> 2 and 2 has no outgoing edge: one pair (e0, e1), e1 has no successor.
    lg_src, lg_dst = graph.line_graph(np.array([0, 1]), np.array([1, 2]), 3)
    assert (lg_src.tolist(), lg_dst.tolist()) == ([0], [1])
    assert lg_src.dtype == lg_dst.dtype == np.int64


def test_build_graphs_passes_every_option_on_to_build_graph(monkeypatch):
    """The cutoff only sets where the radius search starts (the k nearest are the same from any
    start), so it cannot be seen in the graph: a recorder stands in for build_graph."""
    seen: list[dict] = []
    monkeypatch.setattr(graph, "build_graph", lambda s, **kw: seen.append(kw) or s)
    cells = _cells(2)
    assert build_graphs(cells, cutoff=5.5, max_neighbors=7, use_canonize=False) == cells
    assert seen == [{"cutoff": 5.5, "max_neighbors": 7, "use_canonize": False}] * 2


def test_antiparallel_bonds_whose_rounding_overshoots_are_clamped_to_minus_one():
    """Two edges with the same float32 vector v (quirk A's doubled self-image edges): the angle
    between -v and v is computed as -1.0000001 in float32 and clamped to -1, like torch.clamp
    upstream; the same pair the other way round (v with v) to +1."""
    v = np.array([[1.3696168661117554, -2.3021328449249268, -4.590264797210693]] * 2, np.float32)
    cos = graph.bond_cosines(v, np.array([0, 1]), np.array([1, 0]))
    assert cos.dtype == np.float32 and cos.tolist() == [-1.0, -1.0]
    w = np.concatenate([v[:1], -v[:1]])
    assert graph.bond_cosines(w, np.array([0]), np.array([1])).tolist() == [1.0]
