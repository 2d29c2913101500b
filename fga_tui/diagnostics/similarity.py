"""How similar the atoms of one structure are at one stage: correlation, over-smoothing, rank.

Every function takes ``X`` float [N, D], the node features of one structure at one stage (rows =
atoms), and works in float64. Formulas: MAD (Chen et al., AAAI 2020), Dirichlet energy (Rusch
et al. 2023), effective rank (Roy & Vetterli 2007). Conventions that matter:

- *Raw* correlation (``np.corrcoef`` between rows over D) is shown because the original print did
  it, but a large shared mean vector drives it to ~1; the *centred* versions first subtract the mean
  atom (column means over atoms), so they measure what distinguishes atoms.
- Degenerate rows never produce NaN. A row with nothing to correlate (a constant row for Pearson,
  a zero row for cosine, a row equal to the mean atom after centring) has similarity 1 with itself
  and with every row equal to it, and 0 with every other row. So collapse reads as "similar" (all
  atoms identical → every centred correlation is 1) and a lone odd row reads as "unrelated".
- Centring rounds: constant feature columns are zeroed exactly, and a centred row whose norm is at
  most ``CENTER_RTOL`` times the largest row norm of X counts as equal to the mean atom.
- Two atoms: the centred rows are ±(x_0 - x_1)/2, so centred correlation is -1 whenever they
  differ at all and 1 when they are equal; it carries information only from three atoms up.
- Symmetry-equivalent atoms (one crystallographic orbit) are identical by construction; that is
  expected, not collapse. The orbit-aware summaries (``cross_orbit_*``) look only at pairs of atoms
  in different orbits, where identity *is* a finding.
- Scale: up to ``EXACT_MAX_ATOMS`` atoms every N×N matrix is computed. Above it the pair
  statistics run on a ``RowSet``: one row per symmetry orbit weighted by the orbit's size when
  the orbits' atoms are identical (exact, linear in atoms for a fixed number of orbits), else a
  seeded uniform sample of ``SAMPLE_ROWS`` atoms (an estimate; ``StageMetrics.pairs`` reports the
  method and the standard errors). Ranks, Dirichlet energy and within-orbit deviation stay exact.
- One atom: no pairs exist. ``stage_metrics`` then reports the contract means as 1.0 (the only
  pair is the atom with itself), MAD 0, Dirichlet 0 and both ranks 1, so every number stays
  defined; the extras over pairs are None. Check ``num_atoms`` before reading collapse into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

Orbits = Sequence[Sequence[int]]
PairSelection = Literal["all", "cross_orbit", "within_orbit"]

#: A centred row with norm <= CENTER_RTOL * (largest row norm of X) equals the mean atom.
CENTER_RTOL = 1e-10
#: Cosine distances at or below this count as the exact zeros MAD drops (angle < ~1.4e-5 rad,
#: i.e. float32 noise between symmetry-identical atoms).
MAD_ZERO_TOL = 1e-10
#: ``identical_pairs`` defaults: |x_i - x_j| <= atol + rtol * max(|x_i|, |x_j|) elementwise.
IDENTICAL_ATOL = 1e-6
IDENTICAL_RTOL = 1e-5
#: ``StageMetrics`` keeps this many example pairs of identical atoms in different orbits.
MAX_EXAMPLES = 20

_VERIFY_CHUNK = 4096

#: Above this many atoms, pair statistics run on orbit representatives or a sample of atoms.
EXACT_MAX_ATOMS = 1024
#: Atoms sampled (seeded, without replacement) when a large cell has too many distinct orbits.
SAMPLE_ROWS = 512


def as_features(X: Any) -> np.ndarray:
    """``X`` as float64 [N, D] with N, D >= 1 (raises ValueError otherwise)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"features must be 2-D [N, D], got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"features need at least one atom and one dimension, got {arr.shape}")
    return arr


def centered(X: Any) -> np.ndarray:
    """``X`` minus the mean atom, float64 [N, D]; constant columns become exactly 0."""
    X = as_features(X)
    Xc = X - X.mean(axis=0)
    Xc[:, np.ptp(X, axis=0) == 0] = 0.0
    return Xc


def _center_tol(X: np.ndarray) -> float:
    return CENTER_RTOL * float(np.sqrt((X * X).sum(axis=1).max()))


