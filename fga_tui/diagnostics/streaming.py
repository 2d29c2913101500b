"""A distribution accumulated one value at a time in bounded memory (dataset summaries).

A scan of 76,000 rows must not keep a float per row and metric (issue: memory flat in rows).
``StreamingStats`` keeps the first ``EXACT_LIMIT`` values exactly, so the quantiles of a summary
of up to that many rows are numpy's (linear interpolation); past it, the values move into a
histogram with bins of 2^-7 relative width (the float's sign, exponent and top 7 mantissa bits),
each bin holding its count and sum, and the quantiles interpolate between bin means. Count, min,
max and mean stay exact (the mean to a compensated sum). The histogram is bounded by the range of
the values (at most 128 bins per power of two they span), never by their number.

The result depends only on the values and their order, so the same rows in the same order (a
single scan, a resumed one, a torchrun merge: all read the rows in input order) give the same
summary, bit for bit.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Iterable, Sequence

import numpy as np

#: Values kept exactly per distribution (8 bytes each).
EXACT_LIMIT = 4096
#: Mantissa bits that name a histogram bin: a bin spans 2^-7 (0.8 %) of its values' magnitude.
MANTISSA_BITS = 7
_SHIFT = 52 - MANTISSA_BITS


def _bin(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0] >> _SHIFT


class StreamingStats:
    """Count, min, max, mean and quantiles of a stream of finite floats, in bounded memory."""

    __slots__ = ("_bins", "_comp", "_exact", "_sum", "max", "min", "n")

    def __init__(self, values: Iterable[float] = ()) -> None:
        self.n = 0
        self.min = math.inf
        self.max = -math.inf
        self._sum = 0.0
        self._comp = 0.0  # Neumaier compensation of ``_sum``
        self._exact: array | None = array("d")
        self._bins: dict[int, list[float]] = {}  # bin -> [count, sum of its values]
        for v in values:
            self.add(v)

    def add(self, value: float) -> None:
        """Take one value; non-finite values and None are not part of the distribution."""
        if value is None or not math.isfinite(value):
            return
        v = float(value)
        self.n += 1
        self.min = min(self.min, v)
        self.max = max(self.max, v)
        t = self._sum + v
        if abs(self._sum) >= abs(v):
            self._comp += (self._sum - t) + v
        else:
            self._comp += (v - t) + self._sum
        self._sum = t
        if self._exact is not None:
            self._exact.append(v)
            if len(self._exact) > EXACT_LIMIT:
                for x in self._exact:
                    self._into_bin(x)
                self._exact = None
        else:
            self._into_bin(v)

    def _into_bin(self, v: float) -> None:
        entry = self._bins.get(_bin(v))
        if entry is None:
            self._bins[_bin(v)] = [1.0, v]
        else:
            entry[0] += 1.0
            entry[1] += v

    @property
    def stored(self) -> int:
        """How many numbers this holds (the memory bound that tests check)."""
        return (len(self._exact) if self._exact is not None else 0) + 2 * len(self._bins)

    @property
    def mean(self) -> float | None:
        if not self.n:
            return None
        if self._exact is not None:
            return float(np.frombuffer(self._exact, dtype=np.float64).mean())
        return (self._sum + self._comp) / self.n

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Quantiles (numpy's linear interpolation; between bin means past ``EXACT_LIMIT``)."""
        if not self.n:
            return [math.nan for _ in qs]
        if self._exact is not None:
            values = np.frombuffer(self._exact, dtype=np.float64)
            return [float(x) for x in np.quantile(values, list(qs))]
        bins = sorted((s / c, c) for c, s in self._bins.values())
        means = np.array([m for m, _ in bins])
        ends = np.cumsum([c for _, c in bins])  # ranks 0..ends[i]-1 fall in bin i
        out = []
        for q in qs:
            if q <= 0.0:
                out.append(self.min)
                continue
            if q >= 1.0:
                out.append(self.max)
                continue
            h = q * (self.n - 1)
            lo, hi = math.floor(h), math.ceil(h)
            a = means[int(np.searchsorted(ends, lo, side="right"))]
            b = means[int(np.searchsorted(ends, hi, side="right"))]
            out.append(float(min(max(a + (h - lo) * (b - a), self.min), self.max)))
        return out

    def _weighted(self) -> tuple[np.ndarray, np.ndarray]:
        """The values and how many each stands for (bin means and counts past the limit)."""
        if self._exact is not None:
            values = np.frombuffer(self._exact, dtype=np.float64)
            return values, np.ones(values.size)
        values = np.array([s / c for c, s in self._bins.values()])
        return values, np.array([c for c, _ in self._bins.values()])

    def log10_histogram(self, bins: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Edges and counts of log10 of the positive values (terminal charts); None when fewer
        than two values are positive."""
        values, weights = self._weighted()
        keep = values > 0
        if weights[keep].sum() < 2:
            return None
        logs = np.log10(values[keep])
        lo, hi = float(logs.min()), float(logs.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(logs, bins=bins, range=(lo, hi), weights=weights[keep])
        return edges, counts
