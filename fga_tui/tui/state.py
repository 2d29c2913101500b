"""The UI's position in a view: which stage, atom, heat-map column and display modes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fga_tui.tui.view import MODES


@dataclass(frozen=True)
class Cursor:
    """Immutable UI state; the app replaces it and tells the panes what changed.

    ``head`` None = head average; ``counterfactual`` ranks words with the attention recomputed
    from the current stage; ``column`` is the heat-map column (a group index) under the cursor.
    """

    stage: int = 0
    atom: int = 0
    column: int = 0
    mode: str = MODES[0]
    head: int | None = None
    counterfactual: bool = False
    stopwords: bool = False

    def with_(self, **changes: object) -> Cursor:
        return replace(self, **changes)  # type: ignore[arg-type]
