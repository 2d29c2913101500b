"""Correlation heat map of the current stage: numbers or glyphs, never colour alone.

Cells show the value as a number when there is room (" 0.98", "-0.31", decimal points
aligned) and otherwise as a glyph
whose density encodes it (legend below the map), so the map reads in 256 colours, in the ansi
themes and under NO_COLOR. Atoms are ordered by symmetry orbit with separators between orbits
(a rule line when there is room, an underlined last row otherwise). Large structures arrive
aggregated by orbit or element (``View.aggregate``) and the pane says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual import events
from textual.message import Message

from fga_tui.tui.state import Cursor
from fga_tui.tui.widgets.cached import CachedLines
from fga_tui.tui.widgets.scrubber import short_stage
from fga_tui.tui.widgets.words import fit

if TYPE_CHECKING:
    from fga_tui.tui.view import View

#: (lower bound, glyph), highest first; the legend is built from this table.
LEVELS = (
    (0.95, "█"),
    (0.8, "▓"),
    (0.5, "▒"),
    (0.15, "░"),
    (-0.15, "·"),
    (-0.5, "-"),
    (-math.inf, "="),
)
LEGEND = ("█≥.95 ▓≥.8 ▒≥.5 ░≥.15", "·≈0 -<-.15 =<-.5")
#: The legend's items, highest first; wrapped to the pane's width (or into the help screen).
LEGEND_ITEMS = tuple(" ".join(LEGEND).split())
LEGEND_HINT = "glyph legend: ? help"
COLOUR_LEGEND = "colour: −1 blue, 0 grey, +1 red"
#: Characters per numeric cell: a separator and ``fmt5``'s five.
NUMBER_CELL = 6


def wrap_items(items: tuple[str, ...], width: int) -> list[str]:
    """Items joined by spaces into lines of at most ``width`` (an item is never split)."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 1 + len(item) <= width:
            lines[-1] += " " + item
        else:
            lines.append(item)
    return lines


#: ANSI colour per level (for the ansi themes: the terminal's own palette).
ANSI_COLORS = ("magenta", "red", "bright_red", "yellow", "bright_black", "cyan", "blue")
NEG = (59, 96, 220)
MID = (140, 140, 140)
POS = (220, 60, 50)


def level(value: float) -> int:
    """Index into ``LEVELS`` (NaN -> the neutral level)."""
    if math.isnan(value):
        return 4
    for i, (lo, _) in enumerate(LEVELS):
        if value >= lo:
            return i
    return len(LEVELS) - 1


def glyph(value: float) -> str:
    return "?" if math.isnan(value) else LEVELS[level(value)][1]


def fmt5(value: float) -> str:
    """A value in [-1, 1] in five characters, decimal points aligned: `` 0.98``, ``-1.00``."""
    if math.isnan(value):
        return "    ?"
    return f"{max(-9.99, min(value, 9.99)):5.2f}"


def rgb(value: float) -> tuple[int, int, int]:
    """Diverging blue - grey - red for [-1, 1]."""
    if math.isnan(value):
        return MID
    t = max(-1.0, min(1.0, value))
    end = POS if t >= 0 else NEG
    a = abs(t)
    return tuple(round(m + (e - m) * a) for m, e in zip(MID, end, strict=True))  # type: ignore[return-value]


def cell_style(value: float, *, ansi: bool, background: bool) -> Style:
    """The cell's colours (cached at 0.01 resolution: parsing colours is not free)."""
    q = 0 if math.isnan(value) else round(max(-1.0, min(1.0, value)) * 100)
    return _cell_style(q, ansi, background)


@lru_cache(maxsize=1024)
def _cell_style(q: int, ansi: bool, background: bool) -> Style:
    value = q / 100
    if ansi:
        return Style(color=ANSI_COLORS[level(value)], bold=abs(value) >= 0.95)
    r, g, b = rgb(value)
    if background:
        dark = (0.299 * r + 0.587 * g + 0.114 * b) < 140
        return Style(bgcolor=f"rgb({r},{g},{b})", color="white" if dark else "black")
    return Style(color=f"rgb({r},{g},{b})")


