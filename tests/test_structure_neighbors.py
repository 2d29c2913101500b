"""``fga_tui.structure.neighbors`` against a plain loop over a generous image box.

The reference below is the definition (every (site, atom, image) with ``bond_tol < d <= r`` and
``d > 1e-8``), written with the same float64 expressions as jarvis, so the search can be
compared exactly: both methods, every chunking, at the edges of ``r`` and ``bond_tol``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fga_tui.structure import neighbors as nb
from fga_tui.structure.neighbors import (
    all_neighbors,
    cart_coords,
    frac_from_cart,
    image_box,
    lattice_lengths,
    rounded_lattice,
)


def reference(lattice, frac, r, bond_tol=nb.BOND_TOL, cart=None) -> set[tuple]:
    """(site, atom, image, distance) for every kept pair, by brute force over a wide box."""
    matrix = np.asarray(lattice, dtype=np.float64)
    sites = cart_coords(matrix, frac) if cart is None else np.asarray(cart, np.float64)
    # Per axis, no image farther than r + the sites' extent can matter: bound by the plane
    # spacing (volume / area of the other two vectors' face).
    volume = abs(np.linalg.det(matrix))
    extent = np.ptp(sites, axis=0).max() if len(sites) else 0.0
    span = []
    for k in range(3):
        a, b = matrix[(k + 1) % 3], matrix[(k + 2) % 3]
        spacing = volume / np.linalg.norm(np.cross(a, b))
        span.append(math.ceil((r + extent) / spacing) + 2)
    kept = set()
    for image in itertools.product(*[range(-s, s + 1) for s in span]):
        offset = np.dot(np.array(image, dtype=np.float64), matrix)
        points = offset + sites  # atom j's image, as jarvis adds them
        # d[j, i] = sum((point_j - site_i) ** 2) ** 0.5, elementwise as jarvis writes it
        d = np.sum((points[:, None, :] - sites[None, :, :]) ** 2, axis=-1) ** 0.5
        for j, i in zip(*np.nonzero((d <= r) & (d > 1e-8) & (d > bond_tol)), strict=True):
            kept.add((int(i), int(j), image, float(d[j, i])))
    return kept


def as_set(found: nb.NeighborList) -> set[tuple]:
    return {
        (int(c), int(j), tuple(int(x) for x in im), float(d))
        for c, j, im, d in zip(
            found.center, found.neighbor, found.image, found.distance, strict=True
        )
    }


CELLS = {
    "cubic 1 atom": (np.eye(3) * 3.0, [[0.0, 0.0, 0.0]]),
    "rock salt": ((np.ones((3, 3)) - np.eye(3)) * 2.82, [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "triclinic": (
        [[4.1, 0.3, -0.2], [0.9, 5.3, 0.4], [-0.7, 1.1, 6.2]],
        [[0.02, 0.11, 0.07], [0.48, 0.37, 0.61], [0.81, 0.72, 0.23], [1.33, -0.1, 0.88]],
    ),
}


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("method", ["brute", "cells"])
def test_both_searches_find_exactly_the_reference_pairs(name, method):
    lattice, frac = CELLS[name]
    frac = np.asarray(frac, dtype=np.float64)
    for r in (2.5, 4.5):
        found = all_neighbors(lattice, frac, r, method=method)
        assert as_set(found) == reference(lattice, frac, r), (name, r)
        assert found.radius == r and found.num_sites == len(frac)
        assert found.center.dtype == found.neighbor.dtype == found.image.dtype == np.int64
        assert found.distance.dtype == np.float64


@pytest.mark.parametrize("method", ["brute", "cells"])
def test_tiny_chunks_give_the_same_pairs(monkeypatch, method):
    """Chunking only bounds memory: a budget of a few pairs must not lose or repeat any."""
    lattice, frac = CELLS["triclinic"]
    frac = np.asarray(frac, dtype=np.float64)
    expected = reference(lattice, frac, 4.5)
    for budget in (1, 3, 7, 50):
        monkeypatch.setattr(nb, "_PAIR_BUDGET", budget)
        found = all_neighbors(lattice, frac, 4.5, method=method)
        assert len(found.center) == len(expected)
        assert as_set(found) == expected, budget


def test_auto_switches_to_the_cell_list_above_the_limit(monkeypatch):
    lattice, frac = CELLS["rock salt"]
    calls = []
    real_cells, real_brute = nb._cell_pairs, nb._brute_pairs
    monkeypatch.setattr(nb, "_cell_pairs", lambda *a: calls.append("cells") or real_cells(*a))
    monkeypatch.setattr(nb, "_brute_pairs", lambda *a: calls.append("brute") or real_brute(*a))
    found = all_neighbors(lattice, frac, 3.0)
    points = len(image_box(lattice, frac, 3.0, nb.BOND_TOL)) * 2
    assert calls == ["brute"] and points * 2 <= nb._BRUTE_LIMIT
    monkeypatch.setattr(nb, "_BRUTE_LIMIT", 0)
    again = all_neighbors(lattice, frac, 3.0)
    assert calls == ["brute", "cells"]
    assert as_set(again) == as_set(found)


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown neighbour search method 'kd'"):
        all_neighbors(np.eye(3) * 3, [[0, 0, 0]], 3.0, method="kd")


@pytest.mark.parametrize("method", ["brute", "cells"])
def test_a_neighbour_exactly_at_r_is_kept_and_just_beyond_is_not(method):
    found = all_neighbors(np.eye(3) * 3.0, [[0, 0, 0]], 3.0, method=method)
    assert len(found.center) == 6 and set(found.distance.tolist()) == {3.0}
    assert len(all_neighbors(np.eye(3) * 3.0, [[0, 0, 0]], 2.999999, method=method).center) == 0


@pytest.mark.parametrize("method", ["brute", "cells"])
def test_neighbours_closer_than_the_bond_tolerance_are_dropped(method):
    frac = [[0, 0, 0], [0.01, 0, 0]]  # 0.1 Å apart in a 10 Å cell
    found = all_neighbors(np.eye(3) * 10.0, frac, 2.0, method=method)
    assert len(found.center) == 0
    found = all_neighbors(np.eye(3) * 10.0, frac, 2.0, bond_tol=0.05, method=method)
    assert sorted(zip(found.center.tolist(), found.neighbor.tolist(), strict=True)) == [
        (0, 1),
        (1, 0),
    ]
    assert found.distance == pytest.approx([0.1, 0.1])
    # A tolerance below 1e-8 still never pairs a site with itself.
    found = all_neighbors(np.eye(3) * 10.0, [[0, 0, 0]], 10.0, bond_tol=0.0, method=method)
    assert len(found.center) == 6


def test_no_sites_give_an_empty_list():
    found = all_neighbors(np.eye(3) * 3.0, np.zeros((0, 3)), 5.0)
    assert found.num_sites == 0 and found.radius == 5.0
    assert found.center.shape == found.neighbor.shape == found.distance.shape == (0,)
    assert found.image.shape == (0, 3) and found.image.dtype == np.int64
    assert found.counts().shape == (0,)


def test_counts_include_sites_without_neighbours():
    frac = [[0, 0, 0], [0.5, 0.5, 0.5]]
    found = all_neighbors(np.diag([3.0, 3.0, 30.0]), frac, 3.0)
    assert found.counts().tolist() == [4, 4]
    lonely = all_neighbors(np.eye(3) * 10.0, [[0, 0, 0], [0.1, 0, 0]], 1.5)
    assert lonely.counts().tolist() == [1, 1]
    assert all_neighbors(np.eye(3) * 10.0, [[0, 0, 0], [0.5, 0, 0]], 1.5).counts().tolist() == [
        0,
        0,
    ]


def test_cartesian_positions_given_as_is_are_used_as_is():
    lattice = np.eye(3) * 3.0
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    cart = cart_coords(lattice, frac) + np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]])
    found = all_neighbors(lattice, frac, 3.0, cart=cart)
    assert as_set(found) == reference(lattice, frac, 3.0, cart=cart)
    assert as_set(found) != as_set(all_neighbors(lattice, frac, 3.0))


# --- jarvis' lattice arithmetic --------------------------------------------------------------


def test_lattice_helpers_round_like_jarvis():
    lattice = [[3.1234567, 0, 0], [0, 2.0000049, 0], [1.0, 1.0, 4.0]]
    np.testing.assert_array_equal(
        rounded_lattice(lattice), [[3.12346, 0, 0], [0, 2.0, 0], [1.0, 1.0, 4.0]]
    )
    assert rounded_lattice(np.arange(9)).shape == (3, 3)
    assert lattice_lengths(lattice) == [3.12346, 2.0, round(math.sqrt(18.0), 6)]


def test_cartesian_and_fractional_conversions_use_the_rounded_lattice():
    lattice = np.array([[3.1234567, 0, 0], [0, 4.0, 0], [0, 1.0, 5.0]])
    frac = np.array([[0.5, 0.25, 0.1]])
    cart = cart_coords(lattice, frac)
    np.testing.assert_array_equal(cart, frac @ rounded_lattice(lattice))
    np.testing.assert_allclose(frac_from_cart(lattice, cart), frac, rtol=0, atol=1e-15)


def test_image_box_spans_the_reach_around_the_sites_in_product_order():
    box = image_box(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), 2.85, 0.15)
    # maxr = ceil((2.85 + 0.15) * (2π/4) / 2π) = 1; per axis floor(0) - 1 … ceil(0.5) + 1 - 1
    assert box.shape == (27, 3)
    np.testing.assert_array_equal(box[0], [-1, -1, -1])
    np.testing.assert_array_equal(box[1], [-1, -1, 0])
    np.testing.assert_array_equal(box[-1], [1, 1, 1])
    # maxr = ceil(4.5 / 4) = 2; one site at 0: -2 … ceil(0) + 2 - 1 = 1
    wider = image_box(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0]]), 4.35, 0.15)
    assert wider.shape == (4**3, 3) and wider.min() == -2 and wider.max() == 1
    # the tolerance widens the box like the radius does
    assert len(image_box(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0]]), 3.9, 0.15)) == 4**3
    assert len(image_box(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0]]), 3.9, 0.0)) == 2**3


@pytest.mark.parametrize("method", ["brute", "cells"])
def test_a_search_that_finds_nothing_returns_typed_empty_arrays(method):
    found = all_neighbors(np.eye(3) * 10.0, [[0, 0, 0], [0.5, 0, 0]], 1.5, method=method)
    assert found.center.shape == found.neighbor.shape == found.distance.shape == (0,)
    assert found.center.dtype == found.neighbor.dtype == np.int64
    assert found.distance.dtype == np.float64 and found.image.shape == (0, 3)


def jarvis_pairs(lattice, frac, r: float) -> list[tuple] | None:
    """jarvis' own (site, atom, image, distance) list, or None without the upstream extra."""
    try:
        from jarvis.core.atoms import Atoms
    except ImportError:
        return None
    elements = ["Na"] * len(frac)
    atoms = Atoms(lattice_mat=lattice, coords=frac, elements=elements, cartesian=False)
    return sorted(
        (i, int(row[1]), tuple(int(v) for v in row[3]), float(row[2]))
        for i, rows in enumerate(atoms.get_all_neighbors(r=r, bond_tol=nb.BOND_TOL))
        for row in rows
    )


