"""Every bad input is one line on stderr and exit 2: no traceback, nothing left behind.

The corpus (tests/bad_inputs/corpus.py) builds each malformed checkpoint, sample, token file or
argument into a temporary folder. Every case runs in-process through typer's runner; a handful
also run through a real ``python -c "...main()"`` process, and the default command form (the TUI)
is driven through a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_inputs.corpus import CASES, FORK_CKPT, NACL_JSON, NACL_TOKENS, Built, Case
from typer.testing import CliRunner

from fga_tui.cli import app

runner = CliRunner()
BY_NAME = {case.name: case for case in CASES}
# Also run through the real entry point: at least one per kind of input.
SUBPROCESS_CASES = (
    "ckpt_truncated_zip",
    "ckpt_pickle_os_system",
    "sample_not_utf8",
    "sample_5001_atoms",
    "tokens_wrong_width",
    "arg_index_not_an_integer",
    "arg_scan_out_exists",
)
ENTRY = [sys.executable, "-c", "from fga_tui.cli import main; main()"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _unlock(root: Path) -> None:
    """Give back write permission to folders a case locked, so tmp_path can be removed."""
    for p in [root, *root.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o700)


def check_outcome(case: Case, built: Built, code: int, stdout: str, stderr: str) -> None:
    """The contract of one run: exit code, one named line on stderr, no traceback."""
    assert "Traceback" not in stdout + stderr, stdout + stderr
    assert code == case.exit_code, f"exit {code}\nstdout: {stdout}\nstderr: {stderr}"
    if case.exit_code == 0:
        assert stderr == "", f"a valid input should print nothing on stderr:\n{stderr}"
        for text in case.expect:
            assert text in stdout, f"{text!r} not in stdout:\n{stdout}"
        return
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    line = lines[0]
    assert line.startswith("fga-tui: "), line
    assert built.names in line, f"{built.names!r} not named in: {line}"
    for text in case.expect:
        assert text in line, f"{text!r} not in: {line}"
    assert stdout == "", f"stdout should be empty on exit 2: {stdout!r}"


# ---------------------------------------------------------------------------------------------
# the corpus, in-process


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len(BY_NAME) == len(CASES), "case names must be unique"
    kinds = {case.name.split("_", 1)[0] for case in CASES}
    assert kinds == {"ckpt", "sample", "tokens", "arg"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a stray relative write would land here and be seen
    built = case.build(tmp_path)
    before = _tree(tmp_path)
    try:
        result = runner.invoke(app, built.argv, catch_exceptions=False)
        check_outcome(case, built, result.exit_code, result.stdout, result.stderr)
        assert _tree(tmp_path) == before, "files were left behind"
        if built.check is not None:
            built.check()
    finally:
        _unlock(tmp_path)


def test_one_atom_cell_reports_the_degenerate_text_to_atom_softmax(tmp_path: Path) -> None:
    built = BY_NAME["sample_one_atom_is_valid"].build(tmp_path)
    result = runner.invoke(app, built.argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    verdicts = json.loads(result.stdout)["verdicts"]
    degenerate = [v for v in verdicts if v["code"] == "DEGENERATE_SOFTMAX"]
    assert any("text_to_atom" in v["message"] for v in degenerate), verdicts
    assert all(v["severity"] != "error" for v in degenerate)


def test_nan_weights_are_an_audit_finding_not_a_load_error(tmp_path: Path) -> None:
    built = BY_NAME["ckpt_nan_weights_audited"].build(tmp_path)
    result = runner.invoke(app, [*built.argv, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    findings = json.loads(result.stdout)["findings"]
    nonfinite = [f for f in findings if f["kind"] == "nonfinite"]
    assert nonfinite and "fc.weight" in nonfinite[0]["parameters"]


# ---------------------------------------------------------------------------------------------
# the real entry point


@pytest.fixture(scope="module")
def subprocess_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """Run the chosen cases as real processes, all at once (each mostly waits on imports)."""
    runs = {}
    for name in SUBPROCESS_CASES:
        folder = tmp_path_factory.mktemp(name)
        built = BY_NAME[name].build(folder)
        before = _tree(folder)
        proc = subprocess.Popen(
            [*ENTRY, *built.argv],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        runs[name] = (folder, built, before, proc)
    results = {}
    try:
        for name, (folder, built, before, proc) in runs.items():
            stdout, stderr = proc.communicate(timeout=300)
            results[name] = (folder, built, before, proc.returncode, stdout, stderr)
    finally:
        for *_, proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_through_the_entry_point(name: str, subprocess_runs: dict[str, tuple]) -> None:
    folder, built, before, code, stdout, stderr = subprocess_runs[name]
    check_outcome(BY_NAME[name], built, code, stdout, stderr)
    assert _tree(folder) == before, "files were left behind"
    if built.check is not None:
        built.check()


_ANSI = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B]|[=>])")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_default_command_with_a_missing_checkpoint_exits_2_before_the_ui(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*ENTRY, str(tmp_path / "missing.pt"), str(NACL_JSON)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"fga-tui: {tmp_path / 'missing.pt'}: no such file or directory"
    assert proc.stdout == ""


def test_default_command_with_a_corrupt_checkpoint_shows_the_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    """``fga-tui CKPT SAMPLE`` opens the TUI, which loads in a worker and shows a bad checkpoint
    on its error screen (one line naming the file); ``q`` quits it cleanly."""
    import fcntl
    import struct
    import termios

    elsewhere = Path(tempfile.mkdtemp())
    missing = elsewhere / "corrupt.pt"
    missing.write_bytes(b"this is not a checkpoint")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none"}
    proc = subprocess.Popen(
        [*ENTRY, str(missing), str(NACL_JSON), "--device", "cpu"],
        cwd=tmp_path,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    raw, screen, quit_sent = b"", "", False
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    raw += os.read(master, 1 << 16)
                except OSError:
                    break
            screen = _ANSI.sub(b"", raw).decode("utf-8", "replace")
            if not quit_sent and f"{missing}: " in screen:
                os.write(master, b"q")
                quit_sent = True
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert quit_sent, f"the error screen never showed the one-line message:\n{screen[-2000:]}"
    assert "Cannot load the checkpoint" in screen
    assert "Traceback" not in screen
    # The TUI reports the error on screen and exits normally once the user quits.
    assert code in (0, 2), code
    assert _tree(tmp_path) == set()


# ---------------------------------------------------------------------------------------------
# unwritable folders and a full disk, through the entry point, with permission bits enforced


def _enforced_permissions() -> list[str]:
    """Command prefix under which permission bits bind: nothing for an ordinary user; as root
    (CI), util-linux's setpriv without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so writes into a
    0555 folder fail as they would for a user, while the interpreter stays readable."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux's setpriv: cannot drop DAC override")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def _output_command(kind: str, out: Path) -> list[str]:
    tokens = ["--tokens", str(NACL_TOKENS), "--device", "cpu", "--out", str(out)]
    return [*ENTRY, kind, str(FORK_CKPT), str(NACL_JSON), *tokens]


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec; Python itself ignores SIGXFSZ
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize(
    ("kind", "name", "reason"),
    [
        ("export", "out", "cannot write: Permission denied"),
        ("scan", "rows.jsonl", "cannot write: {locked} is not a writable folder"),
    ],
)
def test_an_output_in_a_folder_the_user_cannot_write_exits_2(tmp_path, kind, name, reason):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = subprocess.run(
            [*_enforced_permissions(), *_output_command(kind, locked / name)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]  # scan's progress line may come first
        assert last == f"fga-tui: {locked / name}: {reason.format(locked=locked)}"
        assert "Traceback" not in proc.stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize(("kind", "name"), [("export", "out"), ("scan", "rows.jsonl")])
def test_a_disk_that_fills_mid_write_exits_2_and_leaves_no_output(tmp_path, kind, name):
    """A 500-byte file-size limit: the trace (and the scan's first row) outgrow it half-way."""
    out = tmp_path / name
    proc = subprocess.run(
        _output_command(kind, out),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=_file_size_limit(500),
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    if kind == "export":  # nothing at all: not even the --out folder it created
        assert last == f"fga-tui: {out}: cannot write: File too large"
        assert left == []
    else:  # a scan keeps its journal (finished rows survive) and never a partial rows file
        assert last == (
            f"fga-tui: {out}.journal: cannot write (File too large); the 0 rows finished so far "
            "are kept: free space and rerun with --resume"
        )
        assert name not in left and left and all(p.startswith(f"{name}.journal") for p in left)
