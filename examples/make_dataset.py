"""A small synthetic crystal + description dataset for the fga-tui demo (importable and a script).

Why synthetic: the demo must train in minutes on a laptop CPU, offline, with no licensed data. The
rows look like the research fork's training data (JARVIS ``atoms`` dicts with a
Robocrystallographer-like description), so the demo exercises the same code paths as a real
checkpoint.

Prototypes: rock salt, CsCl, cubic perovskite ABX3, fluorite, zinc blende, wurtzite, L1_2 (Cu3Au),
rutile, half-Heusler, and an ``A4BC`` cell in P-43m shaped like the Ba4HfLi of the motivating bug
report: four A atoms on one orbit (Wyckoff 4e) and distinct B (1a) and C (1b) sites, so spglib
gives the orbits ``[[0, 1, 2, 3], [4], [5]]``. Each row gets varied elements and a jittered
lattice constant; the description states the real nearest-neighbour shells of the generated cell.
The target is a smooth, noise-free function of composition and volume (``target_value``).

Rows: ``{"jid", "atoms": {"lattice_mat", "coords", "elements", "cartesian": false, "abc",
"angles", "props"}, "text", "target"}``. Same seed, same rows (bit for bit).

    python examples/make_dataset.py --out demo.jsonl --n 400 --seed 0
    python examples/make_dataset.py --out demo.jsonl --n 400 --tokens demo_tokens/

``--tokens DIR`` also writes each row's token states (the bundled demo encoder's, an ``.npz`` per
row) and points the row's ``"tokens"`` field at it, so the demo checkpoints scan the rows with no
text model (``fga-tui scan … --text-model demo`` encodes them on the fly instead).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Pauling electronegativity and a rough ionic/metallic radius (Å) of every element used.
ELECTRONEGATIVITY = {
    "Li": 0.98, "Na": 0.93, "K": 0.82, "Rb": 0.82, "Cs": 0.79, "Mg": 1.31, "Ca": 1.00,
    "Sr": 0.95, "Ba": 0.89, "Zn": 1.65, "Cd": 1.69, "Ga": 1.81, "Al": 1.61, "In": 1.78,
    "Ti": 1.54, "Zr": 1.33, "Hf": 1.30, "Sn": 1.96, "Pb": 2.33, "Si": 1.90, "Ge": 2.01,
    "Cu": 1.90, "Au": 2.54, "Ni": 1.91, "Pt": 2.28, "Fe": 1.83, "Co": 1.88,
    "F": 3.98, "Cl": 3.16, "Br": 2.96, "I": 2.66, "O": 3.44, "S": 2.58, "Se": 2.55,
    "N": 3.04, "P": 2.19, "As": 2.18, "Sb": 2.05,
}  # fmt: skip
RADIUS = {
    "Li": 0.76, "Na": 1.02, "K": 1.38, "Rb": 1.52, "Cs": 1.67, "Mg": 0.72, "Ca": 1.00,
    "Sr": 1.18, "Ba": 1.35, "Zn": 0.74, "Cd": 0.95, "Ga": 0.62, "Al": 0.54, "In": 0.80,
    "Ti": 0.61, "Zr": 0.72, "Hf": 0.71, "Sn": 0.69, "Pb": 0.78, "Si": 0.40, "Ge": 0.53,
    "Cu": 1.28, "Au": 1.44, "Ni": 1.24, "Pt": 1.39, "Fe": 1.26, "Co": 1.25,
    "F": 1.33, "Cl": 1.81, "Br": 1.96, "I": 2.20, "O": 1.40, "S": 1.84, "Se": 1.98,
    "N": 1.46, "P": 2.12, "As": 2.22, "Sb": 2.45,
}  # fmt: skip

NUMBER_WORDS = {
    1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
    9: "nine", 10: "ten", 11: "eleven", 12: "twelve",
}  # fmt: skip
GEOMETRY = {
    2: "linear",
    3: "trigonal planar",
    4: "tetrahedral",
    6: "octahedral",
    8: "body-centered cubic",
    12: "cuboctahedral",
}
POLYHEDRA = {4: "tetrahedra", 6: "octahedra", 8: "cubes", 12: "cuboctahedra"}
SHELL_TOL = 1.10  # neighbours within 10 % of the nearest distance form the first shell


@dataclass(frozen=True)
class Prototype:
    """A structure type: how to build its cell from elements and a length scale."""

    name: str  # e.g. "rock salt"
    mineral: str  # Robocrystallographer's "X-like structured" phrase, "" for none
    system: str  # crystal system
    spacegroup: str  # international symbol as Robocrystallographer prints it
    roles: tuple[tuple[str, ...], ...]  # candidate elements of each distinct site
    build: Callable[[Sequence[str], float], tuple[np.ndarray, np.ndarray, list[str]]]
    scale: Callable[[Sequence[str]], float]  # lattice constant (Å) for these elements


def _fcc(a: float) -> np.ndarray:
    return 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def _cubic(a: float) -> np.ndarray:
    return a * np.eye(3)


def _rock_salt(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return _fcc(a), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), [el[0], el[1]]


def _cscl(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return _cubic(a), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), [el[0], el[1]]


def _perovskite(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    coords = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return _cubic(a), np.array(coords, dtype=float), [el[0], el[1], el[2], el[2], el[2]]


def _fluorite(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    coords = [[0, 0, 0], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]]
    return _fcc(a), np.array(coords), [el[0], el[1], el[1]]


def _zinc_blende(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return _fcc(a), np.array([[0, 0, 0], [0.25, 0.25, 0.25]]), [el[0], el[1]]


def _wurtzite(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    c, u = a * math.sqrt(8.0 / 3.0), 0.375
    lattice = np.array([[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]])
    coords = [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, u], [2 / 3, 1 / 3, 0.5 + u]]
    return lattice, np.array(coords), [el[0], el[0], el[1], el[1]]


def _l12(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    coords = [[0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0, 0]]
    return _cubic(a), np.array(coords, dtype=float), [el[0], el[0], el[0], el[1]]


def _rutile(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    c, u = 0.644 * a, 0.305
    lattice = np.diag([a, a, c])
    coords = [
        [0, 0, 0],
        [0.5, 0.5, 0.5],
        [u, u, 0],
        [1 - u, 1 - u, 0],
        [0.5 + u, 0.5 - u, 0.5],
        [0.5 - u, 0.5 + u, 0.5],
    ]
    return lattice, np.array(coords), [el[0], el[0], el[1], el[1], el[1], el[1]]


A4BC_X = 0.26  # Wyckoff 4e (x, x, x) of P-43m: A has one B and one C neighbour, slightly apart


def _a4bc(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Ba4HfLi-like: A on 4e (x,x,x), (-x,-x,x), (-x,x,-x), (x,-x,-x); B on 1a; C on 1b."""
    x = A4BC_X
    coords = [[x, x, x], [-x, -x, x], [-x, x, -x], [x, -x, -x], [0, 0, 0], [0.5, 0.5, 0.5]]
    frac = np.mod(np.array(coords), 1.0)
    return _cubic(a), frac, [el[0], el[0], el[0], el[0], el[1], el[2]]


