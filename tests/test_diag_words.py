"""WordPiece merging and top words at their edges: where a ``##`` piece may join, masks in the
middle of the text, heads, ``k``, precision and the errors a caller can trigger."""

from __future__ import annotations

import numpy as np
import pytest
from locale_support import run_under_ascii_locale

from fga_tui.diagnostics import words
from fga_tui.io.errors import InputError


def _texts(groups) -> list[str]:
    return [text for text, *_ in groups]


# --- group_wordpieces ------------------------------------------------------------------------


@pytest.mark.parametrize("special", ["[CLS]", "[SEP]", "<s>"])
def test_a_piece_after_a_special_token_starts_its_own_word(special):
    groups = words.group_wordpieces(["na", special, "##cl", "##o"])
    assert groups == [("na", (0,)), ("clo", (2, 3))]


def test_a_piece_after_a_masked_token_starts_its_own_word_and_later_tokens_still_count():
    groups = words.group_wordpieces(["na", "x", "##cl", "is", "##h"], [1, 0, 1, 1, 1])
    assert groups == [("na", (0,)), ("cl", (2,)), ("ish", (3, 4))]


def test_a_piece_at_the_start_of_the_text_is_a_word_without_its_hashes():
    assert words.group_wordpieces(["##ab", "##c", "d"]) == [("abc", (0, 1)), ("d", (2,))]


def test_one_letter_pieces_join_and_a_bare_double_hash_is_a_word_of_its_own():
    assert words.group_wordpieces(["oxide", "##s", "##"]) == [("oxides", (0, 1)), ("##", (2,))]
    assert words.group_wordpieces(["##", "##a"]) == [("##a", (0, 1))]


def test_special_tokens_are_left_out_by_default_and_stand_alone_on_request():
    tokens = ["[CLS]", "na", "[SEP]", "##x"]
    assert words.group_wordpieces(tokens) == [("na", (1,)), ("x", (3,))]
    assert words.group_wordpieces(tokens, include_special=True) == [
        ("[CLS]", (0,)),
        ("na", (1,)),
        ("[SEP]", (2,)),
        ("x", (3,)),
    ]


def test_a_mask_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r"mask has shape \(2,\) for 3 tokens"):
        words.group_wordpieces(["a", "b", "c"], [1, 1])


# --- merge_wordpieces ------------------------------------------------------------------------


def test_weights_of_any_shape_are_flattened_and_counted():
    merged = words.merge_wordpieces(["na", "##cl"], [[0.25, 0.5]])
    assert [(w, v) for w, v, _ in merged] == [("nacl", 0.75)]
    with pytest.raises(ValueError, match="3 weights for 2 tokens"):
        words.merge_wordpieces(["na", "##cl"], [0.1, 0.2, 0.3])


def test_word_weights_are_summed_in_double_precision():
    """float32 attention: 1 + 1e-8 is 1 in float32; the word weight keeps the small piece."""
    weights = np.array([1.0, 1e-8], dtype=np.float32)
    [(_, value, _)] = words.merge_wordpieces(["na", "##cl"], weights)
    assert value == 1.0 + float(np.float32(1e-8))
    A = np.array([[[1.0, 1e-8]]], dtype=np.float32)
    assert words.top_words(A, ["na", "##cl"])[0][0][1] == 1.0 + float(np.float32(1e-8))


def test_an_unknown_merge_is_refused():
    with pytest.raises(ValueError, match="how must be 'sum' or 'max', not 'mean'"):
        words.merge_wordpieces(["a"], [1.0], how="mean")


def test_nothing_left_after_masking_is_an_empty_list():
    assert words.merge_wordpieces(["[CLS]", "a"], [0.5, 0.5], [1, 0]) == []


# --- load_stopwords --------------------------------------------------------------------------


def test_only_the_first_hash_starts_a_comment(tmp_path):
    user = tmp_path / "stop.txt"
    user.write_text("bonded # a # b\n#only a comment\nÅngström\n", encoding="utf-8")
    assert words.load_stopwords(user) == {"bonded", "ångström"}


def test_an_unreadable_stopword_list_names_the_file(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(InputError) as err:
        words.load_stopwords(missing)
    assert err.value.path == str(missing)
    assert err.value.reason.startswith("cannot read stopword list: ")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="cannot read stopword list"):
        words.load_stopwords(latin1)


