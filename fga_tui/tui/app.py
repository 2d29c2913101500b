"""The Textual app: panes over one ``View``, keys that move a ``Cursor``, a session in workers.

Import cost matters here: this module imports Textual and numpy, never torch or the engine, so
the first frame (with a loading state) paints in a fraction of a second; the session's worker
imports torch afterwards. Every result carries a generation id and stale ones are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on, work
from textual.app import App, ComposeResult, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState, get_current_worker

from fga_tui.diagnostics.severity import Severity
from fga_tui.io.errors import InputError
from fga_tui.tui.gc_policy import GcPolicy
from fga_tui.tui.messages import (
    AttributionReady,
    Progress,
    RequestFailed,
    SampleCount,
    SnapshotFailed,
    SnapshotWritten,
    ViewReady,
)
from fga_tui.tui.session import Request, Session, SessionOptions
from fga_tui.tui.state import MODES, WORD_MODES, Cursor
from fga_tui.tui.textual_leaks import Footer, forget_dead_styles
from fga_tui.tui.themes import CYCLE as THEMES
from fga_tui.tui.widgets.atoms import HEADER, AtomList
from fga_tui.tui.widgets.heatmap import Heatmap
from fga_tui.tui.widgets.scrubber import CurvePlot, StageStrip
from fga_tui.tui.widgets.status import StatusBar, status_text
from fga_tui.tui.widgets.verdicts import VerdictPanel
from fga_tui.tui.widgets.words import TopWords

if TYPE_CHECKING:
    from fga_tui.trace import Ablation
    from fga_tui.tui.view import View

WIDE = 120
#: Imported by the panes on first use (the curves, the words pane, the ANSI plot parser):
#: imported before ``gc.freeze`` so that their module objects are frozen too. They are imported
#: with the process's real stdout in place: plotext binds ``sys.stdout`` at import
#: (``from sys import stdout``), and binding Textual's print capture would keep the whole app
#: alive after it closes (a 300-key session left ~130,000 objects behind).
WARM_IMPORTS = (
    "plotext",
    "rich.ansi",
    "textual.scrollbar",
    "concurrent.futures.thread",
    "fga_tui.diagnostics.words",
    "fga_tui.diagnostics.grounding",
    "fga_tui.structure.features",
)
#: Focusable panes in Tab order: (container id, the widget that takes focus, key).
PANES = (
    ("atoms-pane", "atoms", "1"),
    ("heat-pane", "heatmap", "2"),
    ("words-pane", "words", "3"),
    ("scrub-pane", "strip", "4"),
    ("verdict-pane", "verdicts", "5"),
)


class FgaApp(App[None]):
    """fga-tui: why do all atoms read the same words?"""

    TITLE = "fga-tui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    ALLOW_IN_MAXIMIZED_VIEW = "Footer, StatusBar, #banner"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left,h", "step(-1)", "Stage", key_display="←", tooltip="previous stage"),
        Binding("right,l", "step(1)", "Stage", key_display="→", tooltip="next stage", show=False),
        Binding("home", "jump(0)", "First", show=False, tooltip="first stage"),
        Binding("end", "jump(-1)", "Last", show=False, tooltip="last stage"),
        Binding("up,k", "atom(-1)", "Atom", key_display="↑", tooltip="previous atom"),
        Binding("down,j", "atom(1)", "Atom", key_display="↓", tooltip="next atom", show=False),
        Binding(
            "left_square_bracket", "column(-1)", "Col", show=False, tooltip="heat-map column left"
        ),
        Binding(
            "right_square_bracket", "column(1)", "Col", show=False, tooltip="heat-map column right"
        ),
        Binding("c", "cycle_mode", "Corr", tooltip="cycle correlation: centred / raw / cosine"),
        Binding(
            "H", "cycle_head", "Head", show=False, tooltip="cycle attention heads: average, 0, 1, …"
        ),
        Binding(
            "v",
            "toggle_counterfactual",
            "CF",
            show=False,
            tooltip="words: counterfactual attention of the current stage",
        ),
        Binding(
            "w",
            "toggle_stopwords",
            "Stopwords",
            show=False,
            tooltip="words: hide stopwords and punctuation",
        ),
        Binding(
            "g",
            "cycle_words",
            "Attr",
            show=False,
            tooltip="words: attention → attribution → both (two bars per word)",
        ),
        Binding(
            "i",
            "pick_intervention",
            "Intervene",
            tooltip="interventions: no-fusion, fga-from, mean-ablate, patch, no-text, clear",
        ),
        Binding(
            "f",
            "toggle_fusion",
            "Fusion",
            show=False,
            tooltip="intervention no-fusion: bypass middle fusion",
        ),
        Binding(
            "a",
            "pick_attention_stage",
            "Attn from",
            show=False,
            tooltip="intervention: pick the stage feeding the attention (fga-from)",
        ),
        Binding("tab", "app.focus_next", "Pane", show=False, tooltip="focus the next pane"),
        Binding(
            "shift+tab", "app.focus_previous", "Pane", show=False, tooltip="focus the previous pane"
        ),
        *[
            Binding(
                key,
                f"focus_pane('{pid}')",
                "Pane",
                show=False,
                tooltip="focus a pane: 1 atoms, 2 heat map, 3 words, 4 stages, 5 verdicts",
            )
            for pid, _, key in PANES
        ],
        Binding("pageup", "page(-1)", "Page", show=False, tooltip="focused pane: a page up / back"),
        Binding(
            "pagedown",
            "page(1)",
            "Page",
            show=False,
            tooltip="focused pane: a page down / on (verdicts: also ↑ ↓ Home End)",
        ),
        Binding("z", "maximise", "Zoom", tooltip="maximise the focused pane (z or Esc restores)"),
        Binding("escape", "restore", "Restore", show=False, tooltip="restore a maximised pane"),
        Binding("s", "snapshot", "Snap", tooltip="export a snapshot directory"),
        Binding("o", "open_sample", "Open", show=False, tooltip="open another sample"),
        Binding("n", "other_sample(1)", "Next", show=False, tooltip="next sample of the file"),
        Binding("p", "other_sample(-1)", "Prev", show=False, tooltip="previous sample of the file"),
        Binding("t", "cycle_theme", "Theme", show=False, tooltip="cycle themes (incl. ansi)"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="all keys"),
        Binding("q", "quit", "Quit", tooltip="quit (also during a trace)"),
        Binding(
            "ctrl+p",
            "command_palette",
            "Palette",
            show=False,
            tooltip="command palette: every action",
        ),
    ]

    def __init__(
        self,
        options: SessionOptions | None = None,
        *,
        session: Session | None = None,
        theme: str | None = None,
        frozen_timings: str | None = None,
        settings_path: Path | None = None,
    ) -> None:
        super().__init__()
        self._t0 = time.perf_counter()
        self._gc = GcPolicy(before_thaw=forget_dead_styles)
        if session is None:
            if options is None:
                raise ValueError("FgaApp needs options or a session")
            from fga_tui.tui.engine_process import make_session

            session = make_session(options)
        self.session: Session | Any = session
        self.view: View | None = None
        self.cursor = Cursor()
        self.busy: str | None = "starting"
        self.error: str | None = None
        self.sample_counts: dict[str, int] = {}
        self.snapshot_dir = session.options.snapshot_dir
        self.frozen_timings = frozen_timings
        self.first_paint_s: float | None = None
        self.last_snapshot: Path | None = None
        self._request: Request = session.initial_request()  # the latest one asked for
        self._pending: dict[int, Request] = {}
        self._shown: Request | None = None  # the one behind the view on screen
        self._stopwords: frozenset[str] | None = None
        self._initial_theme = theme
        self.settings_path = settings_path  # where `t` remembers the theme (None: nowhere)
        self._theme_note: Any = None
        self._title_cache: dict[str, tuple[str, str]] = {}

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="banner", markup=False)
        with Grid(id="body"):
            with Vertical(id="atoms-pane", classes="pane"):
                yield Static(HEADER, id="atoms-header")
                yield AtomList(id="atoms")
            with Vertical(id="heat-pane", classes="pane"):
                yield Heatmap(id="heatmap")
            with Vertical(id="words-pane", classes="pane"):
                yield TopWords(id="words")
            with Vertical(id="scrub-pane", classes="pane"):
                yield StageStrip(id="strip")
                yield CurvePlot(id="curves")
            with Vertical(id="verdict-pane", classes="pane"):
                yield VerdictPanel(id="verdicts")
        yield StatusBar(id="status")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        if self._initial_theme:
            self.theme = self._initial_theme
        self.query_one("#atoms", AtomList).focus()
        if self.session.options.stopwords is not None:
            # --stopwords: the words pane starts without them, and `w` toggles that same list.
            try:
                words = self.session.stopword_set() or set()
            except InputError as exc:
                self.notify(exc.message, title="Stopwords", severity="warning")
            else:
                self._stopwords = frozenset(words)
                self.query_one("#words", TopWords).stopwords = self._stopwords
                self.cursor = self.cursor.with_(stopwords=True)
        self._titles()
        self._update_status()
        self._responsive()
        self.query_one("#body").loading = True
        self._handle_signals()
        self.call_after_refresh(self._first_paint)

    def _handle_signals(self) -> None:
        """SIGTERM/SIGHUP/SIGINT leave like ``q`` (the driver restores the terminal: main
        screen, no mouse reporting, cooked tty) with exit code 128 + signal."""
        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests), or a platform without these signals

    def _on_signal(self, sig: int) -> None:
        self.workers.cancel_group(self, "engine")
        self.workers.cancel_group(self, "count")
        self.session.shutdown()
        self.exit(return_code=128 + int(sig))

    def _first_paint(self) -> None:
        self.first_paint_s = time.perf_counter() - self._t0
        self._submit(self._request)
        # Before any view: the modules the panes import on first use are imported now, so
        # the collection policy freezes them with the app (plotext alone is ~10,000 objects
        # every full collection would otherwise walk); see ``gc_policy``.
        with (
            contextlib.redirect_stdout(sys.__stdout__),
            contextlib.redirect_stderr(sys.__stderr__),
        ):
            for name in WARM_IMPORTS:
                importlib.import_module(name)
        self._gc.install()
        self.set_interval(0.5, self._gc.tick)

    def on_unmount(self) -> None:
        self._gc.uninstall()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self._gc.touched()  # not idle: no long collection now
        await super().on_event(event)

    def on_resize(self) -> None:
        self._responsive()

    def _responsive(self) -> None:
        self.screen.set_class(self.size.width >= WIDE, "-wide")

    def watch_theme(self, theme: str) -> None:
        if not self.is_mounted:
            return
        heat = self.query_one("#heatmap", Heatmap)
        heat.ansi = theme.startswith("ansi")
        heat.refresh()
        self.query_one("#curves", CurvePlot).refresh()

    # --- requests and results -----------------------------------------------------------------

    def _submit(self, request: Request) -> None:
        """Start (or supersede) the engine worker for ``request``."""
        self._request = request
        generation = self.session.next_generation()
        self._pending = {generation: request}
        self.busy = "starting"
        self.error = None
        self._update_status()
        self._compute(generation, request)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="engine",
        description="load, trace and diagnose",
    )
    def _compute(self, generation: int, request: Request) -> None:
        worker = get_current_worker()
        session = self.session

        def cancelled() -> bool:
            return worker.is_cancelled or generation != session.generation

        session.compute(generation, request, self.post_message, cancelled)

    @work(
        thread=True, exclusive=True, exit_on_error=False, group="count", description="count samples"
    )
    def _count(self, path: Path) -> None:
        worker = get_current_worker()
        self.session.count(path, self.post_message, lambda: worker.is_cancelled)

    def on_progress(self, message: Progress) -> None:
        if message.generation != self.session.generation:
            return
        self.busy = f"{message.what} ({message.step}/{message.total})"
        self._update_status()

    def on_view_ready(self, message: ViewReady) -> None:
        if message.generation != self.session.generation:
            return  # a stale result: a newer request is on its way
        self.busy = None
        self.error = None
        self._shown = self._pending.get(message.generation, self._request)
        old = self.view
        view = message.view
        self.view = view
        self.query_one("#body").loading = False
        self.cursor = self._carry_cursor(old, view)
        self._show_all()
        if old is not None and old is not view:
            from fga_tui.tui.engine_process import trim_heap

            trim_heap()  # a view the cache let go of: give its pages back (~1 ms)
        if str(view.sample_path) not in self.sample_counts:
            self._count(Path(view.sample_path))

    def _carry_cursor(self, old: View | None, view: View) -> Cursor:
        """Keep the stage (by name) and atom when the new view allows it."""
        cur = self.cursor
        stage = 0
        if old is not None and cur.stage < len(old.stages):
            name = old.stages[cur.stage]
            stage = (
                view.stages.index(name)
                if name in view.stages
                else min(cur.stage, len(view.stages) - 1)
            )
        same_atoms = old is not None and old.labels == view.labels
        atom = cur.atom if same_atoms else 0
        column = (
            cur.column
            if same_atoms and old is not None and (len(old.groups) == len(view.groups))
            else default_column(view)
        )
        head = cur.head if cur.head is None or cur.head < view.num_heads else None
        return cur.with_(stage=stage, atom=min(atom, view.num_atoms - 1), column=column, head=head)

    def on_attribution_ready(self, message: AttributionReady) -> None:
        """Attribution arrived for the view on screen: swap it in, keep the cursor."""
        if message.generation != self.session.generation:
            return
        self.busy = None
        with contextlib.suppress(NoMatches, ScreenStackError):  # it came in while leaving
            if self.view is message.old:
                self.view = message.view
                self.query_one("#atoms", AtomList).show(self.view, self.cursor)
                self.query_one("#words", TopWords).show(self.view, self.cursor)
            self._update_status()

    def on_request_failed(self, message: RequestFailed) -> None:
        if message.generation != self.session.generation:
            return
        self.busy = None
        self.query_one("#body").loading = False
        if self.view is None:
            from fga_tui.tui.screens.error import ErrorScreen

            self.error = "failed"
            self._update_status()
            title = (
                "Cannot load the checkpoint"
                if self.session.loaded is None
                else ("Cannot show this sample")
            )
            self.push_screen(ErrorScreen(message.message, title=title), self._after_error)
            return
        self.error = message.message
        if self._shown is not None:
            self._request = self._shown  # keys act on what is on screen, not on what failed
        self._update_status()
        self.notify(message.message, title="Request failed", severity="error", timeout=10)

    def _after_error(self, choice: str | None) -> None:
        if choice == "quit":
            self.action_quit()
        elif choice == "retry":
            self._submit(self._request)
        elif choice == "open":
            self.action_open_sample()

    def on_sample_count(self, message: SampleCount) -> None:
        self.sample_counts[str(message.path)] = message.count
        with contextlib.suppress(NoMatches, ScreenStackError):  # it came in while leaving
            self._update_status()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A bug escaped a worker: show it instead of crashing (the session catches most)."""
        if event.state == WorkerState.ERROR and event.worker.group in ("engine", "snapshot"):
            self.busy = None
            self.error = f"internal error: {event.worker.error}"
            self._update_status()
            self.notify(str(event.worker.error), title="Internal error", severity="error")

    # --- painting -----------------------------------------------------------------------------

    def _titles(self) -> None:
        """Pane titles; only changed ones are assigned (each assignment repaints a pane)."""
        view, cur = self.view, self.cursor
        titles: dict[str, tuple[str, str]] = {
            "#atoms-pane": ("atoms" if view is None else f"atoms ({view.num_atoms})", ""),
            "#heat-pane": (
                f"{cur.mode} corr",
                ""
                if view is None or view.aggregate is None
                else f"by {view.aggregate} ({view.num_atoms}→{len(view.groups)})",
            ),
            "#words-pane": ("top words", ""),
            "#scrub-pane": ("stages", ""),
            "#verdict-pane": ("verdicts", ""),
        }
        if view is not None:
            head = "avg" if cur.head is None else f"h{cur.head}"
            titles["#words-pane"] = (
                f"top words · {head}"
                + (" · CF" if cur.counterfactual else "")
                + (" · -stop" if cur.stopwords else "")
                + ("" if cur.words == WORD_MODES[0] else f" · {cur.words}"),
                "",
            )
            if view.ablation.active:
                titles["#scrub-pane"] = (f"stages · INTERVENED {view.ablation.describe()}", "")
            counts: dict[str, int] = {}
            for v in view.verdicts:
                counts[v.severity] = counts.get(v.severity, 0) + 1
            titles["#verdict-pane"] = (
                "verdicts "
                + " ".join(f"{s.glyph}{counts[s]}" for s in Severity.descending() if s in counts),
                "",
            )
        for selector, (title, subtitle) in titles.items():
            if self._title_cache.get(selector) != (title, subtitle):
                self._title_cache[selector] = (title, subtitle)
                pane = self.query_one(selector)
                pane.border_title = title
                pane.border_subtitle = subtitle
        ablation = view is not None and view.ablation.active
        if ablation and view is not None:
            self.query_one("#banner", Static).update(banner_text(view.ablation.describe()))
        if self.screen.has_class("-ablation") != ablation:
            self.screen.set_class(ablation, "-ablation")

    def _update_status(self) -> None:
        count = None
        if self.view is not None:
            count = self.sample_counts.get(str(self.view.sample_path))
        try:
            bar = self.query_one("#status", StatusBar)
        except (NoMatches, ScreenStackError):  # the engine's messages outlive a leaving app
            return
        bar.update(
            status_text(
                self.view,
                busy=self.busy,
                error=self.error,
                sample_count=count,
                frozen_timings=self.frozen_timings,
            )
        )

    def _show_all(self) -> None:
        view, cur = self.view, self.cursor
        self.query_one("#atoms", AtomList).show(view, cur)
        self.query_one("#heatmap", Heatmap).show(view, cur)
        self.query_one("#words", TopWords).show(view, cur)
        self.query_one("#strip", StageStrip).show(view, cur)
        self.query_one("#curves", CurvePlot).show(view, cur)
        self.query_one("#verdicts", VerdictPanel).show(view)
        self._titles()
        self._update_status()

    def _move(self, **changes: Any) -> None:
        """Apply a cursor change and repaint only the panes that depend on it."""
        view = self.view
        if view is None:
            return
        old = self.cursor
        new = old.with_(**changes)
        if new == old:
            return
        self.cursor = new
        if self.error is not None and self.busy is None:
            self.error = None  # a failed request's message stays only until the next action
            self._update_status()
        atoms = self.query_one("#atoms", AtomList)
        heat = self.query_one("#heatmap", Heatmap)
        words = self.query_one("#words", TopWords)
        if new.stage != old.stage:
            atoms.show(view, new)
            heat.show(view, new)
            self.query_one("#strip", StageStrip).show(view, new)
            self.query_one("#curves", CurvePlot).show(view, new)
            if new.counterfactual:
                words.show(view, new)
        if new.atom != old.atom:
            atoms.show(view, new)
            heat.show(view, new)
            words.show(view, new)
        if new.column != old.column or new.mode != old.mode:
            heat.show(view, new)
        if (new.head, new.counterfactual, new.stopwords, new.words) != (
            old.head,
            old.counterfactual,
            old.stopwords,
            old.words,
        ):
            words.show(view, new)
        self._titles()

    # --- actions: navigation ------------------------------------------------------------------

    def action_step(self, delta: int) -> None:
        if self.view is not None:
            last = len(self.view.stages) - 1
            self._move(stage=min(max(0, self.cursor.stage + delta), last))

    def action_jump(self, where: int) -> None:
        if self.view is not None:
            self._move(stage=0 if where == 0 else len(self.view.stages) - 1)

    def action_atom(self, delta: int) -> None:
        if self.view is not None:
            self._move(atom=min(max(0, self.cursor.atom + delta), self.view.num_atoms - 1))

    def action_column(self, delta: int) -> None:
        if self.view is not None:
            groups = len(self.view.groups)
            self._move(column=min(max(0, self.cursor.column + delta), groups - 1))

    # --- actions: panes -----------------------------------------------------------------------

    def action_focus_pane(self, pane: str) -> None:
        for pane_id, widget_id, _ in PANES:
            if pane_id == pane:
                if self.screen.maximized is not None:
                    self.screen.minimize()
                self.query_one(f"#{widget_id}").focus()

    def focused_pane(self) -> str | None:
        """The id of the pane holding the focus (None when a modal or nothing has it)."""
        focused = self.focused
        while focused is not None:
            if focused.id in {p for p, _, _ in PANES}:
                return focused.id
            focused = focused.parent  # type: ignore[assignment]
        return None

    def action_page(self, delta: int) -> None:
        """Page through the focused pane: atoms and heat-map rows, ranked words, stages."""
        pane = self.focused_pane()
        view = self.view
        if view is None or pane is None:
            return
        if pane in ("atoms-pane", "heat-pane"):
            widget = self.query_one("#atoms" if pane == "atoms-pane" else "#heatmap")
            page = max(1, widget.size.height - (3 if pane == "heat-pane" else 0))
            self.action_atom(delta * page)
        elif pane == "words-pane":
            self.query_one("#words", TopWords).scroll_words(delta)
        elif pane == "scrub-pane":
            self.action_step(delta * 5)
        else:
            verdicts = self.query_one("#verdicts", VerdictPanel)
            (verdicts.scroll_page_down if delta > 0 else verdicts.scroll_page_up)(animate=False)

    def action_maximise(self) -> None:
        """Give the focused pane the whole screen (again: back to every pane)."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        pane = self.focused_pane()
        if pane is not None:
            screen.maximized = self.query_one(f"#{pane}")

    def action_restore(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()

    def action_cycle_mode(self) -> None:
        self._move(mode=MODES[(MODES.index(self.cursor.mode) + 1) % len(MODES)])

    def action_cycle_head(self) -> None:
        view = self.view
        if view is None or view.num_heads == 0:
            return
        head = self.cursor.head
        nxt = 0 if head is None else (None if head + 1 >= view.num_heads else head + 1)
        self._move(head=nxt)

    def action_toggle_counterfactual(self) -> None:
        self._move(counterfactual=not self.cursor.counterfactual)

    def action_cycle_words(self) -> None:
        self._move(words=WORD_MODES[(WORD_MODES.index(self.cursor.words) + 1) % len(WORD_MODES)])

    def action_toggle_stopwords(self) -> None:
        if self._stopwords is None:
            from fga_tui.diagnostics.words import load_stopwords

            self._stopwords = load_stopwords()
            self.query_one("#words", TopWords).stopwords = self._stopwords
        self._move(stopwords=not self.cursor.stopwords)

    @on(AtomList.Clicked)
    def _atom_clicked(self, event: AtomList.Clicked) -> None:
        self._move(atom=event.atom)

    @on(Heatmap.CellClicked)
    def _cell_clicked(self, event: Heatmap.CellClicked) -> None:
        if self.view is not None:
            self._move(atom=self.view.groups[event.row][0], column=event.column)

    # --- actions: engine ----------------------------------------------------------------------

    def _current_ablation(self) -> Ablation:
        return self._request.ablation

    def set_ablation(self, ablation: Ablation) -> None:
        """Re-run the current sample under ``ablation`` (cached views come back at once)."""
        self._submit(Request(self._request.sample, self._request.index, ablation))

    def action_toggle_fusion(self) -> None:
        from fga_tui.trace import Ablation

        view = self.view
        if view is None:
            return
        if not view.has_fusion:
            self.notify("this checkpoint has no middle fusion to bypass", severity="warning")
            return
        cur = self._current_ablation()
        fga_from = cur.fga_from
        if not cur.no_fusion and fga_from is not None and fga_from.startswith("fusion."):
            fga_from = None
        self.set_ablation(Ablation(no_fusion=not cur.no_fusion, fga_from=fga_from))

    def action_pick_attention_stage(self) -> None:
        from fga_tui.tui.screens.stage_picker import StagePickerScreen

        view = self.view
        if view is None:
            return
        if view.attention is None:
            self.notify("this checkpoint has no fine-grained attention", severity="warning")
            return
        choices = list(view.input_choices) or [s for s in view.stages if s != "fga"]
        # Open on what feeds the attention now: the fga-from stage, or the model's own input.
        active = self._current_ablation().fga_from
        self.push_screen(StagePickerScreen(choices, view.fga_input, active), self._picked_stage)

    def _picked_stage(self, choice: str | None) -> None:
        from fga_tui.tui.screens.stage_picker import DEFAULT

        if choice is None:
            return
        self.feed_attention_from(None if choice == DEFAULT else choice)

    def feed_attention_from(self, stage: str | None) -> None:
        from fga_tui.trace import Ablation

        cur = self._current_ablation()
        self.set_ablation(Ablation(no_fusion=cur.no_fusion, fga_from=stage))

    def action_clear_ablation(self) -> None:
        from fga_tui.trace import Ablation

        self.set_ablation(Ablation())

    def picker_context(self) -> Any:
        """What the intervention picker offers here: the cursor's stage and atom."""
        from fga_tui.tui.screens.interventions import PickerContext

        view = self.view
        assert view is not None
        atom = self.cursor.atom
        orbit = view.orbit_of[atom]
        source = next(
            (i for i in range(view.num_atoms) if view.orbit_of[i] != orbit),
            (atom + 1) % view.num_atoms,
        )
        return PickerContext(
            current=self._current_ablation(),
            stage=view.stages[self.cursor.stage],
            atom=view.labels[atom],
            source=view.labels[source],
            has_fusion=view.has_fusion,
            has_text=bool(view.tokens),
        )

    def action_pick_intervention(self) -> None:
        from fga_tui.tui.screens.interventions import InterventionScreen

        if self.view is None:
            self.notify("wait for the first trace", severity="warning")
            return
        self.push_screen(InterventionScreen(self.picker_context()), self._picked_intervention)

    def _picked_intervention(self, chosen: Ablation | None) -> None:
        if chosen is not None and chosen != self._current_ablation():
            self.set_ablation(chosen)

    def intervene(self, spec: str) -> None:
        """Add one spec (the command palette's shortcuts); a bad one is a warning toast."""
        from fga_tui.tui.screens.interventions import apply_choice

        try:
            self.set_ablation(apply_choice(self._current_ablation(), spec))
        except InputError as exc:
            self.notify(exc.reason, title="Not an intervention", severity="warning")

    def action_open_sample(self) -> None:
        from fga_tui.tui.screens.open_sample import OpenSampleScreen

        self.push_screen(
            OpenSampleScreen(str(self._request.sample), self._request.index), self._opened
        )

    def _opened(self, choice: tuple[Path, int] | None) -> None:
        if choice is not None:
            path, index = choice
            self._submit(Request(path, index, self._current_ablation()))

    def action_other_sample(self, delta: int) -> None:
        if self.view is None:  # the first sample is still loading: nothing to step from
            self.notify("wait for the first sample to load", severity="warning")
            return
        req = self._request
        index = req.index + delta
        count = self.sample_counts.get(str(req.sample))
        if index < 0 or (count is not None and index >= count):
            where = "first" if index < 0 else "last"
            self.notify(f"this is the {where} sample of {req.sample.name}", severity="warning")
            return
        self._submit(Request(req.sample, index, req.ablation))

    # --- actions: snapshot, help, theme, quit -------------------------------------------------

    def action_snapshot(self) -> None:
        if self.view is None:
            self.notify("nothing to export yet", severity="warning")
            return
        svg = self.export_screenshot(title=f"fga-tui {self.view.sample_id}")
        self._write_snapshot(self.view, svg, self.snapshot_dir)

    @work(thread=True, exit_on_error=False, group="snapshot", description="write snapshot")
    def _write_snapshot(self, view: View, svg: str, base: Path) -> None:
        from fga_tui.snapshot import write_snapshot

        try:
            path = write_snapshot(
                base,
                trace=view.trace,
                report=view.report,
                svg=svg,
                sample_id=view.sample_id or "sample",
            )
        except InputError as exc:
            self.post_message(SnapshotFailed(exc.message))
            return
        self.post_message(SnapshotWritten(path))

    def on_snapshot_written(self, message: SnapshotWritten) -> None:
        self.last_snapshot = message.path
        self.notify(f"snapshot written to {message.path}", title="Snapshot")

    def on_snapshot_failed(self, message: SnapshotFailed) -> None:
        self.notify(message.message, title="Snapshot failed", severity="error", timeout=10)

    def action_help(self) -> None:
        from fga_tui.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen([b for b in self.BINDINGS if isinstance(b, Binding)]))

    def action_cycle_theme(self) -> None:
        from textual.notifications import Notification, Notify

        current = self.theme if self.theme in THEMES else THEMES[-1]
        self.theme = THEMES[(THEMES.index(current) + 1) % len(THEMES)]
        message = f"theme: {self.theme}"
        if self.settings_path is not None:
            from fga_tui.settings import save_setting

            try:
                save_setting("theme", self.theme, self.settings_path)
                message += " (remembered)"
            except InputError as exc:
                message += f" (not remembered: {exc.reason})"
        # One toast for the theme, replaced on each press instead of stacking.
        old = self._theme_note
        if old is not None and old in self._notifications:
            self._unnotify(old)
        self._theme_note = Notification(message, "", "information", 2)
        self.post_message(Notify(self._theme_note))

    def action_quit(self) -> None:  # type: ignore[override]
        """Quit now, even mid-trace: the engine step is abandoned, not awaited."""
        self.workers.cancel_group(self, "engine")
        self.workers.cancel_group(self, "count")
        self.session.shutdown()
        self.exit()

    def screen_text(self) -> str:
        """The current screen as plain text (tests, debugging over SSH)."""
        import io

        from rich.console import Console

        console = Console(
            width=self.size.width,
            height=self.size.height,
            file=io.StringIO(),
            record=True,
            color_system=None,
            legacy_windows=False,
        )
        console.print(
            self.screen._compositor.render_update(full=True, screen_stack=self._background_screens)
        )
        return console.export_text()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        from fga_tui.tui.commands import app_commands

        yield from super().get_system_commands(screen)
        yield from app_commands(self)


def banner_text(described: str) -> str:
    """The screen's first line under an intervention: what is changed, and what it means."""
    return f" INTERVENED: {described} · not the model as trained · i: change or clear"


def default_column(view: View) -> int:
    """Start the heat-map cursor on the first row of the second orbit: a cross-orbit pair."""
    return min(view.separators) if view.separators else min(1, len(view.groups) - 1)
