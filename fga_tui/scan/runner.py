"""The scan loop: every row of a dataset through the model and the diagnosis, streamed.

Rows stream from the input (JSONL, a folder of samples, a CrysMMNet folder) and are never held
all at once: crystal graphs and symmetry are built ahead in worker processes within a bounded
window (a GPU is not starved by the Python neighbour search, and memory does not grow with the
dataset); traces run batched on the model's device; each sample gets the same numpy diagnosis as
``report``, in the workers too (it overlaps the next batch's forward); rows leave in input order
through ``sink`` as soon as they and every row before them are finished. Bad rows become error
rows and the scan goes on.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Container, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from fga_tui.io.errors import MAX_ATOMS, InputError
from fga_tui.oom import run_traces_split
from fga_tui.scan.distributed import Dist
from fga_tui.scan.progress import Progress
from fga_tui.scan.rows import assemble_job, error_row
from fga_tui.scan.summary import ScanSummary

Row = dict[str, Any]

#: Spawning a worker costs about a second (imports); it pays off from a few dozen rows each.
MIN_ROWS_PER_WORKER = 32


def _can_spawn() -> bool:
    """Spawned workers re-run ``__main__`` from its file; a script read from stdin has none."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _worker_init() -> None:
    """Ctrl-C is the main process's to handle (it keeps the finished rows); a worker that died
    of the same SIGINT would break the pool first and turn a clean stop into a traceback.

    A worker also ends when the scan that started it is gone (kill -9): it holds both ends of
    the pool's queue, so it would never see the pipe close and would wait, orphaned, forever
    (holding the scan's stdout and stderr, so a caller reading them would hang too).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(0)

    threading.Thread(target=watch, name="fga-tui-parent-watch", daemon=True).start()


def _graph_job(structure: Any) -> tuple[Any, Any]:
    """The CPU work per structure that needs no model: crystal graph and symmetry orbits."""
    from fga_tui.structure.graph import build_graph
    from fga_tui.structure.symmetry import analyse_symmetry

    return build_graph(structure, cart_coords=structure.source_cart), analyse_symmetry(structure)


class _Slot:
    """One row's place in the output order: a row, a Future of one, or not yet known."""

    __slots__ = ("position", "sample_id", "value")

    def __init__(self, position: int, sample_id: str | None = None) -> None:
        self.position, self.sample_id = position, sample_id
        self.value: Row | Future | None = None

    def ready(self) -> bool:
        v = self.value
        return v is not None and (not isinstance(v, Future) or v.done())

    def result(self) -> Row:
        v = self.value
        if not isinstance(v, Future):
            return v  # type: ignore[return-value]
        try:
            return v.result()
        except Exception as exc:  # a diagnosis bug on one odd row must not end a long scan
            return _diagnosis_failed(self.position, self.sample_id, exc)


def _diagnosis_failed(position: int, sample_id: str | None, exc: BaseException) -> Row:
    return error_row(position, sample_id, f"diagnosis failed: {_brief(exc)}")


