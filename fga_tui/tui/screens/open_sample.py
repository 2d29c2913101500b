"""Open another sample: a path (JSON, JSONL, POSCAR, CIF) and a row index."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class OpenSampleScreen(ModalScreen[tuple[Path, int] | None]):
    """Dismisses with (path, index), or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    DEFAULT_CSS = """
    OpenSampleScreen { align: center middle; }
    OpenSampleScreen > Vertical {
        width: 80%; max-width: 100; height: auto; border: round $accent;
        background: $surface; padding: 0 1;
    }
    OpenSampleScreen #open-error { color: $error; }
    """

    def __init__(self, path: str = "", index: int = 0) -> None:
        super().__init__()
        self._path = path
        self._index = index

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Open sample (Enter opens, Esc cancels)"
            yield Static("path (JSON, JSONL, POSCAR, CIF):")
            yield Input(self._path, id="open-path")
            yield Static("row index (JSONL / multi-sample files):")
            yield Input(str(self._index), id="open-index", type="integer")
            yield Static("", id="open-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        path = self.query_one("#open-path", Input).value.strip()
        index_text = self.query_one("#open-index", Input).value.strip() or "0"
        error = self.query_one("#open-error", Static)
        if not path:
            error.update("enter a path")
            return
        try:
            index = int(index_text)
        except ValueError:
            error.update("the index must be a whole number")
            return
        if index < 0:
            error.update("the index must be 0 or more")
            return
        self.dismiss((Path(path).expanduser(), index))

    def action_cancel(self) -> None:
        self.dismiss(None)
