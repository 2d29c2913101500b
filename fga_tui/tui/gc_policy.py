"""Garbage collection in the UI process: short pauses while keys are pressed, flat memory.

Why. CPython's full (generation 2) collection walks every tracked object of the process. In
the inspector those are mostly Textual's rendered lines: each ``Strip`` owns seven small
caches, and a strip that already has the right width caches *itself* (a reference cycle), so
screen lines that go off screen are garbage only a full collection frees. With ~50,000 such
objects alive a full collection took 20-60 ms, and one came every couple of seconds while
stepping through stages: the UI loop's longest stalls.

What. After every full collection the survivors are frozen (``gc.freeze``: they leave the
generations, so the next full collection walks only what was promoted since, a few thousand
objects). Freezing right after a full collection pins no garbage, but objects frozen then can
become cyclic garbage later (old screen lines); ``thaw`` (``gc.unfreeze`` + a full collection,
~50-100 ms) frees them. It runs when the user is idle, or, during a long unbroken burst of
keys, when the frozen set has grown by ``THAW_GROWTH`` objects since the last thaw: memory
stays bounded either way. The policy is per process and removed when the app exits: then the
frozen objects go back to the collector (``gc.unfreeze``), so what the closed app leaves behind
is freed and the next app in the same process (tests, benchmarks, a host embedding the
inspector) does not start with it frozen: measured, an app opened after a 300-key session in
the same process inherited 222,000 frozen objects, and its thaws walked them all (70-110 ms
stalls instead of 10-30 ms).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

#: frozen objects added since the last thaw that force one even while keys are pressed
THAW_GROWTH = 200_000
#: seconds without input before an idle thaw, and at most one thaw per this many seconds
IDLE_S = 1.0
MIN_THAW_INTERVAL_S = 10.0


class GcPolicy:
    """Freeze after each full collection; thaw when idle or when the frozen set grew."""

    def __init__(self, before_thaw: Callable[[], None] | None = None) -> None:
        self.before_thaw = before_thaw
        """Drops references held only by caches, so the thaw's collection frees what they pin."""
        self.installed = False
        self.baseline = 0
        self.last_input = time.monotonic()
        self.last_thaw = time.monotonic()
        self.thaws = 0
        self.pending = False
        self._thawing = False

    def install(self) -> None:
        """Collect, freeze what the app is made of, and freeze after every full collection."""
        if self.installed:
            return
        gc.collect()
        gc.freeze()
        self.baseline = gc.get_freeze_count()
        gc.callbacks.append(self._after_collection)
        self.installed = True

    def uninstall(self) -> None:
        """Stop freezing and hand every frozen object back to the collector."""
        if self.installed:
            gc.callbacks.remove(self._after_collection)
            gc.unfreeze()
            self.installed = False

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2 and not self._thawing:
            gc.freeze()  # what survived a full collection is live now: nothing pinned
            if gc.get_freeze_count() - self.baseline > THAW_GROWTH:
                self.pending = True  # a collection cannot start inside a collection: ``tick``

    def touched(self) -> None:
        """The user did something (a key, the mouse): not idle."""
        self.last_input = time.monotonic()

    def tick(self) -> bool:
        """Called periodically: thaw when idle long enough, or when the frozen set grew by
        ``THAW_GROWTH``; True when it did."""
        now = time.monotonic()
        idle = (
            now - self.last_input >= IDLE_S
            and now - self.last_thaw >= MIN_THAW_INTERVAL_S
            and gc.get_freeze_count() > self.baseline
        )
        if self.installed and (self.pending or idle):
            self.thaw()
            return True
        return False

    def thaw(self) -> None:
        """Free the cyclic garbage among frozen objects, then freeze the survivors again."""
        self._thawing = True
        try:
            if self.before_thaw is not None:
                self.before_thaw()
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        finally:
            self._thawing = False
        self.baseline = gc.get_freeze_count()
        self.last_thaw = time.monotonic()
        self.thaws += 1
        self.pending = False