def _cores() -> int:
    """The cores this process may run on (a SLURM or cgroup allocation, not the whole node)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_workers(world_size: int = 1) -> int:
    """Graph/diagnosis processes per rank: the cores this rank may use, less its own."""
    cores = max(1, _cores() // max(1, world_size))
    return max(0, min(8, cores - 1))


def rank_threads(world_size: int, workers: int) -> int:
    """Torch threads of a rank: its share of the cores less its workers' (at least one).

    A rank whose OpenMP threads spin on every core while its workers build graphs and diagnose
    ran a 64-row scan 2.7x slower on 2 cores (50 s instead of 18 s). It depends on ``workers``,
    not on whether a run starts them: the thread count changes a GEMM's last bits, and a resumed
    run (too few rows left for a pool) must trace with the same threads as the first.
    """
    cores = max(1, _cores() // max(1, world_size))
    return max(1, cores - workers)


def count_rows(
    data: str | Path, limit: int | None, dist: Dist, skip: Container[int], block: int
) -> int:
    """How many rows this rank will run (for progress), without parsing any structure."""
    from fga_tui.io.sample import count_samples

    total = count_samples(data)
    if limit is not None:
        total = min(total, limit)
    return sum(1 for p in range(total) if dist.mine(p, block) and (p + 1) not in skip)


def scan_rows(
    loaded: Any,
    data: str | Path,
    sink: Callable[[Row], None],
    *,
    batch_size: int = 16,
    workers: int | None = None,
    limit: int | None = None,
    tokens_path: str | Path | None = None,
    text_model: str | Path | None = None,
    vocab_mappings: str | Path | None = None,
    ablations: bool = False,
    interventions: Any = None,
    stopwords: set[str] | None = None,
    max_atoms: int = MAX_ATOMS,
    skip: Container[int] = frozenset(),
    dist: Dist | None = None,
    progress: Progress | None = None,
    expected: int | None = None,
    attribution: bool = False,
) -> int:
    """Diagnose this rank's rows of ``data`` not in ``skip`` (row numbers); ``sink`` gets each
    row in input order. Returns the number of rows run."""
    import torch

    from fga_tui import engine
    from fga_tui.diagnostics.audit import audit_model
    from fga_tui.io.sample import iter_samples
    from fga_tui.io.tokens import load_tokens
    from fga_tui.io.types import Sample
    from fga_tui.text.encoders import check_text_model, resolve_token_states
    from fga_tui.text.normalize import load_vocab_mappings
    from fga_tui.trace import Ablation

    dist = dist or Dist()
    # Files that apply to every row are read once: a bad one is bad input (exit 2), not a
    # failure of every row.
    shared_tokens = load_tokens(tokens_path) if tokens_path is not None else None
    mappings = load_vocab_mappings(vocab_mappings) if vocab_mappings is not None else None
    width = loaded.config.text_hidden_dim
    if (
        shared_tokens is not None
        and loaded.needs_text
        and shared_tokens.embeddings.shape[1] != width
    ):
        raise InputError(
            tokens_path,
            f"token embeddings are {shared_tokens.embeddings.shape[1]}-wide but the checkpoint's "
            f"text projection expects {width}",
        )
    if text_model is not None:
        check_text_model(text_model)
    intervention = interventions if interventions is not None else Ablation()
    engine.check_ablation(loaded, intervention)

    items = iter_samples(data, max_atoms=max_atoms)
    if expected is None:
        expected = progress.total if progress is not None else 1_000_000
    if workers is None or workers == 0:
        workers = default_workers(dist.world_size)
    threads = rank_threads(dist.world_size, workers)
    saved_threads = torch.get_num_threads()
    if saved_threads > threads:
        torch.set_num_threads(threads)
    pool: Executor | None = None
    if workers > 0 and expected >= MIN_ROWS_PER_WORKER * workers and _can_spawn():
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init
        )
    # What the workers' diagnosis needs of the model: its config and provenance (picklable).
    model_view = SimpleNamespace(config=loaded.config, info=loaded.info)
    window = max(2 * batch_size, 8 * workers)  # rows in flight ahead of the forward
    ahead: deque[tuple[_Slot | None, int, Any, Future | None]] = deque()
    order: deque[_Slot] = deque()
    # (slot, position, prepared, symmetry); slot None: a row already journalled that is traced
    # again only as a batch companion of its block's unfinished rows (same batch, same floats).
    batch: list[tuple[_Slot | None, int, Any, Any]] = []
    ran = 0
    # Diagnoses queued in the workers hold their traces (a 5,000-atom cell's is tens of MB):
    # at most ``queued`` of them wait at once; the rank then waits for the oldest.
    diagnosing: deque[Future] = deque()
    queued = max(batch_size, 2 * workers)

    def drain(block: bool) -> None:
        """Hand finished rows to the sink in input order (block: until ``order`` is short)."""
        nonlocal ran
        while order and (order[0].ready() or (block and order[0].value is not None)):
            row = order.popleft().result()
            sink(row)
            ran += 1
            if progress is not None:
                progress.step()

    def flush() -> None:
        if not batch:
            return
        prepared = [p for _, _, p, _ in batch]
        traces = run_traces_split(loaded, prepared, intervention, counterfactuals=False)
        extra: list[dict[str, Any]] = [{} for _ in batch]
        if ablations and loaded.config.fusion_indices and not intervention.active:
            nf = run_traces_split(loaded, prepared, Ablation(no_fusion=True), counterfactuals=False)
            extra = [{"no_fusion": t} for t in nf]
        for (slot, position, prep, sym), trace, abl in zip(batch, traces, extra, strict=True):
            if slot is None:
                continue
            # Attribution needs a backward pass: the model's device, this process.
            att = (
                engine.run_attribution(loaded, prep, intervention, trace=trace)
                if attribution
                else None
            )
            # The numpy diagnosis runs in a worker while this process runs the next forward.
            # A trace owns C-contiguous arrays (``model.tracer``), so its diagnosis gives the
            # same bits here or in a worker: a resumed or sharded scan, whose pool use differs,
            # writes identical rows.
            job = (model_view, position, prep, trace, audit_result, abl, stopwords, sym, att)
            if pool is not None:
                while diagnosing and (diagnosing[0].done() or len(diagnosing) >= queued):
                    wait([diagnosing.popleft()])
                slot.value = pool.submit(assemble_job, *job)
                diagnosing.append(slot.value)
                continue
            try:
                slot.value = assemble_job(*job)
            except Exception as exc:  # the same error row as from a worker (``_Slot.result``)
                slot.value = _diagnosis_failed(position, slot.sample_id, exc)
        batch.clear()

    def take_one() -> None:
        """Move the oldest row in flight from graph building into the batch (or to an error)."""
        slot, position, sample, fut = ahead.popleft()
        try:
            graph, sym = fut.result() if fut is not None else _graph_job(sample.structure)
            tokens = shared_tokens
            if tokens is None:
                tokens = resolve_token_states(
                    sample,
                    text_model=text_model,
                    vocab_mappings=mappings,
                    needs_text=loaded.needs_text,
                    device=str(loaded.device),
                )
            prepared = engine.prepare_sample(loaded, sample, graph=graph, tokens=tokens)
            if intervention.active:  # e.g. patch=STAGE:Hf_4<-Ba_0 names atoms of some rows only
                engine.check_ablation(loaded, intervention, [prepared])
        except InputError as exc:
            if slot is not None:
                slot.value = error_row(position, sample.id, _where(exc, sample))
            return
        except Exception as exc:  # a structure that breaks the graph builder: that row's error
            if slot is not None:
                slot.value = error_row(position, sample.id, f"{_where_of(sample)}: {_brief(exc)}")
            return
        if batch and batch[0][1] // batch_size != position // batch_size:
            flush()  # batches are blocks of consecutive rows, whoever scans them
        batch.append((slot, position, prepared, sym))

    def unfinished(block: int) -> bool:
        first = block * batch_size
        return any((p + 1) not in skip for p in range(first, first + batch_size))

    def rows_in_order() -> Iterator[tuple[int, Any, bool]]:
        for position, item in items:
            if limit is not None and position >= limit:
                return
            block = position // batch_size
            if dist.mine(position, batch_size) and unfinished(block):
                yield position, item, (position + 1) not in skip

    # The audit (one backward pass) runs while the workers start and build the first graphs.
    pending_start: list[tuple[int, Any, bool]] = []
    source = rows_in_order()
    try:
        for entry in source:
            pending_start.append(entry)
            if len(pending_start) >= window:
                break
        for entry in pending_start:
            _admit(*entry, ahead, order, pool, Sample)
        pending_start.clear()
        audit_result = audit_model(loaded, None)
        for entry in source:
            _admit(*entry, ahead, order, pool, Sample)
            while len(ahead) > window:
                take_one()
            drain(block=len(order) > window + 2 * batch_size)
        while ahead:  # the last window: rows still leave (and are journalled) as they finish
            take_one()
            drain(block=False)
        flush()
        drain(block=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(saved_threads)
    return ran


def _admit(
    position: int,
    item: Any,
    emit: bool,
    ahead: deque,
    order: deque,
    pool: Executor | None,
    sample_type: type,
) -> None:
    slot = _Slot(position, getattr(item, "id", None)) if emit else None
    if slot is not None:
        order.append(slot)
    if not isinstance(item, sample_type):
        if slot is not None:
            slot.value = error_row(position, getattr(item, "sample_id", None), item.message)
        return
    fut = pool.submit(_graph_job, item.structure) if pool is not None else None
    ahead.append((slot, position, item, fut))


def _where_of(sample: Any) -> str:
    return str((sample.extra or {}).get("where") or sample.source or sample.id)


def _where(exc: InputError, sample: Any) -> str:
    """The error message, naming the row (``file:line``) when it names only the file."""
    where = _where_of(sample)
    if exc.path is None or exc.path == str(sample.source):
        return f"{where}: {exc.reason}"
    return exc.message


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def scan(
    loaded: Any,
    data: str | Path,
    *,
    out: TextIO | None = None,
    progress: bool = True,
    on_row: Callable[[Row], None] | None = None,
    **options: Any,
) -> ScanSummary:
    """Diagnose every row of ``data`` in one process: rows as JSON lines to ``out`` (in input
    order), the summary accumulated as they pass (see ``scan_rows`` for the options)."""
    from fga_tui.io.sample import count_samples

    t0 = time.perf_counter()
    summary = ScanSummary()
    total = count_samples(data)
    if options.get("limit") is not None:
        total = min(total, options["limit"])
    if total == 0:
        raise InputError(data, "no samples found")
    bar = Progress(total) if progress else None

    def sink(row: Row) -> None:
        if out is not None:
            out.write(json.dumps(row) + "\n")
        summary.add(row)
        if on_row is not None:
            on_row(row)

    if bar is not None:
        bar.show()
    try:
        summary.scanned = scan_rows(loaded, data, sink, progress=bar, expected=total, **options)
    finally:
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - t0
    summary.distributed = {"world_size": 1, "rows_per_rank": [summary.scanned]}
    return summary
