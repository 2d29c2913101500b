"""Status bar: busy state and ablation marker first (they matter most), then sample,
checkpoint, device and timings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from fga_tui.tui.view import View


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


def timings_text(timings: dict[str, float]) -> str:
    names = (("load", "load"), ("prepare", "prep"), ("trace", "trace"), ("diagnose", "diag"))
    return " ".join(f"{short} {_s(timings[k])}" for k, short in names if k in timings)


def status_text(
    view: View | None,
    *,
    busy: str | None,
    error: str | None,
    sample_count: int | None,
    frozen_timings: str | None = None,
) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    if busy:
        out.append(f" ⟳ {busy} ", Style(reverse=True, bold=True))
        out.append(" ")
    if error:
        out.append(f" ✖ {error} ", Style(bold=True, reverse=True))
        out.append(" ")
    if view is None:
        if not busy and not error:
            out.append("starting…", Style(dim=True))
        return out
    if view.ablation.active:
        out.append(f" INTERVENED {view.ablation.describe()} ", Style(reverse=True, bold=True))
        out.append(" ")
    count = "?" if sample_count is None else str(sample_count)
    out.append(f"{view.formula}", Style(bold=True))
    out.append(f" {Path(view.sample_path).name}#{view.index} ({view.index + 1}/{count})")
    out.append(f" {view.spacegroup}", Style(dim=True))
    out.append(" │ ")
    out.append(Path(view.checkpoint).name)
    out.append(" │ ")
    out.append(view.device)
    out.append(" │ ")
    out.append(f"pred {view.prediction:.4g}")
    out.append(" │ ")
    out.append(
        frozen_timings if frozen_timings is not None else timings_text(view.timings),
        Style(dim=True),
    )
    return out


class StatusBar(Static):
    """One line at the bottom, above the key footer."""

    DEFAULT_CSS = """
    StatusBar {
        text-wrap: nowrap; text-overflow: ellipsis; height: 1; width: 1fr; background: $panel;
    }
    """
