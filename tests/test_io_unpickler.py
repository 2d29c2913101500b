"""The restricted unpickler's policy, global by global and guard by guard.

tests/test_checkpoint_loading.py loads real checkpoints and crafted attacks end to end; here each
allowlisted global, each denied module and each argument check is pinned on its own, so a
policy change shows up as the one case it changes.
"""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np
import pytest
import torch

from fga_tui.io import unpickler as up
from fga_tui.io.unpickler import (
    InertAttribute,
    InertRecord,
    UnsafePickleError,
    inert_type,
    is_inert,
    resolve_global,
)

pytestmark = pytest.mark.filterwarnings("ignore:TypedStorage is deprecated:UserWarning")

HINT = "it could run code when loaded; pass --trust-checkpoint if you trust this file"


def guarded(module: str, name: str, source: str | None = "ckpt.pt"):
    value = resolve_global(module, name, source)
    assert isinstance(value, up._Guard), value
    return value


def refused_with(module: str, name: str, *args, **kwargs) -> str:
    with pytest.raises(UnsafePickleError) as err:
        guarded(module, name)(*args, **kwargs)
    assert err.value.path == "ckpt.pt"
    return err.value.reason


# --- what each global resolves to ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "expected"),
    [
        ("collections", "OrderedDict", collections.OrderedDict),
        ("builtins", "set", set),
        ("builtins", "frozenset", frozenset),
        ("builtins", "dict", dict),
        ("builtins", "list", list),
        ("builtins", "tuple", tuple),
        ("builtins", "int", int),
        ("builtins", "float", float),
        ("builtins", "complex", complex),
        ("builtins", "bool", bool),
        ("builtins", "slice", slice),
        ("builtins", "object", object),
        ("__builtin__", "set", set),  # Python 2 spelling, mapped like pickle's fix_imports
        ("torch", "Size", torch.Size),
        ("torch", "device", torch.device),
        ("torch", "float32", torch.float32),
        ("torch", "bfloat16", torch.bfloat16),
        ("torch", "int64", torch.int64),
        ("numpy", "ndarray", np.ndarray),
    ],
)
def test_plain_types_and_dtypes_resolve_to_themselves(module, name, expected):
    assert resolve_global(module, name) is expected


