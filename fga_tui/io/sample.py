"""Read samples (a crystal structure plus its description) from every supported input format.

Accepted inputs (the format is chosen by the path, see :func:`detect_format`):

* ``.json``: one JARVIS-style row ``{"jid" | "id", "atoms": {lattice_mat, coords, elements,
  cartesian, ...}, "text", "target", "tokens"}``, a bare atoms dict, or a list of rows.
  A ``.json`` file that holds one JSON document per line is read as JSONL.
* ``.jsonl`` / ``.ndjson``: one row per line; blank lines are skipped; errors name ``file:line``.
* POSCAR / CONTCAR / ``*.vasp`` / ``*.poscar`` (VASP 5, species line required) and ``.cif`` (reduced
  to the primitive cell, as ``jarvis.core.atoms.Atoms.from_cif`` does in the fork's data loader);
  these carry no text.
* A CrysMMNet-style dataset: a folder with ``description.csv`` (or the csv itself) and the
  structures in ``cif/<id>.cif`` (or next to the csv). The header row is skipped, as the fork does;
  the layout is chosen by the header's column count: 3 = class (id, target, description),
  5 = jarvis (id, composition, target, description, _), 6 = mp (id, composition, target,
  target2, description, _; ``target`` is the 3rd column, the 4th is kept in
  ``extra["target2"]``, no log10 is applied).
* Any other folder: its ``.json``/``.jsonl``/``.cif``/POSCAR files, sorted by name (not recursive).

Row fields: ``target`` may be a number, a numeric string, or "na"/""/null (→ None). ``tokens``
is a path to a token ``.npz`` relative to the sample file. Sample ids: ``jid`` / ``id``, else the
file stem, plus ``-<row>`` for rows of multi-row files.

jarvis is imported lazily (about 1.7 s) and only for POSCAR and CIF.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fga_tui.io.errors import MAX_ATOMS, InputError
from fga_tui.io.tokens import load_tokens
from fga_tui.io.types import Sample, Structure
from fga_tui.io.validate import validate_structure

JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
POSCAR_SUFFIXES = (".vasp", ".poscar")
CIF_SUFFIXES = (".cif",)
CSV_NAME = "description.csv"
_MISSING_TARGETS = frozenset({"", "na", "nan", "none", "null", "n/a"})
# Layouts of the fork's description.csv, by column count: (name, id, target, text, target2).
CsvLayout = tuple[str, int, int, int, "int | None"]
_CSV_LAYOUTS: dict[int, CsvLayout] = {
    3: ("class", 0, 1, 2, None),
    5: ("jarvis", 0, 2, 3, None),
    6: ("mp", 0, 2, 4, 3),
}
_CSV_EXPECTED = (
    "expected 3 columns (class: id, target, description), 5 (jarvis: id, composition, target, "
    "description, _) or 6 (mp: id, composition, target, target2, description, _)"
)

Item = tuple[int, Sample | InputError]
# A row not parsed yet: calling it builds the Sample or raises the row's InputError. Rows are
# enumerated cheaply (for counting) and parsed only when iterated.
Row = Callable[[], Sample]
_ASCII_SPACE = " \t\n\r\x0b\x0c"


# ---------------------------------------------------------------------------------------------
# public API


def iter_samples(path: str | Path, *, max_atoms: int = MAX_ATOMS) -> Iterator[Item]:
    """Yield ``(position, Sample | InputError)`` for every row of ``path``, lazily.

    A bad row becomes an :class:`InputError` in the stream, so a dataset scan can skip and report
    it. Problems that make the whole input unreadable (missing path, unknown format, a JSON file
    that does not parse) are raised: for a file right away, for a folder's file as that file's row.
    ``position`` counts rows from 0, bad rows included.
    """
    path = Path(path)
    rows = _rows(path, detect_format(path), max_atoms)

    def generate() -> Iterator[Item]:
        for position, row in enumerate(rows):
            try:
                yield position, row()
            except InputError as exc:
                yield position, exc

    return generate()


def count_samples(path: str | Path) -> int:
    """How many positions :func:`iter_samples` yields for ``path``, without parsing any structure
    (a description.csv dataset is counted without reading one CIF)."""
    path = Path(path)
    return sum(1 for _ in _rows(path, detect_format(path), max_atoms=0))


def load_samples(path: str | Path, *, max_atoms: int = MAX_ATOMS) -> list[Sample]:
    """All samples of ``path``; the first bad row raises its :class:`InputError`."""
    samples: list[Sample] = []
    for _, item in iter_samples(path, max_atoms=max_atoms):
        if isinstance(item, InputError):
            raise item
        samples.append(item)
    if not samples:
        raise InputError(path, "contains no samples")
    return samples


def load_sample(path: str | Path, index: int = 0, *, max_atoms: int = MAX_ATOMS) -> Sample:
    """Row ``index`` of ``path`` (0 for single-sample files); no other row is parsed."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise InputError("--index", f"must be a non-negative integer, not {index!r}")
    path = Path(path)
    count = 0
    for position, row in enumerate(_rows(path, detect_format(path), max_atoms)):
        if position == index:
            return row()
        count = position + 1
    if count == 0:
        raise InputError(path, "contains no samples")
    raise InputError(
        path, f"has {count} sample{'s' if count != 1 else ''}; index {index} is out of range"
    )


