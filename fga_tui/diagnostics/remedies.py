"""The numbered remedies: defined once, referred to by number and name everywhere.

Verdict messages, the README, the TUI's help and pickers say "remedy 2 (fewer layers before the
attention)" through ``ref(2)``, so a number can never point at the wrong advice. Each remedy
names the intervention that tests it before any retraining (``--intervene``), where one does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Remedy:
    """One remedy: its number, a short name, what to do and how to check it first."""

    number: int
    name: str
    action: str
    check: str

    @property
    def ref(self) -> str:
        """How messages refer to it: ``remedy 2 (fewer layers before the attention)``."""
        return f"remedy {self.number} ({self.name})"

    def explain(self) -> str:
        """One paragraph: number, name, what to do, how to check it."""
        return f"{self.number}. {self.name}: {self.action} Check first: {self.check}"


REMEDIES: tuple[Remedy, ...] = (
    Remedy(
        1,
        "no middle fusion",
        "disable or weaken middle fusion, which mixes one text vector into every atom and "
        "makes atoms alike.",
        "--intervene no-fusion (key f in the inspector).",
    ),
    Remedy(
        2,
        "fewer layers before the attention",
        "feed the fine-grained attention from an earlier stage (or use fewer GNN layers), "
        "where atoms are still distinct.",
        "--intervene fga-from=STAGE (key a).",
    ),
    Remedy(
        3,
        "residuals and normalisation",
        "add or strengthen residual connections and normalisation in the GNN layers so "
        "repeated message passing cannot average the atoms out.",
        "the stage curves: the orbit separation should no longer shrink layer after layer.",
    ),
    Remedy(
        4,
        "attention-diversity training",
        "retrain with attention_diversity_loss, shared_query_loss and element_contrast_loss "
        "(fga_tui.training) so queries use atom-specific directions instead of one shared "
        "query and every pair of elements reads different words.",
        "the cross-orbit attention divergence and the shared-query fraction of the report.",
    ),
    Remedy(
        5,
        "train the attention block",
        "make sure the attention's parameters are in the optimiser and its output reaches "
        "the loss; untrained weights give meaningless words.",
        "fga-tui audit CKPT --baseline INIT.pt.",
    ),
    Remedy(
        6,
        "enable fine-grained attention",
        "train with use_fine_grained_attention=True: without it there are no atom-token "
        "weights to read.",
        "fga-tui audit CKPT (FGA_MISSING).",
    ),
)

_BY_NUMBER = {r.number: r for r in REMEDIES}


def remedy(number: int) -> Remedy:
    """The remedy with this number (KeyError for an unknown one: a bug, not a user error)."""
    return _BY_NUMBER[number]


def ref(number: int) -> str:
    """``remedy N (name)`` for messages."""
    return remedy(number).ref


def remedies_text() -> str:
    """Every remedy explained, one paragraph each (help screen, ``--help`` epilogue)."""
    return "\n".join(r.explain() for r in REMEDIES)
