"""Dataset sweep: is the diagnosis general, or one sample?

Samples stream from a JSONL file, a folder of JSON samples or a CrysMMNet-style folder; crystal
graphs are built in worker processes (so a GPU is not starved by the Python neighbour search);
traces run batched on the model's device; each sample gets the same numpy diagnosis as
``report``; bad rows are recorded and skipped. The checkpoint is audited once.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

import numpy as np

from fga_tui.diagnostics.attribution_rows import AttributionAggregate
from fga_tui.io.errors import MAX_ATOMS, InputError
from fga_tui.io.types import Sample
from fga_tui.oom import run_traces_split
from fga_tui.trace import Ablation

KEY_METRICS = (
    "attention_cross_orbit_jsd",
    "separation_at_fga_input",
    "mad_at_fga_input",
    "effective_rank_at_fga_input",
    "shared_fraction",
)


@dataclass
class ScanSummary:
    """Counts and distributions over all samples of a scan."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    verdict_samples: Counter = field(default_factory=Counter)
    worst: Counter = field(default_factory=Counter)
    metrics: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KEY_METRICS})
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    attribution: AttributionAggregate = field(default_factory=AttributionAggregate)

    def add(self, row: dict[str, Any]) -> None:
        self.total += 1
        if row["status"] != "ok":
            self.failed += 1
            if len(self.errors) < 20:
                self.errors.append(row["error"])
            return
        self.ok += 1
        for code in set(v["code"] for v in row["verdicts"]):
            self.verdict_samples[code] += 1
        self.worst[row["worst"]] += 1
        for k in KEY_METRICS:
            v = row["metrics"].get(k)
            if v is not None and math.isfinite(v):
                self.metrics[k].append(float(v))
        self.attribution.add(row)

    def distribution(self, key: str) -> dict[str, float] | None:
        values = np.asarray(self.metrics[key], dtype=np.float64)
        if values.size == 0:
            return None
        q = np.quantile(values, [0.0, 0.1, 0.5, 0.9, 1.0])
        return {
            "n": int(values.size),
            "min": float(q[0]),
            "p10": float(q[1]),
            "median": float(q[2]),
            "p90": float(q[3]),
            "max": float(q[4]),
            "mean": float(values.mean()),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "fga-tui.scan/1",
            "samples": self.total,
            "ok": self.ok,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "samples_per_second": round(self.total / self.seconds, 3) if self.seconds else None,
            "verdicts": {
                code: {"samples": n, "fraction": n / self.ok if self.ok else 0.0}
                for code, n in self.verdict_samples.most_common()
            },
            "worst_severity": dict(self.worst),
            "metrics": {k: self.distribution(k) for k in KEY_METRICS},
            "attribution": self.attribution.to_json(),
            "errors": self.errors,
        }

    def generality(self, code: str) -> str:
        n = self.verdict_samples.get(code, 0)
        if not self.ok or n == 0:
            return "absent"
        frac = n / self.ok
        if n == 1 and self.ok > 1:
            return "one sample"
        return "general" if frac >= 0.5 else "some samples"

    def to_text(self, histogram: bool = True) -> str:
        out = [
            f"scanned {self.total} samples in {self.seconds:.1f} s "
            f"({self.ok} ok, {self.failed} failed)",
        ]
        if self.verdict_samples:
            out.append("verdicts (samples showing each):")
            for code, n in self.verdict_samples.most_common():
                pct = 100.0 * n / self.ok
                out.append(f"  {code:<24} {n:>6}  {pct:5.1f}%  {self.generality(code)}")
        out.append("metrics (min / median / max):")
        for k in KEY_METRICS:
            d = self.distribution(k)
            if d:
                out.append(f"  {k:<30} {d['min']:.3g} / {d['median']:.3g} / {d['max']:.3g}")
        out.extend(self.attribution.to_text_lines())
        if histogram and len(self.metrics["attention_cross_orbit_jsd"]) > 1:
            out.append(
                histogram_text(
                    self.metrics["attention_cross_orbit_jsd"],
                    "attention cross-orbit JSD (bits), log10",
                )
            )
        if self.errors:
            out.append("first errors:")
            out.extend(f"  {e}" for e in self.errors[:5])
        return "\n".join(out)


