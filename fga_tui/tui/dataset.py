"""The dataset screen's model: scan rows reduced to what a table line shows, ranked by severity.

Headless (no Textual): the screen and the tests share it. A row is ranked by its worst verdict
(error > warning > info), then by how many error and warning verdicts it has, then by row number;
failed rows (no diagnosis) come last, marked FAILED, so the filter can find them too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FAILED = "FAILED"
RANK = {"error": 3, "warning": 2, "info": 1, "failed": 0}


@dataclass(frozen=True)
class DatasetRow:
    """One scanned sample as the dataset screen lists it."""

    row: int
    position: int
    id: str
    formula: str
    worst: str  # error | warning | info | failed
    codes: tuple[str, ...]  # every verdict code once, in report order (FAILED for failed rows)
    flagged: tuple[str, ...]  # the codes of warning or error verdicts
    errors: int
    warnings: int
    error: str | None = None

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> DatasetRow:
        position = int(row.get("position", int(row.get("row", 1)) - 1))
        if row.get("status") != "ok":
            return cls(
                row=int(row.get("row", position + 1)),
                position=position,
                id=str(row.get("id") or ""),
                formula="",
                worst="failed",
                codes=(FAILED,),
                flagged=(FAILED,),
                errors=0,
                warnings=0,
                error=str(row.get("error") or "failed"),
            )
        verdicts = row.get("verdicts") or []
        codes = tuple(dict.fromkeys(v["code"] for v in verdicts))
        flagged = tuple(
            dict.fromkeys(v["code"] for v in verdicts if v.get("severity") in ("warning", "error"))
        )
        sev = [v.get("severity") for v in verdicts]
        return cls(
            row=int(row.get("row", position + 1)),
            position=position,
            id=str(row.get("id") or ""),
            formula=str(row.get("formula") or ""),
            worst=str(row.get("worst") or "info"),
            codes=codes,
            flagged=flagged,
            errors=sev.count("error"),
            warnings=sev.count("warning"),
        )

    @property
    def sort_key(self) -> tuple[int, int, int, int]:
        return (-RANK.get(self.worst, 0), -self.errors, -self.warnings, self.row)


def ranked(rows: Iterable[dict[str, Any]]) -> list[DatasetRow]:
    """Rows (JSON dicts of a scan) in severity order, worst first."""
    return sorted((DatasetRow.from_json(r) for r in rows), key=lambda r: r.sort_key)


def code_counts(rows: Sequence[DatasetRow]) -> list[tuple[str, int]]:
    """Every verdict code (and FAILED) with the number of rows showing it, most common first."""
    counts: Counter[str] = Counter()
    for r in rows:
        counts.update(r.codes)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def filtered(rows: Sequence[DatasetRow], code: str | None) -> list[DatasetRow]:
    return list(rows) if code is None else [r for r in rows if code in r.codes]
