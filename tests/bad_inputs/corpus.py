"""A table of malformed inputs for the headless CLI, each built into a temporary folder.

Every :class:`Case` names one bad input (a checkpoint, a sample, a token file or an argument),
a builder that writes it under ``tmp`` and returns the full ``fga-tui`` argv, and the substrings
the one-line error must contain. Nothing binary is committed: checkpoints, archives and the
5,000-atom cell are generated here from the fixtures in ``tests/fixtures``.

Positive controls (``exit_code=0``) sit in the same table: inputs that look suspicious but are
valid (a 1-atom cell, NaN weights that load and are reported by ``audit``).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import pickle
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FORK_CKPT = FIXTURES / "fork_ckpt.pt"
NACL_JSON = FIXTURES / "nacl.json"
NACL_TOKENS = FIXTURES / "nacl.tokens.npz"
MARKER = "pwned.marker"  # what a malicious pickle would create in the case's folder


@dataclass(frozen=True)
class Built:
    """A built case: the argv, what the message must name, and optional extra checks.

    ``names``: the path or option the one-line message must contain. ``check``: called after
    the run (side effects that must not have happened, files that must be unchanged).
    """

    argv: list[str]
    names: str
    check: Callable[[], None] | None = None


@dataclass(frozen=True)
class Case:
    """One corpus entry; ``expect`` are substrings of stderr (exit 2) or stdout (exit 0)."""

    name: str
    build: Callable[[Path], Built]
    expect: tuple[str, ...]
    exit_code: int = 2


# ---------------------------------------------------------------------------------------------
# helpers


def _writable(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (root ignores permission bits)."""
    probe = folder / ".probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


@functools.cache
def _fork_state() -> dict[str, torch.Tensor]:
    from fga_tui.io.checkpoint import load_checkpoint

    return load_checkpoint(FORK_CKPT).state_dict


def fork_state() -> dict[str, torch.Tensor]:
    """A shallow copy of the fork checkpoint's tensors (replace entries, never mutate them)."""
    return dict(_fork_state())


def fork_config() -> dict[str, Any]:
    return json.loads((FIXTURES / "fork_ckpt.expected-config.json").read_text())


def nacl_row() -> dict[str, Any]:
    return copy.deepcopy(json.loads(NACL_JSON.read_text()))


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def _save(path: Path, obj: Any) -> Path:
    torch.save(obj, path)
    return path


def _config_wrapped(tmp: Path, state: dict[str, torch.Tensor], name: str = "ckpt.pt") -> Path:
    """The fork's layout (weights + config), with the config as a plain dict."""
    return _save(tmp / name, {"model": state, "config": fork_config()})


def audit(ckpt: Path | str, *extra: str) -> list[str]:
    return ["audit", str(ckpt), "--device", "cpu", *extra]


def report(
    sample: Path | str, *extra: str, ckpt: Path | str = FORK_CKPT, tokens: Path | str | None = None
) -> list[str]:
    return [
        "report",
        str(ckpt),
        str(sample),
        "--tokens",
        str(NACL_TOKENS if tokens is None else tokens),
        "--device",
        "cpu",
        "--no-ablations",
        *extra,
    ]


