"""``fga_tui.snapshot``: a new directory per export, atomic, never overwriting, clear errors.

The permission and full-disk cases run in a child without root (tests/unprivileged.py), so they
run in CI too, where the suite runs as root.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from locale_support import run_under_ascii_locale
from unprivileged import as_nobody, locked_dir

from fga_tui import snapshot
from fga_tui.io.errors import InputError
from fga_tui.snapshot import snapshot_name, write_snapshot
from fga_tui.trace import Trace, load_trace_npz

NOW = datetime(2026, 1, 2, 3, 4, 5)


class FakeReport:
    """What write_snapshot needs of a Report: its JSON and Markdown forms."""

    def __init__(self, fail_markdown: bool = False, payload: dict | None = None) -> None:
        self.fail_markdown = fail_markdown
        self.payload = payload or {"schema": "fga-tui.report/1", "verdicts": []}

    def to_json(self) -> dict:
        return self.payload

    def to_markdown(self) -> str:
        if self.fail_markdown:
            raise OSError(errno.ENOSPC, "No space left on device")
        return "# fga-tui report\n"


def _trace() -> Trace:
    rng = np.random.default_rng(0)
    stages = ("embed", "gcn.0")
    return Trace(
        stages=stages,
        features={s: rng.standard_normal((3, 4)).astype(np.float32) for s in stages},
        elements=("Na", "Cl", "Cl"),
        prediction=1.5,
    )


def test_snapshot_writes_every_file_into_a_new_timestamped_directory(tmp_path):
    out = write_snapshot(
        tmp_path / "snaps" / "deeper",
        trace=_trace(),
        report=FakeReport(),
        svg="<svg></svg>",
        sample_id="JVASP 1/2",
        now=NOW,
    )
    assert out.parent == tmp_path / "snaps" / "deeper"
    assert out.name == "20260102-030405-JVASP-1-2"
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json",
        "report.md",
        "screen.svg",
        "trace.npz",
    ]
    assert json.loads((out / "report.json").read_text()) == FakeReport().payload
    assert (out / "report.json").read_text().endswith("}\n")
    assert (out / "report.md").read_text() == "# fga-tui report\n"
    assert list(load_trace_npz(out / "trace.npz")["stages"]) == ["embed", "gcn.0"]
    assert (out / "screen.svg").read_text() == "<svg></svg>"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temporary left


def test_snapshots_never_overwrite_each_other(tmp_path):
    first = write_snapshot(tmp_path, trace=_trace(), report=FakeReport(), now=NOW)
    second = write_snapshot(tmp_path, trace=_trace(), report=FakeReport(), now=NOW)
    (tmp_path / (snapshot_name("sample", NOW) + "-3")).mkdir()  # an empty one in the way
    third = write_snapshot(tmp_path, trace=_trace(), report=FakeReport(), now=NOW)
    assert [first.name, second.name, third.name] == [
        "20260102-030405-sample",
        "20260102-030405-sample-2",
        "20260102-030405-sample-4",
    ]
    assert list((tmp_path / "20260102-030405-sample-3").iterdir()) == []
    assert not (first / "screen.svg").exists()  # headless: no screen given, none written


def test_a_rename_that_races_with_another_snapshot_takes_the_next_name(tmp_path, monkeypatch):
    """Another process can create the name between the exists() check and the rename: the
    rename then fails with ENOTEMPTY (or EEXIST) and the next suffix is tried."""
    real_rename = os.rename
    calls = []

    def racing(src, dst):
        calls.append(Path(dst).name)
        if len(calls) == 1:
            raise OSError(errno.ENOTEMPTY, "Directory not empty")
        if len(calls) == 2:
            raise OSError(errno.EEXIST, "File exists")
        real_rename(src, dst)

    monkeypatch.setattr(snapshot.os, "rename", racing)
    out = write_snapshot(tmp_path, trace=_trace(), report=FakeReport(), now=NOW)
    stem = "20260102-030405-sample"
    assert calls == [stem, f"{stem}-2", f"{stem}-3"]
    assert out.name == "20260102-030405-sample-3"


def test_any_other_rename_error_is_an_input_error_and_leaves_nothing(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(snapshot.os, "rename", fail)
    with pytest.raises(InputError) as err:
        write_snapshot(tmp_path, trace=_trace(), report=FakeReport(), now=NOW)
    assert err.value.reason == "cannot write the snapshot: Invalid cross-device link"
    assert list(tmp_path.iterdir()) == []


def test_the_snapshot_directory_gets_the_users_umask_not_mkdtemps_0700(tmp_path, monkeypatch):
    from fga_tui.io import atomic

    monkeypatch.setattr(atomic, "current_umask", lambda: 0o022)
    out = write_snapshot(tmp_path / "a", trace=_trace(), report=FakeReport(), now=NOW)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    monkeypatch.setattr(atomic, "current_umask", lambda: 0o027)
    out = write_snapshot(tmp_path / "b", trace=_trace(), report=FakeReport(), now=NOW)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750


def test_the_umask_is_read_without_changing_it():
    from fga_tui.io.atomic import current_umask

    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still the process's own
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    ("sample_id", "slug"),
    [
        ("JVASP-1002", "JVASP-1002"),
        ("a b/c:d", "a-b-c-d"),
        ("..hidden..", "hidden"),
        ("-edge-", "edge"),
        ("✓✓✓", "sample"),
        ("", "sample"),
        ("x" * 60, "x" * 48),
        ("mp_149.v2", "mp_149.v2"),
        ("Xe-X", "Xe-X"),
    ],
)
def test_snapshot_names_are_safe_file_names(sample_id, slug):
    assert snapshot_name(sample_id, NOW) == f"20260102-030405-{slug}"


def test_snapshot_name_defaults_to_now():
    before = datetime.now().replace(microsecond=0)
    name = snapshot_name("s")
    after = datetime.now()
    stamp = datetime.strptime(name[:15], "%Y%m%d-%H%M%S")
    assert before <= stamp <= after and name.endswith("-s")


def test_a_path_through_a_file_is_an_input_error_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InputError) as err:
        write_snapshot(blocker / "snaps", trace=_trace(), report=FakeReport())
    assert err.value.path == str(blocker / "snaps")
    assert err.value.reason == "cannot create the snapshot directory: Not a directory"
    with pytest.raises(InputError) as err:
        write_snapshot(blocker, trace=_trace(), report=FakeReport())
    assert err.value.path == str(blocker)
    assert err.value.reason.startswith("cannot create the snapshot directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_failure_mid_write_leaves_no_partial_snapshot(tmp_path):
    with pytest.raises(InputError) as err:
        write_snapshot(tmp_path, trace=_trace(), report=FakeReport(fail_markdown=True))
    assert err.value.reason == "cannot write the snapshot: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_a_bug_mid_write_propagates_and_leaves_nothing(tmp_path):
    """A report that is not valid JSON (NaN) is a bug, not a user error: it raises as itself."""
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_snapshot(tmp_path, trace=_trace(), report=FakeReport(payload={"x": float("nan")}))
    assert list(tmp_path.iterdir()) == []


def _snapshot_into(base: Path, svg_size: int) -> tuple[str, str]:
    """Child side: try a snapshot, report the error (or the name) and what ``base`` holds."""
    try:
        out = write_snapshot(base, trace=_trace(), report=FakeReport(), svg="x" * svg_size, now=NOW)
        outcome = f"written {out.name}"
    except InputError as exc:
        outcome = exc.reason
    return outcome, ",".join(sorted(p.name for p in base.iterdir())) if base.exists() else ""


def test_a_folder_the_user_cannot_write_is_an_input_error(nobody_tmp):
    folder = locked_dir(nobody_tmp)
    outcome, left = as_nobody(_snapshot_into, folder, 10)
    assert outcome == "cannot write a snapshot here: Permission denied"
    assert left == ""


def test_a_folder_the_user_cannot_create_is_an_input_error(nobody_tmp):
    folder = locked_dir(nobody_tmp)
    outcome, _ = as_nobody(_snapshot_into, folder / "snaps", 10)
    assert outcome == "cannot create the snapshot directory: Permission denied"
    assert list(folder.iterdir()) == []


def test_a_disk_that_fills_mid_snapshot_leaves_nothing(nobody_tmp):
    outcome, left = as_nobody(_snapshot_into, nobody_tmp, 200_000, fsize_limit=64 * 1024)
    assert outcome == "cannot write the snapshot: File too large"
    assert left == ""
    outcome, left = as_nobody(_snapshot_into, nobody_tmp, 10, fsize_limit=64 * 1024)
    assert outcome == "written 20260102-030405-sample"  # control: a small one fits


def test_snapshot_module_never_imports_textual():
    code = "import sys, fga_tui.snapshot; assert 'textual' not in sys.modules; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


# --- the error branches in this process (the child runs above are invisible to mutmut) -------


class RecordingTrace:
    """A trace whose save records where the snapshot is being assembled."""

    def __init__(self) -> None:
        self.saved_to: Path | None = None

    def save_npz(self, path: Path) -> None:
        self.saved_to = Path(path)
        Path(path).write_bytes(b"npz")


def test_the_snapshot_is_assembled_in_a_hidden_folder_inside_the_target_folder(tmp_path):
    """Inside, so the final rename stays on one filesystem; hidden, so a crash leaves an
    obvious ``.snapshot-XXXX`` rather than something that looks like a snapshot."""
    trace = RecordingTrace()
    out = write_snapshot(tmp_path, trace=trace, report=FakeReport(), now=NOW)
    assert trace.saved_to is not None
    assert trace.saved_to.parent.parent == tmp_path
    assert trace.saved_to.parent.name.startswith(".snapshot-")
    assert (out / "trace.npz").read_bytes() == b"npz"


def test_report_json_is_indented_by_two_and_ends_with_a_newline(tmp_path):
    payload = {"schema": "fga-tui.report/1", "verdicts": [{"code": "HEALTHY"}]}
    out = write_snapshot(tmp_path, trace=_trace(), report=FakeReport(payload=payload), now=NOW)
    assert (out / "report.json").read_text() == json.dumps(payload, indent=2) + "\n"


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
        (OSError("no strerror here"), "no strerror here"),
    ],
)
def test_a_temporary_folder_that_cannot_be_made_is_an_input_error(
    tmp_path, monkeypatch, failure, reason
):
    def refuse(**_kw):
        raise failure

    monkeypatch.setattr(snapshot.tempfile, "mkdtemp", refuse)
    with pytest.raises(InputError) as err:
        write_snapshot(tmp_path / "snaps", trace=_trace(), report=FakeReport())
    assert err.value.path == str(tmp_path / "snaps")
    assert err.value.reason == f"cannot write a snapshot here: {reason}"


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (OSError("no strerror here"), "no strerror here"),
    ],
)
def test_a_write_that_fails_is_an_input_error_naming_the_folder(tmp_path, failure, reason):
    class Failing:
        def save_npz(self, path: Path) -> None:
            Path(path).write_bytes(b"half")
            raise failure

    with pytest.raises(InputError) as err:
        write_snapshot(tmp_path, trace=Failing(), report=FakeReport())
    assert err.value.path == str(tmp_path)
    assert err.value.reason == f"cannot write the snapshot: {reason}"
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_created_without_strerror_says_what_failed(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError("quota exceeded")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(InputError) as err:
        write_snapshot(tmp_path / "snaps", trace=_trace(), report=FakeReport())
    assert err.value.reason == "cannot create the snapshot directory: quota exceeded"


def test_an_export_removes_the_leftovers_of_killed_exports_only(tmp_path):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # an exited exporter
    dead = tmp_path / f".snapshot-{pid}-abc123"
    mine = tmp_path / f".snapshot-{os.getpid()}-def456"  # this process: maybe still writing
    for folder in (dead, mine):
        (folder / "sub").mkdir(parents=True)
    out = write_snapshot(tmp_path, trace=_trace(), report=FakeReport())
    assert not dead.exists() and mine.exists() and out.is_dir()


def test_report_md_and_screen_svg_are_the_same_utf8_bytes_under_an_ascii_locale(tmp_path):
    """A report names words and atoms in any script ("Å", "≥"), and Textual's SVG holds box
    drawing: both files are UTF-8 whatever the locale. Written in a child process under the C
    locale with UTF-8 mode and locale coercion off (locale encoding ASCII), they hold the same
    UTF-8 bytes as here."""
    markdown, svg = "# Ångström ≥ 0.5\n", "<svg>│▁ Å</svg>"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fga_tui.snapshot import write_snapshot\n"
        "class Trace:\n"
        "    def save_npz(self, path):\n"
        "        Path(path).write_bytes(b'npz')\n"
        "class Report:\n"
        "    def to_json(self):\n"
        "        return {}\n"
        "    def to_markdown(self):\n"
        f"        return {markdown!a}\n"
        f"out = write_snapshot(sys.argv[1], trace=Trace(), report=Report(), svg={svg!a})\n"
        "print(out)\n"
    )
    (out,) = run_under_ascii_locale(code, str(tmp_path))
    here = write_snapshot(tmp_path / "here", trace=RecordingTrace(), report=Md(markdown), svg=svg)
    for name in ("report.md", "screen.svg"):  # the same bytes as in this (UTF-8) process
        assert (Path(out) / name).read_bytes() == (here / name).read_bytes()
    assert (here / "report.md").read_bytes() == markdown.encode("utf-8")
    assert (here / "screen.svg").read_bytes() == svg.encode("utf-8")


class Md(FakeReport):
    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def to_markdown(self) -> str:
        return self.markdown
