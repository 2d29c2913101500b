"""Fuzzing the sample reader: whatever a file holds, the result is a valid Sample or an InputError.

Any other exception would reach the user as a traceback instead of a one-line message and exit
code 2, so this is the contract the CLI relies on.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fga_tui.io.errors import InputError
from fga_tui.io.sample import count_samples, iter_samples
from fga_tui.io.types import Sample
from fga_tui.io.validate import ATOMIC_NUMBER, MIN_VOLUME

MAX_ATOMS = 50
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEYS = [
    "jid", "id", "atoms", "lattice_mat", "coords", "elements", "cartesian", "text", "target",
    "tokens", "props",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["na", "Na", "Cl", "Xx", "", "1.5", "nan", "../x.npz", "\ud800"]),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=6),
    ),
    max_leaves=30,
)


def nacl_row() -> dict:
    return {
        "jid": "nacl",
        "atoms": {
            "lattice_mat": [[0.0, 2.82, 2.82], [2.82, 0.0, 2.82], [2.82, 2.82, 0.0]],
            "coords": [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]],
            "elements": ["Na", "Cl"],
            "cartesian": False,
            "props": ["", ""],
        },
        "text": "NaCl is rock salt.",
        "target": 1.48,
    }


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def check(path: Path) -> None:
    """Read every row; each must be a valid Sample or an InputError naming something."""
    try:
        items = [item for _, item in iter_samples(path, max_atoms=MAX_ATOMS)]
    except InputError as exc:
        assert exc.reason
        return
    assert count_samples(path) == len(items)
    for item in items:
        if isinstance(item, InputError):
            assert item.reason and "\n" not in item.message
        else:
            assert_valid(item)


def assert_valid(sample: Sample) -> None:
    assert isinstance(sample, Sample) and isinstance(sample.id, str)
    s = sample.structure
    assert s.lattice.shape == (3, 3) and np.isfinite(s.lattice).all()
    assert abs(np.linalg.det(s.lattice)) >= MIN_VOLUME
    assert 0 < s.num_atoms <= MAX_ATOMS
    assert s.frac_coords.shape == (s.num_atoms, 3) and np.isfinite(s.frac_coords).all()
    assert all(el in ATOMIC_NUMBER for el in s.elements)
    assert sample.text is None or isinstance(sample.text, str)
    if sample.text is not None:
        sample.text.encode("utf-8")
    assert sample.target is None or math.isfinite(sample.target)


@FUZZ
@given(doc=json_values)
def test_arbitrary_json_documents_give_samples_or_input_errors(doc: Any) -> None:
    with scratch() as tmp:
        path = tmp / "doc.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        check(path)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(doc: dict, where: tuple, action: str, value: Any) -> Any:
    if not where:
        return value if action == "replace" else doc
    parent: Any = doc
    for key in where[:-1]:
        parent = parent[key]
    key = where[-1]
    if action == "replace":
        parent[key] = value
    elif action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(parent[key])
    elif (
        action == "scale"
        and isinstance(parent[key], (int, float))
        and not isinstance(parent[key], bool)
    ):
        parent[key] = parent[key] * (value if isinstance(value, (int, float)) else 1e-9)
    return doc


@FUZZ
@given(data=st.data())
def test_mutated_valid_samples_give_samples_or_input_errors(data: st.DataObject) -> None:
    doc: Any = nacl_row()
    for _ in range(data.draw(st.integers(1, 4))):
        if not isinstance(doc, dict):
            break
        where = data.draw(st.sampled_from(_paths(doc)))
        action = data.draw(st.sampled_from(["replace", "delete", "duplicate", "scale"]))
        value = data.draw(json_values)
        doc = _mutate(doc, where, action, value)
    as_list = data.draw(st.booleans())
    with scratch() as tmp:
        path = tmp / "mutated.json"
        path.write_text(json.dumps([doc, nacl_row()] if as_list else doc), encoding="utf-8")
        check(path)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.just(json.dumps(nacl_row()).encode()),
            st.just(b""),
            json_values.map(lambda v: json.dumps(v).encode()),
        ),
        max_size=5,
    ),
    suffix=st.sampled_from([".jsonl", ".json", ".txt"]),
)
def test_arbitrary_bytes_give_samples_or_input_errors(lines: list[bytes], suffix: str) -> None:
    with scratch() as tmp:
        path = tmp / f"rows{suffix}"
        path.write_bytes(b"\n".join(lines))
        check(path)


POSCAR = """nacl
1.0
5.64 0.0 0.0
0.0 5.64 0.0
0.0 0.0 5.64
Na Cl
1 1
Direct
0.0 0.0 0.0
0.5 0.5 0.5
"""


@settings(FUZZ, max_examples=60)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(POSCAR)), st.integers(0, 4), st.text(max_size=6)), max_size=3
    )
)
def test_mutated_poscar_gives_a_sample_or_an_input_error(
    edits: list[tuple[int, int, str]],
) -> None:
    text = POSCAR
    for at, cut, insert in edits:
        text = text[:at] + insert + text[at + cut :]
    with scratch() as tmp:
        path = tmp / "POSCAR"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check(path)


def _rocksalt_cif() -> str:
    import warnings

    from jarvis.core.atoms import Atoms

    atoms = Atoms(
        lattice_mat=np.eye(3) * 5.64,
        coords=[[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0], [0.5, 0.5, 0.5]],
        elements=["Na", "Na", "Na", "Na", "Cl"],
        cartesian=False,
    )
    with scratch() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        atoms.write_cif(str(tmp / "x.cif"))
        return (tmp / "x.cif").read_text()


CIF_PIECES = [
    "",
    "0.5",
    "x",
    "\n",
    " ",
    "loop_\n",
    "_atom_site",
    "nan",
    "-",
    "1e9",
    "Xx",
    "'x,y,z'",
]


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_mutated_cif_gives_a_sample_or_an_input_error(data: st.DataObject) -> None:
    text = _rocksalt_cif()
    edit = st.tuples(st.integers(0, len(text)), st.integers(0, 8), st.sampled_from(CIF_PIECES))
    for at, cut, insert in data.draw(st.lists(edit, max_size=4)):
        text = text[:at] + insert + text[at + cut :]
    with scratch() as tmp:
        path = tmp / "mutated.cif"
        path.write_text(text, encoding="utf-8")
        check(path)
