"""The engine state behind the app, driven from thread workers.

``Session.compute`` loads the checkpoint, reads and prepares the sample, traces, diagnoses and
builds a ``View``, posting a ``Progress`` message per step and a ``ViewReady`` or
``RequestFailed`` at the end. It never touches widgets. Torch and the engine are imported here
lazily, inside the worker, so the first frame paints before torch loads.

A Python thread cannot be killed, and Textual's thread workers run in asyncio's default executor,
which the event loop joins on exit: a worker stuck in a 30 s forward would hold ``q`` for 30 s.
So each engine step runs in its own daemon thread that the worker waits on while polling
``cancelled``; a cancelled worker returns at once and abandons the step (its result is
discarded; the daemon thread ends on its own or with the process). State is only mutated by the
worker after a step returns and under a lock, so an abandoned step never leaks into the session.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fga_tui.io.errors import MAX_ATOMS, InputError
from fga_tui.tui.messages import (
    AttributionReady,
    Progress,
    RequestFailed,
    SampleCount,
    ViewReady,
)

if TYPE_CHECKING:
    from fga_tui.trace import Ablation
    from fga_tui.tui.view import View

T = TypeVar("T")
Post = Callable[[Any], Any]
IsCancelled = Callable[[], bool]

STEPS = ("loading checkpoint", "reading sample", "tracing", "diagnosing", "preparing panes")
POLL_S = 0.02
#: Views kept for instant toggling back (a view holds its whole trace: ~10 MB at 500 atoms).
VIEW_CACHE = 4


def _no_ablation() -> Ablation:
    from fga_tui.trace import Ablation  # numpy: not before the first frame

    return Ablation()


class Cancelled(Exception):
    """The request was superseded or the app is quitting."""


@dataclass(frozen=True)
class SessionOptions:
    """What ``fga-tui open`` was given."""

    checkpoint: Path
    sample: Path
    index: int = 0
    device: str = "auto"
    tokens: Path | None = None
    text_model: Path | None = None
    vocab_mappings: Path | None = None
    stopwords: str | None = None  # None | "default" | a word-list file (as --stopwords)
    trust: bool = False
    fga_heads: int | None = None
    cm_heads: int | None = None
    baseline: Path | None = None
    max_atoms: int = MAX_ATOMS
    audit: bool = True
    run_ablations: bool = True
    snapshot_dir: Path = Path("fga-snapshots")
    attribution: bool = True
    ablation: Ablation = field(default_factory=_no_ablation)


@dataclass(frozen=True)
class Request:
    """One unit of worker work: show ``sample``/``index`` under ``ablation``."""

    sample: Path
    index: int
    ablation: Ablation


_STEPS: set[threading.Thread] = set()


def running_steps() -> list[threading.Thread]:
    """Engine steps still running, abandoned ones included.

    When the app quits mid-step, finalising the interpreter would stop such a thread inside
    torch's C++ code and abort the process ("terminate called without an active exception"):
    ``fga-tui open`` leaves with ``os._exit`` instead while any is alive.
    """
    return [t for t in list(_STEPS) if t.is_alive()]


def run_abandonable(fn: Callable[[], T], cancelled: IsCancelled, poll: float = POLL_S) -> T:
    """Run ``fn`` in a daemon thread; raise ``Cancelled`` as soon as ``cancelled()`` is true."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the waiting worker
            box["error"] = exc
        finally:
            done.set()
            _STEPS.discard(threading.current_thread())

    thread = threading.Thread(target=target, daemon=True, name="fga-engine-step")
    _STEPS.add(thread)
    thread.start()
    while not done.wait(poll):
        if cancelled():
            raise Cancelled
    if "error" in box:
        raise box["error"]
    return box["value"]


def count_samples(path: Path, max_atoms: int = MAX_ATOMS) -> int:
    """How many rows ``path`` holds (bad rows included, as ``--index`` counts them)."""
    from fga_tui.io.sample import iter_samples

    count = 0
    for pos, _ in iter_samples(path, max_atoms=max_atoms):
        count = pos + 1
    return count


