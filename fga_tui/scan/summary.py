"""The dataset summary, accumulated one row at a time (memory flat in the number of rows).

Counts live in counters bounded by the vocabulary (verdict codes, elements, space groups); the
metric distributions are ``StreamingStats`` (exact up to a few thousand rows, then a histogram
bounded by the values' range, not their number); the worst rows are a bounded heap; the errors
list keeps the first ``MAX_ERRORS`` and a count. Nothing grows with the number of rows. The same
class summarises a finished rows file (``summarize_rows``), which is how ``--resume``,
``--summary-only`` and a torchrun merge give the summary of a single uninterrupted scan.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from fga_tui.diagnostics.attribution_rows import AttributionAggregate
from fga_tui.diagnostics.streaming import StreamingStats

SCHEMA = "fga-tui.scan/2"
KEY_METRICS = (
    "attention_cross_orbit_jsd",
    "separation_at_fga_input",
    "mad_at_fga_input",
    "effective_rank_at_fga_input",
    "shared_fraction",
)
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
MAX_ERRORS = 50
WORST_ROWS = 10
TEXT_ERRORS = 20


def severity_key(row: dict[str, Any]) -> tuple[int, int, int]:
    """How bad a successful row is: worst severity, then its error and warning verdict counts."""
    sev = [v.get("severity") for v in row.get("verdicts", ())]
    return (
        SEVERITY_RANK.get(row.get("worst", "info"), 0),
        sev.count("error"),
        sev.count("warning"),
    )


@dataclass
class Breakdown:
    """Rows sharing one element or one space group."""

    samples: int = 0
    worst: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "worst_severity": dict(self.worst),
            "verdicts": dict(self.verdicts.most_common()),
        }


@dataclass
class ScanSummary:
    """Counts and distributions over all rows of a scan."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    verdict_samples: Counter = field(default_factory=Counter)
    worst: Counter = field(default_factory=Counter)
    metrics: dict[str, StreamingStats] = field(
        default_factory=lambda: {k: StreamingStats() for k in KEY_METRICS}
    )
    errors: list[dict[str, Any]] = field(default_factory=list)
    by_element: dict[str, Breakdown] = field(default_factory=dict)
    by_spacegroup: dict[str, Breakdown] = field(default_factory=dict)
    seconds: float = 0.0
    scanned: int = 0  # rows run by this invocation (the rest came from the journal)
    distributed: dict[str, Any] | None = None
    attribution: AttributionAggregate = field(default_factory=AttributionAggregate)
    _worst_heap: list[tuple[tuple[int, int, int, int], dict[str, Any]]] = field(
        default_factory=list
    )

    def add(self, row: dict[str, Any]) -> None:
        self.total += 1
        if row.get("status") != "ok":
            self.failed += 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(
                    {"row": row.get("row"), "id": row.get("id"), "error": row.get("error")}
                )
            return
        self.ok += 1
        self.attribution.add(row)
        codes = sorted({v["code"] for v in row.get("verdicts", ())})
        self.verdict_samples.update(codes)
        worst = row.get("worst", "info")
        self.worst[worst] += 1
        for k in KEY_METRICS:
            v = (row.get("metrics") or {}).get(k)
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.metrics[k].add(float(v))
        groups = [(self.by_element, el) for el in row.get("elements") or ()]
        if row.get("spacegroup"):
            groups.append((self.by_spacegroup, str(row["spacegroup"])))
        for table, key in groups:
            entry = table.setdefault(key, Breakdown())
            entry.samples += 1
            entry.worst[worst] += 1
            entry.verdicts.update(codes)
        key = (*severity_key(row), -int(row.get("row") or 0))
        brief = {
            "row": row.get("row"),
            "id": row.get("id"),
            "formula": row.get("formula"),
            "worst": worst,
            "verdicts": [v["code"] for v in row.get("verdicts", ()) if v["severity"] != "info"],
        }
        if len(self._worst_heap) < WORST_ROWS:
            heapq.heappush(self._worst_heap, (key, brief))
        elif key > self._worst_heap[0][0]:
            heapq.heapreplace(self._worst_heap, (key, brief))

    @property
    def worst_rows(self) -> list[dict[str, Any]]:
        return [b for _, b in sorted(self._worst_heap, key=lambda kb: kb[0], reverse=True)]

    def distribution(self, key: str) -> dict[str, float] | None:
        stats = self.metrics[key]
        if not stats.n:
            return None
        q = stats.quantiles([0.0, 0.1, 0.5, 0.9, 1.0])
        return {
            "n": stats.n,
            "min": q[0],
            "p10": q[1],
            "median": q[2],
            "p90": q[3],
            "max": q[4],
            "mean": stats.mean,
        }

    def generality(self, code: str) -> str:
        n = self.verdict_samples.get(code, 0)
        if not self.ok or n == 0:
            return "absent"
        if n == 1 and self.ok > 1:
            return "one sample"
        return "general" if n / self.ok >= 0.5 else "some samples"

    def to_json(self) -> dict[str, Any]:
        rate = self.scanned / self.seconds if self.seconds and self.scanned else None
        return {
            "schema": SCHEMA,
            "samples": self.total,
            "ok": self.ok,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "samples_per_second": round(rate, 3) if rate else None,
            "verdicts": {
                code: {
                    "samples": n,
                    "fraction": n / self.ok if self.ok else 0.0,
                    "generality": self.generality(code),
                }
                for code, n in sorted(self.verdict_samples.items(), key=lambda kv: (-kv[1], kv[0]))
            },
            "worst_severity": {s: self.worst[s] for s in SEVERITY_RANK if self.worst[s]},
            "metrics": {k: self.distribution(k) for k in KEY_METRICS},
            "attribution": self.attribution.to_json(),
            "by_element": {k: self.by_element[k].to_json() for k in sorted(self.by_element)},
            "by_spacegroup": {
                k: self.by_spacegroup[k].to_json() for k in sorted(self.by_spacegroup)
            },
            "worst_rows": self.worst_rows,
            "errors": self.errors,
            "error_count": self.failed,
            "distributed": self.distributed,
        }

    # ---- text, markdown, chart ----------------------------------------------------------------

    def _error_lines(self, limit: int) -> list[str]:
        lines = [f"  row {e['row']}{_id(e)}: {e['error']}" for e in self.errors[:limit]]
        if self.failed > len(lines):
            lines.append(f"  … and {self.failed - len(lines)} more failed rows (see the rows file)")
        return lines

    def _breakdown_rows(self, table: dict[str, Breakdown], limit: int) -> list[list[str]]:
        items = sorted(table.items(), key=lambda kv: (-kv[1].samples, kv[0]))[:limit]
        out = []
        for key, b in items:
            bad = b.worst["error"] + b.worst["warning"]
            top = ", ".join(f"{c} {n}" for c, n in b.verdicts.most_common(2) if c != "HEALTHY")
            out.append([key, str(b.samples), f"{100.0 * bad / b.samples:.0f}%", top or "-"])
        return out

    def to_text(self, chart: bool = True, width: int = 70) -> str:
        out = [
            f"scanned {self.total} samples ({self.ok} ok, {self.failed} failed)"
            + (f" in {self.seconds:.1f} s" if self.seconds else "")
        ]
        if self.distributed and self.distributed.get("world_size", 1) > 1:
            per = ", ".join(map(str, self.distributed["rows_per_rank"]))
            out.append(f"  {self.distributed['world_size']} processes; rows per rank: {per}")
        if self.verdict_samples:
            out.append("verdicts (samples showing each):")
            for code, n in sorted(self.verdict_samples.items(), key=lambda kv: (-kv[1], kv[0])):
                pct = 100.0 * n / self.ok
                out.append(f"  {code:<24} {n:>6}  {pct:5.1f}%  {self.generality(code)}")
        if self.ok:
            sev = ", ".join(f"{s} {self.worst[s]}" for s in SEVERITY_RANK if self.worst[s])
            out.append(f"worst severity per sample: {sev}")
        dists = [(k, self.distribution(k)) for k in KEY_METRICS]
        if any(d for _, d in dists):
            out.append("metrics (min / median / max):")
            for k, d in dists:
                if d:
                    out.append(f"  {k:<30} {d['min']:.3g} / {d['median']:.3g} / {d['max']:.3g}")
        out.extend(self.attribution.to_text_lines())
        for title, table in (("element", self.by_element), ("space group", self.by_spacegroup)):
            if table:
                out.append(f"by {title} (samples, warning or worse, top verdicts):")
                for key, n, bad, top in self._breakdown_rows(table, 12):
                    out.append(f"  {key:<12} {n:>6}  {bad:>4}  {top}")
                if len(table) > 12:
                    out.append(f"  … {len(table) - 12} more (JSON has all)")
        if self.worst_rows:
            out.append("worst rows:")
            for w in self.worst_rows:
                codes = ", ".join(w["verdicts"]) or "-"
                out.append(f"  row {w['row']}{_id(w)} {w['formula'] or ''} [{w['worst']}] {codes}")
        if chart:
            drawn = self.chart(width=width)
            if drawn:
                out.append(drawn)
        if self.failed:
            out.append(f"errors ({self.failed}):")
            out.extend(self._error_lines(TEXT_ERRORS))
        return "\n".join(out)

    def to_markdown(self) -> str:
        out = [
            "# fga-tui scan",
            "",
            f"{self.total} samples: {self.ok} ok, {self.failed} failed.",
            "",
        ]
        if self.verdict_samples:
            out += ["| verdict | samples | % | generality |", "|---|---:|---:|---|"]
            for code, n in sorted(self.verdict_samples.items(), key=lambda kv: (-kv[1], kv[0])):
                out.append(
                    f"| `{code}` | {n} | {100.0 * n / self.ok:.1f} | {self.generality(code)} |"
                )
            out.append("")
        for title, table in (("Element", self.by_element), ("Space group", self.by_spacegroup)):
            if table:
                out += [
                    f"## By {title.lower()}",
                    "",
                    f"| {title} | samples | warning or worse | top verdicts |",
                    "|---|---:|---:|---|",
                ]
                out += [f"| {' | '.join(r)} |" for r in self._breakdown_rows(table, 1000)]
                out.append("")
        if self.worst_rows:
            out += [
                "## Worst rows",
                "",
                "| row | id | formula | worst | verdicts |",
                "|---:|---|---|---|---|",
            ]
            for w in self.worst_rows:
                out.append(
                    f"| {w['row']} | {w['id'] or ''} | {w['formula'] or ''} | {w['worst']} | "
                    f"{', '.join(w['verdicts']) or '-'} |"
                )
            out.append("")
        if self.failed:
            out += [f"## Errors ({self.failed})", ""]
            out += [f"- {line.strip()}" for line in self._error_lines(MAX_ERRORS)]
        return "\n".join(out).rstrip() + "\n"

    def chart(self, width: int = 70) -> str:
        """Terminal charts (plotext): the verdict histogram and the cross-orbit JSD spread."""
        parts = []
        if self.verdict_samples:
            codes = sorted(self.verdict_samples.items(), key=lambda kv: (-kv[1], kv[0]))
            parts.append(
                bar_text(
                    [c for c, _ in codes],
                    [n for _, n in codes],
                    "samples per verdict",
                    width=width,
                    height=min(len(codes) + 4, 24),
                )
            )
        jsd = self.metrics["attention_cross_orbit_jsd"]
        if jsd.n > 1:
            parts.append(histogram_text(jsd, "attention cross-orbit JSD (bits), log10", width))
        return "\n".join(p for p in parts if p)