def _similarity(
    Y: np.ndarray, degenerate: np.ndarray, key: np.ndarray, key_tol: float
) -> np.ndarray:
    """Cosine between the rows of ``Y`` [N, D] -> [N, N] in [-1, 1].

    Rows flagged ``degenerate`` have no direction: they get 1 with degenerate rows whose ``key``
    (the value that identifies them, e.g. the constant of a constant row) is within ``key_tol``,
    0 with every other row. The diagonal is 1.
    """
    norms = np.sqrt((Y * Y).sum(axis=1))
    degenerate = degenerate | (norms == 0)
    U = Y / np.where(degenerate, 1.0, norms)[:, None]
    U[degenerate] = 0.0
    S = U @ U.T
    np.clip(S, -1.0, 1.0, out=S)
    if degenerate.any():
        idx = np.flatnonzero(degenerate)
        k = key[idx]
        S[np.ix_(idx, idx)] = (np.abs(k[:, None] - k[None, :]) <= key_tol).astype(np.float64)
    np.fill_diagonal(S, 1.0)
    return S


def _pearson_rows(Y: np.ndarray, tol: float) -> np.ndarray:
    """Pearson correlation between rows of ``Y`` over D; rows with variance <= tol are degenerate
    and are compared by their mean (equal means within tol -> 1)."""
    mean = Y.mean(axis=1)
    Z = Y - mean[:, None]
    if tol == 0.0:
        # Exact: a row is constant iff its range is 0; its key is the constant itself.
        degenerate = np.ptp(Y, axis=1) == 0
        return _similarity(Z, degenerate, Y[:, 0], 0.0)
    degenerate = np.sqrt((Z * Z).sum(axis=1)) <= tol
    return _similarity(Z, degenerate, mean, tol)


def raw_correlation(X: Any) -> np.ndarray:
    """``np.corrcoef(X)`` [N, N]: Pearson between atoms over the D features, without centring.

    A constant row correlates 1 with itself and with rows holding the same constant (e.g. all-zero
    rows after a dead ReLU), 0 with every other row.
    """
    return _pearson_rows(as_features(X), 0.0)


def centered_correlation(X: Any) -> np.ndarray:
    """Pearson between atoms [N, N] after subtracting the mean atom.

    A row equal to the mean atom (or differing from it only by a constant shift) has no pattern to
    correlate: it gets 1 with rows equal to it and 0 otherwise. All atoms identical -> all ones.
    """
    X = as_features(X)
    return _pearson_rows(centered(X), _center_tol(X))


def cosine_matrix(X: Any) -> np.ndarray:
    """Cosine similarity [N, N] ``normalize(X) normalize(X)^T``; zero rows: 1 with each other,
    0 with non-zero rows."""
    X = as_features(X)
    return _similarity(X, np.zeros(X.shape[0], dtype=bool), np.zeros(X.shape[0]), 0.0)


def centered_cosine(X: Any) -> np.ndarray:
    """Cosine similarity [N, N] after subtracting the mean atom; rows equal to the mean atom:
    1 with each other, 0 with the rest."""
    X = as_features(X)
    Xc = centered(X)
    tol = _center_tol(X)
    null = np.sqrt((Xc * Xc).sum(axis=1)) <= tol
    return _similarity(Xc, null, np.zeros(X.shape[0]), 0.0)


