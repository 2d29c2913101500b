"""Attention numbers at their edges: JSD and entropy stay in [0, 1] where rounding leaves them,
float32 input reads like its float64 copy, every number skips masked tokens, and the large-cell
paths switch at their exact boundaries with reproducible samples and exact standard errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fga_tui.diagnostics import attention as att


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


#: Three rows on disjoint tokens: their JSD is 1 bit, but the float64 sums give 1 + 4e-16 for
#: the pairs (0, 1) and (0, 2) before clipping (on x86-64 with numpy 2.4; the tests below hold
#: wherever the rounding falls).
DISJOINT = np.zeros((3, 9))
DISJOINT[0, 0:3] = np.array([8, 1, 2]) / 11
DISJOINT[1, 3:6] = np.array([3, 2, 8]) / 13
DISJOINT[2, 6:9] = np.array([8, 6, 1]) / 15


def _near_twins() -> np.ndarray:
    """Two rows one ulp apart on two tokens: their float64 JSD comes out -2.2e-16 unclipped
    (same platform note as ``DISJOINT``)."""
    p = np.array([0.6, 0.2, 0.2])
    q = p.copy()
    q[0], q[1] = np.nextafter(q[0], 2.0), np.nextafter(q[1], -1.0)
    return np.stack([p, q])


def _sampled_values(rows: np.ndarray, a: list[int], b: list[int]) -> np.ndarray:
    """The sampled path's JSD of the row pairs (a[k], b[k])."""
    P = att._atom_rows(rows, None)
    return att._pair_jsd(P, -att._plogp2(P).sum(axis=1), np.array(a), np.array(b))


def _small_limits(monkeypatch, exact: int, orbits: int) -> None:
    monkeypatch.setattr(att, "EXACT_MAX_ATOMS", exact)
    monkeypatch.setattr(att, "MAX_REP_ORBITS", orbits)


# --- [0, 1] where rounding leaves it --------------------------------------------------------------


def test_uniform_rows_have_entropy_one_and_never_more():
    """For 11, 13 or 27 tokens the float64 sum rounds above 1; the clip keeps [0, 1]."""
    for length in range(2, 64):
        h = att.row_entropy(np.full((1, length), 1.0 / length))[0]
        assert 1.0 - 1e-15 <= h <= 1.0, length


def test_disjoint_rows_differ_by_exactly_one_bit_never_more():
    J = att.pairwise_jsd(DISJOINT)
    off = J[np.triu_indices(3, 1)]
    assert np.all((off <= 1.0) & (off >= 1.0 - 1e-15))
    assert 1.0 - 1e-15 <= att.mean_pairwise_jsd(DISJOINT) <= 1.0


def test_rows_one_ulp_apart_differ_by_zero_never_less():
    J = att.pairwise_jsd(_near_twins())
    assert J.min() >= 0.0 and J[0, 1] <= 1e-15
    assert 0.0 <= att.mean_pairwise_jsd(_near_twins()) <= 1e-15


def test_sampled_jsd_of_disjoint_rows_is_one_never_more(monkeypatch):
    """Every sampled pair is a disjoint pair: each JSD is 1 (clipped, never above), so the
    mean is 1 (no pair left uncomputed) with a standard error of rounding size."""
    _small_limits(monkeypatch, exact=2, orbits=2)
    jsd, cross, how = att.jsd_means(DISJOINT)
    assert how["method"] == "sampled"
    for value in (jsd, cross):
        assert 1.0 - 1e-15 <= value <= 1.0
    assert how["stderr"]["jsd"] <= 1e-15 and how["stderr"]["cross_orbit_jsd"] <= 1e-15
    # and pair by pair (a mean of values an ulp above 1 could still round to 1)
    values = _sampled_values(DISJOINT, [0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1])
    assert values.max() <= 1.0 and values.min() >= 1.0 - 1e-15


def test_sampled_jsd_of_rows_one_ulp_apart_is_zero_never_less(monkeypatch):
    _small_limits(monkeypatch, exact=3, orbits=1)
    jsd, cross, how = att.jsd_means(np.tile(_near_twins(), (2, 1)))
    assert how["method"] == "sampled"
    assert 0.0 <= jsd <= 1e-15 and 0.0 <= cross <= 1e-15
    values = _sampled_values(_near_twins(), [0, 1], [1, 0])
    assert values.min() >= 0.0 and values.max() <= 1e-15


# --- input types and shapes -------------------------------------------------------------------


def test_float32_heads_are_averaged_in_float64():
    """Traces store attention as float32; the head average and renormalisation run in float64,
    so every number equals that of the float64 copy bit for bit."""
    rng = np.random.default_rng(11)
    A = rng.dirichlet(np.ones(6), size=(4, 5)).astype(np.float32)  # [H=4, N=5, L=6]
    A64 = A.astype(np.float64)
    np.testing.assert_array_equal(att.pairwise_jsd(A), att.pairwise_jsd(A64))
    assert att.jsd_means(A, orbits=[[0, 1], [2], [3, 4]]) == att.jsd_means(
        A64, orbits=[[0, 1], [2], [3, 4]]
    )
    np.testing.assert_array_equal(att.row_entropy(A), att.row_entropy(A64))
    np.testing.assert_array_equal(att.row_entropy(A[0]), att.row_entropy(A64[0]))


