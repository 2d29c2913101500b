"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A crash or a full disk never leaves a half-written result under the final name. Results get the
mode every other file gets (``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``.
Temporary names carry the writer's process id (``.trace.npz.<pid>.<random>.tmp``), so a later
run can tell the leftovers of a killed writer (its process is gone) from a write in progress and
remove them; names without a readable pid (older versions) count as stale after ``STALE_AGE_S``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

#: A temporary whose writer cannot be identified is stale once it is this old (seconds).
STALE_AGE_S = 3600.0

#: ``<pid>`` in ``.<name>.<pid>.<random>.tmp`` and ``.snapshot-<pid>-<random>`` (mkstemp/mkdtemp
#: random parts hold no dots or dashes).
_PID = re.compile(r"[.-](\d+)[.-][a-z0-9_]+(?:\.tmp)?$")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``).

    ``os.umask`` can only be read by setting it, which races with other threads creating files;
    that fallback is used only where ``/proc/self/status`` has no ``Umask`` line.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode a plain ``mkdir`` would give a new directory."""
    return 0o777 & ~current_umask()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether a temporary left at ``path`` belongs to no running writer.

    Its name's pid (``.<name>.<pid>.<random>``) is checked on this host; a name without one, or
    with the pid of a live process that is not its writer (pids are reused), is stale only once
    older than ``STALE_AGE_S``.
    """
    now = time.time() if now is None else now
    try:
        age = now - path.lstat().st_mtime
    except OSError:
        return False
    match = _PID.search(path.name)
    pid = None if match is None else int(match.group(1))
    if pid is not None and pid != os.getpid() and not _pid_alive(pid):
        return True
    return age > STALE_AGE_S


def remove_stale(folder: Path, pattern: str) -> list[Path]:
    """Remove the stale temporaries (files or directories) matching ``pattern`` in ``folder``."""
    removed = []
    try:
        candidates = list(folder.glob(pattern))
    except OSError:
        return removed
    now = time.time()
    for path in candidates:
        if not is_stale(path, now):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def temp_prefix(name: str) -> str:
    """``.<name>.<pid>.``: the prefix of this process's temporaries for ``name``."""
    return f".{name}.{os.getpid()}."


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, with the umask's mode; stale leftovers of killed
    writers of the same file are removed first."""
    path = Path(path)
    folder = path.parent  # Path("name").parent is Path(".")
    remove_stale(folder, f".{glob_escape(path.name)}.*.tmp")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (``[``, ``*``, ``?``)."""
    return re.sub(r"([\[\]*?])", r"[\1]", name)