@pytest.mark.parametrize(
    ("module", "name", "fn"),
    [
        ("collections", "defaultdict", up._defaultdict),
        ("builtins", "str", up._safe_str),
        ("builtins", "getattr", up._getattr),
        ("_codecs", "encode", up._codecs_encode),
        ("copyreg", "_reconstructor", up._reconstructor),
        ("copy_reg", "_reconstructor", up._reconstructor),
        ("copyreg", "__newobj__", up._newobj),
        ("copyreg", "__newobj_ex__", up._newobj_ex),
        ("torch._utils", "_rebuild_tensor", up._rebuild_tensor),
        ("torch._utils", "_rebuild_tensor_v2", up._rebuild_tensor_v2),
        ("torch._utils", "_rebuild_tensor_v3", up._rebuild_tensor_v3),
        ("torch._utils", "_rebuild_parameter", up._rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state", up._rebuild_parameter_with_state),
        ("torch._tensor", "_rebuild_from_type_v2", up._rebuild_from_type_v2),
        ("torch.serialization", "_get_layout", up._get_layout),
        ("numpy", "dtype", up._numpy_dtype),
        ("numpy.core.multiarray", "_reconstruct", up._numpy_reconstruct),
        ("numpy._core.multiarray", "_reconstruct", up._numpy_reconstruct),
        ("numpy.core.multiarray", "scalar", up._numpy_scalar),
        ("numpy._core.multiarray", "scalar", up._numpy_scalar),
    ],
)
def test_allowlisted_callables_resolve_to_guards_naming_their_global(module, name, fn):
    guard = guarded(module, name)
    assert guard.fn is fn
    assert guard.source == "ckpt.pt"
    what = ".".join(up._normalise(module, name))
    assert guard.what == what and repr(guard) == f"<guarded {what}>"


@pytest.mark.parametrize("name", ["bytes", "bytearray"])
def test_bytes_and_bytearray_are_guarded_builders_of_their_type(name):
    value = guarded("builtins", name)(3)
    assert type(value).__name__ == name and value == b"\x00\x00\x00"


@pytest.mark.parametrize("name", ["FloatStorage", "LongStorage", "HalfStorage"])
def test_storage_names_resolve_to_a_fresh_storage_type_each_time(name):
    first, second = resolve_global("torch", name), resolve_global("torch", name)
    assert isinstance(first, torch.serialization.StorageType)
    assert first is not second and first.dtype == second.dtype


@pytest.mark.parametrize(
    "module",
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "builtins",
        "importlib",
        "shutil",
        "socket",
        "pty",
        "runpy",
        "pickle",
        "marshal",
        "ctypes",
        "types",
        "functools",
        "operator",
        "io",
        "pathlib",
        "multiprocessing",
        "threading",
        "signal",
        "asyncio",
        "tempfile",
        "zipimport",
        "pkgutil",
        "inspect",
        "gc",
        "copyreg",
        "codecs",
        "http",
        "urllib",
        "pdb",
        "timeit",
        "platform",
        "setuptools",
        "pip",
        "site",
        "zipfile",
        "tarfile",
        "shelve",
        "sqlite3",
        "logging",
        "ssl",
        "mmap",
        "fcntl",
        "dill",
        "cloudpickle",
        "joblib",
        "torch.hub",
        "numpy.testing",
        "numpy.f2py",
        "IPython",
        "weakref",
        "contextlib",
        "atexit",
        "pydoc",
        "unittest",
        "email",
        "concurrent",
        "queue",
        "sched",
        "_io",
        "_posixsubprocess",
        "",
        "os.path",
        "concurrent.futures.process",
        "torch.hub.sub",
    ],
)
def test_denied_modules_are_refused_even_for_class_like_names(module):
    with pytest.raises(UnsafePickleError) as err:
        resolve_global(module, "Popen", "evil.pt")
    assert err.value.path == "evil.pt"
    assert err.value.reason == f"refusing to unpickle {module}.Popen: {HINT}"
    assert err.value.what == f"{module}.Popen"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("models.alignn", "ALIGNNConfig"),
        ("__main__", "RunInfo"),
        ("torch.optim.lr_scheduler", "OneCycleLR"),
        ("torchx", "Popen"),  # a name that merely starts like a denied one
        ("osmium", "Thing"),
        ("pkg", "Outer.Inner"),
        ("numpy.random", "Generator"),
    ],
)
def test_unknown_class_like_names_become_inert_types(module, name):
    cls = resolve_global(module, name)
    assert is_inert(cls) and cls is inert_type(module, name)
    assert cls.qualified_name == f"{module}.{name}"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("models.alignn", "make_model"),
        ("pkg", "Outer.inner"),
        ("pkg", "_Hidden"),
        ("pkg", "1Abc"),
        ("pkg", ""),
        ("torch", "load"),
        ("numpy", "load"),
    ],
)
def test_names_that_are_not_classes_are_refused(module, name):
    with pytest.raises(UnsafePickleError, match="refusing to unpickle"):
        resolve_global(module, name)


# --- the guards' argument checks ----------------------------------------------------------------


def test_codecs_encode_takes_only_plain_codecs_and_strict_errors():
    encode = guarded("_codecs", "encode")
    assert encode("é") == "é".encode()
    for codec in ("utf-8", "utf8", "latin1", "latin-1", "ascii"):
        assert encode("ab", codec) == b"ab"
    assert encode("ab", "latin1", "strict") == b"ab"
    assert "(expected a str and a latin1/utf-8/ascii encoding)" in refused_with(
        "_codecs", "encode", "a", "rot13"
    )
    refused_with("_codecs", "encode", "a", "latin1", "ignore")
    refused_with("_codecs", "encode", b"a", "latin1")


