"""The TUI's attribution: computed in the worker after the attention view is posted, then the
words pane cycles attention → attribution → both, the atoms pane shows grounding, and own-element
words are marked; snapshots carry the new numbers."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
from tui_support import ba4hfli_options, ready

from fga_tui.tui.app import FgaApp
from fga_tui.tui.messages import AttributionReady, Progress, ViewReady
from fga_tui.tui.session import Session
from fga_tui.tui.widgets.atoms import atom_row
from fga_tui.tui.widgets.words import OWN_MARK, TopWords


@pytest.fixture(scope="module")
def primed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attr")
    session = Session(ba4hfli_options(folder))
    posted: list = []
    threads: list[str] = []

    def post(message) -> None:
        threads.append(threading.current_thread().name)
        posted.append(message)

    session.compute(session.next_generation(), session.initial_request(), post, lambda: False)
    return session, posted


def test_attention_view_is_posted_before_the_attribution(primed) -> None:
    session, posted = primed
    kinds = [type(m).__name__ for m in posted]
    first = kinds.index("ViewReady")
    assert kinds.index("AttributionReady") > first
    assert any(isinstance(m, Progress) and m.what == "attributing" for m in posted[first:])
    shown = next(m for m in posted if isinstance(m, ViewReady)).view
    done = next(m for m in posted if isinstance(m, AttributionReady))
    assert shown.attribution is None and shown.grounding is not None  # attention grounding: now
    assert done.old is shown
    view = done.view
    assert view.attribution.shape == (view.num_atoms, len(view.tokens))
    assert view.text_reliance["prediction_no_text"] is not None
    assert view.report.attribution["completeness_gap"] <= 0.05
    assert set(view.trace.to_arrays()) >= {"attr.atom_to_text", "attr.tokens", "grounding"}
    # the session caches the completed view: toggling back does not recompute
    assert session.views[(str(session.options.sample), 0, session.options.ablation)] is view


def test_attribution_runs_in_the_worker_not_on_the_ui_thread(primed, monkeypatch) -> None:
    from fga_tui import engine

    session, _ = primed
    seen: list[str] = []
    real = engine.run_attribution

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "run_attribution", spy)
    view = next(iter(session.views.values()))
    posted: list = []
    session._attribute(
        session.generation,
        session.initial_request(),
        dataclasses.replace(view, attribution=None),
        posted.append,
        lambda: False,
    )
    assert seen == ["fga-engine-step"]  # the abandonable daemon thread, never the caller's


async def _ready(pilot) -> None:
    await ready(pilot, settle=0.1)


async def test_words_cycle_attention_attribution_both(primed) -> None:
    session, _ = primed
    app = FgaApp(session=session, theme="textual-dark")
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(pilot)
        assert app.view.attribution is not None
        words = app.query_one("#words", TopWords)
        attention_first = words.ranked()
        await pilot.press("g")
        assert app.cursor.words == "attribution"
        assert "attribution" in app.query_one("#words-pane").border_title
        by_attribution = words.ranked()
        expected = app.view.top_words("attribution", None, k=len(by_attribution))[0]
        assert by_attribution == expected
        assert "attribution (grad × attn)" in words.plain_text()
        await pilot.press("g")
        assert app.cursor.words == "both"
        assert words.ranked() == attention_first  # ranked by attention, two bars per word
        line = words.plain_text().splitlines()[1]
        assert line.count("e-") + line.count("e+") == 1  # the attribution value of that word
        await pilot.press("g")
        assert app.cursor.words == "attention"


async def test_own_element_words_are_marked_and_grounding_is_shown(primed) -> None:
    session, _ = primed
    app = FgaApp(session=session, theme="textual-dark")
    async with app.run_test(size=(120, 36)) as pilot:
        await _ready(pilot)
        view = app.view
        words = app.query_one("#words", TopWords)
        text = words.plain_text()
        marked = {ln.split(OWN_MARK, 1)[1].split()[0] for ln in text.splitlines() if OWN_MARK in ln}
        from fga_tui.diagnostics.grounding import word_elements

        element = view.elements[app.cursor.atom]
        shown = {w for w, _ in words.ranked()[: len(text.splitlines()) - 2]}
        assert marked == {w for w in shown if element in word_elements(w, view.elements)}
        g = view.grounding[0]
        row = atom_row(view, app.cursor, 0)
        assert row.endswith("   –" if np.isnan(g) else f"{g:4.2f}")


async def test_snapshot_carries_the_attribution(primed, tmp_path) -> None:
    from fga_tui.trace import load_trace_npz

    session, _ = primed
    app = FgaApp(session=session, theme="textual-dark")
    app.snapshot_dir = tmp_path
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        await pilot.press("s")
        start = time.monotonic()
        while app.last_snapshot is None and time.monotonic() - start < 30:
            await pilot.pause(0.05)
    arrays = load_trace_npz(app.last_snapshot / "trace.npz")
    assert arrays["attr.atom_to_text"].shape == (app.view.num_atoms, len(app.view.tokens))
    import json

    report = json.loads((app.last_snapshot / "report.json").read_text())
    assert report["text_reliance"]["deletions"]
