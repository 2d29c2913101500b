"""Similarity, over-smoothing and rank metrics: known answers, degenerate inputs, speed."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from fga_tui.diagnostics import similarity as sim

ORBITS_6 = [[0, 1, 2, 3], [4], [5]]


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _ring(n: int) -> tuple[np.ndarray, np.ndarray]:
    src = np.arange(n)
    dst = (src + 1) % n
    return np.concatenate([src, dst]), np.concatenate([dst, src])


def test_identical_rows_read_as_full_collapse():
    X = np.tile([1.0, 2.0, 3.0, 4.0], (5, 1))
    src, dst = _ring(5)
    np.testing.assert_array_equal(sim.raw_correlation(X), np.ones((5, 5)))
    np.testing.assert_array_equal(sim.centered_correlation(X), np.ones((5, 5)))
    np.testing.assert_array_equal(sim.centered_cosine(X), np.ones((5, 5)))
    assert sim.mad(X) == 0.0
    assert sim.dirichlet_energy(X, src, dst) == 0.0
    assert sim.dirichlet_normalized(X, src, dst) == 0.0
    assert sim.effective_rank(X) == 1.0
    assert sim.numerical_rank(X) == 1.0
    assert len(sim.identical_pairs(X)) == 10


def test_identical_float32_rows_with_awkward_values_are_still_exactly_collapsed():
    row = np.random.default_rng(1).normal(size=64).astype(np.float32) * 0.1 + 0.3
    X = np.tile(row, (7, 1))
    np.testing.assert_array_equal(sim.centered_correlation(X), np.ones((7, 7)))
    assert sim.effective_rank(X) == 1.0


def test_orthogonal_one_hot_rows():
    X = np.eye(4)
    cos = sim.cosine_matrix(X)
    np.testing.assert_allclose(cos, np.eye(4), atol=1e-15)
    assert sim.mad(X) == 1.0
    # e_i centred over its 4 features is (3, -1, -1, -1)/4: correlation -1/3 between any two.
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(sim.raw_correlation(X)[off], -1 / 3, rtol=1e-12)
    np.testing.assert_allclose(sim.centered_correlation(X)[off], -1 / 3, rtol=1e-12)
    # X_c = I - J/4 has singular values (1, 1, 1, 0): both ranks are exactly N - 1 = 3.
    assert sim.effective_rank(X) == pytest.approx(3.0, rel=1e-12)
    assert sim.numerical_rank(X) == pytest.approx(3.0, rel=1e-12)


def test_one_hot_rows_in_wider_space_have_rank_n_minus_one():
    X = np.eye(5)[:3]
    assert sim.effective_rank(X) == pytest.approx(2.0, rel=1e-12)
    assert sim.numerical_rank(X) == pytest.approx(2.0, rel=1e-12)


def test_dirichlet_two_nodes_both_directions():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert sim.dirichlet_energy(X, [0, 1], [1, 0]) == 2.0  # (2 + 2) / 2
    assert sim.dirichlet_normalized(X, [0, 1], [1, 0]) == 2.0  # ||X||²/N = 1


def test_dirichlet_counts_repeated_edges_and_ignores_self_images():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert sim.dirichlet_energy(X, [0, 1, 0, 0, 1], [1, 0, 1, 0, 1]) == 3.0
    assert sim.dirichlet_energy(X, [], []) == 0.0
    with pytest.raises(ValueError):
        sim.dirichlet_energy(X, [0], [2])


def test_dirichlet_is_not_scale_free_but_normalized_is():
    X = np.random.default_rng(0).normal(size=(6, 3))
    src, dst = _ring(6)
    assert sim.dirichlet_energy(3 * X, src, dst) == pytest.approx(
        9 * sim.dirichlet_energy(X, src, dst)
    )
    assert sim.dirichlet_normalized(3 * X, src, dst) == pytest.approx(
        sim.dirichlet_normalized(X, src, dst)
    )


def test_shared_mean_makes_raw_correlation_one_but_centred_minus_one():
    rng = np.random.default_rng(0)
    common = 100.0 * np.arange(1, 33)
    X = common + 0.01 * rng.normal(size=(2, 32))
    assert sim.raw_correlation(X)[0, 1] > 0.9999
    assert sim.centered_correlation(X)[0, 1] == pytest.approx(-1.0, abs=1e-12)
    assert sim.centered_cosine(X)[0, 1] == pytest.approx(-1.0, abs=1e-12)


def test_raw_correlation_matches_corrcoef_and_handles_constant_rows():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 7))
    np.testing.assert_allclose(sim.raw_correlation(X), np.corrcoef(X), atol=1e-12)
    X[1] = 3.0
    X[3] = 3.0
    X[4] = 0.0
    R = sim.raw_correlation(X)
    assert R[1, 3] == 1.0  # the same constant row
    assert R[1, 4] == 0.0 and R[1, 0] == 0.0
    assert np.all(np.diag(R) == 1.0)


def test_zero_rows_in_cosine_and_mad():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    cos = sim.cosine_matrix(X)
    assert cos[0, 1] == 1.0 and cos[0, 2] == 0.0
    # Atoms 0, 1 are equal (distance 0, dropped); each is at distance 1 from atom 2.
    assert sim.mad(X) == 1.0


def test_mad_drops_symmetry_identical_atoms_unless_asked():
    X = np.array([[1.0, 0, 0]] * 4 + [[0, 1.0, 0], [0, 0, 1.0]])
    assert sim.mad(X) == 1.0
    # Without dropping: atoms 0-3 average 2/5, atoms 4 and 5 average 1 -> (4 * 0.4 + 2) / 6.
    assert sim.mad(X, drop_zeros=False) == pytest.approx(0.6)


def test_orbit_aware_means_on_six_atoms():
    i, j = np.indices((6, 6))
    M = (i + j).astype(float)
    assert sim.mean_offdiag(M) == 5.0  # each index is in 5 of the 15 pairs: 5 * 15 / 15
    assert sim.mean_offdiag(M, "within_orbit", ORBITS_6) == 3.0  # 6 pairs among 0..3
    assert sim.mean_offdiag(M, "cross_orbit", ORBITS_6) == pytest.approx(57 / 9)
    assert sim.mean_offdiag(M, "cross_orbit", [[0, 1, 2, 3, 4, 5]]) is None
    assert sim.mean_offdiag(np.ones((1, 1))) is None


def test_block_mean_orbit_by_orbit():
    i, j = np.indices((6, 6))
    B = sim.block_mean((i + j).astype(float), ORBITS_6)
    assert B[0, 0] == 3.0  # distinct members only
    assert B[0, 1] == 5.5 and B[1, 0] == 5.5
    assert B[1, 1] == 8.0  # singleton: its own diagonal value
    assert B[1, 2] == 9.0
    assert sim.block_mean((i + j).astype(float), ORBITS_6, exclude_diagonal=False)[0, 0] == 3.0


def test_group_by_label_and_representatives():
    names, groups = sim.group_by_label(["Na", "Na", "Cl", "Na"])
    assert names == ["Na", "Cl"] and groups == [[0, 1, 3], [2]]
    X = np.arange(12.0).reshape(6, 2)
    reps, rows = sim.orbit_representatives(X, [[3, 1], [0, 2]])
    assert reps.tolist() == [1, 0, 4, 5]  # unlisted atoms become singleton orbits
    np.testing.assert_array_equal(rows, X[[1, 0, 4, 5]])
    with pytest.raises(ValueError):
        sim.complete_orbits([[0, 1], [1]], 3)


def test_identical_pairs_tolerance():
    X = np.array([[1.0, 2.0], [1.0 + 5e-7, 2.0], [1.1, 2.0], [1000.0, 1.0], [1000.005, 1.0]])
    assert sim.identical_pairs(X) == [(0, 1), (3, 4)]  # 5e-3 is within rtol at 1000
    assert sim.identical_pairs(X, atol=1e-9, rtol=0.0) == []


def test_stage_metrics_separates_symmetry_from_collapse():
    rng = np.random.default_rng(3)
    a, b, c = rng.normal(size=(3, 8))
    src, dst = _ring(6)
    healthy = sim.stage_metrics("gcn.0", np.array([a, a, a, a, b, c]), src, dst, ORBITS_6)
    assert healthy.within_orbit_max_dev == 0.0
    assert healthy.identical_cross_orbit_pairs == 0
    assert healthy.num_orbits == 3
    collapsed = sim.stage_metrics("gcn.1", np.array([a, a, a, a, b, b]), src, dst, ORBITS_6)
    assert collapsed.identical_cross_orbit_pairs == 1
    assert collapsed.identical_cross_orbit_examples == ((4, 5),)
    # Two distinct rows a (x4), b (x2): centred they are (a - b)/3 and 2(b - a)/3, correlation -1;
    # the 9 cross-orbit pairs are 8 such pairs and the identical pair (4, 5).
    assert collapsed.cross_orbit_centered_corr == pytest.approx(-7 / 9)


def test_stage_metrics_json_contract_and_no_nan():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(6, 5))
    src, dst = _ring(6)
    m = sim.stage_metrics("embed", X, src, dst, ORBITS_6)
    data = m.to_json()
    assert list(data)[:7] == list(sim.StageMetrics.CONTRACT_FIELDS)
    assert data["mean_raw_corr"] == pytest.approx(sim.mean_offdiag(np.corrcoef(X)))
    assert data["dirichlet"] == pytest.approx(sim.dirichlet_energy(X, src, dst))
    json.dumps(data, allow_nan=False)


def test_single_atom_is_fully_defined():
    X = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    m = sim.stage_metrics("embed", X, [0, 0], [0, 0], [[0]])
    assert (m.mean_raw_corr, m.mean_centered_corr, m.mad, m.dirichlet) == (1.0, 1.0, 0.0, 0.0)
    assert (m.effective_rank, m.numerical_rank, m.num_atoms) == (1.0, 1.0, 1)
    assert m.cross_orbit_raw_corr is None and m.within_orbit_max_dev is None
    json.dumps(m.to_json(), allow_nan=False)


def test_diagnostics_import_neither_torch_nor_textual():
    code = (
        "import sys\n"
        "import fga_tui.diagnostics.similarity, fga_tui.diagnostics.attention\n"
        "import fga_tui.diagnostics.words\n"
        "bad = [m for m in ('torch', 'textual') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
