"""Similarity metrics at their edges: the centring tolerance on both sides, degenerate rows,
the identical-atoms tolerance and its pre-filter, ranks of known spectra, orbit bookkeeping,
block means and the stage summary's caps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fga_tui.diagnostics import similarity as sim


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_features_must_be_a_non_empty_matrix():
    assert sim.as_features([[1, 2]]).dtype == np.float64
    with pytest.raises(ValueError, match=r"features must be 2-D \[N, D\], got shape \(3,\)"):
        sim.as_features([1, 2, 3])
    with pytest.raises(ValueError, match=r"at least one atom and one dimension, got \(0, 2\)"):
        sim.as_features(np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"got \(2, 0\)"):
        sim.as_features(np.zeros((2, 0)))


def test_centring_zeroes_constant_columns_exactly():
    X = np.array([[0.1, 5.0], [0.2, 5.0], [0.3, 5.0]])
    Xc = sim.centered(X)
    np.testing.assert_allclose(Xc[:, 0], [-0.1, 0.0, 0.1], atol=1e-15)
    assert np.all(Xc[:, 1] == 0.0)


def _near_mean_pair(e: float) -> np.ndarray:
    """Two rows on a ±x axis and two tiny rows ±e on y: the mean atom is exactly 0."""
    return np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, e, 0.0], [0.0, -e, 0.0]])


def test_centred_cosine_treats_rows_within_the_tolerance_as_the_mean_atom():
    tol = 1e-10  # CENTER_RTOL times the largest row norm, 1 here
    inside = sim.centered_cosine(_near_mean_pair(0.9 * tol))
    assert inside[2, 3] == 1.0 and inside[2, 0] == 0.0  # both "equal to the mean atom"
    outside = sim.centered_cosine(_near_mean_pair(1.1 * tol))
    assert outside[2, 3] == pytest.approx(-1.0) and outside[2, 0] == 0.0


def test_centred_correlation_treats_rows_within_the_tolerance_as_the_mean_atom():
    # The row-demeaned tiny rows have norm e·sqrt(6)/3: the edge is e = 1.2247e-10.
    inside = sim.centered_correlation(_near_mean_pair(1.2e-10))
    assert inside[2, 3] == 1.0 and inside[0, 2] == 0.0
    outside = sim.centered_correlation(_near_mean_pair(1.3e-10))
    assert outside[2, 3] == pytest.approx(-1.0)
    assert sim.centered_correlation(np.ones((3, 4))).tolist() == [[1.0] * 3] * 3


def test_raw_correlation_compares_constant_rows_by_their_constant():
    X = np.array([[2.0, 2.0, 2.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0], [1.0, 2.0, 3.0]])
    R = sim.raw_correlation(X)
    assert R[0, 1] == 1.0 and R[0, 2] == 0.0 and R[0, 3] == 0.0 and R[3, 3] == 1.0
    np.testing.assert_allclose(sim.raw_correlation(X[2:] * [[1, 1, 1], [1, 1, 1]])[1, 1], 1.0)


def test_cosine_of_zero_rows():
    C = sim.cosine_matrix(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [-2.0, -2.0]]))
    assert C[0, 1] == 1.0 and C[0, 2] == 0.0 and C[2, 3] == pytest.approx(-1.0)
    assert np.all(np.diag(C) == 1.0)


# --- identical atoms --------------------------------------------------------------------------


def test_identical_within_atol_plus_rtol_times_the_larger_value():
    a = 100.0
    bound = 1e-6 + 1e-5 * a  # atol 1e-6 + rtol 1e-5 × the larger value = 0.001001
    assert sim.identical_matrix([[a], [a - 0.999 * bound]])[0, 1]
    assert not sim.identical_matrix([[a], [a - 1.001 * bound]])[0, 1]
    assert sim.identical_pairs([[1.0], [1.0 + 0.5e-6], [1.0 + 3e-5]]) == [(0, 1)]
    assert sim.identical_pairs([[1.0], [1.0 + 3e-5]], atol=1e-4) == [(0, 1)]
    assert sim.identical_pairs([[1.0], [1.0 + 3e-5]], rtol=1e-4) == [(0, 1)]


def test_the_distance_prefilter_keeps_pairs_that_differ_by_the_bound_in_every_dimension():
    d = 16
    b = np.full(d, 0.9e-6)  # every element just inside atol of the zero row
    assert sim.identical_pairs(np.stack([np.zeros(d), b])) == [(0, 1)]
    big = np.stack([np.full(d, 1e3), np.full(d, 1e3) + 0.9e-2])  # rtol-dominated, large norms
    assert sim.identical_pairs(big) == [(0, 1)]


def test_identical_pairs_in_tiny_verification_chunks(monkeypatch):
    X = np.repeat(np.arange(4.0)[:, None], 3, axis=0) + np.tile([0.0, 1e-7, 2e-7], 4)[:, None]
    whole = sim.identical_pairs(X)
    monkeypatch.setattr(sim, "_VERIFY_CHUNK", 1)
    assert sim.identical_pairs(X) == whole and len(whole) == 12


def test_identical_matrix_is_symmetric_whatever_the_row_order():
    # np.unique sorts the rows, so (0, 1) here is the sorted pair (1, 0): both halves are read.
    for X in ([[1.0 + 1e-7], [1.0]], [[1.0], [1.0 + 1e-7]]):
        M = sim.identical_matrix(X)
        assert M.dtype == bool and M.tolist() == [[True, True], [True, True]]
    X = [[2.0], [1.0 + 1e-7], [5.0], [1.0]]
    M = sim.identical_matrix(X)
    assert np.array_equal(M, M.T) and sim.identical_pairs(X) == [(1, 3)]
    assert M.sum() == 4 + 2


def test_the_prefilter_threshold_is_sqrt_d_times_the_bound():
    """A pair is a candidate iff its Euclidean distance is within sqrt(D) * bound (plus Gram
    rounding): one element off by just under 4 * bound in D = 16 is a candidate (the exact check
    then refuses it), just over is not."""
    d, atol = 16, 1e-3
    for factor, expected in ((0.999, 1), (1.001, 0)):
        rows = np.zeros((2, d))
        rows[1, 0] = factor * np.sqrt(d) * atol
        ia, ib = sim.candidate_pairs(rows, atol=atol, rtol=0.0)
        assert (ia.size, ib.size) == (expected, expected)
        assert sim.identical_pairs(rows, atol=atol, rtol=0.0) == []
    # The default bound, atol + rtol * the larger max|x| (~100.004 here): 0.0010010004.
    bound = 1e-6 + 1e-5 * 100.004
    for factor, expected in ((0.999, [[0], [1]]), (1.001, [[], []])):
        rows = np.zeros((2, d))
        rows[:, 0] = 100.0, 100.0 + factor * np.sqrt(d) * bound
        assert [a.tolist() for a in sim.candidate_pairs(rows)] == expected


def test_the_prefilter_lists_each_distinct_pair_once_and_far_rows_never():
    rng = np.random.default_rng(5)
    rows = np.unique(rng.normal(size=(40, 8)), axis=0)
    ia, ib = sim.candidate_pairs(rows)
    assert ia.size == 0 and ib.size == 0  # unit-scale random rows: none within 1e-5
    near = np.vstack([rows[:3], rows[:3] + 1e-7])
    ia, ib = sim.candidate_pairs(near)
    assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 3), (1, 4), (2, 5)]


def test_the_prefilter_keeps_pairs_lost_in_gram_cancellation():
    """With rtol = 0 and |x| ~ 1e3, a 5e-7 difference is 5e-10 of the norm: the Gram-based
    distance is pure rounding noise there, and only the 1e-12 * |x|² slack keeps the pairs."""
    rng = np.random.default_rng(11)
    base = 1e3 + rng.uniform(0.0, 1.0, size=(30, 64))
    X = np.vstack([base, base + 5e-7])
    pairs = sim.identical_pairs(X, atol=1e-6, rtol=0.0)
    assert pairs == [(i, i + 30) for i in range(30)]


# --- MAD, Dirichlet energy, ranks -----------------------------------------------------------------


def test_mad_with_and_without_dropping_zero_distances():
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # 0 and 1 identical, 2 orthogonal
    assert sim.mad(X) == pytest.approx(1.0)  # each atom's nonzero distances are all 1
    assert sim.mad(X, drop_zeros=False) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert sim.mad(np.ones((3, 2))) == 0.0
    assert sim.mad([[1.0, 0.0]]) == 0.0


def test_mad_counts_distances_at_the_zero_tolerance_as_zero():
    """Atoms 0 and 1 differ by a tiny angle: below the tolerance they are "identical" and drop
    out of each other's average (MAD ≈ 1); just above it their ~0 distance is averaged in."""

    def cell(angle: float) -> np.ndarray:
        return np.array([[1.0, 0.0], [np.cos(angle), np.sin(angle)], [0.0, 1.0]])

    edge = np.arccos(1 - 1e-10)  # 1 - cos(edge) == 1e-10, the zero tolerance
    assert sim.mad(cell(0.9 * edge)) == pytest.approx(1.0, abs=1e-4)
    assert sim.mad(cell(1.1 * edge)) == pytest.approx(2 / 3, abs=1e-4)


