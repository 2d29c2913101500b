"""Pick the stage that feeds the fine-grained attention (the ``--fga-from`` ablation)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from fga_tui.diagnostics.remedies import ref

DEFAULT = "__default__"


class StageList(OptionList):
    """An option list whose cursor stops at the ends instead of wrapping round: over a slow
    link, a held key must not jump from the last stage back to the first."""

    def action_cursor_down(self) -> None:
        if self.highlighted is None or self.highlighted < self.option_count - 1:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.highlighted is None or self.highlighted > 0:
            super().action_cursor_up()


class StagePickerScreen(ModalScreen[str | None]):
    """Dismisses with a stage name, ``DEFAULT`` (no ablation) or None (cancelled).

    It opens on ``highlight``: the stage that feeds the attention now (None: the default)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    DEFAULT_CSS = """
    StagePickerScreen { align: center middle; }
    StagePickerScreen > Vertical {
        width: 60; height: auto; max-height: 90%; border: round $accent;
        background: $surface; padding: 0 1;
    }
    StagePickerScreen OptionList { height: auto; max-height: 20; }
    """

    def __init__(self, stages: list[str], current: str | None, highlight: str | None) -> None:
        super().__init__()
        self._stages = stages
        self._current = current
        self._highlight = highlight

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Feed the attention from… (Enter picks, Esc cancels)"
            yield Static(
                "The model's own input stage is the default; an earlier stage means "
                f"fewer GNN layers before the attention ({ref(2)})."
            )
            options = [Option("default (no ablation)", id=DEFAULT)]
            for stage in self._stages:
                mark = "  ◆ current" if stage == self._current else ""
                options.append(Option(f"{stage}{mark}", id=stage))
            yield StageList(*options, id="stage-options")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        ids = [DEFAULT, *self._stages]
        options.highlighted = ids.index(self._highlight) if self._highlight in ids else 0
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