def test_byte_strings_are_bounded_and_decoded_only_with_plain_codecs():
    limit = up._MAX_BYTES_ALLOC
    assert len(guarded("builtins", "bytes")(limit)) == limit
    reason = refused_with("builtins", "bytes", limit + 1)
    assert reason == (
        "refusing to unpickle builtins.bytes with unexpected arguments (expected a reasonable "
        f"bytes size): {HINT}"
    )
    refused_with("builtins", "bytearray", limit + 1)
    assert guarded("builtins", "str")(b"caf\xc3\xa9", "utf-8") == "café"
    assert guarded("builtins", "str")(b"ab", "ascii", "strict") == "ab"
    assert guarded("builtins", "str")(5) == "5"
    assert "(expected a utf-8/latin-1/ascii encoding)" in refused_with(
        "builtins", "str", b"x", "idna"
    )
    refused_with("builtins", "str", b"x", "utf-8", "ignore")
    refused_with("builtins", "str", b"x", "utf-8", "strict", "extra")


def test_defaultdict_takes_plain_or_inert_factories():
    make = guarded("collections", "defaultdict")
    assert make(list).default_factory is list
    assert make().default_factory is None
    assert make(None, {"a": 1})["a"] == 1
    assert make(guarded("builtins", "str")).default_factory is str
    record_type = inert_type("pkg", "Factory")
    assert make(record_type).default_factory is record_type
    for factory in (dict, set, frozenset, tuple, int, float, str, collections.OrderedDict):
        assert make(factory).default_factory is factory
    assert "(expected a plain default_factory)" in refused_with("collections", "defaultdict", print)


def test_reconstructor_makes_inert_instances_on_plain_bases_only():
    cls = inert_type("pkg", "Config")
    record = guarded("copyreg", "_reconstructor")(cls, object, {"a": 1})
    assert isinstance(record, cls) and record.args == ({"a": 1},)
    assert guarded("copyreg", "_reconstructor")(cls, dict, None).args == ()
    for base in (list, tuple, set):
        assert isinstance(guarded("copyreg", "_reconstructor")(cls, base, None), cls)
    assert "(expected a plain base type)" in refused_with(
        "copyreg", "_reconstructor", cls, int, None
    )
    assert "(expected an inert class)" in refused_with(
        "copyreg", "_reconstructor", dict, object, None
    )


def test_newobj_makes_inert_instances_only():
    cls = inert_type("pkg", "Thing")
    record = guarded("copyreg", "__newobj__")(cls, 1, 2)
    assert record.args == (1, 2) and record.kwargs == {}
    record = guarded("copyreg", "__newobj_ex__")(cls, [1], {"k": 2})
    assert record.args == (1,) and record.kwargs == {"k": 2}
    assert "(expected an inert class)" in refused_with("copyreg", "__newobj__", dict)
    refused_with("copyreg", "__newobj__", "not a type")
    assert "(expected an inert class)" in refused_with("copyreg", "__newobj_ex__", dict, (), {})


def test_getattr_only_on_inert_things_and_names():
    record = inert_type("pkg", "Sched")()
    attr = guarded("builtins", "getattr")(record, "anneal")
    assert isinstance(attr, InertAttribute) and attr.target is record and attr.attribute == "anneal"
    assert guarded("builtins", "getattr")(inert_type("pkg", "Sched"), "x", None).attribute == "x"
    assert "(expected an inert record)" in refused_with(
        "builtins", "getattr", object, "__subclasses__"
    )
    refused_with("builtins", "getattr", record, 3)


