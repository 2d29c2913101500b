"""A restricted unpickler for untrusted checkpoints, usable as ``torch.load``'s ``pickle_module``.

Why: a pickle is a program. Every ``GLOBAL`` it names is imported and every ``REDUCE`` calls it,
so ``torch.load(weights_only=False)`` on a downloaded file can run anything. ``weights_only=True``
is safe but refuses the research fork's checkpoints (they pickle ``models.alignn.ALIGNNConfig``,
and torch < 2.4 schedulers pickle bound methods). This module sits between the two:

* an allowlist of globals is resolved to *guarded* callables (tensor/storage rebuilds, plain
  builtin containers, numpy array rebuilds) that check their arguments before doing anything;
* any other *class-like* global (``CamelCase``) from a module that is not on :data:`DENIED_MODULES`
  becomes an :class:`InertRecord` type: instances keep the module/name and whatever arguments and
  state the pickle gave them, and nothing from the named module is imported or run;
* ``builtins.getattr`` on an inert record yields an :class:`InertAttribute` (a bound method's
  stand-in);
* everything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) is refused with an
  :class:`~fga_tui.io.errors.InputError`.

``torch.load`` needs ``pickle_module.Unpickler`` (it subclasses it, wraps ``find_class`` for storage
names and sets ``persistent_load`` on the instance) and ``pickle_module.load`` (legacy format).
:func:`pickle_module_for` returns such a module bound to a path so refusals name the file;
:func:`trusted_pickle_module` is the ``--trust-checkpoint`` variant that imports normally but still
stubs the fork's config class so the fork's code need not be installed.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import pickletools
import types
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import torch

from fga_tui.io.errors import InputError

TRUST_HINT = "pass --trust-checkpoint if you trust this file"

# Top-level modules whose globals are never resolved, not even to inert records: naming one of them
# in a checkpoint is a sign of a crafted file. (Modules starting with "_" are denied as well.)
# fmt: off
DENIED_MODULES = frozenset(
    {
        "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "sys", "builtins", "__builtin__",
        "importlib", "imp", "shutil", "socket", "pty", "runpy", "code", "codeop", "pickle",
        "marshal", "ctypes", "types", "functools", "operator", "io", "pathlib", "webbrowser",
        "multiprocessing", "threading", "signal", "asyncio", "tempfile", "glob", "zipimport",
        "pkgutil", "inspect", "gc", "copyreg", "copy_reg", "codecs", "http", "urllib", "ftplib",
        "smtplib", "telnetlib", "xmlrpc", "pdb", "bdb", "timeit", "trace", "cProfile", "profile",
        "platform", "sysconfig", "distutils", "setuptools", "pip", "site", "ensurepip", "venv",
        "zipfile", "tarfile", "shelve", "dbm", "sqlite3", "logging", "ssl", "select", "selectors",
        "mmap", "resource", "fcntl", "termios", "tty", "pwd", "grp", "dill", "cloudpickle",
        "joblib", "torch.hub", "numpy.testing", "numpy.f2py", "numpy.distutils", "IPython",
        "nturl2path", "uuid", "weakref", "contextlib", "atexit", "pydoc", "idlelib", "tkinter",
        "turtle", "unittest", "doctest", "email", "mailbox", "smtpd", "imaplib", "poplib",
        "concurrent", "queue", "sched",
    }
)
# fmt: on

# Tensor subclasses a pickle may name in ``_rebuild_from_type_v2``; anything else is refused there.
_TENSOR_TYPE_NAMES = frozenset(
    {"torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter", "torch.nn.Parameter"}
)
_MAX_BYTES_ALLOC = 1 << 24  # bytes(n)/bytearray(n) beyond this is an allocation bomb, not data
_SAFE_ENCODINGS = ("utf-8", "utf8", "latin1", "latin-1", "ascii")


class UnsafePickleError(InputError):
    """The checkpoint names something that could run code when loaded."""

    def __init__(self, path: str | Path | None, what: str) -> None:
        self.what = what
        super().__init__(
            path, f"refusing to unpickle {what}: it could run code when loaded; {TRUST_HINT}"
        )


# --------------------------------------------------------------------------------------------
# Inert records
# --------------------------------------------------------------------------------------------


class _InertMeta(type):
    """Metaclass of inert record types: the type itself cannot be modified by a pickle."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise AttributeError(f"{cls.__name__} is read-only")

    def __delattr__(cls, name: str) -> None:
        raise AttributeError(f"{cls.__name__} is read-only")

    def __repr__(cls) -> str:
        return f"<inert class {cls.qualified_name}>"

    @property
    def qualified_name(cls) -> str:
        return f"{cls.inert_module}.{cls.inert_name}"


