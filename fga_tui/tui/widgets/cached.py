"""A widget whose lines are built as Rich ``Text`` once per state and kept as ``Strip`` s.

Textual's default path turns a widget's renderable into strips on every repaint; for a pane
that repaints on every stage step that conversion dominated the step latency (~10 ms at
160×48 on a loaded 2-core node). Here a pane states what its picture depends on
(``cache_key``) and how to draw it (``build``); ``render_line`` serves cached strips. The last
``KEEP`` pictures are kept, so scrubbing back over stages already seen costs no build at all.

Kept pictures are stored as their segment lists, not as ``Strip`` s: a Textual ``Strip`` owns
seven small caches, and hundreds of kept strips per pane were most of what every full garbage
collection of the UI process walked (20-60 ms stalls mid-scrub on a 500-atom cell). Strips are
made again, cheaply, only for the picture on screen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget


def text_to_strips(text: Text, console: Console, base: Style) -> list[Strip]:
    """One strip per line of ``text``, with ``base`` (the widget's colours) underneath."""
    strips = []
    for line in text.split("\n", allow_blank=True):
        line.no_wrap = True
        segments = Segment.apply_style(line.render(console, end=""), base)
        strips.append(Strip(list(segments)))
    return strips


KEEP = 32
#: one kept picture: each line's segments and its cell length
Picture = tuple[tuple[list[Segment], int], ...]


def pack(strips: list[Strip]) -> Picture:
    """Strips as plain segment lists (see the module docstring for why)."""
    return tuple((list(strip), strip.cell_length) for strip in strips)


def unpack(picture: Picture) -> list[Strip]:
    return [Strip(segments, length) for segments, length in picture]


class CachedLines(Widget):
    """Subclasses implement ``cache_key`` and ``build``; call ``refresh()`` when state changes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._strips: list[Strip] = []
        self._strips_key: Hashable = None
        self._base = Style()
        self._pictures: OrderedDict[Hashable, Picture] = OrderedDict()

    def cache_key(self) -> Hashable:
        """What the picture depends on (subclasses define it)."""
        raise TypeError(f"{type(self).__name__} must define cache_key()")

    def build(self) -> Text:
        """The picture as Rich text (subclasses define it)."""
        raise TypeError(f"{type(self).__name__} must define build()")

    def lines(self) -> list[Strip]:
        """The current picture (built if its key changed)."""
        key = (self.cache_key(), self.size, self.app.theme)
        if key == self._strips_key:
            return self._strips
        picture = self._pictures.get(key)
        if picture is None:
            self._base = self.rich_style  # computing it is not free: once per picture
            width = self.size.width
            strips = [
                strip.crop_extend(0, width, self._base)
                for strip in text_to_strips(self.build(), self.app.console, self._base)
            ]
            self._pictures[key] = pack(strips)
            if len(self._pictures) > KEEP:
                self._pictures.popitem(last=False)
        else:
            self._pictures.move_to_end(key)
            strips = unpack(picture)
        self._strips, self._strips_key = strips, key
        return strips

    def render_line(self, y: int) -> Strip:
        strips = self.lines()
        if y < len(strips):
            return strips[y]
        return Strip.blank(self.size.width, self._base)

    def plain_text(self) -> str:
        """The picture as plain text (tests)."""
        return "\n".join(strip.text for strip in self.lines())
