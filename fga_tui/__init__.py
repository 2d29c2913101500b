"""fga-tui: inspect the fine-grained atom-token attention of multimodal ALIGNN models.

The notebook API lives in :mod:`fga_tui.api` (``load_model``, ``load_sample``, ``run_trace``);
it is imported lazily so that ``import fga_tui`` stays cheap (no torch).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