def test_edges_are_checked():
    with pytest.raises(ValueError, match="src and dst differ in length: 2 vs 1"):
        sim.dirichlet_energy(np.eye(2), [0, 1], [1])
    with pytest.raises(ValueError, match="edge index out of range for 2 atoms"):
        sim.dirichlet_energy(np.eye(2), [0, 2], [1, 0])
    with pytest.raises(ValueError, match="out of range"):
        sim.dirichlet_energy(np.eye(2), [0, -1], [1, 0])
    assert sim.dirichlet_energy(np.eye(2), [1], [1]) == 0.0
    assert sim.dirichlet_energy(np.eye(2), [], []) == 0.0


def test_dirichlet_energy_counts_each_directed_edge():
    X = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])  # |x0 - x1|² = 25, |x0 - x2|² = 1
    assert sim.dirichlet_energy(X, [0, 1, 1, 2], [1, 0, 0, 0]) == pytest.approx((3 * 25 + 1) / 3)
    assert sim.dirichlet_normalized(X, [0], [1]) == pytest.approx((25 / 3) * 3 / 26)
    assert sim.dirichlet_normalized(np.zeros((2, 2)), [0], [1]) == 0.0


def test_ranks_of_a_known_spectrum():
    # Centred X with singular values 4 and 3 (orthogonal directions, ± rows).
    X = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 3.0], [0.0, -3.0]]) / np.sqrt(2)
    assert sim.numerical_rank(X) == pytest.approx((16 + 9) / 16)
    p = np.array([4.0, 3.0]) / 7
    assert sim.effective_rank(X) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert sim.numerical_rank(np.ones((3, 2))) == 1.0 and sim.effective_rank(np.ones((3, 2))) == 1.0


