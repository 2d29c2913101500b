"""Reading samples: every format round-trips; every broken input is one clear InputError."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from fga_tui.io.errors import InputError
from fga_tui.io.sample import count_samples, iter_samples, load_sample, load_samples
from fga_tui.io.validate import validate_structure

FIXTURES = Path(__file__).parent / "fixtures"
NACL_JSON = FIXTURES / "nacl.json"

# Rock salt, conventional cubic cell (8 atoms): POSCAR keeps it, CIF reduces it to 2 atoms.
CUBIC = 5.64
ROCKSALT_FRAC = [
    [0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0],
    [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5],
]  # fmt: skip
ROCKSALT_ELEMENTS = ["Na"] * 4 + ["Cl"] * 4


def atoms_dict(**over: object) -> dict:
    d = {
        "lattice_mat": [[0.0, 2.82, 2.82], [2.82, 0.0, 2.82], [2.82, 2.82, 0.0]],
        "coords": [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]],
        "elements": ["Na", "Cl"],
        "cartesian": False,
        "props": ["", ""],
    }
    d.update(over)
    return d


def row(**over: object) -> dict:
    r = {"jid": "JVASP-23862", "atoms": atoms_dict(), "text": "NaCl is rock salt.", "target": 1.5}
    r.update(over)
    return r


def write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def error_of(path: Path, **kw: object) -> InputError:
    with pytest.raises(InputError) as info:
        load_sample(path, **kw)
    return info.value


# ------------------------------------------------------------------------------ formats


def test_fixture_nacl_json_loads_two_atoms_na_cl() -> None:
    s = load_sample(NACL_JSON)
    assert s.id == "nacl"
    assert s.structure.elements == ("Na", "Cl")
    assert s.structure.num_atoms == 2
    np.testing.assert_allclose(s.structure.frac_coords, [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert s.text is not None and s.text.startswith("NaCl is Halite")
    assert s.target == pytest.approx(1.4833067851339243)
    assert s.source == NACL_JSON
    assert s.tokens is None


def test_json_row_round_trips_and_na_target_is_none(tmp_path: Path) -> None:
    s = load_sample(write_json(tmp_path / "x.json", row(target="na")))
    assert s.id == "JVASP-23862"
    assert s.target is None
    assert s.text == "NaCl is rock salt."
    np.testing.assert_allclose(s.structure.lattice, atoms_dict()["lattice_mat"])


def test_id_field_and_file_stem_are_fallback_ids(tmp_path: Path) -> None:
    r = row()
    del r["jid"]
    assert load_sample(write_json(tmp_path / "a.json", {**r, "id": 7})).id == "7"
    assert load_sample(write_json(tmp_path / "b.json", r)).id == "b"


def test_bare_atoms_dict_is_a_sample_without_text(tmp_path: Path) -> None:
    s = load_sample(write_json(tmp_path / "bare.json", atoms_dict()))
    assert s.id == "bare" and s.text is None and s.target is None
    assert s.structure.elements == ("Na", "Cl")


def test_numeric_string_target_is_parsed(tmp_path: Path) -> None:
    assert load_sample(write_json(tmp_path / "t.json", row(target="-0.25"))).target == -0.25


def test_json_list_gives_rows_with_indexed_ids(tmp_path: Path) -> None:
    path = write_json(tmp_path / "many.json", [row(jid=None), row(jid="b"), row(jid=None)])
    samples = load_samples(path)
    assert [s.id for s in samples] == ["many-0", "b", "many-2"]
    assert load_sample(path, index=1).id == "b"


def test_jsonl_skips_blank_lines_and_names_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps(row(jid="a")) + "\n\n" + "{not json\n" + json.dumps(row(jid="c")) + "\n",
        encoding="utf-8",
    )
    items = list(iter_samples(path))
    assert [pos for pos, _ in items] == [0, 1, 2]
    assert items[0][1].id == "a"
    assert items[2][1].id == "c"
    bad = items[1][1]
    assert isinstance(bad, InputError)
    assert f"{path}:3" in str(bad) and "not valid JSON" in str(bad)
    with pytest.raises(InputError, match=r"rows\.jsonl:3"):
        load_samples(path)


def test_load_sample_parses_only_the_requested_row(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("{broken\n" + json.dumps(row(jid="b")) + "\n")
    assert load_sample(path, index=1).id == "b"
    assert count_samples(path) == 2


def test_json_file_with_one_object_per_line_reads_as_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(row(jid="a")) + "\n" + json.dumps(row(jid="b")) + "\n")
    assert [s.id for s in load_samples(path)] == ["a", "b"]


def test_index_out_of_range_says_how_many(tmp_path: Path) -> None:
    path = write_json(tmp_path / "two.json", [row(), row()])
    err = error_of(path, index=5)
    assert str(path) in str(err) and "has 2 samples" in str(err) and "out of range" in str(err)


def test_cartesian_coords_become_fractional(tmp_path: Path) -> None:
    lat = np.array(atoms_dict()["lattice_mat"])
    cart = (np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]) @ lat).tolist()
    s = load_sample(
        write_json(tmp_path / "c.json", row(atoms=atoms_dict(coords=cart, cartesian=True)))
    )
    np.testing.assert_allclose(s.structure.frac_coords, [[0, 0, 0], [0.5, 0.5, 0.5]], atol=1e-12)


def test_fractional_coords_are_not_wrapped(tmp_path: Path) -> None:
    coords = [[-0.25, 1.0, 0.0], [1.5, 0.5, 2.5]]
    s = load_sample(write_json(tmp_path / "w.json", row(atoms=atoms_dict(coords=coords))))
    np.testing.assert_array_equal(s.structure.frac_coords, coords)


def test_left_handed_lattice_is_accepted(tmp_path: Path) -> None:
    lat = [[2.82, 0.0, 2.82], [0.0, 2.82, 2.82], [2.82, 2.82, 0.0]]  # det < 0
    assert np.linalg.det(lat) < 0
    s = load_sample(write_json(tmp_path / "l.json", row(atoms=atoms_dict(lattice_mat=lat))))
    assert s.structure.num_atoms == 2


def test_tokens_field_is_relative_to_the_sample_file(tmp_path: Path) -> None:
    sub = tmp_path / "tok"
    sub.mkdir()
    np.savez(
        sub / "n.npz",
        tokens=np.array(["[CLS]", "na", "[SEP]"]),
        embeddings=np.ones((3, 4), np.float32),
    )
    s = load_sample(write_json(tmp_path / "s.json", row(tokens="tok/n.npz")))
    assert s.tokens is not None and s.tokens.tokens == ("[CLS]", "na", "[SEP]")
    err = error_of(write_json(tmp_path / "m.json", row(tokens="tok/missing.npz")))
    assert "missing.npz" in str(err) and "does not exist" in str(err) and "m.json" in str(err)


def _write_rocksalt_with_jarvis(tmp_path: Path) -> tuple[Path, Path]:
    from jarvis.core.atoms import Atoms

    atoms = Atoms(
        lattice_mat=np.eye(3) * CUBIC, coords=ROCKSALT_FRAC, elements=ROCKSALT_ELEMENTS,
        cartesian=False,
    )  # fmt: skip
    poscar, cif = tmp_path / "POSCAR", tmp_path / "rocksalt.cif"
    atoms.write_poscar(str(poscar))
    with warnings.catch_warnings():  # spglib's deprecation notice, via jarvis' symmetry call
        warnings.simplefilter("ignore", DeprecationWarning)
        atoms.write_cif(str(cif))
    return poscar, cif


def test_poscar_round_trip_keeps_lattice_coords_elements(tmp_path: Path) -> None:
    poscar, _ = _write_rocksalt_with_jarvis(tmp_path)
    s = load_sample(poscar)
    assert s.id == "POSCAR" and s.text is None
    np.testing.assert_allclose(s.structure.lattice, np.eye(3) * CUBIC, atol=1e-6)
    got = sorted(
        zip(s.structure.elements, map(tuple, s.structure.frac_coords.round(6)), strict=True)
    )
    want = sorted(zip(ROCKSALT_ELEMENTS, map(tuple, np.array(ROCKSALT_FRAC, float)), strict=True))
    assert got == want


def test_cif_round_trip_is_reduced_to_the_primitive_cell(tmp_path: Path) -> None:
    _, cif = _write_rocksalt_with_jarvis(tmp_path)
    s = load_sample(cif)
    # jarvis' from_cif (what the fork's data loader uses) returns the 2-atom fcc primitive cell.
    assert sorted(s.structure.elements) == ["Cl", "Na"]
    assert abs(np.linalg.det(s.structure.lattice)) == pytest.approx(CUBIC**3 / 4, abs=1e-6)
    lengths = np.linalg.norm(s.structure.lattice, axis=1)
    np.testing.assert_allclose(lengths, CUBIC / np.sqrt(2), atol=1e-6)
    cart = s.structure.cart_coords
    na_cl = np.linalg.norm(cart[0] - cart[1])
    # the Na-Cl separation inside the cell is a multiple-free half body diagonal: a/2 or √3·a/2
    assert min(abs(na_cl - CUBIC / 2), abs(na_cl - CUBIC * np.sqrt(3) / 2)) < 1e-6


def test_folder_of_json_samples_is_sorted(tmp_path: Path) -> None:
    write_json(tmp_path / "b.json", row(jid="second"))
    write_json(tmp_path / "a.json", row(jid="first"))
    (tmp_path / "notes.md").write_text("not a sample")
    assert [s.id for s in load_samples(tmp_path)] == ["first", "second"]


def test_folder_scan_reports_bad_file_and_keeps_going(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", row(jid="ok"))
    (tmp_path / "b.json").write_text("{broken")
    write_json(tmp_path / "c.json", row(jid="ok2"))
    items = [item for _, item in iter_samples(tmp_path)]
    assert items[0].id == "ok" and items[2].id == "ok2"
    assert isinstance(items[1], InputError) and "b.json" in str(items[1])


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    err = error_of(tmp_path)
    assert str(tmp_path) in str(err) and "no sample files" in str(err)


def _crysmmnet(tmp_path: Path, header: str, rows: list[str]) -> Path:
    _, cif = _write_rocksalt_with_jarvis(tmp_path)
    (tmp_path / "cif").mkdir()
    for name in ("JVASP-1", "JVASP-2"):
        (tmp_path / "cif" / f"{name}.cif").write_text(cif.read_text())
    cif.unlink()
    (tmp_path / "POSCAR").unlink()
    (tmp_path / "description.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_description_csv_jarvis_layout(tmp_path: Path) -> None:
    folder = _crysmmnet(
        tmp_path,
        "id,composition,target,description,extra",
        ['JVASP-1,NaCl,1.25,"NaCl is rock salt, cubic.",x', "JVASP-2,NaCl,na,Second.,y"],
    )
    samples = load_samples(folder)
    assert [s.id for s in samples] == ["JVASP-1", "JVASP-2"]
    assert samples[0].text == "NaCl is rock salt, cubic."
    assert samples[0].target == 1.25 and samples[1].target is None
    assert samples[0].source == folder / "cif" / "JVASP-1.cif"
    assert samples[0].extra["layout"] == "jarvis"
    assert sorted(samples[0].structure.elements) == ["Cl", "Na"]
    # the csv itself is accepted too
    assert load_sample(folder / "description.csv", index=1).id == "JVASP-2"


def test_description_csv_class_and_mp_layouts(tmp_path: Path) -> None:
    folder = _crysmmnet(tmp_path, "id,target,description", ["JVASP-1,1,Metal."])
    s = load_sample(folder)
    assert (s.target, s.text, s.extra["layout"]) == (1.0, "Metal.", "class")
    (folder / "description.csv").write_text(
        "id,comp,e_form,gap,desc,_\nJVASP-2,NaCl,-2.1,4.5,Insulator.,\n"
    )
    s = load_sample(folder)
    assert (s.target, s.extra["target2"], s.text, s.extra["layout"]) == (
        -2.1,
        4.5,
        "Insulator.",
        "mp",
    )


def test_description_csv_missing_cif_and_bad_rows_are_row_errors(tmp_path: Path) -> None:
    folder = _crysmmnet(
        tmp_path,
        "id,composition,target,description,_",
        [
            "JVASP-9,NaCl,1,Text.,",
            "JVASP-1,NaCl,1,Text.",
            "../x,NaCl,1,Text.,",
            "JVASP-2,NaCl,1,T.,",
        ],
    )
    items = [item for _, item in iter_samples(folder)]
    assert "JVASP-9.cif" in str(items[0]) and "does not exist" in str(items[0])
    assert "description.csv:3" in str(items[1]) and "has 4 columns, expected 5" in str(items[1])
    assert "not a plain file name" in str(items[2])
    assert items[3].id == "JVASP-2"


def test_count_samples_matches_iter_samples_without_parsing(tmp_path: Path) -> None:
    folder = _crysmmnet(
        tmp_path,
        "id,composition,target,description,_",
        ["JVASP-1,NaCl,1,Text.,", "", "JVASP-missing,NaCl,1,Text.,", "JVASP-2,NaCl,1,T.,"],
    )
    assert count_samples(folder) == 3 == len(list(iter_samples(folder)))
    many = write_json(tmp_path / "many.json", [row(), {"broken": 1}, row()])
    assert count_samples(many) == 3
    assert count_samples(NACL_JSON) == 1


def test_description_csv_with_unknown_layout_is_an_error(tmp_path: Path) -> None:
    folder = _crysmmnet(tmp_path, "a,b", ["JVASP-1,1"])
    err = error_of(folder)
    assert "description.csv" in str(err) and "2 columns" in str(err)


# ------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.json")
    assert "nope.json" in str(err) and "does not exist" in str(err)


def test_not_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "jid": "x",\n  "atoms": [1, 2,,]\n}')
    err = error_of(path)
    assert str(path) in str(err) and "not valid JSON" in str(err) and "line 3, column" in str(err)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(row(text="Å"), ensure_ascii=False).encode("latin-1"))
    err = error_of(path)
    assert str(path) in str(err) and "not UTF-8" in str(err)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(row()).encode())
    assert load_sample(path).id == "JVASP-23862"


@pytest.mark.parametrize(
    ("doc", "phrase"),
    [
        ({"jid": "x", "text": "t"}, 'missing "atoms"'),
        (row(atoms=[1, 2]), '"atoms" must be an object'),
        (row(atoms={"coords": [[0, 0, 0]], "elements": ["Na"]}), 'missing "lattice_mat"'),
        (row(atoms={"lattice_mat": np.eye(3).tolist(), "elements": ["Na"]}), 'missing "coords"'),
        (
            row(atoms={"lattice_mat": np.eye(3).tolist(), "coords": [[0, 0, 0]]}),
            'missing "elements"',
        ),
        (row(atoms=atoms_dict(lattice_mat=[[1, 0, 0], [0, 1, 0]])), "3x3"),
        (row(atoms=atoms_dict(lattice_mat=[[1, 0], [0, 1], [0, 0]])), "3x3"),
        (row(atoms=atoms_dict(coords=[[0, 0, 0], [0.5, 0.5]])), "row 1 has 2 values"),
        (row(atoms=atoms_dict(coords=[0.0, 0.5])), "row 0 has"),
        (row(atoms=atoms_dict(elements=["Na"])), "elements has 1 entries but coords has 2 rows"),
        (
            row(atoms=atoms_dict(coords=[[0, 0, 0], [0.5, "x", 0.5]])),
            "coords[1][1] is not a number",
        ),
        (row(atoms=atoms_dict(coords=[[0, 0, 0], [0.5, True, 0.5]])), "is not a number"),
        (row(atoms=atoms_dict(lattice_mat=[[1, 0, 0], [0, "1", 0], [0, 0, 1]])), "not a number"),
        (row(atoms=atoms_dict(elements=["Na", "Xx"])), "unknown element symbol 'Xx'"),
        (row(atoms=atoms_dict(elements=["Na", 17])), "not an element symbol"),
        (row(atoms=atoms_dict(cartesian="yes")), '"cartesian" must be true or false'),
        (row(atoms=atoms_dict(coords=[], elements=[])), "empty (0 atoms)"),
        (row(text=42), '"text" must be a string'),
        (row(text="bad \ud800 surrogate"), "unpaired surrogate"),
        (row(target="abc"), '"target" is not a number'),
        (row(target=[1]), '"target" must be a number'),
        (row(jid=[1]), '"jid" must be a string'),
        (row(tokens=5), '"tokens" must be a path'),
        ([1, 2], "must be a JSON object"),
        ("just a string", "must hold a JSON object or a list"),
    ],
)
def test_bad_rows_name_file_and_problem(tmp_path: Path, doc: object, phrase: str) -> None:
    path = write_json(tmp_path / "s.json", doc)
    err = error_of(path)
    assert str(path) in str(err)
    assert phrase in str(err)


def test_nan_and_inf_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(row()).replace("2.82", "NaN", 1))
    assert "NaN or inf" in str(error_of(path))
    path.write_text(json.dumps(row()).replace("0.5", "Infinity", 1))
    assert "NaN or inf" in str(error_of(path))
    path.write_text(json.dumps(row()).replace("0.5", "1e999", 1))
    assert "NaN or inf" in str(error_of(path))


def test_singular_lattice_is_an_error(tmp_path: Path) -> None:
    flat = [[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]]
    err = error_of(write_json(tmp_path / "s.json", row(atoms=atoms_dict(lattice_mat=flat))))
    assert "singular" in str(err) and "volume" in str(err)


def test_more_atoms_than_max_atoms(tmp_path: Path) -> None:
    def chain(n: int) -> dict:
        coords = [[i / n, 0.0, 0.0] for i in range(n)]
        lat = (np.eye(3) * 2000).tolist()
        return row(atoms=atoms_dict(lattice_mat=lat, coords=coords, elements=["H"] * n))

    err = error_of(write_json(tmp_path / "big.json", chain(5001)))
    assert str(tmp_path / "big.json") in str(err)
    assert "5001 atoms exceeds --max-atoms 5000" in str(err)
    at_limit = load_sample(write_json(tmp_path / "limit.json", chain(5000)))
    assert at_limit.structure.num_atoms == 5000
    ok = load_sample(write_json(tmp_path / "ok.json", chain(1200)), max_atoms=1200)
    assert ok.structure.num_atoms == 1200


def test_overlapping_atoms_are_an_error(tmp_path: Path) -> None:
    doc = row(atoms=atoms_dict(coords=[[0.1, 0.1, 0.1], [0.1, 0.1, 0.105]]))
    err = error_of(write_json(tmp_path / "o.json", doc))
    assert "overlapping atoms" in str(err) and "0 (Na) and 1 (Cl)" in str(err)


def test_overlap_across_the_periodic_boundary_is_found(tmp_path: Path) -> None:
    doc = row(atoms=atoms_dict(coords=[[0.0, 0.0, 0.001], [0.0, 0.0, 0.999]]))
    err = error_of(write_json(tmp_path / "o.json", doc))
    assert "overlapping atoms" in str(err)


def test_poscar_scale_factor_applies_to_lattice_and_cartesian_positions(tmp_path: Path) -> None:
    path = tmp_path / "nacl.vasp"
    path.write_text(
        "nacl\n2.0\n2.82 0 0\n0 2.82 0\n0 0 2.82\nNa Cl\n1 1\nCartesian\n0 0 0\n1.41 1.41 1.41\n"
    )
    s = load_sample(path)
    np.testing.assert_allclose(s.structure.lattice, np.eye(3) * 5.64)
    np.testing.assert_allclose(s.structure.frac_coords, [[0, 0, 0], [0.5, 0.5, 0.5]], atol=1e-12)


def test_poscar_vasp4_without_species_line(tmp_path: Path) -> None:
    path = tmp_path / "POSCAR"
    path.write_text("nacl\n1.0\n5.64 0 0\n0 5.64 0\n0 0 5.64\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n")
    err = error_of(path)
    assert str(path) in str(err) and "VASP 4" in str(err)


def test_poscar_garbage_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "CONTCAR"
    path.write_text(
        "x\n1.0\n5 0 0\n0 5 0\n0 0 5\nNa Cl\n1 1\nDirect\n0 0 0\n"
    )  # one position short
    err = error_of(path)
    assert str(path) in str(err) and "POSCAR" in str(err)


def test_cif_with_partial_occupancy_is_an_error(tmp_path: Path) -> None:
    _, cif = _write_rocksalt_with_jarvis(tmp_path)
    text = cif.read_text().replace("0.00000  0.00000  0.00000  1", "0.00000  0.00000  0.00000  0.5")
    assert text != cif.read_text()
    cif.write_text(text)
    err = error_of(cif)
    assert str(cif) in str(err) and "partial occupancy" in str(err)


def test_cif_garbage_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.cif"
    path.write_text("data_junk\n_cell_length_a 5\n")
    err = error_of(path)
    assert str(path) in str(err) and "could not read CIF" in str(err)


def test_unknown_suffix_is_sniffed_or_rejected(tmp_path: Path) -> None:
    assert load_sample(write_json(tmp_path / "sample.txt", row())).id == "JVASP-23862"
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert "unknown sample format" in str(error_of(other))


def test_iter_samples_raises_for_a_missing_path_up_front(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        iter_samples(tmp_path / "missing.jsonl")


def test_jarvis_is_not_imported_for_json(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from fga_tui.io.sample import load_sample; "
        f"load_sample({str(NACL_JSON)!r}); "
        "print(any(m.startswith('jarvis') for m in sys.modules), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------------ validate_structure


def test_validate_structure_self_image_overlap_in_a_skewed_cell() -> None:
    # c - 20a = (0, 0, 0.05): a 0.05 Å lattice vector hidden behind two long basis vectors.
    skew = [[3.0, 0, 0], [0, 3.0, 0], [60.0, 0, 0.05]]
    with pytest.raises(InputError, match="own periodic image"):
        validate_structure(skew, [[0, 0, 0]], ["Si"], False, path="cell", max_atoms=10)


def test_validate_structure_needle_cell_is_rejected_quickly() -> None:
    # Volume 1e-4 Å³ passes the singularity test, but 1e-4 Å lattice vectors stack every atom.
    needle = [[1e-4, 0, 0], [0, 1e-4, 0], [0, 0, 1e4]]
    with pytest.raises(InputError, match="own periodic image"):
        validate_structure(needle, [[0, 0, 0]] * 2, ["Si", "O"], False, path="n", max_atoms=10)


def test_validate_structure_skewed_cell_minimum_image() -> None:
    # Atoms far apart in fractional space but 0.05 Å apart through a skewed image.
    lat = np.array([[4.0, 0, 0], [0, 4.0, 0], [40.0, 0.0, 4.0]])
    cart_b = np.array([40.0 + 0.05, 0.0, 4.0])  # = c + (0.05, 0, 0): next to atom a's image
    frac_b = np.linalg.solve(lat.T, cart_b)
    with pytest.raises(InputError, match="overlapping atoms"):
        validate_structure(
            lat, [[0, 0, 0], frac_b.tolist()], ["Si", "O"], False, path="p", max_atoms=10
        )
    ok = validate_structure(
        lat, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Si", "O"], False, path="p", max_atoms=10
    )
    assert ok.num_atoms == 2


def test_validate_structure_accepts_numpy_arrays() -> None:
    s = validate_structure(
        np.eye(3) * 4, np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]), np.array(["Si", "C"]), True,
        path="arr", max_atoms=10,
    )  # fmt: skip
    np.testing.assert_allclose(s.frac_coords, [[0, 0, 0], [0.125, 0.125, 0.125]])


def test_overlap_check_accepts_a_thousand_atoms_at_the_limit() -> None:
    """1000 slightly rattled atoms on a 2 Å grid: valid, and exactly at --max-atoms (its speed
    is in benchmarks/bench_limits.py)."""
    rng = np.random.default_rng(0)
    side = 10
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3) / side
    coords = grid + rng.uniform(-0.01, 0.01, grid.shape)
    lat = np.array([[20.0, 0, 0], [5.0, 20.0, 0], [3.0, 4.0, 20.0]])
    s = validate_structure(lat, coords, ["O"] * len(coords), False, path="big", max_atoms=1000)
    assert s.num_atoms == 1000
    with pytest.raises(InputError, match="1000 atoms exceeds --max-atoms 999"):
        validate_structure(lat, coords, ["O"] * len(coords), False, path="big", max_atoms=999)