@pytest.mark.parametrize("method", ["brute", "cells"])
def test_sites_far_outside_the_cell_find_nothing_like_jarvis(method):
    """jarvis' image box runs from floor(min frac) - maxr: for sites five cells out (frac 5.1,
    5.6) and maxr = 1 it holds no image that brings them near each other, so jarvis finds no
    neighbour at all, and neither does the search (with the usual typed empty arrays)."""
    lattice, frac = np.eye(3) * 4.0, np.array([[5.1, 5.1, 5.1], [5.6, 5.6, 5.6]])
    found = all_neighbors(lattice, frac, 3.0, method=method)
    assert found.center.shape == found.neighbor.shape == found.distance.shape == (0,)
    assert found.center.dtype == found.neighbor.dtype == found.image.dtype == np.int64
    assert found.image.shape == (0, 3) and found.counts().tolist() == [0, 0]
    assert jarvis_pairs(lattice, frac, 3.0) in (None, [])


@pytest.mark.parametrize("method", ["brute", "cells"])
def test_a_site_1e8_away_is_the_site_itself_and_bond_tol_is_exclusive(method):
    """Kept iff d > 1e-8 and d > bond_tol: exactly 1e-8 (or exactly bond_tol) is dropped."""
    lattice = np.eye(3) * 10.0

    def pairs(cart, bond_tol):
        cart = np.asarray(cart, dtype=np.float64)
        found = all_neighbors(
            lattice, cart / 10.0, 1.0, bond_tol=bond_tol, cart=cart, method=method
        )
        assert as_set(found) == reference(lattice, cart / 10.0, 1.0, bond_tol, cart=cart)
        return len(found.center)

    assert pairs([[0, 0, 0], [1e-8, 0, 0]], 0.0) == 0
    assert pairs([[0, 0, 0], [2e-8, 0, 0]], 0.0) == 2
    assert pairs([[0, 0, 0], [0.5, 0, 0]], 0.5) == 0
    assert pairs([[0, 0, 0], [0.5, 0, 0]], 0.4999) == 2


