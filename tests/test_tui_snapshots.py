"""SVG snapshots of the TUI at 80×24 and 160×48 (pytest-textual-snapshot).

Timings are frozen (they differ on every run); everything else on screen is a function of the
fixture checkpoint and the synthetic Ba4HfLi cell. Regenerate after an intended UI change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the SVGs before committing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tui_support import ba4hfli_session

from fga_tui.tui.app import FgaApp
from fga_tui.tui.session import Session

FIXTURES = Path(__file__).parent / "fixtures"
FROZEN = "load 0.50s prep 10ms trace 100ms diag 1.00s"


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    return ba4hfli_session(tmp_path_factory.mktemp("snap"))


async def _ready(pilot) -> None:
    app = pilot.app
    start = time.monotonic()
    while (app.view is None or app.busy or not app.sample_counts) and (
        time.monotonic() - start < 30
    ):
        await asyncio.sleep(0.05)
    await app.workers.wait_for_complete()
    await pilot.pause(0.2)


def _app(session: Session) -> FgaApp:
    return FgaApp(session=session, theme="textual-dark", frozen_timings=FROZEN)


def test_snapshot_ba4hfli_80x24(snap_compare, session):
    assert snap_compare(_app(session), terminal_size=(80, 24), run_before=_ready)


def test_snapshot_ba4hfli_160x48(snap_compare, session):
    assert snap_compare(_app(session), terminal_size=(160, 48), run_before=_ready)


def test_snapshot_after_stepping_to_fusion_on_hf_80x24(snap_compare, session):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("right", "right", "right", "right", "down", "down", "down", "down")
        await pilot.pause(0.1)

    assert snap_compare(_app(session), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_help_screen_80x24(snap_compare, session):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.1)

    assert snap_compare(_app(session), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_verdicts_maximised_80x24(snap_compare, session):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("5", "z")
        await pilot.pause(0.1)

    assert snap_compare(_app(session), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_intervention_picker_80x24(snap_compare, session):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("right", "down", "down", "down", "down", "i")
        await pilot.pause(0.1)

    assert snap_compare(_app(session), terminal_size=(80, 24), run_before=run_before)
