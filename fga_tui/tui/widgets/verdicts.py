"""Verdict panel: each diagnosis with severity (glyph and word, not colour alone), the stage
and numbers it rests on, and the remedy; then the ablations that were run and the audit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from fga_tui.diagnostics.severity import Severity

if TYPE_CHECKING:
    from fga_tui.tui.view import View

SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold blue"}
MAX_AUDIT_LINES = 12


def _evidence(evidence: dict[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, (list, tuple)):
            shown = ", ".join(
                "=".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in value[:4]
            )
            value = f"[{shown}{', …' if len(value) > 4 else ''}]"
        elif isinstance(value, dict):
            continue
        parts.append(f"{key}={value}")
    return " ".join(parts)


def verdict_text(view: View) -> Text:
    """The panel's content (plain-text friendly)."""
    out = Text()
    if view.ablation.active:
        out.append(
            f"UNDER INTERVENTION {view.ablation.describe()} — not the model as trained\n",
            Style(bold=True, reverse=True),
        )
    for v in view.verdicts:
        severity = Severity.of(v.severity)
        out.append(f"{severity.mark} ", SEVERITY_STYLE[severity.value])
        out.append(v.code, Style(bold=True))
        stage = v.evidence.get("stage")
        if stage:
            out.append(f" @ {stage}")
        if v.vs_baseline:
            out.append(f" [{v.vs_baseline}]", Style(italic=True))
        out.append("\n")
        out.append(f"  {v.message}\n")
        ev = _evidence({k: x for k, x in v.evidence.items() if k != "stage"})
        if ev:
            out.append(f"  evidence: {ev}\n", Style(dim=True))
        if v.remedy:
            out.append(f"  → {v.remedy}\n", Style(italic=True))
    if view.ablation_notes:
        out.append("\nablations run by the diagnosis\n", Style(bold=True))
        for note in view.ablation_notes:
            out.append(f"  {note}\n")
    out.append("\naudit\n", Style(bold=True))
    if not view.audit_lines:
        out.append("  no findings\n", Style(dim=True))
    for line in view.audit_lines[:MAX_AUDIT_LINES]:
        out.append(f"  {line}\n")
    if len(view.audit_lines) > MAX_AUDIT_LINES:
        more = len(view.audit_lines) - MAX_AUDIT_LINES
        out.append(f"  … {more} more (fga-tui audit for all)\n", Style(dim=True))
    return out


class VerdictPanel(VerticalScroll):
    """Scrollable verdicts + audit."""

    DEFAULT_CSS = """
    VerdictPanel { height: 1fr; scrollbar-size-vertical: 1; }
    VerdictPanel > Static { width: 1fr; }
    """

    def compose(self):  # type: ignore[override]
        yield Static("waiting for the diagnosis…", id="verdict-body")

    def show(self, view: View | None) -> None:
        body = self.query_one("#verdict-body", Static)
        body.update(
            Text("waiting for the diagnosis…", style="dim") if view is None else verdict_text(view)
        )
