"""Pilot tests of the TUI on the fork fixture checkpoint and a Ba4HfLi-like 6-atom cell.

One session per module computes the trace and diagnosis once; every app reuses it (views are
cached per sample and ablation), so each test pays for Textual, not for torch.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from tui_support import prime, synthetic_view
from tui_support import ready as _ready

from fga_tui.trace import Ablation
from fga_tui.tui.app import FgaApp
from fga_tui.tui.messages import ViewReady
from fga_tui.tui.session import Session, SessionOptions
from fga_tui.tui.synthetic import ba4hfli

FIXTURES = Path(__file__).parent / "fixtures"
CKPT = FIXTURES / "fork_ckpt.pt"
SIZE = (100, 30)
#: FGA_TUI_TEST_DEVICE=auto runs every session on the GPU when there is one (device checks).
DEVICE = os.environ.get("FGA_TUI_TEST_DEVICE", "cpu")


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _options(sample: Path, tokens: Path | None, tmp: Path, **kw) -> SessionOptions:
    return SessionOptions(
        checkpoint=kw.pop("checkpoint", CKPT),
        sample=sample,
        tokens=tokens,
        device=kw.pop("device", DEVICE),
        snapshot_dir=tmp / "snapshots",
        **kw,
    )


@pytest.fixture(scope="module")
def cell(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("ba4hfli")
    sample, tokens = ba4hfli(folder)
    return folder, sample, tokens


@pytest.fixture(scope="module")
def session(cell) -> Session:
    folder, sample, tokens = cell
    s = Session(_options(sample, tokens, folder))
    prime(s)
    return s


async def test_first_view_shows_every_pane(session):
    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        text = app.screen_text()
        for needle in (
            "Ba_0",
            "Hf_4",
            "Li_5",
            "centred corr",
            "top words",
            "stages",
            "verdicts",
            "fork_ckpt.pt",
            app.view.device,
            "embed",
        ):
            assert needle in text, needle
        assert app.first_paint_s is not None and app.first_paint_s > 0


async def test_stepping_changes_the_stage_and_the_heatmap_values(session):
    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        heat = app.query_one("#heatmap")
        before = app.view.matrices["centred"][0].copy()
        await pilot.press("right", "right", "right")
        assert app.cursor.stage == 3
        assert app.view.stages[3] in app.screen_text()
        assert not np.allclose(app.view.matrices["centred"][3], before)
        assert heat.readout() != ""
        await pilot.press("l")
        assert app.cursor.stage == 4
        await pilot.press("h")
        assert app.cursor.stage == 3
        await pilot.press("end")
        assert app.cursor.stage == len(app.view.stages) - 1
        await pilot.press("right")  # clamped at the last stage
        assert app.cursor.stage == len(app.view.stages) - 1
        await pilot.press("home")
        assert app.cursor.stage == 0


async def test_heatmap_readout_follows_stage_mode_and_column(session):
    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        heat = app.query_one("#heatmap")
        assert heat.readout().startswith("Ba_0 × Hf_4")  # starts on a cross-orbit pair
        first = heat.readout()
        await pilot.press("right", "right")
        assert heat.readout() != first
        await pilot.press("c")
        assert app.cursor.mode == "raw"
        assert "raw corr" in app.screen_text()
        await pilot.press("c", "c")
        assert app.cursor.mode == "centred"
        await pilot.press("right_square_bracket")
        assert heat.readout().startswith("Ba_0 × Li_5")


async def test_selecting_an_atom_changes_the_top_words(session):
    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        words = app.query_one("#words")
        ba = words.ranked()
        assert ba and all(isinstance(w, str) for w, _ in ba)
        await pilot.press("down", "down", "down", "down")
        assert app.view.labels[app.cursor.atom] == "Hf_4"
        hf = words.ranked()
        assert hf != ba
        assert "Hf_4 ·" in app.screen_text()
        await pilot.press("k")
        assert app.cursor.atom == 3


async def test_heads_and_counterfactual_change_the_words(session):
    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        words = app.query_one("#words")
        avg = words.ranked()
        await pilot.press("H")
        assert app.cursor.head == 0
        assert words.ranked() != avg
        assert "h0" in app.screen_text()
        for _ in range(app.view.num_heads):
            await pilot.press("H")
        assert app.cursor.head is None
        await pilot.press("v", "right", "right")
        assert app.cursor.counterfactual
        cf = words.ranked()
        stage = app.view.stages[2]
        expected = app.view.top_words(stage, None, k=len(cf))[0]
        assert cf == expected
        assert "counterfactual from" in app.screen_text()


async def test_fusion_ablation_reruns_and_marks_the_screen(session):
    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        assert "fusion.2" in app.view.stages
        await pilot.press("right", "right")
        await pilot.press("f")
        await _ready(pilot)
        assert app.view.ablation == Ablation(no_fusion=True)
        assert "fusion.2" not in app.view.stages
        assert "INTERVENED: no-fusion" in app.screen_text()
        assert app.view.stages[app.cursor.stage] == "alignn.1"  # stage kept by name
        await pilot.press("f")
        await _ready(pilot)
        assert not app.view.ablation.active
        assert "INTERVENED" not in app.screen_text()


async def test_attention_stage_picker_feeds_the_attention_from_a_stage(session):
    from textual.widgets import OptionList

    from fga_tui.tui.screens.stage_picker import DEFAULT, StagePickerScreen

    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("right", "right")  # the cursor on alignn.1: not what feeds the attention
        await pilot.press("a")
        assert isinstance(app.screen, StagePickerScreen)
        options = app.screen.query_one(OptionList)
        # Opens on what feeds the attention now (no intervention: the default), and stops at
        # the top instead of wrapping round to the last stage.
        assert options.get_option_at_index(options.highlighted).id == DEFAULT
        await pilot.press("up")
        assert options.highlighted == 0
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        await pilot.press(*["down"] * ids.index("alignn.1"), "enter")
        await _ready(pilot)
        assert app.view.ablation == Ablation(fga_from="alignn.1")
        assert app.view.fga_input == "alignn.1"
        assert "fga-from=alignn.1" in app.screen_text()
        await pilot.press("left", "left", "a")  # cursor on embed; the picker opens on alignn.1
        options = app.screen.query_one(OptionList)
        assert options.get_option_at_index(options.highlighted).id == "alignn.1"
        await pilot.press("escape")
        app.feed_attention_from(None)
        await _ready(pilot)
        assert not app.view.ablation.active


async def test_snapshot_writes_a_new_directory_with_every_file(session, tmp_path):
    app = FgaApp(session=session)
    app.snapshot_dir = tmp_path / "snaps"
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        shown = app.view
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        first = app.last_snapshot
        assert first is not None and first.parent == tmp_path / "snaps"
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.last_snapshot != first  # never overwritten
        assert any("snapshot written" in n.message for n in app._notifications)
    names = sorted(p.name for p in first.iterdir())
    assert names == ["report.json", "report.md", "screen.svg", "trace.npz"]
    report = json.loads((first / "report.json").read_text())
    assert report["schema"] == "fga-tui.report/1"
    assert [o for o in report["orbits"]] == [[0, 1, 2, 3], [4], [5]]
    with np.load(first / "trace.npz") as npz:
        assert list(npz["stages"]) == list(shown.stages)
        assert npz["attn.atom_to_text"].shape[1] == 6
    assert (first / "screen.svg").read_text().lstrip().startswith("<svg")
    assert "# " in (first / "report.md").read_text()
    assert not [p for p in (tmp_path / "snaps").iterdir() if p.name.startswith(".")]


async def test_unwritable_snapshot_dir_shows_an_error_toast(session, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    app = FgaApp(session=session)
    app.snapshot_dir = blocker / "snaps"
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "snapshot" in errors[0].message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


async def test_bad_checkpoint_shows_the_error_screen(cell, tmp_path):
    from fga_tui.tui.screens.error import ErrorScreen

    _, sample, tokens = cell
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"this is not a checkpoint")
    app = FgaApp(_options(sample, tokens, tmp_path, checkpoint=bad))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, timeout=30)
        await pilot.pause(0.1)
        assert isinstance(app.screen, ErrorScreen)
        assert "broken.pt" in app.screen.message
        assert "Cannot load the checkpoint" in app.screen_text()
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_missing_text_is_reported_in_the_app(session, tmp_path):
    from fga_tui.tui.screens.error import ErrorScreen

    row = json.loads(Path(session.options.sample).read_text())
    row.pop("text")
    textless = tmp_path / "textless.json"
    textless.write_text(json.dumps(row))
    s = Session(_options(textless, None, tmp_path))
    s.loaded = session.loaded  # skip the checkpoint load
    app = FgaApp(session=s)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, timeout=30)
        await pilot.pause(0.1)
        assert isinstance(app.screen, ErrorScreen)
        assert "text" in app.screen.message.lower()
        await pilot.press("escape")


async def test_quitting_during_a_slow_trace_returns_promptly(session, monkeypatch, cell):
    from fga_tui import engine

    release = threading.Event()
    started = threading.Event()

    def slow_trace(*args, **kwargs):
        started.set()
        while not release.wait(0.05):
            pass
        raise RuntimeError("released")

    monkeypatch.setattr(engine, "run_trace", slow_trace)
    folder, sample, tokens = cell
    s = Session(_options(sample, tokens, folder))
    s.loaded = session.loaded
    app = FgaApp(session=s)
    try:
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(200):
                if started.is_set():
                    break
                await pilot.pause(0.05)
            assert started.is_set()
            await pilot.pause(0.1)
            assert app.busy and "tracing" in app.busy
            assert "tracing" in app.screen_text()
            # If quitting waited for the trace, this watchdog would release it after 60 s and
            # the check below would fail (instead of the test hanging).
            watchdog = threading.Timer(60.0, release.set)
            watchdog.start()
            await pilot.press("q")
        # The app has exited while the trace still blocks: quitting did not wait for it.
        assert not release.is_set() and started.is_set()
        watchdog.cancel()
    finally:
        release.set()


async def test_stale_results_are_dropped(session):
    """A result tagged with an older generation never replaces the view; the same result with
    the current generation does (so the first check cannot pass by accident)."""
    from dataclasses import replace

    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        current = app.view
        other = replace(current, prediction=current.prediction + 1.0)
        app.post_message(ViewReady(app.session.generation - 1, other))
        await pilot.pause()
        assert app.view is current
        app.post_message(ViewReady(app.session.generation, other))
        await pilot.pause()
        assert app.view is other


async def test_help_screen_lists_every_key(session):
    from fga_tui.tui.screens.help import HelpScreen

    app = FgaApp(session=session)
    async with app.run_test(size=(100, 50)) as pilot:
        await _ready(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen_text()
        for keys in ("← / h", "→ / l", "Home", "End", "↑ / k", "↓ / j", "[", "]", "Ctrl+P", "?"):
            assert keys in text, keys
        for binding in app.BINDINGS:
            assert binding.tooltip in text, binding.tooltip
        for tip in (
            "cycle correlation",
            "bypass middle fusion",
            "export a snapshot",
            "open another sample",
            "next sample",
            "cycle themes",
            "command palette",
        ):
            assert tip in text, tip
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_offers_every_action(session):
    from fga_tui.tui.commands import app_commands

    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        titles = [c.title for c in app_commands(app)]
        for title in (
            "Next stage",
            "Previous stage",
            "Cycle correlation mode",
            "Cycle attention head",
            "Toggle counterfactual attention",
            "Toggle middle-fusion ablation",
            "Pick the attention input stage…",
            "Export snapshot",
            "Open sample…",
            "Next sample",
            "Previous sample",
            "Cycle theme",
            "Show keys",
            "Feed attention from alignn.1",
        ):
            assert title in titles, title
        await pilot.press("ctrl+p")
        await pilot.pause()
        from textual.command import CommandPalette

        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")


async def test_themes_cycle_through_an_ansi_theme(session):
    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        seen = set()
        for _ in range(6):
            await pilot.press("t")
            seen.add(app.theme)
            if app.theme.startswith("ansi"):
                assert app.query_one("#heatmap").ansi
        assert {"ansi-dark", "ansi-light"} <= seen


async def test_next_and_previous_sample_of_a_jsonl(session, cell, tmp_path):
    _, sample, tokens = cell
    row = json.loads(sample.read_text())
    row["tokens"] = str(tokens)
    second = dict(row, jid="ba4hfli-strained")
    second["atoms"] = dict(row["atoms"], lattice_mat=(np.eye(3) * 6.9).tolist())
    jsonl = tmp_path / "two.jsonl"
    jsonl.write_text(json.dumps(row) + "\n" + json.dumps(second) + "\n")
    s = Session(_options(jsonl, None, tmp_path))
    s.loaded = session.loaded
    app = FgaApp(session=s)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.sample_counts.get(str(jsonl)) == 2
        assert "(1/2)" in app.screen_text()
        first_pred = app.view.prediction
        await pilot.press("n")
        await _ready(pilot)
        assert app.view.index == 1 and app.view.prediction != first_pred
        assert "(2/2)" in app.screen_text()
        await pilot.press("n")  # past the end: a warning, no request
        await pilot.pause()
        assert app.view.index == 1
        await pilot.press("p")
        await _ready(pilot)
        assert app.view.index == 0


async def _open(pilot, path: Path) -> None:
    from fga_tui.tui.screens.open_sample import OpenSampleScreen

    await _ready(pilot)
    await pilot.press("o")
    assert isinstance(pilot.app.screen, OpenSampleScreen)
    pilot.app.screen.query_one("#open-path").value = str(path)
    await pilot.press("enter")
    await _ready(pilot)


async def test_open_sample_screen_loads_another_file(session, cell, tmp_path):
    """A second sample with its own token states (a ``tokens`` field) replaces the view."""
    _, sample, tokens = cell
    row = json.loads(sample.read_text())
    row.update(jid="ba4hfli-strained", tokens=str(tokens))
    row["atoms"] = dict(row["atoms"], lattice_mat=(np.eye(3) * 6.9).tolist())
    other = tmp_path / "strained.json"
    other.write_text(json.dumps(row))
    s = Session(_options(sample, tokens, tmp_path))
    s.loaded = session.loaded
    app = FgaApp(session=s)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        first = app.view
        await _open(pilot, other)
        assert not app.error
        assert app.view is not first and app.view.prediction != first.prediction
        assert app._request.sample == other
        assert "strained.json" in app.screen_text()


async def test_open_sample_without_token_states_shows_the_error_and_keeps_the_view(session):
    """nacl.json carries no token states and the fixture has no encoder: shown, not crashed."""
    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        shown = app.view
        await _open(pilot, FIXTURES / "nacl.json")
        assert app.error and "token" in app.error
        assert any(n.severity == "error" for n in app._notifications)
        assert app._request.sample == session.options.sample  # back to what is shown
        assert app.view is shown


async def test_large_structure_heatmap_is_aggregated_and_says_so():
    view = synthetic_view(500)
    assert view.aggregate == "element" and view.group_names == ["Li×125", "Ba×375"]

    class Prebuilt(Session):
        def compute(self, generation, request, post, cancelled):
            post(ViewReady(generation, view))

    app = FgaApp(session=Prebuilt(SessionOptions(Path("x.pt"), Path("big.json"))))
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(pilot)
        assert "by element (500→2)" in app.screen_text()
        await pilot.press("end", "down", "down")
        assert app.cursor.atom == 2
        assert app.query_one("#heatmap").readout().endswith("(block mean)")


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
async def test_worker_runs_the_engine_on_the_gpu_when_there_is_one(cell, tmp_path):
    _, sample, tokens = cell
    app = FgaApp(_options(sample, tokens, tmp_path, device="auto"))
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot)
        assert app.view is not None and app.view.device.startswith("cuda")
        assert "cuda" in app.screen_text()
        await pilot.press("f")
        await _ready(pilot)
        assert app.view.ablation.no_fusion and app.view.device.startswith("cuda")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.last_snapshot is not None
        assert (app.last_snapshot / "trace.npz").exists()


async def _quit_during_a_real_500_atom_diagnosis(tmp_path: Path, device: str) -> None:
    """Real work, not a sleep: the 500-atom diagnosis takes about a second on a CPU core. The
    diagnosis is wrapped only to learn when it starts and ends, so the test can press ``q``
    while it runs and check that the app was gone before the abandoned step finished. The key
    is simulated rather than pressed through the Pilot: ``pilot.press`` waits for the *process*
    to go idle (up to 1 s per wait), which it never does while an abandoned step computes."""
    from fga_tui.diagnostics import report
    from fga_tui.tui.session import running_steps
    from fga_tui.tui.synthetic import supercell

    events: list[str] = []
    started = threading.Event()
    real_diagnose = report.diagnose

    def diagnose(*args, **kwargs):
        started.set()
        try:
            return real_diagnose(*args, **kwargs)
        finally:
            events.append("diagnosis ended")

    sample, tokens = supercell(tmp_path)
    # An in-process session: the wrapper must see the diagnosis (the engine child would not).
    app = FgaApp(session=Session(_options(sample, tokens, tmp_path, device=device)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "diagnose", diagnose)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(1200):
                if started.is_set() or app.error:
                    break
                await pilot.pause(0.05)
            assert started.is_set(), app.error
            assert app.busy and "diagnosing" in app.busy
            app.simulate_key("q")
        events.append("app exited")
        for thread in running_steps():  # let the abandoned step end before pytest exits
            thread.join(timeout=120)
    assert events == ["app exited", "diagnosis ended"]


async def test_quitting_during_a_real_500_atom_diagnosis_returns_promptly(tmp_path):
    await _quit_during_a_real_500_atom_diagnosis(tmp_path, "cpu")


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
async def test_quitting_during_a_real_500_atom_diagnosis_on_the_gpu(tmp_path):
    await _quit_during_a_real_500_atom_diagnosis(tmp_path, "auto")


def test_a_closed_app_is_freed(session, monkeypatch):
    """Nothing keeps a closed app alive: modules the panes import while it runs must not bind
    its print capture (plotext does ``from sys import stdout`` at import)."""
    import asyncio
    import gc
    import sys
    import weakref

    for name in [m for m in sys.modules if m == "plotext" or m.startswith("plotext.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh while the app runs

    async def run() -> weakref.ref:
        app = FgaApp(session=session)
        async with app.run_test(size=(120, 40)) as pilot:
            await _ready(pilot)
            await pilot.press("right", "c")
            await pilot.pause(0.2)
        return weakref.ref(app)

    ref = asyncio.run(run())
    gc.collect()
    import plotext._plotter.plot as plot

    assert plot.stdout is sys.__stdout__
    assert ref() is None


async def test_closed_modals_and_old_footer_keys_are_freed(session):
    """Each binding change rebuilds the footer's keys; the old ones must be freed (Textual's
    own footer keeps every key it ever showed: Textualize/textual#6666). And after the idle
    thaw no removed widget's styles cache is left (a method ``lru_cache`` pins them)."""
    import gc

    from textual._styles_cache import StylesCache
    from textual.widget import Widget
    from textual.widgets._footer import FooterKey

    from fga_tui.tui.textual_leaks import WATCHERS, Footer

    app = FgaApp(session=session)
    async with app.run_test(size=(160, 48)) as pilot:
        await _ready(pilot)
        footer = app.screen.query_one(Footer)
        for _ in range(12):  # a modal on and off: the screen's bindings change twice
            await pilot.press("question_mark")
            await pilot.pause(0.05)
            await pilot.press("escape")
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        shown = len(footer.query(FooterKey))
        assert shown > 0
        app._gc.uninstall()  # unfrozen: ``gc.get_objects`` does not list frozen objects
        gc.collect()
        alive = sum(1 for o in gc.get_objects() if type(o) is FooterKey)
        watching = len(getattr(footer, WATCHERS)["compact"])
        # The keys on screen, plus at most one rebuild still being replaced (12 rounds leaked
        # 24 rebuilds' worth before the fix).
        assert shown <= watching <= 2 * shown
        assert shown <= alive <= 2 * shown
        app._gc.thaw()
        gc.unfreeze()
        caches = sum(1 for o in gc.get_objects() if type(o) is StylesCache)
        widgets = sum(1 for o in gc.get_objects() if issubclass(type(o), Widget))
        assert 0 < caches <= widgets  # the 12 help screens' caches too, without the clear


