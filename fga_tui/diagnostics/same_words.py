"""Which atoms of different elements read the same top words: the symptom users report.

"The same top words" as a user reads them: at least 4 of the top 5 in common, and each atom's
first word among the other's first two (a near-tie for first place is still "same"), counting
only the words that carry weight (5 % of the atom's heaviest word or more).

Why classes. Only orbit representatives of different elements are compared (same-element
atoms were never told apart by the input; see ``separation``). In a cell without symmetry
every atom is its own orbit, and a model with the symptom gives most atoms one word list: a
4,860-atom rattled supercell had ~14 million matching pairs, and comparing them one by one in
Python took minutes. Atoms with the same weighted word list are interchangeable for the
comparison, so the lists are compared once per pair of distinct lists (a *class*), and pairs
are counted from element counts per class: exact, and linear in atoms for a fixed number of
distinct lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from fga_tui.diagnostics.separation import COLLAPSE_SEPARATION

SAME_TOP_K = 5
SAME_TOP_SHARED = 4
#: a word under 5 % of the atom's heaviest word's weight is noise in the ranking: two atoms
#: that put (nearly) all their attention on one word read that word, whatever order their
#: near-zero words come in.
WORD_WEIGHT_FLOOR = 0.05
#: pairs kept by name for the renders (all of them are counted)
MAX_PAIRS_SHOWN = 20
#: numbers of one difference block computed at a time (bounds memory in ``distinct_count``)
_CHUNK_ELEMENTS = 1 << 21


def pair_same(a: Sequence[str], b: Sequence[str]) -> bool:
    """Do two weighted top-word lists read as the same words (see the module docstring)?"""
    if not a or not b or a[0] not in b[:2] or b[0] not in a[:2]:
        return False
    return len(set(a) & set(b)) >= min(SAME_TOP_SHARED, len(a), len(b))


def weighty_words(words: Sequence) -> list[str]:
    """The ranked words that carry weight (``WORD_WEIGHT_FLOOR`` of the heaviest or more)."""
    if not words:
        return []
    floor = WORD_WEIGHT_FLOOR * float(words[0][1])
    return [w for w, x in words if float(x) >= floor]


@dataclass(frozen=True)
class _Class:
    """Representatives sharing one weighted word list, in orbit order."""

    words: tuple[str, ...]
    atoms: np.ndarray  # int [n] atom indices
    position: np.ndarray  # int [n] their index among the representatives (ascending)
    element: np.ndarray  # int [n] element codes

    def element_counts(self, n_elements: int) -> np.ndarray:
        return np.bincount(self.element, minlength=n_elements)


@dataclass(frozen=True)
class SameWordPairs:
    """Pairs of representatives of different elements that read the same top words.

    ``shown``: the first ``MAX_PAIRS_SHOWN`` pairs (atom indices) in orbit order; ``count``:
    all of them; ``blocks``: the matching classes (each pair of classes once, a class with
    itself as ``(c, c)``), from which every pair can be enumerated (``distinct_count``).
    """

    shown: list[tuple[int, int]]
    count: int
    blocks: tuple[tuple[_Class, _Class], ...] = ()


def same_word_pairs(
    top: Sequence[dict],
    orbits: Sequence[Sequence[int]],
    elements: Sequence[str],
    limit: int = MAX_PAIRS_SHOWN,
) -> SameWordPairs:
    """The representatives of different elements whose weighted top words are the same.

    ``top``: one ``{"atom", "words": [[word, weight], ...]}`` per atom (ranked).
    """
    if len(orbits) < 2 or not top:
        return SameWordPairs([], 0)
    reps = [int(o[0]) for o in orbits]
    codes: dict[str, int] = {}
    element_code = [codes.setdefault(elements[i], len(codes)) for i in reps]
    by_words: dict[tuple[str, ...], list[int]] = {}
    for k, i in enumerate(reps):
        words = tuple(weighty_words(top[i]["words"][:SAME_TOP_K]))
        if words:
            by_words.setdefault(words, []).append(k)
    classes = [
        _Class(
            words,
            np.asarray([reps[k] for k in ks], dtype=np.int64),
            np.asarray(ks, dtype=np.int64),
            np.asarray([element_code[k] for k in ks], dtype=np.int64),
        )
        for words, ks in by_words.items()
    ]
    blocks = _matching_blocks(classes)
    n_el = len(codes)
    count = 0
    for a, b in blocks:
        ca, cb = a.element_counts(n_el), b.element_counts(n_el)
        if a is b:
            count += (int(ca.sum()) ** 2 - int(np.sum(ca * ca))) // 2
        else:
            count += int(ca.sum()) * int(cb.sum()) - int(np.sum(ca * cb))
    shown = _first_pairs(classes, blocks, limit) if count else []
    return SameWordPairs(shown, count, tuple(blocks))


def _matching_blocks(classes: list[_Class]) -> list[tuple[_Class, _Class]]:
    """Pairs of classes whose lists read the same (candidates through the first word)."""
    by_first: dict[str, list[int]] = {}
    for k, c in enumerate(classes):
        by_first.setdefault(c.words[0], []).append(k)
    out = []
    for k, c in enumerate(classes):
        seen: set[int] = set()
        for word in c.words[:2]:
            for j in by_first.get(word, ()):
                if j >= k and j not in seen and pair_same(c.words, classes[j].words):
                    seen.add(j)
                    out.append((c, classes[j]))
    return out


def _first_pairs(
    classes: list[_Class], blocks: list[tuple[_Class, _Class]], limit: int
) -> list[tuple[int, int]]:
    """The first ``limit`` pairs ordered by (position of a, position of b), a before b."""
    partners: list[list[_Class]] = [[] for _ in classes]
    index = {id(c): k for k, c in enumerate(classes)}
    for a, b in blocks:
        partners[index[id(a)]].append(b)
        if a is not b:
            partners[index[id(b)]].append(a)
    # each class's partners merged once, in position order: (position, atom, element)
    merged = []
    for others in partners:
        pos = np.concatenate([c.position for c in others]) if others else np.zeros(0, np.int64)
        order = np.argsort(pos, kind="stable")
        idx = np.concatenate([c.atoms for c in others]) if others else pos
        el = np.concatenate([c.element for c in others]) if others else pos
        merged.append((pos[order], idx[order], el[order]))
    position = np.concatenate([c.position for c in classes])
    atoms = np.concatenate([c.atoms for c in classes])
    element = np.concatenate([c.element for c in classes])
    owner = np.concatenate([np.full(len(c.atoms), k) for k, c in enumerate(classes)])
    out: list[tuple[int, int]] = []
    for k in np.argsort(position, kind="stable"):
        pos, idx, el = merged[owner[k]]
        keep = (pos > position[k]) & (el != element[k])
        out.extend((int(atoms[k]), int(b)) for b in idx[keep][: limit - len(out)])
        if len(out) >= limit:
            break
    return out


def _block_pairs(a: _Class, b: _Class, max_pairs: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair of ``(a, b)`` of different elements (each unordered pair once), as index
    arrays in chunks of at most ``max_pairs`` pairs."""
    for ea in np.unique(a.element):
        left = a.atoms[a.element == ea]
        right_mask = b.element != ea
        if a is b:
            right_mask &= b.element > ea  # each unordered element pair once
        right = b.atoms[right_mask]
        if not len(left) or not len(right):
            continue
        rows = max(1, max_pairs // len(right))
        for start in range(0, len(left), rows):
            chunk = left[start : start + rows]
            yield np.repeat(chunk, len(right)), np.tile(right, len(chunk))


def distinct_count(X: np.ndarray, pairs: SameWordPairs, separation: float | None = None) -> int:
    """How many of the pairs have features that differ by ``COLLAPSE_SEPARATION`` of the
    feature scale or more (the separation's own yardstick).

    ``separation``: the stage's separation (the closest pair of representatives of different
    elements, relative to the scale). Twice the threshold or more means every pair differs, so
    nothing is enumerated; otherwise each pair is measured.
    """
    if not pairs.count:
        return 0
    if separation is not None and separation >= 2.0 * COLLAPSE_SEPARATION:
        return pairs.count
    X = np.asarray(X, dtype=np.float64)
    scale = float(np.sqrt(np.mean(np.sum(X * X, axis=1))))
    total = 0
    max_pairs = max(1, _CHUNK_ELEMENTS // max(1, X.shape[1]))
    for a, b in pairs.blocks:
        for left, right in _block_pairs(a, b, max_pairs):
            d = np.linalg.norm(X[left] - X[right], axis=1)
            total += int(np.count_nonzero(d >= COLLAPSE_SEPARATION * scale))
    return total
