"""Large cells: pair statistics on orbit representatives (exact) or sampled pairs (estimated,
with the standard error reported), and heat-map block means without N×N matrices."""

from __future__ import annotations

import numpy as np
import pytest

import fga_tui.diagnostics.attention as att
import fga_tui.diagnostics.similarity as sim

FIELDS = (
    "mean_raw_corr",
    "mean_centered_corr",
    "mad",
    "effective_rank",
    "numerical_rank",
    "cross_orbit_raw_corr",
    "cross_orbit_centered_corr",
    "cross_orbit_cosine",
    "identical_cross_orbit_pairs",
    "dirichlet",
)


def _symmetric(orbits: int = 300, size: int = 4, d: int = 32, noise: float = 1e-9):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((orbits, d))
    base[1] = base[0] + 1e-9  # two orbits identical: collapse the counts must see
    X = np.repeat(base, size, axis=0) + noise * rng.standard_normal((orbits * size, d))
    groups = [list(range(size * g, size * g + size)) for g in range(orbits)]
    n = orbits * size
    src, dst = rng.integers(0, n, 4 * n), rng.integers(0, n, 4 * n)
    return X, groups, src, dst


def _exact(monkeypatch, fn, *args):
    monkeypatch.setattr(sim, "EXACT_MAX_ATOMS", 10**9)
    monkeypatch.setattr(att, "EXACT_MAX_ATOMS", 10**9)
    try:
        return fn(*args)
    finally:
        monkeypatch.undo()


def test_exact_up_to_the_threshold_then_orbit_representatives():
    X, groups, src, dst = _symmetric(orbits=256)  # 1024 atoms: still every pair
    assert sim.stage_metrics("s", X, src, dst, groups).pairs is None
    X, groups, src, dst = _symmetric(orbits=257)  # 1028 atoms: one row per orbit
    assert sim.stage_metrics("s", X, src, dst, groups).pairs == {
        "method": "orbits",
        "rows": 257,
        "num_atoms": 1028,
    }


def test_orbit_representatives_give_the_exact_numbers(monkeypatch):
    X, groups, src, dst = _symmetric()
    fast = sim.stage_metrics("s", X, src, dst, groups)
    full = _exact(monkeypatch, sim.stage_metrics, "s", X, src, dst, groups)
    assert full.pairs is None and fast.pairs["method"] == "orbits"
    for name in FIELDS:
        assert getattr(fast, name) == pytest.approx(getattr(full, name), rel=1e-7, abs=1e-9), name
    assert fast.identical_cross_orbit_pairs == 16  # orbits 0 and 1: 4 x 4 atom pairs
    assert fast.identical_cross_orbit_examples[0] == (0, 4)


def test_no_symmetry_samples_atoms_and_reports_the_standard_error(monkeypatch):
    rng = np.random.default_rng(2)
    n = 2500
    X = rng.standard_normal((n, 32)) + 0.8 * rng.standard_normal(32)
    src, dst = rng.integers(0, n, 4 * n), rng.integers(0, n, 4 * n)
    fast = sim.stage_metrics("s", X, src, dst, None)
    full = _exact(monkeypatch, sim.stage_metrics, "s", X, src, dst, None)
    assert fast.pairs["method"] == "sampled" and fast.pairs["rows"] == sim.SAMPLE_ROWS
    err = fast.pairs["stderr"]
    for name in ("mean_raw_corr", "mean_centered_corr", "mad"):
        assert 0 < err[name] < 0.05
        assert abs(getattr(fast, name) - getattr(full, name)) <= 4 * err[name], name
    for name in ("effective_rank", "numerical_rank", "dirichlet"):  # exact at any size
        assert getattr(fast, name) == pytest.approx(getattr(full, name), rel=1e-6), name
    assert fast.to_json()["pairs"]["method"] == "sampled"


def _attention(orbits: int, size: int, tokens: int = 24, identical: bool = True):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, orbits, tokens)) * 2
    if identical:
        logits = np.repeat(logits, size, axis=1)
    else:
        logits = np.repeat(logits, size, axis=1) + 0.3 * rng.standard_normal(
            (2, orbits * size, tokens)
        )
    A = np.exp(logits)
    A /= A.sum(axis=2, keepdims=True)
    groups = [list(range(size * g, size * g + size)) for g in range(orbits)]
    return A, groups


