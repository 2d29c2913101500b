"""Top words of the selected atom: ranked words with weight bars, head average or one head,
actual attention or the counterfactual attention re-read from the current stage; or ranked by
attribution (gradient-weighted attention), or both (two bars per word: attention, attribution).
Words that name the selected atom's own element are marked ``◆``.

The last line answers the question behind the tool: does this atom read the same words as the
others? (Same top-5 set as how many atoms, and in how many orbits.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text

from fga_tui.tui.state import ATTRIBUTION, Cursor
from fga_tui.tui.widgets.cached import CachedLines

if TYPE_CHECKING:
    from fga_tui.tui.view import View

EIGHTHS = " ▏▎▍▌▋▊▉█"
SHARED_K = 5


def fit(word: str, width: int) -> str:
    """``word`` in exactly ``width`` cells, cut with an ellipsis when longer."""
    if len(word) <= width:
        return word.ljust(width)
    return word[: max(0, width - 1)] + "…"


OWN_MARK = "◆"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of ``fraction`` (0..1) of ``width`` cells, in eighths."""
    fraction = max(0.0, min(1.0, fraction))
    units = round(fraction * width * 8)
    full, part = divmod(units, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width)


def source_stage(view: View, cursor: Cursor) -> str | None:
    """The stage whose counterfactual attention is shown (None = the actual attention;
    ``ATTRIBUTION`` = ranked by attribution)."""
    if cursor.words == "attribution" and view.attribution is not None:
        return ATTRIBUTION
    if not cursor.counterfactual:
        return None
    stage = view.stages[cursor.stage]
    return stage if stage in view.counterfactual else None


def describe_source(view: View, cursor: Cursor) -> str:
    """Which attention the words come from, short enough for an 80-column pane."""
    if cursor.words == "attribution" and view.attribution is not None:
        return "attribution (grad × attn)"
    if cursor.counterfactual:
        stage = view.stages[cursor.stage]
        if stage in view.counterfactual:
            return f"counterfactual from {stage}"
        return f"no counterfactual at {stage}"
    return f"actual, input {view.fga_input}" if view.fga_input else "actual"


def _value(x: float, attribution: bool) -> str:
    """Attention weights read as 0.123; attribution (gradient x weight) spans decades."""
    return f"{x:7.1e}" if attribution else f"{x:5.3f}"


