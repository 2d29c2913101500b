"""Layer scrubber: every stage in order with the current one marked, its numbers, and curves
across stages (plotext) with the current stage marked.

plotext keeps global figure state, so figures are built on the UI thread only. A build costs
~10 ms; the rendered ``Text`` is cached per (size, stage, view, theme) and the other stages are
pre-rendered one per idle tick after a view arrives or the pane is resized, so stepping is a
cache lookup.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from fga_tui.tui.state import Cursor
from fga_tui.tui.widgets.cached import CachedLines, Picture, pack, text_to_strips, unpack

if TYPE_CHECKING:
    from fga_tui.tui.view import View

MARKERS = ("•", "+", "x")
WIDE_PLOT = 90
CACHE_SIZE = 48


def short_stage(stage: str) -> str:
    """Axis label: ``alignn.2`` -> ``a2``, ``fusion.2`` -> ``f2``, ``gcn.0`` -> ``g0``."""
    if stage == "embed":
        return "emb"
    if stage == "fga":
        return "fga"
    head, _, idx = stage.partition(".")
    return f"{head[:1]}{idx}"


def _fmt(x: float, spec: str) -> str:
    return "—" if math.isnan(x) else format(x, spec)


def stage_values(view: View, stage: int) -> str:
    """The current stage's numbers in one line."""
    c = view.curves
    return (
        f"{stage + 1}/{len(view.stages)} {view.stages[stage]} · "
        f"x-orb {_fmt(c['xorbit'][stage], '+.3f')} · MAD {_fmt(c['mad'][stage], '.3f')} · "
        f"erank {_fmt(c['erank'][stage], '.2f')}"
    )


