"""``fga_tui.io.atomic``: a result appears whole under its name or not at all.

The permission and full-disk cases run in a child without root (tests/unprivileged.py), so they
run in CI too, where the suite runs as root.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from unprivileged import as_nobody, locked_dir

from fga_tui.io import atomic
from fga_tui.io.atomic import atomic_write_bytes, atomic_write_text


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_the_bytes_under_the_name_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "trace.npz"
    assert atomic_write_bytes(target, b"\x00payload\xff") == target
    assert target.read_bytes() == b"\x00payload\xff"
    assert _names(tmp_path) == ["trace.npz"]


def test_text_is_written_as_utf8(tmp_path):
    target = atomic_write_text(str(tmp_path / "report.md"), "Ba₄HfLi — ok\n")
    assert isinstance(target, Path)
    assert target.read_bytes() == "Ba₄HfLi — ok\n".encode()


def test_an_existing_file_is_replaced_not_rewritten_in_place(tmp_path):
    """A reader holding the old file keeps reading the old bytes: the new file is a new inode
    renamed over the name, never the old one truncated and refilled."""
    target = tmp_path / "report.json"
    target.write_bytes(b"old")
    with target.open("rb") as reader:
        atomic_write_bytes(target, b"new contents")
        assert reader.read() == b"old"
    assert target.read_bytes() == b"new contents"
    assert _names(tmp_path) == ["report.json"]


def test_the_temporary_file_is_hidden_beside_the_target(tmp_path, monkeypatch):
    """Beside the target, so the final rename never crosses filesystems; hidden and named after
    the target, so a crash leaves an obvious, ignorable ``.name.XXXX.tmp``."""
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    atomic_write_bytes(tmp_path / "out.txt", b"x")
    [(src, dst)] = renames
    assert src.parent == tmp_path and dst == tmp_path / "out.txt"
    assert src.name.startswith(".out.txt.") and src.name.endswith(".tmp")


def test_a_failed_rename_removes_the_temporary_file_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def fail(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError, match="cross-device"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["keep.txt"]


def test_an_interrupt_mid_write_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "replace", _raise_keyboard_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert _names(tmp_path) == []


def _raise_keyboard_interrupt(*_args):
    raise KeyboardInterrupt


def _write_then_report(target: Path, data: bytes) -> tuple[str, str]:
    """Child side: try the write, report what the folder then holds."""
    try:
        atomic_write_bytes(target, data)
        outcome = "written"
    except OSError as exc:
        outcome = errno.errorcode.get(exc.errno or 0, str(exc))
    return outcome, ",".join(_names(target.parent))


def test_a_disk_that_fills_mid_write_keeps_the_old_file_whole(nobody_tmp):
    target = nobody_tmp / "report.json"
    target.write_bytes(b"old report")
    target.chmod(0o666)
    outcome, left = as_nobody(_write_then_report, target, b"x" * 100_000, fsize_limit=4096)
    assert outcome == "EFBIG"
    assert target.read_bytes() == b"old report"
    assert left == "report.json"


def test_the_limit_itself_lets_a_small_write_through(nobody_tmp):
    """Control for the test above: under the same cap a small file is written."""
    target = nobody_tmp / "small.json"
    assert as_nobody(_write_then_report, target, b"{}", fsize_limit=4096) == (
        "written",
        "small.json",
    )
    assert target.read_bytes() == b"{}"


def test_a_folder_the_user_cannot_write_raises_and_leaves_nothing(nobody_tmp):
    folder = locked_dir(nobody_tmp)
    outcome, left = as_nobody(_write_then_report, folder / "trace.npz", b"data")
    assert outcome == "EACCES"
    assert left == ""


def test_an_interrupt_right_after_the_rename_is_not_masked(tmp_path, monkeypatch):
    """Ctrl-C between the rename and the return: the temporary name is already gone, and the
    clean-up must not replace the KeyboardInterrupt with a FileNotFoundError."""
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert (tmp_path / "x.bin").read_bytes() == b"data"
    assert _names(tmp_path) == ["x.bin"]


# --- leftovers of killed writers ------------------------------------------------------------


def _exited_pid() -> int:
    """The pid of a child that has exited and been reaped: no process has it (for now)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


@pytest.fixture
def live_pid():
    """The pid of a running process of ours (a sleeping child): a writer still at work. Tests
    never signal their parent or init: under a mutant, "is it alive?" could become a real signal.
    """
    child = subprocess.Popen(["sleep", "60"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_an_unidentified_temporary_is_stale_only_past_the_age_limit(tmp_path):
    anonymous = tmp_path / ".x.abc.tmp"
    anonymous.write_bytes(b"")
    born = anonymous.lstat().st_mtime
    assert not atomic.is_stale(anonymous, now=born + atomic.STALE_AGE_S)
    assert atomic.is_stale(anonymous, now=born + atomic.STALE_AGE_S + 1.0)
    mine = tmp_path / f".x.{os.getpid()}.abc.tmp"  # this process's own write in progress
    mine.write_bytes(b"")
    assert not atomic.is_stale(mine, now=mine.lstat().st_mtime + 1.0)
    assert not atomic.is_stale(tmp_path / ".gone.1.abc.tmp")  # vanished meanwhile: leave it


def test_a_temporary_of_an_exited_writer_is_stale_at_once_and_a_live_ones_is_not(
    tmp_path, live_pid
):
    dead = tmp_path / f".x.{_exited_pid()}.abc.tmp"
    live = tmp_path / f".x.{live_pid}.abc.tmp"
    for path in (dead, live):
        path.write_bytes(b"")
    assert atomic.is_stale(dead, now=dead.lstat().st_mtime)
    assert not atomic.is_stale(live, now=live.lstat().st_mtime + 1.0)
    assert not atomic._pid_alive(0) and not atomic._pid_alive(-1)
    assert atomic._pid_alive(live_pid)
    # Signalling someone else's process is refused (EPERM) without root: it is alive all the same.
    assert as_nobody(atomic._pid_alive, live_pid) is True


def test_stale_directories_are_removed_whole_and_links_are_unlinked_not_followed(
    tmp_path, live_pid
):
    pid = _exited_pid()
    folder = tmp_path / f".snapshot-{pid}-abc"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "trace.npz").write_bytes(b"partial")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "data").write_bytes(b"keep me")
    link = tmp_path / f".snapshot-{pid}-lnk"
    link.symlink_to(kept, target_is_directory=True)
    live = tmp_path / f".snapshot-{live_pid}-def"
    live.mkdir()
    removed = atomic.remove_stale(tmp_path, ".snapshot-*")
    assert sorted(p.name for p in removed) == sorted([folder.name, link.name])
    assert _names(tmp_path) == sorted(["kept", live.name])
    assert (kept / "data").read_bytes() == b"keep me"
    assert atomic.remove_stale(tmp_path / "missing", ".snapshot-*") == []


