"""The research fork's text normalisation, applied before its MatSciBERT tokenizer.

The fork (``models/alignn.py``, ``normalize``) splits a text on ``"\\n"``, passes each line through
HF ``BertNormalizer(lowercase=False, strip_accents=True, clean_text=True,
handle_chinese_chars=True)``, maps every character through ``vocab_mappings.txt`` (a character
missing from the map, space included, becomes ``" "``) and rejoins the lines with ``"\\n"``.
Token states only reproduce the fork's when the text goes through exactly this.

Without a map (no ``--vocab-mappings``) the character-mapping step is skipped. The fork's map sends
every printable ASCII character to itself, so for ASCII texts the result is the same either way.

``tokenizers`` (the ``text`` extra) is used when installed; otherwise a pure-Python copy of
``BertNormalizer`` runs. The two agree on every code point except characters whose Unicode
category differs between tokenizers' built-in tables and Python's ``unicodedata`` (a few hundred
marks and format characters added in recent Unicode versions; unassigned code points are kept by
both).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from fga_tui.io.errors import InputError

# Ranges HF tokenizers treats as "Chinese characters" (CJK Unified Ideographs and extensions).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# Rust's char::is_whitespace (Unicode White_Space) minus the ones clean_text removes first as
# control characters (VT, FF, NEL); tab, newline and carriage return count as whitespace.
_WHITESPACE = frozenset(
    "\t\n\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def bert_normalize_python(line: str) -> str:
    """Pure-Python ``BertNormalizer(lowercase=False, strip_accents=True, clean_text=True,
    handle_chinese_chars=True)``: the fallback when ``tokenizers`` is not installed."""
    out: list[str] = []
    for ch in line:
        if ch in _WHITESPACE:
            out.append(" ")
        elif ch in ("\0", "\ufffd") or unicodedata.category(ch) in _REMOVED_CATEGORIES:
            continue
        elif _is_cjk(ch):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    decomposed = unicodedata.normalize("NFD", "".join(out))
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


@lru_cache(maxsize=1)
def _hf_normalizer() -> Any:
    try:
        from tokenizers.normalizers import BertNormalizer
    except ImportError:
        return None
    return BertNormalizer(
        lowercase=False, strip_accents=True, clean_text=True, handle_chinese_chars=True
    )


def bert_normalize(line: str, *, backend: str = "auto") -> str:
    """One line through BertNormalizer; ``backend`` is "auto", "tokenizers" or "python"."""
    if backend not in ("auto", "tokenizers", "python"):
        raise ValueError(f"unknown backend {backend!r}")
    hf = None if backend == "python" else _hf_normalizer()
    if hf is None:
        if backend == "tokenizers":
            raise ImportError("tokenizers is not installed: pip install 'fga-tui[text]'")
        return bert_normalize_python(line)
    # Rust strings cannot hold lone surrogates; clean_text would drop them (category Cs) anyway.
    line = "".join(ch for ch in line if not 0xD800 <= ord(ch) <= 0xDFFF)
    return hf.normalize_str(line)


def normalize_text(
    text: str, mappings: Mapping[str, str] | None = None, *, backend: str = "auto"
) -> str:
    """The fork's ``normalize(text)``: per line BertNormalizer, then the optional char map."""
    lines = [bert_normalize(line, backend=backend) for line in text.split("\n")]
    if mappings is not None:
        lines = ["".join(mappings.get(ch, " ") for ch in line) for line in lines]
    return "\n".join(lines)


def load_vocab_mappings(path: str | Path) -> dict[str, str]:
    """Read a char map in the format of the fork's ``vocab_mappings.txt``.

    One entry per line: the character, one separator character (a space), then its replacement
    (the rest of the line, possibly several characters or just spaces). Parsed exactly as the
    fork does, ``{line[0]: line[2:] for line in text.strip().split("\\n")}``, so a later line
    for the same character wins. An empty line, which crashes the fork, is an error here.
    """
    path = Path(path)
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "does not exist"
        raise InputError(path, f"vocab mappings file {reason}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            path, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    # The fork reads in text mode, which turns \r\n into \n before splitting.
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise InputError(path, "vocab mappings file is empty")
    mappings: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            raise InputError(path, f"line {number} is empty (expected '<char> <replacement>')")
        mappings[line[0]] = line[2:]
    return mappings