def test_a_utf8_stopword_list_is_read_as_utf8_under_an_ascii_locale(tmp_path):
    """A user list is UTF-8 by contract, whatever the locale: read in a child process under the
    C locale with UTF-8 mode and locale coercion off (locale encoding ASCII), "Ångström" is still
    a stopword instead of an unreadable file, as it is here."""
    user = tmp_path / "stop.txt"
    user.write_text("Ångström\n", encoding="utf-8")
    code = (
        "import sys\n"
        "from fga_tui.diagnostics.words import load_stopwords\n"
        "print(ascii(sorted(load_stopwords(sys.argv[1]))))\n"
    )
    (stopwords,) = run_under_ascii_locale(code, str(user))
    assert stopwords == ascii(sorted(words.load_stopwords(user))) == ascii(["ångström"])


# --- top_words ------------------------------------------------------------------------------


def test_max_merge_works_per_atom():
    tokens = ["na", "##cl", "is", "cubic"]
    A = np.array([[[0.1, 0.6, 0.2, 0.1], [0.5, 0.1, 0.1, 0.3]]])  # [H=1, N=2, L=4]
    top = words.top_words(A, tokens, k=3, how="max")
    assert top[0] == [("nacl", 0.6), ("is", 0.2), ("cubic", 0.1)]
    assert top[1] == [("nacl", 0.5), ("cubic", 0.3), ("is", 0.1)]


def test_default_k_is_ten():
    tokens = [f"w{i}" for i in range(12)]
    A = np.full((1, 12), 1 / 12)
    assert len(words.top_words(A, tokens)[0]) == 10


def test_single_head_attention_takes_no_head_but_zero():
    A = np.array([[0.7, 0.3]])
    assert words.top_words(A, ["a", "b"], k=1)[0] == [("a", 0.7)]
    assert words.top_words(A, ["a", "b"], k=1, head=0)[0] == [("a", 0.7)]
    with pytest.raises(ValueError, match="head 1 requested from single-head"):
        words.top_words(A, ["a", "b"], head=1)


@pytest.mark.parametrize("shape", [(2,), (2, 1, 2, 2)])
def test_attention_of_the_wrong_rank_is_refused(shape):
    with pytest.raises(ValueError, match=rf"attention shape \({shape[0]},.* 2 tokens"):
        words.top_words(np.full(shape, 0.5), ["a", "b"])


def test_masked_tokens_are_never_top_words():
    A = np.array([[0.1, 0.8, 0.1]])
    assert words.top_words(A, ["a", "b", "c"], [1, 0, 1], k=3)[0] == [("a", 0.1), ("c", 0.1)]


def test_special_tokens_are_top_words_only_on_request():
    A = np.array([[0.6, 0.4]])
    assert words.top_words(A, ["[CLS]", "a"], k=2)[0] == [("a", 0.4)]
    assert words.top_words(A, ["[CLS]", "a"], k=2, include_special=True)[0] == [
        ("[CLS]", 0.6),
        ("a", 0.4),
    ]


def test_keep_rescues_element_symbols_from_the_stopwords():
    A = np.array([[0.5, 0.3, 0.2]])
    stop = words.load_stopwords()
    top = words.top_words(A, ["in", "is", "bonded"], k=3, stopwords=stop, keep={"in"})
    assert top[0] == [("in", 0.5), ("bonded", 0.2)]


def test_no_words_or_no_k_gives_one_empty_list_per_atom():
    A = np.full((1, 3, 2), 0.5)  # 3 atoms, 2 tokens
    assert words.top_words(A, ["[CLS]", "[SEP]"]) == [[], [], []]
    assert words.top_words(A, ["a", "b"], k=0) == [[], [], []]
    assert words.top_words(A, ["a", "b"], k=-1) == [[], [], []]


def test_many_ties_keep_text_order():
    """Three weight levels over 17 words, ties scattered: numpy's default (unstable) sort
    reorders tied words here; only a stable sort keeps text order within each level."""
    levels = [2, 1, 1, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 1, 2, 2, 1]
    tokens = [f"w{i:02d}" for i in range(len(levels))]
    A = np.array([levels], dtype=float) / sum(levels)
    top = words.top_words(A, tokens, k=len(tokens))[0]
    expected = sorted(range(len(levels)), key=lambda i: -levels[i])  # sorted() is stable
    assert [w for w, _ in top] == [tokens[i] for i in expected]


@pytest.mark.parametrize(
    ("word", "punctuation"),
    [
        *[(w, True) for w in ("(", "-", "°", "—", "),")],
        *[(w, False) for w in ("", "a", "x-ray", "a.", "(1", "2")],
    ],
)
def test_punctuation_is_a_word_made_only_of_punctuation_or_symbols(word, punctuation):
    assert words.is_punctuation(word) is punctuation
