"""Found by a stress test: file modes, leftovers of killed runs, a full disk during export."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from fga_tui.io.atomic import STALE_AGE_S, atomic_write_bytes, atomic_write_text, current_umask
from fga_tui.snapshot import write_snapshot
from fga_tui.trace import Trace

runner = CliRunner()


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _trace() -> Trace:
    rng = np.random.default_rng(0)
    return Trace(
        stages=("embed",),
        features={"embed": rng.standard_normal((3, 4)).astype(np.float32)},
        elements=("Na", "Cl", "Cl"),
        prediction=1.0,
    )


class _Report:
    def to_json(self) -> dict:
        return {"schema": "fga-tui.report/1"}

    def to_markdown(self) -> str:
        return "# report\n"


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_current_umask_reads_without_changing_it(umask_027):
    assert current_umask() == 0o027
    assert current_umask() == 0o027


def test_atomic_writes_follow_the_umask_not_0600(tmp_path, umask_027):
    rows = atomic_write_text(tmp_path / "rows.jsonl", "{}\n")
    trace = _trace().save_npz(tmp_path / "trace.npz")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for path in (rows, trace):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640 == stat.S_IMODE(plain.stat().st_mode)


def test_snapshot_files_and_directory_follow_the_umask(tmp_path, umask_027):
    out = write_snapshot(tmp_path, trace=_trace(), report=_Report())
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "trace.npz").stat().st_mode) == 0o640


def test_leftover_temporaries_of_killed_writers_are_removed_on_the_next_write(tmp_path):
    dead = tmp_path / f".trace.npz.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".trace.npz.{os.getppid()}.def456.tmp"  # a writer still running
    anonymous_old = tmp_path / ".trace.npz.ghi789.tmp"  # older naming: no pid
    anonymous_new = tmp_path / ".trace.npz.jkl012.tmp"
    other_file = tmp_path / f".rows.jsonl.{_dead_pid()}.mno345.tmp"
    for path in (dead, live, anonymous_old, anonymous_new, other_file):
        path.write_bytes(b"partial")
    old = time.time() - STALE_AGE_S - 60
    os.utime(anonymous_old, (old, old))
    atomic_write_bytes(tmp_path / "trace.npz", b"data")
    assert not dead.exists() and not anonymous_old.exists()
    assert live.exists() and anonymous_new.exists()
    assert other_file.exists()  # another target's leftovers wait for that target's next write
    assert (tmp_path / "trace.npz").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == sorted(
        [live.name, anonymous_new.name, other_file.name]
    )


def test_leftover_snapshot_directories_of_killed_exports_are_removed(tmp_path):
    dead = tmp_path / f".snapshot-{_dead_pid()}-abc123"
    live = tmp_path / f".snapshot-{os.getppid()}-def456"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "trace.npz").write_bytes(b"partial")
    out = write_snapshot(tmp_path, trace=_trace(), report=_Report())
    assert not dead.exists() and live.exists()
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden == [live.name]
    assert (out / "report.md").read_text() == "# report\n"


def test_export_on_a_full_disk_leaves_no_empty_out_directory(
    tmp_path, monkeypatch, fork_ckpt, nacl_json, nacl_tokens
):
    from fga_tui.cli import app

    def full_disk(self, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Trace, "save_npz", full_disk)
    out = tmp_path / "new" / "trace-dir"
    args = ["export", fork_ckpt, nacl_json, "--tokens", nacl_tokens, "--out", out]
    args += ["--device", "cpu"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2
    assert "No space left on device" in result.output
    assert not out.exists() and not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


def test_export_on_a_full_disk_keeps_an_out_directory_that_already_existed(
    tmp_path, monkeypatch, fork_ckpt, nacl_json, nacl_tokens
):
    from fga_tui.cli import app

    def full_disk(self, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Trace, "save_npz", full_disk)
    out = tmp_path / "mine"
    out.mkdir()
    args = ["export", fork_ckpt, nacl_json, "--tokens", nacl_tokens, "--out", out]
    result = runner.invoke(app, [str(a) for a in [*args, "--device", "cpu"]])
    assert result.exit_code == 2
    assert out.is_dir()
