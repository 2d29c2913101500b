"""How distinguishable atoms that *should* differ are, stage by stage.

Identity inside a symmetry orbit is expected; the question is whether atoms of different orbits
(or, at the embedding, of different elements) still differ. ``orbit_separation`` is the smallest
distance between two orbit representatives, relative to the typical feature norm, so it is
scale-free and comparable across stages (LayerNorm, fusion and residuals change the scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

COLLAPSE_SEPARATION = 1e-3  # below 0.1 % of the feature scale, two orbits are "identical"


def orbit_separation(
    X: np.ndarray, orbits: Sequence[Sequence[int]], elements: Sequence[str] | None = None
) -> float | None:
    """min over pairs of orbits of ||x_a - x_b|| / rms(||x||); None with fewer than two groups.

    With ``elements``, only pairs of *different* elements count (use at the embedding, where
    same-element atoms start identical by construction).
    """
    X = np.asarray(X, dtype=np.float64)
    reps = [int(o[0]) for o in orbits if len(o)]
    if elements is not None:
        first: dict[str, int] = {}
        for i in reps:
            first.setdefault(elements[i], i)
        reps = list(first.values())
    if len(reps) < 2:
        return None
    R = X[reps]
    scale = float(np.sqrt(np.mean(np.sum(X * X, axis=1))))
    if scale == 0.0:
        return 0.0
    if len(reps) <= 64:
        diff = R[:, None, :] - R[None, :, :]
        d2 = np.sum(diff * diff, axis=-1)
    else:  # Gram form: no [R, R, D] temporary for large cells
        sq = np.sum(R * R, axis=1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (R @ R.T), 0.0)
    iu = np.triu_indices(len(reps), 1)
    return float(np.sqrt(d2[iu].min()) / scale)


def separation_profile(
    features: dict[str, np.ndarray],
    stages: Sequence[str],
    orbits: Sequence[Sequence[int]],
    elements: Sequence[str],
) -> dict[str, float | None]:
    """``orbit_separation`` per stage (element pairs only at ``embed``)."""
    return {
        s: orbit_separation(features[s], orbits, elements if s == "embed" else None) for s in stages
    }