@dataclass(frozen=True)
class Layout:
    """How the visible part of the map is laid out (kept for mouse hit-testing)."""

    cell: int  # characters per cell: NUMBER_CELL (number), 2 or 1 (glyph)
    label: int
    rows: tuple[int, ...]  # group index per screen row (-1 = separator row)
    cols: tuple[int, ...]  # group index per screen column after the label (-1 = separator)
    header: bool


def choose_layout(view: View, cursor_row: int, cursor_col: int, width: int, height: int) -> Layout:
    """The densest readable layout that fits; a window around the cursor when nothing fits."""
    G = len(view.groups)
    seps = sorted(view.separators)
    label = min(max((len(n) for n in view.group_names), default=1), 9) + 1
    rows_avail = max(1, height - 3)  # column header, readout, legend
    for cell in (NUMBER_CELL, 2, 1):
        need_w = label + G * cell + (len(seps) if cell < NUMBER_CELL else 0)
        if need_w <= width and rows_avail >= G:
            break
    full_w = label + G * cell + (len(seps) if cell < NUMBER_CELL else 0) <= width
    full_h = rows_avail >= G
    # Columns: a window around the cursor when they do not all fit.
    if full_w:
        c0, nc = 0, G
    else:
        nc = max(1, (width - label) // cell)
        c0 = min(max(0, cursor_col - nc // 2), max(0, G - nc))
    cols: list[int] = []
    for g in range(c0, c0 + nc):
        if cell < NUMBER_CELL and g in view.separators and g != c0 and full_w:
            cols.append(-1)
        cols.extend([g] * cell)
    # Rows: rule lines between orbits when they fit too.
    if full_h and G + len(seps) <= rows_avail:
        rows: list[int] = []
        for g in range(G):
            if g in view.separators:
                rows.append(-1)
            rows.append(g)
    elif full_h:
        rows = list(range(G))
    else:
        r0 = min(max(0, cursor_row - rows_avail // 2), max(0, G - rows_avail))
        rows = list(range(r0, min(G, r0 + rows_avail)))
    return Layout(cell, label, tuple(rows), tuple(cols), header=height >= 4)


class Heatmap(CachedLines, can_focus=True):
    """N×N (or orbit×orbit) similarity at the current stage, with a highlighted cell."""

    DEFAULT_CSS = """
    Heatmap { text-wrap: nowrap; text-overflow: clip; height: 1fr; width: 1fr; }
    """

    class CellClicked(Message):
        """A cell was clicked: select its row's atom and its column."""

        def __init__(self, row: int, column: int) -> None:
            super().__init__()
            self.row = row
            self.column = column

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._view: View | None = None
        self._cursor = Cursor()
        self.ansi = False
        self._layout: Layout | None = None

    def show(self, view: View | None, cursor: Cursor) -> None:
        self._view, self._cursor = view, cursor
        self.refresh()

    def value(self, row: int, col: int) -> float:
        """The displayed value at heat-map row/column (group indices) for the current stage."""
        assert self._view is not None
        return float(self._view.matrices[self._cursor.mode][self._cursor.stage, row, col])

    def cursor_cell(self) -> tuple[int, int]:
        """(row, column) group indices of the highlighted cell."""
        view = self._view
        assert view is not None
        row = view.group_of(self._cursor.atom)
        col = min(max(0, self._cursor.column), len(view.groups) - 1)
        return row, col

    def readout(self) -> str:
        """The highlighted cell in words: ``Ba_0 × Hf_4 = +0.312``."""
        view = self._view
        if view is None:
            return ""
        row, col = self.cursor_cell()
        value = self.value(row, col)
        text = f"{view.group_names[row]} × {view.group_names[col]} = {value:+.3f}"
        if view.aggregate is not None:
            text += " (block mean)"
        elif row == col:
            text += " (self)"
        return text

    def cache_key(self) -> tuple:
        cur = self._cursor
        return (
            (self._view.uid if self._view is not None else ""),
            cur.stage,
            cur.mode,
            cur.atom,
            cur.column,
            self.ansi,
        )

    def build(self) -> Text:
        view = self._view
        if view is None:
            return Text("waiting for the trace…", style="dim")
        width, height = self.size.width, self.size.height
        row, col = self.cursor_cell()
        layout = choose_layout(view, row, col, width, height)
        self._layout = layout
        M = view.matrices[self._cursor.mode][self._cursor.stage]
        out = Text(no_wrap=True, overflow="crop")
        accent = Style(bold=True, underline=True)
        cursor_style = Style(reverse=True, bold=True)
        distinct = list(dict.fromkeys(c for c in layout.cols if c >= 0))
        numeric = layout.cell == NUMBER_CELL
        row_w = layout.label + (NUMBER_CELL * len(distinct) if numeric else len(layout.cols))
        if layout.header:
            stage = short_stage(view.stages[self._cursor.stage])
            out.append(f"{stage:<{layout.label}.{layout.label - 1}}", Style(italic=True))
            if numeric:
                for g in distinct:
                    name = view.group_names[g]
                    head = name if len(name) <= NUMBER_CELL - 1 else str(g)
                    out.append(f" {head:>5.5}", accent if g == col else Style(dim=True))
            else:
                for c in layout.cols:
                    out.append("▼" if c == col else " ", accent if c == col else Style())
            out.append("\n")
        last_in_orbit = {g - 1 for g in view.separators}
        underline_last = -1 not in layout.rows
        for r in layout.rows:
            if r < 0:
                out.append("─" * min(width, row_w), Style(dim=True))
                out.append("\n")
                continue
            name = view.group_names[r]
            style = Style(bold=True, reverse=True) if r == row else Style()
            if underline_last and r in last_in_orbit:
                style += Style(underline=True)
            out.append(fit(name, layout.label - 1), style)
            out.append(" ")
            if numeric:
                for c in distinct:
                    v = float(M[r, c])
                    sep = "│" if c in view.separators else " "
                    out.append(sep, Style(dim=True))
                    st = cell_style(v, ansi=self.ansi, background=True)
                    out.append(fmt5(v), cursor_style if (r, c) == (row, col) else st)
            else:
                prev = None
                for c in layout.cols:
                    if c < 0:
                        out.append("│", Style(dim=True))
                        continue
                    v = float(M[r, c])
                    st = (
                        cursor_style
                        if (r, c) == (row, col)
                        else cell_style(v, ansi=self.ansi, background=False)
                    )
                    ch = glyph(v)
                    if (r, c) == (row, col) and layout.cell == 2 and prev != c:
                        ch = "◆"
                    out.append(ch, st)
                    prev = c
            out.append("\n")
        readout = self.readout()
        if len(readout) > width:  # drop the "(self)" / "(block mean)" note before cutting
            readout = readout.split(" (")[0]
        out.append(fit(readout, width).rstrip(), Style(bold=True))
        spare = height - len(layout.rows) - (2 if layout.header else 1)
        if numeric:
            legend = [COLOUR_LEGEND] if spare >= 1 and len(COLOUR_LEGEND) <= width else []
        else:
            # The whole legend or a pointer to it (the help screen has it): never half of it.
            legend = wrap_items(LEGEND_ITEMS, width)
            if len(legend) > spare or any(len(line) > width for line in legend):
                legend = [LEGEND_HINT] if spare >= 1 and len(LEGEND_HINT) <= width else []
        for line in legend:
            out.append("\n")
            out.append(line, Style(dim=True))
        return out

    def on_click(self, event: events.Click) -> None:
        layout, view = self._layout, self._view
        if layout is None or view is None:
            return
        y = event.y - (1 if layout.header else 0)
        x = event.x - layout.label
        if not (0 <= y < len(layout.rows)) or x < 0:
            return
        r = layout.rows[y]
        if layout.cell == NUMBER_CELL:
            distinct = list(dict.fromkeys(c for c in layout.cols if c >= 0))
            idx = x // NUMBER_CELL
            c = distinct[idx] if idx < len(distinct) else -1
        else:
            c = layout.cols[x] if x < len(layout.cols) else -1
        if r >= 0 and c >= 0:
            self.post_message(self.CellClicked(r, c))
