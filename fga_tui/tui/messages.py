"""Typed messages the session worker posts to the app (thread-safe ``post_message``).

Every result carries the generation id of the request that produced it; the app drops results
whose generation is not the latest, so a fast scrubber or a quick second toggle never shows a
stale trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from fga_tui.tui.view import View


@dataclass
class Progress(Message):
    """A step of a request started (``step`` of ``total``); replaces older progress."""

    generation: int
    step: int
    total: int
    what: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Progress)


@dataclass
class ViewReady(Message):
    """A request finished: ``view`` is everything the panes show."""

    generation: int
    view: View


@dataclass
class AttributionReady(Message):
    """The attribution of a view already shown arrived: ``view`` replaces ``old``."""

    generation: int
    old: View
    view: View


@dataclass
class RequestFailed(Message):
    """A request failed with a user-facing one-line ``message`` (an ``InputError`` or a bug)."""

    generation: int
    message: str
    first_load: bool


@dataclass
class SampleCount(Message):
    """How many rows the sample file holds (for next/previous sample)."""

    path: Path
    count: int


@dataclass
class SnapshotWritten(Message):
    """A snapshot directory was written."""

    path: Path


@dataclass
class SnapshotFailed(Message):
    """A snapshot could not be written; nothing partial was left."""

    message: str