def test_rounding_level_singular_values_are_dropped():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    X[2, 1] = 1e-14  # above the rounding level max(N, D)·eps·σ_max ≈ 6.7e-16: a 2nd direction
    assert sim.effective_rank(X) > 1.0
    Y = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    Y[2, 1] = 1e-17  # below the rounding level: rank 1
    assert sim.effective_rank(Y) == 1.0 and sim.numerical_rank(Y) == 1.0


# --- orbits and pairs -----------------------------------------------------------------------


def test_complete_orbits_validates_and_fills_in_singletons():
    assert sim.complete_orbits(None, 3) == [[0], [1], [2]]
    assert sim.complete_orbits([[2, 0], []], 4) == [[2, 0], [1], [3]]
    with pytest.raises(ValueError, match="orbit atom index 4 out of range for 4 atoms"):
        sim.complete_orbits([[4]], 4)
    with pytest.raises(ValueError, match="orbit atom index -1 out of range"):
        sim.complete_orbits([[-1]], 4)
    with pytest.raises(ValueError, match="atom 1 appears in more than one orbit"):
        sim.complete_orbits([[0, 1], [1]], 4)
    assert sim.orbit_labels([[2, 0]], 3).tolist() == [0, 1, 0]


def test_pair_selections():
    orbits = [[0, 1], [2]]
    assert np.argwhere(sim.pair_mask(3)).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert np.argwhere(sim.pair_mask(3, "cross_orbit", orbits)).tolist() == [[0, 2], [1, 2]]
    assert np.argwhere(sim.pair_mask(3, "within_orbit", orbits)).tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="pairs must be 'all', 'cross_orbit' or 'within_orbit'"):
        sim.pair_mask(3, "some")


def test_mean_offdiag():
    M = np.array([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]])
    assert sim.mean_offdiag(M) == pytest.approx(0.4)
    assert sim.mean_offdiag(M, "cross_orbit", [[0, 1], [2]]) == pytest.approx(0.5)
    assert sim.mean_offdiag(M, "within_orbit", None) is None
    with pytest.raises(ValueError, match=r"expected a square matrix, got shape \(2, 3\)"):
        sim.mean_offdiag(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="square"):
        sim.mean_offdiag(np.zeros(3))


