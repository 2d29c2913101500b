"""The UI's position in a view (stage, atom, heat-map column, display modes) and the display
constants the panes share. numpy-free, like every module the app imports before its first frame."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fga_tui.diagnostics.severity import Severity

#: Correlation modes in the order ``c`` cycles through them.
MODES = ("centred", "raw", "cosine")
#: What the words pane ranks, in the order ``g`` cycles: attention, attribution (gradient-
#: weighted attention), both (ranked by attention, two bars per word).
WORD_MODES = ("attention", "attribution", "both")
#: ``View.top_words`` source name of the gradient-weighted attention.
ATTRIBUTION = "attribution"
#: Severity glyphs by word (``Severity.glyph``): the severity must read without colour.
SEVERITY_MARK = {s.value: s.glyph for s in Severity}


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
    words: str = WORD_MODES[0]

    def with_(self, **changes: object) -> Cursor:
        return replace(self, **changes)  # type: ignore[arg-type]
