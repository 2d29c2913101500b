"""Atom list: label, element, orbit (+ Wyckoff letter), coordination, feature norm at the stage,
grounding (the atom's attention share on words naming its own element; ``–`` where undefined).

A ``ScrollView`` that renders only visible lines, so a stage step at 500 atoms repaints a
screenful of rows instead of updating 500 table cells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from fga_tui.tui.state import Cursor

if TYPE_CHECKING:
    from fga_tui.tui.view import View

HEADER = f" {'atom':<6} {'el':<2} {'orb':>3} {'CN':>2} {'‖x‖':>5} {'gr':>4}"


def atom_row(view: View, cursor: Cursor, i: int) -> str:
    """One row of the list as plain text (also what tests read)."""
    orbit = int(view.orbit_of[i])
    wy = view.wyckoffs[i] if i < len(view.wyckoffs) else "?"
    cn = "?" if view.coordination is None else str(int(view.coordination[i]))
    norm = float(view.norms[cursor.stage, i])
    g = None if view.grounding is None else float(view.grounding[i])
    ground = "   –" if g is None or g != g else f"{g:4.2f}"  # g != g: NaN
    return (
        f" {view.labels[i]:<6.6} {view.elements[i]:<2.2} {orbit + 1:>2}{wy:<1.1} "
        f"{cn:>2} {norm:>5.3g} {ground}"
    )


class AtomList(ScrollView, can_focus=True):
    """Scrollable atom rows; the selected atom is highlighted and kept in view."""

    DEFAULT_CSS = """
    AtomList { height: 1fr; scrollbar-size-vertical: 1; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"atoms--cursor", "atoms--orbit-end"}

    class Clicked(Message):
        """An atom row was clicked."""

        def __init__(self, atom: int) -> None:
            super().__init__()
            self.atom = atom

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._view: View | None = None
        self._cursor = Cursor()
        self._styles_for: tuple | None = None
        self._styles: tuple[Style, Style, Style, Style] = (Style(),) * 4

    def _row_styles(self) -> tuple[Style, Style, Style, Style]:
        """(plain, cursor, orbit end, cursor + orbit end), recomputed when the theme changes."""
        key = (self.app.theme, self.has_focus)
        if key != self._styles_for:
            base = self.rich_style
            cursor = base + self.get_component_rich_style("atoms--cursor")
            end = self.get_component_rich_style("atoms--orbit-end")
            self._styles = (base, cursor, base + end, cursor + end)
            self._styles_for = key
        return self._styles

    def show(self, view: View | None, cursor: Cursor) -> None:
        """Point the list at a view and cursor; repaint only what changed."""
        changed_view = view is not self._view
        old = self._cursor
        self._view, self._cursor = view, cursor
        if view is None:
            self.virtual_size = Size(0, 0)
            self.refresh()
            return
        if changed_view:
            self.virtual_size = Size(len(HEADER), view.num_atoms)
        self._keep_visible(cursor.atom)
        if changed_view or old.stage != cursor.stage:
            self.refresh()
        elif old.atom != cursor.atom:
            self.refresh_lines(old.atom - int(self.scroll_offset.y))
            self.refresh_lines(cursor.atom - int(self.scroll_offset.y))

    def _keep_visible(self, atom: int) -> None:
        top = int(self.scroll_offset.y)
        height = max(1, self.scrollable_content_region.height)
        if atom < top:
            self.scroll_to(y=atom, animate=False, immediate=True)
        elif atom >= top + height:
            self.scroll_to(y=atom - height + 1, animate=False, immediate=True)

    def render_line(self, y: int) -> Strip:
        view = self._view
        row = y + int(self.scroll_offset.y)
        width = self.scrollable_content_region.width
        styles = self._row_styles()
        if view is None or row >= view.num_atoms:
            return Strip.blank(width, styles[0])
        text = atom_row(view, self._cursor, row)
        selected = row == self._cursor.atom
        if selected:
            text = "▶" + text[1:]
        end = row + 1 < view.num_atoms and view.orbit_of[row + 1] != view.orbit_of[row]
        style = styles[int(selected) + 2 * int(end)]
        x = int(self.scroll_offset.x)
        return Strip([Segment(text.ljust(x + width)[x : x + width], style)], width)

    def on_click(self, event: events.Click) -> None:
        if self._view is None:
            return
        row = event.y + int(self.scroll_offset.y)
        if 0 <= row < self._view.num_atoms:
            self.post_message(self.Clicked(row))
