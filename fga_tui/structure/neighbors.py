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
    lattice: np.ndarray, frac_coords: np.ndarray, r: float, bond_tol: float = BOND_TOL
) -> NeighborList:
    """Every neighbour within ``r`` Å of every site, bit-identical to jarvis ``get_all_neighbors``.

    ``lattice`` float [3, 3] (rows = vectors, Å, unrounded as given), ``frac_coords`` [N, 3].
    Work and memory are O(M·N²) distance evaluations (M images), done in bounded chunks.
    """
    frac = np.array(frac_coords, dtype=np.float64).reshape(-1, 3)
    n = frac.shape[0]
    matrix = np.array(lattice, dtype=np.float64).reshape(3, 3)
    sites = cart_coords(matrix, frac)
    images = image_box(matrix, frac, r, bond_tol)
    # One np.dot per image, exactly as jarvis: the BLAS kernel decides the last bit (FMA or not),
    # and that bit decides ties in the 12th-neighbour shell. M is at most a few thousand.
    offsets = np.array([np.dot(img, matrix) for img in images]).reshape(-1, 3)
    # Points (image m, atom j) flattened image-major; coordinates as jarvis: offset + cart_j.
    points = (offsets[:, None, :] + sites[None, :, :]).reshape(-1, 3)

    centers, neighbors, dists, image_idx = [], [], [], []
    block = max(1, _PAIR_BUDGET // max(n, 1))
    for start in range(0, points.shape[0], block):
        chunk = points[start : start + block]
        # Bounding-box prefilter: only sites that can be within r of some point in the chunk.
        # Conservative (margin 1e-6 Å), so it never drops a pair jarvis keeps.
        lo = chunk.min(axis=0) - (r + 1e-6)
        hi = chunk.max(axis=0) + (r + 1e-6)
        cand = np.flatnonzero(np.all((sites >= lo) & (sites <= hi), axis=1))
        if cand.size == 0:
            continue
        z = (chunk[:, None, :] - sites[None, cand, :]) ** 2
        d = np.sum(z, axis=-1) ** 0.5
        keep = (d <= r) & (d > 1e-8) & (d > bond_tol)
        p_idx, s_idx = np.nonzero(keep)
        if p_idx.size == 0:
            continue
        flat = start + p_idx
        centers.append(cand[s_idx])
        neighbors.append(flat % n)
        image_idx.append(flat // n)
        dists.append(d[p_idx, s_idx])

    if centers:
        center = np.concatenate(centers).astype(np.int64)
        neighbor = np.concatenate(neighbors).astype(np.int64)
        distance = np.concatenate(dists)
        image = images[np.concatenate(image_idx)].astype(np.int64)
    else:
        center = np.zeros(0, np.int64)
        neighbor = np.zeros(0, np.int64)
        distance = np.zeros(0, np.float64)
        image = np.zeros((0, 3), np.int64)
    return NeighborList(center, neighbor, distance, image, float(r), n)