def test_numpy_rebuilds_check_type_and_dtype():
    assert resolve_global("numpy", "ndarray") is np.ndarray  # a type, not a guard
    rebuilt = guarded("numpy.core.multiarray", "_reconstruct")(np.ndarray, (0,), b"b")
    assert isinstance(rebuilt, np.ndarray) and rebuilt.shape == (0,)
    assert guarded("numpy._core.multiarray", "_reconstruct")(np.ndarray, (2,), "f8").shape == (2,)
    assert "(expected numpy.ndarray)" in refused_with(
        "numpy.core.multiarray", "_reconstruct", list, (0,), b"b"
    )
    reason = refused_with("numpy.core.multiarray", "_reconstruct", np.ndarray, (0,), 5)
    assert "(expected a dtype code)" in reason
    scalar = guarded("numpy.core.multiarray", "scalar")
    value = scalar(np.dtype("<f8"), np.float64(0.25).tobytes())
    assert value == 0.25 and isinstance(value, np.float64)
    reason = refused_with("numpy.core.multiarray", "scalar", np.dtype("<f8"), b"\x00" * 4)
    assert "(expected the scalar's bytes)" in reason
    reason = refused_with("numpy.core.multiarray", "scalar", np.dtype("O"), b"\x00" * 8)
    assert "(expected a non-object numpy dtype)" in reason
    refused_with("numpy.core.multiarray", "scalar", "f8", b"\x00" * 8)
    refused_with("numpy.core.multiarray", "scalar", np.dtype("<f8"))


def test_numpy_dtype_refuses_object_dtypes_and_passes_flags():
    make = guarded("numpy", "dtype")
    assert make("f8") == np.dtype("f8") and make(b"i4") == np.dtype("i4")
    assert make("f8", True, True) == np.dtype("f8")
    assert make("i1,i4", True).itemsize == 8 and make("i1,i4").itemsize == 5  # align honoured
    for bad in ("O", b"O", "object"):
        assert "(expected a non-object numpy dtype)" in refused_with("numpy", "dtype", bad)
    refused_with("numpy", "dtype", 5)


def test_numpy_dtype_defaults_like_np_dtype_and_copies_only_when_asked():
    """np.dtype(obj) returns numpy's shared instance and copy=True a new, equal one; the guarded
    rebuild keeps both defaults (align=False, copy=False)."""
    make = guarded("numpy", "dtype")
    assert make("f8") is np.dtype("f8") and make("f8", False) is np.dtype("f8")
    copied = make("f8", False, True)
    assert copied == np.dtype("f8") and copied is not np.dtype("f8")


def test_a_tensor_is_rebuilt_on_its_storages_device():
    """torch.load's map_location puts storages on a device first (cuda in use; "meta" stands in
    here, as it needs no GPU): the tensor around a storage must be made on that device."""
    rebuild = guarded("torch._utils", "_rebuild_tensor")
    typed = torch.storage.TypedStorage(4, dtype=torch.float32, device="meta")
    t = rebuild(typed, 0, (2, 2), (2, 1))
    assert (t.device.type, t.dtype, tuple(t.shape)) == ("meta", torch.float32, (2, 2))
    untyped = torch.UntypedStorage(3, device="meta")
    assert rebuild(untyped, 0, (3,), (1,)).device.type == "meta"


def test_get_layout_takes_a_name():
    assert guarded("torch.serialization", "_get_layout")("torch.strided") is torch.strided
    assert "(expected a layout name)" in refused_with("torch.serialization", "_get_layout", 1)


# --- tensor rebuilds ---------------------------------------------------------------------------


def _storage(values) -> torch.storage.TypedStorage:
    return torch.tensor(values, dtype=torch.float32).storage()


def test_tensor_rebuilds_check_storage_offset_size_and_stride():
    v2 = guarded("torch._utils", "_rebuild_tensor_v2")
    t = v2(_storage([1.0, 2.0, 3.0, 4.0]), 1, (2,), (1,), False, collections.OrderedDict())
    assert t.tolist() == [2.0, 3.0] and not t.requires_grad
    plain = guarded("torch._utils", "_rebuild_tensor")(_storage([5.0, 6.0]), 0, (2,), (1,))
    assert plain.tolist() == [5.0, 6.0]
    untyped = _storage([1.0]).untyped()
    assert guarded("torch._utils", "_rebuild_tensor")(untyped, 0, (4,), (1,)).dtype == torch.uint8
    assert "(expected a tensor storage, got list)" in refused_with(
        "torch._utils", "_rebuild_tensor_v2", [1.0], 0, (1,), (1,), False, None
    )
    for offset, size, stride in ((0.0, (1,), (1,)), (0, (True,), (1,)), (0, (1,), [1.5])):
        reason = refused_with(
            "torch._utils", "_rebuild_tensor_v2", _storage([1.0]), offset, size, stride, False, None
        )
        assert "(expected integer offset, size and stride)" in reason
    sized = v2(_storage([1.0, 2.0]), 0, torch.Size([2]), [1], False, None)
    assert sized.tolist() == [1.0, 2.0]


