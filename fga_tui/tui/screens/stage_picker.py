"""Pick the stage that feeds the fine-grained attention (the ``--fga-from`` ablation)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

DEFAULT = "__default__"


class StagePickerScreen(ModalScreen[str | None]):
    """Dismisses with a stage name, ``DEFAULT`` (no ablation) or None (cancelled)."""

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
                "fewer GNN layers before the attention (remedy 2)."
            )
            options = [Option("default (no ablation)", id=DEFAULT)]
            for stage in self._stages:
                mark = "  ◆ current" if stage == self._current else ""
                options.append(Option(f"{stage}{mark}", id=stage))
            yield OptionList(*options, id="stage-options")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        ids = [DEFAULT, *self._stages]
        if self._highlight in ids:
            options.highlighted = ids.index(self._highlight)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