def test_kept_pictures_hold_no_strips_and_plotext_is_frozen(session, cell):
    """Long-lived panes' caches stay out of every full garbage collection's walk: kept
    pictures are segment lists (a Strip owns seven caches), and modules imported on first use
    are imported before the one ``gc.freeze``."""
    import asyncio
    import gc

    from textual.strip import Strip

    from fga_tui.tui.widgets.cached import CachedLines, pack, unpack
    from fga_tui.tui.widgets.scrubber import CurvePlot

    async def run() -> None:
        app = FgaApp(session=session)
        async with app.run_test(size=(160, 48)) as pilot:
            await _ready(pilot)
            for _ in range(len(app.view.stages)):
                await pilot.press("right")
            await pilot.pause(0.3)
            panes = [w for w in app.query("*") if isinstance(w, (CachedLines, CurvePlot))]
            kept = [
                p
                for w in panes
                for p in (w._pictures if isinstance(w, CachedLines) else w._cache).values()
            ]
            assert len(kept) >= len(app.view.stages)  # one picture per stage at least
            assert not any(isinstance(line, Strip) for p in kept for line in p)
            first = kept[0]
            assert [(list(s), s.cell_length) for s in unpack(first)] == [
                (list(seg), n) for seg, n in first
            ]
            assert pack(unpack(first)) == first
            import plotext

            young = {id(o) for o in gc.get_objects(generation=2)}
            assert id(vars(plotext)) not in young  # frozen, never walked again
        assert gc.get_freeze_count() == 0  # the closed app leaves nothing frozen behind

    asyncio.run(run())