def test_orbit_representatives_and_groups():
    reps, rows = sim.orbit_representatives(np.arange(8.0).reshape(4, 2), [[3, 1], [2]])
    assert reps.tolist() == [1, 2, 0] and rows.tolist() == [[2.0, 3.0], [4.0, 5.0], [0.0, 1.0]]
    assert sim.group_by_label(["Na", "Cl", "Na", "O"]) == (["Na", "Cl", "O"], [[0, 2], [1], [3]])


def test_block_means():
    M = np.array(
        [
            [1.0, 0.5, 0.1],
            [0.5, 1.0, 0.3],
            [0.1, 0.3, 0.7],
        ]
    )
    groups = [[0, 1], [2]]
    B = sim.block_mean(M, groups)
    np.testing.assert_allclose(B, [[0.5, 0.2], [0.2, 0.7]])
    B_all = sim.block_mean(M, groups, exclude_diagonal=False)
    np.testing.assert_allclose(B_all, [[0.75, 0.2], [0.2, 0.7]])
    with pytest.raises(ValueError, match="group 1 is empty"):
        sim.block_mean(M, [[0, 1, 2], []])
    with pytest.raises(ValueError, match=r"expected a square matrix, got shape \(2, 3\)"):
        sim.block_mean(np.zeros((2, 3)), [[0]])


def test_json_float():
    assert sim.json_float(None) is None
    assert sim.json_float(np.float32(0.5)) == 0.5 and type(sim.json_float(np.float32(0.5))) is float
    assert sim.json_float(float("nan")) is None and sim.json_float(float("inf")) is None
    assert sim.json_float(-float("inf")) is None and sim.json_float(0) == 0.0


# --- the stage summary ----------------------------------------------------------------------


def test_identical_cross_orbit_examples_are_capped_and_counted():
    n = 12  # every atom its own orbit, all identical: 66 identical cross-orbit pairs
    m = sim.stage_metrics("gcn.0", np.ones((n, 3)), [0], [1])
    assert m.identical_cross_orbit_pairs == n * (n - 1) // 2
    assert sim.MAX_EXAMPLES == 20 and len(m.identical_cross_orbit_examples) == 20
    assert m.identical_cross_orbit_examples[:3] == ((0, 1), (0, 2), (0, 3))
    assert m.num_orbits == n and m.num_atoms == n


def test_stage_metrics_orbit_extras_and_energy():
    X = np.array([[1.0, 0.0], [1.0, 0.5], [0.0, 2.0]])
    m = sim.stage_metrics("alignn.1", X, [0, 1], [2, 2], orbits=[[0, 1]])
    assert m.within_orbit_max_dev == pytest.approx(0.5)
    assert m.num_orbits == 2 and m.identical_cross_orbit_pairs == 0
    assert m.dirichlet == pytest.approx((5.0 + 3.25) / 3)
    assert m.dirichlet_normalized == pytest.approx(m.dirichlet * 3 / (1 + 1.25 + 4))
    cos = sim.cosine_matrix(X)
    assert m.cross_orbit_cosine == pytest.approx((cos[0, 2] + cos[1, 2]) / 2)
    assert m.mean_raw_corr == pytest.approx(sim.mean_offdiag(sim.raw_correlation(X)))
    assert sim.stage_metrics("embed", X, [], [], orbits=None).within_orbit_max_dev is None
    zero = sim.stage_metrics("embed", np.zeros((2, 2)), [0], [1])
    assert zero.dirichlet_normalized == 0.0 and zero.dirichlet == 0.0


def test_stage_metrics_identical_tolerances_are_passed_through():
    X = np.array([[1.0], [1.0 + 3e-5]])
    assert sim.stage_metrics("s", X, [], []).identical_cross_orbit_pairs == 0
    assert sim.stage_metrics("s", X, [], [], atol=1e-4).identical_cross_orbit_pairs == 1
    assert sim.stage_metrics("s", X, [], [], rtol=1e-4).identical_cross_orbit_pairs == 1