def export(out: Path | str, *extra: str, ckpt: Path | str = FORK_CKPT) -> list[str]:
    return [
        "export",
        str(ckpt),
        str(NACL_JSON),
        "--tokens",
        str(NACL_TOKENS),
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def _no_marker(tmp: Path) -> Callable[[], None]:
    def check() -> None:
        assert not (tmp / MARKER).exists(), "the malicious pickle ran code"

    return check


def _unchanged(path: Path) -> Callable[[], None]:
    before = path.read_bytes()

    def check() -> None:
        assert path.read_bytes() == before, f"{path} was overwritten"

    return check


# ---------------------------------------------------------------------------------------------
# checkpoints


def ckpt_missing(tmp: Path) -> Built:
    path = tmp / "missing.pt"
    return Built(audit(path), str(path))


def ckpt_directory(tmp: Path) -> Built:
    path = tmp / "model.pt"
    path.mkdir()
    return Built(audit(path), str(path))


def ckpt_empty(tmp: Path) -> Built:
    path = tmp / "empty.pt"
    path.write_bytes(b"")
    return Built(audit(path), str(path))


def ckpt_truncated_zip(tmp: Path) -> Built:
    path = tmp / "truncated.pt"
    with FORK_CKPT.open("rb") as fh:
        path.write_bytes(fh.read(1000))
    return Built(audit(path), str(path))


def ckpt_json_named_pt(tmp: Path) -> Built:
    path = _write_json(tmp / "model.pt", fork_config())
    return Built(audit(path), str(path))


def ckpt_random_bytes(tmp: Path) -> Built:
    data = bytearray(random.Random(7).randbytes(4096))
    data[:2] = b"\x13\x37"  # not a pickle opcode, not a zip magic
    path = tmp / "random.pt"
    path.write_bytes(bytes(data))
    return Built(audit(path), str(path))


def ckpt_png(tmp: Path) -> Built:
    path = tmp / "picture.pt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    return Built(audit(path), str(path))


class _Reduce:
    """Pickles as ``func(*args)``: what a malicious checkpoint runs on a plain ``pickle.load``."""

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.func, self.args


def ckpt_pickle_os_system(tmp: Path) -> Built:
    payload = _Reduce(os.system, (f"touch {tmp / MARKER}",))
    path = _save(tmp / "evil_system.pt", {"model": {"w": torch.zeros(2)}, "hook": payload})
    return Built(audit(path), str(path), _no_marker(tmp))


def ckpt_pickle_builtins_eval(tmp: Path) -> Built:
    """A raw protocol-2 pickle (torch's legacy, non-zip format) whose top object is eval(...)."""
    code = f"__import__('pathlib').Path({str(tmp / MARKER)!r}).touch()"
    path = tmp / "evil_eval.pt"
    path.write_bytes(pickle.dumps(_Reduce(eval, (code,)), protocol=2))
    return Built(audit(path), str(path), _no_marker(tmp))


def ckpt_pickle_subprocess_popen(tmp: Path) -> Built:
    payload = _Reduce(subprocess.Popen, (["touch", str(tmp / MARKER)],))
    path = _save(tmp / "evil_popen.pt", {"state_dict": {"w": torch.zeros(2)}, "x": payload})
    return Built(audit(path), str(path), _no_marker(tmp))


def ckpt_wrong_fc_shape(tmp: Path) -> Built:
    state = fork_state()
    state["fc.weight"] = torch.zeros(2, 64)
    path = _config_wrapped(tmp, state)
    return Built(audit(path), str(path))


def ckpt_wrong_conv_shape(tmp: Path) -> Built:
    state = fork_state()
    state["alignn_layers.0.node_update.src_gate.weight"] = torch.zeros(64, 32)
    path = _config_wrapped(tmp, state)
    return Built(audit(path), str(path))


def ckpt_missing_keys(tmp: Path) -> Built:
    state = fork_state()
    del state["gcn_layers.1.src_gate.weight"]
    path = _config_wrapped(tmp, state)
    return Built(audit(path), str(path))


def ckpt_unexpected_keys(tmp: Path) -> Built:
    state = fork_state()
    state["extra_head.weight"] = torch.zeros(3, 3)
    path = _config_wrapped(tmp, state)
    return Built(audit(path), str(path))


def ckpt_string_value(tmp: Path) -> Built:
    state: dict[str, Any] = fork_state()
    state["fc.bias"] = "not a tensor"
    path = _save(tmp / "stringy.pt", state)
    return Built(audit(path), str(path))


def _one_tensor(tmp: Path, value: torch.Tensor, name: str) -> Built:
    state = fork_state()
    state["fc.weight"] = value
    path = _config_wrapped(tmp, state, name)
    return Built(audit(path), str(path))


def ckpt_sparse_tensor(tmp: Path) -> Built:
    return _one_tensor(tmp, torch.zeros(1, 64).to_sparse(), "sparse.pt")


def ckpt_meta_tensor(tmp: Path) -> Built:
    return _one_tensor(tmp, torch.zeros(1, 64, device="meta"), "meta.pt")


def ckpt_complex_tensor(tmp: Path) -> Built:
    return _one_tensor(tmp, torch.zeros(1, 64, dtype=torch.complex64), "complex.pt")


def ckpt_not_alignn(tmp: Path) -> Built:
    path = _save(tmp / "resnet.pt", {"conv1.weight": torch.zeros(4, 3, 3, 3)})
    return Built(audit(path), str(path))


def ckpt_nan_weights(tmp: Path) -> Built:
    """Positive control: NaN weights load; audit reports them (exit 0)."""
    state = fork_state()
    state["fc.weight"] = torch.full((1, 64), float("nan"))
    path = _config_wrapped(tmp, state)
    return Built(audit(path), str(path))


def ckpt_malformed_config_json(tmp: Path) -> Built:
    path = _save(tmp / "weights.pt", fork_state())
    config = tmp / "config.json"
    config.write_text('{"model": {"hidden_features": 64,', encoding="utf-8")
    return Built(audit(path), str(config))


def ckpt_config_json_contradicts(tmp: Path) -> Built:
    path = _save(tmp / "weights.pt", fork_state())
    config = tmp / "config.json"
    _write_json(config, {"model": {**fork_config(), "hidden_features": 128}})
    return Built(audit(path), str(config))


# ---------------------------------------------------------------------------------------------
# samples


def _row_sample(tmp: Path, mutate: Callable[[dict[str, Any]], Any], name: str) -> Built:
    row = nacl_row()
    mutate(row)
    path = _write_json(tmp / name, row)
    return Built(report(path), str(path))


def _atoms(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(row: dict[str, Any]) -> None:
        row["atoms"].update(changes)

    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(row: dict[str, Any]) -> None:
        if key == "atoms":
            del row["atoms"]
        else:
            del row["atoms"][key]

    return mutate


def sample_missing(tmp: Path) -> Built:
    path = tmp / "missing.json"
    return Built(report(path), str(path))


def sample_not_json(tmp: Path) -> Built:
    path = tmp / "sample.json"
    path.write_text("NaCl is rock salt, this is not JSON\n", encoding="utf-8")
    return Built(report(path), str(path))


def sample_not_utf8(tmp: Path) -> Built:
    text = json.dumps(nacl_row()).replace("Halite", "Halit\u00e9")
    path = tmp / "latin1.json"
    path.write_bytes(text.encode("latin-1"))
    return Built(report(path), str(path))


def sample_no_atoms(tmp: Path) -> Built:
    return _row_sample(tmp, _drop("atoms"), "no_atoms.json")


def sample_no_lattice(tmp: Path) -> Built:
    return _row_sample(tmp, _drop("lattice_mat"), "no_lattice.json")


def sample_no_coords(tmp: Path) -> Built:
    return _row_sample(tmp, _drop("coords"), "no_coords.json")


def sample_no_elements(tmp: Path) -> Built:
    return _row_sample(tmp, _drop("elements"), "no_elements.json")


def sample_lattice_2x3(tmp: Path) -> Built:
    return _row_sample(tmp, _atoms(lattice_mat=[[0, 2.82, 2.82], [2.82, 0, 2.82]]), "l2x3.json")


def sample_coords_2_columns(tmp: Path) -> Built:
    return _row_sample(tmp, _atoms(coords=[[0, 0], [0.5, 0.5]]), "coords2.json")


def sample_length_mismatch(tmp: Path) -> Built:
    return _row_sample(tmp, _atoms(elements=["Na", "Cl", "Cl"]), "mismatch.json")


def sample_unknown_element(tmp: Path) -> Built:
    return _row_sample(tmp, _atoms(elements=["Na", "Xx"]), "xx.json")


def sample_nan_coords(tmp: Path) -> Built:
    # json.dumps writes NaN / Infinity literals, which Python's json (and JARVIS dumps) accept.
    return _row_sample(tmp, _atoms(coords=[[0, 0, 0], [0.5, float("nan"), 0.5]]), "nan.json")


def sample_inf_coords(tmp: Path) -> Built:
    return _row_sample(tmp, _atoms(coords=[[0, 0, 0], [0.5, 0.5, float("inf")]]), "inf.json")


def sample_singular_lattice(tmp: Path) -> Built:
    flat = [[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]]
    return _row_sample(tmp, _atoms(lattice_mat=flat), "singular.json")


def sample_overlapping_atoms(tmp: Path) -> Built:
    return _row_sample(tmp, _atoms(coords=[[0, 0, 0], [0.01, 0, 0]]), "overlap.json")


def sample_overlapping_images(tmp: Path) -> Built:
    """Two atoms 0.05 Å apart only across the cell boundary (minimum image)."""
    cubic = [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]]
    mutate = _atoms(lattice_mat=cubic, coords=[[0.0, 0, 0], [0.99, 0, 0]])
    return _row_sample(tmp, mutate, "image_overlap.json")


def sample_short_lattice_vector(tmp: Path) -> Built:
    needle = [[0.05, 0, 0], [0, 5.0, 0], [0, 0, 5.0]]
    return _row_sample(tmp, _atoms(lattice_mat=needle), "needle.json")


def sample_empty_structure(tmp: Path) -> Built:
    return _row_sample(tmp, _atoms(coords=[], elements=[]), "empty_cell.json")


def sample_huge_cell(tmp: Path) -> Built:
    """5,001 atoms on a 4 Å grid (valid geometry) against the default --max-atoms 5000."""
    n = 18  # 18^3 = 5832 grid points, the first 5001 used
    frac = [[i / n, j / n, k / n] for i in range(n) for j in range(n) for k in range(n)][:5001]
    side = 4.0 * n
    mutate = _atoms(
        lattice_mat=[[side, 0, 0], [0, side, 0], [0, 0, side]],
        coords=frac,
        elements=["Na"] * 5001,
    )
    return _row_sample(tmp, mutate, "huge.json")


def sample_jsonl_index_out_of_range(tmp: Path) -> Built:
    path = tmp / "rows.jsonl"
    path.write_text("\n".join(json.dumps(nacl_row()) for _ in range(2)) + "\n", encoding="utf-8")
    return Built(report(path, "--index", "5"), str(path))


def sample_negative_index(tmp: Path) -> Built:
    return Built(report(NACL_JSON, "--index", "-1"), "--index")


def sample_empty_json_list(tmp: Path) -> Built:
    path = tmp / "empty_list.json"
    path.write_text("[]", encoding="utf-8")
    return Built(report(path), str(path))


def sample_poscar_without_species(tmp: Path) -> Built:
    path = tmp / "POSCAR"
    path.write_text(
        "NaCl (VASP 4: no species line)\n1.0\n"
        "0.0 2.82 2.82\n2.82 0.0 2.82\n2.82 2.82 0.0\n"
        "1 1\nDirect\n0.0 0.0 0.0\n0.5 0.5 0.5\n",
        encoding="utf-8",
    )
    return Built(report(path), str(path))


_CIF_HEAD = """data_partial
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_symmetry_equiv_pos_as_xyz
 'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
"""


def sample_cif_partial_occupancy(tmp: Path) -> Built:
    path = tmp / "alloy.cif"
    path.write_text(
        _CIF_HEAD + "Fe1 Fe 0.0 0.0 0.0 0.5\nCo1 Co 0.0 0.0 0.0 0.5\nO1 O 0.5 0.5 0.5 1.0\n",
        encoding="utf-8",
    )
    return Built(report(path), str(path))


def sample_one_atom(tmp: Path) -> Built:
    """Positive control: a 1-atom cell is valid; its text_to_atom softmax is degenerate."""
    row = {
        "jid": "po-sc",
        "atoms": {
            "lattice_mat": [[3.35, 0, 0], [0, 3.35, 0], [0, 0, 3.35]],
            "coords": [[0, 0, 0]],
            "elements": ["Po"],
            "cartesian": False,
        },
        "text": "Po is simple cubic.",
    }
    path = _write_json(tmp / "one_atom.json", row)
    return Built(report(path, "--format", "json"), str(path))


# ---------------------------------------------------------------------------------------------
# token files


def _tokens(tmp: Path, name: str = "tokens.npz", **arrays: Any) -> Path:
    with np.load(NACL_TOKENS) as z:
        base = {k: z[k] for k in z.files}
    base.update(arrays)
    path = tmp / name
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def tokens_missing(tmp: Path) -> Built:
    path = tmp / "missing.npz"
    return Built(report(NACL_JSON, tokens=path), str(path))


def tokens_not_npz(tmp: Path) -> Built:
    path = tmp / "tokens.npz"
    path.write_text("tokens,embeddings\nNa,0.1\n", encoding="utf-8")
    return Built(report(NACL_JSON, tokens=path), str(path))


def tokens_object_array(tmp: Path) -> Built:
    with np.load(NACL_TOKENS) as z:
        words = z["tokens"].astype(object)
    path = _tokens(tmp, tokens=words)
    return Built(report(NACL_JSON, tokens=path), str(path))


def tokens_wrong_width(tmp: Path) -> Built:
    path = _tokens(tmp, embeddings=np.zeros((36, 64), dtype=np.float32))
    return Built(report(NACL_JSON, tokens=path), str(path))


def tokens_nan_embeddings(tmp: Path) -> Built:
    with np.load(NACL_TOKENS) as z:
        emb = z["embeddings"].copy()
    emb[3, 10] = np.nan
    path = _tokens(tmp, embeddings=emb)
    return Built(report(NACL_JSON, tokens=path), str(path))


def tokens_mask_all_zero(tmp: Path) -> Built:
    path = _tokens(tmp, mask=np.zeros(36, dtype=np.int64))
    return Built(report(NACL_JSON, tokens=path), str(path))


def tokens_empty(tmp: Path) -> Built:
    path = _tokens(
        tmp,
        tokens=np.array([], dtype="<U1"),
        embeddings=np.zeros((0, 768), dtype=np.float32),
        mask=np.zeros(0, dtype=np.int64),
        input_ids=None,
    )
    return Built(report(NACL_JSON, tokens=path), str(path))


def tokens_from_sample_field(tmp: Path) -> Built:
    """A sample whose "tokens" field points at a missing archive: the archive is named."""
    row = nacl_row()
    row["tokens"] = "gone.tokens.npz"
    path = _write_json(tmp / "with_tokens.json", row)
    argv = ["report", str(FORK_CKPT), str(path), "--device", "cpu", "--no-ablations"]
    return Built(argv, str(tmp / "gone.tokens.npz"))


def tokens_none_given(tmp: Path) -> Built:
    """No --tokens, no "tokens" field, no encoder: the sample is named with what to pass."""
    argv = ["report", str(FORK_CKPT), str(NACL_JSON), "--device", "cpu", "--no-ablations"]
    return Built(argv, str(NACL_JSON))


# ---------------------------------------------------------------------------------------------
# arguments


def arg_device_tpu(tmp: Path) -> Built:
    return Built(report(NACL_JSON, "--device", "tpu"), "--device")


def arg_device_cuda(tmp: Path) -> Built:
    # On a CUDA machine, ask for a device index that does not exist instead.
    spec = "cuda:99" if torch.cuda.is_available() else "cuda"
    return Built(report(NACL_JSON, "--device", spec), "--device")


def arg_fga_from_nonsense(tmp: Path) -> Built:
    return Built(report(NACL_JSON, "--fga-from", "nonsense"), "--fga-from")


def arg_fga_from_missing_stage(tmp: Path) -> Built:
    """A well-formed stage name the model does not have (it has gcn.0 … gcn.3)."""
    return Built(report(NACL_JSON, "--fga-from", "gcn.7"), "--fga-from")


def arg_no_fusion_without_fusion(tmp: Path) -> Built:
    """A plain state dict without middle_fusion_modules.*: inference says no middle fusion."""
    state = {k: v for k, v in fork_state().items() if not k.startswith("middle_fusion_modules.")}
    ckpt = _save(tmp / "no_fusion.pt", state)
    return Built(export(tmp / "out", "--no-fusion", ckpt=ckpt), "--no-fusion")


def arg_format_yaml(tmp: Path) -> Built:
    return Built(report(NACL_JSON, "--format", "yaml"), "--format")


def arg_audit_format_md(tmp: Path) -> Built:
    return Built(audit(FORK_CKPT, "--format", "md"), "--format")


def arg_fail_on_maybe(tmp: Path) -> Built:
    return Built(report(NACL_JSON, "--fail-on", "maybe"), "--fail-on")


def arg_fga_heads_7(tmp: Path) -> Built:
    return Built(report(NACL_JSON, "--fga-heads", "7"), "--fga-heads")


def arg_fga_heads_zero(tmp: Path) -> Built:
    return Built(audit(FORK_CKPT, "--fga-heads", "0"), "--fga-heads")


def arg_export_out_is_file(tmp: Path) -> Built:
    out = tmp / "result.npz"
    out.write_bytes(b"keep")
    return Built(export(out), str(out), _unchanged(out))


def arg_export_out_existing_trace(tmp: Path) -> Built:
    out = tmp / "out"
    out.mkdir()
    (out / "trace.npz").write_bytes(b"old trace")
    return Built(export(out), str(out / "trace.npz"), _unchanged(out / "trace.npz"))


def arg_export_out_under_a_file(tmp: Path) -> Built:
    blocker = tmp / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    out = blocker / "sub"
    return Built(export(out), str(out), _unchanged(blocker))


def arg_export_out_unwritable(tmp: Path) -> Built:
    """A chmod-500 folder; where that does not block writes (root in CI), a path under
    /dev/null, which no one can create."""
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    out = locked / "out" if not _writable(locked) else Path("/dev/null/fga-tui-out")
    return Built(export(out), str(out))


def arg_scan_out_exists(tmp: Path) -> Built:
    out = tmp / "rows.jsonl"
    out.write_text('{"previous": "scan"}\n', encoding="utf-8")
    argv = ["scan", str(FORK_CKPT), str(NACL_JSON), "--out", str(out), "--device", "cpu"]
    return Built(argv, str(out), _unchanged(out))


def arg_scan_empty_folder(tmp: Path) -> Built:
    data = tmp / "dataset"
    data.mkdir()
    argv = ["scan", str(FORK_CKPT), str(data), "--device", "cpu", "--workers", "1"]
    return Built(argv, str(data))


def arg_scan_missing_data(tmp: Path) -> Built:
    data = tmp / "nothing.jsonl"
    return Built(["scan", str(FORK_CKPT), str(data), "--device", "cpu"], str(data))


def arg_scan_out_folder_missing(tmp: Path) -> Built:
    out = tmp / "no" / "such" / "rows.jsonl"
    argv = ["scan", str(FORK_CKPT), str(NACL_JSON), "--out", str(out), "--device", "cpu"]
    return Built(argv, str(out))


def arg_scan_tokens_missing(tmp: Path) -> Built:
    tokens = tmp / "missing.npz"
    argv = ["scan", str(FORK_CKPT), str(NACL_JSON), "--tokens", str(tokens), "--device", "cpu"]
    return Built(argv, str(tokens))


def arg_scan_vocab_mappings_missing(tmp: Path) -> Built:
    vocab = tmp / "vocab_mappings.txt"
    argv = ["scan", str(FORK_CKPT), str(NACL_JSON), "--tokens", str(NACL_TOKENS)]
    return Built([*argv, "--vocab-mappings", str(vocab), "--device", "cpu"], str(vocab))


def arg_vocab_mappings_not_utf8(tmp: Path) -> Built:
    """Checked even though precomputed tokens leave the mappings unused."""
    vocab = tmp / "vocab_mappings.txt"
    vocab.write_bytes("\u00bd 1/2\n".encode("latin-1"))
    return Built(report(NACL_JSON, "--vocab-mappings", str(vocab)), str(vocab))


def arg_text_model_missing(tmp: Path) -> Built:
    model = tmp / "matscibert"
    argv = ["report", str(FORK_CKPT), str(NACL_JSON), "--text-model", str(model)]
    return Built([*argv, "--device", "cpu"], str(model))


def arg_index_not_an_integer(tmp: Path) -> Built:
    return Built(report(NACL_JSON, "--index", "first"), "--index")


def arg_unknown_option(tmp: Path) -> Built:
    return Built(report(NACL_JSON, "--atoms", "5"), "--atoms")


def arg_missing_sample_argument(tmp: Path) -> Built:
    return Built(["report", str(FORK_CKPT)], "'sample'")


def arg_batch_size_zero(tmp: Path) -> Built:
    return Built(["scan", str(FORK_CKPT), str(NACL_JSON), "--batch-size", "0"], "--batch-size")


def arg_stopwords_missing(tmp: Path) -> Built:
    words = tmp / "stop.txt"
    return Built(report(NACL_JSON, "--stopwords", str(words)), str(words))


def arg_baseline_not_checkpoint(tmp: Path) -> Built:
    base = _write_json(tmp / "init.pt", {"not": "weights"})
    return Built(audit(FORK_CKPT, "--baseline", str(base)), str(base))


# ---------------------------------------------------------------------------------------------
# the table

CASES: tuple[Case, ...] = (
    # checkpoints
    Case("ckpt_missing", ckpt_missing, ("no such file",)),
    Case("ckpt_directory", ckpt_directory, ("is a directory",)),
    Case("ckpt_empty", ckpt_empty, ("is empty",)),
    Case("ckpt_truncated_zip", ckpt_truncated_zip, ("truncated or corrupt",)),
    Case("ckpt_json_named_pt", ckpt_json_named_pt, ("not a PyTorch checkpoint", "JSON")),
    Case("ckpt_random_bytes", ckpt_random_bytes, ("not a PyTorch checkpoint",)),
    Case("ckpt_png", ckpt_png, ("PNG image",)),
    Case("ckpt_pickle_os_system", ckpt_pickle_os_system, ("system",)),
    Case("ckpt_pickle_builtins_eval", ckpt_pickle_builtins_eval, ("eval",)),
    Case("ckpt_pickle_subprocess_popen", ckpt_pickle_subprocess_popen, ("Popen",)),
    Case(
        "ckpt_wrong_fc_shape",
        ckpt_wrong_fc_shape,
        ("output_features is 1 in the config but 2 in the weights", "fc.weight"),
    ),
    Case(
        "ckpt_wrong_conv_shape",
        ckpt_wrong_conv_shape,
        ("shape mismatch", "alignn_layers.0.node_update.src_gate.weight", "[64, 32]"),
    ),
    Case(
        "ckpt_missing_keys",
        ckpt_missing_keys,
        ("1 missing", "gcn_layers.1.src_gate.weight"),
    ),
    Case("ckpt_unexpected_keys", ckpt_unexpected_keys, ("1 unexpected", "extra_head.weight")),
    Case("ckpt_string_value", ckpt_string_value, ("'fc.bias'", "not a tensor")),
    Case("ckpt_sparse_tensor", ckpt_sparse_tensor, ("'fc.weight'", "sparse_coo", "not dense")),
    Case("ckpt_meta_tensor", ckpt_meta_tensor, ("'fc.weight'", "meta tensor")),
    Case("ckpt_complex_tensor", ckpt_complex_tensor, ("'fc.weight'", "complex64")),
    Case("ckpt_not_alignn", ckpt_not_alignn, ("not an ALIGNN model",)),
    Case("ckpt_nan_weights_audited", ckpt_nan_weights, ("nonfinite", "fc.weight"), exit_code=0),
    Case("ckpt_malformed_config_json", ckpt_malformed_config_json, ("malformed JSON",)),
    Case(
        "ckpt_config_json_contradicts_weights",
        ckpt_config_json_contradicts,
        ("hidden_features is 128 in the config but 64 in the weights",),
    ),
    # samples
    Case("sample_missing", sample_missing, ("does not exist",)),
    Case("sample_not_json", sample_not_json, ("is not valid JSON",)),
    Case("sample_not_utf8", sample_not_utf8, ("not UTF-8", "0xe9")),
    Case("sample_no_atoms", sample_no_atoms, ('missing "atoms"',)),
    Case("sample_no_lattice", sample_no_lattice, ('missing "lattice_mat"',)),
    Case("sample_no_coords", sample_no_coords, ('missing "coords"',)),
    Case("sample_no_elements", sample_no_elements, ('missing "elements"',)),
    Case("sample_lattice_2x3", sample_lattice_2x3, ("lattice_mat must be a 3x3", "2 rows")),
    Case("sample_coords_2_columns", sample_coords_2_columns, ("coords", "row 0 has 2 values")),
    Case(
        "sample_elements_coords_mismatch",
        sample_length_mismatch,
        ("elements has 3 entries but coords has 2 rows",),
    ),
    Case("sample_unknown_element", sample_unknown_element, ("unknown element symbol 'Xx'",)),
    Case("sample_nan_coords", sample_nan_coords, ("coords[1][1]", "NaN or inf")),
    Case("sample_inf_coords", sample_inf_coords, ("coords[1][2]", "NaN or inf")),
    Case("sample_singular_lattice", sample_singular_lattice, ("singular",)),
    Case("sample_overlapping_atoms", sample_overlapping_atoms, ("overlapping atoms",)),
    Case(
        "sample_overlapping_periodic_images",
        sample_overlapping_images,
        ("overlapping atoms", "0.05 Å", "periodic images"),
    ),
    Case("sample_short_lattice_vector", sample_short_lattice_vector, ("own periodic image",)),
    Case("sample_empty_structure", sample_empty_structure, ("empty (0 atoms)",)),
    Case(
        "sample_5001_atoms",
        sample_huge_cell,
        ("5001 atoms exceeds --max-atoms 5000",),
    ),
    Case(
        "sample_jsonl_index_out_of_range",
        sample_jsonl_index_out_of_range,
        ("has 2 samples; index 5 is out of range",),
    ),
    Case("sample_negative_index", sample_negative_index, ("non-negative",)),
    Case("sample_empty_json_list", sample_empty_json_list, ("contains no samples",)),
    Case("sample_poscar_without_species", sample_poscar_without_species, ("species line",)),
    Case("sample_cif_partial_occupancy", sample_cif_partial_occupancy, ("partial occupancy",)),
    Case(
        "sample_one_atom_is_valid",
        sample_one_atom,
        ("DEGENERATE_SOFTMAX", "text_to_atom (1-atom cell)"),
        exit_code=0,
    ),
    # token files
    Case("tokens_missing", tokens_missing, ("does not exist",)),
    Case("tokens_not_npz", tokens_not_npz, ("not an .npz archive",)),
    Case("tokens_object_array", tokens_object_array, ("object array", "refusing to unpickle")),
    Case(
        "tokens_wrong_width",
        tokens_wrong_width,
        ("64-wide", "expects 768"),
    ),
    Case("tokens_nan_embeddings", tokens_nan_embeddings, ("NaN or inf", "token 3")),
    Case("tokens_mask_all_zero", tokens_mask_all_zero, ("mask is all zero",)),
    Case("tokens_empty", tokens_empty, ("no tokens (L = 0)",)),
    Case("tokens_from_sample_field", tokens_from_sample_field, ('"tokens" field',)),
    Case("tokens_none_given", tokens_none_given, ("needs text token states", "--tokens")),
    # arguments
    Case("arg_device_tpu", arg_device_tpu, ("'tpu'",)),
    Case("arg_device_cuda_unavailable", arg_device_cuda, ("cuda",)),
    Case("arg_fga_from_nonsense", arg_fga_from_nonsense, ("'nonsense' is not a stage",)),
    Case("arg_fga_from_missing_stage", arg_fga_from_missing_stage, ("'gcn.7' is not a stage",)),
    Case(
        "arg_no_fusion_without_middle_fusion",
        arg_no_fusion_without_fusion,
        ("no middle fusion",),
    ),
    Case("arg_format_yaml", arg_format_yaml, ("'yaml' is not one of text, json, md",)),
    Case("arg_audit_format_md", arg_audit_format_md, ("'md' is not one of text, json",)),
    Case("arg_fail_on_maybe", arg_fail_on_maybe, ("'maybe' is not one of error, warning",)),
    Case("arg_fga_heads_7", arg_fga_heads_7, ("7 does not divide", "64")),
    Case("arg_fga_heads_zero", arg_fga_heads_zero, ("positive integer",)),
    Case("arg_export_out_is_a_file", arg_export_out_is_file, ("not a directory",)),
    Case(
        "arg_export_out_has_a_trace",
        arg_export_out_existing_trace,
        ("already exists", "--force"),
    ),
    Case("arg_export_out_under_a_file", arg_export_out_under_a_file, ("cannot write",)),
    Case("arg_export_out_unwritable", arg_export_out_unwritable, ("cannot write",)),
    Case("arg_scan_out_exists", arg_scan_out_exists, ("already exists", "--force")),
    Case("arg_scan_empty_folder", arg_scan_empty_folder, ("contains no sample files",)),
    Case("arg_scan_missing_data", arg_scan_missing_data, ("no such file",)),
    Case(
        "arg_scan_out_folder_missing",
        arg_scan_out_folder_missing,
        ("cannot write", "not a writable folder"),
    ),
    Case("arg_scan_tokens_missing", arg_scan_tokens_missing, ("token file does not exist",)),
    Case(
        "arg_scan_vocab_mappings_missing",
        arg_scan_vocab_mappings_missing,
        ("vocab mappings file does not exist",),
    ),
    Case("arg_vocab_mappings_not_utf8", arg_vocab_mappings_not_utf8, ("not UTF-8",)),
    Case("arg_text_model_missing", arg_text_model_missing, ("does not exist",)),
    Case("arg_index_not_an_integer", arg_index_not_an_integer, ("Invalid value",)),
    Case("arg_unknown_option", arg_unknown_option, ("No such option",)),
    Case("arg_missing_sample_argument", arg_missing_sample_argument, ("Missing argument",)),
    Case("arg_batch_size_zero", arg_batch_size_zero, ("Invalid value",)),
    Case("arg_stopwords_missing", arg_stopwords_missing, ("stop.txt",)),
    Case("arg_baseline_not_a_checkpoint", arg_baseline_not_checkpoint, ("JSON",)),
)