class TopWords(CachedLines, can_focus=True):
    """Ranked words of the selected atom."""

    DEFAULT_CSS = """
    TopWords { text-wrap: nowrap; text-overflow: clip; height: 1fr; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._view: View | None = None
        self._cursor = Cursor()
        self.stopwords: frozenset[str] | None = None
        self.word_offset = 0  # first rank shown (PgDn/PgUp when the pane has the focus)

    def rows(self) -> int:
        """How many ranked words the pane shows at once."""
        return max(1, self.size.height - 2)

    def scroll_words(self, pages: int) -> None:
        """Show the next (or previous) page of ranked words; clamped to the ranking."""
        total = len(self._ranked_upto(10_000))
        rows = self.rows()
        self.word_offset = max(0, min(self.word_offset + pages * rows, max(0, total - rows)))
        self.refresh()

    def show(self, view: View | None, cursor: Cursor) -> None:
        if view is not self._view or cursor.atom != self._cursor.atom:
            self.word_offset = 0  # a new atom's ranking starts at its top word
        self._view, self._cursor = view, cursor
        self.refresh()

    def ranked(self) -> list[tuple[str, float]]:
        """The selected atom's words as shown (for tests and the snapshot)."""
        view, cursor = self._view, self._cursor
        if view is None:
            return []
        all_atoms = self._all(view, cursor)
        return [] if all_atoms is None else all_atoms[cursor.atom]

    def _ranked_upto(self, k: int) -> list[tuple[str, float]]:
        view, cursor = self._view, self._cursor
        if view is None:
            return []
        all_atoms = self._all(view, cursor, k)
        return [] if all_atoms is None else all_atoms[cursor.atom]

    def _all(
        self, view: View, cursor: Cursor, k: int | None = None
    ) -> list[list[tuple[str, float]]] | None:
        if k is None:
            # Enough for the rows on screen from the current offset, in steps of 10 so that
            # paging reuses the view's cached ranking.
            k = max(10, -(-(self.word_offset + self.rows()) // 10) * 10)
        return view.top_words(
            source_stage(view, cursor),
            cursor.head,
            k=k,
            stopwords=self.stopwords if cursor.stopwords else None,
        )

    def shared_summary(self) -> str:
        view, cursor = self._view, self._cursor
        if view is None:
            return ""
        all_atoms = self._all(view, cursor)
        if not all_atoms or view.num_atoms < 2:
            return ""
        mine = {w for w, _ in all_atoms[cursor.atom][:SHARED_K]}
        same = [
            i
            for i, words in enumerate(all_atoms)
            if i != cursor.atom and {w for w, _ in words[:SHARED_K]} == mine
        ]
        orbits = {int(view.orbit_of[i]) for i in same} - {int(view.orbit_of[cursor.atom])}
        long = (
            f"same top-{SHARED_K} as {len(same)}/{view.num_atoms - 1} other atoms "
            f"({len(orbits)} other orbit{'s' if len(orbits) != 1 else ''})"
        )
        if len(long) <= self.size.width:
            return long
        return f"same top-{SHARED_K}: {len(same)}/{view.num_atoms - 1}, {len(orbits)} orb"

    def cache_key(self) -> tuple:
        cur = self._cursor
        source = None if self._view is None else source_stage(self._view, cur)
        return (
            (self._view.uid if self._view is not None else ""),
            cur.atom,
            cur.head,
            cur.counterfactual,
            source,
            cur.stopwords,
            cur.words,
            self.word_offset,
        )

    def _own_words(self, view: View, atom: int, words: list[tuple[str, float]]) -> set[str]:
        """The words (of ``words``) that name ``atom``'s element."""
        from fga_tui.diagnostics.grounding import word_elements

        element = view.elements[atom]
        return {w for w, _ in words if element in word_elements(w, view.elements)}

    def _attribution_of(self, view: View, cursor: Cursor) -> dict[str, float] | None:
        """Every word's attribution for the selected atom (the second bar of "both")."""
        if view.attribution is None:
            return None
        ranked = view.top_words(
            ATTRIBUTION,
            None,
            k=len(view.tokens),
            stopwords=self.stopwords if cursor.stopwords else None,
        )
        return None if ranked is None else dict(ranked[cursor.atom])

    def build(self) -> Text:
        view, cursor = self._view, self._cursor
        if view is None:
            return Text("waiting for the trace…", style="dim")
        width = self.size.width
        out = Text(no_wrap=True, overflow="crop")
        label = view.labels[cursor.atom]
        source = describe_source(view, cursor)
        if len(label) + 3 + len(source) > width:
            source = source.split(",")[0]  # "actual, input gcn.3" -> "actual"
        out.append(label, Style(bold=True))
        out.append(f" · {source}\n", Style(italic=True))
        if view.attention is None:
            out.append("no fine-grained attention in this checkpoint (FGA_MISSING)")
            return out
        if cursor.words != "attention" and view.attribution is None:
            out.append("attribution: computing… (attention meanwhile)\n", Style(dim=True))
        words = self.ranked()
        if not words:
            out.append("no attention from this stage", Style(dim=True))
            return out
        rows = max(1, self.rows() - (cursor.words != "attention" and view.attribution is None))
        if self.word_offset >= len(words):
            self.word_offset = 0
        top = words[self.word_offset : self.word_offset + rows]
        own = self._own_words(view, cursor.atom, top)
        second = self._attribution_of(view, cursor) if cursor.words == "both" else None
        peak = max((w for _, w in words), default=1.0) or 1.0  # bars stay comparable by page
        wlen = min(max(len(w) for w, _ in top), max(6, width // 3))
        rank_w = max(2, len(str(self.word_offset + len(top))))
        if second is None:
            bar_w = max(3, width - wlen - rank_w - 2 - 9)
        else:
            bar_w = max(2, (width - wlen - rank_w - 2 - 17) // 2)
            peak2 = max(second.values(), default=1.0) or 1.0
        for rank, (word, weight) in enumerate(top, self.word_offset + 1):
            out.append(f"{rank:>{rank_w}}", Style(dim=True))
            out.append(OWN_MARK if word in own else " ", Style(bold=True, color="yellow"))
            out.append(f"{fit(word, wlen)} ", Style(bold=word in own))
            out.append(bar(weight / peak, bar_w), Style(color="cyan" if rank > 1 else "green"))
            out.append(" " + _value(weight, source_stage(view, cursor) == ATTRIBUTION))
            if second is not None:
                value = second.get(word, 0.0)
                out.append(" " + bar(value / peak2, bar_w), Style(color="magenta"))
                out.append(" " + _value(value, True))
            out.append("\n")
        out.append(self.shared_summary(), Style(italic=True))
        return out