def test_stage_json_is_the_report_contract_then_the_extras():
    X = np.array([[1.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 3.0, 1.0], [2.0, 1.0, 0.0]])
    m = sim.stage_metrics("gcn.1", X, [0, 1, 2], [1, 2, 3], orbits=[[0], [1], [2, 3]])
    j = m.to_json()
    assert list(j) == [
        "name",
        "mean_raw_corr",
        "mean_centered_corr",
        "mad",
        "dirichlet",
        "effective_rank",
        "numerical_rank",
        "cross_orbit_raw_corr",
        "cross_orbit_centered_corr",
        "cross_orbit_cosine",
        "within_orbit_max_dev",
        "identical_cross_orbit_pairs",
        "identical_cross_orbit_examples",
        "dirichlet_normalized",
        "num_atoms",
        "num_orbits",
        "pairs",
    ]
    assert j["pairs"] is None  # small cells: every pair, nothing sampled
    contract = list(sim.StageMetrics.CONTRACT_FIELDS)
    assert list(j)[: len(contract)] == contract
    for key in [*list(j)[1:11], "dirichlet_normalized"]:
        assert j[key] == getattr(m, key) and type(j[key]) is float, key
    assert j["name"] == "gcn.1" and j["num_atoms"] == 4 and j["num_orbits"] == 3
    assert j["identical_cross_orbit_pairs"] == 1
    assert j["identical_cross_orbit_examples"] == [[0, 1]]
    assert j["within_orbit_max_dev"] == pytest.approx(2.0)


def test_block_means_and_offdiagonal_means_need_a_square_matrix():
    with pytest.raises(ValueError, match=r"expected a square matrix, got shape \(3,\)"):
        sim.block_mean(np.zeros(3), [[0]])
    reps, _ = sim.orbit_representatives(np.ones((3, 2)), None)
    assert reps.dtype == np.int64


# --- rounding rules at their edges -------------------------------------------------------------


def test_parallel_and_opposite_rows_are_exactly_one_and_minus_one():
    u = np.random.default_rng(3).standard_normal(5)  # unit rows' dot products pass ±1 here
    X = np.vstack([u, 3 * u, -2 * u])
    expected = [[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
    assert sim.cosine_matrix(X).tolist() == expected
    assert sim.raw_correlation(X - X.mean(axis=1, keepdims=True)).tolist() == expected


def test_constant_rows_whose_mean_rounds_are_still_constant_rows():
    # The mean of three 0.1 is just above 0.1 and of three 0.7 just below: constant all the same.
    X = np.array([[0.1, 0.1, 0.1], [0.7, 0.7, 0.7], [0.1, 0.1, 0.1], [1.0, 2.0, 4.0]])
    R = sim.raw_correlation(X)
    assert R.tolist() == [
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]


def test_a_constant_feature_column_centres_to_exact_zeros():
    X = np.array([[1.0, 0.1], [2.0, 0.1], [4.0, 0.1]])  # mean of the 0.1 column rounds
    assert sim.centered(X)[:, 1].tolist() == [0.0, 0.0, 0.0]


def test_a_rank_one_cell_has_rank_exactly_one():
    X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]] * 3)  # centred: one direction, plus rounding
    assert (sim.effective_rank(X), sim.numerical_rank(X)) == (1.0, 1.0)
    assert sim.stage_metrics("s", X, [], []).effective_rank == 1.0


def test_a_collapsed_cell_within_the_centring_tolerance_has_rank_one():
    X = np.ones((5, 4)) + 1e-13 * np.random.default_rng(2).standard_normal((5, 4))
    assert (sim.effective_rank(X), sim.numerical_rank(X)) == (1.0, 1.0)


def test_a_zero_row_past_the_feature_count_is_still_a_zero_row():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])  # N=5 > D=2
    C = sim.cosine_matrix(X)
    assert C[3, 4] == 1.0 and C[3, :3].tolist() == [0.0, 0.0, 0.0]


def test_an_empty_orbit_is_skipped_not_the_end_of_the_list():
    assert sim.complete_orbits([[0], [], [1, 2]], 4) == [[0], [1, 2], [3]]


def test_identical_elementwise_is_inclusive_and_judged_per_pair():
    assert sim.identical_pairs([[0.0], [0.5]], atol=0.5, rtol=0.0) == [(0, 1)]
    # (0, 1) identical; (2, 3) a prefilter candidate (3 * atol in one of 16 elements, within
    # sqrt(16) * atol) that the elementwise check refuses; both in one verification chunk.
    d = 16
    X = np.zeros((4, d))
    X[1, 0] = 1e-4
    X[2:, 1] = 5.0
    X[3, 0] = 3e-3
    assert sim.identical_pairs(X, atol=1e-3, rtol=0.0) == [(0, 1)]


def test_a_destination_past_the_last_atom_is_refused_even_when_others_are_in_range():
    with pytest.raises(ValueError, match="edge index out of range for 3 atoms"):
        sim.dirichlet_energy(np.eye(3), [0, 1], [1, 3])
    with pytest.raises(ValueError, match="edge index out of range for 3 atoms"):
        sim.dirichlet_energy(np.eye(3), [0, 3], [1, 2])
