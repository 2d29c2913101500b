"""Pilot tests of the dataset screen (``fga-tui browse``): order, filter, Enter, Escape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fga_tui.tui.browse import BrowseApp
from fga_tui.tui.dataset import FAILED, code_counts, filtered, ranked
from fga_tui.tui.screens.dataset import CodePickerScreen, DatasetScreen
from fga_tui.tui.session import SessionOptions

FIXTURES = Path(__file__).parent / "fixtures"
SIZE = (110, 30)


def _v(code: str, severity: str) -> dict:
    return {"code": code, "severity": severity, "stage": None}


ROWS = [
    {"row": 1, "position": 0, "id": "a", "status": "ok", "formula": "NaCl", "worst": "warning",
     "verdicts": [_v("OVERSMOOTHING", "warning"), _v("SYMMETRY_EQUIVALENT", "info")]},
    {"row": 2, "position": 1, "id": "b", "status": "ok", "formula": "KBr", "worst": "error",
     "verdicts": [_v("SHARED_QUERY_DOMINATES", "error"), _v("ATTENTION_UNTRAINED", "warning")]},
    {"row": 3, "position": 2, "id": "c", "status": "error", "error": "data.jsonl:3: bad lattice"},
    {"row": 4, "position": 3, "id": "d", "status": "ok", "formula": "LiF", "worst": "info",
     "verdicts": [_v("HEALTHY", "info")]},
    {"row": 5, "position": 4, "id": "e", "status": "ok", "formula": "NaF", "worst": "warning",
     "verdicts": [_v("OVERSMOOTHING", "warning"), _v("ATTENTION_UNTRAINED", "warning")]},
]  # fmt: skip


def test_rows_rank_worst_first_and_failed_last():
    table = ranked(ROWS)
    assert [r.row for r in table] == [2, 5, 1, 4, 3]
    assert table[-1].codes == (FAILED,) and table[-1].error == "data.jsonl:3: bad lattice"
    counts = dict(code_counts(table))
    assert counts == {
        "OVERSMOOTHING": 2,
        "ATTENTION_UNTRAINED": 2,
        "SYMMETRY_EQUIVALENT": 1,
        "SHARED_QUERY_DOMINATES": 1,
        "HEALTHY": 1,
        FAILED: 1,
    }
    assert [r.row for r in filtered(table, "OVERSMOOTHING")] == [5, 1]
    assert [r.row for r in filtered(table, None)] == [2, 5, 1, 4, 3]


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    row = json.loads((FIXTURES / "nacl.json").read_text())
    lines = []
    for i in range(5):
        r = json.loads(json.dumps(row))
        a = 2.7 + 0.05 * i
        r["jid"] = "abcde"[i]
        r["atoms"]["lattice_mat"] = [[0, a, a], [a, 0, a], [a, a, 0]]
        r["tokens"] = str(FIXTURES / "nacl.tokens.npz")
        lines.append(json.dumps(r))
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _app(dataset: Path, tmp_path: Path) -> BrowseApp:
    table = ranked(ROWS)
    options = SessionOptions(
        checkpoint=FIXTURES / "fork_ckpt.pt",
        sample=dataset,
        index=table[0].position,
        device="cpu",
        snapshot_dir=tmp_path / "snaps",
        run_ablations=False,
    )
    return BrowseApp(options, rows=table, data=dataset)


def _table_rows(screen: DatasetScreen) -> list[str]:
    from textual.widgets import DataTable

    table = screen.query_one(DataTable)
    return [table.get_row_at(i)[0] for i in range(table.row_count)]


async def test_dataset_screen_lists_filters_opens_and_comes_back(dataset, tmp_path):
    app = _app(dataset, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DatasetScreen)
        assert _table_rows(screen) == ["2", "5", "1", "4", "3"]
        text = app.screen_text()
        assert "5 of 5 rows" in text and "SHARED_QUERY_DOMINATES" in text and "FAILED" in text
        # Filter by OVERSMOOTHING through the picker.
        await pilot.press("f")
        assert isinstance(app.screen, CodePickerScreen)
        await pilot.press("down", "enter")  # past "all rows": the most common code (ties by name)
        await pilot.pause()
        assert app.screen is screen and screen.code == "ATTENTION_UNTRAINED"
        assert _table_rows(screen) == ["2", "5"]
        screen.filter("OVERSMOOTHING")
        await pilot.pause()
        assert _table_rows(screen) == ["5", "1"]
        # Enter on the second line opens row 1 (position 0) in the inspector.
        await pilot.press("down", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, DatasetScreen)
        assert app._request.sample == dataset and app._request.index == 0
        # Escape comes back with the filter and the cursor kept.
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and screen.code == "OVERSMOOTHING"
        assert screen.selected is not None and screen.selected.row == 1
        await pilot.press("a")
        assert _table_rows(screen) == ["2", "5", "1", "4", "3"]
        await pilot.press("q")


async def test_escape_on_the_list_before_any_row_is_opened_stays(dataset, tmp_path):
    app = _app(dataset, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen  # nothing opened yet: nowhere to go back to
        await pilot.press("down", "down", "down", "down", "enter")  # the failed row 3, last
        await pilot.pause()
        assert app._request.index == 2
