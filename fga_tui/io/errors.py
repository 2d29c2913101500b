"""The one error type a user can cause.

Anything the user controls (a path, a file's content, an option value) that is wrong raises
``InputError(path, reason)``. The CLI prints ``fga-tui: <path>: <reason>`` on one line and exits 2;
the TUI shows the same text. Bugs raise ordinary exceptions.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_BAD_INPUT = 2
#: Structures with more atoms are refused with an ``InputError`` (``--max-atoms`` default): the
#: diagnostics scale linearly in atoms (orbit representatives, sampled pairs) up to here.
MAX_ATOMS = 5000


class InputError(Exception):
    """A problem with something the user gave us, named by the file (or option) it came from."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = str(path) if path is not None else None
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason

    def __str__(self) -> str:
        return self.message
