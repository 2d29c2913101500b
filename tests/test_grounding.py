"""Grounding: which tokens name which element (word-level and WordPiece texts), and the share of
each atom's weight on its own element's tokens."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fga_tui.diagnostics.grounding import grounding, grounding_json, naming_matrix, word_elements

FIXTURES = Path(__file__).parent / "fixtures"
DEMO = Path(__file__).parent.parent / "fga_tui" / "data" / "demo"


def test_symbols_names_and_site_labels_in_any_case() -> None:
    cell = ["Ba", "Hf", "Li"]
    assert word_elements("BA", cell) == ("Ba",)
    assert word_elements("Barium", cell) == ("Ba",)
    assert word_elements("hafnium", cell) == ("Hf",)
    assert word_elements("Ba1", cell) == ("Ba",)
    assert word_elements("ba(1)", cell) == ("Ba",)
    assert word_elements("li1+", cell) == ("Li",)
    assert word_elements("na", cell) == ()  # not in this cell
    assert word_elements("sodium", ["Na", "Cl"]) == ("Na",)


def test_formulas_name_every_element_of_the_cell_they_spell() -> None:
    assert word_elements("hfba4", ["Ba", "Hf", "Li"]) == ("Hf", "Ba")
    assert word_elements("ba4hfli", ["Ba", "Hf", "Li"]) == ("Ba", "Hf", "Li")
    assert word_elements("nacl6", ["Na", "Cl"]) == ("Na", "Cl")
    assert word_elements("can", ["Ca", "N"]) == ()  # a stopword, not Ca + N
    assert word_elements("co", ["Co", "C", "O"]) == ("Co",)  # the symbol wins


def test_english_words_that_are_symbols_need_a_site_label() -> None:
    cell = ["In", "P"]
    assert word_elements("in", cell) == ()
    assert word_elements("in", cell, site_label=True) == ("In",)
    assert word_elements("in1", cell) == ("In",)
    names, _ = naming_matrix(["[CLS]", "in", "(", "1", ")", "in", "the", "p", "[SEP]"], None, cell)
    assert names[:, 0].tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0]  # In(1), not "in the"
    assert names[:, 1].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0]


def test_word_level_demo_text_site_labels_take_their_brackets() -> None:
    data = np.load(DEMO / "ba4hfli.tokens.npz")
    tokens = data["tokens"].tolist()
    names, cell = naming_matrix(tokens, data["mask"], ["Ba"] * 4 + ["Hf", "Li"])
    assert cell == ("Ba", "Hf", "Li")
    # "ba ( 1 )" at positions 10-13 names Ba; "hf ( 1 )" at 23-26 names Hf.
    assert tokens[10:14] == ["ba", "(", "1", ")"] and names[10:14, 0].tolist() == [1.0] * 4
    assert tokens[23:27] == ["hf", "(", "1", ")"] and names[23:27, 1].tolist() == [1.0] * 4
    assert names[1].tolist() == pytest.approx([1 / 3] * 3)  # "ba4hfli"
    assert names[0].sum() == 0 and names[2].sum() == 0  # [CLS], "crystallizes"
    assert set(np.round(names.sum(axis=1), 9)) <= {0.0, 1.0}


def test_wordpiece_pieces_are_merged_before_naming() -> None:
    data = np.load(FIXTURES / "nacl.tokens.npz")
    tokens = data["tokens"].tolist()
    names, _ = naming_matrix(tokens, data["mask"], ["Na", "Cl"])
    assert tokens[1:3] == ["na", "##cl"]
    assert names[1].tolist() == [0.5, 0.5] and names[2].tolist() == [0.5, 0.5]  # "nacl"
    assert tokens[30:33] == ["na", "##cl", "##6"] and names[32].tolist() == [0.5, 0.5]
    assert names[20].tolist() == [1.0, 0.0] and tokens[20] == "na"
    assert names[26].tolist() == [0.0, 1.0] and tokens[26] == "cl"


def test_grounding_is_the_own_share_of_element_weight() -> None:
    tokens = ["[CLS]", "ba", "and", "hf", "[SEP]"]
    W = np.array(
        [
            [0.1, 0.6, 0.1, 0.2, 0.0],  # Ba atom: own 0.6, other 0.2 -> 0.75
            [0.5, 0.3, 0.1, 0.1, 0.0],  # Hf atom: own 0.1, other 0.3 -> 0.25
            [0.9, 0.0, 0.1, 0.0, 0.0],  # Hf atom on no element word: undefined
        ]
    )
    g = grounding(W, tokens, None, ["Ba", "Hf", "Hf"])
    assert g.per_atom[:2].tolist() == pytest.approx([0.75, 0.25])
    assert math.isnan(g.per_atom[2])
    assert g.per_element() == pytest.approx({"Ba": 0.75, "Hf": 0.25})
    assert g.mean() == pytest.approx(0.5)
    assert g.text_share == {"Ba": 0.5, "Hf": 0.5}
    assert g.named == ("Ba", "Hf")
    # heads are averaged
    g3 = grounding(np.stack([W, W]), tokens, None, ["Ba", "Hf", "Hf"])
    np.testing.assert_allclose(g3.per_atom[:2], g.per_atom[:2])


def test_a_text_naming_no_element_says_so() -> None:
    tokens = ["[CLS]", "a", "cubic", "crystal", "[SEP]"]
    W = np.full((2, 5), 0.2)
    g = grounding(W, tokens, None, ["Na", "Cl"])
    assert g.named == () and np.isnan(g.per_atom).all()
    out = grounding_json(g, None, ["Na_0", "Cl_1"])
    assert out["note"] == "the text names no element of this cell"
    assert out["per_atom"][0]["attention"] is None
    json.dumps(out, allow_nan=False)


def test_grounding_json_has_atoms_elements_and_mean() -> None:
    tokens = ["[CLS]", "ba", "hf", "[SEP]"]
    att = grounding(np.array([[0, 0.8, 0.2, 0], [0, 0.5, 0.5, 0]]), tokens, None, ["Ba", "Hf"])
    attr = grounding(np.array([[0, 1.0, 0, 0], [0, 0, 0, 0]]), tokens, None, ["Ba", "Hf"])
    out = grounding_json(att, attr, ["Ba_0", "Hf_1"])
    assert out["per_atom"][0] == {
        "atom": "Ba_0",
        "element": "Ba",
        "attention": 0.8,
        "attribution": 1.0,
        "element_share": 1.0,
    }
    assert out["per_atom"][1]["attribution"] is None  # no attribution on element words
    assert out["per_element"]["Hf"] == {"attention": 0.5, "attribution": None, "text_share": 0.5}
    assert out["mean"] == {"attention": 0.65, "attribution": 1.0}
    json.dumps(out, allow_nan=False)


def test_grounding_needs_a_minimum_share_on_element_words() -> None:
    from fga_tui.diagnostics.grounding import MIN_ELEMENT_SHARE

    tokens = ["[CLS]", "ba", "hf", "and"]
    at = MIN_ELEMENT_SHARE  # exactly the floor: defined
    below = MIN_ELEMENT_SHARE / 2
    W = np.array([[1 - at, at, 0.0, 0.0], [1 - below, below, 0.0, 0.0]])
    g = grounding(W, tokens, None, ["Ba", "Ba"])
    assert g.per_atom[0] == pytest.approx(1.0)
    assert np.isnan(g.per_atom[1])  # a ratio of vanishing weights says nothing
    assert g.element_share.tolist() == pytest.approx([at, below])