def test_the_cell_list_finds_a_neighbour_exactly_r_away_for_a_sub_angstrom_cutoff():
    """Cubes are a hair wider than r / 2 for every r (the +1e-9 Å): a pair exactly r = 0.5 Å
    apart along x, wherever it sits against the cube edges, is found by both searches."""
    lattice, r = np.eye(3) * 10.0, 0.5
    for x0 in 1.5 + np.arange(17) / 32:  # binary fractions: the pair is exactly 0.5 Å apart
        cart = np.array([[x0, 1.0, 1.0], [x0 + r, 1.0, 1.0]])
        cells = all_neighbors(lattice, cart / 10.0, r, cart=cart, method="cells")
        brute = all_neighbors(lattice, cart / 10.0, r, cart=cart, method="brute")
        assert as_set(cells) == as_set(brute) == reference(lattice, cart / 10.0, r, cart=cart)
        assert cells.distance.tolist() == [0.5, 0.5], x0


def test_the_rounded_lattice_is_float64_even_for_an_integer_matrix():
    m = rounded_lattice([[3, 0, 0], [0, 4, 0], [1, 1, 5]])
    assert m.dtype == np.float64 and m.tolist() == [[3.0, 0, 0], [0, 4.0, 0], [1.0, 1.0, 5.0]]


