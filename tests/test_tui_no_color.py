"""The inspector reads without colour: heat-map cells carry glyphs and numbers, and the app
follows ``NO_COLOR``. (Snapshot export itself is tested headless in tests/test_snapshot.py.)"""

from __future__ import annotations

from pathlib import Path


def test_heatmap_cells_and_legend_carry_glyphs_and_numbers():
    """What makes the map readable in monochrome: a glyph per value band and a 5-character
    number per cell with aligned decimal points, whatever colours the terminal shows."""
    from fga_tui.tui.widgets.heatmap import LEGEND, fmt5, glyph

    assert [glyph(v) for v in (1.0, 0.9, 0.6, 0.3, 0.0, -0.3, -0.9)] == list("█▓▒░·-=")
    assert " ".join(LEGEND).count("≥") == 4
    cells = [fmt5(v) for v in (0.984, 1.0, -0.31, -1.0)]
    assert cells == [" 0.98", " 1.00", "-0.31", "-1.00"]
    assert {c.index(".") for c in cells} == {2}  # decimal points line up


async def test_app_honours_no_color(monkeypatch):
    from fga_tui.tui.app import FgaApp
    from fga_tui.tui.session import Session, SessionOptions

    class Idle(Session):
        def compute(self, generation, request, post, cancelled):
            pass

    for value, expected in ((None, False), ("1", True)):
        if value is None:
            monkeypatch.delenv("NO_COLOR", raising=False)
        else:
            monkeypatch.setenv("NO_COLOR", value)
        app = FgaApp(session=Idle(SessionOptions(Path("x.pt"), Path("x.json"))))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert app.no_color is expected
            assert "starting" in app.screen_text() or "loading" in app.screen_text()