def test_requires_grad_only_for_floating_tensors_and_metadata_only_as_bool_flags():
    v2 = guarded("torch._utils", "_rebuild_tensor_v2")
    assert v2(_storage([1.0]), 0, (1,), (1,), True, None).requires_grad
    assert not v2(_storage([1.0]), 0, (1,), (1,), 1, None).requires_grad  # True only
    ints = torch.tensor([1, 2]).storage()
    assert not v2(ints, 0, (2,), (1,), True, None).requires_grad
    conj = v2(torch.tensor([1 + 2j]).storage(), 0, (1,), (1,), False, None, {"conj": True})
    assert conj.is_conj()
    for metadata in ({"conj": 1}, {1: True}, {}, ["conj"]):
        t = v2(torch.tensor([1 + 2j]).storage(), 0, (1,), (1,), False, None, metadata)
        assert not t.is_conj()


def test_rebuild_v3_views_the_storage_as_the_given_dtype():
    v3 = guarded("torch._utils", "_rebuild_tensor_v3")
    raw = torch.tensor([1.5, -2.0], dtype=torch.float32).storage().untyped()
    t = v3(raw, 0, (8,), (1,), False, None, torch.float32)  # 8 bytes seen as 2 floats
    assert t.dtype == torch.float32 and t.tolist() == [1.5, -2.0]
    same = v3(_storage([3.0]), 0, (1,), (1,), True, None, torch.float32)
    assert same.tolist() == [3.0] and same.requires_grad
    assert "(expected a torch dtype)" in refused_with(
        "torch._utils", "_rebuild_tensor_v3", raw, 0, (2,), (1,), False, None, "float32"
    )


def test_parameters_keep_requires_grad_only_when_floating():
    param = guarded("torch._utils", "_rebuild_parameter")
    p = param(torch.ones(2), True, None)
    assert isinstance(p, torch.nn.Parameter) and p.requires_grad
    assert not param(torch.ones(2), False, None).requires_grad
    assert not param(torch.ones(2, dtype=torch.int64), True, None).requires_grad
    with_state = guarded("torch._utils", "_rebuild_parameter_with_state")
    q = with_state(torch.ones(1), True, None, {"evil": print})
    assert q.requires_grad and not hasattr(q, "evil")
    assert "(expected a tensor)" in refused_with(
        "torch._utils", "_rebuild_parameter", [1.0], True, None
    )


def test_rebuild_from_type_accepts_only_tensor_rebuilds_into_tensor_types():
    from_type = guarded("torch._tensor", "_rebuild_from_type_v2")
    v2 = guarded("torch._utils", "_rebuild_tensor_v2")
    tensor_type = resolve_global("torch", "Tensor")
    args = (_storage([1.0]), 0, (1,), (1,), False, None)
    assert from_type(v2, tensor_type, args, {}).tolist() == [1.0]
    for qualified in ("torch.nn.parameter.Parameter", "torch.nn.Parameter", "torch._tensor.Tensor"):
        module, name = qualified.rsplit(".", 1)
        assert from_type(v2, inert_type(module, name), args, None).tolist() == [1.0]
    reason = refused_with("torch._tensor", "_rebuild_from_type_v2", print, tensor_type, args, {})
    assert "(expected a tensor rebuild function)" in reason
    other_guard = guarded("copyreg", "__newobj__")
    refused_with("torch._tensor", "_rebuild_from_type_v2", other_guard, tensor_type, args, {})
    reason = refused_with(
        "torch._tensor", "_rebuild_from_type_v2", v2, inert_type("evil", "Tensor"), args, {}
    )
    assert "(expected torch.Tensor or Parameter)" in reason
    refused_with("torch._tensor", "_rebuild_from_type_v2", v2, torch.Tensor, args, {})
    assert "(expected an argument tuple)" in refused_with(
        "torch._tensor", "_rebuild_from_type_v2", v2, tensor_type, list(args), {}
    )


