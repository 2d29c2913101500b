"""Element-pair separation computed in double precision whatever the features' dtype, and the
direct and chunked (Gram) paths agreeing on the same cell."""

from __future__ import annotations

import numpy as np
import pytest

from fga_tui.diagnostics import separation as sepmod
from fga_tui.diagnostics.separation import input_groups, separation


def test_separation_of_float32_features_is_computed_in_float64():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(6, 16)).astype(np.float32) * 1e3
    groups = input_groups([[0, 1], [2], [3], [4, 5]], ["Ba", "Ba", "Hf", "Li", "O", "O"])
    assert separation(X, groups) == separation(X.astype(np.float64), groups)


def test_the_chunked_path_equals_the_direct_one(monkeypatch):
    rng = np.random.default_rng(5)
    n = 40
    X = rng.normal(size=(n, 8))
    groups = input_groups([[i] for i in range(n)], [f"E{i % 7}" for i in range(n)])
    direct = separation(X, groups)
    monkeypatch.setattr(sepmod, "_DIRECT_REPS", 1)
    for elements in (1, 50, 1 << 22):
        monkeypatch.setattr(sepmod, "_CHUNK_ELEMENTS", elements)
        assert separation(X, groups) == pytest.approx(direct, rel=1e-9)


def _far_from_the_origin(n: int) -> tuple[np.ndarray, sepmod.InputGroups]:
    """n representatives of alternating elements, 1e4 from the origin and ~1e-2 apart: the
    Gram form's cancellation (|x|^2 * 1e-16 ~ 1e-8 of d^2 ~ 1e-4) shows at the 1e-5 level."""
    rng = np.random.default_rng(8)
    X = 1e4 + 1e-2 * rng.normal(size=(n, 4))
    return X, input_groups([[i] for i in range(n)], ["A", "B"] * (n // 2))


def test_up_to_64_representatives_are_compared_by_explicit_differences():
    X, groups = _far_from_the_origin(64)
    scale = np.sqrt(np.mean(np.sum(X * X, axis=1)))
    brute = min(
        np.sqrt(np.sum((X[a] - X[b]) ** 2)) for a in range(0, 64, 2) for b in range(1, 64, 2)
    )
    assert separation(X, groups) == pytest.approx(brute / scale, rel=1e-12)


def test_the_gram_form_holds_one_row_block_at_a_time(monkeypatch):
    """The chunked path keeps at most a few [rows, R] blocks of _CHUNK_ELEMENTS numbers alive,
    never the [R, R] matrix (here 200 x 200 = ~10 blocks): traced peak under 8 blocks."""
    import tracemalloc

    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 4))
    groups = input_groups([[i] for i in range(200)], [f"E{i % 5}" for i in range(200)])
    want = separation(X, groups)  # 200 > 64 representatives: the Gram form, one block
    monkeypatch.setattr(sepmod, "_CHUNK_ELEMENTS", 1 << 12)  # blocks of 20 rows
    tracemalloc.start()
    try:
        got = separation(X, groups)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == pytest.approx(want, rel=1e-12)
    assert peak < 8 * 8 * (1 << 12)


def test_no_orbit_gives_empty_integer_groups():
    groups = input_groups([], [])
    assert groups.count == 0 and groups.names == ()
    assert groups.reps.dtype == groups.group.dtype == np.int64
    assert np.zeros((0, 3))[groups.reps].shape == (0, 3)  # usable as an index
    assert separation(np.zeros((0, 3)), groups) is None


def test_the_profile_measures_the_groups_it_is_given():
    """An intervened trace is measured on the pairs of the trace it is compared with: the
    groups passed in, not those its own orbits and elements would give."""
    X = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    own = input_groups([[0], [1], [2]], ["O", "O", "Ti"])  # O-Ti pairs only
    given = input_groups([[0], [1], [2]], ["O", "Ba", "Ti"])  # O-Ba is the closest pair
    profile = sepmod.separation_profile({"s": X}, ["s"], [[0], [1], [2]], ["O", "O", "Ti"], given)
    assert profile == {"s": separation(X, given)}
    assert separation(X, given) < separation(X, own)
