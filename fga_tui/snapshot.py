"""Export a diagnostic snapshot: one new directory per export, written atomically.

A snapshot holds ``trace.npz`` (the trace contract), ``report.json`` (``fga-tui.report/1``),
``report.md`` and, from the TUI, ``screen.svg`` of the screen as it was. Files are written into
a hidden temporary directory next to the target and renamed into place in one step, so a reader
never sees half a snapshot and a failure leaves nothing behind. Names are timestamped and never
overwrite: a clash gets a ``-2``, ``-3``... suffix. The temporary directory's name carries the
writer's pid, so the next export removes those a killed export left behind. No Textual here:
the app passes the SVG text.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fga_tui.io.atomic import dir_mode, remove_stale
from fga_tui.io.errors import InputError

DEFAULT_DIR = Path("fga-snapshots")
FILES = ("trace.npz", "report.json", "report.md", "screen.svg")


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug[:48] or "sample"


def snapshot_name(sample_id: str, now: datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-<sample>``: sorts by time, says what it is."""
    now = now or datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{_slug(sample_id)}"


def write_snapshot(
    base_dir: str | Path,
    *,
    trace: Any,
    report: Any,
    svg: str | None = None,
    sample_id: str = "sample",
    now: datetime | None = None,
) -> Path:
    """Write a snapshot directory under ``base_dir`` (created if missing) and return its path.

    ``trace`` is a ``fga_tui.trace.Trace``, ``report`` a ``fga_tui.diagnostics.report.Report``.
    Raises ``InputError`` when ``base_dir`` cannot be created or written; nothing partial stays.
    """
    base = Path(base_dir)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            base, f"cannot create the snapshot directory: {exc.strerror or exc}"
        ) from exc
    remove_stale(base, ".snapshot-*")  # left by killed exports (their process is gone)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".snapshot-{os.getpid()}-", dir=base))
    except OSError as exc:
        raise InputError(base, f"cannot write a snapshot here: {exc.strerror or exc}") from exc
    try:
        trace.save_npz(tmp / "trace.npz")
        (tmp / "report.json").write_text(
            json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        (tmp / "report.md").write_text(report.to_markdown(), encoding="utf-8")
        if svg is not None:
            (tmp / "screen.svg").write_text(svg, encoding="utf-8")
        os.chmod(tmp, dir_mode())  # mkdtemp makes it 0700; give it a normal mode
        stem = snapshot_name(sample_id, now)
        target = base / stem
        suffix = 1
        while True:
            # rename() onto an existing non-empty directory fails (never overwrites); the
            # exists() check covers an empty one, which POSIX would silently replace.
            if not target.exists():
                try:
                    os.rename(tmp, target)
                    return target
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
            suffix += 1
            target = base / f"{stem}-{suffix}"
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(base, f"cannot write the snapshot: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