# --- inert records, attributes and guards -------------------------------------------------------


def test_inert_record_fields_from_every_state_layout():
    cls = inert_type("pkg", "Config")
    plain = cls(1, k=2)
    plain.__setstate__({"a": 1, 3: "non-str key"})
    assert plain.fields() == {"a": 1, "k": 2}
    slots = cls()
    slots.__setstate__(({"a": 1}, {"b": 2}))
    assert slots.fields() == {"a": 1, "b": 2}
    half = cls()
    half.__setstate__((None, {"b": 2}))
    assert half.fields() == {"b": 2}
    pydantic = cls()
    pydantic.__setstate__({"__dict__": {"hidden": 64}, "__fields_set__": {"hidden"}})
    assert pydantic.fields() == {"hidden": 64}
    odd = cls()
    odd.__setstate__(("not", "dicts"))
    assert odd.fields() == {} and odd.state == ("not", "dicts")
    three = cls()
    three.__setstate__(({"a": 1}, {"b": 2}, {"c": 3}))
    assert three.fields() == {}


def test_pydantic_state_inside_a_dict_and_slots_pair_is_unwrapped_too():
    """A (dict_state, slot_state) pair is merged first, then read like any dict state: pydantic's
    ``__dict__`` inside it gives the fields, not a field named ``__dict__``."""
    record = inert_type("pkg", "Config")()
    record.__setstate__(({"__dict__": {"hidden": 64}, "__fields_set__": {"hidden"}}, None))
    assert record.fields() == {"hidden": 64}


def test_inert_records_hold_items_and_refuse_attributes():
    cls = inert_type("pkg", "Bag")
    bag = cls()
    bag["k"] = "v"
    bag.append(1)
    bag.extend([2, 3])
    assert bag.items == {"k": "v"} and bag.list_items == [1, 2, 3]
    assert (bag.module, bag.name, bag.qualified_name) == ("pkg", "Bag", "pkg.Bag")
    assert repr(bag) == "<inert pkg.Bag>" and repr(cls) == "<inert class pkg.Bag>"
    with pytest.raises(AttributeError, match=r"pkg.Bag record is read-only"):
        bag.x = 1
    with pytest.raises(AttributeError, match=r"pkg.Bag record is read-only"):
        del bag.items
    with pytest.raises(AttributeError, match="is read-only"):
        cls.inert_module = "os"
    with pytest.raises(AttributeError, match="is read-only"):
        del cls.inert_name
    with pytest.raises(TypeError, match="InertRecord is abstract"):
        InertRecord()
    assert inert_type("pkg", "Bag") is cls and inert_type("pkg", "Other") is not cls


def test_inert_attributes_and_guards_cannot_be_changed_by_a_pickle():
    attr = InertAttribute("target", "name")
    assert repr(attr) == "<inert attribute 'target'.name>"
    with pytest.raises(AttributeError, match="InertAttribute is read-only"):
        attr.attribute = "other"
    with pytest.raises(AttributeError) as exc:
        attr.__setstate__({"attribute": "x"})
    assert str(exc.value) == "InertAttribute is read-only"
    guard = guarded("copyreg", "__newobj__")
    with pytest.raises(AttributeError, match="read-only"):
        guard.fn = print
    with pytest.raises(UnsafePickleError) as err:
        guard.__setstate__({"fn": print})
    assert err.value.reason == f"refusing to unpickle copyreg.__newobj__ with pickled state: {HINT}"
    assert err.value.path == "ckpt.pt"  # the refusal names the file


