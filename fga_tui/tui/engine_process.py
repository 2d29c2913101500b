"""The session's engine in a child process, so that its Python cannot stall the UI.

Diagnostics are numpy driven from Python loops; in a thread they hold the GIL for tens of
milliseconds at a time and the UI loop waits (key → frame stalls of 230-460 ms measured at 6 and
500 atoms). ``EngineProcess`` has the ``Session`` interface the app uses, but runs a ``Session``
in a child interpreter (``python -m fga_tui.tui.engine_process``, so the parent's ``__main__``
is never re-imported, whatever it is): the UI process never imports torch, its heap stays
small (a full garbage collection there is cheap), and the child competes with the UI only for
a core.

Protocol (pickled tuples over a socket pair, ``multiprocessing.connection.Connection``). The
first message is the ``SessionOptions``; then, to the child: ``("compute", gen,
request)``, ``("count", path)``, ``("quit",)``. From it: ``("progress", gen, step, total, what)``,
``("view", gen, view)``, ``("attribution", gen, view)`` (the shown view with its attribution),
``("failed", gen, message, first_load, traceback)``, ``("done", gen)``, ``("count", path, n)``.
A newer ``compute`` supersedes older ones (the child's ``Session`` abandons their steps). Views
are plain dataclasses of numpy arrays, pickled once; the last few are cached here.

Lifetime: the child ignores SIGINT (the UI decides what a Ctrl-C means) and exits as soon as its
pipe closes, so it never outlives the UI, even one killed with SIGKILL. ``close`` asks it to
quit and kills it if it does not within the timeout. A child that dies (a segfault, the OOM
killer) fails the request in flight with a message; the next request starts a new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from fga_tui.tui.messages import (
    AttributionReady,
    Progress,
    RequestFailed,
    SampleCount,
    ViewReady,
)
from fga_tui.tui.session import (
    POLL_S,
    STEPS,
    VIEW_CACHE,
    IsCancelled,
    Post,
    Request,
    Session,
    SessionOptions,
    ViewCache,
)

_DIED = "died"


class PickledReport:
    """A ``Report`` kept as its pickle until something reads it (a snapshot does).

    Unpickled in the UI process, a 500-atom report is tens of thousands of small objects; the
    allocations trigger a full garbage collection in the middle of painting the view (hundreds
    of ms measured on a loaded node). As one bytes object it costs the UI nothing."""

    def __init__(self, report: Any) -> None:
        self._blob = pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL)
        self._report: Any = None

    def __getstate__(self) -> bytes:
        return self._blob

    def __setstate__(self, blob: bytes) -> None:
        self._blob, self._report = blob, None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_blob", "_report"):
            raise AttributeError(name)
        if self._report is None:
            self._report = pickle.loads(self._blob)
        return getattr(self._report, name)


def _lean(view: Any) -> Any:
    """``view`` with its report as a ``PickledReport`` (same uid: the same view)."""
    if view.report is None or isinstance(view.report, PickledReport):
        return view
    return dataclasses.replace(view, report=PickledReport(view.report))


def _encode(message: Any) -> tuple:
    if isinstance(message, Progress):
        return ("progress", message.generation, message.step, message.total, message.what)
    if isinstance(message, ViewReady):
        return ("view", message.generation, _lean(message.view))
    if isinstance(message, RequestFailed):
        return ("failed", message.generation, message.message, message.first_load, None)
    if isinstance(message, AttributionReady):  # the UI process knows ``old``: not sent again
        return ("attribution", message.generation, _lean(message.view))
    if isinstance(message, SampleCount):
        return ("count", str(message.path), message.count)
    raise TypeError(f"cannot send {type(message).__name__}")


def trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``; elsewhere nothing): freed
    traces and matrices otherwise stay resident and RSS ratchets up over a long session."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def release_memory() -> None:
    """Collect cycles, then ``trim_heap``. In the child a full collection stalls nobody."""
    gc.collect()
    trim_heap()


def child_main(conn: Any) -> None:
    """The child's loop: one thread per request; exits when the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(5)  # the UI gets the core first when both want it: keys stay fast
    try:
        options = conn.recv()
    except (EOFError, OSError):
        os._exit(0)
    session = Session(options, cache_size=0)  # the UI process caches the views
    latest = [0]
    send_lock = threading.Lock()

    def send(item: tuple) -> None:
        try:
            with send_lock:
                conn.send(item)
        except (OSError, EOFError, BrokenPipeError):
            os._exit(0)  # the UI is gone

    def post(message: Any) -> None:
        item = _encode(message)
        if item[0] == "failed" and session.last_traceback:
            item = (*item[:4], session.last_traceback)
        send(item)

    def compute(generation: int, request: Request) -> None:
        session.compute(generation, request, post, lambda: generation != latest[0])
        send(("done", generation))
        release_memory()

    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        kind = command[0]
        if kind == "compute":
            latest[0] = max(latest[0], command[1])
            threading.Thread(target=compute, args=command[1:], daemon=True).start()
        elif kind == "count":
            path = Path(command[1])
            threading.Thread(
                target=session.count, args=(path, post, lambda: False), daemon=True
            ).start()
        elif kind == "quit":
            os._exit(0)