class StageStrip(CachedLines, can_focus=True):
    """Two lines: the stage chips (current reversed, attention input marked ◆) and the numbers."""

    DEFAULT_CSS = """
    StageStrip { text-wrap: nowrap; text-overflow: clip; height: 2; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._view: View | None = None
        self._cursor = Cursor()

    def show(self, view: View | None, cursor: Cursor) -> None:
        self._view, self._cursor = view, cursor
        self.refresh()

    def cache_key(self) -> tuple:
        return ((self._view.uid if self._view is not None else ""), self._cursor.stage)

    def build(self) -> Text:
        view = self._view
        if view is None:
            return Text("no trace yet", style="dim")
        width = self.size.width
        cur = self._cursor.stage
        chips = []
        for i, stage in enumerate(view.stages):
            label = stage + ("◆" if stage == view.fga_input else "")
            if i == cur:
                style = Style(reverse=True, bold=True)
            elif stage.startswith("fusion."):
                style = Style(italic=True, underline=True)
            else:
                style = Style(dim=True)
            chips.append((f" {label} ", style))
        # A window of chips around the current stage when they do not all fit.
        lengths = [len(t) for t, _ in chips]
        start, end = 0, len(chips)
        while sum(lengths[start:end]) + 2 > width and end - start > 1:
            if cur - start > end - 1 - cur:
                start += 1
            else:
                end -= 1
        out = Text(no_wrap=True, overflow="crop")
        out.append("‹" if start > 0 else " ", Style(dim=True))
        for text, style in chips[start:end]:
            out.append(text, style)
        out.append("›" if end < len(chips) else " ", Style(dim=True))
        out.append("\n")
        out.append(stage_values(view, cur), Style(bold=True))
        return out


def _series(values: Sequence[float]) -> tuple[list[int], list[float]]:
    xs = [i for i, v in enumerate(values) if not math.isnan(v)]
    return xs, [float(values[i]) for i in xs]


def build_plot(view: View, stage: int, width: int, height: int) -> str:
    """The curves as an ANSI string (plotext; UI thread only)."""
    import plotext as plt

    fig = plt.figure
    fig.clear.all()
    x = list(range(len(view.stages)))
    ticks = [short_stage(s) for s in view.stages]
    if width >= WIDE_PLOT:
        fig.subplots(1, len(view.curves))
        for k, key in enumerate(view.curves):
            sub = fig.subplot(1, k + 1)
            sub.theme("simple")
            xs, ys = _series(view.curves[key])
            if xs:
                sub.draw(sub.signal(xs, ys, marker=MARKERS[k]).lines())
            sub.line(stage, "v")
            sub.title(view.curve_labels[key])
            sub.ruler("x").ticks(x[:: max(1, len(x) // 6)], ticks[:: max(1, len(x) // 6)])
            sub.legend(active=False)
    else:
        fig.theme("simple")
        for k, key in enumerate(view.curves):
            xs, ys = _series(view.curves[key])
            if not xs:
                continue
            lo, hi = min(ys), max(ys)
            scaled = [0.5 if hi == lo else (y - lo) / (hi - lo) for y in ys]
            fig.draw(fig.signal(xs, scaled, marker=MARKERS[k]).lines())
        fig.line(stage, "v")
        fig.ruler("y").ticks([0, 1], ["min", "max"])
        fig.ruler("x").ticks(x, ticks)
        fig.legend(active=False)
    fig.plot_size(width, height)
    return fig.build().string()


#: Shorter curve names for narrow panes.
SHORT_LABELS = {"xorbit": "x-orbit corr", "mad": "MAD", "erank": "eff. rank"}
TWO_ORBITS = "2 orbits: x-orbit corr ≈ −1 by construction"
SCALED = "(each scaled to its range)"


def legend_items(view: View, width: int) -> list[tuple[str, Style]]:
    """The curve legend's items: long names when they fit on one line, short ones otherwise.

    With exactly two orbits of identical atoms, centring over the atoms leaves the two orbits'
    features anti-parallel, so the cross-orbit centred correlation is −1 at every stage: the
    legend says so rather than let a flat −1 look like a finding.
    """
    notes: list[tuple[str, Style]] = []
    if len(view.orbits) == 2:
        notes.append((TWO_ORBITS, Style(italic=True)))
    notes.append((SCALED, Style(dim=True)))
    for labels in (view.curve_labels, SHORT_LABELS):
        items = [
            (f"{MARKERS[k]} {labels.get(key, key)}", Style()) for k, key in enumerate(view.curves)
        ]
        if sum(len(t) + 2 for t, _ in items) <= width:
            break
    return items + notes


def legend_lines(view: View, width: int) -> list[Text]:
    """The legend wrapped to ``width`` (an item is never cut)."""
    lines: list[Text] = []
    for text, style in legend_items(view, width):
        if lines and lines[-1].cell_len + 2 + len(text) <= width:
            lines[-1].append("  ")
            lines[-1].append(text, style)
        else:
            lines.append(Text(text, style=style, no_wrap=True, overflow="ellipsis"))
    return lines


class CurvePlot(Widget):
    """Curves across stages with the current stage marked; cached per size and stage."""

    DEFAULT_CSS = """
    CurvePlot { text-wrap: nowrap; text-overflow: clip; height: 1fr; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._view: View | None = None
        self._cursor = Cursor()
        self._cache: OrderedDict[tuple, Picture] = OrderedDict()
        self._current: list[Strip] = []
        self._current_key: tuple | None = None
        self._prewarm: list[int] = []
        self._blank = Strip.blank(0)

    def show(self, view: View | None, cursor: Cursor) -> None:
        fresh = view is not self._view
        self._view, self._cursor = view, cursor
        self.refresh()
        if fresh and view is not None:
            self._schedule_prewarm()

    def on_resize(self) -> None:
        self.refresh()
        self._schedule_prewarm()

    def _key(self, stage: int) -> tuple:
        return (
            (self._view.uid if self._view is not None else ""),
            stage,
            self.size.width,
            self.size.height,
            self.app.theme,
        )

    def _lines(self, stage: int) -> list[Strip]:
        """The picture of ``stage`` as strips (kept as the one on screen)."""
        key = self._key(stage)
        if key != self._current_key:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                strips = unpack(cached)
            else:
                strips = self._build(stage, key)
            self._current, self._current_key = strips, key
        return self._current

    def _build(self, stage: int, key: tuple) -> list[Strip]:
        """Draw ``stage`` and keep it packed (the prewarm builds without showing)."""
        assert self._view is not None
        width, height = self.size.width, self.size.height
        wide = width >= WIDE_PLOT
        if wide:  # each curve has its own titled plot; only the caveat needs a line
            two = len(self._view.orbits) == 2
            legend = [Text(TWO_ORBITS, style=Style(italic=True), no_wrap=True)] if two else []
        else:
            legend = legend_lines(self._view, width)
        if len(legend) > 1 and height - len(legend) < 6:
            # A short pane keeps the curve names and the two-orbit caveat; "each scaled to
            # its range" is in ? help.
            legend = [line for line in legend if line.plain != SCALED][:2]
            if len(legend) > 1 and TWO_ORBITS not in legend[1].plain:
                legend = legend[:1]
        plot_h = height - len(legend)
        text = Text.from_ansi(
            build_plot(self._view, stage, width, max(3, plot_h)), no_wrap=True, overflow="crop"
        )
        if legend:
            text = Text("\n", no_wrap=True).join([*legend, text])
        base = self.rich_style
        strips = [
            s.crop_extend(0, width, base) for s in text_to_strips(text, self.app.console, base)
        ]
        self._blank = Strip.blank(width, base)
        self._cache[key] = pack(strips)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return strips

    def _schedule_prewarm(self) -> None:
        if self._view is None:
            return
        self._prewarm = list(range(len(self._view.stages)))
        self.call_after_refresh(self._prewarm_one)

    def _prewarm_one(self) -> None:
        if self._view is None or self.size.width < 10 or self.size.height < 4:
            return
        while self._prewarm:
            stage = self._prewarm.pop(0)
            key = self._key(stage)
            if key not in self._cache:
                self._build(stage, key)
                self.set_timer(0.01, self._prewarm_one)
                return

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self._view is None or self.size.width < 20 or self.size.height < 4:
            if y == 0 and self._view is not None:
                return Strip(
                    list(
                        Text("(too small for the curves)", style="dim").render(
                            self.app.console, end=""
                        )
                    )
                ).crop_extend(0, width, self.rich_style)
            return Strip.blank(width, self.rich_style)
        strips = self._lines(self._cursor.stage)
        if y < len(strips):
            return strips[y]
        return self._blank if self._blank.cell_length == width else Strip.blank(width)