def test_is_inert_knows_records_types_and_attributes_only():
    cls = inert_type("pkg", "T")
    assert is_inert(cls) and is_inert(cls()) and is_inert(InertAttribute(1, "a"))
    assert not is_inert(dict) and not is_inert({}) and not is_inert(InertRecord.__mro__[1])


# --- memo indices, modules, trusted loading -----------------------------------------------------


def _memo_pickle(index: int) -> bytes:
    return b"\x80\x02}r" + index.to_bytes(4, "little") + b"."


def test_memo_indices_are_bounded_by_the_opcodes_seen():
    # LONG_BINPUT is the 3rd opcode (count 2): the bound is 10 * 2 + 100000.
    assert up.loads(_memo_pickle(100_020)) == {}
    with pytest.raises(up.InputError, match="memo index 100021 after 2 opcodes"):
        up.loads(_memo_pickle(100_021))
    module = up.pickle_module_for("/data/ckpt.pt")  # a corrupt file is named in the error
    with pytest.raises(up.InputError) as err:
        module.Unpickler(io.BytesIO(_memo_pickle(100_021))).load()
    assert err.value.path == "/data/ckpt.pt"


def test_the_memo_check_rewinds_and_leaves_unseekable_files_alone():
    data = io.BytesIO(b"junk" + pickle.dumps({"a": 1}, protocol=2))
    data.seek(4)
    up.check_memo_indices(data)
    assert data.tell() == 4 and up.load(data) == {"a": 1}

    class Stream(io.RawIOBase):
        def readable(self):
            return True

        def tell(self):
            raise OSError("not seekable")

    assert up.check_memo_indices(Stream()) is None
    up.check_memo_indices(io.BytesIO(b"\x80\x02(garbage"))  # malformed: left to the unpickler


def test_pickle_modules_name_the_file_in_refusals():
    module = up.pickle_module_for("/data/ckpt.pt")
    assert module.UnpicklingError is pickle.UnpicklingError
    assert module.__name__ == "fga_tui.io.unpickler.restricted"
    with pytest.raises(UnsafePickleError) as err:
        module.load(io.BytesIO(b"cos\nsystem\n(S'true'\ntR."))
    assert err.value.path == "/data/ckpt.pt"
    assert module.Unpickler(io.BytesIO(pickle.dumps([1, 2]))).load() == [1, 2]
    assert module.Unpickler.source == "/data/ckpt.pt" and up.Unpickler.source is None


def test_trusted_loading_imports_real_classes_but_stubs_config_and_missing_ones():
    trusted = up.trusted_pickle_module()
    assert trusted.__name__ == "fga_tui.io.unpickler.trusted"
    data = pickle.dumps(collections.OrderedDict(a=1), protocol=2)
    assert type(trusted.load(io.BytesIO(data))) is collections.OrderedDict
    config = trusted.load(io.BytesIO(b"ccollections\nALIGNNConfig\n)\x81."))
    assert is_inert(config) and config.qualified_name == "collections.ALIGNNConfig"
    missing = trusted.load(io.BytesIO(b"cno_such_module_xyz\nThing\n)\x81."))
    assert missing.qualified_name == "no_such_module_xyz.Thing"
    with pytest.raises(ModuleNotFoundError):
        trusted.load(io.BytesIO(b"cno_such_module_xyz\nthing\n."))
    with pytest.raises(AttributeError):
        trusted.load(io.BytesIO(b"ccollections\nno_such_function\n."))
    with pytest.raises(up.InputError, match="memo index"):
        trusted.load(io.BytesIO(_memo_pickle(10**9)))


# --- the tables built at import, rebuilt here so a change to how they are built shows -----------


def _comparable(value):
    if isinstance(value, torch.serialization.StorageType):
        return ("storage", value.dtype)
    if "_text_or_bytes" in getattr(value, "__qualname__", ""):
        return ("builder", value.__name__)  # made afresh by each call
    return value


