"""Panes of the app: each shows one facet of a ``View`` at the current ``Cursor``."""
