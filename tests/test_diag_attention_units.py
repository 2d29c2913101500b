"""Attention metrics at their edges: masks, renormalisation, chunking, ties, pair selections,
the logit split per head, and the uniform-stage threshold on both sides."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fga_tui.diagnostics import attention as att
from fga_tui.diagnostics.attention import DivergencePoint


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- inputs ---------------------------------------------------------------------------------


def test_attention_shapes_are_checked_and_one_head_is_promoted():
    A = att.as_attention([[0.5, 0.5]])
    assert A.shape == (1, 1, 2) and A.dtype == np.float64
    with pytest.raises(ValueError, match=r"attention must be \[H, N, L\] with no empty axis"):
        att.as_attention([0.5, 0.5])
    with pytest.raises(ValueError, match=r"got \(1, 0, 2\)"):
        att.as_attention(np.zeros((1, 0, 2)))
    with pytest.raises(ValueError, match=r"got \(2, 1, 0\)"):
        att.as_attention(np.zeros((2, 1, 0)))


def test_masks_are_checked():
    assert att.valid_mask(None, 3).tolist() == [True, True, True]
    assert att.valid_mask([2, 0, 1], 3).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="mask has 2 entries for 3 tokens"):
        att.valid_mask([1, 1], 3)
    with pytest.raises(ValueError, match="mask marks no valid token"):
        att.valid_mask([0, 0, 0], 3)


def test_head_average_is_the_mean_over_heads():
    A = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[0.5, 0.5]]])
    np.testing.assert_allclose(att.head_average(A), [[0.5, 0.5]])


def test_rows_are_clipped_renormalised_on_valid_tokens_and_massless_rows_become_uniform():
    P = att._distributions(np.array([[-0.1, 0.3, 0.1, 9.0], [0.0, 0.0, 0.0, 1.0]]), [1, 1, 1, 0])
    np.testing.assert_allclose(P, [[0.0, 0.75, 0.25], [1 / 3, 1 / 3, 1 / 3]])


def test_atom_rows_refuse_other_ranks():
    with pytest.raises(ValueError, match=r"expected \[N, L\] or \[H, N, L\] attention"):
        att.pairwise_jsd(np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="got shape"):
        att.pairwise_jsd(np.ones(3))


# --- entropy and divergence -------------------------------------------------------------------


def test_entropy_is_normalised_by_the_number_of_valid_tokens():
    A = np.array([[0.5, 0.5, 0.0, 0.0]])
    assert att.row_entropy(A)[0] == pytest.approx(0.5)  # 1 bit of log2(4) = 2 bits
    assert att.row_entropy(A, [1, 1, 0, 0])[0] == pytest.approx(1.0)
    assert att.row_entropy(np.array([[[0.2, 0.8]], [[0.9, 0.1]]]), [1, 0]).shape == (2, 1)


def test_jsd_of_repeated_rows_maps_back_to_every_atom():
    rows = np.array([[1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    J = att.pairwise_jsd(rows)
    h_m = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert J[0, 2] == 0.0 and J[2, 0] == 0.0
    assert J[0, 1] == pytest.approx(h_m - 0.5) and J[2, 1] == J[0, 1] and J[1, 3] == J[1, 2 + 1]
    assert J[0, 3] == pytest.approx(1.0) and J[3, 2] == J[0, 3]
    np.testing.assert_array_equal(J, J.T)
    assert np.all(np.diag(J) == 0.0)


def test_jsd_in_tiny_chunks_equals_one_chunk(monkeypatch):
    rng = np.random.default_rng(3)
    rows = rng.dirichlet(np.ones(5), size=7)
    whole = att.pairwise_jsd(rows)
    for elements in (1, 5, 11, 36):
        monkeypatch.setattr(att, "_CHUNK_ELEMENTS", elements)
        np.testing.assert_allclose(att.pairwise_jsd(rows), whole, rtol=0, atol=1e-15)


def test_jsd_uses_the_valid_tokens_only():
    rows = np.array([[0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    assert att.pairwise_jsd(rows, [1, 0, 0])[0, 1] == 0.0
    assert att.pairwise_jsd(rows)[0, 1] == pytest.approx(0.5)


def test_mean_jsd_of_no_pair():
    one = np.array([[0.3, 0.7]])
    assert att.mean_pairwise_jsd(one) == 0.0
    assert att.mean_pairwise_jsd(one, pairs="cross_orbit") is None
    assert att.mean_pairwise_jsd(np.eye(2), pairs="within_orbit", orbits=[[0], [1]]) is None
    assert att.mean_pairwise_jsd(np.eye(2), pairs="within_orbit", orbits=[[0, 1]]) == 1.0


# --- top tokens -----------------------------------------------------------------------------


def test_top_tokens_index_the_full_text_skip_masked_tokens_and_take_the_first_tie():
    A = np.array([[0.1, 0.5, 0.2, 0.2], [0.3, 0.1, 0.3, 0.3], [0.05, 0.9, 0.02, 0.03]])
    assert att.top_tokens(A).tolist() == [1, 0, 1]
    assert att.top_tokens(A, [1, 0, 1, 1]).tolist() == [2, 0, 0]
    heads = np.stack([A, A[::-1]])
    assert att.top_tokens(heads).tolist() == att.top_tokens(heads.mean(axis=0)).tolist()


def test_modal_top_token_and_agreement():
    A = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    assert att.modal_top_token(A) == 1 and att.argmax_agreement(A) == 0.5
    tie = np.array([[0, 0, 1], [0, 1, 0]], dtype=float)
    assert att.modal_top_token(tie) == 1  # tie between tokens 1 and 2: the lower index
    assert att.argmax_agreement(np.array([[0.2, 0.8]])) == 1.0


# --- max_abs_row_diff ---------------------------------------------------------------------------


def test_max_abs_row_diff_by_pair_selection():
    P = np.array(
        [
            [0.10, 0.90],  # orbit 0
            [0.40, 0.60],  # orbit 0
            [0.35, 0.65],  # orbit 1
            [0.30, 0.70],  # orbit 2
        ]
    )
    orbits = [[0, 1], [2], [3]]
    assert att.max_abs_row_diff(P) == pytest.approx(0.30)
    assert att.max_abs_row_diff(P, pairs="within_orbit", orbits=orbits) == pytest.approx(0.30)
    # cross-orbit: |0.10 - 0.35| = 0.25 is the largest; 0.10 vs 0.40 is within one orbit
    assert att.max_abs_row_diff(P, pairs="cross_orbit", orbits=orbits) == pytest.approx(0.25)
    assert att.max_abs_row_diff(P[:1]) is None
    assert att.max_abs_row_diff(P, pairs="cross_orbit", orbits=[[0, 1, 2, 3]]) is None
    assert att.max_abs_row_diff(P, pairs="within_orbit", orbits=None) is None
    with pytest.raises(ValueError, match="pairs must be 'all', 'cross_orbit' or 'within_orbit'"):
        att.max_abs_row_diff(P, pairs="some")


def test_cross_orbit_row_diff_when_the_overall_minimum_sits_in_the_hottest_orbit():
    """Orbit 0 holds both the max (0.9) and the min (0.1) of token 0: its max pairs with the
    *other* orbits' minimum (0.5), and its min (0.1) with their maximum (0.6)."""
    P = np.array([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5], [0.6, 0.4]])
    orbits = [[0, 1], [2], [3]]
    labels = [0, 0, 1, 2]
    brute = max(
        abs(P[i, t] - P[j, t])
        for i in range(4)
        for j in range(4)
        for t in range(2)
        if labels[i] != labels[j]
    )
    assert brute == pytest.approx(0.5)
    assert att.max_abs_row_diff(P, pairs="cross_orbit", orbits=orbits) == pytest.approx(brute)
    swapped = P[[2, 3, 0, 1]]  # the same cell listed in another order
    value = att.max_abs_row_diff(swapped, pairs="cross_orbit", orbits=[[0], [1], [2, 3]])
    assert value == pytest.approx(brute)


