"""Periodic neighbour search that reproduces ``jarvis.core.atoms.Atoms.get_all_neighbors``.

Upstream ALIGNN's k-nearest graph keeps *every* neighbour tied with the 12th one, compared
exactly in float64, so a symmetric crystal's graph depends on the last bits of each distance.
This module therefore repeats jarvis' arithmetic operation for operation (same lattice
rounding, same image box, same numpy calls in the same order), only vectorised and chunked:

- jarvis ``Lattice`` rounds the matrix to 5 decimals. Cartesian site positions are
  ``frac @ round(L, 5)``; periodic image offsets are ``image @ L`` with the *unrounded* matrix.
- Image box per axis: ``maxr = ceil((r + bond_tol) * |b_k| / 2π)`` with ``|b_k|`` the lengths of
  the reciprocal lattice (itself rounded to 5 decimals, lengths rounded to 6), images
  ``floor(min frac) - maxr … ceil(max frac) + maxr - 1``.
- Distance ``d = sum((image @ L + cart_j - cart_i) ** 2) ** 0.5``; kept iff
  ``d <= r`` and ``d > 1e-8`` and ``d > bond_tol`` (so an atom's own images count, itself not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOND_TOL = 0.15
"""Å; jarvis drops neighbours closer than this (``get_all_neighbors(bond_tol=0.15)``)."""

_PAIR_BUDGET = 1 << 19
"""Distances evaluated per chunk: bounds peak memory at ~60 MB whatever the cell size."""

_SUBDIV = 2
"""Cell-list cubes per cutoff length: finer cubes screen fewer far pairs."""

_BRUTE_LIMIT = 1 << 18
"""Above this many (image point, site) pairs the cell-list filter pays for its overhead."""


@dataclass(frozen=True, eq=False)
class NeighborList:
    """All (site, neighbour, image) triples within ``radius``, in no particular order.

    ``center`` int64 [K] is the site i, ``neighbor`` int64 [K] the atom j, ``image`` int64 [K, 3]
    the lattice translation of j, ``distance`` float64 [K] (Å) the jarvis-exact |r_j + image - r_i|.
    """

    center: np.ndarray
    neighbor: np.ndarray
    distance: np.ndarray
    image: np.ndarray
    radius: float
    num_sites: int

    def counts(self) -> np.ndarray:
        """int64 [N]: number of neighbours of each site."""
        return np.bincount(self.center, minlength=self.num_sites)


def rounded_lattice(lattice: np.ndarray) -> np.ndarray:
    """jarvis ``Lattice`` matrix: rows = vectors, rounded to 5 decimals (float64 [3, 3])."""
    return np.around(np.array(lattice, dtype="float64").reshape((3, 3)), decimals=5)


def lattice_lengths(lattice: np.ndarray) -> list[float]:
    """jarvis ``Lattice.lat_lengths()``: |a|, |b|, |c| of the rounded matrix, to 6 decimals."""
    m = rounded_lattice(lattice)
    return [round(x, 6) for x in np.sqrt(np.sum(m**2, axis=1)).tolist()]


def cart_coords(lattice: np.ndarray, frac_coords: np.ndarray) -> np.ndarray:
    """jarvis ``Atoms.cart_coords`` of fractional input: ``frac @ round(L, 5)``, float64 [N, 3]."""
    return np.dot(np.array(frac_coords, dtype=np.float64), rounded_lattice(lattice))


def frac_from_cart(lattice: np.ndarray, cart: np.ndarray) -> np.ndarray:
    """jarvis ``Atoms(cartesian=True).frac_coords``: ``cart @ inv(round(L, 5))``, float64 [N, 3].

    Use it (and pass ``cart`` to the graph builder) to reproduce upstream on Cartesian input.
    """
    return np.dot(np.array(cart, dtype=np.float64), np.linalg.inv(rounded_lattice(lattice)))


def image_box(
    lattice: np.ndarray, frac_coords: np.ndarray, r: float, bond_tol: float
) -> np.ndarray:
    """float64 [M, 3]: the lattice translations jarvis tries, in ``itertools.product`` order."""
    recip = rounded_lattice(2 * np.pi * np.linalg.inv(rounded_lattice(lattice)).T)
    recp_len = np.array(lattice_lengths(recip))
    maxr = np.ceil((r + bond_tol) * recp_len / (2 * math.pi))
    frac = np.asarray(frac_coords, dtype=np.float64)
    nmin = np.floor(np.min(frac, axis=0)) - maxr
    nmax = np.ceil(np.max(frac, axis=0)) + maxr
    axes = [np.arange(lo, hi) for lo, hi in zip(nmin, nmax, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.reshape(-1) for g in grid], axis=1)


def all_neighbors(
    lattice: np.ndarray,
    frac_coords: np.ndarray,
    r: float,
    bond_tol: float = BOND_TOL,
    *,
    cart: np.ndarray | None = None,
    method: str = "auto",
) -> NeighborList:
    """Every neighbour within ``r`` Å of every site, bit-identical to jarvis ``get_all_neighbors``.

    ``lattice`` float [3, 3] (rows = vectors, Å, unrounded as given), ``frac_coords`` [N, 3].
    ``method``: "brute" evaluates all M·N² (image, atom, site) distances in bounded chunks;
    "cells" first bins the image points in cubes of edge ≥ r and evaluates only pairs in
    adjacent cubes (a conservative filter: it never drops a pair jarvis keeps); "auto" picks
    "cells" once M·N² is large. Both evaluate kept distances with jarvis' exact expression.
    ``cart``: the Cartesian positions jarvis holds when they differ from ``frac @ round(L, 5)``
    in the last bits (an ``Atoms`` built from Cartesian input keeps them as given).
    """
    frac = np.array(frac_coords, dtype=np.float64).reshape(-1, 3)
    n = frac.shape[0]
    if n == 0:
        empty = np.zeros(0, np.int64)
        return NeighborList(empty, empty, np.zeros(0), np.zeros((0, 3), np.int64), float(r), 0)
    matrix = np.array(lattice, dtype=np.float64).reshape(3, 3)
    sites = cart_coords(matrix, frac) if cart is None else np.array(cart, np.float64).reshape(n, 3)
    images = image_box(matrix, frac, r, bond_tol)
    # An image can only matter if its offset o satisfies |o| <= r + extent of the sites, per
    # axis (a conservative test on an approximate offset: jarvis' box is generous).
    reach = sites.max(axis=0) - sites.min(axis=0) + r + 1e-6
    images = images[np.all(np.abs(images @ matrix) <= reach, axis=1)]
    # One np.dot per image, exactly as jarvis: the BLAS kernel decides the last bit (FMA or not),
    # and that bit decides ties in the 12th-neighbour shell. M is at most a few thousand.
    offsets = np.array([np.dot(img, matrix) for img in images]).reshape(-1, 3)
    # Points (image m, atom j) flattened image-major; coordinates as jarvis: offset + cart_j.
    points = (offsets[:, None, :] + sites[None, :, :]).reshape(-1, 3)
    if method == "auto":
        method = "cells" if points.shape[0] * n > _BRUTE_LIMIT else "brute"
    if method == "brute":
        pairs = _brute_pairs(points, sites, r, bond_tol)
    elif method == "cells":
        pairs = _cell_pairs(points, sites, r, bond_tol)
    else:
        raise ValueError(f"unknown neighbour search method {method!r}")
    point, center, distance = pairs
    return NeighborList(
        center=center,
        neighbor=point % n,
        distance=distance,
        image=images[point // n].astype(np.int64),
        radius=float(r),
        num_sites=n,
    )


def _exact_distances(points: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """jarvis' distance expression, elementwise: ``sum((p - s) ** 2, axis=-1) ** 0.5``."""
    return np.sum((points - sites) ** 2, axis=-1) ** 0.5


