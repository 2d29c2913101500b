"""The verdict engine: run the rules on the evidence, order the findings, compare them with
the model as trained.

The rules live in ``rules`` (one function per code, registered in ``RULES``); the types in
``evidence``. ``decide(ev)`` runs every rule in order, each seeing the verdicts before it, and
lists HEALTHY first, then errors, warnings, info. Under an intervention,
``compare_with_baseline`` marks each verdict ``persists`` or ``new`` against the same sample
without interventions and lists the problems that went away as ``resolved``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from fga_tui.diagnostics.evidence import (
    CODES,
    NEW,
    PERSISTS,
    REMEDIES,
    RESOLVED,
    Evidence,
    Probe,
    Verdict,
)
from fga_tui.diagnostics.rules import BLOCKS_HEALTHY, RULES, Rule, symptom
from fga_tui.diagnostics.severity import Severity

__all__ = [
    "CODES",
    "NEW",
    "PERSISTS",
    "REMEDIES",
    "RESOLVED",
    "RULES",
    "Evidence",
    "Probe",
    "Rule",
    "Verdict",
    "compare_with_baseline",
    "decide",
    "sort_verdicts",
    "symptom",
]


def sort_verdicts(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """HEALTHY first, then by severity (error, warning, info); rule order within each."""
    return sorted(verdicts, key=lambda v: (v.code != "HEALTHY", -v.severity.rank))


def decide(ev: Evidence) -> list[Verdict]:
    """Run every rule of ``RULES`` in order (each sees the verdicts before it) and sort."""
    found: tuple[Verdict, ...] = ()
    for rule in RULES:
        found += tuple(rule.check(ev, found))
    return sort_verdicts(found)


# --- against the model as trained --------------------------------------------------------------


def _identity(v: Verdict) -> tuple[str, Any]:
    """What makes two verdicts "the same finding": the code and the thing it is about."""
    return v.code, v.evidence.get("branch") or v.evidence.get("weights")


def compare_with_baseline(
    current: Sequence[Verdict],
    baseline: Sequence[Verdict],
    symptom_persists: bool | None = None,
) -> tuple[list[Verdict], list[Verdict]]:
    """Mark each current verdict ``persists`` or ``new`` against the unintervened ``baseline``,
    and return the baseline's problem verdicts (warning or worse) that disappeared, marked
    ``resolved``.

    Verdicts match on code and subject (the attention branch, the degenerate weights) one to
    one; a finding that moved to another stage persists, with ``baseline_stage`` added to its
    evidence. A vanished verdict about the symptom (a code in
    ``BLOCKS_HEALTHY``) gets ``symptom_persists`` in its evidence when it is known: True means
    the finding no longer applies (e.g. a mean-ablation made the features identical, so "the
    features differ but..." is moot) while atoms still read alike, so nothing was fixed.
    """
    pool = list(baseline)
    marked = []
    for v in current:
        match = next((b for b in pool if _identity(b) == _identity(v)), None)
        if match is None:
            marked.append(dataclasses.replace(v, vs_baseline=NEW))
            continue
        pool.remove(match)
        evidence = v.evidence
        if match.stage != v.stage:
            evidence = {**v.evidence, "baseline_stage": match.stage}
        marked.append(dataclasses.replace(v, evidence=evidence, vs_baseline=PERSISTS))
    resolved = []
    for b in pool:
        if b.severity < Severity.WARNING:
            continue
        evidence = b.evidence
        if symptom_persists is not None and b.code in BLOCKS_HEALTHY:
            evidence = {**b.evidence, "symptom_persists": symptom_persists}
        resolved.append(dataclasses.replace(b, evidence=evidence, vs_baseline=RESOLVED))
    return marked, resolved