def detect_format(path: Path) -> str:
    """One of "json", "jsonl", "poscar", "cif", "csv", "folder"; InputError if unknown."""
    if not path.exists():
        raise InputError(path, "does not exist")
    if path.is_dir():
        return "csv" if (path / CSV_NAME).is_file() else "folder"
    kind = _kind_by_name(path)
    if kind is not None:
        return kind
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None
    if head[:1] in (b"{", b"["):
        return "json"
    raise InputError(
        path,
        "unknown sample format: expected .json, .jsonl, .cif, POSCAR/CONTCAR/.vasp, "
        "description.csv or a folder of samples",
    )


# ---------------------------------------------------------------------------------------------
# dispatch


def _kind_by_name(path: Path) -> str | None:
    suffix = path.suffix.lower()
    name = path.name.upper()
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CIF_SUFFIXES:
        return "cif"
    if suffix in POSCAR_SUFFIXES or name.startswith(("POSCAR", "CONTCAR")):
        return "poscar"
    if suffix == ".csv":
        return "csv"
    return None


def _failed(exc: InputError) -> Row:
    def row() -> Sample:
        raise exc

    return row


def _rows(path: Path, kind: str, max_atoms: int) -> Iterator[Row]:
    if kind == "folder":
        return _folder_rows(path, max_atoms)
    if kind == "csv":
        csv_path = path / CSV_NAME if path.is_dir() else path
        return _csv_rows(csv_path, _read_text(csv_path), max_atoms)
    if kind == "jsonl":
        if path.is_dir():
            raise InputError(path, "is a directory, expected a file")
        return _jsonl_file_rows(path, max_atoms)
    if kind == "json":
        return _json_rows(path, _read_text(path), max_atoms)
    reader = _poscar_structure if kind == "poscar" else _cif_structure
    return iter([partial(_single_structure, path, reader, max_atoms)])


def _folder_rows(folder: Path, max_atoms: int) -> Iterator[Row]:
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise InputError(folder, f"cannot be listed ({exc.strerror})") from None
    files = [
        (p, k) for p in entries if p.is_file() and (k := _kind_by_name(p)) not in (None, "csv")
    ]
    if not files:
        raise InputError(
            folder,
            "contains no sample files (.json, .jsonl, .cif, POSCAR, CONTCAR, .vasp) "
            f"and no {CSV_NAME}",
        )

    def generate() -> Iterator[Row]:
        for file, kind in files:
            try:
                yield from _rows(file, kind, max_atoms)
            except InputError as exc:  # the file as a whole is unreadable: one bad row
                yield _failed(exc)

    return generate()


# ---------------------------------------------------------------------------------------------
# files and JSON


def _read_text(path: Path) -> str:
    """Whole file as text; missing, unreadable and non-UTF-8 files are InputErrors."""
    if not path.exists():
        raise InputError(path, "does not exist")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None
    return _decode(raw, path)


def _decode(raw: bytes, where: str | Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            where,
            f"is not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8",
        ) from None