def identical_matrix(
    X: Any, atol: float = IDENTICAL_ATOL, rtol: float = IDENTICAL_RTOL
) -> np.ndarray:
    """bool [N, N]: rows i, j are equal elementwise within ``atol + rtol * max(|x_i|, |x_j|)``.

    The ``np.allclose`` test of metrics.md, made symmetric. Exactly equal rows are grouped first
    and only the ``candidate_pairs`` of the distinct rows are checked elementwise, so this stays
    fast at N = 500 and under full collapse.
    """
    X = as_features(X)
    uniq, inverse = np.unique(X, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    same = np.eye(uniq.shape[0], dtype=bool)
    ia, ib = candidate_pairs(uniq, atol, rtol)
    for start in range(0, ia.size, _VERIFY_CHUNK):
        a = uniq[ia[start : start + _VERIFY_CHUNK]]
        b = uniq[ib[start : start + _VERIFY_CHUNK]]
        tol = atol + rtol * np.maximum(np.abs(a), np.abs(b))
        ok = np.all(np.abs(a - b) <= tol, axis=1)
        ra = ia[start : start + _VERIFY_CHUNK][ok]
        rb = ib[start : start + _VERIFY_CHUNK][ok]
        same[ra, rb] = True
        same[rb, ra] = True
    return same[inverse][:, inverse]


def candidate_pairs(
    rows: np.ndarray, atol: float = IDENTICAL_ATOL, rtol: float = IDENTICAL_RTOL
) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (ia, ib), ia < ib, of the row pairs that may be identical: a superset of
    the identical pairs, decided in one matrix product instead of N² elementwise comparisons.

    Rows equal within ``bound = atol + rtol * max(max|x_i|, max|x_j|)`` in each of the D elements
    are within ``sqrt(D) * bound`` in Euclidean distance; the distances come from the Gram
    matrix, which loses about ``D * eps * (|x_i|² + |x_j|²)`` to cancellation (``1e-12`` covers
    it), so a pair is a candidate iff ``d² <= D * bound² + 1e-12 * (|x_i|² + |x_j|²)``.
    """
    d = rows.shape[1]
    sq = (rows * rows).sum(axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (rows @ rows.T)
    amax = np.abs(rows).max(axis=1)
    bound = atol + rtol * np.maximum(amax[:, None], amax[None, :])
    limit = d * bound * bound + 1e-12 * (sq[:, None] + sq[None, :])
    return np.nonzero(np.triu(d2 <= limit, 1))


def identical_pairs(
    X: Any, atol: float = IDENTICAL_ATOL, rtol: float = IDENTICAL_RTOL
) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of atoms with identical features (see ``identical_matrix``)."""
    same = identical_matrix(X, atol=atol, rtol=rtol)
    return [(int(i), int(j)) for i, j in np.argwhere(np.triu(same, 1))]


def mad(X: Any, *, drop_zeros: bool = True) -> float:
    """Mean Average Distance (Chen et al., AAAI 2020), global (no neighbour mask), in [0, 2].

    ``D_ij = 1 - cos(x_i, x_j)``; ``D̄_i = Σ_j D_ij / #{j: D_ij > 0}``; MAD = mean of the nonzero
    ``D̄_i``; 0.0 when all are zero (fully smoothed, or one atom).

    Like the official code, zero distances are dropped (``drop_zeros``). Distances <= MAD_ZERO_TOL
    count as zero, so symmetry-identical atoms (and atoms collapsed onto the same direction) do
    not enter each other's average: MAD measures how different the *distinct* atoms are, and a
    high-symmetry cell is not read as smoothed. ``drop_zeros=False`` averages over all j != i.
    Two zero rows have distance 0 (they are equal); a zero row is at distance 1 from the rest.
    """
    return _mad_from_cosine(cosine_matrix(X), drop_zeros=drop_zeros)


def _mad_from_cosine(cos: np.ndarray, drop_zeros: bool = True) -> float:
    n = cos.shape[0]
    dist = 1.0 - cos
    dist[dist <= MAD_ZERO_TOL] = 0.0
    np.fill_diagonal(dist, 0.0)
    totals = dist.sum(axis=1)
    counts = (dist > 0).sum(axis=1) if drop_zeros else np.full(n, n - 1)
    per_node = np.divide(totals, counts, out=np.zeros(n), where=counts > 0)
    nonzero = per_node > 0
    return float(per_node[nonzero].mean()) if nonzero.any() else 0.0


def _edges(src: Any, dst: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(src, dtype=np.int64).reshape(-1)
    d = np.asarray(dst, dtype=np.int64).reshape(-1)
    if s.shape != d.shape:
        raise ValueError(f"src and dst differ in length: {s.size} vs {d.size}")
    if s.size and (min(s.min(), d.min()) < 0 or max(s.max(), d.max()) >= n):
        raise ValueError(f"edge index out of range for {n} atoms")
    return s, d


def dirichlet_energy(X: Any, src: Any, dst: Any) -> float:
    """Dirichlet energy ``(1/N) Σ_edges ||x_src - x_dst||²`` (Rusch et al. 2023), unnormalised.

    Edges are taken as given: directed, a repeated edge counts each time, periodic self-image
    edges (src == dst) contribute 0. No edges -> 0.0. Scales with ||X||²; see
    ``dirichlet_normalized``.
    """
    X = as_features(X)
    n = X.shape[0]
    s, d = _edges(src, dst, n)
    keep = s != d
    if not keep.any():
        return 0.0
    # ||x_i - x_j||² is symmetric: sum each unordered pair once, weighted by its multiplicity.
    lo, hi = np.minimum(s[keep], d[keep]), np.maximum(s[keep], d[keep])
    pairs, counts = np.unique(lo * n + hi, return_counts=True)
    diff = X[pairs // n] - X[pairs % n]
    return float(counts @ np.einsum("ij,ij->i", diff, diff) / n)


def dirichlet_normalized(X: Any, src: Any, dst: Any) -> float:
    """``dirichlet_energy / (||X||_F² / N)``: scale-free, comparable across stages.

    0.0 when X = 0.
    """
    X = as_features(X)
    total = float(np.einsum("ij,ij->", X, X))
    if total == 0.0:
        return 0.0
    return dirichlet_energy(X, src, dst) * X.shape[0] / total


def _centered_spectrum(X: np.ndarray) -> np.ndarray:
    """Singular values of the centred X above rounding level; empty when X_c is ~0."""
    Xc = centered(X)
    tol = _center_tol(X)
    if np.all(np.sqrt((Xc * Xc).sum(axis=1)) <= tol):
        return np.zeros(0)
    s = np.linalg.svd(Xc, compute_uv=False)
    return s[s > s[0] * max(Xc.shape) * np.finfo(np.float64).eps]


def _numerical_rank(s: np.ndarray) -> float:
    return float((s * s).sum() / (s[0] * s[0])) if s.size else 1.0


def _effective_rank(s: np.ndarray) -> float:
    if s.size == 0:
        return 1.0
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def numerical_rank(X: Any) -> float:
    """Stable rank ``||X_c||_F² / ||X_c||_2²`` of the centred X, in [1, rank]; 1.0 when X_c = 0."""
    return _numerical_rank(_centered_spectrum(as_features(X)))


def effective_rank(X: Any) -> float:
    """Effective rank ``exp(H(σ/Σσ))`` (Roy & Vetterli 2007) of the centred X; 1.0 when X_c = 0.

    Singular values below ``max(N, D) * eps * σ_max`` are rounding and are dropped.
    """
    return _effective_rank(_centered_spectrum(as_features(X)))


# --- orbits and pair selections -------------------------------------------------------------


def complete_orbits(orbits: Orbits | None, n: int) -> list[list[int]]:
    """``orbits`` validated, plus a singleton orbit for every atom they leave out.

    ``None`` means no symmetry information: every atom is its own orbit. Raises ValueError for
    out-of-range or repeated atom indices.
    """
    if orbits is None:
        return [[i] for i in range(n)]
    seen = np.zeros(n, dtype=bool)
    result: list[list[int]] = []
    for orbit in orbits:
        members = [int(i) for i in orbit]
        if not members:
            continue
        for i in members:
            if not 0 <= i < n:
                raise ValueError(f"orbit atom index {i} out of range for {n} atoms")
            if seen[i]:
                raise ValueError(f"atom {i} appears in more than one orbit")
            seen[i] = True
        result.append(members)
    result.extend([int(i)] for i in np.flatnonzero(~seen))
    return result


def orbit_labels(orbits: Orbits | None, n: int) -> np.ndarray:
    """int [n]: the index (into ``complete_orbits``) of each atom's orbit."""
    labels = np.empty(n, dtype=np.int64)
    for g, orbit in enumerate(complete_orbits(orbits, n)):
        labels[orbit] = g
    return labels


def pair_mask(n: int, pairs: PairSelection = "all", orbits: Orbits | None = None) -> np.ndarray:
    """bool [n, n], True on the selected pairs i < j (upper triangle only)."""
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    if pairs == "all":
        return upper
    labels = orbit_labels(orbits, n)
    same = labels[:, None] == labels[None, :]
    if pairs == "cross_orbit":
        return upper & ~same
    if pairs == "within_orbit":
        return upper & same
    raise ValueError(f"pairs must be 'all', 'cross_orbit' or 'within_orbit', not {pairs!r}")


def mean_offdiag(
    M: Any, pairs: PairSelection = "all", orbits: Orbits | None = None
) -> float | None:
    """Mean of ``M[i, j]`` over the selected pairs i < j; None when there is no such pair.

    ``cross_orbit`` keeps pairs of atoms in different symmetry orbits (where identity means
    collapse), ``within_orbit`` pairs in the same orbit (identical by symmetry).
    """
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {M.shape}")
    mask = pair_mask(M.shape[0], pairs, orbits)
    if not mask.any():
        return None
    return float(M[mask].mean())


def orbit_representatives(X: Any, orbits: Orbits | None) -> tuple[np.ndarray, np.ndarray]:
    """One atom per orbit: (indices int [G] = lowest index of each orbit, ``X[indices]`` [G, D]).

    Orbits come in ``complete_orbits`` order. Rows inside an orbit are identical by symmetry, so
    the representatives carry all the information at a fraction of the size.
    """
    X = as_features(X)
    reps = np.array([min(o) for o in complete_orbits(orbits, X.shape[0])], dtype=np.int64)
    return reps, X[reps]


def group_by_label(labels: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """Group atom indices by label (e.g. element), in order of first appearance.

    ``["Na", "Na", "Cl"]`` -> ``(["Na", "Cl"], [[0, 1], [2]])``.
    """
    names: list[str] = []
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if label not in groups:
            names.append(label)
            groups[label] = []
        groups[label].append(i)
    return names, [groups[name] for name in names]


def block_mean(
    M: Any, groups: Sequence[Sequence[int]], *, exclude_diagonal: bool = True
) -> np.ndarray:
    """Aggregate an [N, N] matrix into a [G, G] block-mean matrix (orbit×orbit, element×element).

    Entry (g, h) is the mean of ``M[i, j]`` over i in group g, j in group h. With
    ``exclude_diagonal`` the diagonal blocks leave out i == j (so they show how alike *different*
    members are); a singleton group then falls back to its diagonal value ``M[i, i]``.
    """
    M = np.asarray(M, dtype=np.float64)
    n = M.shape[0]
    if M.ndim != 2 or M.shape[1] != n:
        raise ValueError(f"expected a square matrix, got shape {M.shape}")
    indicator = np.zeros((len(groups), n))
    for g, members in enumerate(groups):
        if len(members) == 0:
            raise ValueError(f"group {g} is empty")
        indicator[g, list(members)] = 1.0
    sizes = indicator.sum(axis=1)
    sums = indicator @ M @ indicator.T
    counts = np.outer(sizes, sizes)
    if exclude_diagonal:
        diag_sums = indicator @ np.diag(M)
        idx = np.arange(len(groups))
        singleton = sizes == 1
        sums[idx, idx] = np.where(singleton, diag_sums, sums[idx, idx] - diag_sums)
        counts[idx, idx] = np.where(singleton, 1.0, counts[idx, idx] - sizes)
    return sums / counts


# --- large cells: orbit representatives or a sample of atoms ----------------------------------


@dataclass(frozen=True)
class RowSet:
    """The rows that stand for all N atoms in pair statistics.

    ``indices`` int [G] atoms; ``weights`` float [G]: how many atoms each row stands for (orbit
    sizes for ``method == "orbits"``, 1 otherwise); ``orbit`` int [G]: each row's orbit label.
    ``method``: ``"exact"`` (every atom), ``"orbits"`` (one row per orbit, whose atoms are
    identical within tolerance, so pair means are exact) or ``"sampled"`` (a uniform sample:
    pair means over it estimate those over all pairs).
    """

    indices: np.ndarray
    weights: np.ndarray
    orbit: np.ndarray
    method: str
    num_atoms: int

    def describe(self, stderr: dict[str, float | None] | None = None) -> dict[str, Any]:
        """The JSON form: method, rows used, atoms and (sampled) standard errors."""
        out: dict[str, Any] = {
            "method": self.method,
            "rows": int(self.indices.size),
            "num_atoms": int(self.num_atoms),
        }
        if stderr:
            out["stderr"] = {k: json_float(v) for k, v in stderr.items()}
        return out


def orbits_identical(
    X: np.ndarray,
    orbits: Sequence[Sequence[int]],
    atol: float = IDENTICAL_ATOL,
    rtol: float = IDENTICAL_RTOL,
) -> bool:
    """Whether every orbit's rows agree elementwise within ``atol + rtol * max|x|`` (O(N D))."""
    scale = atol + rtol * float(np.abs(X).max(initial=0.0))
    return all(len(o) < 2 or float(np.ptp(X[list(o)], axis=0).max()) <= scale for o in orbits)


def select_rows(
    X: np.ndarray,
    orbits: Sequence[Sequence[int]],
    *,
    exact_max: int = EXACT_MAX_ATOMS,
    sample: int = SAMPLE_ROWS,
    atol: float = IDENTICAL_ATOL,
    rtol: float = IDENTICAL_RTOL,
) -> RowSet:
    """The ``RowSet`` for ``X`` [N, ...] (rows = atoms) with complete ``orbits``.

    Every atom up to ``exact_max``; else orbit representatives when there are at most
    ``exact_max`` orbits and their atoms are identical; else ``sample`` atoms drawn with a seed
    fixed by N (the same cell gives the same numbers on every run).
    """
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    for g, o in enumerate(orbits):
        labels[list(o)] = g
    if n <= exact_max:
        return RowSet(np.arange(n), np.ones(n), labels, "exact", n)
    flat = X.reshape(n, -1)
    if len(orbits) <= exact_max and orbits_identical(flat, orbits, atol, rtol):
        reps = np.array([min(o) for o in orbits], dtype=np.int64)
        sizes = np.array([len(o) for o in orbits], dtype=np.float64)
        return RowSet(reps, sizes, np.arange(len(orbits)), "orbits", n)
    rng = np.random.default_rng(n)
    pick = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    return RowSet(pick, np.ones(pick.size), labels[pick], "sampled", n)


def pair_weights(rows: RowSet) -> tuple[np.ndarray, np.ndarray, float]:
    """(all [G, G], cross-orbit [G, G]) pair weights on g < h, and the number of pairs inside
    single rows (atoms of one orbit with each other, identical, similarity 1, distance 0)."""
    w = rows.weights
    upper = np.triu(np.outer(w, w), 1)
    cross = upper * (rows.orbit[:, None] != rows.orbit[None, :])
    inside = float((w * (w - 1) / 2).sum())
    return upper, cross, inside


def _weighted_pair_mean(
    M: np.ndarray, weights: np.ndarray, inside: float = 0.0, inside_value: float = 1.0
) -> float | None:
    total = float(weights.sum()) + inside
    if total == 0:
        return None
    return (float((M * weights).sum()) + inside * inside_value) / total


def _row_mean_stderr(M: np.ndarray, weights: np.ndarray) -> float | None:
    """Standard error of a pair mean over a uniform sample of m atoms (U-statistic, first
    order): 2·sd(per-atom mean over its pairs)/sqrt(m)."""
    W = weights + weights.T
    per = W.sum(axis=1)
    ok = per > 0
    if ok.sum() < 2:
        return None
    row_means = (M * W).sum(axis=1)[ok] / per[ok]
    return float(2.0 * row_means.std(ddof=1) / np.sqrt(ok.sum()))


# --- one stage, all numbers -------------------------------------------------------------------


def json_float(value: float | None) -> float | None:
    """``value`` as a plain float for JSON, or None when it is missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass(frozen=True)
class StageMetrics:
    """All similarity numbers for one stage of one structure.

    The contract fields (the report's ``stages`` entries, README) are means over all distinct pairs
    i < j and are always floats. Extras: ``cross_orbit_*`` are means over pairs in different
    orbits (None with a single orbit); ``within_orbit_max_dev`` is the largest elementwise
    |x_i - x_j| inside any orbit (None when no orbit has two atoms; ~0 is the expected symmetry);
    ``identical_cross_orbit_pairs`` counts identical atoms in different orbits (collapse), with up
    to MAX_EXAMPLES of them in ``identical_cross_orbit_examples``.
    """

    name: str
    mean_raw_corr: float
    mean_centered_corr: float
    mad: float
    dirichlet: float
    effective_rank: float
    numerical_rank: float
    cross_orbit_raw_corr: float | None
    cross_orbit_centered_corr: float | None
    cross_orbit_cosine: float | None
    within_orbit_max_dev: float | None
    identical_cross_orbit_pairs: int
    identical_cross_orbit_examples: tuple[tuple[int, int], ...]
    dirichlet_normalized: float
    num_atoms: int
    num_orbits: int
    pairs: dict[str, Any] | None = None

    CONTRACT_FIELDS: ClassVar[tuple[str, ...]] = (
        "name",
        "mean_raw_corr",
        "mean_centered_corr",
        "mad",
        "dirichlet",
        "effective_rank",
        "numerical_rank",
    )

    def to_json(self) -> dict[str, Any]:
        """The report's stage object: contract fields first, then extras; never NaN."""
        return {
            "name": self.name,
            "mean_raw_corr": json_float(self.mean_raw_corr),
            "mean_centered_corr": json_float(self.mean_centered_corr),
            "mad": json_float(self.mad),
            "dirichlet": json_float(self.dirichlet),
            "effective_rank": json_float(self.effective_rank),
            "numerical_rank": json_float(self.numerical_rank),
            "cross_orbit_raw_corr": json_float(self.cross_orbit_raw_corr),
            "cross_orbit_centered_corr": json_float(self.cross_orbit_centered_corr),
            "cross_orbit_cosine": json_float(self.cross_orbit_cosine),
            "within_orbit_max_dev": json_float(self.within_orbit_max_dev),
            "identical_cross_orbit_pairs": int(self.identical_cross_orbit_pairs),
            "identical_cross_orbit_examples": [
                list(p) for p in self.identical_cross_orbit_examples
            ],
            "dirichlet_normalized": json_float(self.dirichlet_normalized),
            "num_atoms": int(self.num_atoms),
            "num_orbits": int(self.num_orbits),
            "pairs": self.pairs,
        }


def _masked_mean(M: np.ndarray, mask: np.ndarray) -> float | None:
    return float(M[mask].mean()) if mask.any() else None


def stage_metrics(
    name: str,
    X: Any,
    src: Any,
    dst: Any,
    orbits: Orbits | None = None,
    *,
    atol: float = IDENTICAL_ATOL,
    rtol: float = IDENTICAL_RTOL,
) -> StageMetrics:
    """Every similarity metric of one stage: ``X`` [N, D], crystal-graph edges ``src``/``dst``
    (directed, as given), symmetry ``orbits`` (None: every atom its own orbit).

    Computes each N×N matrix once; about 20 ms at N = 500, D = 256. Above ``EXACT_MAX_ATOMS``
    atoms the pair statistics run on a ``RowSet`` (see ``large_stage_metrics``).
    """
    X = as_features(X)
    n = X.shape[0]
    orbit_list = complete_orbits(orbits, n)
    if n > EXACT_MAX_ATOMS:
        return large_stage_metrics(name, X, src, dst, orbit_list, atol=atol, rtol=rtol)
    labels = orbit_labels(orbit_list, n)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    cross = upper & (labels[:, None] != labels[None, :])

    raw = raw_correlation(X)
    cen = centered_correlation(X)
    cos = cosine_matrix(X)
    spectrum = _centered_spectrum(X)
    same = identical_matrix(X, atol=atol, rtol=rtol) & cross
    ident = np.argwhere(same)

    within = [np.ptp(X[o], axis=0).max() for o in orbit_list if len(o) > 1]
    energy = dirichlet_energy(X, src, dst)
    total = float(np.einsum("ij,ij->", X, X))

    def contract_mean(M: np.ndarray) -> float:
        value = _masked_mean(M, upper)
        return 1.0 if value is None else value

    return StageMetrics(
        name=name,
        mean_raw_corr=contract_mean(raw),
        mean_centered_corr=contract_mean(cen),
        mad=_mad_from_cosine(cos),
        dirichlet=energy,
        effective_rank=_effective_rank(spectrum),
        numerical_rank=_numerical_rank(spectrum),
        cross_orbit_raw_corr=_masked_mean(raw, cross),
        cross_orbit_centered_corr=_masked_mean(cen, cross),
        cross_orbit_cosine=_masked_mean(cos, cross),
        within_orbit_max_dev=float(max(within)) if within else None,
        identical_cross_orbit_pairs=len(ident),
        identical_cross_orbit_examples=tuple((int(i), int(j)) for i, j in ident[:MAX_EXAMPLES]),
        dirichlet_normalized=energy * n / total if total > 0 else 0.0,
        num_atoms=n,
        num_orbits=len(orbit_list),
    )


def _gram_spectrum(X: np.ndarray) -> np.ndarray:
    """Singular values of the centred X from its D×D Gram matrix (O(N D²), no N-sized SVD);
    values below 1e-7·σ_max are eigen-solver noise at this precision and are dropped."""
    Xc = centered(X)
    tol = _center_tol(X)
    if np.all(np.sqrt((Xc * Xc).sum(axis=1)) <= tol):
        return np.zeros(0)
    ev = np.linalg.eigvalsh(Xc.T @ Xc)[::-1]
    s = np.sqrt(np.clip(ev, 0.0, None))
    return s[s > s[0] * 1e-7]


def large_stage_metrics(
    name: str,
    X: np.ndarray,
    src: Any,
    dst: Any,
    orbit_list: list[list[int]],
    *,
    atol: float = IDENTICAL_ATOL,
    rtol: float = IDENTICAL_RTOL,
) -> StageMetrics:
    """``stage_metrics`` for a large cell: pair statistics on a ``RowSet`` (orbit
    representatives weighted by orbit size, exact; or a sample of atoms, estimated with standard
    errors in ``pairs``); centring uses the mean atom of all N, ranks come from the D×D Gram
    matrix, Dirichlet energy and within-orbit deviation from every atom."""
    n = X.shape[0]
    rows = select_rows(X, orbit_list, atol=atol, rtol=rtol)
    R = X[rows.indices]
    Xc = X - X.mean(axis=0)
    Xc[:, np.ptp(X, axis=0) == 0] = 0.0
    raw = _pearson_rows(R, 0.0)
    cen = _pearson_rows(Xc[rows.indices], _center_tol(X))
    cos = cosine_matrix(R)
    upper, cross, inside = pair_weights(rows)

    dist = 1.0 - cos
    dist[dist <= MAD_ZERO_TOL] = 0.0
    np.fill_diagonal(dist, 0.0)
    w = rows.weights
    totals = dist @ w
    counts = (dist > 0) @ w
    per_node = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)
    nonzero = per_node > 0
    mad_value = float((per_node * w)[nonzero].sum() / w[nonzero].sum()) if nonzero.any() else 0.0

    same = identical_matrix(R, atol=atol, rtol=rtol) & (cross > 0)
    identical = float(cross[same].sum())
    if rows.method == "sampled":
        m = rows.indices.size
        identical *= (n * (n - 1)) / (m * (m - 1))
    ident = np.argwhere(same)
    examples = tuple(
        tuple(sorted((int(rows.indices[i]), int(rows.indices[j])))) for i, j in ident[:MAX_EXAMPLES]
    )
    spectrum = _gram_spectrum(X)
    within = [np.ptp(X[o], axis=0).max() for o in orbit_list if len(o) > 1]
    energy = dirichlet_energy(X, src, dst)
    total = float(np.einsum("ij,ij->", X, X))
    stderr = None
    if rows.method == "sampled":
        stderr = {
            "mean_raw_corr": _row_mean_stderr(raw, upper),
            "mean_centered_corr": _row_mean_stderr(cen, upper),
            "mad": float(per_node.std(ddof=1) / np.sqrt(per_node.size)),
            "cross_orbit_centered_corr": _row_mean_stderr(cen, cross),
        }

    def contract(M: np.ndarray) -> float:
        value = _weighted_pair_mean(M, upper, inside)
        return 1.0 if value is None else value

    return StageMetrics(
        name=name,
        mean_raw_corr=contract(raw),
        mean_centered_corr=contract(cen),
        mad=mad_value,
        dirichlet=energy,
        effective_rank=_effective_rank(spectrum),
        numerical_rank=_numerical_rank(spectrum),
        cross_orbit_raw_corr=_weighted_pair_mean(raw, cross),
        cross_orbit_centered_corr=_weighted_pair_mean(cen, cross),
        cross_orbit_cosine=_weighted_pair_mean(cos, cross),
        within_orbit_max_dev=float(max(within)) if within else None,
        identical_cross_orbit_pairs=round(identical),
        identical_cross_orbit_examples=examples,  # type: ignore[arg-type]
        dirichlet_normalized=energy * n / total if total > 0 else 0.0,
        num_atoms=n,
        num_orbits=len(orbit_list),
        pairs=rows.describe(stderr),
    )


# --- block means without N×N matrices (heat maps of large cells) ----------------------------


def _embedding(
    Y: np.ndarray, degenerate: np.ndarray, key: np.ndarray, key_tol: float
) -> np.ndarray:
    """V with ``V @ V.T`` equal to ``_similarity(Y, degenerate, key, key_tol)`` (before its
    clipping): unit rows, and one-hot columns that give degenerate rows 1 with the degenerate
    rows of their key class (keys within ``key_tol`` of their neighbours chain into one class)."""
    norms = np.sqrt((Y * Y).sum(axis=1))
    degenerate = degenerate | (norms == 0)
    U = Y / np.where(degenerate, 1.0, norms)[:, None]
    U[degenerate] = 0.0
    idx = np.flatnonzero(degenerate)
    if idx.size == 0:
        return U
    k = key[idx]
    order = np.argsort(k, kind="stable")
    breaks = np.diff(k[order]) > key_tol
    cls = np.empty(idx.size, dtype=np.int64)
    cls[order] = np.concatenate([[0], np.cumsum(breaks)])
    onehot = np.zeros((Y.shape[0], int(cls.max()) + 1))
    onehot[idx, cls] = 1.0
    return np.hstack([U, onehot])


def similarity_embedding(X: Any, mode: str) -> np.ndarray:
    """Rows V [N, D'] with ``V @ V.T`` = the ``mode`` matrix (``"raw"``, ``"centred"``,
    ``"cosine"``) up to clipping, in O(N D): block means of large cells need no N×N matrix."""
    X = as_features(X)
    if mode == "cosine":
        return _embedding(X, np.zeros(X.shape[0], dtype=bool), np.zeros(X.shape[0]), 0.0)
    if mode == "raw":
        Y, tol = X, 0.0
    elif mode == "centred":
        Y, tol = centered(X), _center_tol(X)
    else:
        raise ValueError(f"mode must be raw, centred or cosine, not {mode!r}")
    mean = Y.mean(axis=1)
    Z = Y - mean[:, None]
    if tol == 0.0:
        return _embedding(Z, np.ptp(Y, axis=1) == 0, Y[:, 0], 0.0)
    return _embedding(Z, np.sqrt((Z * Z).sum(axis=1)) <= tol, mean, tol)


def block_mean_embedded(V: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """``block_mean(V @ V.T, groups)`` (diagonal blocks without i == j) in O(N D')."""
    sums = np.stack([V[list(g)].sum(axis=0) for g in groups])  # [G, D']
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    self_sq = np.array([float((V[list(g)] ** 2).sum()) for g in groups])
    out = (sums @ sums.T) / np.outer(sizes, sizes)
    idx = np.arange(len(groups))
    pairs = sizes * (sizes - 1)
    diag = np.where(pairs > 0, (np.diag(sums @ sums.T) - self_sq) / np.maximum(pairs, 1), 1.0)
    out[idx, idx] = diag
    return np.clip(out, -1.0, 1.0)
