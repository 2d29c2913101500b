"""The same-top-words pairs, counted by word-list classes, equal a pair-by-pair count."""

from __future__ import annotations

import numpy as np
import pytest

from fga_tui.diagnostics.same_words import (
    MAX_PAIRS_SHOWN,
    SAME_TOP_K,
    SameWordPairs,
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


# --- edges the classes must get right -----------------------------------------------------------


def ranked(*words):
    return [[w, 1.0 - 0.1 * k] for k, w in enumerate(words)]


def test_lists_that_repeat_a_word_are_counted_like_the_pair_by_pair_definition():
    """A list repeating its first word ("ba", "ba", ...) has fewer distinct words, so it may not
    read the same as itself (its class then has no partner at all), and its first two words
    name one candidate class twice: neither may change the count."""
    top = [
        {"atom": "A_0", "words": ranked("ba", "ba", "cell", "site", "li")},
        {"atom": "B_1", "words": ranked("ba", "cell", "site", "li", "hf")},
        {"atom": "A_2", "words": ranked("hf", "hf", "of")},
        {"atom": "B_3", "words": ranked("hf", "hf", "of")},
        {"atom": "A_4", "words": ranked("li", "the", "cell", "site", "is")},
        {"atom": "B_5", "words": ranked("the", "li", "cell", "site", "is")},
    ]
    orbits = [[i] for i in range(6)]
    elements = ["A", "B", "A", "B", "A", "B"]
    want = brute_pairs(top, orbits, elements)
    assert want == [(0, 1), (4, 5)]  # (2, 3): {"hf", "of"} is 2 words of 3 listed
    got = same_word_pairs(top, orbits, elements)
    assert (got.shown, got.count) == (want, 2)


@pytest.mark.parametrize("seed", range(6))
def test_class_count_equals_the_definition_when_lists_repeat_words(seed):
    rng = np.random.default_rng(200 + seed)
    top, orbits, elements = random_case(rng, int(rng.integers(10, 80)), int(rng.integers(1, 5)))
    for entry in top:
        if rng.random() < 0.4:  # repeat the first word in second place
            entry["words"][1][0] = entry["words"][0][0]
    want = brute_pairs(top, orbits, elements)
    got = same_word_pairs(top, orbits, elements)
    assert got.count == len(want) and type(got.count) is int
    assert got.shown == want[:MAX_PAIRS_SHOWN]


def test_pair_same_is_false_for_an_empty_list_on_either_side():
    assert pair_same([], ["ba"]) is False
    assert pair_same(["ba"], []) is False
    assert pair_same(["ba"], ["ba"]) is True


def test_nothing_to_compare_gives_no_pairs_and_no_blocks():
    """One orbit, no atoms, or atoms without a single word: SameWordPairs([], 0) exactly."""
    top = [{"atom": "A_0", "words": [["ba", 1.0]]}, {"atom": "B_1", "words": [["ba", 1.0]]}]
    assert same_word_pairs(top, [[0, 1]], ["A", "A"]) == SameWordPairs([], 0)
    assert same_word_pairs([], [[0], [1]], ["A", "B"]) == SameWordPairs([], 0)
    wordless = [{"atom": "A_0", "words": []}, {"atom": "B_1", "words": []}]
    assert same_word_pairs(wordless, [[0], [1]], ["A", "B"]) == SameWordPairs([], 0)
    assert distinct_count(np.ones((2, 3)), SameWordPairs([], 0)) == 0


def test_pairs_within_one_class_are_counted_as_an_int():
    top = [{"atom": f"X_{i}", "words": [["ba", 1.0]]} for i in range(5)]
    got = same_word_pairs(top, [[i] for i in range(5)], ["A", "B", "A", "B", "C"])
    assert got.count == 8 and type(got.count) is int  # A-B 4, A-C 2, B-C 2


def _boundary_pairs():
    """Atoms 0 (A) and 1 (B) read the same word (features delta apart along x); atom 2 (C)
    reads another word (features z along y) and sets the scale sqrt((delta^2 + z^2) / 3)."""
    top = [
        {"atom": "A_0", "words": [["ba", 1.0]]},
        {"atom": "B_1", "words": [["ba", 1.0]]},
        {"atom": "C_2", "words": [["cell", 1.0]]},
    ]
    pairs = same_word_pairs(top, [[0], [1], [2]], ["A", "B", "C"])
    assert pairs.count == 1
    return pairs


def test_a_pair_exactly_at_the_threshold_counts_as_distinct():
    """|x_0 - x_1| = delta equal to COLLAPSE_SEPARATION times the scale in float64, bit for bit
    (delta ~ 5.77e-4 with z = 1, found by iterating delta = threshold(delta)): "or more" counts
    it; one ulp less does not."""
    pairs = _boundary_pairs()
    delta = COLLAPSE_SEPARATION * np.sqrt(1 / 3)
    for _ in range(20):
        X = np.array([[0.0, 0.0], [delta, 0.0], [0.0, 1.0]])
        threshold = COLLAPSE_SEPARATION * np.sqrt(np.mean(np.sum(X * X, axis=1)))
        if np.linalg.norm(X[0] - X[1]) == threshold:
            break
        delta = threshold
    else:
        pytest.fail("no float64 delta sits exactly on the threshold")
    assert distinct_count(X, pairs) == 1
    X[1, 0] = np.nextafter(delta, 0.0)
    assert distinct_count(X, pairs) == 0


def test_float32_features_are_measured_in_float64():
    """Traces keep features in float32. This pair is just under the threshold in float64, but
    a float32 scale (rounded down) would put it just over (found by a search on x86-64)."""
    pairs = _boundary_pairs()
    X = np.array([[0.0, 0.0], [0.0008338402, 0.0], [0.0, 1.4442534]], dtype=np.float32)
    assert distinct_count(X, pairs) == distinct_count(X.astype(np.float64), pairs)


def test_pairs_are_measured_in_chunks_as_large_as_the_bound_allows(monkeypatch):
    """Chunks bound memory, yet hold as many whole rows of partners as fit: a 4,860-atom cell
    measured one row (or one pair) at a time would take thousands of numpy calls."""
    from fga_tui.diagnostics import same_words as sw

    n = 30  # 10 atoms each of A, B, C, all reading "ba": one class, paired with itself
    top = [{"atom": f"X_{i}", "words": [["ba", 1.0]]} for i in range(n)]
    pairs = same_word_pairs(top, [[i] for i in range(n)], ["A", "B", "C"] * 10)
    ((a, b),) = pairs.blocks
    # A with B and C: 20 partners, 5 rows per chunk; B with C: 10 partners, 10 rows
    sizes = [len(left) for left, _ in sw._block_pairs(a, b, 100)]
    assert sizes == [100, 100, 100] and sum(sizes) == pairs.count
    bounds = []
    real = sw._block_pairs

    def spy(a, b, max_pairs):
        bounds.append(max_pairs)
        yield from real(a, b, max_pairs)

    monkeypatch.setattr(sw, "_block_pairs", spy)
    monkeypatch.setattr(sw, "_CHUNK_ELEMENTS", 400)
    assert distinct_count(np.arange(4.0 * n).reshape(n, 4), pairs) == 300
    assert bounds == [100]  # 400 numbers per chunk / 4 features per pair
