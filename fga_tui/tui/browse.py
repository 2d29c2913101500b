"""``fga-tui browse``: the inspector with a dataset screen in front of it.

The dataset screen lists a scan's rows worst first; Enter opens the highlighted row in the
inspector (the same app, the same session and caches: the dataset file at that row's index),
Escape in the inspector comes back to the list with its filter and cursor kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from fga_tui.tui.app import FgaApp
from fga_tui.tui.dataset import DatasetRow
from fga_tui.tui.screens.dataset import DatasetScreen
from fga_tui.tui.session import Request

SCREEN = "dataset"


class BrowseApp(FgaApp):
    """The inspector over a dataset, starting on the dataset screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Escape is the inspector's "restore a maximised pane"; here it does that first, then
        # goes back to the rows (``action_dataset``).
        *(b for b in FgaApp.BINDINGS if not (isinstance(b, Binding) and b.key == "escape")),
        Binding("escape", "dataset", "Rows", tooltip="restore a maximised pane, else the rows"),
    ]

    def __init__(self, *args: Any, rows: Sequence[DatasetRow], data: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data = Path(data)
        self.dataset = DatasetScreen(rows, str(self.data))

    def on_mount(self) -> None:
        super().on_mount()
        self.install_screen(self.dataset, SCREEN)
        self.push_screen(SCREEN, self._row_chosen)

    def action_dataset(self) -> None:
        if self.screen is self.dataset:
            return
        if self.screen.maximized is not None:
            self.action_restore()  # Escape first restores a maximised pane, as in the inspector
            return
        self.push_screen(SCREEN, self._row_chosen)

    def _row_chosen(self, position: int | None) -> None:
        if position is None:
            return
        req = self._request
        if req.sample == self.data and req.index == position:
            return  # already shown (or on its way)
        self._submit(Request(self.data, position, self._current_ablation()))
