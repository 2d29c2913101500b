"""User settings: a small TOML file in the user's config directory; flags override it.

The file is ``$FGA_TUI_CONFIG`` when set, else ``$XDG_CONFIG_HOME/fga-tui/settings.toml``
(``~/.config/fga-tui/settings.toml``). Three keys, all optional::

    theme = "ansi-dark"            # a Textual theme (the TUI remembers the last one chosen)
    device = "cuda:1"              # auto | cpu | cuda | cuda:N
    snapshot_dir = "~/fga-snaps"   # where `s` writes snapshot directories

A value given on the command line wins over the file. A file that cannot be read, is not TOML,
has an unknown key or a bad value is an ``InputError`` naming the file (one line, exit 2), never
silently ignored: a typo in a setting should not quietly change nothing.

Pure Python (tomllib), no Textual: theme names are checked against Textual's list by the caller
that is about to start the app (``fga_tui.tui.themes``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from fga_tui.io.errors import InputError

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def config_path() -> Path:
    """Where the settings live (the file need not exist)."""
    explicit = os.environ.get("FGA_TUI_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "fga-tui" / "settings.toml"


@dataclass(frozen=True)
class Settings:
    """Remembered defaults; None = not set (the built-in default applies)."""

    theme: str | None = None
    device: str | None = None
    snapshot_dir: Path | None = None

    def to_toml(self) -> str:
        """The file's text: one ``key = "value"`` line per set key (JSON strings are TOML)."""
        lines = ["# fga-tui settings (flags override them)"]
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                lines.append(f"{f.name} = {json.dumps(str(value))}")
        return "\n".join(lines) + "\n"


def check_device(where: str | Path, value: str) -> str:
    """A device spec, checked by its form only (whether CUDA exists is the engine's call)."""
    if not DEVICE.match(value):
        raise InputError(where, f"device {value!r} is not one of {DEVICE_HELP}")
    return value


def parse_settings(text: str, where: str | Path) -> Settings:
    """Settings from TOML text; any problem is an ``InputError`` naming ``where``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(where, f"not valid TOML: {exc}") from exc
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(
            where, f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise InputError(where, f"{key} must be a non-empty string, not {value!r}")
    device = data.get("device")
    if device is not None:
        check_device(where, device)
    snap = data.get("snapshot_dir")
    return Settings(
        theme=data.get("theme"),
        device=device,
        snapshot_dir=None if snap is None else Path(snap).expanduser(),
    )


def load_settings(path: Path | None = None) -> Settings:
    """The user's settings (empty when there is no file)."""
    path = config_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(path, f"cannot read the settings file: {reason}") from exc
    return parse_settings(text, path)


def save_setting(key: str, value: str, path: Path | None = None) -> Path:
    """Remember one setting (atomically, keeping the others); returns the file written.

    An unreadable or broken existing file is replaced only by a valid one: its other keys
    cannot be kept, so an ``InputError`` is raised instead and nothing is written.
    """
    from fga_tui.io.atomic import atomic_write_text

    path = config_path() if path is None else path
    current = load_settings(path)
    if key not in {f.name for f in fields(Settings)}:
        raise ValueError(f"unknown setting {key!r}")
    if key == "device":
        check_device(path, value)
    new = replace(current, **{key: Path(value) if key == "snapshot_dir" else value})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, new.to_toml())
    except OSError as exc:
        raise InputError(path, f"cannot write the settings file: {exc.strerror or exc}") from exc
    return path