# --- logit decomposition --------------------------------------------------------------------


def test_logit_decomposition_per_head_and_scale():
    # Head 0: atoms share their query exactly (fraction 1). Head 1: zero-mean queries (0).
    K = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]] * 2)  # [H=2, L=3, d=2]
    Q = np.array([[[2.0, 0.0], [2.0, 0.0]], [[1.0, 0.0], [-1.0, 0.0]]])  # [H=2, N=2, d=2]
    d = att.logit_decomposition(Q, K)
    assert d.per_head_shared_fraction == (1.0, 0.0)
    assert d.per_head_shared_spread[0] == pytest.approx(np.var([2.0, 0.0, 2.0]))
    assert d.per_head_atom_spread[1] == pytest.approx(np.mean([1.0, 0.0, 1.0]))
    assert d.shared_spread == pytest.approx(np.mean(d.per_head_shared_spread))
    assert d.shared_fraction == pytest.approx(d.shared_spread / (d.shared_spread + d.atom_spread))
    assert d.per_head_same_top_token == (True, False)
    scaled = att.logit_decomposition(Q, K, scale=0.5)
    assert scaled.shared_spread == pytest.approx(0.25 * d.shared_spread)
    assert scaled.per_head_shared_fraction == (1.0, 0.0)


def test_logit_decomposition_masks_tokens_and_names_the_shared_top_token_in_the_full_text():
    K = np.array([[5.0], [1.0], [2.0]])  # token 0 would win, but it is masked
    Q = np.array([[1.0], [1.0]])
    d = att.logit_decomposition(Q, K, [0, 1, 1])
    assert d.shared_top_token == 2
    assert d.same_top_token_if_shared_only and d.shared_top_agreement == 1.0
    assert d.per_head_shared_spread[0] == pytest.approx(np.var([1.0, 2.0]))
    assert d.to_json()["shared_top_token"] == 2