def histogram_text(values: Sequence[float], title: str, width: int = 70, height: int = 12) -> str:
    """A plotext (6.x) histogram of log10 of the positive values, as plain text."""
    import plotext as plt

    data = [math.log10(v) for v in values if v > 0]
    if len(data) < 2:
        return ""
    fig = plt.figure
    fig.clear()
    fig.draw(fig.hist(data, bins=min(20, max(5, len(data) // 3))))
    fig.title(title)
    fig.plot_size(width, height)
    try:
        return plt.uncolorize(str(fig.build()))
    finally:
        fig.clear()


def _row_error(position: int, sample_id: str | None, message: str) -> dict[str, Any]:
    return {"position": position, "id": sample_id, "status": "error", "error": message}


def _row_ok(position: int, diagnosis: Any, trace: Any, attribution: Any = None) -> dict[str, Any]:
    from fga_tui.diagnostics.attribution_rows import row_fields
    from fga_tui.diagnostics.report import fga_input_stage

    rep = diagnosis.report
    fin = fga_input_stage(trace) or trace.stages[-1]
    m = diagnosis.metrics[fin]
    att = rep.attention or {}
    dec = att.get("decomposition") or {}
    return {
        "position": position,
        "id": rep.sample["id"],
        "status": "ok",
        "formula": rep.sample["formula"],
        "num_atoms": rep.sample["num_atoms"],
        "prediction": rep.prediction,
        "target": rep.sample["target"],
        "worst": rep.worst_severity,
        "verdicts": [
            {"code": v.code, "severity": v.severity, "stage": v.evidence.get("stage")}
            for v in rep.verdicts
        ],
        "metrics": {
            "attention_cross_orbit_jsd": att.get("cross_orbit_jsd"),
            "separation_at_fga_input": rep.separation.get(fin),
            "mad_at_fga_input": m.mad,
            "effective_rank_at_fga_input": m.effective_rank,
            "shared_fraction": dec.get("shared_fraction"),
        },
        "orbits": rep.orbits,
        "top_words": {e["atom"]: [w for w, _ in e["words"][:5]] for e in rep.top_words},
        **row_fields(trace, attribution),
    }


def _assemble_job(
    model_view: Any,
    position: int,
    prepared: Any,
    trace: Any,
    audit_result: Any,
    ablation_traces: dict[str, Any],
    stopwords: set[str] | None,
    symmetry: Any,
    attribution: Any = None,
) -> dict[str, Any]:
    """Diagnosis of one traced sample -> its JSONL row (numpy only: runs in a worker process)."""
    from fga_tui.diagnostics.report import assemble

    diag = assemble(
        model_view,
        prepared,
        trace,
        audit_result=audit_result,
        ablation_traces=ablation_traces,
        stopwords=stopwords,
        symmetry=symmetry,
        lean=True,
    )
    return _row_ok(position, diag, trace, attribution)


def _can_spawn() -> bool:
    """Spawned workers re-run ``__main__`` from its file; a script read from stdin has none."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _graph_job(structure: Any) -> tuple[Any, Any]:
    """The CPU work per structure that needs no model: crystal graph and symmetry orbits."""
    from fga_tui.structure.graph import build_graph
    from fga_tui.structure.symmetry import analyse_symmetry

    return build_graph(structure, cart_coords=structure.source_cart), analyse_symmetry(structure)


def _graphs(structures: Sequence[Any], pool: Executor | None, workers: int) -> Iterator[Any]:
    """(graph, symmetry) in input order; computed ahead in the worker processes when there is a
    pool, so the model's device never waits on Python neighbour searches."""
    if pool is None:
        return (_graph_job(s) for s in structures)
    chunk = max(1, min(16, len(structures) // (4 * workers)))
    return pool.map(_graph_job, structures, chunksize=chunk)


class Progress:
    """A one-line progress bar on a terminal, sparse lines otherwise (never on stdout)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_pct = -1

    def step(self, n: int = 1) -> None:
        self.done += n
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        pct = int(100 * self.done / max(self.total, 1))
        if self.tty:
            bar = "#" * (pct * 30 // 100)
            self.stream.write(f"\r[{bar:<30}] {self.done}/{self.total}  {rate:.1f} samples/s")
            self.stream.flush()
        elif pct // 10 != self._last_pct // 10 or self.done == self.total:
            self.stream.write(f"scan: {self.done}/{self.total} samples ({rate:.1f}/s)\n")
        self._last_pct = pct

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def scan(
    loaded: Any,
    data: str | Path,
    *,
    out: TextIO,
    batch_size: int = 16,
    workers: int = 0,
    limit: int | None = None,
    tokens_path: str | Path | None = None,
    text_model: str | Path | None = None,
    vocab_mappings: str | Path | None = None,
    ablations: bool = False,
    stopwords: set[str] | None = None,
    max_atoms: int = MAX_ATOMS,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    attribution: bool = False,
) -> ScanSummary:
    """Diagnose every sample of ``data``; write one JSON line per sample to ``out``.

    Rows carry each sample's attention grounding; ``attribution`` adds text reliance (no-text
    prediction, word deletions, integrated gradients: about 2 traced forwards more per sample).
    """
    from fga_tui import engine
    from fga_tui.diagnostics.audit import audit_model
    from fga_tui.io.sample import iter_samples
    from fga_tui.io.tokens import load_tokens
    from fga_tui.text.encoders import resolve_token_states
    from fga_tui.text.normalize import load_vocab_mappings

    t0 = time.perf_counter()
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
    if text_model is not None and not Path(text_model).is_dir():
        raise InputError(text_model, "text model directory does not exist")
    items: list[tuple[int, Sample | InputError]] = []
    for position, item in iter_samples(data, max_atoms=max_atoms):
        if limit is not None and len(items) >= limit:
            break
        items.append((position, item))
    if not items:
        raise InputError(data, "no samples found")
    summary = ScanSummary()
    good = [(p, s) for p, s in items if isinstance(s, Sample)]
    bar = Progress(len(items)) if progress else None

    def emit(row: dict[str, Any]) -> None:
        out.write(json.dumps(row) + "\n")
        summary.add(row)
        if on_row is not None:
            on_row(row)
        if bar is not None:
            bar.step()

    for position, item in items:
        if isinstance(item, InputError):
            emit(_row_error(position, None, item.message))

    if workers == 0:
        workers = max(1, min(8, (os.cpu_count() or 1) - 1))
    pool: Executor | None = None
    # Spawning a worker costs about a second (imports); it pays off from a few dozen samples each.
    if (os.cpu_count() or 1) > 1 and len(good) >= 32 * workers and _can_spawn():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    # What the workers' diagnosis needs of the model: its config and provenance (picklable).
    model_view = SimpleNamespace(config=loaded.config, info=loaded.info)
    pending: deque[Future] = deque()

    def drain(block: bool) -> None:
        """Emit finished rows in input order."""
        while pending and (block or pending[0].done()):
            emit(pending.popleft().result())

    graphs = _graphs([s.structure for _, s in good], pool, workers)
    # The audit (one backward pass) runs while the workers start and build the first graphs.
    audit_result = audit_model(loaded, None)
    try:
        batch: list[tuple[int, Any, Any]] = []

        def flush() -> None:
            if not batch:
                return
            prepared = [p for _, p, _ in batch]
            traces = run_traces_split(loaded, prepared, counterfactuals=False)
            extra: list[dict[str, Any]] = [{} for _ in batch]
            if ablations and loaded.config.fusion_indices:
                nf = run_traces_split(
                    loaded, prepared, Ablation(no_fusion=True), counterfactuals=False
                )
                extra = [{"no_fusion": t} for t in nf]
            for (position, prep, sym), trace, abl in zip(batch, traces, extra, strict=True):
                att = engine.run_attribution(loaded, prep, trace=trace) if attribution else None
                args = (model_view, position, prep, trace, audit_result, abl, stopwords, sym, att)
                if pool is None:
                    emit(_assemble_job(*args))
                else:
                    pending.append(pool.submit(_assemble_job, *args))
            batch.clear()
            drain(block=False)

        for (position, sample), (graph, sym) in zip(good, graphs, strict=True):
            try:
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
            except InputError as exc:
                drain(block=True)
                emit(_row_error(position, sample.id, exc.message))
                continue
            batch.append((position, prepared, sym))
            if len(batch) >= batch_size:
                flush()
        flush()
        drain(block=True)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
