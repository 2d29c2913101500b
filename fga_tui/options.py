"""The options every command shares, as one object: what to load, how to read the text, which
interventions to apply, which sample row.

The CLI declares each of these options once (``fga_tui.cli``) and hands every command, and the
TUI session, one ``RunOptions``; a command cannot lack one of them or read it differently from
another. Pure Python: no torch, no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fga_tui.interventions import Interventions
from fga_tui.io.errors import MAX_ATOMS


@dataclass(frozen=True)
class RunOptions:
    """Model, text, word, intervention and sample options, with their built-in defaults.

    ``device`` is already resolved against the settings file (flag > settings > ``auto``);
    ``stopwords`` is ``None`` (keep every word), ``"default"`` (the bundled English list) or a
    word-list file; ``interventions`` holds ``--intervene`` specs plus the ``--no-fusion`` and
    ``--fga-from`` aliases.
    """

    device: str = "auto"
    trust: bool = False
    fga_heads: int | None = None
    cm_heads: int | None = None
    tokens: Path | None = None
    text_model: Path | None = None
    vocab_mappings: Path | None = None
    stopwords: str | None = None
    interventions: Interventions = field(default_factory=Interventions)
    index: int = 0
    max_atoms: int = MAX_ATOMS

    def load_kwargs(self) -> dict:
        """Keyword arguments of ``engine.load_model``."""
        return {
            "device": self.device,
            "trust": self.trust,
            "fga_heads": self.fga_heads,
            "cm_heads": self.cm_heads,
        }

    def text_kwargs(self) -> dict:
        """Keyword arguments of ``engine.prepare_sample`` that say how to read the text."""
        return {
            "tokens_path": self.tokens,
            "text_model": self.text_model,
            "vocab_mappings": self.vocab_mappings,
        }

    def stopword_set(self) -> set[str] | None:
        """The stopwords to drop from top words (None: keep every word)."""
        if self.stopwords is None:
            return None
        from fga_tui.diagnostics.words import load_stopwords

        return set(load_stopwords(None if self.stopwords == "default" else self.stopwords))
