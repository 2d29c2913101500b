"""The dataset summary's accumulators are bounded: memory does not grow with the rows.

``StreamingStats`` is exact (numpy's quantiles and mean) up to ``EXACT_LIMIT`` values and a
histogram of 2^-7-relative bins past it; the summary (metrics, attribution aggregate, worst rows,
errors) keeps nothing per row.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from fga_tui.diagnostics.attribution_rows import AttributionAggregate
from fga_tui.diagnostics.streaming import EXACT_LIMIT, MANTISSA_BITS, StreamingStats
from fga_tui.scan.summary import KEY_METRICS, MAX_ERRORS, WORST_ROWS, ScanSummary, histogram_text

ELEMENTS = ["Na", "Cl", "K", "Br", "Sr", "Ti", "O", "Ba", "Hf", "Li"]


def test_up_to_the_limit_the_stats_are_numpys_exactly():
    rng = np.random.default_rng(0)
    values = rng.lognormal(-3, 2, EXACT_LIMIT)
    stats = StreamingStats(values)
    qs = [0.0, 0.1, 0.5, 0.9, 1.0]
    assert stats.quantiles(qs) == [float(x) for x in np.quantile(values, qs)]
    assert stats.mean == float(values.mean())
    assert (stats.n, stats.min, stats.max) == (EXACT_LIMIT, values.min(), values.max())
    assert stats.stored == EXACT_LIMIT
    StreamingStats().add(math.nan)
    assert StreamingStats([None, math.inf, 1.0]).n == 1


def test_past_the_limit_memory_is_bounded_and_quantiles_stay_within_a_bin():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.lognormal(-3, 1.5, 60_000), -rng.lognormal(0, 1, 20_000)])
    rng.shuffle(values)
    stats = StreamingStats()
    stored = []
    for i, v in enumerate(values):
        stats.add(v)
        if i + 1 in (EXACT_LIMIT + 1, 20_000, 80_000):
            stored.append(stats.stored)
    # Two numbers per occupied bin: at most 2^7 bins per power of two the values span.
    span = math.log2(values.max() / values[values > 0].min()) + math.log2(
        -values.min() / -values[values < 0].max()
    )
    assert stored[-1] <= 2 * 2**MANTISSA_BITS * (span + 4)
    assert (stats.n, stats.min, stats.max) == (80_000, values.min(), values.max())
    assert stats.mean == pytest.approx(values.mean(), rel=1e-12)
    qs = [0.01, 0.1, 0.25, 0.5, 0.9, 0.99]
    for got, want in zip(stats.quantiles(qs), np.quantile(values, qs), strict=True):
        assert got == pytest.approx(want, rel=2.0**-MANTISSA_BITS)
    assert stats.quantiles([0.0, 1.0]) == [values.min(), values.max()]


def test_the_same_values_in_the_same_order_give_the_same_bits():
    rng = np.random.default_rng(2)
    values = rng.standard_normal(3 * EXACT_LIMIT)
    a, b = StreamingStats(values), StreamingStats(list(values))
    qs = [0.1, 0.5, 0.9]
    assert (a.quantiles(qs), a.mean) == (b.quantiles(qs), b.mean)


def _row(i: int, rng: np.random.Generator) -> dict:
    """A successful or failed scan row with metrics drawn from a fixed finite set of values."""
    if i % 17 == 0:
        return {"row": i + 1, "id": f"s{i}", "status": "error", "error": "bad"}
    els = sorted({ELEMENTS[i % 10], ELEMENTS[(3 * i + 1) % 10]})
    pick = lambda: float(rng.integers(1, 300)) / 997.0  # noqa: E731
    return {
        "row": i + 1,
        "id": f"s{i}",
        "status": "ok",
        "formula": "".join(els),
        "worst": ("info", "warning", "error")[i % 3],
        "verdicts": [{"code": f"CODE_{i % 7}", "severity": ("info", "warning", "error")[i % 3]}],
        "metrics": {k: pick() for k in KEY_METRICS},
        "elements": els,
        "spacegroup": f"SG{i % 23}",
        "grounding": {"mean": pick(), "per_element": {el: pick() for el in els}, "named": els},
        "text_reliance": {
            "relative_change": pick(),
            "words_share": pick(),
            "completeness_gap": pick(),
        },
    }


def test_a_summary_of_60000_rows_holds_no_more_than_one_of_30000():
    rng = np.random.default_rng(3)
    summary = ScanSummary()
    for i in range(30_000):  # every distribution past its exact part (per element: 6,000 values)
        summary.add(_row(i, rng))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(30_000, 60_000):
            summary.add(_row(i, rng))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert summary.total == 60_000 and summary.failed == 3530
    assert grown < 64 * 1024  # 30,000 more rows: not 2 bytes a row (was 8 B per value)
    assert len(summary.errors) == MAX_ERRORS and len(summary.worst_rows) == WORST_ROWS
    agg = summary.attribution
    every = [*summary.metrics.values(), agg.sample_grounding, agg.relative_change,
             agg.words_share, agg.completeness_gap, *agg.per_element.values(),
             *agg.reliance_by_element.values()]  # fmt: skip
    assert all(s.stored <= 2 * 299 for s in every)  # two numbers per distinct value
    js = summary.to_json()
    assert js["metrics"]["shared_fraction"]["n"] == summary.ok
    assert (
        1 / 997
        <= js["metrics"]["shared_fraction"]["p10"]
        < js["metrics"]["shared_fraction"]["median"]
        <= 299 / 997
    )
    assert "cross-orbit JSD" in summary.to_text()


def test_the_attribution_aggregate_keeps_streaming_stats_per_element():
    agg = AttributionAggregate()
    for _ in range(3 * EXACT_LIMIT):
        agg.add({"grounding": {"mean": 0.5, "per_element": {"Na": 0.25, "Cl": None}, "named": []}})
    assert agg.per_element["Na"].n == 3 * EXACT_LIMIT and agg.per_element["Na"].stored == 2
    assert agg.unnamed == 3 * EXACT_LIMIT
    out = agg.to_json()["grounding"]
    assert out["per_element"]["Na"] == {"n": 3 * EXACT_LIMIT, "min": 0.25, "median": 0.25,
                                        "max": 0.25, "mean": 0.25}  # fmt: skip
    assert "Cl" not in out["per_element"]


def test_the_histogram_chart_draws_from_bounded_stats():
    stats = StreamingStats(10.0 ** np.linspace(-4, -1, 3 * EXACT_LIMIT))
    text = histogram_text(stats, "jsd, log10", width=60)
    assert "jsd, log10" in text
    assert histogram_text([0.0, -1.0, 0.5], "none") == ""


def test_the_rows_a_resume_skips_are_a_bitmap():
    import sys

    from fga_tui.scan.journal import RowSet

    done = RowSet(range(1, 76_001, 1))
    done.add(5)  # already there: counted once
    assert len(done) == 76_000 and 1 in done and 76_000 in done
    assert 0 not in done and 76_001 not in done and "3" not in done
    assert sys.getsizeof(done._bits) < 16 * 1024  # one bit per row (a set of ints: ~5 MB)
    assert RowSet([3, 1, 2]) == {1, 2, 3} and list(RowSet([9, 2, 700])) == [2, 9, 700]
    huge = RowSet([10**15, 4, -2])  # only a hand-edited journal has such numbers
    assert len(huge) == 3 and 10**15 in huge and -2 in huge
    assert list(huge) == [-2, 4, 10**15] and sys.getsizeof(huge._bits) < 100
