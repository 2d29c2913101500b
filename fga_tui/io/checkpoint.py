"""Safe loading of every checkpoint layout into a :class:`RawCheckpoint`.

Checkpoints are untrusted input. Loading order: ``torch.load(weights_only=True)`` (fast, torch's own
safe unpickler; plain state dicts and ignite files pass), then the restricted unpickler of
:mod:`fga_tui.io.unpickler` (the fork's ``best_*_model.pt`` with its pickled ``ALIGNNConfig``,
old scheduler pickles). ``trust=True`` unpickles fully, still stubbing the config class so the
fork's code need not be installed.

This module knows no model: it returns the tensors, the config fields as a plain dict (from the
pickled config, else ``config.json`` beside the file) and small metadata. Every problem with the
file is an :class:`InputError` naming it.
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fga_tui.io.errors import InputError
from fga_tui.io.unpickler import (
    TRUST_HINT,
    InertRecord,
    pickle_module_for,
    trusted_pickle_module,
)

LAYOUTS = ("fork-best", "ignite", "wrapped", "state_dict", "pickled-module", "safetensors")
CONFIG_SOURCES = ("pickled config", "config.json")

# Keys of a checkpoint dict that hold the weights, in order of preference.
_WEIGHT_KEYS = ("model", "state_dict", "model_state_dict")
# Keys that are training state, never metadata.
_TRAINING_KEYS = frozenset(
    {
        "optimizer",
        "lr_scheduler",
        "scheduler",
        "trainer",
        "config",
        "optimizer_states",
        "lr_schedulers",
        "callbacks",
        "loops",
    }
)
_MAX_META_STR = 200
_MAX_DEPTH = 32
_SHOWN = 3


@dataclass(frozen=True)
class RawCheckpoint:
    """What a checkpoint file holds, validated but not interpreted as a model.

    ``state_dict``: parameter name → plain CPU-or-``map_location`` tensor (unwrapped, detached).
    ``config``: the architecture fields as a plain dict, or None. ``config_source``: where they came
    from ("pickled config" | "config.json" | None). ``layout``: one of :data:`LAYOUTS`.
    ``meta``: small scalars the file holds (epoch, val_mae, test_mae, ...). ``warnings``: things
    the user should know (disagreeing configs, stripped key prefixes, ignored entries).
    """

    path: Path
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] | None
    config_source: str | None
    layout: str
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def load_checkpoint(
    path: str | Path, *, trust: bool = False, map_location: str | torch.device = "cpu"
) -> RawCheckpoint:
    """Load ``path`` without running code from it (unless ``trust``); see the module docstring."""
    p = Path(path)
    kind = _sniff(p)
    notes: list[str] = []
    if kind == "safetensors":
        obj: Any = _load_safetensors(p, map_location)
    else:
        if kind == "tar" and not trust:
            raise InputError(
                p,
                "is a legacy tar-format checkpoint (torch < 0.4), which cannot be "
                f"loaded safely; {TRUST_HINT}",
            )
        obj = _torch_load(p, trust=trust, map_location=map_location)

    state_dict, layout, top = _unwrap(p, obj, notes)
    if kind == "safetensors":
        layout = "safetensors"
    state_dict = _clean_state_dict(p, state_dict, notes)

    pickled = _pickled_config(top, notes) if top is not None else None
    from_json = _read_config_json(p, notes)
    config, source = None, None
    if pickled is not None:
        config, source = pickled, "pickled config"
        if from_json is not None:
            _compare_configs(pickled, from_json, notes)
    elif from_json is not None:
        config, source = from_json, "config.json"

    meta = _meta(top) if top is not None else {}
    return RawCheckpoint(
        path=p,
        state_dict=state_dict,
        config=config,
        config_source=source,
        layout=layout,
        meta=meta,
        warnings=notes,
    )


# ---------------------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------------------


def _sniff(p: Path) -> str:
    """Classify the file by its first bytes; refuse what is not a checkpoint with a clear reason."""
    try:
        if not p.exists():
            raise InputError(p, "no such file")
        if p.is_dir():
            raise InputError(p, "is a directory, not a checkpoint file")
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(512)
    except PermissionError:
        raise InputError(p, "cannot be read: permission denied") from None
    except OSError as exc:
        raise InputError(p, f"cannot be read: {exc.strerror or exc}") from None
    if size == 0:
        raise InputError(p, "is empty (0 bytes), not a checkpoint")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        _check_zip(p)
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"  # torch's legacy format starts with a protocol-2 pickle
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if len(head) >= 9 and head[8:9] == b"{" and p.suffix == ".safetensors":
        return "safetensors"
    raise InputError(p, f"is not a PyTorch checkpoint: {_describe_format(head)}")


def _describe_format(head: bytes) -> str:
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"["):
        return "it looks like a JSON file"
    known = {
        b"\x89PNG": "it is a PNG image",
        b"\xff\xd8\xff": "it is a JPEG image",
        b"GIF8": "it is a GIF image",
        b"%PDF": "it is a PDF document",
        b"\x1f\x8b": "it is gzip-compressed (decompress it first)",
        b"\x89HDF": "it is an HDF5 file",
        b"\x93NUMPY": "it is a numpy .npy file",
        b"BZh": "it is bzip2-compressed (decompress it first)",
        b"\xfd7zXZ": "it is xz-compressed (decompress it first)",
    }
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if len(head) >= 9 and head[8:9] == b"{":
        return "it looks like a safetensors file (give it a .safetensors suffix)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary format"
    return "it looks like a text file"


def _check_zip(p: Path) -> None:
    """Reject truncated archives, foreign zips and TorchScript before torch sees them."""
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise InputError(p, f"is truncated or corrupt (zip archive unreadable: {exc})") from None
    except OSError as exc:
        raise InputError(p, f"cannot be read: {exc}") from None
    inner = {n.split("/", 1)[-1] for n in names}
    if "constants.pkl" in inner:
        raise InputError(
            p,
            "is a TorchScript archive (torch.jit.save), not a checkpoint; "
            "save the model's state_dict with torch.save instead",
        )
    if "data.pkl" not in inner:
        raise InputError(p, "is a zip archive but not a PyTorch checkpoint (no data.pkl inside)")


def _torch_load(p: Path, *, trust: bool, map_location: str | torch.device) -> Any:
    """torch.load with the safest unpickler that can read the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if trust:
                return torch.load(
                    p,
                    map_location=map_location,
                    weights_only=False,
                    pickle_module=trusted_pickle_module(),
                )
            try:
                return torch.load(p, map_location=map_location, weights_only=True)
            except Exception:
                # Either a global torch's allowlist lacks (the fork's config, a scheduler's bound
                # method) or a damaged file: the restricted unpickler decides which, and says so.
                pass
            return torch.load(
                p, map_location=map_location, weights_only=False, pickle_module=pickle_module_for(p)
            )
    except InputError as exc:
        if exc.path == str(p):
            raise
        raise InputError(p, exc.reason) from None
    except MemoryError:
        raise InputError(p, "is too large to load into memory") from None
    except Exception as exc:
        raise InputError(p, f"could not be read as a PyTorch checkpoint ({_short(exc)})") from None