def test_the_allowlist_is_exactly_what_its_builder_returns():
    rebuilt = up._allowed_globals()
    assert rebuilt.keys() == up.ALLOWED_GLOBALS.keys()
    for key, value in rebuilt.items():
        assert _comparable(value) == _comparable(up.ALLOWED_GLOBALS[key]), key
    assert ("torch", "float32") in rebuilt and ("torch", "Tensor") not in rebuilt
    assert ("torch.storage", "TypedStorage") not in rebuilt
    assert ("torch", "FloatStorage") in rebuilt
    dtypes = [k for k in rebuilt if k[0] == "torch" and isinstance(rebuilt[k], torch.dtype)]
    assert len(dtypes) >= 12


@pytest.mark.parametrize("kind", [bytes, bytearray, str])
def test_text_or_bytes_builders_made_afresh_check_size_and_codec(kind):
    build = up._text_or_bytes(kind)
    assert build.__name__ == kind.__name__
    limit = up._MAX_BYTES_ALLOC
    with pytest.raises(up._Refused, match=f"a reasonable {kind.__name__} size"):
        build(limit + 1)
    assert len(build(limit)) == (len(str(limit)) if kind is str else limit)
    assert build() == kind()
    if kind is str:
        assert build(b"ab", "latin-1") == "ab" and build(b"ab", "ascii", "strict") == "ab"
    else:
        assert build("ab", "utf8") == kind(b"ab")
    with pytest.raises(up._Refused) as refused:
        build(b"ab" if kind is str else "ab", "cp1252")
    assert str(refused.value) == "a utf-8/latin-1/ascii encoding"
    with pytest.raises(up._Refused, match="encoding"):
        build(b"ab" if kind is str else "ab", "utf-8", "replace")


def test_unpickler_options_reach_pickle_like_torch_passes_them():
    """torch.load passes ``encoding=`` for Python 2 pickles: every entry point must forward it."""
    py2_str = b"\x80\x02U\x04caf\xe9q\x00."  # a Python 2 byte string 'caf\xe9'
    assert up.loads(py2_str, encoding="latin1") == "café"
    assert up.loads(py2_str, encoding="bytes") == b"caf\xe9"
    assert up.load(io.BytesIO(py2_str), encoding="bytes") == b"caf\xe9"
    assert up.Unpickler(io.BytesIO(py2_str), encoding="latin1").load() == "café"
    bound = up.pickle_module_for("old.pt")
    assert bound.load(io.BytesIO(py2_str), encoding="latin1") == "café"
    trusted = up.trusted_pickle_module()
    assert trusted.load(io.BytesIO(py2_str), encoding="bytes") == b"caf\xe9"
    with pytest.raises(UnicodeDecodeError):
        up.loads(py2_str)  # pickle's default: ASCII


def test_inert_records_have_no_instance_dict():
    """Slots only: a pickle's BUILD has no __dict__ to fill behind the read-only __setattr__."""
    record = inert_type("pkg", "Slotted")()
    assert not hasattr(record, "__dict__")
    assert type(record).__slots__ == ()


def test_rebuild_v3_passes_bool_metadata_flags_on():
    v3 = guarded("torch._utils", "_rebuild_tensor_v3")
    storage = torch.tensor([1 + 2j]).storage()
    t = v3(storage, 0, (1,), (1,), False, None, torch.complex64, {"conj": True})
    assert t.is_conj() and t.dtype == torch.complex64
    assert not v3(storage, 0, (1,), (1,), False, None, torch.complex64).is_conj()


def test_tensor_rebuilds_keep_a_saved_non_contiguous_stride():
    v2 = guarded("torch._utils", "_rebuild_tensor_v2")
    t = v2(_storage([1.0, 2.0, 3.0, 4.0]), 0, (2, 2), (1, 2), False, None)
    assert t.stride() == (1, 2) and t.tolist() == [[1.0, 3.0], [2.0, 4.0]]
