"""Precomputed text-encoder states: the ``.npz`` contract (README, 'Input formats').

An archive holds ``tokens`` (str [L]), ``embeddings`` (float [L, D], the encoder's last hidden
state) and optionally ``mask`` ([L], 1 = real token; default all ones). Other arrays (for example
``input_ids``) are ignored. Files are untrusted: ``allow_pickle=False`` means an object array is
refused instead of unpickled (unpickling runs arbitrary code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fga_tui.io.errors import InputError
from fga_tui.io.types import TokenStates

MAX_MEMBER_BYTES = 2**31  # refuse absurd (or zip-bomb) members before decompressing them


def load_tokens(path: str | Path) -> TokenStates:
    """Load and check a token-states archive; every problem is an :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "token file does not exist")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a .npz token file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04" and not magic.startswith(b"\x93NUM"):
        raise InputError(
            path, "is not an .npz archive (expected a zip of tokens, embeddings and mask arrays)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # any parser failure on an untrusted file is the file's fault
        raise InputError(path, f"is not an .npz archive ({_brief(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(path, "is a single .npy array, not an .npz archive with tokens/embeddings")
    with archive:
        missing = [k for k in ("tokens", "embeddings") if k not in archive.files]
        if missing:
            raise InputError(
                path,
                f"missing key(s) {', '.join(missing)} (has: {', '.join(archive.files) or 'none'}); "
                "expected tokens [L], embeddings [L, D], optional mask [L]",
            )
        tokens = _member(archive, "tokens", path)
        embeddings = _member(archive, "embeddings", path)
        mask = _member(archive, "mask", path) if "mask" in archive.files else None

    if tokens.ndim != 1:
        raise InputError(path, f"tokens must be 1-D [L], got shape {list(tokens.shape)}")
    if tokens.dtype.kind == "S":
        try:
            words = tuple(t.decode("utf-8") for t in tokens.tolist())
        except UnicodeDecodeError:
            raise InputError(path, "tokens are bytes that are not UTF-8") from None
    elif tokens.dtype.kind == "U":
        words = tuple(str(t) for t in tokens.tolist())
    else:
        raise InputError(path, f"tokens must be strings, not {tokens.dtype}")
    length = len(words)
    if length == 0:
        raise InputError(path, "has no tokens (L = 0)")

    if embeddings.dtype.kind != "f":
        raise InputError(path, f"embeddings must be floating point, not {embeddings.dtype}")
    if embeddings.ndim != 2 or embeddings.shape[1] == 0:
        raise InputError(path, f"embeddings must be 2-D [L, D], got shape {list(embeddings.shape)}")
    if embeddings.shape[0] != length:
        raise InputError(
            path, f"shape mismatch: {length} tokens but embeddings has {embeddings.shape[0]} rows"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # too-large float64 → inf, caught below
        emb = embeddings.astype(np.float32)
    if not np.all(np.isfinite(emb)):
        row = int(np.argwhere(~np.isfinite(emb))[0][0])
        raise InputError(path, f"embeddings contain NaN or inf (token {row}, {words[row]!r})")

    if mask is None:
        flags = np.ones(length, dtype=bool)
    else:
        if mask.dtype.kind not in "biuf":
            raise InputError(path, f"mask must be numeric 0/1, not {mask.dtype}")
        if mask.shape != (length,):
            raise InputError(
                path, f"shape mismatch: {length} tokens but mask has shape {list(mask.shape)}"
            )
        if not np.all((mask == 0) | (mask == 1)):
            raise InputError(path, "mask must contain only 0 and 1 (1 = real token)")
        flags = mask.astype(bool)
        if not flags.any():
            raise InputError(path, "mask is all zero: no real tokens")
    return TokenStates(tokens=words, embeddings=emb, mask=flags, source=path)


def _member(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    name = key + ".npy"
    try:
        size = archive.zip.getinfo(name).file_size
    except KeyError:
        size = 0
    if size > MAX_MEMBER_BYTES:
        raise InputError(path, f"{key} is {size / 2**30:.1f} GiB uncompressed; refusing to load it")
    try:
        return archive[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise InputError(
                path,
                f"{key} is an object array; refusing to unpickle it "
                "(save tokens as a str array, e.g. np.array(tokens, dtype=str))",
            ) from None
        raise InputError(path, f"{key} cannot be read ({_brief(exc)})") from None
    except Exception as exc:  # corrupt member, lying header (MemoryError), bad zip entry
        raise InputError(path, f"{key} cannot be read ({_brief(exc)})") from None


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
