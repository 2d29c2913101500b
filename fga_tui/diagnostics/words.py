"""Which words each atom reads: WordPiece merging, stopwords, top words per atom.

Tokens come from a WordPiece tokenizer (MatSciBERT): a piece ``##x`` continues the previous word.
A word's weight is the attention mass of its pieces (``how="sum"``, metrics.md) or their maximum
(``how="max"``, what the fork's ``interpretability_enhanced.py`` does). Weights are the model's,
not renormalised after special tokens are dropped. The fork's extra merging of space-group and
"12-coordinate" hyphen patterns is not reproduced: words are exactly WordPiece words.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fga_tui.io.errors import InputError

#: Never ranked unless ``include_special=True`` (BERT and RoBERTa spellings).
SPECIAL_TOKENS = frozenset(
    {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>"}
)

Merge = Literal["sum", "max"]
Word = tuple[str, float, tuple[int, ...]]


def load_stopwords(path: str | Path | None = None) -> frozenset[str]:
    """Stopwords, lower-cased: the packaged English list, or a user file (one word per line;
    blank lines and ``#`` comments ignored).

    The packaged list includes function words that are also element symbols once an uncased
    tokenizer lowercases them ("in", "as", "be", "at", "no"); pass the structure's elements as
    ``keep`` to ``top_words`` so that indium or arsenic stay visible.
    """
    if path is None:
        text = resources.files("fga_tui").joinpath("data/stopwords_en.txt").read_text("utf-8")
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(path, f"cannot read stopword list: {exc}") from exc
    words = (line.split("#", 1)[0].strip().lower() for line in text.splitlines())
    return frozenset(w for w in words if w)


def is_punctuation(word: str) -> bool:
    """True for a non-empty word made only of punctuation or symbol characters ("(", "-", "°")."""
    return bool(word) and all(unicodedata.category(c)[0] in "PS" for c in word)


def _dropped(word: str, stopwords: Collection[str] | None, keep: Collection[str] | None) -> bool:
    if stopwords is None:
        return False
    lower = word.lower()
    if keep is not None and lower in keep:
        return False
    return lower in stopwords or is_punctuation(word)


def group_wordpieces(
    tokens: Sequence[str], mask: Any = None, *, include_special: bool = False
) -> list[tuple[str, tuple[int, ...]]]:
    """Words as (text, token indices), in order of first position.

    ``##`` pieces join the word before them; a piece with nothing to join (first token, or after
    a special or masked token) starts a word of its own without the ``##``. Masked positions
    (``mask`` False) are always left out; special tokens unless ``include_special``, and then
    each stands alone.
    """
    valid = np.ones(len(tokens), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if valid.shape != (len(tokens),):
        raise ValueError(f"mask has shape {valid.shape} for {len(tokens)} tokens")
    words: list[tuple[str, list[int]]] = []
    open_word = False  # may the next ## piece join the last word?
    for i, raw in enumerate(tokens):
        token = str(raw)  # numpy string arrays yield np.str_
        if not valid[i]:
            open_word = False
            continue
        if token in SPECIAL_TOKENS:
            if include_special:
                words.append((token, [i]))
            open_word = False
            continue
        if token.startswith("##") and len(token) > 2 and open_word:
            text, indices = words[-1]
            words[-1] = (text + token[2:], [*indices, i])
            continue
        piece = token[2:] if token.startswith("##") and len(token) > 2 else token
        words.append((piece, [i]))
        open_word = True
    return [(text, tuple(indices)) for text, indices in words]


def _word_weights(W: np.ndarray, groups: Sequence[tuple[int, ...]], how: Merge) -> np.ndarray:
    """[..., L] token weights -> [..., G] word weights."""
    if how == "sum":
        return np.stack([W[..., list(g)].sum(axis=-1) for g in groups], axis=-1)
    if how == "max":
        return np.stack([W[..., list(g)].max(axis=-1) for g in groups], axis=-1)
    raise ValueError(f"how must be 'sum' or 'max', not {how!r}")


def merge_wordpieces(
    tokens: Sequence[str],
    weights: Any,
    mask: Any = None,
    *,
    how: Merge = "sum",
    include_special: bool = False,
    stopwords: Collection[str] | None = None,
    keep: Collection[str] | None = None,
) -> list[Word]:
    """Merge WordPiece pieces: ``weights`` float [L] -> [(word, weight, token_indices), ...].

    Words stay in text order and repeats stay separate (``top_words`` aggregates them). With
    ``stopwords`` (lower-case set) words in it and pure punctuation are dropped, except words in
    ``keep`` (e.g. the structure's element symbols, lower-cased).
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != len(tokens):
        raise ValueError(f"{w.size} weights for {len(tokens)} tokens")
    groups = group_wordpieces(tokens, mask, include_special=include_special)
    if not groups:
        return []
    merged = _word_weights(w, [g for _, g in groups], how)
    return [
        (text, float(value), indices)
        for (text, indices), value in zip(groups, merged, strict=True)
        if not _dropped(text, stopwords, keep)
    ]


def top_words(
    A: Any,
    tokens: Sequence[str],
    mask: Any = None,
    k: int = 10,
    head: int | None = None,
    stopwords: Collection[str] | None = None,
    *,
    how: Merge = "sum",
    include_special: bool = False,
    aggregate_repeats: bool = True,
    keep: Collection[str] | None = None,
) -> list[list[tuple[str, float]]]:
    """The ``k`` heaviest words for every atom: ``A`` [H, N, L] (or [N, L]) -> N lists of
    (word, weight), heaviest first, ties by first position in the text.

    ``head=None`` averages heads, an int picks one. With ``aggregate_repeats`` a word that occurs
    at several positions (e.g. "na" in "na is bonded ... na ...") is ranked once, with the sum
    of its occurrences' weights (whatever ``how`` merged the pieces): the attention mass the atom
    puts on that word. Stopwords and punctuation are dropped as in ``merge_wordpieces``.
    """
    W = np.asarray(A, dtype=np.float64)
    if W.ndim == 3:
        W = W.mean(axis=0) if head is None else W[head]
    elif head not in (None, 0):
        raise ValueError(f"head {head} requested from single-head [N, L] attention")
    if W.ndim != 2 or W.shape[1] != len(tokens):
        raise ValueError(f"attention shape {np.shape(A)} does not match {len(tokens)} tokens")
    groups = [
        (text, idx)
        for text, idx in group_wordpieces(tokens, mask, include_special=include_special)
        if not _dropped(text, stopwords, keep)
    ]
    if not groups or k <= 0:
        return [[] for _ in range(W.shape[0])]
    scores = _word_weights(W, [idx for _, idx in groups], how)  # [N, G]
    texts = [text for text, _ in groups]
    if aggregate_repeats:
        order: dict[str, int] = {}
        column = np.array([order.setdefault(t, len(order)) for t in texts])
        summed = np.zeros((W.shape[0], len(order)))
        np.add.at(summed, (slice(None), column), scores)
        scores, texts = summed, list(order)
    # Stable sort on -weight keeps first-position order among ties.
    ranking = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [
        [(texts[j], float(row[j])) for j in ranks]
        for row, ranks in zip(scores, ranking, strict=True)
    ]
