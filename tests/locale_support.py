"""A snippet run in a child process whose locale encoding is ASCII (the C locale with UTF-8 mode
and locale coercion off): how the package reads and writes files on a user's non-UTF-8 system."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fga_tui


def run_under_ascii_locale(code: str, *args: str) -> list[str]:
    """Run ``code`` with ``args`` as ``sys.argv[1:]`` and the imported fga_tui on its path; the
    words it printed. Fails unless the child's default encoding really is not UTF-8."""
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    env["PYTHONPATH"] = str(Path(fga_tui.__file__).resolve().parents[1])
    probe = "import locale\nprint(locale.getpreferredencoding(False))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe + code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    encoding, *printed = done.stdout.split()
    assert encoding.lower() not in ("utf-8", "utf8")  # the child's default really is ASCII
    return printed
