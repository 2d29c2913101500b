"""A scan as the command line runs it: checks, journal, resume, torchrun ranks, merge, summary.

Order matters for the "bad input writes nothing" rule: everything that can be a user error
(paths, the journal's state, the model, shared token files, an empty dataset) is checked on every
rank before rank 0 creates the journal; from then on finished rows are on disk as they finish.
Under torchrun every step that one rank decides is confirmed to all ranks through a tiny
all-reduce, so a bad input on rank 0 stops every rank with the same exit code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fga_tui.io.errors import InputError
from fga_tui.scan import distributed
from fga_tui.scan.journal import Journal, read_rows
from fga_tui.scan.progress import Progress
from fga_tui.scan.runner import count_rows, scan_rows
from fga_tui.scan.summary import ScanSummary, summarize_rows


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan; ``message`` says what was kept and how to continue."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RanksFailed(Exception):
    """Another rank failed; it printed its reason (this one stays quiet)."""


@dataclass
class ScanJob:
    """What to scan and where the rows go."""

    ckpt: Path
    data: Path
    out: Path | None
    load_model: Callable[[str], Any]  # device spec -> LoadedModel
    device: str = "auto"
    resume: bool = False
    force: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # scan_rows keyword arguments
    progress: bool = True

    def meta(self) -> dict[str, Any]:
        """What must not change between a scan and its ``--resume`` (row content depends on it)."""
        data = self.data.resolve()
        o = self.options
        interventions = o.get("interventions")
        return {
            "schema": "fga-tui.scan-journal/1",
            "data": str(data),
            "data_bytes": data.stat().st_size if data.is_file() else None,
            "checkpoint": str(self.ckpt.resolve()),
            "limit": o.get("limit"),
            "batch_size": o.get("batch_size", 16),  # batch companions change the last float bits
            "max_atoms": o.get("max_atoms"),
            "ablations": bool(o.get("ablations")),
            "attribution": bool(o.get("attribution")),
            "interventions": list(interventions.specs) if interventions is not None else [],
            "tokens": None if o.get("tokens_path") is None else str(o["tokens_path"]),
            "text_model": None if o.get("text_model") is None else str(o["text_model"]),
        }

    def check_output(self) -> None:
        """Refuse, before any work, what would overwrite or mix results."""
        out = self.out
        if out is None:
            if self.resume:
                raise InputError(
                    "--resume", "needs --out (the rows file whose journal to continue)"
                )
            return
        if out.is_dir():
            raise InputError(out, "is a directory")
        if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
            raise InputError(out, f"cannot write: {out.parent} is not a writable folder")
        journal = Journal(out)
        if journal.exists():
            if self.resume:
                journal.check(self.meta())
            elif not self.force:
                raise InputError(
                    journal.dir,
                    "holds an unfinished scan: pass --resume to continue it or --force to "
                    "start over",
                )
        elif out.exists() and not self.force:
            if self.resume:
                raise InputError(out, "already exists and has no journal: the scan is finished")
            raise InputError(out, "already exists; pass --force to overwrite")


def _agree(dist: distributed.Dist, step: Callable[[], Any]) -> Any:
    """Run ``step``; every rank learns whether it failed anywhere (then all stop)."""
    try:
        result = step()
    except BaseException:
        dist.all_ok(False)
        raise
    if not dist.all_ok(True):
        raise RanksFailed()
    return result


def run(job: ScanJob) -> ScanSummary | None:
    """Run the scan; rank 0 returns the summary (other ranks None)."""
    dist = distributed.init()
    try:
        return _run(job, dist)
    finally:
        dist.close()


def _run(job: ScanJob, dist: distributed.Dist) -> ScanSummary | None:
    from fga_tui.io.tokens import load_tokens
    from fga_tui.text.encoders import check_text_model
    from fga_tui.text.normalize import load_vocab_mappings

    t0 = time.perf_counter()
    opts = job.options

    def checks() -> None:
        if dist.active and job.out is None:
            raise InputError("--out", "is required under torchrun (the ranks merge through it)")
        if not job.data.exists():
            raise InputError(job.data, "no such file or directory")
        if dist.is_main:
            job.check_output()
        if opts.get("tokens_path") is not None:
            load_tokens(opts["tokens_path"])
        if opts.get("vocab_mappings") is not None:
            load_vocab_mappings(opts["vocab_mappings"])
        if opts.get("text_model") is not None:
            check_text_model(opts["text_model"])

    _agree(dist, checks)
    loaded = _agree(dist, lambda: job.load_model(dist.device(job.device)))
    journal = Journal(job.out) if job.out is not None else None
    resuming = journal is not None and job.resume and journal.exists()

    def start() -> int:
        from fga_tui.io.sample import count_samples

        if count_samples(job.data) == 0:
            raise InputError(job.data, "no samples found")
        if dist.is_main and journal is not None and not resuming:
            journal.create(job.meta())
        return 0

    _agree(dist, start)
    done = journal.done_rows() if resuming and journal is not None else frozenset()
    total = count_rows(job.data, opts.get("limit"), dist, done, opts.get("batch_size", 16))
    bar = Progress(total, label="scan" if not dist.active else f"scan rank 0/{dist.world_size}")
    show = job.progress and dist.is_main
    writer = journal.writer(dist.rank) if journal is not None else None
    summary = ScanSummary()

    def sink(row: dict[str, Any]) -> None:
        if writer is not None:
            try:
                writer.write(row)
            except OSError as exc:
                raise InputError(
                    journal.dir if journal else None,
                    f"cannot write ({exc.strerror or exc}); the {writer.written} rows finished so "
                    "far are kept: free space and rerun with --resume",
                ) from None
        else:
            summary.add(row)

    if show:
        bar.show()
    try:
        scanned = scan_rows(
            loaded,
            job.data,
            sink,
            skip=done,
            dist=dist,
            progress=bar if show else None,
            expected=total,
            **opts,
        )
    except KeyboardInterrupt:
        kept = (writer.written if writer else 0) + len(done)
        where = f"kept in {journal.dir}; rerun with --resume" if journal else "not kept (no --out)"
        raise ScanInterrupted(f"interrupted: {kept} finished rows {where}") from None
    finally:
        if writer is not None:
            writer.close()
        if show:
            bar.close()
    rows_per_rank = dist.gather_counts(scanned)  # also the barrier before the merge
    if not dist.is_main:
        return None
    if journal is not None and job.out is not None:
        try:
            journal.finish()
        except OSError as exc:
            raise InputError(
                job.out,
                f"cannot write ({exc.strerror or exc}); every finished row is kept in "
                f"{journal.dir}: free space and rerun with --resume (nothing runs again)",
            ) from None
        summary = summarize_rows(read_rows(job.out))
    summary.scanned = sum(rows_per_rank)
    summary.seconds = time.perf_counter() - t0
    summary.distributed = {"world_size": dist.world_size, "rows_per_rank": rows_per_rank}
    return summary


def summary_of(out: Path) -> ScanSummary:
    """``--summary-only``: the summary of a finished rows file, or of an unfinished scan's
    journal (the rows finished so far)."""
    if out.is_file():
        return summarize_rows(read_rows(out))
    journal = Journal(out)
    if journal.exists():
        return summarize_rows(journal.rows())
    raise InputError(out, "no such rows file (and no journal of an unfinished scan)")
