"""The same-top-words pairs, counted by word-list classes, equal a pair-by-pair count."""

from __future__ import annotations

import numpy as np
import pytest

from fga_tui.diagnostics.same_words import (
    MAX_PAIRS_SHOWN,
    SAME_TOP_K,
    distinct_count,
    pair_same,
    same_word_pairs,
    weighty_words,
)
from fga_tui.diagnostics.separation import COLLAPSE_SEPARATION

WORDS = ["ba", "hf", "li", "cubic", "cell", "site", "is", "the", "of", "atom"]


def brute_pairs(top, orbits, elements):
    """Every representative pair compared one by one (the definition)."""
    reps = [o[0] for o in orbits]
    lists = {i: weighty_words(top[i]["words"][:SAME_TOP_K]) for i in reps}
    return [
        (a, b)
        for k, a in enumerate(reps)
        for b in reps[k + 1 :]
        if elements[a] != elements[b] and pair_same(lists[a], lists[b])
    ]


def random_case(rng, n_atoms, n_lists, n_elements=3, orbit_size=1):
    """Atoms drawing their ranked words from a few base lists, with perturbations."""
    base = [list(rng.permutation(WORDS)[:6]) for _ in range(n_lists)]
    top = []
    for i in range(n_atoms):
        words = list(base[rng.integers(n_lists)])
        if rng.random() < 0.3:  # swap the first two: still "the same" for pair_same
            words[0], words[1] = words[1], words[0]
        if rng.random() < 0.2:  # replace one word of the top 5
            words[rng.integers(2, 5)] = str(rng.choice(WORDS))
        weights = np.sort(rng.random(len(words)))[::-1]
        if rng.random() < 0.2:  # a saturated row: only the first word carries weight
            weights[1:] *= 0.01
        top.append(
            {
                "atom": f"X_{i}",
                "words": [[w, float(x)] for w, x in zip(words, weights, strict=True)],
            }
        )
    elements = [f"E{rng.integers(n_elements)}" for _ in range(n_atoms)]
    orbits = [list(range(i, min(i + orbit_size, n_atoms))) for i in range(0, n_atoms, orbit_size)]
    for o in orbits:  # an orbit is one element
        for i in o:
            elements[i] = elements[o[0]]
    return top, orbits, elements


@pytest.mark.parametrize("seed", range(12))
def test_class_count_equals_the_pair_by_pair_definition(seed):
    rng = np.random.default_rng(seed)
    n_lists = int(rng.integers(1, 8))
    top, orbits, elements = random_case(
        rng, int(rng.integers(2, 120)), n_lists, orbit_size=1 + seed % 3
    )
    want = brute_pairs(top, orbits, elements)
    got = same_word_pairs(top, orbits, elements)
    assert got.count == len(want)
    assert got.shown == want[:MAX_PAIRS_SHOWN]


def test_shown_pairs_follow_orbit_order_not_atom_index():
    # orbits listed out of index order: pairs are ordered by the orbit list
    top = [{"atom": f"X_{i}", "words": [["ba", 1.0]]} for i in range(4)]
    orbits = [[3], [1], [2], [0]]
    elements = ["A", "B", "A", "B"]
    got = same_word_pairs(top, orbits, elements)
    assert got.shown == [(3, 2), (3, 0), (1, 2), (1, 0)]  # B-A pairs, in orbit order
    assert got.count == 4


def test_one_word_list_over_thousands_of_atoms_is_counted_without_listing_pairs():
    n = 3000  # 1,000 atoms of each of three elements, all reading "ba"
    top = [{"atom": f"X_{i}", "words": [["ba", 0.9], ["cell", 0.01]]} for i in range(n)]
    elements = ["A", "B", "C"] * (n // 3)
    got = same_word_pairs(top, [[i] for i in range(n)], elements)
    assert got.count == 3 * 1000 * 1000
    assert got.shown[:3] == [(0, 1), (0, 2), (0, 4)]
    assert len(got.shown) == MAX_PAIRS_SHOWN


def brute_distinct(X, pairs):
    scale = np.sqrt(np.mean(np.sum(X * X, axis=1)))
    return sum(np.linalg.norm(X[a] - X[b]) >= COLLAPSE_SEPARATION * scale for a, b in pairs)


@pytest.mark.parametrize("seed", range(6))
def test_distinct_count_equals_measuring_every_pair(seed):
    rng = np.random.default_rng(100 + seed)
    top, orbits, elements = random_case(rng, 90, 3)
    X = rng.normal(size=(90, 16))
    # make about half the atoms collapse onto one point, some just across the threshold
    collapsed = rng.random(90) < 0.5
    X[collapsed] = X[0]
    scale = np.sqrt(np.mean(np.sum(X * X, axis=1)))
    nudged = np.flatnonzero(collapsed)[:6]
    for k, i in enumerate(nudged):
        X[i, 0] += (1.01 if k % 2 else 0.99) * COLLAPSE_SEPARATION * scale
    scale = np.sqrt(np.mean(np.sum(X * X, axis=1)))  # the nudges move the scale slightly
    pairs = same_word_pairs(top, orbits, elements)
    everyone = brute_pairs(top, orbits, elements)
    assert pairs.count == len(everyone)
    assert distinct_count(X, pairs) == brute_distinct(X, everyone)


def test_distinct_count_trusts_a_separation_of_twice_the_threshold_only():
    top = [{"atom": f"X_{i}", "words": [["ba", 1.0]]} for i in range(4)]
    pairs = same_word_pairs(top, [[0], [1], [2], [3]], ["A", "B", "A", "B"])
    X = np.ones((4, 3))  # every pair identical: measured, none is distinct
    assert distinct_count(X, pairs, separation=None) == 0
    assert distinct_count(X, pairs, separation=2.0 * COLLAPSE_SEPARATION * 0.999) == 0
    assert distinct_count(X, pairs, separation=2.0 * COLLAPSE_SEPARATION) == pairs.count == 4
