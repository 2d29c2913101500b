"""How the atom→token attention spreads and whether atoms read different tokens.

Input ``A`` float [H, N, L]: fine-grained attention weights of H heads, N atoms (queries) over L
tokens (keys); each row sums to 1 over the valid tokens. ``mask`` bool [L] marks valid tokens
(None = all valid). Everything is computed on the valid tokens only, in float64, and rows are
renormalised there (the float32 softmax leaves ~1e-7 of slack).

Conventions: JSD is base 2, so it lies in [0, 1] (0 = same distribution, 1 = disjoint support);
entropy is normalised by log(L_valid) (1 = uniform, 0 = one-hot; 0 when there is one valid token,
where the softmax is constant by construction). "Cross-orbit" variants compare only atoms in
different symmetry orbits: atoms of one orbit have identical attention rows by symmetry, which is
expected and must not read as collapse. Orbits use ``similarity.complete_orbits`` (None: every
atom is its own orbit).

Scale: up to ``EXACT_MAX_ATOMS`` atoms the mean JSDs come from all N×N pairs. Above it, from
orbit representatives weighted by orbit size when the orbits' rows are identical (exact, cost
quadratic in orbits, linear in atoms), else from ``SAMPLE_PAIRS`` uniformly drawn atom pairs
(cost independent of N); the ``pairs`` field of the results names the method and, when sampled,
the standard error of each mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from fga_tui.diagnostics.similarity import (
    EXACT_MAX_ATOMS,
    Orbits,
    PairSelection,
    complete_orbits,
    json_float,
    orbit_labels,
    orbits_identical,
    pair_mask,
)

#: ``first_uniform_stage`` default: atoms "stop differing" once the mean cross-orbit JSD stays
#: below 1e-3 bits, i.e. attention rows that differ by less than ~5 percentage points on their
#: heaviest tokens (p = (.5, .5) vs (.55, .45) gives 1.8e-3 bits). Float32 noise is ~1e-12 bits;
#: attention that separates elements is typically 1e-2 bits or more.
UNIFORM_JSD_BITS = 1e-3

_CHUNK_ELEMENTS = 1 << 22
#: Large cells without identical orbits: this many atom pairs estimate each mean JSD.
SAMPLE_PAIRS = 16384
#: Orbit representatives are used for large cells with at most this many orbits.
MAX_REP_ORBITS = 1024


def as_attention(A: Any) -> np.ndarray:
    """``A`` as float64 [H, N, L] (a 2-D [N, L] input becomes one head)."""
    arr = np.asarray(A, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"attention must be [H, N, L] with no empty axis, got {arr.shape}")
    return arr


def valid_mask(mask: Any, length: int) -> np.ndarray:
    """bool [L] of valid tokens; None means all valid. Raises ValueError if none is valid."""
    if mask is None:
        return np.ones(length, dtype=bool)
    m = np.asarray(mask).astype(bool).reshape(-1)
    if m.size != length:
        raise ValueError(f"mask has {m.size} entries for {length} tokens")
    if not m.any():
        raise ValueError("mask marks no valid token")
    return m


def head_average(A: Any) -> np.ndarray:
    """Mean over heads: [H, N, L] -> [N, L] (a 2-D input is returned as float64)."""
    return as_attention(A).mean(axis=0)


def _distributions(P: Any, mask: Any) -> np.ndarray:
    """[..., L] -> [..., L_valid] probability rows on the valid tokens.

    Negative rounding is clipped; a row with no mass there (a bug upstream) becomes uniform.
    """
    P = np.asarray(P, dtype=np.float64)
    m = valid_mask(mask, P.shape[-1])
    Q = np.clip(P[..., m], 0.0, None)
    total = Q.sum(axis=-1, keepdims=True)
    uniform = np.full_like(Q, 1.0 / Q.shape[-1])
    return np.divide(Q, total, out=uniform, where=total > 0)


def _plogp2(P: np.ndarray) -> np.ndarray:
    """Elementwise p·log2(p) with 0·log 0 = 0, without warnings."""
    logs = np.zeros_like(P)
    np.log2(P, out=logs, where=P > 0)
    return P * logs


def row_entropy(A: Any, mask: Any = None) -> np.ndarray:
    """Entropy of each attention row over the valid tokens, normalised by log(L_valid).

    [H, N, L] -> [H, N] (or [N, L] -> [N]); 1 = uniform, 0 = one-hot; all 0 when L_valid = 1.
    """
    P = _distributions(A, mask)
    if P.shape[-1] == 1:
        return np.zeros(P.shape[:-1])
    h = -_plogp2(P).sum(axis=-1) / np.log2(P.shape[-1])
    return np.clip(h, 0.0, 1.0)


def _atom_rows(A: Any, mask: Any) -> np.ndarray:
    """Head-averaged [N, L_valid] distributions from [H, N, L] or [N, L]."""
    P = np.asarray(A, dtype=np.float64)
    if P.ndim == 3:
        P = P.mean(axis=0)
    if P.ndim != 2:
        raise ValueError(f"expected [N, L] or [H, N, L] attention, got shape {P.shape}")
    return _distributions(P, mask)


def pairwise_jsd(A_avg: Any, mask: Any = None) -> np.ndarray:
    """Jensen–Shannon divergence (bits, in [0, 1]) between every pair of atom rows: [N, N].

    ``A_avg`` [N, L] (an [H, N, L] input is head-averaged first). Identical rows give exactly 0;
    rows are deduplicated first, so symmetric structures cost only their distinct rows.
    """
    P = _atom_rows(A_avg, mask)
    uniq, inverse = np.unique(P, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    k, length = uniq.shape
    h = -_plogp2(uniq).sum(axis=1)
    J = np.zeros((k, k))
    chunk = max(1, _CHUNK_ELEMENTS // (k * length))
    for start in range(0, k, chunk):
        rows = uniq[start : start + chunk]
        mix = 0.5 * (rows[:, None, :] + uniq[None, :, :])
        hm = -_plogp2(mix).sum(axis=2)
        J[start : start + chunk] = hm - 0.5 * (h[start : start + chunk, None] + h[None, :])
    np.clip(J, 0.0, 1.0, out=J)
    J = np.maximum(J, J.T)  # exact symmetry despite summation order
    np.fill_diagonal(J, 0.0)
    return J[inverse][:, inverse]


def mean_pairwise_jsd(
    A_avg: Any, mask: Any = None, pairs: PairSelection = "all", orbits: Orbits | None = None
) -> float | None:
    """Mean JSD (bits) over atom pairs i < j; ``pairs="cross_orbit"`` keeps pairs in different
    orbits. With no pair: 0.0 for ``"all"`` (one atom differs from nobody), None otherwise."""
    return _mean_jsd(pairwise_jsd(A_avg, mask), pairs, orbits)


def _mean_jsd(J: np.ndarray, pairs: PairSelection, orbits: Orbits | None) -> float | None:
    if pairs == "all":
        return _mean_all_jsd(J)
    sel = pair_mask(J.shape[0], pairs, orbits)
    return float(J[sel].mean()) if sel.any() else None


def _mean_all_jsd(J: np.ndarray) -> float:
    """Mean over every pair i < j; 0.0 for one atom (it differs from nobody)."""
    n = J.shape[0]
    return float(J[np.triu_indices(n, 1)].mean()) if n > 1 else 0.0


def top_tokens(A_avg: Any, mask: Any = None) -> np.ndarray:
    """int [N]: index (into the full L) of each atom's heaviest valid token; ties -> first."""
    P = np.asarray(A_avg, dtype=np.float64)
    if P.ndim == 3:
        P = P.mean(axis=0)
    m = valid_mask(mask, P.shape[-1])
    return np.flatnonzero(m)[np.argmax(P[:, m], axis=1)]


