"""Command-palette entries: every action of the app, plus one per attention-input stage."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand

if TYPE_CHECKING:
    from fga_tui.tui.app import FgaApp


def app_commands(app: FgaApp) -> Iterator[SystemCommand]:
    """(title, help, callback) for the palette; the help text names the key."""
    entries = [
        ("Next stage", "→ / l", partial(app.action_step, 1)),
        ("Previous stage", "← / h", partial(app.action_step, -1)),
        ("First stage", "Home", partial(app.action_jump, 0)),
        ("Last stage", "End", partial(app.action_jump, -1)),
        ("Next atom", "↓ / j", partial(app.action_atom, 1)),
        ("Previous atom", "↑ / k", partial(app.action_atom, -1)),
        ("Heat-map column right", "]", partial(app.action_column, 1)),
        ("Heat-map column left", "[", partial(app.action_column, -1)),
        ("Cycle correlation mode", "c: centred / raw / cosine", app.action_cycle_mode),
        ("Cycle attention head", "H: average, then each head", app.action_cycle_head),
        (
            "Toggle counterfactual attention",
            "v: words re-read from the current stage",
            app.action_toggle_counterfactual,
        ),
        (
            "Toggle stopwords",
            "w: hide stopwords and punctuation in top words",
            app.action_toggle_stopwords,
        ),
        (
            "Toggle middle-fusion ablation",
            "f: re-run with fusion bypassed",
            app.action_toggle_fusion,
        ),
        (
            "Pick the attention input stage…",
            "a: re-run feeding the attention from a stage",
            app.action_pick_attention_stage,
        ),
        (
            "Interventions…",
            "i: no-fusion, fga-from, mean-ablate, patch, no-text, clear",
            app.action_pick_intervention,
        ),
        ("Clear all interventions", "re-run the model as trained", app.action_clear_ablation),
        ("Focus next pane", "Tab (shift+Tab: previous; 1-5: a pane)", app.action_focus_next),
        ("Maximise the focused pane", "z: again or Esc restores", app.action_maximise),
        (
            "Export snapshot",
            "s: trace.npz, report.json, report.md, screen.svg",
            app.action_snapshot,
        ),
        ("Open sample…", "o: another JSON / JSONL / POSCAR / CIF", app.action_open_sample),
        ("Next sample", "n: next row of the sample file", partial(app.action_other_sample, 1)),
        (
            "Previous sample",
            "p: previous row of the sample file",
            partial(app.action_other_sample, -1),
        ),
        ("Cycle theme", "t: including ansi-dark / ansi-light", app.action_cycle_theme),
        ("Show keys", "?: every key", app.action_help),
    ]
    for title, help_text, callback in entries:
        yield SystemCommand(title, help_text, callback)
    view = app.view
    if view is not None:
        stage = view.stages[app.cursor.stage]
        ctx = app.picker_context()
        shortcuts = [("Intervene: no-text", "the text carries no information", "no-text")]
        shortcuts.append(
            (
                f"Intervene: mean-ablate at {stage}",
                "every atom's features at the cursor's stage replaced by their mean",
                f"mean-ablate={stage}",
            )
        )
        for title, help_text, spec in shortcuts:
            yield SystemCommand(title, help_text, partial(app.intervene, spec))
        yield SystemCommand(
            f"Intervene: patch {ctx.atom} at {stage}…",
            f"{ctx.atom} reads like another atom (picker, editable)",
            app.action_pick_intervention,
        )
    if view is not None and view.attention is not None:
        for stage in view.input_choices:
            yield SystemCommand(
                f"Feed attention from {stage}",
                "ablation: fewer GNN layers before the attention",
                partial(app.feed_attention_from, stage),
            )
