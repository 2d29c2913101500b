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
