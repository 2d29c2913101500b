"""How distinguishable atoms that the input tells apart stay, stage by stage: one measure.

Definition. Atoms are split once, for every stage, into *input groups*: atoms of one element
form one group. The model's only per-atom input is its element's feature vector (CGCNN
features through ``atom_embedding``, as upstream ALIGNN), so same-element atoms are identical
at ``embed`` by construction, and a symmetry orbit never spans two elements: each group is a
union of orbits. The separation at a stage is

    min over atoms a, b of different groups of ||x_a - x_b|| / rms_i ||x_i||

(the closest two atoms that the input distinguishes, relative to the typical feature norm of
that stage; scale-free, so LayerNorm, fusion and residuals do not move it by themselves).
Orbit members are identical by symmetry, so one representative per orbit is enough.

Why one fixed set of pairs. Comparing element pairs at ``embed`` but every orbit pair later
made a stage look like it "collapsed" whenever two same-element atoms in different orbits were
nearly equivalent (pseudo-symmetric sites: a perovskite supercell with sites displaced by a few
hundredths of an Å): those atoms were alike from the input on, and that is not smoothing.
Measuring the same pairs at every stage makes a drop mean that *this layer* made atoms alike
that started distinct; a GCN stack that averages neighbours shows it as a steady decline.
Same-element atoms in different orbits are deliberately not compared: the input never told
them apart, so their similarity is no evidence about the stack (their attention rows are still
compared by the attention diagnostics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: below 0.1 % of the feature scale, two atoms are "identical" (float32 noise is ~1e-7).
COLLAPSE_SEPARATION = 1e-3
#: representatives compared with explicit differences up to here; Gram form (chunked) above.
_DIRECT_REPS = 64
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class InputGroups:
    """Atoms the input cannot tell apart, as groups of orbit representatives.

    ``reps`` int [R]: one atom per symmetry orbit; ``group`` int [R]: the input group of each
    representative; ``names``: one name per group (the element).
    """

    reps: np.ndarray
    group: np.ndarray
    names: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.names)

    def members(self, elements: Sequence[str]) -> list[list[int]]:
        """Every atom index of each group (not only representatives)."""
        out: list[list[int]] = [[] for _ in self.names]
        index = {name: k for k, name in enumerate(self.names)}
        for i, el in enumerate(elements):
            out[index[el]].append(i)
        return out


def input_groups(orbits: Sequence[Sequence[int]], elements: Sequence[str]) -> InputGroups:
    """Orbit representatives grouped by element (see the module docstring for why)."""
    reps = [int(o[0]) for o in orbits if len(o)]
    names: dict[str, int] = {}
    group = [names.setdefault(elements[i], len(names)) for i in reps]
    return InputGroups(
        np.asarray(reps, dtype=np.int64), np.asarray(group, dtype=np.int64), tuple(names)
    )


def separation(X: np.ndarray, groups: InputGroups) -> float | None:
    """min ||x_a - x_b|| / rms ||x|| over representatives of different groups.

    None with fewer than two groups (nothing the input distinguishes) or non-finite features
    (no number to report); 0.0 when every feature is zero.
    """
    if groups.count < 2:
        return None
    X = np.asarray(X, dtype=np.float64)
    scale = float(np.sqrt(np.mean(np.sum(X * X, axis=1))))
    if not np.isfinite(scale):
        return None
    if scale == 0.0:
        return 0.0
    R = X[groups.reps]
    g = groups.group
    n = len(R)
    if n <= _DIRECT_REPS:
        diff = R[:, None, :] - R[None, :, :]
        d2 = np.sum(diff * diff, axis=-1)
        return float(np.sqrt(d2[g[:, None] != g[None, :]].min()) / scale)
    # Gram form in row chunks: no [R, R, D] temporary and at most ~4M numbers at a time.
    sq = np.sum(R * R, axis=1)
    best = np.inf
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (R[rows] @ R.T)
        other = g[rows, None] != g[None, :]
        if other.any():
            best = min(best, float(d2[other].min()))
    return float(np.sqrt(max(best, 0.0)) / scale)


def separation_profile(
    features: Mapping[str, np.ndarray],
    stages: Sequence[str],
    orbits: Sequence[Sequence[int]],
    elements: Sequence[str],
    groups: InputGroups | None = None,
) -> dict[str, float | None]:
    """``separation`` per stage, over the same input groups at every stage.

    ``groups`` (from ``input_groups(orbits, elements)`` when not given) lets an intervened
    trace be measured on exactly the pairs of the trace it is compared with.
    """
    groups = groups if groups is not None else input_groups(orbits, elements)
    return {s: separation(features[s], groups) for s in stages}