def modal_top_token(A_avg: Any, mask: Any = None) -> int:
    """The most common top token over atoms (ties -> lowest index)."""
    return int(np.argmax(np.bincount(top_tokens(A_avg, mask))))


def argmax_agreement(A_avg: Any, mask: Any = None) -> float:
    """Fraction of atoms whose top valid token is the most common top token (1.0 for one atom)."""
    tops = top_tokens(A_avg, mask)
    return float(np.bincount(tops).max() / tops.size)


def max_abs_row_diff(
    A_avg: Any, mask: Any = None, pairs: PairSelection = "all", orbits: Orbits | None = None
) -> float | None:
    """Largest |A_il - A_jl| over valid tokens l and selected atom pairs (head-averaged rows).

    Unlike JSD this is not renormalised: it reads the weights as the model produced them.
    None when no pair is selected. O(N·L): per token, the spread between orbits' max and min.
    """
    P = np.asarray(A_avg, dtype=np.float64)
    if P.ndim == 3:
        P = P.mean(axis=0)
    P = P[:, valid_mask(mask, P.shape[-1])]
    n = P.shape[0]
    if pairs == "all":
        return float(np.ptp(P, axis=0).max()) if n > 1 else None
    if pairs == "within_orbit":
        labels = orbit_labels(orbits, n)
        spreads = [
            np.ptp(P[labels == g], axis=0).max()
            for g in np.unique(labels)
            if np.count_nonzero(labels == g) > 1
        ]
        return float(max(spreads)) if spreads else None
    if pairs != "cross_orbit":
        raise ValueError(f"pairs must be 'all', 'cross_orbit' or 'within_orbit', not {pairs!r}")
    labels = orbit_labels(orbits, n)
    groups = np.unique(labels)
    if groups.size < 2:
        return None
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], groups)
    hi = np.maximum.reduceat(P[order], starts, axis=0)  # [G, L]
    lo = np.minimum.reduceat(P[order], starts, axis=0)
    # For each orbit g, the smallest minimum among the *other* orbits (second-smallest if g holds
    # the overall minimum), then the largest hi_g - lo_other; by symmetry this covers |.| both ways.
    order = np.argsort(lo, axis=0)
    first = np.take_along_axis(lo, order[:1], axis=0)[0]
    second = np.take_along_axis(lo, order[1:2], axis=0)[0]
    other_lo = np.where(np.arange(groups.size)[:, None] == order[0][None, :], second, first)
    return float((hi - other_lo).max())