def _keep(d: np.ndarray, r: float, bond_tol: float) -> np.ndarray:
    return (d <= r) & (d > 1e-8) & (d > bond_tol)


_Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]


def _collect(parts: list[_Pairs]) -> _Pairs:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]


def _brute_pairs(points: np.ndarray, sites: np.ndarray, r: float, bond_tol: float) -> _Pairs:
    """(point, site, d) for all kept pairs, testing every point against every site."""
    n = sites.shape[0]
    parts: list[_Pairs] = []
    block = max(1, _PAIR_BUDGET // max(n, 1))
    for start in range(0, points.shape[0], block):
        d = _exact_distances(points[start : start + block, None, :], sites[None, :, :])
        p_idx, s_idx = np.nonzero(_keep(d, r, bond_tol))
        parts.append((start + p_idx, s_idx, d[p_idx, s_idx]))
    return _collect(parts)


def _cell_pairs(points: np.ndarray, sites: np.ndarray, r: float, bond_tol: float) -> _Pairs:
    """(point, site, d) for all kept pairs, testing only points in cubes near the site's cube.

    Cubes have edge h > r / _SUBDIV, so a point within r of a site lies at most _SUBDIV cubes
    away per axis. Candidates are screened with a cheap squared distance and a relative margin
    of 1e-9; survivors get jarvis' exact expression, so the result never depends on the screen.
    """
    k = _SUBDIV
    h = (r * (1 + 1e-9) + 1e-9) / k
    pad = (k + 1) * h  # one spare cube beyond the reach of any site's neighbourhood
    lo = sites.min(axis=0) - pad
    hi = sites.max(axis=0) + pad
    near = np.flatnonzero(np.all((points >= lo) & (points <= hi), axis=1))
    shape = np.floor((hi - lo) / h).astype(np.int64) + 1
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    p_cell = np.clip(np.floor((points[near] - lo) / h).astype(np.int64), 0, shape - 1)
    p_key = p_cell @ strides
    by_key = np.argsort(p_key, kind="stable")
    near = near[by_key]  # candidate points in cube order: each cube is one contiguous run
    cell_count = np.bincount(p_key, minlength=int(np.prod(shape)))
    cell_first = np.cumsum(cell_count) - cell_count
    px, py, pz = (np.ascontiguousarray(points[near, a]) for a in range(3))
    s_cell = np.clip(np.floor((sites - lo) / h).astype(np.int64), k, shape - 1 - k)
    span = np.arange(-k, k + 1)
    shifts = np.stack(np.meshgrid(span, span, span, indexing="ij"), axis=-1).reshape(-1, 3)
    keys = (s_cell @ strides)[:, None] + (shifts @ strides)[None, :]  # [N, (2k+1)^3]
    first = cell_first[keys]
    count = cell_count[keys]
    per_site = keys.shape[1]
    screen = (r * (1 + 1e-9)) ** 2
    # Sites in blocks of at most _PAIR_BUDGET candidates (or one site), to bound memory.
    before = np.concatenate([[0], np.cumsum(count.sum(axis=1))])  # candidates before site s
    parts: list[_Pairs] = []
    s0 = 0
    while s0 < sites.shape[0]:
        limit = before[s0] + _PAIR_BUDGET
        s1 = max(s0 + 1, int(np.searchsorted(before, limit, side="right")) - 1)
        c = count[s0:s1].reshape(-1)
        total = int(c.sum())
        if total:
            # Expand each (site, cube) run [first, first + count) into candidate pairs.
            run = np.repeat(np.arange(c.shape[0]), c)
            slot = first[s0:s1].reshape(-1)[run] + np.arange(total)
            slot -= np.repeat(np.cumsum(c) - c, c)
            cand_site = s0 + run // per_site
            sx, sy, sz = (sites[cand_site, a] for a in range(3))
            dx, dy, dz = px[slot] - sx, py[slot] - sy, pz[slot] - sz
            close = np.flatnonzero(dx * dx + dy * dy + dz * dz <= screen)
            cp, cs = near[slot[close]], cand_site[close]
            d = _exact_distances(points[cp], sites[cs])
            ok = _keep(d, r, bond_tol)
            parts.append((cp[ok], cs[ok], d[ok]))
        s0 = s1
    return _collect(parts)
