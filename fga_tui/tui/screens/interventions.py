"""The intervention picker: the whole vocabulary of ``--intervene``, applied to the current sample.

It lists what is active (Enter removes one), then each kind of intervention with what it will
do here: ``no-fusion`` and ``no-text`` toggle; ``fga-from`` and ``mean-ablate`` act at the
stage under the cursor; ``patch`` replaces the selected atom's features by another atom's at
that stage (the source defaults to the first atom of another orbit and can be edited); any spec
can also be typed. The screen dismisses with the new ``Interventions`` (or None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from fga_tui.interventions import SPEC_HELP, Interventions, parse_intervention
from fga_tui.io.errors import InputError

CLEAR = "clear"
TYPE = "type"


@dataclass(frozen=True)
class PickerContext:
    """What the picker needs to know about the screen behind it."""

    current: Interventions
    stage: str  # the stage under the cursor
    atom: str  # the selected atom's label
    source: str  # a default patch source: the first atom of another orbit
    has_fusion: bool
    has_text: bool


def choices(ctx: PickerContext) -> list[tuple[str, str]]:
    """(option id, label) in display order; an id is a spec, ``-spec`` (remove), or a command."""
    out: list[tuple[str, str]] = []
    for spec in ctx.current.specs:
        out.append((f"-{spec}", f"✓ {spec}  (Enter removes it)"))
    if ctx.current.active:
        out.append((CLEAR, "clear all: the model as trained"))
    if ctx.has_fusion and not ctx.current.no_fusion:
        out.append(("no-fusion", "no-fusion: every middle fusion passes its input through"))
    if ctx.has_text and not ctx.current.no_text:
        out.append(("no-text", "no-text: the text carries no information"))
    if ctx.stage != "fga":
        out.append(
            (f"fga-from={ctx.stage}", f"fga-from={ctx.stage}: the attention reads this stage")
        )
    out.append((f"mean-ablate={ctx.stage}", f"mean-ablate={ctx.stage}: every atom gets the mean"))
    patch = f"patch={ctx.stage}:{ctx.atom}<-{ctx.source}"
    out.append((f"edit:{patch}", f"{patch}: {ctx.atom} reads like {ctx.source} (edit…)"))
    out.append((TYPE, "type a spec…"))
    return out


def apply_choice(current: Interventions, choice: str) -> Interventions:
    """The interventions after picking ``choice`` (a spec to add or ``-spec`` to remove)."""
    if choice == CLEAR:
        return Interventions()
    if choice.startswith("-"):
        spec = choice[1:]
        return Interventions(i for i in current if i.spec != spec)
    item = parse_intervention(choice)
    if item.kind == "fga-from":
        current = current.without("fga-from")
    return current.with_(item)


class InterventionScreen(ModalScreen[Interventions | None]):
    """Dismisses with the new interventions, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    DEFAULT_CSS = """
    InterventionScreen { align: center middle; }
    InterventionScreen > Vertical {
        width: 90%; max-width: 90; height: auto; max-height: 90%; border: round $accent;
        background: $surface; padding: 0 1;
    }
    InterventionScreen OptionList { height: auto; max-height: 14; }
    InterventionScreen #spec-input { display: none; }
    InterventionScreen.-typing #spec-input { display: block; }
    InterventionScreen #spec-error { color: $text; text-style: bold; }
    """

    def __init__(self, ctx: PickerContext) -> None:
        super().__init__()
        self.ctx = ctx

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Interventions (Enter applies, Esc cancels)"
            yield Static(
                f"active: {self.ctx.current.describe()} · at stage {self.ctx.stage}, "
                f"atom {self.ctx.atom}",
                id="spec-active",
            )
            yield OptionList(
                *[Option(label, id=oid) for oid, label in choices(self.ctx)], id="spec-options"
            )
            yield Input(placeholder=SPEC_HELP, id="spec-input")
            yield Static("", id="spec-error")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        choice = event.option.id or ""
        if choice == TYPE or choice.startswith("edit:"):
            field = self.query_one("#spec-input", Input)
            field.value = choice.removeprefix("edit:") if choice != TYPE else ""
            self.add_class("-typing")
            field.focus()
            return
        self._apply(choice)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._apply(event.value.strip())

    def _apply(self, choice: str) -> None:
        try:
            self.dismiss(apply_choice(self.ctx.current, choice))
        except InputError as exc:
            self.query_one("#spec-error", Static).update(f"✖ {exc.reason}")

    def action_cancel(self) -> None:
        self.dismiss(None)
