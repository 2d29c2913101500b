"""A failed load, shown in the app: the one-line reason and what to do next."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ErrorScreen(ModalScreen[str]):
    """Dismisses with "open", "retry", "quit" or "close"."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "choose('open')", "Open another sample"),
        Binding("r", "choose('retry')", "Retry"),
        Binding("q", "choose('quit')", "Quit"),
        Binding("escape", "choose('close')", "Close", show=False),
    ]

    DEFAULT_CSS = """
    ErrorScreen { align: center middle; }
    ErrorScreen > Vertical {
        width: 80%; max-width: 110; height: auto; max-height: 80%;
        border: heavy $error; background: $surface; padding: 1 2;
    }
    ErrorScreen #error-title { text-style: bold; color: $error; }
    ErrorScreen #error-hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, message: str, *, title: str = "Cannot show this sample") -> None:
        super().__init__()
        self.message = message
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"✖ {self._title}", id="error-title")
            yield Static(self.message, id="error-message", markup=False)
            yield Static("o open another sample · r retry · q quit · Esc close", id="error-hint")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