def test_shared_top_agreement_counts_atoms():
    K = np.array([[1.0, 0.0], [0.0, 1.0]])
    Q = np.array([[3.0, 0.0], [3.0, 0.0], [0.0, 9.0]])  # mean (2, 3): shared picks token 1
    d = att.logit_decomposition(Q, K)
    assert d.shared_top_token == 1
    assert d.shared_top_agreement == pytest.approx(1 / 3)
    assert not d.same_top_token_if_shared_only


def test_logit_decomposition_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"need Q \[H, N, d\] and K \[H, L, d\]"):
        att.logit_decomposition(np.ones((2, 3, 4)), np.ones((1, 5, 4)))
    with pytest.raises(ValueError, match="need Q"):
        att.logit_decomposition(np.ones((3, 4)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="need Q"):
        att.logit_decomposition(np.ones(4), np.ones((5, 4)))


# --- summary and stages ---------------------------------------------------------------------


def test_summary_counts_and_decomposition_only_with_both_q_and_k():
    A = np.array(
        [
            [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]],
            [[0.5, 0.4, 0.1], [0.3, 0.6, 0.1]],
        ]
    )
    s = att.summarize_attention(A, [1, 1, 0], orbits=[[0], [1]])
    assert (s.num_heads, s.num_atoms, s.num_valid_tokens) == (2, 2, 2)
    assert not s.degenerate_softmax and s.decomposition is None
    avg = A.mean(axis=0)
    np.testing.assert_allclose(s.entropy, att.row_entropy(avg, [1, 1, 0]))
    assert s.mean_head_entropy == pytest.approx(att.row_entropy(A, [1, 1, 0]).mean())
    assert s.mean_head_entropy < s.mean_entropy  # heads are sharper than their mean
    assert s.cross_orbit_jsd == pytest.approx(s.jsd) and s.jsd > 0
    assert s.top_token == 0 and s.argmax_agreement == 0.5
    Q, K = np.ones((2, 2, 3)), np.ones((2, 3, 3))
    assert att.summarize_attention(A, Q=Q).decomposition is None
    assert att.summarize_attention(A, K=K).decomposition is None
    with_both = att.summarize_attention(A, Q=Q, K=K, scale=2.0)
    assert with_both.decomposition is not None and with_both.decomposition.shared_fraction is None


def test_divergence_profile_keeps_stage_order_and_reads_each_stage():
    same = np.array([[[0.5, 0.5], [0.5, 0.5]]])
    apart = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    profile = att.divergence_profile({"alignn.0": apart, "gcn.0": same}, orbits=[[0], [1]])
    assert [p.stage for p in profile] == ["alignn.0", "gcn.0"]
    assert profile[0].jsd == pytest.approx(1.0) and profile[0].cross_orbit_jsd == pytest.approx(1.0)
    assert profile[0].argmax_agreement == 0.5
    assert profile[1] == DivergencePoint("gcn.0", 0.0, 0.0, 1.0)
    one_orbit = att.divergence_profile({"fga": apart}, orbits=[[0, 1]])
    assert one_orbit[0].cross_orbit_jsd is None and one_orbit[0].jsd == pytest.approx(1.0)


