"""Help: every key of the app, generated from its bindings so it cannot go stale."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

PANES = (
    ("1 atoms", "label, element, orbit+Wyckoff, coordination, feature norm at the stage"),
    ("2 heat map", "atom×atom similarity at the stage, by orbit"),
    (
        "3 words",
        "the selected atom's top words (head avg or one head; counterfactual: re-read from "
        "the current stage)",
    ),
    (
        "4 stages",
        "stages (◆ = attention input), curves across stages (each scaled to its range; with "
        "2 orbits the cross-orbit centred corr is ≈ −1 by construction)",
    ),
    ("5 verdicts", "the diagnosis, the interventions it ran, the checkpoint audit"),
)
NAVIGATION = (
    "Tab / shift+Tab (or 1-5) focus a pane; PgUp/PgDn page through it (verdicts and this "
    "help: ↑ ↓ Home End too); z maximises it, z or Esc restores. ← → always step stages."
)
INTERVENTIONS = (
    ("no-fusion", "every middle fusion passes its input through (also f)"),
    ("fga-from=STAGE", "the attention reads STAGE's features (also a)"),
    ("mean-ablate=STAGE", "every atom's features at STAGE replaced by their mean"),
    ("patch=STAGE:DST<-SRC", "atom DST's features at STAGE replaced by atom SRC's"),
    ("no-text", "the text carries no information (token states zeroed)"),
)
INTERVENTIONS_NOTE = (
    "i opens the picker; each applies to the sample on screen and re-runs the model. The "
    'first line of the screen names what is active; "clear all" restores the model.'
)


def two_columns(rows: tuple[tuple[str, str], ...], title: str) -> Table:
    """A left column that never wraps and a right one that wraps within the screen."""
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column(title, no_wrap=True)
    table.add_column("")
    for left, right in rows:
        table.add_row(left, right)
    return table


def legend_text() -> str:
    """The heat map's glyphs, in full (the pane shows them only when they fit)."""
    from fga_tui.tui.widgets.heatmap import COLOUR_LEGEND, LEGEND_ITEMS

    return "heat-map glyphs: " + "  ".join(LEGEND_ITEMS) + f"\nnumbers: {COLOUR_LEGEND}"


def remedies_help() -> str:
    from fga_tui.diagnostics.remedies import remedies_text

    return "Remedies (verdicts refer to them by number):\n" + remedies_text()


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
    "tab": "Tab",
    "shift+tab": "Shift+Tab",
    "pageup": "PgUp",
    "pagedown": "PgDn",
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
    rows: list[tuple[list[str], str]] = []
    for b in bindings:
        if not b.description:
            continue
        keys = [key_label(k.strip()) for k in b.key.split(",")]
        text = b.tooltip or b.description
        if rows and rows[-1][1] == text:  # one row for keys that do one thing (1-5)
            rows[-1][0].extend(keys)
        else:
            rows.append((keys, text))
    for keys, text in rows:
        digits = len(keys) > 2 and all(k.isdigit() for k in keys)
        table.add_row(f"{keys[0]}-{keys[-1]}" if digits else " / ".join(keys), text)
    return table


class HelpScreen(ModalScreen[None]):
    """Every key, one per line, then the panes, the glyph legend, the interventions and the
    numbered remedies (Escape, ? or q closes; the keyboard scrolls it)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%; border: round $accent;
        background: $surface; padding: 0 1;
    }
    HelpScreen .gap { margin-top: 1; }
    """

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self._key_bindings = bindings

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "fga-tui keys (Esc closes)"
            yield Static(key_table(self._key_bindings), id="help-keys")
            yield Static(two_columns(PANES, "pane"), id="help-panes", classes="gap")
            yield Static(NAVIGATION, id="help-navigation", markup=False)
            yield Static(legend_text(), id="help-legend", markup=False, classes="gap")
            yield Static(
                two_columns(INTERVENTIONS, "intervention"), id="help-interventions", classes="gap"
            )
            yield Static(INTERVENTIONS_NOTE, markup=False)
            yield Static(remedies_help(), id="help-remedies", markup=False, classes="gap")

    def on_mount(self) -> None:
        # Focused, the help scrolls with ↑ ↓ PgUp PgDn Home End (it is longer than 24 lines).
        self.query_one(VerticalScroll).focus()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