class InertRecord(metaclass=_InertMeta):
    """Stand-in for an instance of a class that was never imported.

    Holds exactly what the pickle supplied: constructor ``args``/``kwargs`` (NEWOBJ, REDUCE),
    ``state`` (BUILD / ``__setstate__``), and items added by SETITEMS/APPENDS. It has no behaviour.
    """

    __slots__ = ("_args", "_items", "_kwargs", "_list", "_state")
    inert_module: ClassVar[str] = ""
    inert_name: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> InertRecord:
        if cls is InertRecord:
            raise TypeError("InertRecord is abstract; use inert_type(module, name)")
        self = object.__new__(cls)
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_kwargs", kwargs)
        object.__setattr__(self, "_state", None)
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_list", [])
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments were recorded by ``__new__``; nothing else happens."""

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_state", state)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).qualified_name} record is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).qualified_name} record is read-only")

    # SETITEMS / APPENDS on a pickled dict or list subclass land here.
    def __setitem__(self, key: Any, value: Any) -> None:
        self._items[key] = value

    def append(self, value: Any) -> None:
        self._list.append(value)

    def extend(self, values: Any) -> None:
        self._list.extend(values)

    def __repr__(self) -> str:
        return f"<inert {type(self).qualified_name}>"

    @property
    def module(self) -> str:
        return type(self).inert_module

    @property
    def name(self) -> str:
        return type(self).inert_name

    @property
    def qualified_name(self) -> str:
        return type(self).qualified_name

    @property
    def args(self) -> tuple[Any, ...]:
        return self._args

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._kwargs

    @property
    def state(self) -> Any:
        return self._state

    @property
    def items(self) -> dict[Any, Any]:
        return self._items

    @property
    def list_items(self) -> list[Any]:
        return self._list

    def fields(self) -> dict[str, Any]:
        """The object's attributes as a plain dict.

        Understands plain ``__dict__`` state, ``(dict_state, slot_state)`` tuples, and pydantic
        v1/v2 state (``{'__dict__': fields, '__fields_set__': ...}``).
        """
        state = self._state
        out: dict[str, Any] = {}
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and all(s is None or isinstance(s, dict) for s in state)
        ):
            for part in state:
                out.update(part or {})
            state = out
        if isinstance(state, dict):
            inner = state.get("__dict__")
            out = dict(inner) if isinstance(inner, dict) else dict(state)
        out.update(self._kwargs)
        return {k: v for k, v in out.items() if isinstance(k, str)}


class InertAttribute:
    """``getattr(record, name)`` from a pickle, e.g. a scheduler's bound ``anneal_func``."""

    __slots__ = ("attribute", "target")

    def __init__(self, target: Any, attribute: str) -> None:
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "attribute", attribute)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("InertAttribute is read-only")

    def __setstate__(self, state: Any) -> None:
        raise AttributeError("InertAttribute is read-only")

    def __repr__(self) -> str:
        return f"<inert attribute {self.target!r}.{self.attribute}>"


_INERT_TYPES: dict[tuple[str, str], type[InertRecord]] = {}


def inert_type(module: str, name: str) -> type[InertRecord]:
    """The (cached) inert record type standing for ``module.name``; never imports ``module``."""
    key = (module, name)
    cls = _INERT_TYPES.get(key)
    if cls is None:
        cls = _InertMeta(
            f"Inert[{module}.{name}]",
            (InertRecord,),
            {
                "__slots__": (),
                "__module__": __name__,
                "inert_module": module,
                "inert_name": name,
            },
        )
        _INERT_TYPES[key] = cls
    return cls


def is_inert(obj: Any) -> bool:
    """True for inert records, inert record types and inert attributes."""
    return isinstance(obj, (InertRecord, InertAttribute)) or (
        isinstance(obj, type) and issubclass(obj, InertRecord)
    )


# --------------------------------------------------------------------------------------------
# Guarded callables for the allowlist
# --------------------------------------------------------------------------------------------


class _Refused(Exception):
    """Raised by a guard; the unpickler turns it into an UnsafePickleError naming its global."""


def _check(cond: bool, why: str) -> None:
    if not cond:
        raise _Refused(why)


def _is_int_tuple(x: Any) -> bool:
    return isinstance(x, (tuple, list, torch.Size)) and all(
        isinstance(i, int) and not isinstance(i, bool) for i in x
    )


