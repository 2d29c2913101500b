"""Validated domain objects produced by :mod:`fga_tui.io` (numpy only, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True, eq=False)
class Structure:
    """A periodic crystal.

    ``lattice`` is (3, 3) float64 with lattice vectors as rows (Å), ``frac_coords`` (N, 3) float64
    fractional coordinates, ``elements`` N element symbols ("Ba", "Hf", ...). ``source_cart``
    keeps Cartesian positions exactly as a Cartesian input gave them (None for fractional input):
    upstream's neighbour search uses those, and its tie shells depend on the last bits.
    """

    lattice: np.ndarray
    frac_coords: np.ndarray
    elements: tuple[str, ...]
    source_cart: np.ndarray | None = None

    @property
    def num_atoms(self) -> int:
        return len(self.elements)

    @property
    def cart_coords(self) -> np.ndarray:
        return self.frac_coords @ self.lattice


@dataclass(frozen=True, eq=False)
class TokenStates:
    """Precomputed text-encoder output for one text.

    ``tokens`` L token strings, ``embeddings`` float32 [L, D] (the encoder's last hidden state,
    D = 768 for MatSciBERT), ``mask`` bool [L] (True = real token, False = padding).
    """

    tokens: tuple[str, ...]
    embeddings: np.ndarray
    mask: np.ndarray
    source: Path | None = None

    @property
    def length(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True, eq=False)
class Sample:
    """One crystal with its description: what a single trace runs on."""

    id: str
    structure: Structure
    text: str | None = None
    target: float | None = None
    tokens: TokenStates | None = None
    source: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Atom labels as the fork prints them: element and index, ``Ba_0``."""
        return [f"{el}_{i}" for i, el in enumerate(self.structure.elements)]
