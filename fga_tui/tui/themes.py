"""Theme names the app accepts (checked before it starts, so a typo is one line and exit 2)."""

from __future__ import annotations

#: The order ``t`` cycles through: the dark default, then the terminal's own palette (ansi)
#: for plain SSH terminals, then the light ones and a few popular palettes.
CYCLE = ("textual-dark", "ansi-dark", "textual-light", "ansi-light", "nord", "gruvbox")


def theme_names() -> list[str]:
    """Every built-in Textual theme, sorted."""
    from textual.theme import BUILTIN_THEMES

    return sorted(BUILTIN_THEMES)
