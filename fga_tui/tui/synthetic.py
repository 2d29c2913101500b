"""Synthetic samples (JARVIS JSON + token ``.npz``) for the TUI's tests, benchmark and smoke test.

``ba4hfli``: the canonical 6-atom case of the original question (Ba_0…Ba_3 one orbit, Hf_4,
Li_5; space group P-43m, Wyckoff 4e / 1a / 1b). ``supercell``: a 5×5×5 supercell of an
L1₂ Ba₃Li cell (500 atoms) with a small deterministic rattle that breaks the symmetry, the
worst case for the panes (500 orbits, heat map aggregated by element). ``dataset_rows``:
JARVIS-style rows of perovskites and rock salts for the scan's tests and benchmarks. Token
embeddings are
seeded random vectors of the checkpoint's text width: enough to exercise the attention, not
MatSciBERT.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BA4HFLI_TEXT = (
    "Ba4HfLi crystallizes in the cubic P-43m space group. Ba is bonded to one Hf and one Li "
    "atom. Hf is bonded to four equivalent Ba atoms. Li is bonded to four equivalent Ba atoms."
)
BA3LI_TEXT = "Ba3Li is an L12 structured intermetallic; Li sits on the corners and Ba on faces."


def _tokens(text: str) -> list[str]:
    """A WordPiece-looking split: lower case, punctuation apart, long words as ## pieces."""
    words: list[str] = []
    for raw in text.lower().replace(".", " . ").replace(",", " , ").replace(";", " ; ").split():
        if len(raw) > 7 and raw.isalpha():
            words.extend([raw[:5], "##" + raw[5:]])
        else:
            words.append(raw)
    return ["[CLS]", *words, "[SEP]"]


def _write(
    folder: Path,
    name: str,
    lattice: np.ndarray,
    frac: np.ndarray,
    elements: list[str],
    text: str,
    width: int,
    seed: int,
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sample = folder / f"{name}.json"
    tokens_path = folder / f"{name}.tokens.npz"
    row = {
        "jid": name,
        "atoms": {
            "lattice_mat": lattice.tolist(),
            "coords": frac.tolist(),
            "elements": elements,
            "cartesian": False,
        },
        "text": text,
        "target": 0.0,
    }
    sample.write_text(json.dumps(row), encoding="utf-8")
    tokens = _tokens(text)
    rng = np.random.default_rng(seed)
    np.savez(
        tokens_path,
        tokens=np.array(tokens),
        embeddings=rng.standard_normal((len(tokens), width)).astype(np.float32),
        mask=np.ones(len(tokens), dtype=np.int64),
    )
    return sample, tokens_path


def ba4hfli(folder: str | Path, width: int = 768, a: float = 6.5) -> tuple[Path, Path]:
    """Write ``ba4hfli.json`` and ``ba4hfli.tokens.npz``; returns their paths."""
    x = 0.25
    frac = np.array(
        [
            [x, x, x],
            [1 - x, 1 - x, x],
            [1 - x, x, 1 - x],
            [x, 1 - x, 1 - x],
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
        ]
    )
    elements = ["Ba", "Ba", "Ba", "Ba", "Hf", "Li"]
    return _write(
        Path(folder), "ba4hfli", np.eye(3) * a, frac, elements, BA4HFLI_TEXT, width, seed=6
    )


def supercell(
    folder: str | Path, width: int = 768, reps: int = 5, a: float = 4.9, rattle: float = 0.01
) -> tuple[Path, Path]:
    """Write a ``reps``³ supercell of L1₂ Ba₃Li (4·reps³ atoms, 500 by default), rattled."""
    base = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])
    cells = np.array([[i, j, k] for i in range(reps) for j in range(reps) for k in range(reps)])
    frac = ((cells[:, None, :] + base[None, :, :]) / reps).reshape(-1, 3)
    elements = ["Li", "Ba", "Ba", "Ba"] * len(cells)
    rng = np.random.default_rng(500)
    frac = (frac + rng.uniform(-rattle, rattle, frac.shape) / (a * reps)) % 1.0
    name = f"ba3li_{len(elements)}"
    return _write(
        Path(folder), name, np.eye(3) * a * reps, frac, elements, BA3LI_TEXT, width, seed=500
    )


def demo_supercell(
    folder: str | Path,
    reps: tuple[int, int, int] = (7, 7, 7),
    rattle: float = 0.0,
    source: str | Path | None = None,
) -> Path:
    """Write the bundled demo cell (6 atoms, its own text) repeated ``reps`` times: 2,058 atoms
    by default, 4,860 at (9, 9, 10). ``rattle`` (Å) moves every atom by a seeded random amount,
    which removes all symmetry (the worst case: every atom its own orbit)."""
    if source is None:
        source = Path(__file__).resolve().parents[1] / "data" / "demo" / "ba4hfli.json"
    row = json.loads(Path(source).read_text(encoding="utf-8"))
    atoms = row["atoms"]
    lattice = np.asarray(atoms["lattice_mat"], dtype=float)
    frac = np.asarray(atoms["coords"], dtype=float)
    cells = np.array(
        [[i, j, k] for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])]
    )
    scale = np.asarray(reps, dtype=float)
    big = ((cells[:, None, :] + frac[None, :, :]) / scale).reshape(-1, 3)
    if rattle:
        rng = np.random.default_rng(len(big))
        big = (
            big + rng.uniform(-rattle, rattle, big.shape) / np.linalg.norm(lattice, axis=1) / scale
        ) % 1.0
    elements = list(atoms["elements"]) * len(cells)
    name = f"demo_{len(elements)}{'_rattled' if rattle else ''}"
    out = Path(folder) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    sample = {
        "jid": name,
        "atoms": {
            "lattice_mat": (lattice * scale[:, None]).tolist(),
            "coords": big.tolist(),
            "elements": elements,
            "cartesian": False,
        },
        "text": row["text"],
        "target": row.get("target", 0.0),
    }
    if "tokens" in row:  # the demo's precomputed token states, by absolute path
        sample["tokens"] = str((Path(source).parent / row["tokens"]).resolve())
    out.write_text(json.dumps(sample), encoding="utf-8")
    return out


PEROVSKITE = ((0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5))


def dataset_rows(
    n: int,
    tokens: str | Path,
    seed: int,
    cations: tuple[str, ...] = ("Na", "K", "Li"),
    anions: tuple[str, ...] = ("Cl", "Br", "F"),
) -> list[dict]:
    """``n`` rows alternating rock salts (2 orbits) and ABO₃ perovskites (3 orbits) with seeded
    lattices and elements, all reading the token states in ``tokens``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if i % 2:
            a = float(rng.uniform(3.7, 4.2))
            el = [str(rng.choice(["Sr", "Ba", "Ca"])), str(rng.choice(["Ti", "Zr", "Hf"]))]
            atoms = {
                "lattice_mat": (np.eye(3) * a).tolist(),
                "coords": [list(c) for c in PEROVSKITE],
                "elements": [*el, "O", "O", "O"],
                "cartesian": False,
            }
        else:
            a = float(rng.uniform(2.6, 3.2))
            el = [str(rng.choice(cations)), str(rng.choice(anions))]
            atoms = {
                "lattice_mat": [[0, a, a], [a, 0, a], [a, a, 0]],
                "coords": [[0, 0, 0], [0.5, 0.5, 0.5]],
                "elements": el,
                "cartesian": False,
            }
        rows.append({"jid": f"s{i}", "atoms": atoms, "text": "x", "tokens": str(tokens)})
    return rows
