"""Two of Textual's (8.2.8) long-session leaks, closed from the outside: memory stays flat and
the collector's full walks stay short.

The footer. ``Footer`` rebuilds its keys whenever the screen's bindings change (a modal opens or
closes, an action becomes available), and each new ``FooterKey`` binds the footer's
``compact`` reactive with ``data_bind``. The watcher entry ``(key, callback)`` is stored on the
footer and pruned only when ``compact`` changes, which it never does, so every key ever shown
stays alive with its styles and rendered lines (Textualize/textual#6666, open in 8.2.8). In a
400-key session this held 600 dead keys and grew the UI process's heap (and the cost of each
full garbage collection) without bound. Pruning the entries of closed keys before each rebuild
keeps only the keys on screen.

The styles caches. ``StylesCache.get_inner_outer`` is an ``lru_cache`` on a method, so its
1,024 entries are keyed by (and keep alive) the styles caches of widgets long removed, each
with its rendered lines: after 400 keys on a 500-atom cell, ~800 dead caches and ~2,700 lines
(about 120,000 objects every full collection walked). It is a pure function of two colours, so
``forget_dead_styles`` clears it before the UI's idle full collection (``gc_policy``); the
live widgets refill it on their next frame.
"""

from __future__ import annotations

import contextlib

from textual.app import ComposeResult
from textual.widgets import Footer as TextualFooter

#: where Textual keeps the watchers of an object's reactives (``textual.reactive._watch``)
WATCHERS = "__watchers"


def prune_closed_watchers(obj: object) -> int:
    """Drop the watcher entries of ``obj`` whose owner node is closing or closed (Textual's
    own pruning rule, run now instead of on the next change); the number dropped."""
    watchers: dict[str, list[tuple[object, object]]] = getattr(obj, WATCHERS, None) or {}
    dropped = 0
    for entries in watchers.values():
        alive = [(node, cb) for node, cb in entries if not getattr(node, "_closing", False)]
        dropped += len(entries) - len(alive)
        entries[:] = alive
    return dropped


class Footer(TextualFooter):
    """``textual.widgets.Footer`` that releases the keys it rebuilds."""

    def compose(self) -> ComposeResult:
        prune_closed_watchers(self)  # the old keys were removed just before this rebuild
        yield from super().compose()


def forget_dead_styles() -> None:
    """Clear the styles-colour memo that pins removed widgets' styles caches (see above)."""
    with contextlib.suppress(ImportError, AttributeError):  # a Textual without the memo
        from textual._styles_cache import StylesCache

        StylesCache.get_inner_outer.cache_clear()
