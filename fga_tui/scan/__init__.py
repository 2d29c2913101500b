"""Dataset sweep: is the diagnosis general, or one sample?

``runner`` streams the rows through the model and the diagnosis; ``journal`` keeps finished rows
on disk as they finish (``--resume``); ``summary`` accumulates the dataset summary; ``progress``
reports on stderr; ``distributed`` shards a scan over torchrun ranks; ``job`` ties them together
for the command line.
"""

from __future__ import annotations

from fga_tui.scan.runner import scan, scan_rows
from fga_tui.scan.summary import KEY_METRICS, ScanSummary, histogram_text, summarize_rows

__all__ = ["KEY_METRICS", "ScanSummary", "histogram_text", "scan", "scan_rows", "summarize_rows"]
