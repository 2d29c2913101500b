"""``fga_tui.snapshot``: a new directory per export, atomic, never overwriting, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from fga_tui.io.errors import InputError
from fga_tui.snapshot import snapshot_name, write_snapshot
from fga_tui.trace import Trace, load_trace_npz

NOW = datetime(2026, 1, 2, 3, 4, 5)


class FakeReport:
    """What write_snapshot needs of a Report: its JSON and Markdown forms."""

    def __init__(self, fail_markdown: bool = False) -> None:
        self.fail_markdown = fail_markdown

    def to_json(self) -> dict:
        return {"schema": "fga-tui.report/1", "verdicts": []}

    def to_markdown(self) -> str:
        if self.fail_markdown:
            raise OSError(28, "No space left on device")
        return "# fga-tui report\n"


def _trace() -> Trace:
    rng = np.random.default_rng(0)
    stages = ("embed", "gcn.0")
    return Trace(
        stages=stages,
        features={s: rng.standard_normal((3, 4)).astype(np.float32) for s in stages},
        elements=("Na", "Cl", "Cl"),
        prediction=1.5,
    )


def test_snapshot_writes_every_file_into_a_new_timestamped_directory(tmp_path):
    out = write_snapshot(
        tmp_path / "snaps",
        trace=_trace(),
        report=FakeReport(),
        svg="<svg></svg>",
        sample_id="JVASP 1/2",
        now=NOW,
    )
    assert out.parent == tmp_path / "snaps"
    assert out.name == "20260102-030405-JVASP-1-2"
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json",
        "report.md",
        "screen.svg",
        "trace.npz",
    ]
    assert json.loads((out / "report.json").read_text())["schema"] == "fga-tui.report/1"
    assert list(load_trace_npz(out / "trace.npz")["stages"]) == ["embed", "gcn.0"]
    assert (out / "screen.svg").read_text() == "<svg></svg>"


def test_snapshots_never_overwrite_each_other(tmp_path):
    first = write_snapshot(tmp_path, trace=_trace(), report=FakeReport(), now=NOW)
    second = write_snapshot(tmp_path, trace=_trace(), report=FakeReport(), now=NOW)
    (tmp_path / (snapshot_name("sample", NOW) + "-3")).mkdir()  # an empty one in the way
    third = write_snapshot(tmp_path, trace=_trace(), report=FakeReport(), now=NOW)
    assert len({first, second, third}) == 3
    assert second.name.endswith("-2") and third.name.endswith("-4")
    assert not (first / "screen.svg").exists()  # headless: no screen given, none written


def test_unwritable_snapshot_dir_is_an_input_error_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InputError) as err:
        write_snapshot(blocker / "snaps", trace=_trace(), report=FakeReport())
    assert "snapshot" in err.value.message
    with pytest.raises(InputError):
        write_snapshot(blocker, trace=_trace(), report=FakeReport())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_failure_mid_write_leaves_no_partial_snapshot(tmp_path):
    with pytest.raises(InputError) as err:
        write_snapshot(tmp_path, trace=_trace(), report=FakeReport(fail_markdown=True))
    assert "No space left" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_snapshot_module_never_imports_textual():
    code = "import sys, fga_tui.snapshot; assert 'textual' not in sys.modules; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_heatmap_reads_without_colour(monkeypatch):
    """NO_COLOR: values are glyphs or numbers, so the map still reads in monochrome."""
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

    monkeypatch.setenv("NO_COLOR", "1")
    app = FgaApp(session=Idle(SessionOptions(Path("x.pt"), Path("x.json"))))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color
        assert "starting" in app.screen_text() or "loading" in app.screen_text()