def _pair_jsd(P: np.ndarray, h: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """JSD (bits) of the row pairs (a[k], b[k]) of distributions ``P`` with entropies ``h``."""
    out = np.empty(a.size)
    step = max(1, _CHUNK_ELEMENTS // P.shape[1])
    for start in range(0, a.size, step):
        ia, ib = a[start : start + step], b[start : start + step]
        mix = 0.5 * (P[ia] + P[ib])
        out[start : start + step] = -_plogp2(mix).sum(axis=1) - 0.5 * (h[ia] + h[ib])
    return np.clip(out, 0.0, 1.0)


def _sample_pairs(
    labels: np.ndarray, count: int, cross: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` ordered pairs i != j drawn uniformly (``cross``: uniformly among pairs in
    different orbits: i with probability ∝ the atoms outside its orbit, then j among those)."""
    n = labels.size
    if not cross:
        a = rng.integers(0, n, count)
        b = (a + rng.integers(1, n, count)) % n  # uniform over j != i
        return a, b
    sizes = np.bincount(labels)
    outside = n - sizes[labels]
    a = rng.choice(n, size=count, p=outside / outside.sum())
    b = rng.integers(0, n, count)
    for _ in range(64):
        bad = labels[b] == labels[a]
        if not bad.any():
            return a, b
        b[bad] = rng.integers(0, n, int(bad.sum()))
    for k in np.flatnonzero(labels[b] == labels[a]):  # tiny orbits' complements: draw exactly
        b[k] = rng.choice(np.flatnonzero(labels != labels[a[k]]))
    return a, b


def jsd_means(
    A_avg: Any, mask: Any = None, orbits: Orbits | None = None
) -> tuple[float, float | None, dict[str, Any] | None]:
    """(mean JSD over all pairs, over cross-orbit pairs (None with one orbit), how).

    ``how`` is None when every pair was computed; else ``{"method": "orbits"|"sampled",
    "rows"|"pairs": ..., "stderr": {...}}`` (see the module docstring).
    """
    P = _atom_rows(A_avg, mask)
    n = P.shape[0]
    if n <= EXACT_MAX_ATOMS:
        J = pairwise_jsd(P)
        return _mean_all_jsd(J), _mean_jsd(J, "cross_orbit", orbits), None
    orbit_list = complete_orbits(orbits, n)
    labels = orbit_labels(orbit_list, n)
    multi = len(orbit_list) > 1
    if len(orbit_list) <= MAX_REP_ORBITS and orbits_identical(P, orbit_list, 1e-9, 1e-6):
        reps = np.array([min(o) for o in orbit_list])
        w = np.array([len(o) for o in orbit_list], dtype=np.float64)
        J = pairwise_jsd(P[reps])
        pairs = np.triu(np.outer(w, w), 1)
        total = n * (n - 1) / 2
        cross = float((J * pairs).sum() / pairs.sum()) if multi else None
        return float((J * pairs).sum() / total), cross, {"method": "orbits", "rows": len(reps)}
    rng = np.random.default_rng(n)
    h = -_plogp2(P).sum(axis=1)
    a, b = _sample_pairs(labels, SAMPLE_PAIRS, False, rng)
    j_all = _pair_jsd(P, h, a, b)
    stderr: dict[str, float | None] = {"jsd": float(j_all.std(ddof=1) / np.sqrt(j_all.size))}
    cross = None
    if multi:
        a, b = _sample_pairs(labels, SAMPLE_PAIRS, True, rng)
        j_cross = _pair_jsd(P, h, a, b)
        cross = float(j_cross.mean())
        stderr["cross_orbit_jsd"] = float(j_cross.std(ddof=1) / np.sqrt(j_cross.size))
    how = {
        "method": "sampled",
        "pairs": SAMPLE_PAIRS,
        "stderr": {k: json_float(v) for k, v in stderr.items()},
    }
    return float(j_all.mean()), cross, how


# --- shared vs atom-specific logits ------------------------------------------------------------


def _softmax(s: np.ndarray) -> np.ndarray:
    z = s - s.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class LogitDecomposition:
    """Shared vs atom-specific parts of the attention logits ``s_ij = q_i·k_j``.

    With ``q_i = q̄ + δ_i``: ``shared_spread`` = Var_j(q̄·k_j) over valid tokens (how strongly the
    shared query ranks tokens, identically for every atom), ``atom_spread`` = mean_j Var_i(s_ij)
    (how much atoms disagree about a token), ``shared_fraction`` = shared / (shared + atom)
    (None when both are 0: flat logits). Head-averaged values are the means of the per-head
    spreads and their ratio. ``same_top_token_if_shared_only``: the shared part alone picks, for
    every atom, the top token the full head-averaged attention picks; ``shared_top_agreement`` is
    the fraction of atoms where it does.
    """

    shared_spread: float
    atom_spread: float
    shared_fraction: float | None
    same_top_token_if_shared_only: bool
    shared_top_agreement: float
    shared_top_token: int
    per_head_shared_spread: tuple[float, ...]
    per_head_atom_spread: tuple[float, ...]
    per_head_shared_fraction: tuple[float | None, ...]
    per_head_same_top_token: tuple[bool, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "shared_spread": json_float(self.shared_spread),
            "atom_spread": json_float(self.atom_spread),
            "shared_fraction": json_float(self.shared_fraction),
            "same_top_token_if_shared_only": bool(self.same_top_token_if_shared_only),
            "shared_top_agreement": json_float(self.shared_top_agreement),
            "shared_top_token": int(self.shared_top_token),
            "per_head_shared_spread": [json_float(v) for v in self.per_head_shared_spread],
            "per_head_atom_spread": [json_float(v) for v in self.per_head_atom_spread],
            "per_head_shared_fraction": [json_float(v) for v in self.per_head_shared_fraction],
            "per_head_same_top_token": [bool(v) for v in self.per_head_same_top_token],
        }


def _fraction(shared: float, atom: float) -> float | None:
    total = shared + atom
    return shared / total if total > 0 else None


def logit_decomposition(Q: Any, K: Any, mask: Any = None, scale: float = 1.0) -> LogitDecomposition:
    """Split the attention logits into a part shared by all atoms and an atom-specific part.

    ``Q`` [H, N, d] queries and ``K`` [H, L, d] keys (or [N, d] / [L, d] for one head) exactly as
    the softmax sees them: ``s = scale · Q Kᵀ``. ``Trace.queries``/``Trace.keys`` are already
    scaled by 1/sqrt(d), so the default ``scale=1.0`` is right for them; pass
    ``scale=1/sqrt(d)`` for raw projections. Only valid tokens enter spreads and top tokens.
    """
    Qa = np.asarray(Q, dtype=np.float64)
    Ka = np.asarray(K, dtype=np.float64)
    if Qa.ndim == 2:
        Qa = Qa[None]
    if Ka.ndim == 2:
        Ka = Ka[None]
    if Qa.ndim != 3 or Ka.ndim != 3 or Qa.shape[0] != Ka.shape[0] or Qa.shape[2] != Ka.shape[2]:
        raise ValueError(f"need Q [H, N, d] and K [H, L, d], got {Qa.shape} and {Ka.shape}")
    m = valid_mask(mask, Ka.shape[1])
    Kv = Ka[:, m, :]
    q_bar = Qa.mean(axis=1)  # [H, d]
    shared = scale * np.einsum("hd,hld->hl", q_bar, Kv)  # [H, Lv]
    specific = scale * np.einsum("hnd,hld->hnl", Qa - q_bar[:, None, :], Kv)  # [H, N, Lv]
    full = shared[:, None, :] + specific

    shared_spread = shared.var(axis=1)  # over tokens
    atom_spread = specific.var(axis=1).mean(axis=1)  # over atoms, then mean over tokens

    shared_top = np.argmax(shared, axis=1)  # [H]
    full_top = np.argmax(full, axis=2)  # [H, N]
    per_head_same = tuple(bool(np.all(full_top[h] == shared_top[h])) for h in range(Qa.shape[0]))

    avg_full_top = np.argmax(_softmax(full).mean(axis=0), axis=1)  # [N]
    avg_shared_top = int(np.argmax(_softmax(shared).mean(axis=0)))
    agreement = float(np.mean(avg_full_top == avg_shared_top))
    valid_index = np.flatnonzero(m)

    mean_shared = float(shared_spread.mean())
    mean_atom = float(atom_spread.mean())
    return LogitDecomposition(
        shared_spread=mean_shared,
        atom_spread=mean_atom,
        shared_fraction=_fraction(mean_shared, mean_atom),
        same_top_token_if_shared_only=agreement == 1.0,
        shared_top_agreement=agreement,
        shared_top_token=int(valid_index[avg_shared_top]),
        per_head_shared_spread=tuple(float(v) for v in shared_spread),
        per_head_atom_spread=tuple(float(v) for v in atom_spread),
        per_head_shared_fraction=tuple(
            _fraction(float(s), float(a)) for s, a in zip(shared_spread, atom_spread, strict=True)
        ),
        per_head_same_top_token=per_head_same,
    )


# --- one attention map, all numbers ------------------------------------------------------------


@dataclass(frozen=True)
class AttentionSummary:
    """Every attention number for one [H, N, L] map.

    ``entropy`` per atom is that of the head-averaged row; ``mean_head_entropy`` averages the
    per-head row entropies (heads are usually sharper than their mean). ``jsd`` and
    ``cross_orbit_jsd`` are mean pairwise JSD in bits (cross-orbit None with one orbit);
    ``top_token`` is the most common top token (index into L). ``degenerate_softmax``: one valid
    token, so the weights are 1.0 by construction and say nothing about the model.
    """

    num_atoms: int
    num_heads: int
    num_valid_tokens: int
    degenerate_softmax: bool
    entropy: tuple[float, ...]
    mean_entropy: float
    mean_head_entropy: float
    jsd: float
    cross_orbit_jsd: float | None
    argmax_agreement: float
    top_token: int
    max_abs_row_diff: float | None
    cross_orbit_max_abs_row_diff: float | None
    decomposition: LogitDecomposition | None
    pairs: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "num_atoms": self.num_atoms,
            "num_heads": self.num_heads,
            "num_valid_tokens": self.num_valid_tokens,
            "degenerate_softmax": self.degenerate_softmax,
            "entropy": [json_float(v) for v in self.entropy],
            "mean_entropy": json_float(self.mean_entropy),
            "mean_head_entropy": json_float(self.mean_head_entropy),
            "jsd": json_float(self.jsd),
            "cross_orbit_jsd": json_float(self.cross_orbit_jsd),
            "argmax_agreement": json_float(self.argmax_agreement),
            "top_token": self.top_token,
            "max_abs_row_diff": json_float(self.max_abs_row_diff),
            "cross_orbit_max_abs_row_diff": json_float(self.cross_orbit_max_abs_row_diff),
            "decomposition": None if self.decomposition is None else self.decomposition.to_json(),
            "pairs": self.pairs,
        }


def summarize_attention(
    A: Any,
    mask: Any = None,
    orbits: Orbits | None = None,
    Q: Any = None,
    K: Any = None,
    *,
    scale: float = 1.0,
) -> AttentionSummary:
    """Summarise atom→token attention ``A`` [H, N, L]; the logit decomposition needs ``Q`` and
    ``K`` (see ``logit_decomposition`` for their scaling)."""
    A3 = as_attention(A)
    m = valid_mask(mask, A3.shape[2])
    avg = A3.mean(axis=0)
    entropy = row_entropy(avg, m)
    decomposition = None
    if Q is not None and K is not None:
        decomposition = logit_decomposition(Q, K, m, scale=scale)
    jsd, cross_jsd, how = jsd_means(avg, m, orbits)
    return AttentionSummary(
        num_atoms=A3.shape[1],
        num_heads=A3.shape[0],
        num_valid_tokens=int(m.sum()),
        degenerate_softmax=bool(m.sum() == 1),
        entropy=tuple(float(v) for v in entropy),
        mean_entropy=float(entropy.mean()),
        mean_head_entropy=float(row_entropy(A3, m).mean()),
        jsd=jsd,
        cross_orbit_jsd=cross_jsd,
        argmax_agreement=argmax_agreement(avg, m),
        top_token=modal_top_token(avg, m),
        max_abs_row_diff=max_abs_row_diff(avg, m),
        cross_orbit_max_abs_row_diff=max_abs_row_diff(avg, m, "cross_orbit", orbits),
        decomposition=decomposition,
        pairs=how,
    )


# --- across stages -----------------------------------------------------------------------------


class DivergencePoint(NamedTuple):
    """How much atoms differ in the attention recomputed from one stage's features."""

    stage: str
    jsd: float
    cross_orbit_jsd: float | None
    argmax_agreement: float
    pairs: dict[str, Any] | None = None


def divergence_profile(
    counterfactual: Mapping[str, Any], mask: Any = None, orbits: Orbits | None = None
) -> list[DivergencePoint]:
    """One ``DivergencePoint`` per stage of ``counterfactual`` (stage -> [H, N, L], in forward
    order as ``Trace.counterfactual`` keeps it)."""
    profile = []
    for stage, weights in counterfactual.items():
        avg = head_average(weights)
        jsd, cross_jsd, how = jsd_means(avg, mask, orbits)
        profile.append(
            DivergencePoint(
                stage=stage,
                jsd=jsd,
                cross_orbit_jsd=cross_jsd,
                argmax_agreement=argmax_agreement(avg, mask),
                pairs=how,
            )
        )
    return profile


def first_uniform_stage(
    profile: Sequence[DivergencePoint], threshold: float = UNIFORM_JSD_BITS
) -> str | None:
    """The first stage from which atoms stop differing in attention: the earliest stage whose
    cross-orbit JSD, and that of every later stage, is below ``threshold`` bits.

    None when the last stage still differs, or when cross-orbit JSD is undefined (one orbit:
    every atom is equivalent by symmetry, so "atoms differ" has no meaning).
    """
    first: str | None = None
    for point in reversed(profile):
        value = point.cross_orbit_jsd
        if value is None or value >= threshold:
            break
        first = point.stage
    return first