def test_float32_head_average_decides_a_near_tie_like_float64():
    """Token 1 outweighs token 0 by 2^-25 on average: float64 sees it, a float32 mean rounds
    1 + 2^-24 to 1 and would call it a tie (won by token 0)."""
    A = np.array([[[0.5, 0.5]], [[0.5, 0.5 + 2.0**-24]]], dtype=np.float32)
    assert att.top_tokens(A).tolist() == [1]
    assert att.modal_top_token(A) == 1


def test_massless_rows_become_uniform_in_every_shape():
    """A row with no weight on the valid tokens reads as uniform: entropy 1 whatever the axes
    (here [H, N, L] with N = 5 atoms over L = 3 tokens, and many such rows)."""
    A = np.zeros((2, 5, 3))
    A[0, 0] = [0.5, 0.25, 0.25]
    want = np.ones((2, 5))
    want[0, 0] = 1.5 / np.log2(3)
    np.testing.assert_allclose(att.row_entropy(A), want, rtol=1e-15)
    many = np.zeros((20_000, 8))
    np.testing.assert_array_equal(att._distributions(many, None), np.full((20_000, 8), 0.125))
    np.testing.assert_array_equal(att.row_entropy(many), np.ones(20_000))


def test_a_mask_of_one_batch_row_is_flattened():
    A = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    mask = np.array([[True, True, False]])  # [1, L]: a batch of one
    assert att.valid_mask(mask, 3).shape == (3,)
    assert att.top_tokens(A, mask).tolist() == [1, 0]


def test_the_no_valid_token_message_is_exact():
    with pytest.raises(ValueError, match=r"^mask marks no valid token$"):
        att.valid_mask([False, False], 2)


# --- every number skips masked tokens and honours orbits --------------------------------------


def test_argmax_agreement_skips_a_masked_token_that_wins_for_one_atom():
    """Token 2 is masked; it is atom 0's heaviest, not atom 1's. On the valid tokens both read
    token 0: agreement 1.0 (0.5 if the masked token counted)."""
    A = np.array([[[0.3, 0.1, 0.6], [0.5, 0.2, 0.3]]])
    mask = [1, 1, 0]
    assert att.summarize_attention(A, mask, orbits=[[0], [1]]).argmax_agreement == 1.0
    assert att.divergence_profile({"gcn.0": A}, mask, [[0], [1]])[0].argmax_agreement == 1.0
    assert att.summarize_attention(A, orbits=[[0], [1]]).argmax_agreement == 0.5


def test_cross_orbit_row_diff_in_the_summary_uses_the_orbits():
    """Atoms 0 and 1 (one orbit) differ by 0.8; each differs from atom 2 by 0.4 only."""
    A = np.array([[[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]]])
    s = att.summarize_attention(A, orbits=[[0, 1], [2]])
    assert s.max_abs_row_diff == pytest.approx(0.8)
    assert s.cross_orbit_max_abs_row_diff == pytest.approx(0.4)


def test_head_averaged_top_token_normalises_each_head_before_averaging():
    """Head 0 spreads its weight over tokens 0, 2, 3, 4 (0.25 each); head 1 puts 0.73 on token 1
    and 0.27 on token 0. Averaged: token 1 (0.37) over token 0 (0.26). Dividing every exp by one
    sum over both heads would weigh them as 1 + e^-1 (token 0) against 1 + e^-10 (token 1)."""
    Q = np.ones((2, 1, 1))
    K = np.array([[10.0, 0.0, 9.99, 9.99, 9.99], [4.0, 5.0, -5.0, -5.0, -5.0]])[:, :, None]
    d = att.logit_decomposition(Q, K)
    assert d.shared_top_token == 1


def test_decomposition_json_keeps_true_flags():
    Q = np.array([[1.0, 0.0], [2.0, 0.0]])
    K = np.array([[1.0, 0.0], [0.0, 1.0]])  # both atoms and the shared query pick token 0
    d = att.logit_decomposition(Q, K)
    assert d.same_top_token_if_shared_only and d.per_head_same_top_token == (True,)
    j = d.to_json()
    assert j["same_top_token_if_shared_only"] is True
    assert j["per_head_same_top_token"] == [True]


# --- large cells: path boundaries, seeds, standard errors ---------------------------------------


def _distinct_rows(n: int, length: int = 6, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(length), size=n)


def _orbit_rows(orbits: int, size: int, length: int = 6) -> tuple[np.ndarray, list[list[int]]]:
    P = np.repeat(_distinct_rows(orbits, length), size, axis=0)
    return P, [list(range(size * g, size * g + size)) for g in range(orbits)]


def test_every_pair_up_to_exact_max_atoms_inclusive(monkeypatch):
    _small_limits(monkeypatch, exact=4, orbits=1)
    assert att.jsd_means(_distinct_rows(4))[2] is None
    assert att.jsd_means(_distinct_rows(5))[2]["method"] == "sampled"


