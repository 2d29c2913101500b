"""Loading untrusted checkpoints: every layout, the restricted unpickler, and bad files."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fga_tui.io import unpickler
from fga_tui.io.checkpoint import RawCheckpoint, load_checkpoint
from fga_tui.io.errors import InputError
from fga_tui.model.config_build import config_from_checkpoint
from fga_tui.model.state import verify_state_dict

FIXTURES = Path(__file__).parent / "fixtures"
FORK_CKPT = FIXTURES / "fork_ckpt.pt"
FORK_INIT = FIXTURES / "fork_init_state.pt"


@pytest.fixture(scope="module")
def fork_raw() -> RawCheckpoint:
    return load_checkpoint(FORK_CKPT)


@pytest.fixture(scope="module")
def fork_sd(fork_raw: RawCheckpoint) -> dict[str, torch.Tensor]:
    return fork_raw.state_dict


# --- the fork's best-model checkpoint ------------------------------------------------------


def test_fork_best_checkpoint_config_matches_expected_json(fork_raw: RawCheckpoint) -> None:
    expected = json.loads((FIXTURES / "fork_ckpt.expected-config.json").read_text())
    assert fork_raw.layout == "fork-best"
    assert fork_raw.config_source == "pickled config"
    assert fork_raw.config == expected  # every field, as a plain dict
    assert len(fork_raw.state_dict) == 345
    assert fork_raw.meta["epoch"] == 18
    assert fork_raw.meta["val_mae"] == pytest.approx(0.17526169)
    config = config_from_checkpoint(fork_raw).to_dict()
    assert {k: config[k] for k in expected} == expected
    assert config["multimodal"] is True


def test_fork_best_state_dict_is_plain_detached_tensors(fork_raw: RawCheckpoint) -> None:
    for value in fork_raw.state_dict.values():
        assert type(value) is torch.Tensor
        assert not value.requires_grad
        assert value.device.type == "cpu"
    assert fork_raw.state_dict["atom_embedding.layer.0.weight"].shape == (64, 92)


def test_trusted_load_gives_the_same_config(fork_raw: RawCheckpoint) -> None:
    trusted = load_checkpoint(FORK_CKPT, trust=True)
    assert trusted.layout == "fork-best"
    assert trusted.config == fork_raw.config
    assert config_from_checkpoint(trusted) == config_from_checkpoint(fork_raw)
    assert trusted.state_dict.keys() == fork_raw.state_dict.keys()
    assert all(torch.equal(trusted.state_dict[k], v) for k, v in fork_raw.state_dict.items())


def test_fork_config_is_an_inert_record_with_its_pydantic_fields() -> None:
    obj = torch.load(
        FORK_CKPT, weights_only=False, pickle_module=unpickler.pickle_module_for(FORK_CKPT)
    )
    record = obj["config"]
    assert isinstance(record, unpickler.InertRecord)
    assert record.qualified_name == "models.alignn.ALIGNNConfig"
    assert record.fields()["hidden_features"] == 64
    assert "models" not in sys.modules


# --- other layouts ---------------------------------------------------------------------------


def test_fork_init_state_is_a_plain_state_dict() -> None:
    raw = load_checkpoint(FORK_INIT)
    assert raw.layout == "state_dict"
    assert raw.config is None and raw.config_source is None
    assert len(raw.state_dict) == 345


def test_ignite_checkpoint_loads_without_config(tmp_path: Path, fork_sd: dict) -> None:
    path = tmp_path / "checkpoint_40.pt"
    torch.save(
        {
            "model": fork_sd,
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
            "lr_scheduler": {"last_epoch": 40, "_last_lr": [1e-4]},
            "trainer": {"epoch_length": 10, "max_epochs": 100, "iteration": 400},
        },
        path,
    )
    raw = load_checkpoint(path)
    assert raw.layout == "ignite"
    assert raw.config is None
    assert len(raw.state_dict) == 345
    assert raw.meta["epoch"] == 40
    assert raw.meta["trainer.max_epochs"] == 100
    config = config_from_checkpoint(raw)
    assert config.hidden_features == 64 and config.use_middle_fusion


def test_wrapped_model_dict_loads(tmp_path: Path, fork_sd: dict) -> None:
    path = tmp_path / "wrapped.pt"
    torch.save({"model": fork_sd}, path)
    raw = load_checkpoint(path)
    assert raw.layout == "wrapped"
    assert raw.state_dict.keys() == fork_sd.keys()


def test_wrapped_state_dict_key_and_module_prefix(tmp_path: Path, fork_sd: dict) -> None:
    path = tmp_path / "ddp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in fork_sd.items()}, "epoch": 3}, path)
    raw = load_checkpoint(path)
    assert raw.layout == "wrapped"
    assert raw.state_dict.keys() == fork_sd.keys()
    assert raw.meta == {"epoch": 3}
    assert any("'module.'" in w for w in raw.warnings)


def test_pickled_config_wins_over_disagreeing_config_json(tmp_path: Path) -> None:
    path = tmp_path / "best_val_model.pt"
    path.write_bytes(FORK_CKPT.read_bytes())
    (tmp_path / "config.json").write_text(
        json.dumps({"model": {"name": "alignn", "hidden_features": 128, "alignn_layers": 4}})
    )
    raw = load_checkpoint(path)
    assert raw.config_source == "pickled config"
    assert raw.config["hidden_features"] == 64
    assert any("hidden_features" in w and "pickled config" in w for w in raw.warnings)


def test_pickled_whole_model_yields_its_parameters(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    torch.save(model, path)
    raw = load_checkpoint(path)
    assert raw.layout == "pickled-module"
    assert set(raw.state_dict) == set(model.state_dict())
    assert torch.equal(raw.state_dict["0.weight"], model[0].weight.detach())


# --- the restricted unpickler refuses code ---------------------------------------------------


class _RunsCode:
    def __init__(self, reduce_to: tuple) -> None:
        self.reduce_to = reduce_to

    def __reduce__(self) -> tuple:
        return self.reduce_to


def _evil_payloads(marker: Path) -> dict[str, tuple]:
    return {
        "os.system": (os.system, (f"touch {marker}",)),
        "builtins.eval": (eval, (f"open({str(marker)!r}, 'w').close()",)),
        "subprocess.Popen": (subprocess.Popen, (["touch", str(marker)],)),
    }


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_checkpoint_that_would_run_code_is_refused(tmp_path: Path, target: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = _evil_payloads(marker)[target]
    torch.save({"model": {"w": torch.zeros(2)}, "config": _RunsCode(payload)}, path)
    with pytest.raises(InputError) as info:
        load_checkpoint(path)
    message = str(info.value)
    names = {
        "os.system": ("os.system", "posix.system"),
        "builtins.eval": ("builtins.eval",),
        "subprocess.Popen": ("subprocess.Popen",),
    }[target]
    assert any(f"refusing to unpickle {n}" in message for n in names), message
    assert "--trust-checkpoint" in message
    assert str(path) in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "data",
    [
        b"cos\nsystem\n(S'touch /tmp/fga-never'\ntR.",  # protocol 0 GLOBAL + REDUCE
        b"(cposix\nsystem\nS'touch /tmp/fga-never'\ni.",  # INST
        b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'__subclasses__'\ntR.",  # getattr on a real type
        b"ccopyreg\n_reconstructor\n(ccollections\nOrderedDict\ncbuiltins\nobject\nNtR.",
        b"\x80\x04\x8c\x02os\x8c\x06system\x93.",  # protocol 4 STACK_GLOBAL
        b"cfunctools\npartial\n(tR.",
        b"ctorch\nload\n(S'x'\ntR.",  # lower-case function from an allowed package
    ],
)
def test_restricted_loads_refuses_code_paths(data: bytes) -> None:
    with pytest.raises(InputError, match="refusing to unpickle"):
        unpickler.loads(data)
    assert not Path("/tmp/fga-never").exists()


def test_unknown_class_is_never_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "sideeffect_mod.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Thing:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    record = unpickler.loads(b"csideeffect_mod\nThing\n(S'arg'\ntR.")
    assert isinstance(record, unpickler.InertRecord)
    assert record.qualified_name == "sideeffect_mod.Thing" and record.args == ("arg",)
    assert "sideeffect_mod" not in sys.modules
    assert not marker.exists()


@dataclasses.dataclass
class RunInfo:
    learning_rate: float
    tags: list


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_unknown_class_becomes_inert_record_with_its_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: int
) -> None:
    parent, fake = types.ModuleType("nonexistent"), types.ModuleType("nonexistent.module")
    parent.module = fake  # type: ignore[attr-defined]
    fake.RunInfo = RunInfo  # type: ignore[attr-defined]
    monkeypatch.setattr(RunInfo, "__module__", "nonexistent.module")
    with monkeypatch.context() as m:  # importable only while pickling
        m.setitem(sys.modules, "nonexistent", parent)
        m.setitem(sys.modules, "nonexistent.module", fake)
        data = pickle.dumps(RunInfo(0.001, ["a", "b"]), protocol=protocol)
    record = unpickler.loads(data)
    assert isinstance(record, unpickler.InertRecord)
    assert record.qualified_name == "nonexistent.module.RunInfo"
    assert record.fields() == {"learning_rate": 0.001, "tags": ["a", "b"]}
    with pytest.raises(AttributeError):
        record.learning_rate = 1.0  # type: ignore[attr-defined]


class OneCycleLR:
    """Stands in for a torch < 2.4 scheduler, whose state pickled a bound method."""

    def __init__(self) -> None:
        self.total_steps = 180

    def _annealing_cos(self) -> None:  # pragma: no cover - never called
        raise AssertionError


def test_old_scheduler_bound_method_becomes_inert_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork_sd: dict
) -> None:
    fake = types.ModuleType("oldtorch_sched")
    monkeypatch.setattr(OneCycleLR, "__module__", "oldtorch_sched")
    fake.OneCycleLR = OneCycleLR  # type: ignore[attr-defined]
    path = tmp_path / "old_sched.pt"
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "oldtorch_sched", fake)
        sched = OneCycleLR()
        torch.save(
            {
                "model": fork_sd,
                "lr_scheduler": {"anneal_func": sched._annealing_cos},
                "optimizer": {},
            },
            path,
        )
    raw = load_checkpoint(path)
    assert raw.layout == "ignite"
    obj = torch.load(path, weights_only=False, pickle_module=unpickler.pickle_module_for(path))
    func = obj["lr_scheduler"]["anneal_func"]
    assert isinstance(func, unpickler.InertAttribute)
    assert func.attribute == "_annealing_cos"
    assert func.target.fields() == {"total_steps": 180}


def test_inert_types_cannot_be_modified() -> None:
    cls = unpickler.inert_type("some.module", "Thing")
    with pytest.raises(AttributeError):
        cls.__del__ = print  # type: ignore[method-assign]
    assert unpickler.inert_type("some.module", "Thing") is cls


def test_tensor_backward_hooks_in_a_pickle_are_dropped(tmp_path: Path) -> None:
    t = torch.ones(3)
    path = tmp_path / "hooks.pt"
    torch.save({"w": t}, path)
    obj = torch.load(path, weights_only=False, pickle_module=unpickler.pickle_module_for(path))
    assert not obj["w"]._backward_hooks
    assert torch.equal(obj["w"], t)


def test_legacy_format_loads_and_its_code_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "legacy.pt"
    torch.save({"w": torch.arange(3)}, good, _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(good).state_dict["w"], torch.arange(3))
    marker = tmp_path / "pwned"
    evil = tmp_path / "legacy_evil.pt"
    payload = _RunsCode((os.system, (f"touch {marker}",)))
    torch.save({"w": torch.zeros(1), "x": payload}, evil, _use_new_zipfile_serialization=False)
    with pytest.raises(InputError, match=r"refusing to unpickle (os|posix)\.system"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_numpy_metadata_comes_out_as_plain_python(tmp_path: Path) -> None:
    path = tmp_path / "np.pt"
    meta = {"val_mae": np.float64(0.25), "epoch": np.int64(7), "best": torch.tensor(0.5)}
    torch.save({"model": {"w": torch.ones(2)}, **meta, "curve": np.arange(3.0)}, path)
    raw = load_checkpoint(path)
    assert raw.meta == {"val_mae": 0.25, "epoch": 7, "best": 0.5}
    assert [type(v) for v in raw.meta.values()] == [float, int, float]


def test_memo_index_bomb_is_refused_quickly() -> None:
    # LONG_BINPUT 2**31: the C unpickler would grow its memo table to billions of entries.
    with pytest.raises(InputError, match="memo index"):
        unpickler.loads(b"\x80\x02}r\x00\x00\x00\x80.")


def test_self_referencing_config_is_bounded(tmp_path: Path) -> None:
    loop: list = []
    loop.append(loop)
    path = tmp_path / "loop.pt"
    torch.save({"model": {"w": torch.ones(1)}, "config": {"hidden_features": 64, "x": loop}}, path)
    raw = load_checkpoint(path)
    assert raw.config is not None and raw.config["hidden_features"] == 64


@pytest.mark.parametrize(
    "data",
    [
        b"cbuiltins\nstr\n(C\x01xS'idna'\ntR.",  # codec lookup imports encodings.<name>
        b"cbuiltins\nbytes\n(J\x00\x00\x00\x7ftR.",  # a 2 GB allocation
        b"ccollections\ndefaultdict\n(cbuiltins\nglobals\ntR.",
    ],
)
def test_allowlisted_callables_check_their_arguments(data: bytes) -> None:
    with pytest.raises(InputError, match="refusing to unpickle"):
        unpickler.loads(data)


# --- bad files -----------------------------------------------------------------------------


def _bad_file(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.pt"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(FORK_CKPT.read_bytes()[:1000])
    elif kind == "json":
        path.write_text(json.dumps({"model": {"hidden_features": 64}}))
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    elif kind == "random":
        path.write_bytes(bytes((i * 37 + 11) % 256 for i in range(4096)))
    elif kind == "string-value":
        torch.save({"a.weight": torch.zeros(2), "a.name": "hello"}, path)
    elif kind == "no-tensors":
        torch.save({"epoch": 3, "val_mae": 0.2}, path)
    elif kind == "model-not-state-dict":
        torch.save({"model": "weights.bin", "epoch": 3}, path)
    elif kind == "list":
        torch.save([torch.zeros(2)], path)
    elif kind == "torchscript":  # the records torch.jit.save writes, minus the code
        with zipfile.ZipFile(path, "w") as zf:
            for name in ("data.pkl", "constants.pkl", "code/__torch__.py", "version"):
                zf.writestr(f"archive/{name}", b"\x80\x02}q\x00.")
    elif kind == "malformed-config-json":
        torch.save({"a.weight": torch.zeros(2)}, path)
        (tmp_path / "config.json").write_text('{"model": {"hidden_features": 64,')
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "directory",
        "empty",
        "truncated",
        "json",
        "png",
        "random",
        "string-value",
        "no-tensors",
        "model-not-state-dict",
        "list",
        "torchscript",
        "malformed-config-json",
    ],
)
def test_bad_file_is_one_input_error_naming_the_path(tmp_path: Path, kind: str) -> None:
    path = _bad_file(kind, tmp_path)
    with pytest.raises(InputError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path if kind != "malformed-config-json" else tmp_path / "config.json") in message
    assert "\n" not in message
    assert "Traceback" not in message


def test_bad_file_reasons_are_specific(tmp_path: Path) -> None:
    reasons = {}
    for kind in (
        "missing",
        "directory",
        "empty",
        "truncated",
        "json",
        "string-value",
        "model-not-state-dict",
        "no-tensors",
    ):
        sub = tmp_path / kind
        sub.mkdir()
        with pytest.raises(InputError) as info:
            load_checkpoint(_bad_file(kind, sub))
        reasons[kind] = info.value.reason
    assert reasons["missing"] == "no such file"
    assert "directory" in reasons["directory"]
    assert "empty" in reasons["empty"]
    assert "truncated" in reasons["truncated"]
    assert "JSON" in reasons["json"]
    assert "'a.name'" in reasons["string-value"] and "str" in reasons["string-value"]
    assert "'model'" in reasons["model-not-state-dict"]
    assert "no tensors" in reasons["no-tensors"]


# --- verify_state_dict ---------------------------------------------------------------------


def test_verify_state_dict_lists_missing_unexpected_and_mismatched() -> None:
    expected = {
        "fc.weight": (1, 64),
        "fc.bias": (1,),
        "fine_grained_attention.a2t_query.weight": (64, 64),
        "fine_grained_attention.a2t_key.weight": (64, 64),
        "fine_grained_attention.a2t_value.weight": (64, 64),
        "fine_grained_attention.node_output.weight": (64, 64),
        "bn.num_batches_tracked": (),
    }
    got = {"fc.weight": torch.zeros(2, 64), "fc.bias": torch.zeros(1), "foo.bar": torch.zeros(1)}
    with pytest.raises(InputError) as info:
        verify_state_dict(expected, got, "ckpt.pt")
    message = str(info.value)
    assert message.startswith("ckpt.pt: state_dict does not match the model: ")
    assert "4 missing (fine_grained_attention.a2t_query.weight, " in message
    assert "…" in message  # only the first few are named
    assert "1 unexpected (foo.bar)" in message
    assert "1 shape mismatch (fc.weight: checkpoint [2, 64] vs model [1, 64])" in message
    assert "num_batches_tracked" not in message


def test_verify_state_dict_tolerates_only_a_missing_num_batches_tracked() -> None:
    expected = {"w": (2, 3), "bn.num_batches_tracked": ()}
    assert verify_state_dict(expected, {"w": torch.zeros(2, 3)}, "ckpt.pt") is None
    with pytest.raises(InputError, match=r": 1 missing \(w\)$"):
        verify_state_dict(expected, {"bn.num_batches_tracked": torch.tensor(0)}, "ckpt.pt")
    extra = {"w": torch.zeros(2, 3), "x.num_batches_tracked": torch.tensor(0)}
    with pytest.raises(InputError, match=r": 1 unexpected \(x.num_batches_tracked\)$"):
        verify_state_dict(expected, extra, "ckpt.pt")


def test_fixture_state_dict_verifies_against_its_own_shapes(fork_sd: dict) -> None:
    shapes = {k: tuple(v.shape) for k, v in fork_sd.items()}
    assert verify_state_dict(shapes, fork_sd, FORK_CKPT) is None
    shapes["fc.weight"] = (2, 64)
    with pytest.raises(InputError, match=r"1 shape mismatch \(fc.weight: checkpoint \[1, 64\]"):
        verify_state_dict(shapes, fork_sd, FORK_CKPT)