# --- modes: what a plain open() would give, not mkstemp's 0600 -------------------------------


@pytest.fixture
def umask():
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o027, 0o002])
def test_the_written_file_has_the_umask_mode_of_a_plain_write(tmp_path, umask, mask):
    umask(mask)
    out = atomic_write_bytes(tmp_path / "out.bin", b"x")
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert (
        oct(out.stat().st_mode & 0o777) == oct(0o666 & ~mask) == oct(plain.stat().st_mode & 0o777)
    )
    assert (atomic.file_mode(), atomic.dir_mode()) == (0o666 & ~mask, 0o777 & ~mask)


def test_the_umask_is_read_without_proc_too_and_left_as_it_was(umask, monkeypatch):
    umask(0o027)
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    assert atomic.current_umask() == 0o027
    assert atomic.current_umask() == 0o027  # the fallback put the mask back


def test_the_umask_is_read_from_proc_without_setting_it(monkeypatch):
    def no_setting(mask):
        raise AssertionError("os.umask changes the mask process-wide; /proc reads it")

    monkeypatch.setattr(atomic.os, "umask", no_setting)
    assert atomic.current_umask() == int(
        next(
            x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("Umask:")
        ).split()[1],
        8,
    )


def test_glob_metacharacters_in_a_name_are_escaped():
    assert atomic.glob_escape("a[1]*?.txt") == "a[[]1[]][*][?].txt"
    assert atomic.glob_escape("plain.npz") == "plain.npz"


def test_every_candidate_is_judged_even_after_one_that_stays(tmp_path, live_pid):
    live = tmp_path / f".x.{live_pid}.a.tmp"
    dead = tmp_path / f".x.{_exited_pid()}.b.tmp"
    for path in (live, dead):
        path.write_bytes(b"")

    class Folder:  # glob in a fixed order: the live temporary first
        def glob(self, pattern):
            return [live, tmp_path / ".x.1.gone.tmp", dead]

    assert atomic.remove_stale(Folder(), ".x.*") == [dead]
    assert live.exists() and not dead.exists()
    assert not atomic.is_stale(live)  # the clock is read when no time is given


def test_checking_a_writer_pid_sends_it_no_signal():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert atomic._pid_alive(child.pid)
        with pytest.raises(subprocess.TimeoutExpired):  # still running: signal 0 only asks
            child.wait(timeout=0.5)
    finally:
        child.kill()
        child.wait()


def test_a_bare_file_name_is_written_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic_write_bytes("bare.bin", b"x")
    assert _names(tmp_path) == ["bare.bin"]


def test_pid_one_and_up_are_asked_with_signal_zero_and_the_answer_is_kept(monkeypatch):
    """Only pids <= 0 (process groups) are refused unasked; init (pid 1) is a pid like any other.
    os.kill is replaced by a recorder: no real signal can reach init under a mutant."""
    calls: list[tuple[int, int]] = []
    answer: list[BaseException | None] = [None]

    def kill(pid: int, sig: int) -> None:
        calls.append((pid, sig))
        if answer[0] is not None:
            raise answer[0]

    monkeypatch.setattr(atomic.os, "kill", kill)
    assert atomic._pid_alive(1) is True and atomic._pid_alive(2) is True
    assert calls == [(1, 0), (2, 0)]
    answer[0] = ProcessLookupError()
    assert atomic._pid_alive(1) is False
    answer[0] = PermissionError()
    assert atomic._pid_alive(1) is True
    assert not atomic._pid_alive(0) and calls == [(1, 0), (2, 0), (1, 0), (1, 0)]


def test_a_stale_temporary_that_cannot_be_removed_does_not_stop_the_others(tmp_path, monkeypatch):
    class Stuck:  # a leftover whose removal fails (e.g. a folder the user may not write)
        name = ".x.1.stuck.tmp"

        def is_dir(self) -> bool:
            return False

        def is_symlink(self) -> bool:
            return False

        def unlink(self) -> None:
            raise PermissionError(errno.EACCES, "denied")

    later = tmp_path / ".x.2.later.tmp"
    later.write_bytes(b"")
    stuck = Stuck()

    class Folder:
        def glob(self, pattern):
            return [stuck, later]

    monkeypatch.setattr(atomic, "is_stale", lambda path, now=None: True)
    assert atomic.remove_stale(Folder(), ".x.*") == [later]
    assert not later.exists()
