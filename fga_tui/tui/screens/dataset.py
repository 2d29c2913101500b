"""The dataset screen: a scan's rows, worst first; filter by verdict code; Enter opens a row.

The screen dismisses with the chosen row's 0-based position (what the inspector's ``--index``
takes) or None; the app keeps the screen installed, so Escape in the inspector brings it back
with its filter and cursor as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from fga_tui.tui.dataset import DatasetRow, code_counts, filtered
from fga_tui.tui.textual_leaks import Footer

ALL = "__all__"
MARK = {"error": "✖ error", "warning": "▲ warning", "info": "● info", "failed": "✖ FAILED"}


class CodePickerScreen(ModalScreen[str | None]):
    """Pick a verdict code to filter by (or all rows); dismisses with the code, ALL or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]
    DEFAULT_CSS = """
    CodePickerScreen { align: center middle; }
    CodePickerScreen > Vertical {
        width: 56; height: auto; max-height: 90%; border: round $accent;
        background: $surface; padding: 0 1;
    }
    CodePickerScreen OptionList { height: auto; max-height: 24; }
    """

    def __init__(self, counts: Sequence[tuple[str, int]], total: int, current: str | None) -> None:
        super().__init__()
        self._counts = list(counts)
        self._total = total
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Show rows with verdict… (Enter picks, Esc cancels)"
            options = [Option(f"all rows ({self._total})", id=ALL)]
            options += [Option(f"{code} ({n})", id=code) for code, n in self._counts]
            yield OptionList(*options, id="codes")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        ids = [ALL, *(c for c, _ in self._counts)]
        if self._current in ids:
            options.highlighted = ids.index(self._current)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DatasetScreen(Screen[int | None]):
    """Rows sorted by severity; Enter opens the highlighted one in the inspector."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_row", "Open", tooltip="open the row in the inspector"),
        Binding("f,slash", "pick_code", "Filter", tooltip="show only rows with a verdict code"),
        Binding("a", "show_all", "All", tooltip="clear the filter"),
        Binding("escape", "back", "Back", tooltip="back to the inspector"),
        Binding("q", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    DatasetScreen #dataset-title { height: 1; padding: 0 1; background: $panel; }
    DatasetScreen #dataset-detail { height: 2; padding: 0 1; color: $text-muted; }
    DatasetScreen DataTable { height: 1fr; }
    """

    def __init__(self, rows: Sequence[DatasetRow], source: str) -> None:
        super().__init__()
        self.rows = list(rows)
        self.source = source
        self.code: str | None = None
        self.shown: list[DatasetRow] = list(self.rows)
        self.opened_once = False

    def compose(self) -> ComposeResult:
        yield Static(id="dataset-title")
        yield DataTable(id="dataset-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="dataset-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("row", "id", "formula", "worst", "verdicts (warning or worse)")
        self._fill()
        table.focus()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.shown = filtered(self.rows, self.code)
        for r in self.shown:
            flagged = ", ".join(c for c in r.flagged if c != "FAILED") or (
                r.error[:60] if r.error else "-"
            )
            table.add_row(str(r.row), r.id, r.formula, MARK.get(r.worst, r.worst), flagged)
        what = f"verdict {self.code}" if self.code else "all rows"
        self.query_one("#dataset-title", Static).update(
            f"{self.source} · {len(self.shown)} of {len(self.rows)} rows · {what} · worst first"
        )
        self._detail()

    def _detail(self) -> None:
        row = self.selected
        text = ""
        if row is not None:
            text = (
                f"row {row.row} ({row.id}): {row.error}"
                if row.error
                else f"row {row.row} ({row.id}): {', '.join(row.codes)}"
            )
        self.query_one("#dataset-detail", Static).update(text)

    @property
    def selected(self) -> DatasetRow | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row is None or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_row()

    def action_open_row(self) -> None:
        row = self.selected
        if row is None:
            self.notify("no row to open", severity="warning")
            return
        self.opened_once = True
        self.dismiss(row.position)

    def action_pick_code(self) -> None:
        self.app.push_screen(
            CodePickerScreen(code_counts(self.rows), len(self.rows), self.code), self._picked
        )

    def _picked(self, choice: str | None) -> None:
        if choice is None:
            return
        self.filter(None if choice == ALL else choice)

    def filter(self, code: str | None) -> None:
        """Show only rows with verdict ``code`` (None: every row)."""
        self.code = code
        self._fill()

    def action_show_all(self) -> None:
        self.filter(None)

    def action_back(self) -> None:
        if self.opened_once:
            self.dismiss(None)
        else:
            self.notify("Enter opens a row in the inspector; q quits", timeout=3)
