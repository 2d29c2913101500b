"""Text and Markdown renderings of a ``Report`` (for terminals, CI logs and snapshots).

Under an intervention the first line says so (the numbers are not the model as trained).
Severities read without colour: glyph and word (``Severity.mark``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fga_tui.diagnostics.attribution import report_lines
from fga_tui.diagnostics.severity import Severity, count_line

if TYPE_CHECKING:
    from fga_tui.diagnostics.report import Report
    from fga_tui.diagnostics.verdict import Verdict


def intervention_line(report: Report) -> str | None:
    """``"UNDER INTERVENTION no-fusion — not the model as trained"``, or None."""
    if not report.intervention:
        return None
    return f"UNDER INTERVENTION {', '.join(report.intervention)} — not the model as trained"


def verdict_summary(report: Report) -> str:
    """``"verdicts: 1 error, 2 warnings, 3 info"`` (+ resolved ones under an intervention)."""
    line = f"verdicts: {count_line(v.severity for v in report.verdicts)}"
    if report.resolved:
        line += f"; {len(report.resolved)} resolved by the intervention"
    return line


def _resolved_mark(v: Verdict) -> str:
    """``✓ RESOLVED``, or ``○ NO LONGER APPLIES`` when the symptom it explained persists."""
    return "○ NO LONGER APPLIES" if v.evidence.get("symptom_persists") else "✓ RESOLVED"


def _vs(v: Verdict) -> str:
    return f" [{v.vs_baseline}]" if v.vs_baseline else ""


def _md(text: str) -> str:
    """A table cell: pipes escaped, no line breaks."""
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "—" if x is None else format(x, spec)


def _stage_rows(report: Report) -> list[list[str]]:
    rows = []
    for m in report.stages:
        rows.append(
            [
                m.name,
                _fmt(m.mean_raw_corr),
                _fmt(m.mean_centered_corr),
                _fmt(m.cross_orbit_centered_corr),
                _fmt(report.separation.get(m.name), ".2e"),
                _fmt(m.mad),
                _fmt(m.effective_rank, ".2f"),
            ]
        )
    return rows


STAGE_HEADER = ["stage", "raw corr", "centred", "x-orbit", "separation", "MAD", "eff.rank"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        return "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return [line(header), *[line(r) for r in rows]]


#: a text or markdown report lists orbits and per-atom words in full up to here; a big cell
#: (a 5,000-atom supercell has 5,000 orbits without symmetry) gets the first ones and a count.
MAX_ATOMS_LISTED = 48


#: labels shown inside one orbit before "+N"
MAX_MEMBERS_LISTED = 8


def _orbits(report: Report, sep: str, inner: str) -> str:
    def one(orbit: list[int]) -> str:
        names = [report.labels[i] for i in orbit[:MAX_MEMBERS_LISTED]]
        if len(orbit) > len(names):
            names.append(f"+{len(orbit) - len(names)}")
        return "{" + inner.join(names) + "}"

    shown = report.orbits[:MAX_ATOMS_LISTED]
    text = sep.join(one(o) for o in shown)
    if len(shown) < len(report.orbits):
        text += f"{sep}... {len(report.orbits) - len(shown)} more orbits"
    return text


def _listed_words(report: Report) -> list[dict]:
    """Every atom's top words, or for a big cell one atom of each of the first orbits."""
    if len(report.top_words) <= MAX_ATOMS_LISTED:
        return report.top_words
    return [report.top_words[o[0]] for o in report.orbits[:MAX_ATOMS_LISTED]]


def _words_note(report: Report, listed: int) -> str | None:
    if listed == len(report.top_words):
        return None
    return (
        f"one atom of each of the first {listed} of {len(report.orbits)} orbits shown "
        f"({len(report.top_words)} atoms; --format json lists every atom)"
    )


