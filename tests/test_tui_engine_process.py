"""The engine in a child process: the app's real session (``FgaApp(options)``).

Views arrive from the child, the UI process never imports torch, a child that dies fails the
request with a message instead of hanging (and the next request starts a new one), quitting
stops the child, and the views kept stay bounded.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from tui_support import synthetic_view

from fga_tui.trace import Ablation
from fga_tui.tui.app import FgaApp
from fga_tui.tui.engine_process import EngineProcess
from fga_tui.tui.messages import ViewReady
from fga_tui.tui.session import VIEW_CACHE, SessionOptions, ViewCache

DEMO = Path(__file__).resolve().parents[1] / "fga_tui" / "data" / "demo"
SIZE = (100, 30)


def _options(tmp: Path, sample: Path | None = None) -> SessionOptions:
    return SessionOptions(
        checkpoint=DEMO / "demo_problem.pt",
        sample=sample or DEMO / "ba4hfli.json",
        device="cpu",
        snapshot_dir=tmp / "snaps",
    )


async def _wait(pilot, condition, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        await pilot.pause(0.05)
    return condition()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[1][0] != "Z"


def test_the_child_computes_views_and_the_ui_process_needs_no_torch(tmp_path):
    code = f"""
import sys
from pathlib import Path
from fga_tui.tui.engine_process import EngineProcess
from fga_tui.tui.messages import ViewReady
from fga_tui.tui.session import SessionOptions
d = Path({str(DEMO)!r})
ep = EngineProcess(SessionOptions(d / "demo_problem.pt", d / "ba4hfli.json", device="cpu"))
posted = []
ep.compute(ep.next_generation(), ep.initial_request(), posted.append, lambda: False)
kinds = [type(m).__name__ for m in posted]
view = next(m.view for m in posted if isinstance(m, ViewReady))
final = posted[-1]
assert kinds[-1] == "AttributionReady" and final.old is view, kinds
assert final.view.attribution is not None and view.attribution is None
assert ep.views.get(next(iter(ep.views))) is final.view
print(view.num_atoms, view.labels[0], view.attention.shape[0], "torch" in sys.modules)
ep.close()
"""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "Ba_0", "8", "False"]


async def test_pressing_n_before_the_first_view_does_not_break_the_first_load(tmp_path):
    app = FgaApp(_options(tmp_path))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.press("n")
            assert await _wait(pilot, lambda: app.view is not None or app.error is not None)
            assert app.error is None and app.view is not None
            assert app.view.index == 0 and app._request.index == 0
            assert "out of range" not in app.screen_text()
    finally:
        app.session.close()


async def test_a_child_that_dies_mid_request_shows_an_error_and_the_next_request_recovers(
    tmp_path,
):
    from fga_tui.tui.screens.error import ErrorScreen

    fifo = tmp_path / "blocked.json"
    os.mkfifo(fifo)  # reading it blocks: the child is stuck in "reading sample"
    app = FgaApp(_options(tmp_path, sample=fifo))
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert await _wait(pilot, lambda: bool(app.busy and "reading sample" in app.busy))
            pid = app.session.pid
            os.kill(pid, signal.SIGKILL)
            assert await _wait(pilot, lambda: isinstance(app.screen, ErrorScreen), 20)
            assert "engine process stopped (signal 9)" in app.screen.message
            app.screen.dismiss("close")
            await pilot.pause()
            app._submit(app._request.__class__(DEMO / "ba4hfli.json", 0, Ablation()))
            assert await _wait(pilot, lambda: app.view is not None)
            assert app.view.num_atoms == 6 and app.session.pid != pid
            assert app.session.restarts == 1
    finally:
        app.session.close()


async def test_quitting_mid_request_stops_the_child_promptly(tmp_path):
    fifo = tmp_path / "blocked.json"
    os.mkfifo(fifo)
    app = FgaApp(_options(tmp_path, sample=fifo))
    async with app.run_test(size=SIZE) as pilot:
        assert await _wait(pilot, lambda: bool(app.busy and "reading sample" in app.busy))
        pid = app.session.pid
        t0 = time.monotonic()
        app.simulate_key("q")
    app.session.close(timeout=1.0)
    assert time.monotonic() - t0 < 5.0
    assert not _alive(pid)


def test_a_dead_child_is_replaced_before_the_next_request(tmp_path):
    ep = EngineProcess(_options(tmp_path))
    try:
        posted: list = []
        ep.compute(ep.next_generation(), ep.initial_request(), posted.append, lambda: False)
        assert any(isinstance(m, ViewReady) for m in posted)
        first = ep.pid
        os.kill(first, signal.SIGKILL)
        ep._proc.wait(10)
        posted.clear()
        request = ep.initial_request().__class__(DEMO / "ba4hfli.json", 0, Ablation(no_fusion=True))
        ep.compute(ep.next_generation(), request, posted.append, lambda: False)
        view = next(m.view for m in posted if isinstance(m, ViewReady))
        assert view.ablation.no_fusion
        assert ep.pid != first and ep.restarts == 1
    finally:
        ep.close()


def test_the_view_cache_keeps_only_the_most_recent_views():
    cache = ViewCache(2)
    for k in ("a", "b"):
        cache.put((k, 0, None), k)  # type: ignore[arg-type]
    assert cache.get(("a", 0, None)) == "a"  # a is now the most recent
    cache.put(("c", 0, None), "c")  # type: ignore[arg-type]
    assert ("b", 0, None) not in cache and len(cache) == 2
    assert [k[0] for k, _ in cache.items()] == ["a", "c"]
    assert VIEW_CACHE == 4
    none = ViewCache(0)
    none.put(("a", 0, None), "a")  # type: ignore[arg-type]
    assert len(none) == 0


@pytest.mark.parametrize("keys", [("f", "f", "f", "f")])
async def test_toggling_back_is_served_from_the_cache(tmp_path, keys):
    app = FgaApp(_options(tmp_path))
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert await _wait(pilot, lambda: app.view is not None and not app.busy)
            first = app.view
            for key in keys:
                await pilot.press(key)
                assert await _wait(pilot, lambda: not app.busy and app.view is not None)
            assert app.view is first  # the same object: no recomputation
            assert len(app.session.views) == 2
    finally:
        app.session.close()


def test_a_view_keeps_only_a_few_top_word_rankings():
    from fga_tui.tui.view import WORDS_CACHE

    view = synthetic_view(40)
    for source in (None, "embed", "alignn.0", "gcn.0"):
        for head in (None, 0, 1):
            assert view.top_words(source, head) is not None
    assert len(view._words) == WORDS_CACHE == 8
    again = view.top_words("gcn.0", 1)  # the most recent one is still there: same object
    assert again is view.top_words("gcn.0", 1)


def test_views_have_distinct_uids_that_survive_pickling():
    import pickle

    a, b = synthetic_view(8), synthetic_view(8)
    assert a.uid != b.uid
    assert pickle.loads(pickle.dumps(a)).uid == a.uid


def test_a_5000_atom_heat_map_is_aggregated_from_group_sums():
    view = synthetic_view(5000)
    assert view.aggregate == "element" and view.group_names == ["Li×1250", "Ba×3750"]
    assert view.matrices["cosine"].shape == (4, 2, 2)
    # random features: different atoms are uncorrelated on average, each with itself 1
    assert abs(float(view.matrices["cosine"][0, 0, 1])) < 0.05


async def test_a_snapshot_of_a_view_from_the_child_has_the_full_report(tmp_path):
    import json

    from fga_tui.tui.engine_process import PickledReport

    app = FgaApp(_options(tmp_path))
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert await _wait(pilot, lambda: app.view is not None and not app.busy)
            assert isinstance(app.view.report, PickledReport)  # one bytes object in the UI
            shown = app.view
            await pilot.press("s")
            assert await _wait(pilot, lambda: app.last_snapshot is not None, 30)
        report = json.loads((app.last_snapshot / "report.json").read_text())
        assert report["schema"] == "fga-tui.report/1"
        assert report["orbits"] == [[0, 1, 2, 3], [4], [5]]
        assert [v["code"] for v in report["verdicts"]] == [v.code for v in shown.report.verdicts]
        assert report["verdicts"]
    finally:
        app.session.close()


def test_engine_process_answers_stopword_set_like_the_session(tmp_path) -> None:
    """The app asks its session for the --stopwords list whichever kind it is."""
    from fga_tui.tui.engine_process import EngineProcess
    from fga_tui.tui.session import Session, SessionOptions

    for spec, expect_none in ((None, True), ("default", False)):
        options = SessionOptions(tmp_path / "c.pt", tmp_path / "s.json", stopwords=spec)
        child_side = EngineProcess(options).stopword_set()
        in_process = Session(options).stopword_set()
        assert child_side == in_process
        assert (child_side is None) == expect_none
    assert (
        "the"
        in EngineProcess(
            SessionOptions(tmp_path / "c", tmp_path / "s", stopwords="default")
        ).stopword_set()
    )
