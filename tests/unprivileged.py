"""Run a test's write path as an ordinary user, and with a full disk, even when tests run as root.

CI runs as root, and root ignores permission bits, so a "cannot write here" branch would never
run there. ``as_nobody`` forks, drops the child to uid/gid 65534 (``nobody``) and runs the
function there; ``fsize_limit`` also caps the size of any file the child writes
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored), so a write past it fails with ``EFBIG`` half-way,
exactly like a disk that fills up mid-write. The child's return value or exception comes back
through a pipe and is returned or raised in the test.
"""

from __future__ import annotations

import os
import pickle
import resource
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NOBODY = 65534


def can_drop_privileges() -> bool:
    """Root can become nobody; an ordinary user already is one (permission bits apply)."""
    return os.geteuid() != 0 or hasattr(os, "setuid")


def as_nobody(fn: Callable[..., Any], *args: Any, fsize_limit: int | None = None) -> Any:
    """``fn(*args)`` in a forked child without root (and with a file-size cap if given)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(read_end)
        code = 0
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            if fsize_limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
            try:
                outcome: tuple[str, Any] = ("ok", fn(*args))
            except BaseException as exc:  # report every outcome to the parent
                outcome = ("raised", exc)
            try:
                payload = pickle.dumps(outcome)
                pickle.loads(payload)  # exceptions with custom __init__ may not load back
            except Exception as exc:
                payload = pickle.dumps(("raised", RuntimeError(f"unpicklable: {exc!r}")))
            with os.fdopen(write_end, "wb") as fh:
                fh.write(payload)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        payload = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed to report"
    kind, value = pickle.loads(payload)
    if kind == "raised":
        raise value
    return value


@contextmanager
def shared_tmp() -> Iterator[Path]:
    """A scratch folder that uid 65534 can reach and write (pytest's tmp_path is 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix="fga-tui-test-"))
    try:
        root.chmod(0o777)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def locked_dir(parent: Path, name: str = "locked") -> Path:
    """A folder nobody can enter but not write: root-owned 0755 (or 0555 when not root)."""
    folder = parent / name
    folder.mkdir()
    folder.chmod(0o755 if os.geteuid() == 0 else 0o555)
    return folder