def report_text(report: Report) -> str:
    s, c = report.sample, report.checkpoint
    first = intervention_line(report)
    out = [first] if first else []
    out += [
        f"fga-tui report — {s['id']} ({s['formula']}, {s['num_atoms']} atoms)",
        f"checkpoint: {c['path']} [{c['layout']}]"
        + (f", inferred: {', '.join(c['inferred'])}" if c["inferred"] else ""),
        f"prediction: {report.prediction:.6g}"
        + (f"   target: {s['target']:.6g}" if isinstance(s.get("target"), float) else ""),
        f"symmetry: {report.symmetry.get('spacegroup')}; orbits: " + _orbits(report, "  ", ","),
        "",
        verdict_summary(report),
    ]
    for v in report.verdicts:
        stage = v.stage
        out.append(
            f"  {v.severity.mark} {v.code}"
            + (f" @ {stage}" if stage else "")
            + _vs(v)
            + f": {v.message}"
        )
        if v.remedy and v.severity > Severity.INFO:
            out.append(f"      remedy: {v.remedy}")
    for v in report.resolved:
        stage = v.stage
        out.append(
            f"  {_resolved_mark(v)} {v.code}"
            + (f" @ {stage}" if stage else "")
            + f" (was {v.severity.value} without the intervention"
            + ("; atoms still read alike" if v.evidence.get("symptom_persists") else "")
            + f"): {v.message}"
        )
    out += ["", "stages:"]
    out += ["  " + r for r in _table(STAGE_HEADER, _stage_rows(report))]
    if report.top_words:
        out += ["", "top words (head average):"]
        entries = _listed_words(report)
        for entry in entries:
            words = ", ".join(f"{w} {x:.3f}" for w, x in entry["words"][:5])
            out.append(f"  {entry['atom']:>8}: {words}")
        note = _words_note(report, len(entries))
        if note:
            out.append(f"  ... {note}")
    if report.profile:
        out += ["", "attention if read from each stage (cross-orbit JSD, bits):"]
        out.append(
            "  "
            + "  ".join(f"{p['stage']}={_fmt(p['cross_orbit_jsd'], '.2e')}" for p in report.profile)
        )
    if report.ablations and len(report.ablations) > 1:
        out += ["", "ablations:"]
        for name, vals in report.ablations.items():
            if name == "active":
                continue
            out.append(
                f"  {name}: separation {_fmt(vals.get('separation_at_fga_input'), '.2e')}, "
                f"attention x-orbit JSD {_fmt(vals.get('attention_cross_orbit_jsd'), '.2e')}, "
                f"prediction {vals.get('prediction'):.6g}"
                + {True: ", atoms still read alike", False: ", atoms read apart"}.get(
                    vals.get("symptom_persists"), ""
                )
            )
    out += report_lines(report)
    return "\n".join(out)


def report_markdown(report: Report) -> str:
    s, c = report.sample, report.checkpoint
    first = intervention_line(report)
    out = [f"**{first}**", ""] if first else []
    out += [
        f"# fga-tui report: {s['id']} ({s['formula']})",
        "",
        f"- checkpoint: `{c['path']}` ({c['layout']})",
        f"- prediction: {report.prediction:.6g}",
        f"- symmetry: {report.symmetry.get('spacegroup')}, orbits: " + _orbits(report, ", ", ", "),
        "",
        "## Verdicts",
        "",
        verdict_summary(report),
        "",
    ]
    compared = bool(report.intervention or report.resolved) or any(
        v.vs_baseline for v in report.verdicts
    )
    if compared:
        out += ["| severity | code | stage | vs. as trained | message |", "|---|---|---|---|---|"]
    else:
        out += ["| severity | code | stage | message |", "|---|---|---|---|"]
    for v in report.verdicts:
        vs = f" {v.vs_baseline or ''} |" if compared else ""
        out.append(
            f"| {v.severity.mark.strip()} | `{v.code}` | {v.stage or ''} |{vs} {_md(v.message)} |"
        )
    for v in report.resolved:
        out.append(
            f"| {_resolved_mark(v)} (was {v.severity.value}) | `{v.code}` | {v.stage or ''} | "
            f"resolved | {_md(v.message)} |"
        )
    out += [
        "",
        "## Stages",
        "",
        "| " + " | ".join(STAGE_HEADER) + " |",
        "|" + "---|" * len(STAGE_HEADER),
    ]
    out += ["| " + " | ".join(r) + " |" for r in _stage_rows(report)]
    if report.top_words:
        out += ["", "## Top words", "", "| atom | words |", "|---|---|"]
        entries = _listed_words(report)
        for entry in entries:
            words = ", ".join(f"{w} ({x:.3f})" for w, x in entry["words"][:5])
            out.append(f"| {entry['atom']} | {words} |")
        note = _words_note(report, len(entries))
        if note:
            out += ["", f"_{note}_"]
    out += report_lines(report, markdown=True)
    return "\n".join(out) + "\n"
