"""Help: every key of the app, generated from its bindings so it cannot go stale."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

PANES = """\
atoms      label, element, orbit+Wyckoff, coordination, feature norm at the stage
words      the selected atom's top words (head avg or one head; counterfactual: re-read
           from the current stage)
heat map   atom×atom similarity at the stage, by orbit (glyph legend below it)
scrubber   stages (◆ = attention input), curves across stages
verdicts   the diagnosis, the ablations it ran, the checkpoint audit"""


KEY_LABELS = {
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "home": "Home",
    "end": "End",
    "question_mark": "?",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "ctrl+p": "Ctrl+P",
    "escape": "Esc",
    "enter": "Enter",
}


def key_label(key: str) -> str:
    """How a key is written on the keyboard (``left`` -> ``←``)."""
    return KEY_LABELS.get(key, key)


def key_table(bindings: list[Binding]) -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("action")
    for b in bindings:
        if not b.description:
            continue
        keys = " / ".join(key_label(k.strip()) for k in b.key.split(","))
        table.add_row(keys, b.tooltip or b.description)
    return table


class HelpScreen(ModalScreen[None]):
    """Every key, one per line (Escape, ? or q closes)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%; border: round $accent;
        background: $surface; padding: 0 1;
    }
    """

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self._key_bindings = bindings

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "fga-tui keys (Esc closes)"
            yield Static(key_table(self._key_bindings), id="help-keys")
            yield Static("\n" + PANES, id="help-panes")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
