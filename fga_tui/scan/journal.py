"""The scan journal: finished rows are appended and flushed at once, so a killed scan keeps them.

Layout, next to ``--out rows.jsonl``: a folder ``rows.jsonl.journal/`` holding ``meta.json`` (what
is being scanned, so ``--resume`` cannot mix two scans) and one segment per process and run,
``seg-<time>-<pid>-r<rank>.jsonl``. A process writes its rows in increasing row order and never
reopens an old segment, so every segment is sorted and a torn last line (a kill in the middle of a
write) can only be the last line of a segment; it is ignored and its row runs again. The final
rows file is a streaming k-way merge of the segments (memory flat in the number of rows), written
atomically; the journal is removed only after that file is in place.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Set
from pathlib import Path
from typing import Any, TextIO

from fga_tui.io.errors import InputError

SUFFIX = ".journal"
META = "meta.json"
SEGMENT_GLOB = "seg-*.jsonl"


def journal_dir(out: Path) -> Path:
    """Where the journal of ``out`` lives."""
    return out.with_name(out.name + SUFFIX)


def _row_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(row, line) of every complete, parseable line of one segment, in file order."""
    try:
        handle = path.open("r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.endswith("\n"):
                return  # torn by a kill mid-write: that row was not finished
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("row"), int):
                yield row["row"], line


def _sorted_lines(path: Path) -> Iterator[tuple[int, str]]:
    """A segment's lines in row order (segments are written sorted; a hand-edited one is not)."""
    last = -1
    for row, _ in _row_lines(path):
        if row < last:
            yield from sorted(_row_lines(path))
            return
        last = row
    yield from _row_lines(path)


class RowSet(Set):
    """Row numbers as a bitmap: one bit per row (a resumed 76,000-row scan holds 10 kB, not the
    ~5 MB of a set of ints). Numbers past ``DENSE_LIMIT`` (only a hand-edited journal has them)
    go to a plain set, so one huge number cannot allocate a huge bitmap."""

    DENSE_LIMIT = 1 << 26

    __slots__ = ("_bits", "_count", "_sparse")

    def __init__(self, rows: Iterable[int] = ()) -> None:
        self._bits = bytearray()
        self._count = 0
        self._sparse: set[int] = set()
        for row in rows:
            self.add(row)

    def add(self, row: int) -> None:
        if not 0 <= row < self.DENSE_LIMIT:
            self._sparse.add(row)
            return
        byte, mask = row >> 3, 1 << (row & 7)
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits) // 2)))
        if not self._bits[byte] & mask:
            self._bits[byte] |= mask
            self._count += 1

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, int):
            return False
        if not 0 <= row < self.DENSE_LIMIT:
            return row in self._sparse
        byte = row >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (row & 7)))

    def __iter__(self) -> Iterator[int]:
        yield from sorted(r for r in self._sparse if r < 0)
        for byte, value in enumerate(self._bits):
            if value:
                yield from (byte * 8 + bit for bit in range(8) if value >> bit & 1)
        yield from sorted(r for r in self._sparse if r >= 0)

    def __len__(self) -> int:
        return self._count + len(self._sparse)

    def __repr__(self) -> str:
        return f"RowSet({len(self)} rows)"


class Journal:
    """The journal folder of one scan output."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.dir = journal_dir(self.out)

    def exists(self) -> bool:
        return self.dir.is_dir()

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob(SEGMENT_GLOB)) if self.exists() else []

    def read_meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads((self.dir / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def create(self, meta: dict[str, Any]) -> None:
        """A fresh journal (any old one removed first)."""
        if self.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir()
        tmp = self.dir / (META + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.dir / META)

    def check(self, meta: dict[str, Any]) -> None:
        """``--resume`` continues only the same scan: same data, checkpoint and row options."""
        old = self.read_meta()
        if old is None:
            raise InputError(self.dir, "is not a scan journal (no readable meta.json)")
        for key, value in meta.items():
            if old.get(key) != value:
                raise InputError(
                    self.dir,
                    f"belongs to a different scan ({key} was {old.get(key)!r}, now {value!r}); "
                    "pass --force instead of --resume to start over",
                )

    def done_rows(self) -> RowSet:
        """Row numbers already journalled by any process of any earlier run."""
        done = RowSet()
        for seg in self.segments():
            for row, _ in _row_lines(seg):
                done.add(row)
        return done

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every journalled row once, in row order (streamed)."""
        for _, line in self._merged():
            yield json.loads(line)

    def _merged(self) -> Iterator[tuple[int, str]]:
        last = None
        for row, line in heapq.merge(*(_sorted_lines(s) for s in self.segments())):
            if row != last:  # a row journalled twice (never by design) is written once
                yield row, line
                last = row

    def writer(self, rank: int = 0) -> SegmentWriter:
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-r{rank}.jsonl"
        return SegmentWriter(self.dir / name)

    def finish(self) -> int:
        """Merge the segments into ``out`` (atomic) and remove the journal; the row count.

        On any failure (a full disk) ``out`` is untouched and the journal stays for ``--resume``.
        """
        for stale in self.out.parent.glob(f".{self.out.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # a merge killed half-way (this output has one writer)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent)
        count = 0
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for _, line in self._merged():
                    fh.write(line)
                    count += 1
                fh.flush()
                os.fsync(fh.fileno())
            _follow_umask(Path(tmp))
            os.replace(tmp, self.out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        shutil.rmtree(self.dir, ignore_errors=True)
        return count

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _follow_umask(path: Path) -> None:
    """mkstemp makes 0600 files; a rows file is an ordinary output and follows the umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


class SegmentWriter:
    """Appends rows to one segment; each row is flushed to the OS as soon as it is written, so a
    killed process loses nothing it finished (a crash of the machine may lose the last seconds:
    the file is fsynced every few seconds and on close)."""

    FSYNC_EVERY_S = 5.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: TextIO | None = None
        self._synced = time.monotonic()
        self.written = 0

    def write(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        self.written += 1
        now = time.monotonic()
        if now - self._synced > self.FSYNC_EVERY_S:
            os.fsync(self._fh.fileno())
            self._synced = now

    def close(self) -> None:
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            fh.flush()
            os.fsync(fh.fileno())
        except OSError:
            pass  # a full disk: what reached the file is kept; the rest runs again on --resume
        finally:
            with contextlib.suppress(OSError):
                fh.close()


def read_rows(path: Path) -> Iterable[dict[str, Any]]:
    """The rows of a finished rows file, streamed (a torn or foreign line is an input error)."""
    try:
        handle = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise InputError(f"{path}:{number}", "is not a JSON row of a scan") from None
            if not isinstance(row, dict) or "status" not in row:
                raise InputError(f"{path}:{number}", "is not a row of fga-tui scan")
            yield row