ViewKey = tuple[str, int, Any]


class ViewCache:
    """The ``size`` most recently used views by (sample, index, ablation): memory stays flat
    over a long session however many samples and ablations are visited."""

    def __init__(self, size: int = VIEW_CACHE) -> None:
        self.size = size
        self._views: OrderedDict[ViewKey, View] = OrderedDict()

    def get(self, key: ViewKey) -> View | None:
        view = self._views.get(key)
        if view is not None:
            self._views.move_to_end(key)
        return view

    def put(self, key: ViewKey, view: View) -> None:
        if self.size <= 0:
            return
        self._views[key] = view
        self._views.move_to_end(key)
        while len(self._views) > self.size:
            self._views.popitem(last=False)

    def items(self) -> list[tuple[ViewKey, View]]:
        return list(self._views.items())

    def values(self) -> list[View]:
        return list(self._views.values())

    def __len__(self) -> int:
        return len(self._views)

    def __iter__(self) -> Iterator[ViewKey]:
        return iter(list(self._views))

    def __getitem__(self, key: ViewKey) -> View:
        return self._views[key]

    def __setitem__(self, key: ViewKey, view: View) -> None:
        self.put(key, view)

    def __contains__(self, key: object) -> bool:
        return key in self._views


class Session:
    """Owns the loaded model, the prepared sample, cached views and the generation counter.

    ``next_generation`` is called on the UI thread; ``compute`` and ``count`` run in thread
    workers. The last ``cache_size`` views are cached per (sample, index, ablation), so toggling
    an ablation back is instant. This runs the engine in the calling process; the app runs it
    in a child process (``fga_tui.tui.engine_process``), where its GIL cannot stall the UI.
    """

    def __init__(self, options: SessionOptions, cache_size: int = VIEW_CACHE) -> None:
        self.options = options
        self.generation = 0
        self.loaded: Any = None
        self.audit_result: Any = None
        self.prepared: Any = None
        self.prepared_key: tuple[str, int] | None = None
        self.views = ViewCache(cache_size)
        self.baseline: Any = None
        self.last_traceback: str | None = None
        self.device_note: str | None = None
        self._lock = threading.Lock()
        self._load_s: float | None = None

    def stopword_set(self) -> set[str] | None:
        """The ``--stopwords`` list the diagnosis drops from top words (None: keep all)."""
        spec = self.options.stopwords
        if spec is None:
            return None
        from fga_tui.diagnostics.words import load_stopwords

        return set(load_stopwords(None if spec == "default" else spec))

    def shutdown(self) -> None:
        """Nothing to stop in-process (the engine process version stops its child)."""

    def close(self, timeout: float = 1.0) -> None:
        """Nothing to release in-process."""

    def next_generation(self) -> int:
        """A new request id; results carrying an older one are stale."""
        self.generation += 1
        return self.generation

    def initial_request(self) -> Request:
        return Request(self.options.sample, self.options.index, self.options.ablation)

    # --- worker side --------------------------------------------------------------------------

    def compute(
        self, generation: int, request: Request, post: Post, cancelled: IsCancelled
    ) -> None:
        """Produce the view for ``request`` and post it; errors are posted, never raised."""
        first = self.loaded is None
        try:
            view = self._compute(generation, request, post, cancelled)
        except Cancelled:
            return
        except InputError as exc:
            if not cancelled():
                post(RequestFailed(generation, exc.message, first))
            return
        except Exception as exc:  # a bug: show it in the app instead of crashing it
            self.last_traceback = traceback.format_exc()
            if not cancelled():
                post(
                    RequestFailed(generation, f"internal error: {type(exc).__name__}: {exc}", first)
                )
            return
        if not cancelled():
            post(ViewReady(generation, view))
            self._attribute(generation, request, view, post, cancelled)

    def _attribute(
        self, generation: int, request: Request, view: View, post: Post, cancelled: IsCancelled
    ) -> None:
        """Attribution of a view already on screen (a backward pass and a batched integration:
        the attention shows first); posts ``AttributionReady`` with the completed view."""
        sample_key = (str(request.sample), request.index)
        if (
            not self.options.attribution
            or view.attention is None
            or view.attribution is not None
            or self.prepared_key != sample_key
            or cancelled()
        ):
            return
        loaded, prepared = self.loaded, self.prepared

        def attribute() -> View:
            from fga_tui import engine
            from fga_tui.diagnostics.attribution import attribution_parts
            from fga_tui.oom import retry_on_cpu

            att, used = retry_on_cpu(  # a backward pass: the likeliest to fill a shared GPU
                lambda m: engine.run_attribution(m, prepared, request.ablation, trace=view.trace),
                loaded,
                lambda line: self._oom(generation, 0, post, line),
            )
            if used is not loaded:
                with self._lock:
                    self.loaded = used
            trace, report, _ = attribution_parts(view.trace, view.report, att, verdicts=True)
            return view.with_attribution(trace, report)

        post(Progress(generation, 1, 1, "attributing"))
        try:
            done = run_abandonable(attribute, cancelled)
        except Cancelled:
            return
        except Exception as exc:  # the attention view stays; say why attribution is missing
            self.last_traceback = traceback.format_exc()
            if not cancelled():
                post(RequestFailed(generation, f"attribution: {type(exc).__name__}: {exc}", False))
            return
        key = (str(request.sample), request.index, request.ablation)
        with self._lock:
            if self.views.get(key) is view:
                self.views[key] = done
        if not cancelled():
            post(AttributionReady(generation, view, done))

    def _step(
        self,
        generation: int,
        step: int,
        post: Post,
        cancelled: IsCancelled,
        fn: Callable[[], T],
    ) -> tuple[T, float]:
        if cancelled():
            raise Cancelled
        post(Progress(generation, step + 1, len(STEPS), STEPS[step]))
        start = time.perf_counter()
        value = run_abandonable(fn, cancelled)
        return value, time.perf_counter() - start

    def _compute(
        self, generation: int, request: Request, post: Post, cancelled: IsCancelled
    ) -> View:
        opts = self.options
        key = (str(request.sample), request.index, request.ablation)
        with self._lock:
            cached = self.views.get(key)
        if cached is not None and self.loaded is not None:
            return cached
        timings: dict[str, float] = {}

        if self.loaded is None:

            def load() -> tuple[Any, Any]:
                from fga_tui import engine
                from fga_tui.oom import free_cuda, is_oom

                engine.configure_threads(reserve_one_core=True)

                def on(device: str) -> Any:
                    return engine.load_model(
                        opts.checkpoint,
                        device=device,
                        trust=opts.trust,
                        fga_heads=opts.fga_heads,
                        cm_heads=opts.cm_heads,
                    )

                try:
                    loaded = on(opts.device)
                except Exception as exc:
                    if not is_oom(exc):
                        raise
                    loaded = None
                if loaded is None:  # the GPU is full (another job): the CPU still answers
                    free_cuda()
                    self._oom(generation, 0, post, "GPU out of memory: loading on the CPU")
                    loaded = on("cpu")
                baseline = None
                if opts.baseline is not None:
                    from fga_tui.diagnostics.audit import load_baseline

                    baseline = load_baseline(str(opts.baseline), trust=opts.trust)
                return loaded, baseline

            (loaded, baseline), took = self._step(generation, 0, post, cancelled, load)
            with self._lock:
                if cancelled():
                    raise Cancelled
                self.loaded, self.baseline = loaded, baseline
                self.audit_result = None  # the audit belongs to the weights: redo for new ones
                self._load_s = took
        loaded = self.loaded
        timings["load"] = self._load_s or 0.0

        sample_key = (str(request.sample), request.index)
        prepared = self.prepared if self.prepared_key == sample_key else None
        if prepared is None:
            initial = (request.sample, request.index) == (opts.sample, opts.index)

            def prepare() -> Any:
                from fga_tui import engine

                sample = engine.load_sample(
                    request.sample, index=request.index, max_atoms=opts.max_atoms
                )
                return engine.prepare_sample(
                    loaded,
                    sample,
                    tokens_path=opts.tokens if initial else None,
                    text_model=opts.text_model,
                    vocab_mappings=opts.vocab_mappings,
                )

            prepared, timings["prepare"] = self._step(generation, 1, post, cancelled, prepare)
            with self._lock:
                if cancelled():
                    raise Cancelled
                self.prepared, self.prepared_key = prepared, sample_key

        def trace(loaded: Any) -> Any:
            from fga_tui import engine

            return engine.run_trace(loaded, prepared, request.ablation)

        traced, timings["trace"] = self._step(
            generation, 2, post, cancelled, self._on_cpu_after_oom(generation, 2, post, trace)
        )

        def diagnose(loaded: Any) -> Any:
            from fga_tui.diagnostics.report import diagnose as run

            return run(
                loaded,
                prepared,
                ablation=request.ablation,
                baseline=self.baseline,
                baseline_path=None if opts.baseline is None else str(opts.baseline),
                run_ablations=opts.run_ablations,
                audit=opts.audit,
                stopwords=self.stopword_set(),
                trace=traced,
                audit_result=self.audit_result,
                attribution=False,  # computed after the view is on screen (``_attribute``)
            )

        diagnosis, timings["diagnose"] = self._step(
            generation, 3, post, cancelled, self._on_cpu_after_oom(generation, 3, post, diagnose)
        )
        self.audit_result = diagnosis.audit
        loaded = self.loaded

        def build() -> View:
            from fga_tui.trace import Ablation
            from fga_tui.tui.view import view_from_diagnosis

            meta = {
                "checkpoint": str(opts.checkpoint),
                "layout": loaded.info.layout,
                "sample_path": str(request.sample),
                "index": request.index,
                "device": str(loaded.device)
                + ("" if self.device_note is None else f" ({self.device_note})"),
                "timings": timings,
                "input_choices": [
                    s
                    for s in loaded.stage_names(Ablation(no_fusion=request.ablation.no_fusion))
                    if s != "fga"
                ],
                "has_fusion": bool(loaded.config.fusion_indices),
            }
            return view_from_diagnosis(diagnosis, prepared, meta)

        view, timings["view"] = self._step(generation, 4, post, cancelled, build)
        with self._lock:
            if cancelled():
                raise Cancelled
            self.views.put(key, view)
        return view

    def _oom(self, generation: int, step: int, post: Post, line: str) -> None:
        """Say that the GPU ran out of memory and the work goes on on the CPU (status bar)."""
        self.device_note = "GPU out of memory"
        post(Progress(generation, step + 1, len(STEPS), line))

    def _on_cpu_after_oom(
        self, generation: int, step: int, post: Post, fn: Callable[[Any], T]
    ) -> Callable[[], T]:
        """``fn(self.loaded)``; on CUDA out-of-memory, free it, move the model to the CPU for
        good (a shared GPU that was full once will be again) and run ``fn`` there."""

        def run() -> T:
            from fga_tui.oom import retry_on_cpu

            value, used = retry_on_cpu(
                fn, self.loaded, lambda line: self._oom(generation, step, post, line)
            )
            if used is not self.loaded:
                with self._lock:
                    self.loaded = used
            return value

        return run

    def count(self, path: Path, post: Post, cancelled: IsCancelled) -> None:
        """Post how many samples ``path`` holds (silently nothing when it cannot be read)."""
        try:
            n = run_abandonable(lambda: count_samples(path, self.options.max_atoms), cancelled)
        except (Cancelled, InputError, OSError):
            return
        if not cancelled():
            post(SampleCount(path, n))
