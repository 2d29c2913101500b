"""One JSONL row per sample: what a scan records about it (the rows-file contract).

Every row: ``row`` (1-based entry number in the input, bad entries included; for a JSONL file
without blank lines, its line number), ``position`` (0-based, what ``--index`` takes), ``id``
(when readable, also for rows that then failed), ``status`` ("ok" | "error"). A failed row adds
``error``; a successful one the prediction, the verdicts, key metrics, orbits, top words and what
the dataset summary breaks down by (``elements``, ``spacegroup``), the attention grounding and,
with ``--attribution``, the text reliance.
"""

from __future__ import annotations

from typing import Any


def error_row(position: int, sample_id: str | None, message: str) -> dict[str, Any]:
    return {
        "row": position + 1,
        "position": position,
        "id": sample_id,
        "status": "error",
        "error": message,
    }


def ok_row(position: int, diagnosis: Any, trace: Any, attribution: Any = None) -> dict[str, Any]:
    from fga_tui.diagnostics.attribution_rows import row_fields
    from fga_tui.diagnostics.report import fga_input_stage

    rep = diagnosis.report
    fin = fga_input_stage(trace) or trace.stages[-1]
    m = diagnosis.metrics[fin]
    att = rep.attention or {}
    dec = att.get("decomposition") or {}
    symmetry = rep.symmetry or {}
    return {
        "row": position + 1,
        "position": position,
        "id": rep.sample["id"],
        "status": "ok",
        "formula": rep.sample["formula"],
        "num_atoms": rep.sample["num_atoms"],
        "elements": sorted(set(trace.elements)),
        "spacegroup": symmetry.get("spacegroup"),
        "prediction": rep.prediction,
        "target": rep.sample["target"],
        "worst": rep.worst_severity,
        "verdicts": [
            {"code": v.code, "severity": v.severity, "stage": v.evidence.get("stage")}
            for v in rep.verdicts
        ],
        "metrics": {
            "attention_cross_orbit_jsd": att.get("cross_orbit_jsd"),
            "separation_at_fga_input": rep.separation.get(fin),
            "mad_at_fga_input": m.mad,
            "effective_rank_at_fga_input": m.effective_rank,
            "shared_fraction": dec.get("shared_fraction"),
        },
        "orbits": rep.orbits,
        "top_words": {e["atom"]: [w for w, _ in e["words"][:5]] for e in rep.top_words},
        **row_fields(trace, attribution),
    }


def assemble_job(
    model_view: Any,
    position: int,
    prepared: Any,
    trace: Any,
    audit_result: Any,
    ablation_traces: dict[str, Any],
    stopwords: set[str] | None,
    symmetry: Any,
    attribution: Any = None,
) -> dict[str, Any]:
    """Diagnosis of one traced sample (and its attribution, when computed) -> its row."""
    from fga_tui.diagnostics.report import assemble

    diag = assemble(
        model_view,
        prepared,
        trace,
        audit_result=audit_result,
        ablation_traces=ablation_traces,
        stopwords=stopwords,
        symmetry=symmetry,
        lean=True,
    )
    return ok_row(position, diag, trace, attribution)