def _id(entry: dict[str, Any]) -> str:
    return f" ({entry['id']})" if entry.get("id") else ""


def bar_text(
    labels: Sequence[str], values: Sequence[int], title: str, width: int, height: int
) -> str:
    """A plotext (6.x) horizontal bar chart as plain text."""
    import plotext as plt

    fig = plt.figure
    fig.clear()
    try:
        fig.draw(fig.bar(list(labels), list(values), orientation="horizontal", width=1 / 5))
        fig.title(title)
        fig.plot_size(width, height)
        return plt.uncolorize(str(fig.build()))
    except Exception:  # plotext layout failures on odd sizes: the table above has the numbers
        return ""
    finally:
        fig.clear()


def histogram_text(
    values: Iterable[float] | StreamingStats, title: str, width: int = 70, height: int = 12
) -> str:
    """A plotext (6.x) histogram of log10 of the positive values, as plain text (bars per bin,
    from a ``StreamingStats`` in bounded memory)."""
    import plotext as plt

    stats = values if isinstance(values, StreamingStats) else StreamingStats(values)
    hist = stats.log10_histogram(bins=min(20, max(5, stats.n // 3)))
    if hist is None:
        return ""
    edges, counts = hist
    labels = [f"{(a + b) / 2:.2f}" for a, b in pairwise(edges)]
    fig = plt.figure
    fig.clear()
    try:
        fig.draw(fig.bar(labels, [float(c) for c in counts], width=4 / 5))
        fig.title(title)
        fig.plot_size(width, height)
        return plt.uncolorize(str(fig.build()))
    except Exception:  # plotext layout failures on odd sizes: the table above has the numbers
        return ""
    finally:
        fig.clear()


def summarize_rows(rows: Iterable[dict[str, Any]]) -> ScanSummary:
    """The summary of a stream of rows (a rows file, a journal)."""
    summary = ScanSummary()
    for row in rows:
        summary.add(row)
    return summary