def _check_storage(storage: Any) -> None:
    _check(
        isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)),
        f"a tensor storage, got {type(storage).__name__}",
    )


def _plain_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
    _check_storage(storage)
    _check(
        isinstance(offset, int) and _is_int_tuple(size) and _is_int_tuple(stride),
        "integer offset, size and stride",
    )
    if isinstance(storage, torch.UntypedStorage):
        untyped, dtype = storage, torch.uint8
    else:
        untyped, dtype = storage._untyped_storage, storage.dtype
    t = torch.empty((0,), dtype=dtype, device=untyped.device)
    return t.set_(untyped, offset, tuple(size), tuple(stride))


def _apply_flags(t: torch.Tensor, requires_grad: Any, metadata: Any) -> torch.Tensor:
    # Backward hooks in a pickle are ignored on purpose: they would be callables that run later.
    if requires_grad is True and t.is_floating_point():
        t.requires_grad_(True)
    if (
        isinstance(metadata, dict)
        and metadata
        and all(isinstance(k, str) and isinstance(v, bool) for k, v in metadata.items())
    ):
        torch._utils.set_tensor_metadata(t, metadata)
    return t


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> torch.Tensor:
    return _plain_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    metadata: Any = None,
) -> torch.Tensor:
    t = _plain_tensor(storage, storage_offset, size, stride)
    return _apply_flags(t, requires_grad, metadata)


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> torch.Tensor:
    _check(isinstance(dtype, torch.dtype), "a torch dtype")
    t = _plain_tensor(storage, storage_offset, size, stride)
    if t.dtype != dtype:
        t = t.view(dtype)
    return _apply_flags(t, requires_grad, metadata)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> torch.Tensor:
    _check(isinstance(data, torch.Tensor), "a tensor")
    return torch.nn.Parameter(data, bool(requires_grad) and data.is_floating_point())


def _rebuild_parameter_with_state(
    data: Any, requires_grad: Any, backward_hooks: Any, state: Any
) -> torch.Tensor:
    # Python attributes pickled on a Parameter are dropped: setting them means arbitrary setattr.
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_TENSOR_REBUILDS = (
    _rebuild_tensor,
    _rebuild_tensor_v2,
    _rebuild_tensor_v3,
    _rebuild_parameter,
    _rebuild_parameter_with_state,
)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    _check(isinstance(func, _Guard) and func.fn in _TENSOR_REBUILDS, "a tensor rebuild function")
    _check(
        isinstance(new_type, type)
        and issubclass(new_type, InertRecord)
        and new_type.qualified_name in _TENSOR_TYPE_NAMES,
        "torch.Tensor or Parameter",
    )
    _check(isinstance(args, tuple), "an argument tuple")
    # Tensor subclasses and pickled tensor attributes are dropped: the weights are all we need.
    return func(*args)


def _codecs_encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1").
    _check(
        isinstance(obj, str) and encoding in _SAFE_ENCODINGS and errors == "strict",
        "a str and a latin1/utf-8/ascii encoding",
    )
    return obj.encode(encoding)


def _text_or_bytes(kind: type) -> Callable[..., Any]:
    """``str``/``bytes``/``bytearray`` without allocation bombs or codec lookups.

    An arbitrary encoding name makes Python import ``encodings.<name>``; only plain ones pass.
    """

    def build(*args: Any) -> Any:
        _check(
            not (args and isinstance(args[0], int) and args[0] > _MAX_BYTES_ALLOC),
            f"a reasonable {kind.__name__} size",
        )
        _check(
            len(args) < 2 or (args[1] in _SAFE_ENCODINGS and args[2:] in ((), ("strict",))),
            "a utf-8/latin-1/ascii encoding",
        )
        return kind(*args)

    build.__name__ = kind.__name__
    return build


_safe_str = _text_or_bytes(str)

_DEFAULTDICT_FACTORIES = (
    None,
    dict,
    list,
    set,
    frozenset,
    tuple,
    int,
    float,
    str,
    collections.OrderedDict,
)


def _defaultdict(factory: Any = None, *args: Any) -> collections.defaultdict:
    if isinstance(factory, _Guard) and factory.fn is _safe_str:
        factory = str
    _check(factory in _DEFAULTDICT_FACTORIES or is_inert(factory), "a plain default_factory")
    return collections.defaultdict(factory, *args)


