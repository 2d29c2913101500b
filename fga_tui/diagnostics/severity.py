"""How bad a finding is: one ordered type for verdicts, audit findings, renders, the CLI and TUI.

``Severity`` is a ``str`` enum whose value is the JSON word ("info" | "warning" | "error"), so
``Severity.ERROR == "error"`` and ``json.dumps`` writes the plain word; it compares by rank
(info < warning < error), never alphabetically. Each member carries a glyph and an upper-case
label, so the severity reads without colour (NO_COLOR terminals, CI logs, screen readers).

Pure Python: the TUI imports this before its first frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum


class Severity(str, Enum):
    """info < warning < error; ``glyph`` and ``label`` for display, the value for JSON."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for error."""
        return _RANK[self.value]

    @property
    def glyph(self) -> str:
        """A shape per severity (distinct without colour): ● info, ▲ warning, ✖ error."""
        return _GLYPH[self.value]

    @property
    def label(self) -> str:
        """The upper-case word (INFO, WARNING, ERROR)."""
        return self.value.upper()

    @property
    def mark(self) -> str:
        """Glyph and label, padded to one width: ``"✖ ERROR  "``."""
        return f"{self.glyph} {self.label:<7}"

    @classmethod
    def of(cls, value: str | Severity) -> Severity:
        """The member for ``"error"``, ``Severity.ERROR``...; ValueError on anything else."""
        return value if isinstance(value, cls) else cls(str(value).lower())

    @classmethod
    def worst(cls, values: Iterable[str | Severity], default: Severity | None = None) -> Severity:
        """The highest severity among ``values`` (``default``, or INFO, when there is none)."""
        found = [cls.of(v) for v in values]
        return max(found) if found else (default or cls.INFO)

    @classmethod
    def descending(cls) -> tuple[Severity, ...]:
        """error, warning, info: the order verdicts are listed in."""
        return tuple(sorted(cls, reverse=True))

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:
        return hash(self.value)  # equal to the plain word, so it can key a dict of words

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return str.__ne__(self, other)

    def __lt__(self, other: str | Severity) -> bool:  # type: ignore[override]
        return self.rank < Severity.of(other).rank

    def __le__(self, other: str | Severity) -> bool:  # type: ignore[override]
        return self.rank <= Severity.of(other).rank

    def __gt__(self, other: str | Severity) -> bool:  # type: ignore[override]
        return self.rank > Severity.of(other).rank

    def __ge__(self, other: str | Severity) -> bool:  # type: ignore[override]
        return self.rank >= Severity.of(other).rank


_RANK = {"info": 0, "warning": 1, "error": 2}
_GLYPH = {"info": "●", "warning": "▲", "error": "✖"}


def count_line(severities: Iterable[str | Severity]) -> str:
    """``"1 error, 2 warnings, 3 info"`` (most severe first; severities with none are left out,
    ``"none"`` when there is nothing)."""
    counts = {s: 0 for s in Severity}
    for s in severities:
        counts[Severity.of(s)] += 1
    parts = []
    for s in Severity.descending():
        n = counts[s]
        if n:
            word = s.value if n == 1 or s is Severity.INFO else s.value + "s"
            parts.append(f"{n} {word}")
    return ", ".join(parts) or "none"
