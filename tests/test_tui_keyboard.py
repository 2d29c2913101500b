"""Keyboard-first TUI: every pane reached with Tab / shift+Tab / 1-5, paged with the keyboard,
maximised with z; the intervention picker; status errors that clear; a theme toast that does not
stack and a theme that is remembered. Pilot tests on the fork fixture and a Ba4HfLi-like cell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tui_support import ba4hfli_session
from tui_support import ready as _ready

from fga_tui.interventions import Interventions
from fga_tui.tui.app import PANES, FgaApp
from fga_tui.tui.messages import RequestFailed
from fga_tui.tui.session import Session, SessionOptions

FIXTURES = Path(__file__).parent / "fixtures"
PANE_IDS = [p for p, _, _ in PANES]


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    return ba4hfli_session(tmp_path_factory.mktemp("keys"))


async def test_tab_and_shift_tab_reach_every_pane_in_order(session):
    app = FgaApp(session=session)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(pilot)
        assert app.focused_pane() == "atoms-pane"  # the app starts with a focused pane
        seen = [app.focused_pane()]
        for _ in range(len(PANES) - 1):
            await pilot.press("tab")
            seen.append(app.focused_pane())
        assert seen == PANE_IDS
        await pilot.press("tab")
        assert app.focused_pane() == "atoms-pane"  # wraps round
        back = []
        for _ in range(len(PANES)):
            await pilot.press("shift+tab")
            back.append(app.focused_pane())
        assert back == [*PANE_IDS[::-1][: len(PANES) - 1], "atoms-pane"]
        for pane_id, _, key in PANES:
            await pilot.press(key)
            assert app.focused_pane() == pane_id, key


async def test_every_pane_pages_with_the_keyboard(session):
    app = FgaApp(session=session)
    # Short enough that no pane shows everything at once.
    async with app.run_test(size=(80, 18)) as pilot:
        await _ready(pilot)
        view = app.view
        # atoms: PgDn pages the selection and scrolls the list to it.
        await pilot.press("1", "pagedown")
        atoms = app.query_one("#atoms")
        page = atoms.size.height
        assert 0 < page < view.num_atoms
        assert app.cursor.atom == page
        assert atoms.scroll_offset.y > 0
        await pilot.press("pageup")
        assert app.cursor.atom == 0 and atoms.scroll_offset.y == 0
        # heat map: PgDn moves its row (the atom) by the rows it shows.
        await pilot.press("2", "pagedown")
        assert app.cursor.atom > 0
        await pilot.press("pageup")
        assert app.cursor.atom == 0
        # words: PgDn shows the next ranks of the same atom.
        words = app.query_one("#words")

        def first_rank() -> int:  # a rank may be followed by a mark (◆: names the element)
            return int(re.match(r"\s*(\d+)", words.plain_text().splitlines()[1]).group(1))

        assert first_rank() == 1
        await pilot.press("3", "pagedown")
        assert words.word_offset == words.rows()
        assert first_rank() == words.rows() + 1
        await pilot.press("pageup")
        assert words.word_offset == 0
        # stages: PgDn jumps five stages on.
        await pilot.press("4", "pagedown")
        assert app.cursor.stage == min(5, len(view.stages) - 1)
        await pilot.press("pageup")
        assert app.cursor.stage == 0
        # verdicts: PgDn, ↓ and End scroll the text; ← → still step stages.
        verdicts = app.query_one("#verdicts")
        assert verdicts.max_scroll_y > 0
        await pilot.press("5", "pagedown")
        await pilot.pause()
        assert verdicts.scroll_y > 0
        await pilot.press("end")
        await pilot.pause()
        assert verdicts.scroll_y == verdicts.max_scroll_y
        await pilot.press("home", "down")
        await pilot.pause()
        assert verdicts.scroll_y == 1
        await pilot.press("right")
        assert app.cursor.stage == 1


async def test_focused_atoms_pane_keeps_the_arrows_meaning(session):
    app = FgaApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        await pilot.press("1", "down", "down", "right")
        assert app.cursor.atom == 2 and app.cursor.stage == 1
        await pilot.press("end")
        assert app.cursor.stage == len(app.view.stages) - 1


async def test_z_maximises_the_focused_pane_and_z_or_escape_restores(session):
    app = FgaApp(session=session)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(pilot)
        await pilot.press("5", "z")
        assert app.screen.maximized is app.query_one("#verdict-pane")
        text = app.screen_text()
        assert "╭─ atoms (6)" not in text and "╭─ top words" not in text
        assert "verdicts" in text and "Zoom" in text  # the footer stays
        await pilot.press("z")
        assert app.screen.maximized is None
        assert "atoms (6)" in app.screen_text()
        await pilot.press("2", "z")
        assert app.screen.maximized is app.query_one("#heat-pane")
        await pilot.press("escape")
        assert app.screen.maximized is None


async def test_help_lists_focus_paging_zoom_and_remedies(session):
    from fga_tui.diagnostics.remedies import REMEDIES

    app = FgaApp(session=session)
    async with app.run_test(size=(120, 200)) as pilot:
        await _ready(pilot)
        await pilot.press("question_mark")
        text = app.screen_text()
        for needle in ("Tab", "Shift+Tab", "PgUp", "PgDn", "maximise the focused pane"):
            assert needle in text, needle
        for r in REMEDIES:
            assert f"{r.number}. {r.name}:" in text, r.name
        for item in ("█≥.95", "=<-.5", "·≈0", "-<-.15"):
            assert item in text, item  # the heat-map legend in full
        for spec in ("no-fusion", "fga-from=STAGE", "mean-ablate=STAGE", "patch=STAGE", "no-text"):
            assert spec in text, spec


async def test_intervention_picker_lists_the_vocabulary_and_applies_a_choice(session):
    from textual.widgets import OptionList

    from fga_tui.tui.screens.interventions import InterventionScreen

    app = FgaApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        await pilot.press("right", "i")  # stage alignn.0, atom Ba_0
        assert isinstance(app.screen, InterventionScreen)
        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        stage = app.view.stages[1]
        assert "no-text" in ids
        assert f"fga-from={stage}" in ids
        assert f"mean-ablate={stage}" in ids
        assert any(i.startswith(f"edit:patch={stage}:Ba_0<-") for i in ids)
        assert "type" in ids
        assert ("no-fusion" in ids) == app.view.has_fusion
        await pilot.press(*["down"] * ids.index("no-text"), "enter")
        await _ready(pilot)
        assert app.view.ablation == Interventions.parse(["no-text"])
        # The first line of the screen names it.
        assert app.screen_text().splitlines()[0].startswith(" INTERVENED: no-text")
        await pilot.press("i")
        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids[:2] == ["-no-text", "clear"]
        await pilot.press("down", "enter")  # clear all
        await _ready(pilot)
        assert not app.view.ablation.active
        assert "INTERVENED" not in app.screen_text()


async def test_patch_uses_the_selected_atom_and_a_typed_spec_is_checked(session):
    from textual.widgets import Input, OptionList, Static

    app = FgaApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        await pilot.press("down", "down", "down", "down", "i")  # Hf_4 at embed
        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        patch = next(i for i in ids if i.startswith("edit:"))
        assert patch == "edit:patch=embed:Hf_4<-Ba_0"  # source: first atom of another orbit
        await pilot.press(*["down"] * ids.index(patch), "enter")
        field = app.screen.query_one("#spec-input", Input)
        assert field.has_focus and field.value == "patch=embed:Hf_4<-Ba_0"
        field.value = "patch=embed:Hf_4<-Zz"
        await pilot.press("enter")
        error = app.screen.query_one("#spec-error", Static)
        assert "'Zz' is not an atom" in str(error.render())
        field.value = "patch=embed:Hf_4<-Li_5"
        await pilot.press("enter")
        await _ready(pilot)
        assert app.view.ablation.specs == ["patch=embed:Hf_4<-Li_5"]
        app.set_ablation(Interventions())
        await _ready(pilot)


async def test_palette_offers_the_interventions(session):
    from fga_tui.tui.commands import app_commands

    app = FgaApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        titles = [c.title for c in app_commands(app)]
        for title in (
            "Interventions…",
            "Clear all interventions",
            "Intervene: no-text",
            "Intervene: mean-ablate at embed",
            "Intervene: patch Ba_0 at embed…",
            "Focus next pane",
            "Maximise the focused pane",
        ):
            assert title in titles, title


async def test_status_error_clears_on_the_next_successful_action(session):
    app = FgaApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        app.post_message(RequestFailed(app.session.generation, "missing.json: no such file", False))
        await pilot.pause()
        status = str(app.query_one("#status").render())
        assert "✖ missing.json: no such file" in status
        await pilot.press("down")
        await pilot.pause()
        assert "✖" not in str(app.query_one("#status").render())


async def test_theme_toast_is_replaced_and_the_theme_remembered(session, tmp_path):
    from fga_tui.settings import load_settings

    path = tmp_path / "settings.toml"
    app = FgaApp(session=session, settings_path=path)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        await pilot.press("t", "t", "t")
        await pilot.pause()
        theme_toasts = [n for n in app._notifications if n.message.startswith("theme:")]
        assert len(theme_toasts) == 1
        assert theme_toasts[0].message == f"theme: {app.theme} (remembered)"
    assert load_settings(path).theme == app.theme


async def test_without_a_settings_path_nothing_is_written(session, tmp_path, monkeypatch):
    monkeypatch.setenv("FGA_TUI_CONFIG", str(tmp_path / "never.toml"))
    app = FgaApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        await pilot.press("t")
    assert not (tmp_path / "never.toml").exists()


async def test_severity_words_read_without_colour(session):
    """The severity word carries no colour of its own (NO_COLOR turns a red word dark grey)."""
    from fga_tui.tui.widgets.verdicts import verdict_text

    app = FgaApp(session=session)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        text = verdict_text(app.view)
        words = [s for s in text.spans if text.plain[s.start : s.end] in ("ERROR", "WARNING")]
        assert words
        for span in words:
            assert span.style.color is None and span.style.bold


async def test_stopwords_option_starts_the_words_pane_without_them(session, tmp_path):
    words = tmp_path / "stop.txt"
    top = session.views[next(iter(session.views))].top_words(None, None, k=3)[0][0][0]
    words.write_text(f"{top}\n")
    options = session.options.__class__(**{**session.options.__dict__, "stopwords": str(words)})
    other = Session(options)
    other.loaded, other.prepared, other.prepared_key = (
        session.loaded,
        session.prepared,
        session.prepared_key,
    )
    other.views = session.views  # the same trace; only the words pane's list differs
    app = FgaApp(session=other)
    async with app.run_test(size=(100, 30)) as pilot:
        await _ready(pilot)
        assert app.cursor.stopwords
        shown = [w for w, _ in app.query_one("#words").ranked()]
        assert top not in shown
        await pilot.press("w")
        assert top in [w for w, _ in app.query_one("#words").ranked()]


async def test_fixed_demo_shows_healthy_on_the_first_screen_at_80x24(tmp_path):
    """The bundled demo trained with the remedy: HEALTHY is visible without scrolling."""
    demo = Path(__file__).parents[1] / "fga_tui" / "data" / "demo"
    options = SessionOptions(
        demo / "demo_fixed.pt", demo / "ba4hfli.json", device="cpu", snapshot_dir=tmp_path
    )
    app = FgaApp(options)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(pilot, timeout=120)
        assert app.view is not None, app.error
        assert "HEALTHY" in [v.code for v in app.view.verdicts]
        verdict_lines = [line for line in app.screen_text().splitlines() if "verdicts" in line]
        assert verdict_lines
        assert "HEALTHY" in app.screen_text()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_two_orbit_cells_say_the_cross_orbit_curve_is_minus_one_by_construction(size):
    from fga_tui.tui.widgets.scrubber import TWO_ORBITS

    options = SessionOptions(
        FIXTURES / "fork_ckpt.pt",
        FIXTURES / "nacl.json",
        tokens=FIXTURES / "nacl.tokens.npz",
        device="cpu",
    )
    app = FgaApp(options)
    async with app.run_test(size=size) as pilot:
        await _ready(pilot, timeout=120)
        assert len(app.view.orbits) == 2
        await pilot.pause(0.2)
        assert TWO_ORBITS in app.screen_text()


def test_cut_words_end_with_an_ellipsis():
    from fga_tui.tui.widgets.words import fit

    assert fit("tetrahedra", 7) == "tetrah…"
    assert fit("ba", 4) == "ba  "
    assert fit("lengths", 7) == "lengths"