def _reconstructor(cls: Any, base: Any, state: Any) -> InertRecord:
    # Protocol 0/1 spelling of "make an instance of cls"; only inert classes on a plain base.
    _check(isinstance(cls, type) and issubclass(cls, InertRecord), "an inert class")
    _check(base in (object, dict, list, tuple, set), "a plain base type")
    return cls(state) if state is not None else cls()


def _newobj(cls: Any, *args: Any) -> Any:
    _check(isinstance(cls, type) and issubclass(cls, InertRecord), "an inert class")
    return cls(*args)


def _newobj_ex(cls: Any, args: Any, kwargs: Any) -> Any:
    _check(isinstance(cls, type) and issubclass(cls, InertRecord), "an inert class")
    return cls(*tuple(args), **dict(kwargs))


def _getattr(target: Any, name: Any, *default: Any) -> InertAttribute:
    _check(is_inert(target) and isinstance(name, str), "an inert record")
    return InertAttribute(target, name)


def _numpy_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    _check(subtype is np.ndarray, "numpy.ndarray")
    _check(isinstance(dtype, (bytes, str)), "a dtype code")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    _check(isinstance(dtype, np.dtype) and not dtype.hasobject, "a non-object numpy dtype")
    _check(isinstance(data, bytes) and len(data) == dtype.itemsize, "the scalar's bytes")
    return np.frombuffer(data, dtype=dtype)[0].copy()


def _numpy_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    _check(
        isinstance(obj, (str, bytes)) and obj not in ("O", b"O", "object"),
        "a non-object numpy dtype",
    )
    return np.dtype(obj, align=bool(align), copy=bool(copy))


def _get_layout(name: Any) -> Any:
    _check(isinstance(name, str), "a layout name")
    return torch.serialization._get_layout(name)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): _defaultdict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("builtins", "int"): int,
        ("builtins", "float"): float,
        ("builtins", "complex"): complex,
        ("builtins", "bool"): bool,
        ("builtins", "str"): _safe_str,
        ("builtins", "slice"): slice,
        ("builtins", "object"): object,
        ("builtins", "bytes"): _text_or_bytes(bytes),
        ("builtins", "bytearray"): _text_or_bytes(bytearray),
        ("builtins", "getattr"): _getattr,
        ("_codecs", "encode"): _codecs_encode,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("copyreg", "__newobj__"): _newobj,
        ("copyreg", "__newobj_ex__"): _newobj_ex,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch.serialization", "_get_layout"): _get_layout,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _numpy_dtype,
    }
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(core, "_reconstruct")] = _numpy_reconstruct
        allowed[(core, "scalar")] = _numpy_scalar
    # dtypes are pickled as globals: torch.float32, torch.int64, ...
    for attr, value in vars(torch).items():  # vars, not dir: no lazy submodule imports
        if isinstance(value, torch.dtype):
            allowed[("torch", attr)] = value
    # Storage classes normally never reach find_class (torch maps "*Storage" names to an inert
    # StorageType first); direct pickles get the same harmless object.
    for storage_cls in torch._storage_classes:
        mod, name = storage_cls.__module__, storage_cls.__name__
        if storage_cls in (torch.storage.TypedStorage, torch.storage.UntypedStorage):
            continue
        try:
            allowed[(mod, name)] = torch.serialization.StorageType(name)
        except KeyError:
            continue
    return allowed


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed_globals()


def _normalise(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names (``__builtin__``, ``copy_reg``) as pickle's fix_imports does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _is_denied_module(module: str) -> bool:
    if module == "__main__":
        return False
    if module.startswith("_") or not module:
        return True
    parts = module.split(".")
    return any(".".join(parts[: i + 1]) in DENIED_MODULES for i in range(len(parts)))


def _is_class_like(name: str) -> bool:
    parts = name.split(".")
    return all(p.isidentifier() and p[:1].isupper() for p in parts)


class _Guard:
    """An allowlisted callable that checks its arguments; a refusal names its pickle global.

    A class with slots and no writable attributes, so a pickle's BUILD cannot retarget it.
    """

    __slots__ = ("fn", "source", "what")

    def __init__(self, fn: Callable[..., Any], what: str, source: str | Path | None) -> None:
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "what", what)
        object.__setattr__(self, "source", source)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("read-only")

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(self.source, f"{self.what} with pickled state")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except _Refused as exc:
            raise UnsafePickleError(
                self.source, f"{self.what} with unexpected arguments (expected {exc})"
            ) from None

    def __repr__(self) -> str:
        return f"<guarded {self.what}>"


