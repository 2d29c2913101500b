"""CGCNN atom features, identical to ``jarvis.core.specie.get_node_attributes(sym, "cgcnn")``.

Upstream ALIGNN featurises atom ``Z`` with the 92-long 0/1 vector stored under the key ``str(Z)``
in ``jarvis/core/atom_init.json`` (keys "1" … "100"). A ``Z`` without a key (jarvis knows
elements up to Lr, Z = 103, and an unknown symbol gives ``Z = nan``) falls back to the row of
key "100". We read the same file, once, straight from the jarvis package directory: importing
``jarvis.core.specie`` would cost ~0.5 s (it pulls scipy) and ``jarvis.core.atoms`` ~1.7 s.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np

CGCNN_DIM = 92
"""Length of one CGCNN feature vector."""

FALLBACK_Z = 100
"""The key upstream falls back to when an atomic number has no row in ``atom_init.json``."""

# Jarvis' ``Elements.json`` covers exactly these 103 symbols, Z = index + 1 (checked by a test).
_SYMBOLS: tuple[str, ...] = (
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr",
    "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd",
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb",
    "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th",
    "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm",
    "Md", "No", "Lr",
)  # fmt: skip
_Z_OF: dict[str, int] = {sym: z for z, sym in enumerate(_SYMBOLS, start=1)}


def element_symbols() -> tuple[str, ...]:
    """The element symbols jarvis knows, ordered by atomic number (index 0 is Z = 1)."""
    return _SYMBOLS


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (case-sensitive, as jarvis); 0 for a symbol jarvis
    does not know, whose CGCNN row is then the Z = 100 fallback, as upstream."""
    return _Z_OF.get(symbol, 0)


@cache
def cgcnn_table() -> np.ndarray:
    """float32 [101, 92]: row ``Z`` holds the CGCNN vector of ``Z`` (row 0 = the fallback row).

    Read once per process from jarvis' own ``atom_init.json``. Read-only.
    """
    raw = json.loads(resources.files("jarvis.core").joinpath("atom_init.json").read_text())
    fallback = raw[str(FALLBACK_Z)]
    table = np.array(
        [fallback] + [raw.get(str(z), fallback) for z in range(1, FALLBACK_Z + 1)],
        dtype=np.float32,
    )
    if table.shape != (FALLBACK_Z + 1, CGCNN_DIM):
        raise RuntimeError(f"unexpected jarvis atom_init.json table shape {table.shape}")
    table.setflags(write=False)
    return table


def cgcnn_features(atomic_numbers: np.ndarray | list[int] | tuple[int, ...]) -> np.ndarray:
    """CGCNN features float32 [N, 92] for N atomic numbers (a fresh, writable array).

    Any ``Z`` outside 1…100 (including 0 = unknown symbol) gets the Z = 100 row, as upstream.
    """
    z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
    z = np.where((z >= 1) & (z <= FALLBACK_Z), z, 0)
    return cgcnn_table()[z]
