"""Symmetry orbits (spglib) and first-shell coordination numbers.

Orbits are what the ``SYMMETRY_EQUIVALENT`` verdict and the report's ``orbits`` field are built
on: atoms a space-group operation maps onto each other must get identical node features from
any equivariant model, so a difference between them inside a trace is a finding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from fga_tui.io.types import Structure
from fga_tui.structure.neighbors import all_neighbors
from fga_tui.structure.types import CrystalGraph

SHELL_TOL = 0.15
"""Relative width of the first coordination shell (see :func:`coordination_numbers`)."""


@dataclass(frozen=True, eq=False)
class Symmetry:
    """Space group and orbits of one structure.

    ``equivalent_atoms`` int64 [N]: spglib's representative atom of each atom's orbit;
    ``orbits``: sorted lists of atom indices, ordered by their first atom; ``wyckoffs`` [N]
    Wyckoff letters ("?" when unknown); ``spacegroup`` the international symbol ("unknown" when
    spglib failed, then ``number`` is 0 and every atom is its own orbit, ``error`` says why).
    """

    equivalent_atoms: np.ndarray
    orbits: list[list[int]]
    wyckoffs: tuple[str, ...]
    spacegroup: str
    number: int
    symprec: float
    error: str | None = None

    @property
    def found(self) -> bool:
        """Whether spglib found a space group (False means the fallback is in use)."""
        return self.error is None


def _field(dataset: object, name: str) -> object:
    """One dataset field, from spglib >= 2.5's object or <= 2.4's dict."""
    if isinstance(dataset, dict):
        return dataset[name]
    return getattr(dataset, name)


def _species_types(elements: tuple[str, ...]) -> list[int]:
    """Distinct positive integer per distinct symbol (unknown symbols stay distinct)."""
    ids: dict[str, int] = {}
    return [ids.setdefault(el, len(ids) + 1) for el in elements]


def orbits_from_equivalent(equivalent_atoms: np.ndarray) -> list[list[int]]:
    """Group atoms by their representative: sorted index lists, ordered by first atom."""
    groups: dict[int, list[int]] = {}
    for atom, rep in enumerate(np.asarray(equivalent_atoms).tolist()):
        groups.setdefault(int(rep), []).append(atom)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def _fallback(n: int, symprec: float, reason: str) -> Symmetry:
    return Symmetry(
        equivalent_atoms=np.arange(n, dtype=np.int64),
        orbits=[[i] for i in range(n)],
        wyckoffs=("?",) * n,
        spacegroup="unknown",
        number=0,
        symprec=symprec,
        error=reason,
    )


def analyse_symmetry(structure: Structure, symprec: float = 1e-5) -> Symmetry:
    """spglib space group and orbits; never raises for a bad cell (falls back, see ``error``).

    ``symprec`` is spglib's distance tolerance in Å.
    """
    n = structure.num_atoms
    try:
        import spglib
    except ImportError as exc:  # pragma: no cover - spglib is a hard dependency
        return _fallback(n, symprec, f"spglib unavailable: {exc}")
    cell = (
        np.asarray(structure.lattice, dtype=np.float64),
        np.asarray(structure.frac_coords, dtype=np.float64),
        _species_types(structure.elements),
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # spglib's deprecation chatter about its own API
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
            if dataset is None:
                get_message = getattr(spglib, "get_error_message", lambda: "")
                message = get_message() or "no space group found"
                return _fallback(n, symprec, f"spglib: {message}")
        equivalent = np.asarray(_field(dataset, "equivalent_atoms"), dtype=np.int64)
        wyckoffs = tuple(str(w) for w in _field(dataset, "wyckoffs"))  # type: ignore[attr-defined]
        spacegroup = str(_field(dataset, "international"))
        number = int(_field(dataset, "number"))  # type: ignore[call-overload]
    except Exception as exc:  # spglib raises assorted errors on degenerate cells
        return _fallback(n, symprec, f"spglib failed: {exc}")
    if equivalent.shape != (n,):
        return _fallback(n, symprec, "spglib returned a different number of atoms")
    return Symmetry(
        equivalent_atoms=equivalent,
        orbits=orbits_from_equivalent(equivalent),
        wyckoffs=wyckoffs,
        spacegroup=spacegroup,
        number=number,
        symprec=symprec,
    )


def orbit_order(orbits: list[list[int]]) -> list[int]:
    """Atom indices ordered orbit by orbit (for grouping rows in tables and heat maps)."""
    return [atom for orbit in orbits for atom in orbit]


def coordination_numbers(source: Structure | CrystalGraph, tol: float = SHELL_TOL) -> np.ndarray:
    """int64 [N]: size of each atom's first coordination shell.

    Definition: the number of distinct neighbours (atom and periodic image) at a distance
    ``d <= (1 + tol) * d_min``, with ``d_min`` that atom's nearest-neighbour distance
    (neighbours closer than 0.15 Å are ignored, as in the crystal graph). Rock-salt Na → 6,
    diamond Si → 4, fcc Cu → 12, bcc Fe → 8 (its second shell sits at 1.155 d_min).

    From a :class:`Structure` the shell is complete. From a :class:`CrystalGraph` only the
    graph's bonds count (a shell wider than the 12-NN graph is cut), and the duplicated
    self-image edges of upstream's builder are counted once.
    """
    if isinstance(source, CrystalGraph):
        return _graph_coordination(source, tol)
    return _structure_coordination(source, tol)


def _structure_coordination(structure: Structure, tol: float) -> np.ndarray:
    n = structure.num_atoms
    if n == 0:
        return np.zeros(0, np.int64)
    lattice = np.asarray(structure.lattice, dtype=np.float64)
    frac = np.asarray(structure.frac_coords, dtype=np.float64)
    r = 4.0
    found = all_neighbors(lattice, frac, r)
    while found.counts().min() == 0:
        if r > 1e4:
            raise ValueError(f"an atom has no neighbour within {r} Å")
        r *= 2
        found = all_neighbors(lattice, frac, r)
    d_min = np.full(n, np.inf)
    np.minimum.at(d_min, found.center, found.distance)
    shell = (1 + tol) * d_min
    if shell.max() > r:
        found = all_neighbors(lattice, frac, float(shell.max()) * (1 + 1e-9))
    in_shell = found.distance <= shell[found.center] * (1 + 1e-9)
    return np.bincount(found.center[in_shell], minlength=n).astype(np.int64)


def _graph_coordination(graph: CrystalGraph, tol: float) -> np.ndarray:
    n = graph.num_nodes
    dist = np.linalg.norm(graph.edge_r.astype(np.float64), axis=1)
    d_min = np.full(n, np.inf)
    np.minimum.at(d_min, graph.edge_src, dist)
    in_shell = dist <= (1 + tol) * d_min[graph.edge_src] * (1 + 1e-6)
    # A bond is (source, destination, displacement); quirk A stores self-image bonds twice.
    key = np.column_stack(
        [graph.edge_src, graph.edge_dst, np.round(graph.edge_r.astype(np.float64) * 1e4)]
    )[in_shell]
    unique = np.unique(key, axis=0)
    return np.bincount(unique[:, 0].astype(np.int64), minlength=n).astype(np.int64)