class EngineProcess:
    """``Session``'s interface for the app, backed by a ``Session`` in a child process."""

    def __init__(self, options: SessionOptions, cache_size: int = VIEW_CACHE) -> None:
        self.options = options
        self.generation = 0
        self.loaded: bool | None = None  # True once the child has loaded the checkpoint
        self.views = ViewCache(cache_size)
        self.last_traceback: str | None = None
        self.restarts = 0
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._inboxes: dict[Any, queue.Queue] = {}
        self._closing = False

    # --- the app's side (same as Session) ----------------------------------------------------

    def next_generation(self) -> int:
        self.generation += 1
        return self.generation

    def initial_request(self) -> Request:
        return Request(self.options.sample, self.options.index, self.options.ablation)

    def stopword_set(self) -> set[str] | None:
        """The ``--stopwords`` list (as ``Session.stopword_set``; read from the options)."""
        return Session.stopword_set(self)  # type: ignore[arg-type]

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def compute(
        self, generation: int, request: Request, post: Post, cancelled: IsCancelled
    ) -> None:
        """Ask the child for ``request``'s view and relay its messages until it is done."""
        key = (str(request.sample), request.index, request.ablation)
        cached = self.views.get(key)
        if cached is not None and self.loaded:
            post(ViewReady(generation, cached))
            return
        first = not self.loaded
        inbox = self._inbox(("gen", generation))
        try:
            if not self._send(("compute", generation, request)):
                post(RequestFailed(generation, self._died_message(), first))
                return
            shown = None  # the view posted for this request (attribution follows it)
            while not cancelled():
                try:
                    item = inbox.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                kind = item[0]
                if kind == "progress":
                    if item[2] > 1:
                        self.loaded = True
                    post(Progress(*item[1:]))
                elif kind == "view":
                    self.loaded = True
                    shown = item[2]
                    self.views.put(key, shown)
                    post(ViewReady(generation, shown))
                elif kind == "attribution" and shown is not None:
                    if self.views.get(key) is shown:
                        self.views.put(key, item[2])
                    post(AttributionReady(generation, shown, item[2]))
                    shown = item[2]
                elif kind == "failed":
                    self.last_traceback = item[4] or self.last_traceback
                    post(RequestFailed(generation, item[2], item[3]))
                    if shown is None:
                        return
                elif kind == "done":
                    return
                elif kind == _DIED:
                    if shown is None:
                        post(RequestFailed(generation, self._died_message(), first))
                    return
        finally:
            self._inboxes.pop(("gen", generation), None)

    def count(self, path: Path, post: Post, cancelled: IsCancelled) -> None:
        inbox = self._inbox(("count", str(path)))
        try:
            if not self._send(("count", str(path))):
                return
            while not cancelled():
                try:
                    item = inbox.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if item[0] == "count":
                    post(SampleCount(Path(item[1]), item[2]))
                return
        finally:
            self._inboxes.pop(("count", str(path)), None)

    def shutdown(self) -> None:
        """Ask the child to quit without waiting (the app is leaving)."""
        self._closing = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("quit",))

    def close(self, timeout: float = 1.0) -> None:
        """Stop the child: ask, wait up to ``timeout`` s, then kill it; always reaped."""
        self.shutdown()
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    # --- the child ----------------------------------------------------------------------------

    def _inbox(self, key: Any) -> queue.Queue:
        inbox: queue.Queue = queue.Queue()
        self._inboxes[key] = inbox
        return inbox

    def _send(self, command: tuple) -> bool:
        """Send ``command``, starting a child first when there is none (or it died)."""
        with self._lock:
            if self._closing:
                return False
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self.restarts += 1
                    self.loaded = None
                self._start()
            try:
                self._conn.send(command)
            except (OSError, ValueError):
                return False
            return True

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        # The child must import this very package (a checkout on PYTHONPATH, tests).
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # One malloc arena per request thread would fragment the heap over a long session.
        env.setdefault("MALLOC_ARENA_MAX", "2")
        proc = subprocess.Popen(
            [sys.executable, "-m", "fga_tui.tui.engine_process", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        conn = Connection(ours.detach())
        conn.send(self.options)
        self._proc, self._conn = proc, conn
        threading.Thread(
            target=self._read, args=(conn,), name="fga-tui-engine-reader", daemon=True
        ).start()

    def _read(self, conn: Any) -> None:
        """Route the child's messages to the request waiting for them, until the pipe closes."""
        while True:
            try:
                item = conn.recv()
            except (EOFError, OSError, ValueError):
                break
            except Exception:  # a message this side cannot read: the child is of no use
                self.last_traceback = traceback.format_exc()
                with contextlib.suppress(OSError):
                    conn.close()
                if self._proc is not None:
                    self._proc.kill()
                break
            key = ("count", item[1]) if item[0] == "count" else ("gen", item[1])
            inbox = self._inboxes.get(key)
            if inbox is not None:
                inbox.put(item)
        for inbox in list(self._inboxes.values()):
            inbox.put((_DIED,))

    def _died_message(self) -> str:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(0.5)  # reap it, to say how it ended
            except subprocess.TimeoutExpired:
                code = None
        how = "" if code is None else f" (exit code {code})" if code >= 0 else f" (signal {-code})"
        return f"the engine process stopped{how}; the next request starts a new one"


def make_session(options: SessionOptions) -> EngineProcess:
    """The app's session: the engine in a child process."""
    return EngineProcess(options)


__all__ = ["STEPS", "EngineProcess", "child_main", "make_session"]


if __name__ == "__main__":
    # Through the package, not ``__main__``: classes pickled here must name their module.
    from fga_tui.tui import engine_process

    engine_process.child_main(Connection(int(sys.argv[1])))
