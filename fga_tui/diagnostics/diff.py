"""Two reports of one sample side by side: did the fix change the diagnosis?"""

from __future__ import annotations

from typing import Any

from fga_tui.diagnostics.report import Report


def _num(x: float | None, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def _stage_pairs(a: Report, b: Report) -> list[tuple[str, Any, Any]]:
    ma = {m.name: m for m in a.stages}
    mb = {m.name: m for m in b.stages}
    names = list(ma) + [n for n in mb if n not in ma]
    return [(n, ma.get(n), mb.get(n)) for n in names]


def diff_json(a: Report, b: Report) -> dict[str, Any]:
    """``{"schema": "fga-tui.diff/1", "a": report, "b": report, "changes": {...}}``."""
    codes_a = {v.code for v in a.verdicts}
    codes_b = {v.code for v in b.verdicts}
    jsd_a = (a.attention or {}).get("cross_orbit_jsd")
    jsd_b = (b.attention or {}).get("cross_orbit_jsd")
    return {
        "schema": "fga-tui.diff/1",
        "a": a.to_json(),
        "b": b.to_json(),
        "changes": {
            "verdicts_resolved": sorted(codes_a - codes_b),
            "verdicts_new": sorted(codes_b - codes_a),
            "prediction": [a.prediction, b.prediction],
            "attention_cross_orbit_jsd": [jsd_a, jsd_b],
            "worst_severity": [a.worst_severity.value, b.worst_severity.value],
            "prediction_no_text": [_reliance(a), _reliance(b)],
            "grounding_mean": [_grounding(a), _grounding(b)],
        },
    }


def _reliance(r: Report) -> float | None:
    return (r.text_reliance or {}).get("prediction_no_text")


def _grounding(r: Report) -> float | None:
    return ((r.grounding or {}).get("mean") or {}).get("attention")


def _verdict_line(r: Report) -> str:
    return ", ".join(f"{v.severity.glyph} {v.code}" for v in r.verdicts) or "—"


def diff_text(a: Report, b: Report) -> str:
    out = [
        f"fga-tui diff — {a.sample['id']} ({a.sample['formula']}, {a.sample['num_atoms']} atoms)",
        f"  A: {a.checkpoint['path']}",
        f"  B: {b.checkpoint['path']}",
        f"prediction        A {a.prediction:.6g}   B {b.prediction:.6g}",
        f"attention x-orbit JSD  A {_num((a.attention or {}).get('cross_orbit_jsd'))}"
        f"   B {_num((b.attention or {}).get('cross_orbit_jsd'))} (bits)",
        f"without the text  A {_num(_reliance(a), '.6g')}   B {_num(_reliance(b), '.6g')}",
        f"grounding (mean)  A {_num(_grounding(a))}   B {_num(_grounding(b))}",
        "",
        f"verdicts A: {_verdict_line(a)}",
        f"verdicts B: {_verdict_line(b)}",
        "",
        f"  {'stage':<10} {'separation A':>13} {'separation B':>13} {'MAD A':>7} {'MAD B':>7}",
    ]
    for name, ma, mb in _stage_pairs(a, b):
        out.append(
            f"  {name:<10} {_num(a.separation.get(name), '.2e'):>13} "
            f"{_num(b.separation.get(name), '.2e'):>13} "
            f"{_num(ma.mad if ma else None, '.3f'):>7} {_num(mb.mad if mb else None, '.3f'):>7}"
        )
    if a.top_words or b.top_words:
        out += ["", "top words (A | B):"]
        wa = {e["atom"]: e["words"] for e in a.top_words}
        wb = {e["atom"]: e["words"] for e in b.top_words}
        for atom in a.labels:
            left = " ".join(w for w, _ in wa.get(atom, [])[:4]) or "—"
            right = " ".join(w for w, _ in wb.get(atom, [])[:4]) or "—"
            out.append(f"  {atom:>8}: {left:<36} | {right}")
    return "\n".join(out)


def diff_markdown(a: Report, b: Report) -> str:
    out = [
        f"# fga-tui diff: {a.sample['id']}",
        "",
        "| | A | B |",
        "|---|---|---|",
        f"| checkpoint | `{a.checkpoint['path']}` | `{b.checkpoint['path']}` |",
        f"| prediction | {a.prediction:.6g} | {b.prediction:.6g} |",
        f"| verdicts | {_verdict_line(a)} | {_verdict_line(b)} |",
        "",
        "| stage | separation A | separation B |",
        "|---|---|---|",
    ]
    for name, _, _ in _stage_pairs(a, b):
        out.append(
            f"| {name} | {_num(a.separation.get(name), '.2e')} | "
            f"{_num(b.separation.get(name), '.2e')} |"
        )
    return "\n".join(out) + "\n"
