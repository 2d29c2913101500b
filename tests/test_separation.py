"""One separation measure, the same pairs at every stage: atoms of different elements."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fga_tui import engine
from fga_tui.diagnostics import separation as sepmod
from fga_tui.diagnostics.report import diagnose
from fga_tui.diagnostics.separation import (
    COLLAPSE_SEPARATION,
    input_groups,
    separation,
    separation_profile,
)


def test_groups_are_elements_as_unions_of_orbits():
    groups = input_groups([[0, 2], [1], [3], [4]], ["O", "Ti", "O", "Ba", "O"])
    assert groups.reps.tolist() == [0, 1, 3, 4]
    assert groups.group.tolist() == [0, 1, 2, 0]
    assert groups.names == ("O", "Ti", "Ba")
    assert groups.members(["O", "Ti", "O", "Ba", "O"]) == [[0, 2, 4], [1], [3]]


def test_same_element_atoms_never_enter_the_separation():
    # Two O sites nearly identical (pseudo-symmetric), Ti far from both.
    X = np.array([[1.0, 0.0], [1.0, 1e-6], [0.0, 1.0]])
    groups = input_groups([[0], [1], [2]], ["O", "O", "Ti"])
    scale = np.sqrt(np.mean(np.sum(X * X, axis=1)))
    assert separation(X, groups) == pytest.approx(np.linalg.norm(X[1] - X[2]) / scale)
    assert separation(X, input_groups([[0], [1], [2]], ["O", "O", "O"])) is None
    assert separation(np.zeros((3, 2)), groups) == 0.0
    assert separation(np.array([[np.nan, 0.0], [1.0, 0.0], [0.0, 1.0]]), groups) is None


def test_the_chunked_gram_form_agrees_with_explicit_differences(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 16)) + 5.0
    X[7] = X[200] + 1e-3  # the closest pair, of different elements
    elements = ["A", "B", "C"] * 100
    groups = input_groups([[i] for i in range(300)], elements)
    monkeypatch.setattr(sepmod, "_CHUNK_ELEMENTS", 1000)  # many chunks
    gram = separation(X, groups)
    monkeypatch.setattr(sepmod, "_DIRECT_REPS", 10_000)
    direct = separation(X, groups)
    assert gram == pytest.approx(direct, rel=1e-6)
    scale = np.sqrt(np.mean(np.sum(X * X, axis=1)))
    assert direct == pytest.approx(1e-3 * 4.0 / scale, rel=1e-6)


def test_the_profile_uses_one_set_of_pairs_at_every_stage():
    # Same-element atoms identical at embed and apart later; Ba-O distance constant.
    embed = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    later = np.array([[1.0, 0.0], [1.0, 0.5], [0.0, 1.0]])
    prof = separation_profile(
        {"embed": embed, "alignn.0": later},
        ["embed", "alignn.0"],
        [[0], [1], [2]],
        ["O", "O", "Ba"],
    )
    # Only O-Ba pairs: the closest is O_1-Ba_2 at alignn.0 (O_1 moved towards Ba).
    assert prof["embed"] == pytest.approx(np.sqrt(2) / np.sqrt(1.0))
    assert prof["alignn.0"] == pytest.approx(np.sqrt(1.25) / np.sqrt((1 + 1.25 + 1) / 3))


def perovskite_supercell(displacement: float, seed: int = 0) -> dict:
    """BaTiO3, cubic a = 4 Å, 2x2x1 (20 atoms), every atom displaced by N(0, displacement) Å:
    no exact symmetry (P1), but the four copies of each site are nearly equivalent."""
    a = 4.0
    basis = [
        ("Ba", (0.0, 0.0, 0.0)),
        ("Ti", (0.5, 0.5, 0.5)),
        ("O", (0.5, 0.5, 0.0)),
        ("O", (0.5, 0.0, 0.5)),
        ("O", (0.0, 0.5, 0.5)),
    ]
    elements, cart = [], []
    for i in range(2):
        for j in range(2):
            for el, frac in basis:
                elements.append(el)
                cart.append((np.array(frac) + np.array([i, j, 0])) * a)
    rng = np.random.default_rng(seed)
    coords = np.array(cart) + rng.normal(0.0, displacement, (len(cart), 3))
    return {
        "jid": "BaTiO3-2x2x1-displaced",
        "atoms": {
            "lattice_mat": np.diag([2 * a, 2 * a, a]).tolist(),
            "coords": coords.tolist(),
            "elements": elements,
            "cartesian": True,
        },
        "text": "BaTiO3 is a perovskite.",
    }


def test_pseudo_symmetric_supercell_is_not_oversmoothing(tmp_path, fork_ckpt, nacl_tokens):
    path = tmp_path / "batio3.json"
    path.write_text(json.dumps(perovskite_supercell(0.03)))
    loaded = engine.load_model(fork_ckpt, device="cpu")
    prepared = engine.prepare_sample(loaded, engine.load_sample(path), tokens_path=nacl_tokens)
    result = diagnose(loaded, prepared, audit=False, run_ablations=False)
    report = result.report
    assert len(report.orbits) == 20  # P1: every atom its own orbit
    # Some same-element copies are nearly equivalent from alignn.0 on: comparing all orbit
    # pairs there (the old measure) would call it a collapse.
    X = result.trace.features["alignn.0"].astype(np.float64)
    scale = np.sqrt(np.mean(np.sum(X * X, axis=1)))
    d = np.linalg.norm(X[:, None] - X[None], axis=-1)[np.triu_indices(20, 1)]
    assert d.min() / scale < 1e-2
    assert not {"OVERSMOOTHING", "FEATURE_COLLAPSE"} & set(report.codes)
    sep = report.separation
    assert min(sep.values()) > 0.5  # Ba, Ti and O stay far apart at every stage
    assert sep["gcn.3"] / sep["embed"] > 0.7
    assert all(v > COLLAPSE_SEPARATION for v in sep.values())
