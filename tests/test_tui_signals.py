"""The real inspector in a pseudo-terminal: signals leave a usable terminal and exit 128+signal.

Found by a stress test: SIGTERM or SIGHUP left the terminal in the alternate screen with mouse
reporting on and the tty raw. Each test starts ``fga-tui demo`` on a pty, waits for the first
frame, sends the signal and checks the exit code, the escape sequences that undo the alternate
screen and mouse reporting, the tty's line discipline, and that the engine's child process is
gone.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time

import pytest

ENTRY = [sys.executable, "-c", "from fga_tui.cli import main; main()"]
ALT_SCREEN_OFF = b"\x1b[?1049l"
MOUSE_OFF = b"\x1b[?1000l"


def _read_until(fd: int, needle: bytes, timeout: float, seen: bytearray) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return needle in seen
            if not chunk:
                return needle in seen
            seen += chunk
            if needle in seen:
                return True
    return needle in seen


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is gone for our purposes
        return fh.read().split(") ")[1][0] != "Z"


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_signal_restores_the_terminal_and_exits_128_plus_signal(sig, code, tmp_path):
    master, slave = pty.openpty()
    cooked = termios.tcgetattr(slave)
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    proc = subprocess.Popen(
        [*ENTRY, "demo", "--device", "cpu", "--snapshot-dir", str(tmp_path)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    seen = bytearray()
    try:
        # The first frame (alternate screen on), then the engine's child process.
        assert _read_until(master, b"\x1b[?1049h", 60, seen), bytes(seen[-500:])
        for _ in range(200):
            children = [p for p in _children(proc.pid) if _alive(p)]
            if children:
                break
            _read_until(master, b"\x00never", 0.05, seen)
        assert children, "the engine child process did not start"
        raw = termios.tcgetattr(slave)
        assert not raw[3] & termios.ICANON  # the app put the tty in raw mode
        os.kill(proc.pid, sig)
        end = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < end:
            _read_until(master, b"\x00never", 0.05, seen)
        assert proc.poll() == code
        _read_until(master, b"\x00never", 0.2, seen)
        tail = bytes(seen[seen.rfind(b"\x1b[?1049h") :])
        assert ALT_SCREEN_OFF in tail and MOUSE_OFF in tail
        restored = termios.tcgetattr(slave)
        assert restored[3] & termios.ICANON and restored[3] & termios.ECHO
        assert restored[3] == cooked[3]
        for child in children:
            for _ in range(100):
                if not _alive(child):
                    break
                time.sleep(0.05)
            assert not _alive(child), "the engine child outlived the app"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)
