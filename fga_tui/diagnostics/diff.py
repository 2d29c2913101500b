"""Two reports of one sample side by side: did the fix change the diagnosis?"""

from __future__ import annotations

from typing import Any

from fga_tui.diagnostics.report import Report


def _num(x: float | None, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def stage_order(name: str) -> tuple[int, int, int]:
    """Forward order of a stage name: embed, alignn.k (fusion.k right after it), gcn.k, fga."""
    head, _, idx = name.partition(".")
    k = int(idx) if idx.isdigit() else 0
    rank = {"embed": (0, 0), "alignn": (1, 0), "fusion": (1, 1), "gcn": (2, 0), "fga": (3, 0)}
    group, sub = rank.get(head, (4, 0))
    return (group, k, sub)


def _stage_pairs(a: Report, b: Report) -> list[tuple[str, Any, Any]]:
    """Every stage of either report in forward order (one model may have stages the other
    lacks: fusion, more layers), with each report's metrics or None."""
    ma = {m.name: m for m in a.stages}
    mb = {m.name: m for m in b.stages}
    names = sorted(dict.fromkeys([*ma, *mb]), key=stage_order)
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


def _verdict_rows(a: Report, b: Report) -> list[tuple[str, str, str]]:
    """(code, A's severity, B's severity) for every verdict code of either report, in order."""

    def cells(r: Report) -> dict[str, str]:
        out: dict[str, list[str]] = {}
        for v in r.verdicts:
            out.setdefault(v.code, []).append(str(getattr(v.severity, "value", v.severity)))
        return {
            code: sevs[0] + (f" ×{len(sevs)}" if len(sevs) > 1 else "")
            for code, sevs in out.items()
        }

    ca, cb = cells(a), cells(b)
    codes = list(dict.fromkeys([*ca, *cb]))
    return [(c, ca.get(c, "—"), cb.get(c, "—")) for c in codes]


def diff_text(a: Report, b: Report) -> str:
    """Side by side in aligned columns: label, A, B."""
    jsd_a = (a.attention or {}).get("cross_orbit_jsd")
    jsd_b = (b.attention or {}).get("cross_orbit_jsd")
    rows = [
        ("prediction", f"{a.prediction:.6g}", f"{b.prediction:.6g}"),
        ("x-orbit JSD (bits)", _num(jsd_a), _num(jsd_b)),
        ("without the text", _num(_reliance(a), ".6g"), _num(_reliance(b), ".6g")),
        ("grounding (mean)", _num(_grounding(a)), _num(_grounding(b))),
    ]
    vrows = _verdict_rows(a, b)
    label_w = max(len(r[0]) for r in [*rows, *vrows, ("verdict", "", "")])
    col_w = max(12, *(len(r[1]) for r in [*rows, *vrows]))
    out = [
        f"fga-tui diff — {a.sample['id']} ({a.sample['formula']}, {a.sample['num_atoms']} atoms)",
        f"  A: {a.checkpoint['path']}",
        f"  B: {b.checkpoint['path']}",
        "",
        f"  {'':<{label_w}}  {'A':<{col_w}}  B",
    ]
    out += [f"  {name:<{label_w}}  {x:<{col_w}}  {y}" for name, x, y in rows]
    out += ["", f"  {'verdict':<{label_w}}  {'A':<{col_w}}  B"]
    out += [f"  {code:<{label_w}}  {x:<{col_w}}  {y}" for code, x, y in vrows]
    out += [
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
        wa = {e["atom"]: e["words"] for e in a.top_words}
        wb = {e["atom"]: e["words"] for e in b.top_words}
        left = {atom: " ".join(w for w, _ in wa.get(atom, [])[:4]) or "—" for atom in a.labels}
        atom_w = max(4, *(len(x) for x in a.labels))
        left_w = max(len("top words A"), *(len(x) for x in left.values()))
        out += ["", f"  {'atom':<{atom_w}}  {'top words A':<{left_w}} | top words B"]
        for atom in a.labels:
            right = " ".join(w for w, _ in wb.get(atom, [])[:4]) or "—"
            out.append(f"  {atom:<{atom_w}}  {left[atom]:<{left_w}} | {right}")
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
