"""Turn untrusted lattice / coordinate / element values into a checked :class:`Structure`.

Everything a file can get wrong about a structure is caught here and reported as
``InputError(path, reason)``, so the graph builder and the model never see NaNs, singular cells,
unknown elements or stacked atoms (which would give zero-length bonds and NaN angles deep inside
the forward pass, far from the file that caused them).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fga_tui.io.errors import MAX_ATOMS, InputError
from fga_tui.io.types import Structure

# Z = 1 .. 118, in order.
_PERIODIC_TABLE = """
    H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
    Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy
    Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf
    Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"""
ELEMENT_SYMBOLS: tuple[str, ...] = tuple(_PERIODIC_TABLE.split())
ATOMIC_NUMBER: dict[str, int] = {sym: z for z, sym in enumerate(ELEMENT_SYMBOLS, start=1)}

MIN_VOLUME = 1e-6  # Å³; below this the cell is singular for any practical purpose
MIN_DISTANCE = 0.1  # Å; two atoms (or an atom and an image) closer than this overlap
MAX_ABS_VALUE = 1e6  # Å or fractional units; larger values are not a crystal and overflow det()
_PAIR_BLOCK = 500_000  # (row chunk × N × images) entries per vectorised distance block


def validate_structure(
    lattice: Any,
    coords: Any,
    elements: Any,
    cartesian: Any = False,
    *,
    path: str | Path | None,
    max_atoms: int = MAX_ATOMS,
) -> Structure:
    """Check raw values (lists from JSON or arrays from jarvis) and build a :class:`Structure`.

    ``lattice`` has the lattice vectors as rows (Å). ``coords`` are fractional unless
    ``cartesian`` is true, in which case they are converted to fractional. Fractional
    coordinates are kept as given, not wrapped into [0, 1): upstream ALIGNN does not wrap either,
    and the graph it builds depends on the stored images only through periodicity.
    """
    if not isinstance(cartesian, (bool, np.bool_)):
        raise InputError(path, f'"cartesian" must be true or false, not {_show(cartesian)}')
    lat = _number_matrix(lattice, "lattice_mat", path, rows=3)
    n_atoms = _row_count(coords, path)
    if n_atoms == 0:
        raise InputError(path, "the structure is empty (0 atoms)")
    if n_atoms > max_atoms:
        raise InputError(path, f"{n_atoms} atoms exceeds --max-atoms {max_atoms}")
    xyz = _number_matrix(coords, "coords", path)
    symbols = _element_symbols(elements, path)
    if len(symbols) != n_atoms:
        raise InputError(path, f"elements has {len(symbols)} entries but coords has {n_atoms} rows")

    volume = float(np.linalg.det(lat))
    if abs(volume) < MIN_VOLUME:
        raise InputError(
            path, f"the lattice is singular (cell volume {abs(volume):.3g} Å³ < {MIN_VOLUME:g})"
        )
    # Cartesian input: fractional coordinates the way jarvis derives them (against the lattice
    # rounded to 5 decimals), and the given Cartesian positions kept for the neighbour search,
    # so the crystal graph's tie shells come out exactly as upstream's.
    with np.errstate(all="ignore"):
        frac = xyz @ np.linalg.inv(np.round(lat, 5)) if cartesian else xyz
    if not np.all(np.isfinite(frac)):
        raise InputError(path, "cartesian coords cannot be converted to fractional (overflow)")

    _check_overlaps(lat, frac, symbols, path)
    return Structure(
        lattice=lat,
        frac_coords=np.ascontiguousarray(frac),
        elements=symbols,
        source_cart=np.ascontiguousarray(xyz) if cartesian else None,
    )


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _row_count(value: Any, path: str | Path | None) -> int:
    if isinstance(value, np.ndarray):
        return int(value.shape[0]) if value.ndim >= 1 else -1
    if not isinstance(value, (list, tuple)):
        raise InputError(path, f"coords must be a list of [x, y, z] rows, not {_show(value)}")
    return len(value)


def _number_matrix(
    value: Any, name: str, path: str | Path | None, rows: int | None = None
) -> np.ndarray:
    """A finite float64 [rows, 3] array from nested lists or a numeric array; strict about types
    (no strings, no booleans) because ``np.asarray`` would silently accept ``"1.0"`` or ``true``."""
    shape = "a 3x3 list of numbers" if rows == 3 else "a list of [x, y, z] rows"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise InputError(path, f"{name} must contain numbers, not {value.dtype} values")
        if value.ndim != 2 or value.shape[1] != 3 or (rows is not None and value.shape[0] != rows):
            raise InputError(path, f"{name} must be {shape} (got shape {list(value.shape)})")
        arr = value.astype(np.float64)
    else:
        if not isinstance(value, (list, tuple)):
            raise InputError(path, f"{name} must be {shape}, not {_show(value)}")
        if rows is not None and len(value) != rows:
            raise InputError(path, f"{name} must be {shape} (got {len(value)} rows)")
        out = np.empty((len(value), 3), dtype=np.float64)
        for i, row in enumerate(value):
            if not isinstance(row, (list, tuple, np.ndarray)) or len(row) != 3:
                got = f"{len(row)} values" if isinstance(row, (list, tuple)) else _show(row)
                raise InputError(path, f"{name} must be {shape}: row {i} has {got}")
            for j, x in enumerate(row):
                if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.number)):
                    raise InputError(path, f"{name}[{i}][{j}] is not a number: {_show(x)}")
                try:
                    out[i, j] = float(x)
                except OverflowError:
                    out[i, j] = math.inf
        arr = out
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise InputError(path, f"{name}[{i}][{j}] is {arr[i, j]} (NaN or inf)")
    big = np.abs(arr) > MAX_ABS_VALUE
    if big.any():
        i, j = (int(k) for k in np.argwhere(big)[0])
        raise InputError(
            path, f"{name}[{i}][{j}] = {arr[i, j]:g} is beyond ±{MAX_ABS_VALUE:g}; not a crystal"
        )
    return arr


def _element_symbols(value: Any, path: str | Path | None) -> tuple[str, ...]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise InputError(path, f"elements must be a list of element symbols, not {_show(value)}")
    symbols: list[str] = []
    for i, sym in enumerate(value):
        if not isinstance(sym, str):
            raise InputError(path, f"elements[{i}] is not an element symbol: {_show(sym)}")
        clean = sym.strip()
        if clean not in ATOMIC_NUMBER:
            raise InputError(path, f"unknown element symbol {_show(sym)} (atom {i})")
        symbols.append(clean)
    return tuple(symbols)


def _lll_reduce(basis: np.ndarray, delta: float = 0.75) -> np.ndarray:
    """LLL-reduce three lattice vectors (rows). A reduced basis is nearly orthogonal, which bounds
    how many periodic images the overlap check must look at even for very skewed cells."""
    b = basis.astype(np.float64).copy()

    def gram_schmidt() -> tuple[np.ndarray, np.ndarray]:
        star = np.zeros_like(b)
        mu = np.zeros((3, 3))
        for i in range(3):
            v = b[i].copy()
            for j in range(i):
                mu[i, j] = b[i] @ star[j] / (star[j] @ star[j])
                v -= mu[i, j] * star[j]
            star[i] = v
        return star, mu

    star, mu = gram_schmidt()
    k = 1
    for _ in range(10_000):  # always far fewer for a non-singular 3x3 basis
        if k >= 3:
            break
        for j in range(k - 1, -1, -1):
            q = round(mu[k, j])
            if q:
                b[k] -= q * b[j]
                star, mu = gram_schmidt()
        if star[k] @ star[k] >= (delta - mu[k, k - 1] ** 2) * (star[k - 1] @ star[k - 1]):
            k += 1
        else:
            b[[k - 1, k]] = b[[k, k - 1]]
            star, mu = gram_schmidt()
            k = max(k - 1, 1)
    return b


def _check_overlaps(
    lattice: np.ndarray, frac: np.ndarray, symbols: Sequence[str], path: str | Path | None
) -> None:
    """Raise when two atoms, or an atom and a periodic image (of itself or another atom), are
    closer than :data:`MIN_DISTANCE`.

    Exact minimum-image test for any cell: in a reduced basis with reciprocal column norms
    ``|b*_i|``, a lattice-translated difference shorter than r has fractional components
    ``|d_i + n_i| <= r |b*_i|``, so after wrapping d into [-1/2, 1/2] only the integer shifts
    ``|n_i| <= floor(r |b*_i| + 1/2)`` can matter (just n = 0 for any ordinary cell). O(N²),
    vectorised in row blocks so memory stays bounded for large N.
    """
    reduced = _lll_reduce(lattice)
    lengths = np.linalg.norm(reduced, axis=1)
    if lengths.min() < MIN_DISTANCE:  # a lattice vector this short stacks every atom on itself
        raise InputError(
            path,
            f"atom 0 ({symbols[0]}) overlaps its own periodic image ({lengths.min():.3g} Å "
            f"apart, closer than {MIN_DISTANCE} Å): a lattice vector is too short",
        )
    inv = np.linalg.inv(reduced)
    f = (frac @ lattice) @ inv  # fractional coordinates in the reduced basis
    reach = np.floor(MIN_DISTANCE * np.linalg.norm(inv, axis=0) + 0.5).astype(int)
    shifts = np.array(list(itertools.product(*(range(-h, h + 1) for h in reach))), dtype=np.float64)
    # With every reduced vector >= MIN_DISTANCE, LLL bounds each reach by 3 (343 shifts at most).
    zero = int(np.flatnonzero(~shifts.any(axis=1))[0])
    n = len(f)
    block = max(1, _PAIR_BLOCK // (n * len(shifts)))
    threshold2 = MIN_DISTANCE**2
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = f[start:stop, None, :] - f[None, :, :]  # [c, N, 3]
        d -= np.round(d)
        cart = (d[:, :, None, :] + shifts[None, None]) @ reduced  # [c, N, K, 3]
        dist2 = np.einsum("cnkx,cnkx->cnk", cart, cart)
        rows = np.arange(stop - start)
        dist2[rows, rows + start, zero] = np.inf  # an atom is not its own neighbour
        if dist2.min() < threshold2:
            c, j, _ = np.unravel_index(int(np.argmin(dist2)), dist2.shape)
            i = start + int(c)
            dist = math.sqrt(float(dist2.min()))
            if i == j:
                raise InputError(
                    path,
                    f"atom {i} ({symbols[i]}) overlaps its own periodic image "
                    f"({dist:.3g} Å apart, closer than {MIN_DISTANCE} Å): "
                    "a lattice vector is too short",
                )
            raise InputError(
                path,
                f"overlapping atoms: {i} ({symbols[i]}) and {j} ({symbols[j]}) are {dist:.3g} Å "
                f"apart (closer than {MIN_DISTANCE} Å, periodic images included)",
            )