def test_orbit_representatives_up_to_max_rep_orbits_inclusive(monkeypatch):
    _small_limits(monkeypatch, exact=2, orbits=3)
    P, groups = _orbit_rows(3, 2)
    assert att.jsd_means(P, orbits=groups)[2] == {"method": "orbits", "rows": 3}
    P, groups = _orbit_rows(4, 2)
    assert att.jsd_means(P, orbits=groups)[2]["method"] == "sampled"


def test_orbit_path_cross_orbit_jsd_needs_two_orbits(monkeypatch):
    _small_limits(monkeypatch, exact=2, orbits=8)
    P, groups = _orbit_rows(2, 3)
    jsd, cross, how = att.jsd_means(P, orbits=groups)
    assert how == {"method": "orbits", "rows": 2}
    J = att.pairwise_jsd(P)
    assert cross == pytest.approx(J[0, 3]) and jsd == pytest.approx(J[np.triu_indices(6, 1)].mean())
    P, groups = _orbit_rows(1, 4)
    assert att.jsd_means(P, orbits=groups) == (0.0, None, {"method": "orbits", "rows": 1})


def test_sampled_path_with_one_orbit_has_no_cross_orbit_jsd(monkeypatch):
    _small_limits(monkeypatch, exact=2, orbits=8)
    jsd, cross, how = att.jsd_means(_distinct_rows(4), orbits=[[0, 1, 2, 3]])
    assert how["method"] == "sampled" and cross is None and jsd > 0.0
    assert list(how["stderr"]) == ["jsd"]


def test_orbit_rows_count_as_identical_within_1e9_plus_1e6_of_the_largest_weight(monkeypatch):
    """The orbit path needs an orbit's rows equal within 1e-9 + 1e-6 * 0.5 here: rows 4e-7
    apart qualify, rows 2e-6 apart are sampled."""
    _small_limits(monkeypatch, exact=2, orbits=8)
    p = np.array([0.5, 0.3, 0.2])
    for step, method in ((4e-7, "orbits"), (2e-6, "sampled")):
        q = p + np.array([step, -step, 0.0])
        P = np.stack([p, q, [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
        assert att.jsd_means(P, orbits=[[0, 1], [2, 3]])[2]["method"] == method, step


def test_sampled_standard_errors_are_those_of_the_sampled_pairs(monkeypatch):
    """Two one-hot rows: each sampled pair's JSD is 0 or 1, so a mean m over S pairs has the
    standard error sqrt(m (1 - m) S / (S - 1)) / sqrt(S) exactly (sample std, ddof=1)."""
    _small_limits(monkeypatch, exact=4, orbits=1)
    P = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    jsd, cross, how = att.jsd_means(P)
    S = att.SAMPLE_PAIRS
    assert how["pairs"] == S
    for name, m in (("jsd", jsd), ("cross_orbit_jsd", cross)):
        assert m == pytest.approx(12 / 20, abs=0.02)  # 3 x 2 of the 20 ordered pairs, twice
        want = np.sqrt(m * (1 - m) * S / (S - 1)) / np.sqrt(S)
        assert how["stderr"][name] == pytest.approx(want, rel=1e-12)
    assert att.jsd_means(P) == (jsd, cross, how)  # the seed is fixed by the cell


def test_divergence_profile_reports_how_each_stage_was_measured(monkeypatch):
    _small_limits(monkeypatch, exact=2, orbits=8)
    P, groups = _orbit_rows(3, 2)
    point = att.divergence_profile({"gcn.0": P[None]}, None, groups)[0]
    assert point.pairs == {"method": "orbits", "rows": 3}
    assert (point.jsd, point.cross_orbit_jsd) == att.jsd_means(P, orbits=groups)[:2]


# --- the pair sampler ----------------------------------------------------------------------------


def test_sampled_pairs_are_uniform_over_ordered_pairs():
    labels = np.arange(3)
    a, b = att._sample_pairs(labels, 60_000, False, np.random.default_rng(0))
    assert np.all(a != b)
    counts = np.bincount(3 * a + b, minlength=9).reshape(3, 3)
    share = counts / counts.sum()
    np.testing.assert_array_equal(np.diag(counts), [0, 0, 0])
    off = share[~np.eye(3, dtype=bool)]
    np.testing.assert_allclose(off, 1 / 6, atol=0.01)


def test_cross_orbit_pairs_are_uniform_over_the_atoms_outside_the_orbit():
    """Orbits {0}, {1}, {2, 3}: atom 2's partners are 0 and 1, equally likely, whichever way
    the first draw and the redraws go."""
    labels = np.array([0, 1, 2, 2])
    a, b = att._sample_pairs(labels, 80_000, True, np.random.default_rng(1))
    assert np.all(labels[a] != labels[b])
    for first in (2, 3):
        partners = b[a == first]
        assert np.mean(partners == 0) == pytest.approx(0.5, abs=0.02)
        assert np.mean(partners == 1) == pytest.approx(0.5, abs=0.02)
    # atom 0's partners: 1, 2, 3 equally likely
    partners = b[a == 0]
    for other in (1, 2, 3):
        assert np.mean(partners == other) == pytest.approx(1 / 3, abs=0.02)
