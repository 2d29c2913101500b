"""Attention diagnostics and top words: known answers and degenerate inputs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from fga_tui.diagnostics import attention as att
from fga_tui.diagnostics import words
from fga_tui.io.errors import InputError


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _one_hot(n: int, length: int, index: int) -> np.ndarray:
    row = np.zeros(length)
    row[index] = 1.0
    return np.tile(row, (n, 1))


# --- entropy -------------------------------------------------------------------------------------


def test_entropy_uniform_is_one_and_one_hot_is_zero():
    A = np.array([[[0.25] * 4, [1.0, 0.0, 0.0, 0.0]]])
    np.testing.assert_allclose(att.row_entropy(A), [[1.0, 0.0]], atol=1e-15)


def test_entropy_uses_only_valid_tokens():
    A = np.array([[1 / 3, 1 / 3, 1 / 3, 0.0, 0.0]])
    mask = [True, True, True, False, False]
    assert att.row_entropy(A, mask)[0] == pytest.approx(1.0, abs=1e-15)
    assert att.row_entropy(A)[0] == pytest.approx(np.log(3) / np.log(5))


def test_entropy_with_one_valid_token_is_zero_and_flagged_degenerate():
    A = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    assert att.row_entropy(A, [True, False]).tolist() == [[0.0, 0.0]]
    assert att.summarize_attention(A, [True, False]).degenerate_softmax
    with pytest.raises(ValueError):
        att.row_entropy(A, [False, False])


# --- divergence ----------------------------------------------------------------------------------


def test_jsd_identical_rows_zero_disjoint_rows_one():
    same = np.tile([0.2, 0.3, 0.5], (3, 1))
    assert att.mean_pairwise_jsd(same) == 0.0
    disjoint = np.eye(3)
    assert att.mean_pairwise_jsd(disjoint) == pytest.approx(1.0, abs=1e-15)


def test_jsd_known_value():
    # p = (1, 0), q = (.5, .5): m = (.75, .25), JSD = H(m) - (0 + 1)/2 bits.
    h_m = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    J = att.pairwise_jsd(np.array([[1.0, 0.0], [0.5, 0.5]]))
    assert J[0, 1] == pytest.approx(h_m - 0.5, abs=1e-14)
    assert J[1, 0] == J[0, 1] and J[0, 0] == 0.0


def test_jsd_single_atom_and_cross_orbit_variants():
    assert att.mean_pairwise_jsd(np.array([[0.5, 0.5]])) == 0.0
    rows = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert att.mean_pairwise_jsd(rows) == pytest.approx(2 / 3)  # pairs: 0, 1, 1
    orbits = [[0, 1], [2]]
    assert att.mean_pairwise_jsd(rows, pairs="cross_orbit", orbits=orbits) == pytest.approx(1.0)
    assert att.mean_pairwise_jsd(rows, pairs="cross_orbit", orbits=[[0, 1, 2]]) is None


def test_argmax_agreement_ignores_masked_tokens():
    A = np.array([[0.1, 0.6, 0.3], [0.1, 0.7, 0.2], [0.1, 0.2, 0.7], [0.1, 0.5, 0.4]])
    assert att.argmax_agreement(A) == 0.75
    assert att.top_tokens(A).tolist() == [1, 1, 2, 1]
    A[:, 0] = 5.0  # an invalid token with a huge weight must not win
    assert att.argmax_agreement(A, [False, True, True]) == 0.75
    assert att.modal_top_token(A, [False, True, True]) == 1
    assert att.argmax_agreement(A[:1]) == 1.0


def test_max_abs_row_diff_all_and_cross_orbit():
    A = np.array([[0.5, 0.5], [0.6, 0.4], [0.2, 0.8]])
    assert att.max_abs_row_diff(A) == pytest.approx(0.4)
    assert att.max_abs_row_diff(A, pairs="cross_orbit", orbits=[[0, 2], [1]]) == pytest.approx(0.4)
    assert att.max_abs_row_diff(A, pairs="cross_orbit", orbits=[[0, 1], [2]]) == pytest.approx(0.4)
    assert att.max_abs_row_diff(A, pairs="cross_orbit", orbits=[[1, 2], [0]]) == pytest.approx(0.3)
    assert att.max_abs_row_diff(A, pairs="within_orbit", orbits=[[1, 2], [0]]) == pytest.approx(0.4)
    assert att.max_abs_row_diff(A, pairs="cross_orbit", orbits=[[0, 1, 2]]) is None
    assert att.max_abs_row_diff(A[:1]) is None


# --- logit decomposition -------------------------------------------------------------------------


def test_identical_queries_are_all_shared():
    rng = np.random.default_rng(0)
    K = rng.normal(size=(2, 5, 4))
    Q = np.repeat(rng.normal(size=(2, 1, 4)), 3, axis=1)
    d = att.logit_decomposition(Q, K)
    assert d.atom_spread == pytest.approx(0.0, abs=1e-24)
    assert d.shared_fraction == pytest.approx(1.0)
    assert d.same_top_token_if_shared_only and all(d.per_head_same_top_token)


def test_zero_mean_queries_have_no_shared_part():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(1, 1, 4))
    Q = np.concatenate([q, -q], axis=1)
    d = att.logit_decomposition(Q, rng.normal(size=(1, 6, 4)))
    assert d.shared_spread == pytest.approx(0.0, abs=1e-24)
    assert d.shared_fraction == pytest.approx(0.0, abs=1e-12)


def test_logit_decomposition_known_values():
    # k = 1, 2, 3; q = 1, 3: q̄ = 2 -> shared scores 2, 4, 6 (Var 8/3); δ = ∓1 -> Var_i(s_ij) =
    # k_j², mean 14/3; fraction 8/22. Both atoms and the shared part pick token 2.
    Q = np.array([[[1.0], [3.0]]])
    K = np.array([[[1.0], [2.0], [3.0]]])
    d = att.logit_decomposition(Q, K)
    assert d.shared_spread == pytest.approx(8 / 3)
    assert d.atom_spread == pytest.approx(14 / 3)
    assert d.shared_fraction == pytest.approx(4 / 11)
    assert d.same_top_token_if_shared_only and d.shared_top_token == 2
    half = att.logit_decomposition(Q, K, scale=0.5)
    assert half.shared_spread == pytest.approx(8 / 12)
    assert half.shared_fraction == pytest.approx(4 / 11)
    masked = att.logit_decomposition(Q, K, mask=[True, True, False])
    assert masked.shared_top_token == 1
    assert masked.shared_spread == pytest.approx(1.0)  # scores 2, 4
    json.dumps(d.to_json(), allow_nan=False)


def test_shared_part_can_disagree_with_atoms():
    # q = +1 and -1 (q̄ = 0 -> flat shared scores): atoms pick opposite tokens.
    Q = np.array([[[1.0], [-1.0]]])
    K = np.array([[[1.0], [-1.0]]])
    d = att.logit_decomposition(Q, K)
    assert not d.same_top_token_if_shared_only
    assert d.shared_top_agreement == 0.5


def test_flat_logits_have_undefined_fraction():
    d = att.logit_decomposition(np.zeros((1, 3, 2)), np.ones((1, 4, 2)))
    assert d.shared_fraction is None
    assert d.to_json()["shared_fraction"] is None


# --- summary and stage profile -------------------------------------------------------------------


def test_summarize_attention_symmetric_structure():
    A = np.stack([_one_hot(1, 4, 0)[0]] * 2 + [_one_hot(1, 4, 3)[0]])[None]  # [1, 3, 4]
    rng = np.random.default_rng(2)
    s = att.summarize_attention(
        A, None, [[0, 1], [2]], rng.normal(size=(1, 3, 2)), rng.normal(size=(1, 4, 2))
    )
    assert s.num_atoms == 3 and s.num_heads == 1 and s.num_valid_tokens == 4
    assert s.entropy == (0.0, 0.0, 0.0)
    assert s.jsd == pytest.approx(2 / 3) and s.cross_orbit_jsd == pytest.approx(1.0)
    assert s.argmax_agreement == pytest.approx(2 / 3) and s.top_token == 0
    assert s.max_abs_row_diff == 1.0 and s.cross_orbit_max_abs_row_diff == 1.0
    assert s.decomposition is not None
    json.dumps(s.to_json(), allow_nan=False)


def test_summarize_single_atom_is_defined():
    s = att.summarize_attention(np.full((2, 1, 4), 0.25))
    assert s.jsd == 0.0 and s.cross_orbit_jsd is None and s.argmax_agreement == 1.0
    assert s.mean_entropy == pytest.approx(1.0)
    json.dumps(s.to_json(), allow_nan=False)


def test_first_uniform_stage_is_where_atoms_stop_differing_for_good():
    differ = np.stack([_one_hot(1, 3, 0)[0], _one_hot(1, 3, 2)[0]])[None]
    same = np.full((1, 2, 3), 1 / 3)
    profile = att.divergence_profile(
        {"alignn.0": differ, "gcn.0": same, "gcn.1": same}, orbits=[[0], [1]]
    )
    assert [p.stage for p in profile] == ["alignn.0", "gcn.0", "gcn.1"]
    assert profile[0].cross_orbit_jsd == pytest.approx(1.0)
    assert profile[1].jsd == 0.0 and profile[1].argmax_agreement == 1.0
    assert att.first_uniform_stage(profile) == "gcn.0"
    relapse = att.divergence_profile({"a": same, "b": differ, "c": same}, orbits=[[0], [1]])
    assert att.first_uniform_stage(relapse) == "c"
    still = att.divergence_profile({"a": same, "b": differ}, orbits=[[0], [1]])
    assert att.first_uniform_stage(still) is None
    one_orbit = att.divergence_profile({"a": same}, orbits=[[0, 1]])
    assert att.first_uniform_stage(one_orbit) is None


# --- words ---------------------------------------------------------------------------------------

TOKENS = ["[CLS]", "na", "##cl", "is", "[SEP]"]
WEIGHTS = [0.1, 0.2, 0.3, 0.15, 0.25]


def test_wordpiece_merge_sums_pieces_and_drops_special_tokens():
    merged = words.merge_wordpieces(TOKENS, WEIGHTS)
    assert [(w, pytest.approx(v)) for w, v, _ in merged] == [("nacl", 0.5), ("is", 0.15)]
    assert merged[0][2] == (1, 2)


def test_wordpiece_merge_max_and_special_tokens_on_request():
    merged = words.merge_wordpieces(TOKENS, WEIGHTS, how="max", include_special=True)
    assert [(w, v) for w, v, _ in merged] == [
        ("[CLS]", 0.1),
        ("nacl", 0.3),
        ("is", 0.15),
        ("[SEP]", 0.25),
    ]


def test_masked_positions_are_never_words():
    merged = words.merge_wordpieces([*TOKENS, "[PAD]", "x"], [*WEIGHTS, 0.0, 0.0], [1] * 5 + [0, 0])
    assert [w for w, _, _ in merged] == ["nacl", "is"]


def test_stopwords_drop_function_words_and_punctuation_but_keep_elements():
    stop = words.load_stopwords()
    merged = words.merge_wordpieces(TOKENS, WEIGHTS, stopwords=stop)
    assert [w for w, _, _ in merged] == ["nacl"]
    toks = ["in", "(", "1", ")", "is", "bonded", "in", "a", "°"]
    kept = words.merge_wordpieces(toks, np.full(9, 0.1), stopwords=stop, keep={"in"})
    assert [w for w, _, _ in kept] == ["in", "1", "bonded", "in"]


def test_packaged_and_user_stopword_lists(tmp_path):
    stop = words.load_stopwords()
    assert 100 <= len(stop) <= 250
    assert {"the", "is", "of", "and"} <= stop and "bonded" not in stop
    user = tmp_path / "stop.txt"
    user.write_text("# comment\nBonded\n\n  octahedra  # trailing\n", encoding="utf-8")
    assert words.load_stopwords(user) == {"bonded", "octahedra"}
    with pytest.raises(InputError):
        words.load_stopwords(tmp_path / "missing.txt")


def test_top_words_aggregates_repeated_words():
    toks = ["[CLS]", "na", "bonded", "to", "na", "[SEP]"]
    A = np.array([[[0.0, 0.2, 0.3, 0.1, 0.25, 0.15]]])
    top = words.top_words(A, toks, k=3)
    assert [(w, pytest.approx(v)) for w, v in top[0]] == [
        ("na", 0.45),
        ("bonded", 0.3),
        ("to", 0.1),
    ]
    separate = words.top_words(A, toks, k=3, aggregate_repeats=False)
    assert [w for w, _ in separate[0]] == ["bonded", "na", "na"]


def test_top_words_ties_keep_text_order_and_heads_can_be_chosen():
    toks = ["b", "a", "c"]
    A = np.array([[[0.4, 0.4, 0.2]], [[0.2, 0.2, 0.6]]])  # [H=2, N=1, L=3]
    assert [w for w, _ in words.top_words(A, toks, k=2, head=0)[0]] == ["b", "a"]
    assert [w for w, _ in words.top_words(A, toks, k=1, head=1)[0]] == ["c"]
    avg = words.top_words(A, toks, k=3)[0]
    assert [w for w, _ in avg] == ["c", "b", "a"] and avg[0][1] == pytest.approx(0.4)


def test_top_words_per_atom_with_stopwords():
    toks = ["[CLS]", "na", "##cl", "is", "cubic", "[SEP]", "[PAD]"]
    A = np.array(
        [
            [
                [0.1, 0.1, 0.1, 0.5, 0.1, 0.1, 0.0],
                [0.0, 0.05, 0.05, 0.1, 0.7, 0.1, 0.0],
            ]
        ]
    )
    mask = [1, 1, 1, 1, 1, 1, 0]
    top = words.top_words(A, toks, mask, k=2, stopwords=words.load_stopwords())
    assert [[w for w, _ in atom] for atom in top] == [["nacl", "cubic"], ["cubic", "nacl"]]
    assert top[0][0][1] == pytest.approx(0.2)
    from_numpy = words.top_words(A, np.array(toks), mask, k=1)
    assert type(from_numpy[0][0][0]) is str