def _half_heusler(el: Sequence[str], a: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Three one-atom orbits (4a, 4c, 4b of F-43m): three distinct sites, no majority site."""
    coords = [[0, 0, 0], [0.25, 0.25, 0.25], [0.5, 0.5, 0.5]]
    return _fcc(a), np.array(coords), [el[0], el[1], el[2]]


def _r(*els: str) -> float:
    return sum(RADIUS[e] for e in els)


ALKALI = ("Li", "Na", "K", "Rb", "Cs")
ALKALINE_EARTH = ("Mg", "Ca", "Sr", "Ba")
HALIDE = ("F", "Cl", "Br", "I")
CHALCOGEN = ("O", "S", "Se")

PROTOTYPES: tuple[Prototype, ...] = (
    Prototype(
        "rock salt", "Halite, Rock Salt", "cubic", "Fm-3m",
        (ALKALI + ALKALINE_EARTH, HALIDE + CHALCOGEN), _rock_salt,
        lambda e: 2.0 * _r(e[0], e[1]),
    ),
    Prototype(
        "CsCl", "CsCl", "cubic", "Pm-3m",
        (("Cs", "Rb", "K"), ("Cl", "Br", "I")), _cscl,
        lambda e: 2.0 * _r(e[0], e[1]) / math.sqrt(3.0),
    ),
    Prototype(
        "perovskite", "(Cubic) Perovskite", "cubic", "Pm-3m",
        (("Ca", "Sr", "Ba", "K", "Na"), ("Ti", "Zr", "Hf", "Sn"),
         ("O", "F")), _perovskite,
        lambda e: 2.0 * _r(e[1], e[2]),
    ),
    Prototype(
        "fluorite", "Fluorite", "cubic", "Fm-3m",
        (("Ca", "Sr", "Ba", "Cd", "Pb"), ("F", "Cl")), _fluorite,
        lambda e: 4.0 * _r(e[0], e[1]) / math.sqrt(3.0),
    ),
    Prototype(
        "zinc blende", "Zincblende, Sphalerite", "cubic", "F-43m",
        (("Zn", "Cd", "Ga", "Al", "In"), ("S", "Se", "As", "P", "Sb")), _zinc_blende,
        lambda e: 4.0 * (0.55 * _r(e[0], e[1])) / math.sqrt(3.0),
    ),
    Prototype(
        "wurtzite", "Wurtzite", "hexagonal", "P6_3mc",
        (("Zn", "Cd", "Ga", "Al", "In"), ("O", "S", "N")), _wurtzite,
        lambda e: math.sqrt(8.0 / 3.0) * (0.6 * _r(e[0], e[1])),
    ),
    Prototype(
        "L1_2", "Uranium Silicide", "cubic", "Pm-3m",
        (("Cu", "Ni", "Pt", "Au", "Fe"), ("Au", "Al", "Sn", "Ti", "Pt")), _l12,
        lambda e: math.sqrt(2.0) * _r(e[0], e[0]) * 1.05,
    ),
    Prototype(
        "rutile", "Rutile", "tetragonal", "P4_2/mnm",
        (("Ti", "Sn", "Ge", "Pb", "Zr"), ("O", "F")), _rutile,
        lambda e: 2.3 * _r(e[0], e[1]),
    ),
    Prototype(
        "A4BC", "", "cubic", "P-43m",
        (("Ba", "Sr", "Ca"), ("Hf", "Zr", "Ti"), ("Li", "Na", "K")), _a4bc,
        lambda e: 3.4 * _r(e[0], e[1]),
    ),
    Prototype(
        "half-Heusler", "Half-Heusler", "cubic", "F-43m",
        (("Li", "Na", "K"), ("Mg", "Zn", "Cd"), ("As", "Sb", "P")), _half_heusler,
        lambda e: 1.62 * _r(e[0], e[1], e[2]),
    ),
)  # fmt: skip

BA4HFLI_A = 7.0  # Å: the demo sample's lattice constant


def prototype(name: str) -> Prototype:
    """The prototype called ``name`` (KeyError if unknown)."""
    for p in PROTOTYPES:
        if p.name == name:
            return p
    raise KeyError(name)


# ---- geometry -----------------------------------------------------------------------------------


def _neighbour_shells(lattice: np.ndarray, frac: np.ndarray) -> list[list[tuple[int, float]]]:
    """First coordination shell of every site: [(neighbour index, distance Å), ...].

    Images -2..2 suffice for these small, roughly isotropic cells.
    """
    rng = np.arange(-2, 3)
    images = np.array(np.meshgrid(rng, rng, rng, indexing="ij")).reshape(3, -1).T
    cart = frac @ lattice
    shifts = images @ lattice
    out = []
    for i in range(len(frac)):
        d = np.linalg.norm(cart[None, :, None, :] + shifts[None, None] - cart[i], axis=-1)[0]
        d[i, np.all(images == 0, axis=1)] = np.inf
        nearest = d.min()
        js, _ = np.nonzero(d <= nearest * SHELL_TOL)
        out.append([(int(j), float(d[j].min())) for j in js])
    return out


def _formula(elements: Sequence[str]) -> str:
    """Reduced formula in site order (``Ti2F4`` -> ``TiF2``), as Robocrystallographer prints it."""
    counts: dict[str, int] = {}
    for el in elements:
        counts[el] = counts.get(el, 0) + 1
    div = math.gcd(*counts.values())
    return "".join(f"{el}{n // div if n > div else ''}" for el, n in counts.items())


def _count(n: int) -> str:
    return NUMBER_WORDS.get(n, str(n))


def describe(proto: Prototype, lattice: np.ndarray, frac: np.ndarray, elements: list[str]) -> str:
    """A Robocrystallographer-like description of the generated cell.

    Every distinct element is one crystallographic site here, labelled ``El(1)``; the bonding
    sentences state the real first neighbour shell (count, elements, bond lengths).
    """
    formula = _formula(elements)
    lead = (
        f"{formula} is {proto.mineral} structured and crystallizes"
        if proto.mineral
        else (f"{formula} crystallizes")
    )
    sentences = [f"{lead} in the {proto.system} {proto.spacegroup} space group."]
    shells = _neighbour_shells(lattice, frac)
    seen: set[str] = set()
    for i, el in enumerate(elements):
        if el in seen:
            continue
        seen.add(el)
        shell = shells[i]
        n = len(shell)
        neigh: dict[str, list[float]] = {}
        for j, d in shell:
            neigh.setdefault(elements[j], []).append(d)
        parts = [
            f"{_count(len(ds))} equivalent {nb}(1) atom{'s' if len(ds) > 1 else ''}"
            for nb, ds in sorted(neigh.items())
        ]
        geometry = GEOMETRY.get(n, f"{n}-coordinate")
        where = f"in {'an' if geometry[0] in 'aeiou' else 'a'} {geometry} geometry"
        text = f"{el}(1) is bonded {where} to {' and '.join(parts)}"
        if n in POLYHEDRA and len(neigh) == 1:
            text += f" to form {el}{next(iter(neigh))}{n} {POLYHEDRA[n]}"
        sentences.append(text + ".")
        for nb, ds in sorted(neigh.items()):
            lo, hi = min(ds), max(ds)
            if hi - lo < 0.005:
                sentences.append(f"All {el}(1)–{nb}(1) bond lengths are {lo:.2f} Å.")
            else:
                sentences.append(
                    f"There are a spread of {el}(1)–{nb}(1) bond distances ranging from "
                    f"{lo:.2f}–{hi:.2f} Å."
                )
    return " ".join(sentences)


def target_value(lattice: np.ndarray, elements: Sequence[str]) -> float:
    """The regression target: a smooth function of composition and packing.

    ``1.2·mean(χ) + 0.8·std(χ) − 0.05·(V/N)``: mean and spread of Pauling electronegativity χ and
    the volume per atom (Å³). Smooth, so a small model learns it in a few epochs.
    """
    chi = np.array([ELECTRONEGATIVITY[e] for e in elements])
    vol = abs(float(np.linalg.det(lattice))) / len(elements)
    return round(float(1.2 * chi.mean() + 0.8 * chi.std() - 0.05 * vol), 6)


def make_row(jid: str, proto: Prototype, elements: Sequence[str], a: float) -> dict[str, Any]:
    """One JARVIS-format row for ``proto`` with site elements ``elements`` and constant ``a``."""
    lattice, frac, els = proto.build(elements, a)
    lattice = np.round(lattice, 6)
    frac = np.round(np.mod(frac, 1.0), 6)
    lengths = np.linalg.norm(lattice, axis=1)

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return round(
            math.degrees(math.acos(float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))), 4
        )

    return {
        "jid": jid,
        "atoms": {
            "lattice_mat": lattice.tolist(),
            "coords": frac.tolist(),
            "elements": list(els),
            "cartesian": False,
            "abc": [round(float(x), 6) for x in lengths],
            "angles": [
                angle(lattice[1], lattice[2]),
                angle(lattice[0], lattice[2]),
                angle(lattice[0], lattice[1]),
            ],
            "props": [""] * len(els),
        },
        "text": describe(proto, lattice, frac, list(els)),
        "target": target_value(lattice, els),
    }


def ba4hfli_row(jid: str = "demo-Ba4HfLi") -> dict[str, Any]:
    """The demo sample: Ba_0..Ba_3 (one orbit), Hf_4, Li_5 in P-43m."""
    return make_row(jid, prototype("A4BC"), ("Ba", "Hf", "Li"), BA4HFLI_A)


def iter_rows(
    n: int, seed: int = 0, prototypes: Sequence[Prototype] = PROTOTYPES
) -> Iterator[dict[str, Any]]:
    """``n`` rows: ``prototypes`` in turn (list one twice to weight it), random elements and a
    lattice constant jittered by ±4 %, from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        proto = prototypes[i % len(prototypes)]
        elements: list[str] = []
        for candidates in proto.roles:
            options = [c for c in dict.fromkeys(candidates) if c not in elements]
            elements.append(options[int(rng.integers(len(options)))])
        a = proto.scale(elements) * float(rng.uniform(0.96, 1.04))
        yield make_row(f"demo-{seed}-{i:05d}", proto, elements, round(a, 4))


def generate(
    n: int = 400, seed: int = 0, prototypes: Sequence[Prototype] = PROTOTYPES
) -> list[dict[str, Any]]:
    """``n`` rows as a list (see ``iter_rows``)."""
    return list(iter_rows(n, seed, prototypes))


def write_jsonl(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON Lines (one compact object per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_tokens(
    rows: Sequence[dict[str, Any]], jsonl: str | Path, folder: str | Path
) -> list[dict[str, Any]]:
    """Encode each row's text with the bundled demo encoder into ``folder/<jid>.npz``; the rows
    with their ``"tokens"`` field set (relative to the JSONL file, as the sample reader wants)."""
    import os

    from fga_tui.text.demo_encoder import DemoTextEncoder, save_token_states

    encoder = DemoTextEncoder.load()
    folder = Path(folder)
    base = Path(jsonl).resolve().parent
    out = []
    for row in rows:
        path = save_token_states(encoder.encode(row["text"]), folder / f"{row['jid']}.npz")
        out.append({**row, "tokens": os.path.relpath(path.resolve(), base)})
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo_dataset.jsonl"))
    parser.add_argument("--n", type=int, default=400, help="number of rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tokens",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write each row's demo-encoder token states (.npz) into DIR",
    )
    args = parser.parse_args(argv)
    rows = generate(args.n, args.seed)
    if args.tokens is not None:
        rows = write_tokens(rows, args.out, args.tokens)
    path = write_jsonl(rows, args.out)
    extra = f" (token states in {args.tokens})" if args.tokens is not None else ""
    print(f"wrote {args.n} rows to {path}{extra}")


if __name__ == "__main__":
    main()
