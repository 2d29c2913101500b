"""Symmetry orbits, spglib API compatibility, fallback, and first-shell coordination numbers."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np

from fga_tui.io.types import Structure
from fga_tui.structure import symmetry
from fga_tui.structure.graph import build_graph
from fga_tui.structure.symmetry import (
    Symmetry,
    analyse_symmetry,
    coordination_numbers,
    orbit_order,
    orbits_from_equivalent,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _cell(lattice, frac, elements) -> Structure:
    return Structure(
        np.asarray(lattice, dtype=np.float64),
        np.asarray(frac, dtype=np.float64).reshape(-1, 3),
        tuple(elements),
    )


def nacl() -> Structure:
    atoms = json.loads((FIXTURES / "nacl.json").read_text())["atoms"]
    return _cell(atoms["lattice_mat"], atoms["coords"], atoms["elements"])


def ba4hfli() -> Structure:
    """Cubic P-43m: Ba on the tetrahedron 4e (x,x,x; x = 1/4), Hf on 1b, Li on 1a."""
    frac = [
        [0.25, 0.25, 0.25],
        [0.75, 0.75, 0.25],
        [0.75, 0.25, 0.75],
        [0.25, 0.75, 0.75],
        [0.5, 0.5, 0.5],
        [0.0, 0.0, 0.0],
    ]
    return _cell(np.eye(3) * 6.0, frac, ["Ba"] * 4 + ["Hf", "Li"])


def srtio3() -> Structure:
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return _cell(np.eye(3) * 3.905, frac, ["Sr", "Ti", "O", "O", "O"])


def fcc(a: float) -> np.ndarray:
    return (np.ones((3, 3)) - np.eye(3)) * (a / 2)


def test_rock_salt_has_two_orbits_in_fm3m():
    sym = analyse_symmetry(nacl())
    assert sym.found and sym.error is None
    assert sym.orbits == [[0], [1]]
    assert (sym.spacegroup, sym.number) == ("Fm-3m", 225)


def test_ba4hfli_orbits_are_the_ba_tetrahedron_then_hf_then_li():
    sym = analyse_symmetry(ba4hfli())
    assert sym.orbits == [[0, 1, 2, 3], [4], [5]]
    np.testing.assert_array_equal(sym.equivalent_atoms, [0, 0, 0, 0, 4, 5])
    assert (sym.spacegroup, sym.number) == ("P-43m", 215)
    assert sym.wyckoffs == ("e", "e", "e", "e", "b", "a")


def test_perovskite_oxygens_form_one_orbit():
    sym = analyse_symmetry(srtio3())
    assert sym.orbits == [[0], [1], [2, 3, 4]]
    assert sym.number == 221


def test_breaking_the_tetrahedron_splits_the_ba_orbit():
    s = ba4hfli()
    frac = s.frac_coords.copy()
    frac[1, 0] += 0.02
    sym = analyse_symmetry(_cell(s.lattice, frac, s.elements))
    assert [0, 1, 2, 3] not in sym.orbits
    assert sorted(a for orbit in sym.orbits for a in orbit) == list(range(6))


def test_symprec_decides_whether_a_small_distortion_counts():
    s = srtio3()
    frac = s.frac_coords.copy()
    frac[2, 2] += 1e-4  # 0.4 mÅ
    distorted = _cell(s.lattice, frac, s.elements)
    assert analyse_symmetry(distorted, symprec=1e-5).orbits != [[0], [1], [2, 3, 4]]
    assert analyse_symmetry(distorted, symprec=1e-2).orbits == [[0], [1], [2, 3, 4]]


def test_degenerate_cell_falls_back_to_one_orbit_per_atom():
    sym = analyse_symmetry(_cell(np.zeros((3, 3)), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"]))
    assert not sym.found and sym.error
    assert (sym.spacegroup, sym.number) == ("unknown", 0)
    assert sym.orbits == [[0], [1]] and sym.wyckoffs == ("?", "?")
    np.testing.assert_array_equal(sym.equivalent_atoms, [0, 1])


def _fake_spglib(monkeypatch, dataset) -> None:
    fake = types.ModuleType("spglib")
    fake.get_symmetry_dataset = lambda cell, symprec: dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spglib", fake)


def test_old_dict_dataset_api_is_read(monkeypatch):
    _fake_spglib(
        monkeypatch,
        {
            "equivalent_atoms": np.array([0, 0, 2], dtype=np.int32),
            "wyckoffs": ["a", "a", "b"],
            "international": "P2/m",
            "number": 10,
        },
    )
    sym = analyse_symmetry(_cell(np.eye(3), np.zeros((3, 3)), ["A", "A", "B"]))
    assert (sym.orbits, sym.spacegroup, sym.number) == ([[0, 1], [2]], "P2/m", 10)


def test_new_object_dataset_api_is_read(monkeypatch):
    dataset = types.SimpleNamespace(
        equivalent_atoms=np.array([1, 1, 0]), wyckoffs=["b", "b", "a"], international="Pm", number=6
    )
    _fake_spglib(monkeypatch, dataset)
    sym = analyse_symmetry(_cell(np.eye(3), np.zeros((3, 3)), ["A", "A", "B"]))
    assert (sym.orbits, sym.number) == ([[0, 1], [2]], 6)


def test_spglib_exception_falls_back(monkeypatch):
    fake = types.ModuleType("spglib")

    def boom(cell, symprec):
        raise RuntimeError("spglib exploded")

    fake.get_symmetry_dataset = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spglib", fake)
    sym = analyse_symmetry(srtio3())
    assert sym.spacegroup == "unknown" and "exploded" in (sym.error or "")
    assert sym.orbits == [[0], [1], [2], [3], [4]]


def test_orbits_and_orbit_order_group_atoms():
    orbits = orbits_from_equivalent(np.array([2, 1, 2, 1, 4]))
    assert orbits == [[0, 2], [1, 3], [4]]
    assert orbit_order(orbits) == [0, 2, 1, 3, 4]
    assert isinstance(analyse_symmetry(nacl()), Symmetry)


def test_coordination_numbers_of_textbook_crystals():
    si = _cell(fcc(5.431), [[0, 0, 0], [0.25, 0.25, 0.25]], ["Si", "Si"])
    cu = _cell(fcc(3.615), [[0, 0, 0]], ["Cu"])
    fe = _cell(np.eye(3) * 2.87, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Fe", "Fe"])
    np.testing.assert_array_equal(coordination_numbers(nacl()), [6, 6])
    np.testing.assert_array_equal(coordination_numbers(si), [4, 4])
    np.testing.assert_array_equal(coordination_numbers(cu), [12])
    np.testing.assert_array_equal(coordination_numbers(fe), [8, 8])
    np.testing.assert_array_equal(coordination_numbers(srtio3()), [12, 6, 2, 2, 2])


def test_coordination_from_graph_counts_duplicated_self_image_bonds_once():
    cu = _cell(fcc(3.615), [[0, 0, 0]], ["Cu"])
    g = build_graph(cu)
    assert g.num_edges == 24  # every self-image bond twice (upstream quirk)
    np.testing.assert_array_equal(coordination_numbers(g), [12])
    np.testing.assert_array_equal(coordination_numbers(build_graph(nacl())), [6, 6])


def test_wider_shell_tolerance_reaches_the_second_shell():
    fe = _cell(np.eye(3) * 2.87, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Fe", "Fe"])
    np.testing.assert_array_equal(coordination_numbers(fe, tol=0.2), [14, 14])
    assert symmetry.SHELL_TOL == 0.15


# --- the fallback's fields, branch by branch --------------------------------------------------


def _spglib_returning_none(monkeypatch, message: str | None) -> None:
    _fake_spglib(monkeypatch, None)
    if message is not None:
        sys.modules["spglib"].get_error_message = lambda: message  # type: ignore[attr-defined]


def _assert_fallback(sym: Symmetry, n: int, symprec: float, error: str) -> None:
    assert sym.error == error and not sym.found
    assert (sym.spacegroup, sym.number, sym.symprec) == ("unknown", 0, symprec)
    assert sym.orbits == [[i] for i in range(n)] and sym.wyckoffs == ("?",) * n
    assert sym.equivalent_atoms.dtype == np.int64
    np.testing.assert_array_equal(sym.equivalent_atoms, np.arange(n))


def test_no_dataset_reports_spglibs_own_message(monkeypatch):
    _spglib_returning_none(monkeypatch, "too close distance between atoms")
    sym = analyse_symmetry(srtio3(), symprec=0.01)
    _assert_fallback(sym, 5, 0.01, "spglib: too close distance between atoms")


def test_no_dataset_and_no_message_says_no_space_group(monkeypatch):
    _spglib_returning_none(monkeypatch, "")
    _assert_fallback(analyse_symmetry(nacl()), 2, 1e-5, "spglib: no space group found")
    _spglib_returning_none(monkeypatch, None)  # old spglib: no get_error_message at all
    _assert_fallback(analyse_symmetry(nacl(), 0.1), 2, 0.1, "spglib: no space group found")


def test_spglib_exception_and_wrong_atom_count_fall_back_with_their_reason(monkeypatch):
    fake = types.ModuleType("spglib")

    def boom(cell, symprec):
        raise RuntimeError("spglib exploded")

    fake.get_symmetry_dataset = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spglib", fake)
    _assert_fallback(analyse_symmetry(nacl(), 0.2), 2, 0.2, "spglib failed: spglib exploded")
    dataset = {"equivalent_atoms": [0], "wyckoffs": ["a"], "international": "P1", "number": 1}
    _fake_spglib(monkeypatch, dataset)
    _assert_fallback(
        analyse_symmetry(nacl(), 0.3), 2, 0.3, "spglib returned a different number of atoms"
    )


def test_found_symmetry_keeps_int64_representatives_and_the_tolerance():
    sym = analyse_symmetry(ba4hfli(), symprec=1e-3)
    assert sym.found and sym.symprec == 1e-3 and sym.number == 215
    assert sym.equivalent_atoms.dtype == np.int64
    assert sym.wyckoffs == ("e", "e", "e", "e", "b", "a")


def test_species_are_numbered_from_one_in_order_of_appearance():
    assert symmetry._species_types(("Na", "Cl", "Na", "Xx")) == [1, 2, 1, 3]


# --- coordination at the edges of its search ---------------------------------------------------


def test_an_empty_structure_has_no_coordination_numbers():
    cn = coordination_numbers(_cell(np.eye(3) * 4, np.zeros((0, 3)), []))
    assert cn.shape == (0,) and cn.dtype == np.int64


def test_a_sparse_cell_widens_the_search_until_every_atom_has_a_neighbour():
    cn = coordination_numbers(_cell(np.eye(3) * 10.0, [[0, 0, 0]], ["Xe"]))
    assert cn.tolist() == [6] and cn.dtype == np.int64


def test_a_cell_with_no_neighbour_in_reach_is_an_error():
    import pytest

    with pytest.raises(ValueError, match=r"an atom has no neighbour within 16384.0 Å"):
        coordination_numbers(_cell(np.eye(3) * 2e4, [[0, 0, 0]], ["Xe"]))


def test_a_neighbour_exactly_on_the_shell_edge_counts_from_a_structure_and_a_graph():
    """Simple cubic: 6 neighbours at a, 12 at a·√2. With tol = √2 − 1 the second shell lies
    exactly on the edge (up to rounding), so both shells count: 18. The shell (4.24 Å) is
    wider than the first search (4 Å), so the search is redone at the shell's radius."""
    sc = _cell(np.eye(3) * 3.0, [[0, 0, 0]], ["Po"])
    tol = float(np.sqrt(2) - 1)
    assert coordination_numbers(sc, tol=tol).tolist() == [18]
    graph_cn = coordination_numbers(build_graph(sc), tol=tol)
    assert graph_cn.tolist() == [18] and graph_cn.dtype == np.int64
    assert coordination_numbers(sc).tolist() == [6]