def _profile(*values):
    return [DivergencePoint(f"s{i}", 0.0, v, 1.0) for i, v in enumerate(values)]


def test_first_uniform_stage_threshold_is_strict_and_later_stages_must_agree():
    t = 1e-3  # the default: 1e-3 bits (a 5-point difference on the heaviest tokens)
    assert att.first_uniform_stage(_profile(0.5, 0.000999, 0.0)) == "s1"
    assert att.first_uniform_stage(_profile(0.5, 0.001, 0.0)) == "s2"  # at the threshold: differs
    assert att.first_uniform_stage(_profile(0.0, 0.5, 0.0)) == "s2"  # a later stage differs again
    assert att.first_uniform_stage(_profile(0.0, 0.0, t)) is None
    assert att.first_uniform_stage(_profile(0.0, None, 0.0)) == "s2"
    assert att.first_uniform_stage(_profile(0.0, 0.0, None)) is None
    assert att.first_uniform_stage(_profile(0.0, 0.0)) == "s0"
    assert att.first_uniform_stage([]) is None
    assert att.first_uniform_stage(_profile(0.05, 0.02), threshold=0.03) == "s1"


def test_summary_json_is_the_report_contract_with_every_number_plain():
    A = np.array([[[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]]])
    Q = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    K = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    s = att.summarize_attention(A, orbits=[[0, 2], [1]], Q=Q, K=K)
    j = s.to_json()
    assert list(j) == [
        "num_atoms",
        "num_heads",
        "num_valid_tokens",
        "degenerate_softmax",
        "entropy",
        "mean_entropy",
        "mean_head_entropy",
        "jsd",
        "cross_orbit_jsd",
        "argmax_agreement",
        "top_token",
        "max_abs_row_diff",
        "cross_orbit_max_abs_row_diff",
        "decomposition",
        "pairs",
    ]
    assert j["pairs"] is None  # small cells: every pair, nothing sampled
    assert (j["num_atoms"], j["num_heads"], j["num_valid_tokens"]) == (3, 1, 2)
    assert j["degenerate_softmax"] is False
    assert j["entropy"] == list(s.entropy) and j["mean_entropy"] == s.mean_entropy
    assert j["mean_head_entropy"] == s.mean_head_entropy
    assert j["jsd"] == s.jsd and j["cross_orbit_jsd"] == s.cross_orbit_jsd
    assert j["argmax_agreement"] == pytest.approx(2 / 3) and j["top_token"] == 0
    assert j["max_abs_row_diff"] == pytest.approx(0.5)
    assert j["cross_orbit_max_abs_row_diff"] == pytest.approx(0.5)
    d = s.decomposition
    assert j["decomposition"] == {
        "shared_spread": d.shared_spread,
        "atom_spread": d.atom_spread,
        "shared_fraction": d.shared_fraction,
        "same_top_token_if_shared_only": d.same_top_token_if_shared_only,
        "shared_top_agreement": d.shared_top_agreement,
        "shared_top_token": d.shared_top_token,
        "per_head_shared_spread": list(d.per_head_shared_spread),
        "per_head_atom_spread": list(d.per_head_atom_spread),
        "per_head_shared_fraction": list(d.per_head_shared_fraction),
        "per_head_same_top_token": list(d.per_head_same_top_token),
    }
    assert all(type(v) is float for v in j["entropy"])
    assert type(j["decomposition"]["per_head_same_top_token"][0]) is bool
    one = att.summarize_attention(np.array([[[1.0, 0.0]]]), [1, 0]).to_json()
    assert one["degenerate_softmax"] is True and one["decomposition"] is None
    assert one["cross_orbit_jsd"] is None and one["max_abs_row_diff"] is None
    flat = att.logit_decomposition(np.ones((2, 2)), np.ones((3, 2))).to_json()
    assert flat["shared_fraction"] is None and flat["per_head_shared_fraction"] == [None]


