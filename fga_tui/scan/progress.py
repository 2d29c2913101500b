"""Scan progress on stderr: a bar with rate and ETA on a terminal, periodic plain lines in logs.

Never on stdout, so ``--format json`` stays parseable. Shown from the start (``0/N``, while the
model loads and workers spawn) and at the first finished row, then every ``interval`` seconds
in plain mode (a SLURM log gets a line every half minute, not one per row).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts finished rows of ``total`` (rows already journalled are not counted in the rate)."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        *,
        label: str = "scan",
        interval: float = 30.0,
        tty: bool | None = None,
    ) -> None:
        self.total, self.done, self.label = total, 0, label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = tty if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.start = time.perf_counter()
        self._last = 0.0
        self._last_draw = 0.0
        self._first: float | None = None  # when the first row finished: startup is not a rate

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        if self.done == 0:
            return f"{self.label}: 0/{self.total} rows (starting: model, audit, workers)"
        since = time.perf_counter() - (self._first or self.start)
        rate = (self.done - 1) / since if self.done > 1 and since > 0 else self.done / elapsed
        left = max(self.total - self.done, 0)
        eta = f"ETA {_duration(left / rate)}" if left else f"done in {_duration(elapsed)}"
        pct = 100.0 * self.done / max(self.total, 1)
        return f"{self.label}: {self.done}/{self.total} rows ({pct:.0f}%), {rate:.2f} rows/s, {eta}"

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full stderr never stops the scan

    def show(self) -> None:
        """Draw now (the first line, before any row)."""
        self._draw(force=True)

    def step(self, n: int = 1) -> None:
        if self._first is None:
            self._first = time.perf_counter()
        self.done += n
        self._draw(force=self.done == n or self.done >= self.total)

    def _draw(self, force: bool) -> None:
        now = time.perf_counter()
        if self.tty:
            if not force and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            pct = self.done / max(self.total, 1)
            bar = "█" * int(pct * 24)
            self._write(f"\r\x1b[2K[{bar:<24}] {self.line()}")
        elif force or now - self._last >= self.interval:
            self._last = now
            self._write(self.line() + "\n")

    def close(self) -> None:
        if self.tty:
            self._write("\n")