def _parse_json(text: str, where: str | Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            where, f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise InputError(where, "is not valid JSON: nested too deeply") from None


def _json_rows(path: Path, text: str, max_atoms: int) -> Iterator[Row]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and exc.lineno > 1:
            # Only "\n" ends a JSONL row: str.splitlines would also split at U+2028, which
            # JSON allows inside strings.
            return _jsonl_rows(path, text.split("\n"), max_atoms)
        raise InputError(
            path, f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise InputError(path, "is not valid JSON: nested too deeply") from None
    if isinstance(doc, dict):
        return iter([partial(_sample_from_row, doc, path, path, path.stem, max_atoms)])
    if isinstance(doc, list):
        return (
            partial(_sample_from_row, row, path, f"{path}[{i}]", f"{path.stem}-{i}", max_atoms)
            for i, row in enumerate(doc)
        )
    raise InputError(path, f"must hold a JSON object or a list of objects, not {_type(doc)}")


def _jsonl_file_rows(path: Path, max_atoms: int) -> Iterator[Row]:
    try:
        with path.open("rb") as handle:
            yield from _jsonl_rows(path, handle, max_atoms)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None


def _jsonl_rows(
    path: Path, lines: Iterable[bytes] | Iterable[str], max_atoms: int
) -> Iterator[Row]:
    """Rows of a JSONL stream (bytes or str lines); blank lines are not rows and are not
    decoded, so counting rows costs one pass over the bytes."""
    row = 0
    for number, line in enumerate(lines, start=1):
        blank = (
            line.strip(_ASCII_SPACE.encode())
            if isinstance(line, bytes)
            else line.strip(_ASCII_SPACE)
        )
        if not blank:
            continue
        yield partial(_jsonl_row, path, number, line, f"{path.stem}-{row}", max_atoms)
        row += 1


def _jsonl_row(
    path: Path, number: int, line: bytes | str, default_id: str, max_atoms: int
) -> Sample:
    where = f"{path}:{number}"
    text = _decode(line, where) if isinstance(line, bytes) else line
    return _sample_from_row(_parse_json(text, where), path, where, default_id, max_atoms)


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _peek_id(row: Any) -> str | None:
    """The row's id when it has a readable one (for the error of a row that then fails)."""
    if isinstance(row, dict):
        for key in ("jid", "id"):
            value = row.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                return str(value).strip()
    return None


def _sample_from_row(
    row: Any, file: Path, where: str | Path, default_id: str, max_atoms: int
) -> Sample:
    """One JSON row → Sample; a failing row's error carries ``sample_id`` when it has one."""
    try:
        return _parse_row(row, file, where, default_id, max_atoms)
    except InputError as exc:
        exc.sample_id = _peek_id(row)  # type: ignore[attr-defined]
        raise


def _parse_row(row: Any, file: Path, where: str | Path, default_id: str, max_atoms: int) -> Sample:
    """One JSON row → Sample. ``where`` names the row in errors (file, file:line, file[i])."""
    if not isinstance(row, dict):
        raise InputError(where, f"a sample must be a JSON object, not {_type(row)}")
    if "atoms" in row:
        atoms = row["atoms"]
        if not isinstance(atoms, dict):
            raise InputError(where, f'"atoms" must be an object, not {_type(atoms)}')
    elif "lattice_mat" in row or "coords" in row or "elements" in row:
        atoms = row
    else:
        raise InputError(
            where,
            'missing "atoms": expected {"jid", "atoms": {"lattice_mat", "coords", "elements", '
            '"cartesian"}, "text", "target"} or a bare atoms object',
        )
    for key in ("lattice_mat", "coords", "elements"):
        if key not in atoms:
            raise InputError(where, f'atoms is missing "{key}"')
    structure = validate_structure(
        atoms["lattice_mat"],
        atoms["coords"],
        atoms["elements"],
        atoms.get("cartesian", False),
        path=where,
        max_atoms=max_atoms,
    )
    sample_id = _sample_id(row, where, default_id)
    text = _text(row.get("text"), where)
    target = _target(row.get("target"), where)
    tokens = None
    if row.get("tokens") is not None:
        ref = row["tokens"]
        if not isinstance(ref, str) or not ref.strip():
            raise InputError(where, f'"tokens" must be a path to an .npz file, not {_show(ref)}')
        npz = file.parent / ref
        try:
            tokens = load_tokens(npz)
        except InputError as exc:
            raise InputError(exc.path, f'{exc.reason} (the "tokens" field of {where})') from None
    return Sample(
        id=sample_id,
        structure=structure,
        text=text,
        target=target,
        tokens=tokens,
        source=file,
        extra={"where": str(where)},
    )


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sample_id(row: dict, where: str | Path, default: str) -> str:
    for key in ("jid", "id"):
        value = row.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InputError(where, f'"{key}" must be a string, not {_show(value)}')
        text = str(value).strip()
        if text:
            return _check_str(text, f'"{key}"', where)
    return default


def _check_str(text: str, name: str, where: str | Path) -> str:
    """Reject lone surrogates (from JSON "\\ud800" escapes): they cannot be encoded or tokenized."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            where, f"{name} contains an unpaired surrogate ({text[exc.start]!r}) at {exc.start}"
        ) from None
    return text


def _text(value: Any, where: str | Path) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(where, f'"text" must be a string, not {_type(value)}')
    return _check_str(value, '"text"', where)


def _target(value: Any, where: str | Path) -> float | None:
    """Target as float; "na", "", NaN and null mean unknown (the fork drops such rows)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(where, f'"target" must be a number, not {value!r}')
    if isinstance(value, str):
        if value.strip().lower() in _MISSING_TARGETS:
            return None
        try:
            number = float(value)
        except ValueError:
            raise InputError(where, f'"target" is not a number: {_show(value)}') from None
    elif isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise InputError(where, '"target" is too large') from None
    else:
        raise InputError(where, f'"target" must be a number, not {_type(value)}')
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise InputError(where, f'"target" is {number}')
    return number


# ---------------------------------------------------------------------------------------------
# POSCAR and CIF (jarvis)


def _single_structure(
    path: Path, reader: Callable[[Path, str, int], Structure], max_atoms: int
) -> Sample:
    structure = reader(path, _read_text(path), max_atoms)
    return Sample(id=path.stem, structure=structure, source=path, extra={"where": str(path)})


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence what jarvis and spglib print as warnings on the way (spglib's DeprecationWarning
    about its own error handling, numpy RuntimeWarnings on garbage numbers): noise to a user, and
    a ``-W error`` run would turn them into misleading parse errors. Real failures still raise,
    and every number is validated afterwards."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _jarvis_error(exc: Exception) -> str:
    parts = [str(a) for a in exc.args] if exc.args else [type(exc).__name__]
    return " ".join(" ".join(parts).split()) or type(exc).__name__


def _poscar_structure(path: Path, text: str, max_atoms: int) -> Structure:
    """VASP 5 POSCAR via jarvis' parser, after the checks jarvis does not make."""
    lines = text.splitlines()
    if len(lines) < 8:
        raise InputError(
            path,
            "is too short for a POSCAR (comment, scale, 3 lattice lines, species, counts, "
            "coordinate mode, positions)",
        )
    species, counts = lines[5].split(), lines[6].split()
    if species and all(_is_int(s) for s in species):
        raise InputError(
            path,
            "has no element-symbol line (VASP 4 POSCAR); add the VASP 5 species line "
            "after the lattice vectors",
        )
    if not counts or not all(_is_int(c) for c in counts):
        raise InputError(path, f"line 7 must hold the atom counts, got {lines[6].strip()!r}")
    if len(counts) != len(species):
        raise InputError(
            path, f"line 6 names {len(species)} species but line 7 has {len(counts)} counts"
        )
    total = sum(int(c) for c in counts)
    if total > max_atoms:  # before jarvis builds per-atom lists for a huge count
        raise InputError(path, f"{total} atoms exceeds --max-atoms {max_atoms}")
    try:
        scale = float(lines[1].split()[0])
    except (ValueError, IndexError):
        raise InputError(
            path, f"line 2 must be the scale factor, got {lines[1].strip()!r}"
        ) from None
    if not scale > 0 or math.isinf(scale):
        raise InputError(path, f"scale factor {lines[1].strip()} is not supported (must be > 0)")
    from jarvis.io.vasp.inputs import Poscar

    try:
        with _quiet():
            atoms = Poscar.from_string(text).atoms
    except Exception as exc:  # jarvis raises whatever its parsing hits
        raise InputError(path, f"could not read POSCAR: {_jarvis_error(exc)}") from None
    coords = np.asarray(atoms.coords, dtype=np.float64)
    if atoms.cartesian:
        coords = coords * scale  # VASP scales Cartesian positions too; jarvis only the lattice
    return validate_structure(
        atoms.lattice_mat,
        coords,
        list(atoms.elements),
        bool(atoms.cartesian),
        path=path,
        max_atoms=max_atoms,
    )


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _cif_structure(path: Path, text: str, max_atoms: int) -> Structure:
    """CIF via jarvis' own parser, reduced to the primitive cell like the fork's data loader.

    ``use_cif2cell=False``: jarvis' default shells out to ``cif2cell`` with the unquoted file name
    (a shell-injection hazard and stray output), then falls back to this same parser anyway.
    """
    from jarvis.core.atoms import Atoms

    try:
        with _quiet():
            cell = Atoms.from_cif(from_string=text, use_cif2cell=False, get_primitive_atoms=False)
    except Exception as exc:  # jarvis raises whatever its parsing hits
        message = _jarvis_error(exc)
        if "occupancy" in message.lower():
            raise InputError(path, f"partial occupancy is not supported ({message})") from None
        raise InputError(path, f"could not read CIF: {message}") from None
    # Validate the cell as written before spglib sees it: on overlapping atoms or a degenerate
    # cell spglib's symmetry search can take minutes. Centred cells shrink up to 4x (F), so the
    # atom limit applies to the primitive cell and 4x it to the cell as written.
    if cell.num_atoms > 4 * max_atoms:
        raise InputError(
            path,
            f"{cell.num_atoms} atoms in the CIF cell exceeds 4 x --max-atoms {max_atoms} "
            "(the limit before reduction to the primitive cell)",
        )
    validate_structure(
        cell.lattice_mat,
        cell.coords,
        list(cell.elements),
        bool(cell.cartesian),
        path=path,
        max_atoms=4 * max_atoms,
    )
    try:
        with _quiet():
            atoms = cell.get_primitive_atoms
    except Exception as exc:  # spglib failures
        raise InputError(
            path, f"could not reduce to the primitive cell: {_jarvis_error(exc)}"
        ) from None
    return validate_structure(
        atoms.lattice_mat,
        atoms.coords,
        list(atoms.elements),
        bool(atoms.cartesian),
        path=path,
        max_atoms=max_atoms,
    )


# ---------------------------------------------------------------------------------------------
# CrysMMNet description.csv + cif/


def _csv_rows(csv_path: Path, text: str, max_atoms: int) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(
            csv_path, "is empty (expected a header row and one row per sample)"
        ) from None
    except csv.Error as exc:
        raise InputError(csv_path, f"is not valid CSV: {exc}") from None
    columns = len(header)
    layout = _CSV_LAYOUTS.get(columns)
    if layout is None:
        raise InputError(csv_path, f"header has {len(header)} columns; {_CSV_EXPECTED}")
    cif_dir = csv_path.parent / "cif"
    if not cif_dir.is_dir():
        cif_dir = csv_path.parent

    def generate() -> Iterator[Row]:
        while True:
            where = f"{csv_path}:{reader.line_num + 1}"
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _failed(InputError(where, f"is not valid CSV: {exc}"))
                continue
            if any(cell.strip() for cell in row):
                yield partial(
                    _csv_sample, row, columns, layout, csv_path, where, cif_dir, max_atoms
                )

    return generate()


def _csv_sample(
    row: list[str],
    columns: int,
    layout: CsvLayout,
    csv_path: Path,
    where: str,
    cif_dir: Path,
    max_atoms: int,
) -> Sample:
    try:
        return _parse_csv_row(row, columns, layout, csv_path, where, cif_dir, max_atoms)
    except InputError as exc:
        readable = len(row) > layout[1] and row[layout[1]].strip()
        exc.sample_id = row[layout[1]].strip() if readable else None  # type: ignore[attr-defined]
        raise


def _parse_csv_row(
    row: list[str],
    columns: int,
    layout: CsvLayout,
    csv_path: Path,
    where: str,
    cif_dir: Path,
    max_atoms: int,
) -> Sample:
    name, id_col, target_col, text_col, target2_col = layout
    if len(row) != columns:
        raise InputError(where, f"has {len(row)} columns, expected {columns} ({name} layout)")
    sample_id = row[id_col].strip()
    if not sample_id:
        raise InputError(where, "the id column is empty")
    if sample_id in (".", "..") or any(sep in sample_id for sep in ("/", "\\", "\0")):
        raise InputError(where, f"id {sample_id!r} is not a plain file name")
    cif_path = cif_dir / f"{sample_id}.cif"
    if not cif_path.is_file():
        raise InputError(cif_path, f"does not exist (structure for row {where})")
    structure = _cif_structure(cif_path, _read_text(cif_path), max_atoms)
    extra: dict[str, Any] = {"where": where, "csv": str(csv_path), "layout": name}
    if target2_col is not None:
        extra["target2"] = _target(row[target2_col], where)
    return Sample(
        id=sample_id,
        structure=structure,
        text=_check_str(row[text_col], "the description", where),
        target=_target(row[target_col], where),
        source=cif_path,
        extra=extra,
    )