def test_every_summary_number_ignores_masked_tokens():
    """Token 2 is masked and carries most of the weight, differently per atom: no number may
    see it (the valid tokens 0 and 1 read identically for both atoms)."""
    A = np.array([[[0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]])
    mask = [1, 1, 0]
    s = att.summarize_attention(A, mask, orbits=[[0], [1]])
    assert s.jsd == 0.0 and s.cross_orbit_jsd == 0.0
    assert s.argmax_agreement == 1.0 and s.top_token == 0
    assert s.max_abs_row_diff == pytest.approx(0.1)  # raw weights, not renormalised
    assert s.cross_orbit_max_abs_row_diff == pytest.approx(0.1)
    assert att.mean_pairwise_jsd(A, mask) == 0.0
    assert att.mean_pairwise_jsd(A) > 0.0
    Q = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    K = np.array([[[0.0, 1.0], [1.0, 0.0], [9.0, 0.0]]])
    with_qk = att.summarize_attention(A, mask, Q=Q, K=K)
    expected = att.logit_decomposition(Q, K, mask)
    assert with_qk.decomposition == expected and expected.shared_top_token == 1
    assert att.summarize_attention(A, mask, Q=Q, K=K, scale=3.0).decomposition == (
        att.logit_decomposition(Q, K, mask, scale=3.0)
    )
    points = att.divergence_profile({"gcn.0": A}, mask, orbits=[[0], [1]])
    assert points[0].jsd == 0.0 and points[0].cross_orbit_jsd == 0.0
    assert points[0].argmax_agreement == 1.0
    unmasked = att.divergence_profile({"gcn.0": A}, orbits=[[0], [1]])
    assert unmasked[0].jsd > 0.0


def test_max_abs_row_diff_averages_heads_and_handles_two_atoms():
    A = np.array([[[0.2, 0.8], [0.6, 0.4]], [[0.4, 0.6], [0.6, 0.4]]])  # head mean: .3/.7, .6/.4
    assert att.max_abs_row_diff(A) == pytest.approx(0.3)
    assert att.max_abs_row_diff(A, pairs="cross_orbit", orbits=None) == pytest.approx(0.3)


def test_head_averaged_top_tokens_use_each_heads_normalised_softmax():
    """Head 0 spreads its mass over tokens 0, 2, 3, 4 (token 0 first); head 1 is sure of token 1.
    The mean of the two *normalised* distributions picks token 1; weights left unnormalised
    would let head 0's larger exp-sum win with token 0."""
    Q = np.array([[[1.0]], [[1.0]]])  # [H=2, N=1, d=1]
    K = np.array([[10.0, 8.0, 9.9, 9.9, 9.9], [0.0, 5.0, 0.0, 0.0, 0.0]])[:, :, None]
    d = att.logit_decomposition(Q, K)
    assert d.shared_top_token == 1 and d.same_top_token_if_shared_only
    assert d.per_head_same_top_token == (True, True)


def test_softmax_is_stable_for_large_and_unequal_logits():
    """Logits near 800 overflow exp() unless each row's own maximum is subtracted first; a head
    far below the other must not underflow to 0/0 either (warnings are errors here)."""
    Q = np.array([[[1.0], [1.0]], [[1.0], [1.0]]])
    K = np.array([[[800.0], [799.0]], [[-800.0], [-797.0]]])
    d = att.logit_decomposition(Q, K)
    assert d.shared_top_token == 1  # mean of (.73, .27) and (.05, .95)
    assert d.shared_top_agreement == 1.0


def test_attention_and_logits_are_computed_in_double_precision():
    rng = np.random.default_rng(7)
    A = rng.dirichlet(np.ones(5), size=(2, 3)).astype(np.float32)
    assert att.as_attention(A).dtype == np.float64
    Q = rng.normal(size=(2, 3, 4)).astype(np.float32)
    K = rng.normal(size=(2, 5, 4)).astype(np.float32)
    single = att.logit_decomposition(Q, K)
    double = att.logit_decomposition(Q.astype(np.float64), K.astype(np.float64))
    assert single == double


def test_logit_decomposition_refuses_keys_of_the_wrong_rank():
    with pytest.raises(ValueError, match="need Q"):
        att.logit_decomposition(np.ones((1, 2, 2)), np.ones((1, 3, 2, 2)))


def test_the_full_logits_are_each_atoms_own_query_against_the_keys():
    """shared + specific = q̄·k + (q_i − q̄)·k = q_i·k: atom 0 (query (1, 0)) reads token 0 even
    though the shared query (1, 2) ranks token 1 first."""
    Q = np.array([[1.0, 0.0], [1.0, 4.0]])
    K = np.eye(2)
    d = att.logit_decomposition(Q, K)
    assert d.shared_top_token == 1
    assert d.shared_top_agreement == 0.5 and d.per_head_same_top_token == (False,)
