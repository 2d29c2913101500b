"""Large cells: pair statistics on orbit representatives (exact) or sampled pairs (estimated,
with the standard error reported), and heat-map block means without N×N matrices."""

from __future__ import annotations

import functools

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


# --- the embedding behind block means: every degenerate-row rule of the dense matrices ------


def _degenerate_rows(mode: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    u, w = rng.standard_normal(4), rng.standard_normal(4)
    if mode == "raw":  # constant rows read 1 with equal constants, 0 with other rows; in
        # floats, the mean of three 0.1 is above 0.1 and that of three 0.7 below 0.7
        c = [np.full(3, v) for v in (0.1, 0.1, 0.7, 5.0, 5.5)]
        return np.stack([u[:3], c[0], w[:3], c[1], c[2], c[3], c[4]])
    if mode == "centred":  # rows that differ from the mean atom by a constant shift
        return np.stack([u, -u, np.ones(4), np.ones(4), np.full(4, 3.0), w, -w])
    return np.vstack([rng.standard_normal((4, 3)), np.zeros((2, 3))])  # zero rows past index D


@pytest.mark.parametrize("mode", ["raw", "centred", "cosine"])
def test_the_embedding_reproduces_each_matrix_with_its_degenerate_rows(mode):
    X = _degenerate_rows(mode)
    dense = {
        "raw": sim.raw_correlation,
        "centred": sim.centered_correlation,
        "cosine": sim.cosine_matrix,
    }[mode](X)
    V = sim.similarity_embedding(X, mode)
    np.testing.assert_allclose(np.clip(V @ V.T, -1.0, 1.0), dense, atol=1e-12)
    assert np.isin(dense, [0.0, 1.0]).sum() > X.shape[0]  # the degenerate rules were exercised


def test_the_embedding_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode must be raw, centred or cosine, not 'pearson'"):
        sim.similarity_embedding(np.eye(2), "pearson")


def test_degenerate_classes_follow_their_keys_in_any_order():
    # Constant rows 3, 1, 3, 2 (unsorted): three classes, rows 0 and 2 together.
    X = np.array([[3.0, 3.0], [1.0, 1.0], [3.0, 3.0], [2.0, 2.0], [1.0, 2.0]])
    V = sim.similarity_embedding(X, "raw")
    np.testing.assert_allclose(V @ V.T, sim.raw_correlation(X), atol=1e-12)


# --- which rows stand for a large cell ----------------------------------------------------------


def test_rows_are_exact_up_to_the_limit_then_orbit_representatives_then_a_sample():
    X = np.repeat(np.arange(3.0)[:, None], 2, axis=0)  # three orbits of two identical atoms
    orbits = [[0, 1], [2, 3], [4, 5]]
    exact = sim.select_rows(X, orbits, exact_max=6)
    assert (exact.method, exact.indices.tolist(), exact.orbit.tolist()) == (
        "exact",
        [0, 1, 2, 3, 4, 5],
        [0, 0, 1, 1, 2, 2],
    )
    reps = sim.select_rows(X, orbits, exact_max=3)  # 6 atoms > 3, but 3 orbits <= 3
    assert (reps.method, reps.indices.tolist(), reps.weights.tolist()) == (
        "orbits",
        [0, 2, 4],
        [2.0, 2.0, 2.0],
    )
    sampled = sim.select_rows(X, orbits, exact_max=2, sample=4)  # 3 orbits > 2
    assert sampled.method == "sampled" and sampled.indices.size == 4
    assert sampled.orbit.tolist() == [i // 2 for i in sampled.indices.tolist()]


def test_orbit_representatives_need_identical_atoms_with_the_callers_tolerances():
    X = np.array([[1.0], [1.05], [2.0], [2.0]])  # orbit 0's atoms differ by 0.05
    orbits = [[0, 1], [2, 3]]
    assert sim.select_rows(X, orbits, exact_max=2).method == "sampled"
    assert sim.select_rows(X, orbits, exact_max=2, atol=0.1, rtol=0.0).method == "orbits"
    assert sim.select_rows(X, orbits, exact_max=2, atol=0.0, rtol=0.03).method == "orbits"


def test_orbits_identical_tolerance_scales_with_the_largest_value_and_is_inclusive():
    assert sim.orbits_identical(np.array([[0.0], [0.5]]), [[0, 1]], atol=0.5, rtol=0.0)
    assert not sim.orbits_identical(np.array([[0.0], [0.5001]]), [[0, 1]], atol=0.5, rtol=0.0)
    big = np.array([[100.0], [100.0005]])  # 1e-6 + 1e-5 * 100.0005 = 0.001001
    assert sim.orbits_identical(big, [[0, 1]])
    small = np.array([[0.01], [0.010005]])  # 5e-6 > 1e-6 + 1e-5 * 0.01
    assert not sim.orbits_identical(small, [[0, 1]])
    assert sim.orbits_identical(small, [[0], [1]])  # singletons agree with themselves


def test_row_mean_standard_error_by_hand():
    M = np.array(
        [
            [1.0, 0.2, 0.4, 0.0],
            [0.2, 1.0, 0.9, 0.0],
            [0.4, 0.9, 1.0, 0.5],
            [0.0, 0.0, 0.5, 1.0],
        ]
    )
    W = np.zeros((4, 4))
    W[0, 1] = W[0, 2] = W[1, 2] = 1.0  # a triangle; atom 3 pairs with nobody
    means = np.array([(0.2 + 0.4) / 2, (0.2 + 0.9) / 2, (0.4 + 0.9) / 2])
    expected = 2.0 * means.std(ddof=1) / np.sqrt(3)
    assert sim._row_mean_stderr(M, W) == pytest.approx(expected, rel=1e-12)
    W[2, 3] = 1.0  # atom 3: one pair (weight 1) now counts
    means = np.array([(0.2 + 0.4) / 2, (0.2 + 0.9) / 2, (0.4 + 0.9 + 0.5) / 3, 0.5])
    assert sim._row_mean_stderr(M, W) == pytest.approx(2.0 * means.std(ddof=1) / 2, rel=1e-12)
    two = np.zeros((2, 2))
    two[0, 1] = 1.0
    assert sim._row_mean_stderr(M[:2, :2], two) == 0.0  # two atoms: one pair, both see it
    assert sim._row_mean_stderr(M[:2, :2], np.zeros((2, 2))) is None


def test_mean_offdiag_averages_in_float64_whatever_the_input_dtype():
    M = np.eye(3, dtype=np.float32)
    M[0, 1], M[0, 2], M[1, 2] = 1.0, 2.0**-24, 2.0**-24  # float32 sums lose the small terms
    assert sim.mean_offdiag(M) == (1.0 + 2.0**-23) / 3


# --- the large-cell path itself, on cells small enough to check against the exact one ------


def _awkward_cell() -> tuple[np.ndarray, list[list[int]]]:
    """Distinct rows, an orbit of two atoms 0.05 apart, a constant column, a constant row and
    a row equal to the mean atom: every rounding rule of the exact path is used."""
    rng = np.random.default_rng(8)
    X = 0.01 * rng.standard_normal((7, 5))
    X[1] = X[0] + 0.05
    X[6] = X[3] + 0.04
    X[:, 2] = 0.3  # a constant feature column
    X[4] = 0.3  # a constant row
    X[5] = X[[0, 1, 2, 3, 4, 6]].mean(axis=0)  # the mean atom of the other six
    X[5, 2] = 0.3
    assert np.ptp(X[:, 2]) == 0.0
    return X, [[0, 1], [2], [3], [4], [5], [6]]


@pytest.mark.parametrize(("atol", "rtol"), [(1e-6, 1e-5), (0.045, 0.0), (0.0, 1.2)])
def test_the_large_path_on_a_small_cell_equals_the_exact_path(atol, rtol):
    X, orbits = _awkward_cell()
    src, dst = np.array([0, 1, 2, 3, 6]), np.array([1, 2, 3, 6, 0])
    exact = sim.stage_metrics("s", X, src, dst, orbits, atol=atol, rtol=rtol)
    large = sim.large_stage_metrics(
        "s", X, src, dst, sim.complete_orbits(orbits, 7), atol=atol, rtol=rtol
    )
    assert large.pairs == {"method": "exact", "rows": 7, "num_atoms": 7}
    for field in (*FIELDS, "within_orbit_max_dev", "dirichlet_normalized"):
        assert getattr(large, field) == pytest.approx(getattr(exact, field), rel=1e-9, abs=1e-12)
    assert large.identical_cross_orbit_examples == exact.identical_cross_orbit_examples
    assert (large.num_atoms, large.num_orbits) == (7, 6)
    assert (exact.identical_cross_orbit_pairs > 0) is (atol != 1e-6)  # the tolerances matter


def test_a_collapsed_cell_has_rank_one_on_both_paths():
    X = np.ones((5, 4)) + 1e-13 * np.random.default_rng(2).standard_normal((5, 4))
    for m in (
        sim.stage_metrics("s", X, [], []),
        sim.large_stage_metrics("s", X, [], [], [[i] for i in range(5)]),
    ):
        assert (m.effective_rank, m.numerical_rank, m.mad) == (1.0, 1.0, 0.0)
        assert m.mean_centered_corr == 1.0


def test_small_singular_values_are_kept_on_the_large_path():
    rng = np.random.default_rng(4)
    X = 0.01 * rng.standard_normal((8, 6))  # every singular value well below 1
    exact = sim.stage_metrics("s", X, [], [])
    large = sim.large_stage_metrics("s", X, [], [], [[i] for i in range(8)])
    assert large.effective_rank == pytest.approx(exact.effective_rank, rel=1e-9)
    assert large.numerical_rank == pytest.approx(exact.numerical_rank, rel=1e-9)
    assert 4.0 < exact.effective_rank < 6.0


def test_sampled_identical_pairs_scale_to_all_pairs(monkeypatch):
    # 12 identical atoms, each its own orbit: 66 identical pairs. Rows are sampled (6 of 12):
    # 15 sampled pairs, scaled by 12*11 / (6*5) back to 66.
    small = functools.partial(sim.select_rows, exact_max=4, sample=6)
    monkeypatch.setattr(sim, "select_rows", small)
    X = np.tile(np.arange(1.0, 5.0), (12, 1))
    m = sim.large_stage_metrics("s", X, [], [], [[i] for i in range(12)])
    assert m.pairs["method"] == "sampled" and m.pairs["rows"] == 6
    assert m.identical_cross_orbit_pairs == 66
    assert m.pairs["stderr"]["mad"] == 0.0  # every atom at distance 0 from all: no spread
    assert set(m.pairs["stderr"]) == {
        "mean_raw_corr",
        "mean_centered_corr",
        "mad",
        "cross_orbit_centered_corr",
    }


def test_orbit_representatives_use_the_callers_tolerance(monkeypatch):
    small = functools.partial(sim.select_rows, exact_max=4)
    monkeypatch.setattr(sim, "select_rows", small)
    X = np.repeat(np.eye(3, 4), 2, axis=0)
    X[1::2] += 0.03  # each orbit's second atom 0.03 off its first
    orbits = [[0, 1], [2, 3], [4, 5]]
    assert sim.large_stage_metrics("s", X, [], [], orbits).pairs["method"] == "sampled"
    m = sim.large_stage_metrics("s", X, [], [], orbits, atol=0.05)
    assert m.pairs == {"method": "orbits", "rows": 3, "num_atoms": 6}
    m = sim.large_stage_metrics("s", X, [], [], orbits, atol=0.0, rtol=0.05)  # 0.05 * 1.03
    assert m.pairs == {"method": "orbits", "rows": 3, "num_atoms": 6}


def test_block_means_of_identical_and_opposite_groups_are_exactly_one_and_minus_one():
    u = np.random.default_rng(3).standard_normal(5)  # rounding takes these past ±1 unclipped
    V = sim.similarity_embedding(np.vstack([u, u, u, -u, -u]), "cosine")
    assert sim.block_mean_embedded(V, [[0, 1, 2], [3, 4]]).tolist() == [[1.0, -1.0], [-1.0, 1.0]]


def test_one_feature_rows_are_all_constant_rows():
    X = np.array([[2.0], [1.0], [2.0]])
    V = sim.similarity_embedding(X, "raw")
    np.testing.assert_allclose(V @ V.T, sim.raw_correlation(X), atol=0)


def test_one_orbit_has_no_cross_orbit_means_on_the_large_path():
    X, _ = _awkward_cell()
    m = sim.large_stage_metrics("s", X, [], [], [list(range(7))])
    assert (m.cross_orbit_raw_corr, m.cross_orbit_centered_corr, m.cross_orbit_cosine) == (
        None,
        None,
        None,
    )
    assert m.identical_cross_orbit_pairs == 0 and m.num_orbits == 1


def test_stage_metrics_hands_large_cells_over_with_name_and_tolerances(monkeypatch):
    X, orbits = _awkward_cell()
    exact = sim.stage_metrics("gcn.2", X, [], [], orbits, atol=0.045, rtol=0.0)
    monkeypatch.setattr(sim, "EXACT_MAX_ATOMS", 6)  # 7 atoms: the large path
    large = sim.stage_metrics("gcn.2", X, [], [], orbits, atol=0.045, rtol=0.0)
    assert large.pairs == {"method": "exact", "rows": 7, "num_atoms": 7} and large.name == "gcn.2"
    assert large.identical_cross_orbit_pairs == exact.identical_cross_orbit_pairs > 0
    looser = sim.stage_metrics("gcn.2", X, [], [], orbits, atol=0.0, rtol=1.2)
    assert looser.identical_cross_orbit_pairs > exact.identical_cross_orbit_pairs


def test_edges_may_come_as_floats_or_columns_and_small_features_normalise():
    X = 0.01 * np.arange(12.0).reshape(4, 3)  # ||X||_F^2 = 0.0506: below 1
    e = sim.dirichlet_energy(X, [0, 1, 2], [1, 2, 3])
    assert sim.dirichlet_energy(X, np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == e
    assert sim.dirichlet_energy(X, [[0], [1], [2]], [[1], [2], [3]]) == e
    m = sim.stage_metrics("s", X, [0, 1, 2], [1, 2, 3])
    assert m.dirichlet_normalized == pytest.approx(e * 4 / 0.0506, rel=1e-12)
    assert m.dirichlet_normalized == sim.dirichlet_normalized(X, [0, 1, 2], [1, 2, 3])


def test_one_atom_and_no_symmetry_follow_the_exact_conventions_on_the_large_path():
    X, _ = _awkward_cell()
    one = sim.large_stage_metrics("s", X[:1], [], [], [[0]])
    assert (one.mean_raw_corr, one.mean_centered_corr, one.mad) == (1.0, 1.0, 0.0)
    singletons = [[i] for i in range(7)]
    large = sim.large_stage_metrics("s", X, [], [], singletons)
    assert large.within_orbit_max_dev is None
    assert large.within_orbit_max_dev == sim.stage_metrics("s", X, [], []).within_orbit_max_dev


def test_the_sampled_mad_standard_error_is_the_spread_of_the_per_atom_means(monkeypatch):
    monkeypatch.setattr(
        sim, "select_rows", functools.partial(sim.select_rows, exact_max=4, sample=6)
    )
    X = np.random.default_rng(6).standard_normal((12, 3))  # 12 atoms, no symmetry
    m = sim.large_stage_metrics("s", X, [], [], [[i] for i in range(12)])
    R = X[sim.select_rows(X, [[i] for i in range(12)], exact_max=4, sample=6).indices]
    dist = 1.0 - sim.cosine_matrix(R)
    dist[dist <= sim.MAD_ZERO_TOL] = 0.0
    per_atom = np.array([row[row > 0].mean() if (row > 0).any() else 0.0 for row in dist])
    assert per_atom.std() > 0.05  # the atoms' mean distances differ
    expected = per_atom.std(ddof=1) / np.sqrt(6)
    assert m.pairs["stderr"]["mad"] == pytest.approx(expected, rel=1e-12)


def test_the_large_path_drops_singular_values_below_1e_7_of_the_largest():
    # Centred columns with singular values 1, 1e-4 and 3e-8: the last is below 1e-7 * 1 (Gram
    # eigen-solver noise at this precision) but far above 1e-7 * 1e-4.
    U = np.array([[1, -1, 0, 0], [0, 0, 1, -1], [1, 1, -1, -1]], dtype=float).T
    U /= np.linalg.norm(U, axis=0)
    X = U * np.array([1.0, 1e-4, 3e-8])
    large = sim.large_stage_metrics("s", X, [], [], [[i] for i in range(4)])
    kept = np.array([1.0, 1e-4])
    assert large.effective_rank == pytest.approx(sim._effective_rank(kept), rel=1e-9)
    assert large.numerical_rank == pytest.approx(sim._numerical_rank(kept), rel=1e-9)


def test_many_rows_each_within_the_centring_tolerance_are_still_collapsed():
    # 100 rows, each within 0.75 * CENTER_RTOL * scale of the mean atom: every row is "equal to
    # the mean atom", although together their deviations exceed the tolerance tenfold.
    noise = np.random.default_rng(9).standard_normal((100, 4))
    noise -= noise.mean(axis=0)
    noise *= 0.75 * sim.CENTER_RTOL * 2.0 / np.linalg.norm(noise, axis=1).max()  # |row| = 2
    X = np.ones((100, 4)) + noise
    for m in (
        sim.stage_metrics("s", X, [], []),
        sim.large_stage_metrics("s", X, [], [], [[i] for i in range(100)]),
    ):
        assert (m.effective_rank, m.numerical_rank) == (1.0, 1.0)


def test_the_normalised_dirichlet_energy_on_the_large_path():
    X = 0.01 * np.arange(12.0).reshape(4, 3)  # ||X||_F^2 = 0.0506: below 1
    edges = [0, 1, 2], [1, 2, 3]
    large = sim.large_stage_metrics("s", X, *edges, [[i] for i in range(4)])
    assert large.dirichlet_normalized == sim.stage_metrics("s", X, *edges).dirichlet_normalized
    assert large.dirichlet_normalized == pytest.approx(sim.dirichlet_energy(X, *edges) * 4 / 0.0506)
    zero = sim.large_stage_metrics("s", np.zeros((4, 3)), *edges, [[i] for i in range(4)])
    assert (zero.dirichlet, zero.dirichlet_normalized) == (0.0, 0.0)


def test_a_centred_row_within_the_tolerance_of_the_mean_atom_is_degenerate_in_the_embedding():
    """Atom 3 is the mean atom shifted along (1, 1, 1), plus 1e-12: its centred row is constant
    up to a residue far below CENTER_RTOL x the largest row norm, so it is degenerate (the
    dense matrix gives it 1 with itself, 0 with the others), not a unit vector along the
    residue. The embedding must agree row by row."""
    rng = np.random.default_rng(11)
    rest = rng.standard_normal((3, 3))
    v = np.array([0.5 + 1e-12, 0.5 - 1e-12, 0.5])
    X = np.vstack([rest, (4 * v + rest.sum(axis=0)) / 3])
    dense = sim.centered_correlation(X)
    assert dense[3].tolist() == [0.0, 0.0, 0.0, 1.0]
    V = sim.similarity_embedding(X, "centred")
    np.testing.assert_allclose(np.clip(V @ V.T, -1.0, 1.0), dense, atol=1e-12)


def test_a_column_with_a_range_of_exactly_one_is_centred_like_any_other_on_the_large_path():
    X = np.random.default_rng(12).standard_normal((6, 4))
    X[:, 3] = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]  # np.ptp == 1 exactly; only constant columns zero
    orbits = [[i] for i in range(6)]
    exact = sim.stage_metrics("s", X, [], [], orbits)
    large = sim.large_stage_metrics("s", X, [], [], orbits)
    for field in ("mean_centered_corr", "cross_orbit_centered_corr"):
        assert getattr(large, field) == pytest.approx(getattr(exact, field), rel=1e-9)