def resolve_global(module: str, name: str, source: str | Path | None = None) -> Any:
    """What the restricted unpickler hands back for ``module.name`` (the whole policy)."""
    module, name = _normalise(module, name)
    what = f"{module}.{name}"
    if (module, name) in ALLOWED_GLOBALS:
        value = ALLOWED_GLOBALS[(module, name)]
        if isinstance(value, torch.serialization.StorageType):
            return torch.serialization.StorageType(name)  # fresh: BUILD may write to it
        if isinstance(value, type) or not callable(value):
            return value  # builtin types and dtypes: C types a pickle cannot modify
        return _Guard(value, what, source)
    if not _is_denied_module(module) and _is_class_like(name):
        return inert_type(module, name)
    raise UnsafePickleError(source, what)


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` applies :func:`resolve_global`.

    ``source`` (a class attribute, set by :func:`pickle_module_for`) is the path that refusals
    name.
    """

    source: ClassVar[str | Path | None] = None

    def __init__(self, file: IO[bytes], **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._file = file

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name, self.source)

    def load(self) -> Any:
        check_memo_indices(self._file, self.source)
        return super().load()


# A memo index far beyond the number of objects seen makes the C unpickler grow its memo table to
# that size (index 10**9 → 16 GB written); real pickles number their memo entries in order.
_MEMO_SLACK = 100_000
_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def check_memo_indices(file: IO[bytes], source: str | Path | None = None) -> None:
    """Refuse a pickle whose memo indices would make unpickling allocate without bound.

    Scans the opcodes of the next pickle in ``file`` and rewinds. Malformed streams are left for
    the unpickler itself to report.
    """
    try:
        start = file.tell()
    except (AttributeError, OSError, ValueError):
        return  # not seekable: nothing to rewind to
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(file)):
            if op.name in _MEMO_OPS and isinstance(arg, int) and arg > 10 * count + _MEMO_SLACK:
                raise InputError(
                    source, f"is corrupt: its pickle uses memo index {arg} after {count} opcodes"
                )
    except (ValueError, EOFError, UnicodeDecodeError):
        pass
    finally:
        file.seek(start)


def load(file: IO[bytes], **kwargs: Any) -> Any:
    """Restricted ``pickle.load``."""
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    """Restricted ``pickle.loads``."""
    return load(io.BytesIO(data), **kwargs)


def pickle_module_for(path: str | Path | None) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` whose refusals name ``path``."""
    bound = type("Unpickler", (Unpickler,), {"source": path})

    def bound_load(file: IO[bytes], **kwargs: Any) -> Any:
        return bound(file, **kwargs).load()

    return _as_module("restricted", bound, bound_load)


# Any global with this name is the fork's (or upstream's) config class, stubbed even when trusted.
CONFIG_CLASS_NAMES = frozenset({"ALIGNNConfig"})


class TrustedUnpickler(pickle.Unpickler):
    """Full unpickling (``--trust-checkpoint``), except that config classes map to an inert stub.

    A class whose module cannot be imported (e.g. the fork's ``models.alignn``) also becomes an
    inert record instead of failing the load.
    """

    def __init__(self, file: IO[bytes], **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._file = file

    def load(self) -> Any:
        check_memo_indices(self._file)  # trusted, but a damaged file should not eat all memory
        return super().load()

    def find_class(self, module: str, name: str) -> Any:
        if name in CONFIG_CLASS_NAMES:
            return inert_type(*_normalise(module, name))
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            if _is_class_like(name):
                return inert_type(*_normalise(module, name))
            raise


def trusted_pickle_module() -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` that trusts the file but stubs config classes."""

    def trusted_load(file: IO[bytes], **kwargs: Any) -> Any:
        return TrustedUnpickler(file, **kwargs).load()

    return _as_module("trusted", TrustedUnpickler, trusted_load)


def _as_module(kind: str, unpickler: type, load_fn: Callable[..., Any]) -> types.ModuleType:
    mod = types.ModuleType(f"{__name__}.{kind}")
    mod.Unpickler = unpickler  # type: ignore[attr-defined]
    mod.load = load_fn  # type: ignore[attr-defined]
    mod.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return mod


__all__ = [
    "ALLOWED_GLOBALS",
    "DENIED_MODULES",
    "InertAttribute",
    "InertRecord",
    "TrustedUnpickler",
    "Unpickler",
    "UnsafePickleError",
    "inert_type",
    "is_inert",
    "load",
    "loads",
    "pickle_module_for",
    "resolve_global",
    "trusted_pickle_module",
]