def _load_safetensors(p: Path, map_location: str | torch.device) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise InputError(
            p,
            "is a safetensors file but the 'safetensors' package is not "
            "installed (pip install safetensors)",
        ) from None
    try:
        return load_file(str(p), device=str(map_location))
    except Exception as exc:
        raise InputError(p, f"is not a readable safetensors file ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    name = type(exc).__name__
    return f"{name}: {first[:160]}" if first else name


# ---------------------------------------------------------------------------------------------
# Interpreting what was unpickled
# ---------------------------------------------------------------------------------------------


def _unwrap(
    p: Path, obj: Any, notes: list[str]
) -> tuple[Mapping[str, Any], str, Mapping[str, Any] | None]:
    """Find the state dict in ``obj``; return it, the layout, and the top-level dict (or None)."""
    if _is_module(obj):
        return _module_state_dict(p, obj), "pickled-module", None
    if not isinstance(obj, Mapping):
        raise InputError(p, f"holds a {_type_name(obj)}, not a state_dict or checkpoint dict")
    if not obj:
        raise InputError(p, "holds an empty dict: no tensors, not a model checkpoint")

    weight_key = next((k for k in _WEIGHT_KEYS if k in obj), None)
    if weight_key is None:
        if not _contains_tensor(obj):
            raise InputError(p, "holds no tensors: not a model checkpoint")
        return obj, "state_dict", None

    weights = obj[weight_key]
    if _is_module(weights):
        notes.append(f"'{weight_key}' is a pickled nn.Module; its parameters were read directly")
        state: Mapping[str, Any] = _module_state_dict(p, weights)
    elif isinstance(weights, Mapping) and weights and _contains_tensor(weights):
        state = weights
    else:
        raise InputError(p, f"its '{weight_key}' entry is {_describe(weights)}, not a state_dict")

    if "config" in obj:
        layout = "fork-best"
    elif "trainer" in obj or ("optimizer" in obj and "lr_scheduler" in obj):
        layout = "ignite"
    else:
        layout = "wrapped"
    return state, layout, obj


def _clean_state_dict(
    p: Path, state: Mapping[str, Any], notes: list[str]
) -> dict[str, torch.Tensor]:
    """Check every value is a tensor; detach it (dropping any pickled hooks or attributes)."""
    bad = [(k, v) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        key, value = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise InputError(p, f"state_dict entry {key!r} is {_describe(value)}, not a tensor{more}")
    non_str = [k for k in state if not isinstance(k, str)]
    if non_str:
        raise InputError(p, f"state_dict has a non-string key {non_str[0]!r}")
    for key, value in state.items():
        # Weights are dense real tensors with data: a sparse tensor cannot be detached or
        # copied into a parameter, a meta tensor has no values, a complex one would lose half.
        if value.layout != torch.strided:
            raise InputError(p, f"state_dict entry {key!r} is a {value.layout} tensor, not dense")
        if value.is_meta:
            raise InputError(p, f"state_dict entry {key!r} is a meta tensor (it holds no values)")
        if value.is_complex() or value.is_quantized:
            raise InputError(
                p, f"state_dict entry {key!r} has dtype {value.dtype}; weights must be real numbers"
            )
    out = {k: v.detach().as_subclass(torch.Tensor) for k, v in state.items()}
    for prefix in ("module.", "model."):
        if out and all(k.startswith(prefix) for k in out):
            notes.append(f"every state_dict key started with {prefix!r}; the prefix was removed")
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def _is_module(obj: Any) -> bool:
    if isinstance(obj, torch.nn.Module):
        return True
    return isinstance(obj, InertRecord) and "_parameters" in obj.fields()


def _module_state_dict(p: Path, module: Any) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a pickled module (real or inert), like state_dict()."""
    if isinstance(module, torch.nn.Module):
        return dict(module.state_dict())
    out: dict[str, torch.Tensor] = {}
    budget = _Budget(_MAX_VISITS)
    _collect_module(module, "", out, budget)
    if budget.exhausted:
        raise InputError(p, "holds a pickled model that is too large or refers to itself")
    if not out:
        raise InputError(p, "holds a pickled model with no parameters")
    return out


class _Budget:
    """Caps how many containers a walk over unpickled data visits, and how deep it goes.

    A pickle can share one container many times or make it contain itself (memo references), so
    a small file can describe a structure whose naive traversal never ends.
    """

    def __init__(self, visits: int, depth: int = _MAX_DEPTH) -> None:
        self.left = visits
        self.max_depth = depth
        self.depth = 0

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0 and self.depth < self.max_depth

    def __enter__(self) -> _Budget:
        self.depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1

    @property
    def exhausted(self) -> bool:
        return self.left < 0


_MAX_VISITS = 100_000


def _collect_module(
    record: InertRecord, prefix: str, out: dict[str, torch.Tensor], budget: _Budget
) -> None:
    if not budget.take():
        return
    fields = record.fields()
    skip = fields.get("_non_persistent_buffers_set")
    if not isinstance(skip, (set, frozenset, list, tuple)):
        skip = ()
    for group in ("_parameters", "_buffers"):
        entries = fields.get(group)
        if isinstance(entries, Mapping):
            for name, value in entries.items():
                if isinstance(value, torch.Tensor) and name not in skip:
                    out[f"{prefix}{name}"] = value
    children = fields.get("_modules")
    if isinstance(children, Mapping):
        with budget:
            for name, child in children.items():
                if isinstance(child, InertRecord):
                    _collect_module(child, f"{prefix}{name}.", out, budget)


def _contains_tensor(obj: Any, budget: _Budget | None = None) -> bool:
    budget = budget or _Budget(_MAX_VISITS)
    if isinstance(obj, torch.Tensor):
        return True
    if not budget.take():
        return False
    with budget:
        if isinstance(obj, Mapping):
            return any(_contains_tensor(v, budget) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return any(_contains_tensor(v, budget) for v in obj)
    return False


def _type_name(obj: Any) -> str:
    if isinstance(obj, InertRecord):
        return obj.qualified_name
    return type(obj).__name__


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, Mapping) and not value:
        return "an empty dict"
    if isinstance(value, Mapping):
        return "a dict of non-tensors"
    name = _type_name(value)
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


# ---------------------------------------------------------------------------------------------
# Config and metadata
# ---------------------------------------------------------------------------------------------


def _pickled_config(top: Mapping[str, Any], notes: list[str]) -> dict[str, Any] | None:
    if "config" not in top:
        return None
    cfg = top["config"]
    fields: Any
    if isinstance(cfg, InertRecord):
        fields = cfg.fields()
    elif isinstance(cfg, Mapping):
        fields = dict(cfg)
    elif hasattr(cfg, "model_dump"):  # trusted pydantic v2 object
        fields = cfg.model_dump()
    elif hasattr(cfg, "__dict__"):  # any other trusted object
        fields = {k: v for k, v in vars(cfg).items() if not k.startswith("_")}
    else:
        notes.append(f"ignored the checkpoint's 'config' entry: it is {_describe(cfg)}")
        return None
    # An upstream-style TrainingConfig pickled whole: the model's fields are under "model".
    if isinstance(fields.get("model"), Mapping) and "hidden_features" not in fields:
        fields = dict(fields["model"])
    budget = _Budget(_MAX_VISITS)
    return {str(k): _plain(v, budget) for k, v in fields.items()}


def _read_config_json(p: Path, notes: list[str]) -> dict[str, Any] | None:
    """The model section of ``config.json`` beside the checkpoint (upstream/fork TrainingConfig)."""
    cj = p.parent / "config.json"
    if not cj.is_file():
        return None
    try:
        data = json.loads(cj.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(cj, "is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            cj, f"is malformed JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except OSError as exc:
        raise InputError(cj, f"cannot be read: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise InputError(cj, f"holds a JSON {type(data).__name__}, expected an object")
    model = data.get("model")
    if isinstance(model, dict):
        return {str(k): v for k, v in model.items()}
    if model is not None:
        raise InputError(
            cj,
            f'its "model" entry is a JSON {type(model).__name__}, '
            "expected an object of ALIGNNConfig fields",
        )
    if "hidden_features" in data or "alignn_layers" in data:
        return dict(data)  # a bare model config
    notes.append(f'{cj} has no "model" section; it was ignored')
    return None


def _compare_configs(pickled: dict[str, Any], from_json: dict[str, Any], notes: list[str]) -> None:
    differ = [
        k for k in sorted(pickled.keys() & from_json.keys()) if not _same(pickled[k], from_json[k])
    ]
    if not differ:
        return
    shown = ", ".join(
        f"{k} (pickled {pickled[k]!r} vs config.json {from_json[k]!r})" for k in differ[:_SHOWN]
    )
    more = f" and {len(differ) - _SHOWN} more" if len(differ) > _SHOWN else ""
    notes.append(
        f"config.json beside the checkpoint disagrees with the pickled config on "
        f"{shown}{more}; using the pickled config"
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or (math.isnan(a) and math.isnan(b))
    return a == b


def _meta(top: Mapping[str, Any]) -> dict[str, Any]:
    """Small scalars of the checkpoint dict (epoch, val_mae, ...) and of an ignite trainer state."""
    meta: dict[str, Any] = {}
    for key, value in top.items():
        if not isinstance(key, str) or key in _WEIGHT_KEYS or key in _TRAINING_KEYS:
            continue
        scalar = _scalar(value)
        if scalar is not _NOT_SCALAR:
            meta[key] = scalar
    trainer = top.get("trainer")
    if isinstance(trainer, Mapping):
        for key, value in trainer.items():
            scalar = _scalar(value)
            if isinstance(key, str) and scalar is not _NOT_SCALAR:
                meta[f"trainer.{key}"] = scalar
        if "epoch" not in meta:
            epoch = meta.get("trainer.epoch")
            iteration, length = meta.get("trainer.iteration"), meta.get("trainer.epoch_length")
            if isinstance(epoch, int):
                meta["epoch"] = epoch
            elif isinstance(iteration, int) and isinstance(length, int) and length > 0:
                meta["epoch"] = iteration // length
    return meta


_NOT_SCALAR = object()


def _scalar(value: Any) -> Any:
    """``value`` as a plain Python scalar, or ``_NOT_SCALAR``.

    numpy is checked first: ``np.float64`` subclasses float but must not leak into JSON reports.
    """
    if isinstance(value, (np.generic, np.ndarray)):
        return value.reshape(()).item() if np.size(value) == 1 else _NOT_SCALAR
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_META_STR else _NOT_SCALAR
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dim() <= 1:
        return value.item()
    return _NOT_SCALAR


def _plain(value: Any, budget: _Budget | None = None) -> Any:
    """Config values as plain Python (numpy/tensor scalars unwrapped, sets to sorted lists).

    Budgeted: a pickle can build self-referencing or heavily shared containers.
    """
    budget = budget or _Budget(_MAX_VISITS)
    scalar = _scalar(value)
    if scalar is not _NOT_SCALAR:
        return scalar
    if not budget.take():
        return "…"
    with budget:
        if isinstance(value, (set, frozenset)):
            return sorted((_plain(v, budget) for v in value), key=repr)
        if isinstance(value, (list, tuple)):
            return [_plain(v, budget) for v in value]
        if isinstance(value, Mapping):
            return {str(k): _plain(v, budget) for k, v in value.items()}
        if isinstance(value, InertRecord):
            return {k: _plain(v, budget) for k, v in value.fields().items()}
    return value


__all__ = ["CONFIG_SOURCES", "LAYOUTS", "RawCheckpoint", "load_checkpoint"]