def test_attention_jsd_on_orbit_representatives_is_exact(monkeypatch):
    A, groups = _attention(orbits=5, size=240)  # 1200 atoms, 5 orbits
    fast = att.summarize_attention(A, None, groups)
    full = _exact(monkeypatch, att.summarize_attention, A, None, groups)
    assert fast.pairs == {"method": "orbits", "rows": 5} and full.pairs is None
    assert fast.jsd == pytest.approx(full.jsd, rel=1e-9)
    assert fast.cross_orbit_jsd == pytest.approx(full.cross_orbit_jsd, rel=1e-9)
    assert fast.cross_orbit_max_abs_row_diff == pytest.approx(full.cross_orbit_max_abs_row_diff)
    profile = att.divergence_profile({"gcn.0": A}, None, groups)
    assert profile[0].jsd == pytest.approx(full.jsd, rel=1e-9)


def test_attention_jsd_without_symmetry_is_sampled_within_its_standard_error(monkeypatch):
    A, groups = _attention(orbits=3, size=400, identical=False)  # 1200 atoms, noisy orbits
    fast = att.summarize_attention(A, None, groups)
    full = _exact(monkeypatch, att.summarize_attention, A, None, groups)
    assert fast.pairs["method"] == "sampled" and fast.pairs["pairs"] == att.SAMPLE_PAIRS
    err = fast.pairs["stderr"]
    assert abs(fast.jsd - full.jsd) <= 4 * err["jsd"]
    assert abs(fast.cross_orbit_jsd - full.cross_orbit_jsd) <= 4 * err["cross_orbit_jsd"]
    assert fast.cross_orbit_jsd > fast.jsd  # cross pairs only: the sampling sees orbits
    assert fast.to_json()["pairs"]["method"] == "sampled"


def test_cross_orbit_pairs_are_sampled_uniformly_even_with_unequal_orbits():
    labels = np.array([0] * 90 + [1] * 9 + [2])
    a, b = att._sample_pairs(labels, 200_000, True, np.random.default_rng(0))
    assert np.all(labels[a] != labels[b])
    # Cross pairs: 0-1: 810, 0-2: 90, 1-2: 9 (unordered); each ordered pair equally likely.
    kinds = np.sort(np.stack([labels[a], labels[b]]), axis=0)
    share = {k: float(np.mean((kinds[0] == k[0]) & (kinds[1] == k[1]))) for k in ((0, 1), (0, 2))}
    assert share[(0, 1)] == pytest.approx(810 / 909, abs=0.005)
    assert share[(0, 2)] == pytest.approx(90 / 909, abs=0.005)


@pytest.mark.parametrize("mode", ["raw", "centred", "cosine"])
def test_block_means_from_group_sums_equal_those_of_the_full_matrix(mode):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 8))
    X[5] = 0.0  # degenerate rows: zero (raw, cosine), equal to the mean atom (centred)
    X[6] = 0.0
    X[7] = X.mean(axis=0)
    groups = [list(range(0, 10)), list(range(10, 35)), [35], list(range(36, 60))]
    func = {
        "raw": sim.raw_correlation,
        "centred": sim.centered_correlation,
        "cosine": sim.cosine_matrix,
    }[mode]
    expected = sim.block_mean(func(X), groups)
    got = sim.block_mean_embedded(sim.similarity_embedding(X, mode), groups)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_mad_keeps_atoms_whose_distances_are_all_below_the_zero_tolerance_out_only():
    """Atom 0 is within the zero tolerance of both others, which are not of each other (twice
    the angle): atom 0 drops out of the mean, the others still count, on both paths."""
    theta = np.arccos(1 - 0.9 * sim.MAD_ZERO_TOL)
    X = np.array([[1.0, 0.0], [np.cos(theta), np.sin(theta)], [np.cos(theta), -np.sin(theta)]])
    expected = 1 - np.cos(2 * theta)  # ~3.6e-10: atoms 1 and 2 each have one nonzero distance
    small = sim.stage_metrics("s", X, [], [])
    large = sim.large_stage_metrics("s", X, [], [], [[0], [1], [2]])
    assert small.mad == pytest.approx(expected, rel=1e-3)
    assert large.mad == pytest.approx(expected, rel=1e-3)