def test_image_box_bounds_each_axis_by_its_own_coordinates_in_product_order():
    """Per axis: floor(min) - maxr … ceil(max) + maxr - 1 of that axis' coordinates (x from
    5.1, z from -1.2), listed in itertools.product order (x slowest, z fastest)."""
    frac = np.array([[5.1, 0.1, -1.2]])
    box = image_box(np.eye(3) * 4.0, frac, 2.85, 0.15)  # maxr = 1 on every axis
    want = list(itertools.product(range(4, 7), range(-1, 2), range(-3, 0)))
    assert box.tolist() == [list(map(float, im)) for im in want]


@pytest.mark.parametrize("method", ["brute", "cells"])
def test_sites_given_with_negative_fractional_coordinates_are_searched_like_jarvis(method):
    """The image filter's reach is the sites' extent (max - min) plus r, on any side of 0; the
    box is jarvis' (which, from ceil(max frac) = 0, stops at image 0: 5 pairs, not all)."""
    lattice = np.eye(3) * 4.0
    frac = np.array([[-0.25, -0.25, -0.25], [-0.75, -0.75, -0.5]])
    found = all_neighbors(lattice, frac, 3.0, method=method)
    assert found.counts().tolist() == [1, 4]
    want = jarvis_pairs(lattice, frac, 3.0)
    if want is not None:
        assert sorted(as_set(found)) == want
