"""Reports under an intervention: said first, compared with the model as trained; the summary
line counts verdicts by severity; one Severity type orders and marks them everywhere."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fga_tui import cli, engine
from fga_tui.diagnostics.report import Report, assemble, diagnose
from fga_tui.diagnostics.severity import Severity, count_line
from fga_tui.diagnostics.verdict import Verdict
from fga_tui.interventions import Interventions
from fga_tui.text.demo_encoder import packaged_dir

DEMO = packaged_dir()
PROBLEM, SAMPLE = DEMO / "demo_problem.pt", DEMO / "ba4hfli.json"
needs_demo = pytest.mark.skipif(
    not (PROBLEM.exists() and SAMPLE.exists()), reason="demo files not built"
)


def bare_report(verdicts, resolved=(), intervention=()) -> Report:
    return Report(
        sample={"id": "s", "formula": "NaCl", "num_atoms": 2, "target": None},
        checkpoint={"path": "c.pt", "layout": "fork-best", "inferred": []},
        stages=[],
        orbits=[[0], [1]],
        labels=["Na_0", "Cl_1"],
        top_words=[],
        verdicts=list(verdicts),
        prediction=0.5,
        intervention=list(intervention),
        resolved=list(resolved),
    )


def V(code, severity, **kw) -> Verdict:
    return Verdict(code, severity, f"{code} message", kw.pop("evidence", {}), **kw)


# --- Severity ----------------------------------------------------------------------------------


def test_severity_orders_by_rank_and_stays_the_json_word():
    assert Severity.INFO < Severity.WARNING < Severity.ERROR
    assert Severity.ERROR > "warning" and not Severity.INFO >= "warning"
    assert sorted(["error", "info", "warning"], key=Severity.of) == ["info", "warning", "error"]
    assert Severity.worst(["info", "error", "warning"]) is Severity.ERROR
    assert Severity.worst([]) is Severity.INFO
    assert Severity.ERROR == "error" and {"error": 1}[Severity.ERROR] == 1
    assert json.dumps({"severity": Severity.WARNING}) == '{"severity": "warning"}'
    assert [s.glyph for s in Severity.descending()] == ["✖", "▲", "●"]
    assert Severity.WARNING.mark == "▲ WARNING"
    with pytest.raises(ValueError):
        Severity.of("fatal")


def test_count_line():
    assert count_line(["info", "error", "warning", "warning", "info", "info"]) == (
        "1 error, 2 warnings, 3 info"
    )
    assert count_line(["warning"]) == "1 warning"
    assert count_line([]) == "none"


def test_verdict_severity_words_become_severity():
    v = Verdict("HEALTHY", "info", "ok")
    assert v.severity is Severity.INFO and v.to_json()["severity"] == "info"


@pytest.mark.parametrize(
    ("severities", "fail_on", "fails"),
    [
        (["info", "warning"], "error", False),
        (["info", "error"], "error", True),
        (["warning"], "warning", True),
        (["info"], "warning", False),
        (["error"], None, False),
    ],
)
def test_fail_on_uses_the_severity_order(severities, fail_on, fails):
    assert cli._fails(severities, fail_on) is fails


# --- evidence ----------------------------------------------------------------------------------


def test_same_words_count_only_between_atoms_of_different_elements():
    from fga_tui.diagnostics.same_words import same_word_pairs

    def entry(atom, words):
        return {"atom": atom, "words": [[w, 0.1] for w in words]}

    top = [
        entry("O_0", ["ba", "is", "a", "cubic", "cell"]),
        entry("O_1", ["ba", "is", "a", "cubic", "cell"]),  # another O orbit: not compared
        entry("Ti_2", ["is", "ba", "a", "cubic", "site"]),  # 4 of 5, first two swapped
        entry("Ba_3", ["ti", "is", "a", "cubic", "cell"]),  # first word not in the others'
    ]
    elements = ["O", "O", "Ti", "Ba"]
    pairs = same_word_pairs(top, [[0], [1], [2], [3]], elements)
    assert (pairs.shown, pairs.count) == ([(0, 2), (1, 2)], 2)


@pytest.mark.parametrize(("tail", "same"), [(0.0499, True), (0.05, False)])
def test_near_zero_words_do_not_make_two_atoms_read_differently(tail, same):
    from fga_tui.diagnostics.same_words import same_word_pairs

    # Both atoms put (nearly) all their weight on "in"; only their negligible words differ.
    hf = {"atom": "Hf_0", "words": [["in", 1.0]] + [[w, tail] for w in ("ba", "the", "cubic")]}
    li = {"atom": "Li_1", "words": [["in", 1.0]] + [[w, tail] for w in ("atom", "li", "2.91")]}
    pairs = same_word_pairs([hf, li], [[0], [1]], ["Hf", "Li"])
    assert pairs.shown == ([(0, 1)] if same else [])
    assert pairs.count == int(same)


# --- renders -----------------------------------------------------------------------------------


def test_summary_line_counts_verdicts_and_healthy_leads():
    report = bare_report(
        [
            V("HEALTHY", "info"),
            V("NO_GRADIENT_PATH", "warning"),
            V("ATTENTION_UNTRAINED", "warning"),
            V("DEGENERATE_SOFTMAX", "info"),
        ]
    )
    text = report.to_text().splitlines()
    assert text[0].startswith("fga-tui report — s")
    i = text.index("verdicts: 2 warnings, 2 info")
    assert text[i + 1].startswith("  ● INFO    HEALTHY")
    md = report.to_markdown()
    assert md.startswith("# fga-tui report: s")
    assert "\nverdicts: 2 warnings, 2 info\n" in md
    assert "| ● INFO | `HEALTHY` |" in md
    data = report.to_json()
    assert list(data)[:2] == ["schema", "intervention"] and data["intervention"] == []
    assert data["resolved"] == []


def test_intervention_is_said_first_with_persisting_and_resolved_verdicts():
    report = bare_report(
        [V("SHARED_QUERY_DOMINATES", "error", evidence={"stage": "fga"}, vs_baseline="persists")],
        resolved=[
            V("FUSION_HOMOGENIZES", "error", evidence={"stage": "fusion.2"}, vs_baseline="resolved")
        ],
        intervention=["no-fusion"],
    )
    text = report.to_text().splitlines()
    assert text[0] == "UNDER INTERVENTION no-fusion — not the model as trained"
    assert "verdicts: 1 error; 1 resolved by the intervention" in text
    assert (
        "  ✖ ERROR   SHARED_QUERY_DOMINATES @ fga [persists]: SHARED_QUERY_DOMINATES message"
        in text
    )
    assert any(
        line.startswith("  ✓ RESOLVED FUSION_HOMOGENIZES @ fusion.2 (was error") for line in text
    )
    md = report.to_markdown().splitlines()
    assert md[0] == "**UNDER INTERVENTION no-fusion — not the model as trained**"
    assert any("| `FUSION_HOMOGENIZES` | fusion.2 | resolved |" in line for line in md)
    data = report.to_json()
    assert data["intervention"] == ["no-fusion"]
    assert data["verdicts"][0]["vs_baseline"] == "persists"
    assert data["resolved"][0]["code"] == "FUSION_HOMOGENIZES"
    assert data["resolved"][0]["vs_baseline"] == "resolved"
    assert report.worst_severity is Severity.ERROR


# --- the demo under no-fusion ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    loaded = engine.load_model(PROBLEM, device="cpu")
    prepared = engine.prepare_sample(loaded, engine.load_sample(SAMPLE))
    return loaded, prepared, diagnose(loaded, prepared, attribution=False)


def intervene(demo, spec: str) -> Report:
    """The demo problem sample under ``spec``, compared with its diagnosis as trained."""
    loaded, prepared, base = demo
    trace = engine.run_trace(loaded, prepared, Interventions.parse([spec]))
    return assemble(
        loaded,
        prepared,
        trace,
        audit_result=base.audit,
        symmetry=base.symmetry,
        intervention=[spec],
        baseline_verdicts=base.report.verdicts,
    ).report


@needs_demo
def test_no_fusion_on_the_problem_demo_is_not_healthy_and_the_symptom_persists(demo):
    report = intervene(demo, "no-fusion")
    assert "HEALTHY" not in report.codes
    sqd = next(v for v in report.verdicts if v.code == "SHARED_QUERY_DOMINATES")
    assert (sqd.severity, sqd.vs_baseline) == (Severity.ERROR, "persists")
    assert ["Ba_0", "Li_5"] in sqd.evidence["same_top_word_pairs"]
    assert all(v.vs_baseline in ("persists", "new") for v in report.verdicts)
    assert report.resolved == []  # fusion was not the cause: nothing it hid goes away
    assert report.to_text().splitlines()[0].startswith("UNDER INTERVENTION no-fusion")
    assert report.to_json()["intervention"] == ["no-fusion"]


@needs_demo
def test_the_cause_separating_probes_say_whether_atoms_still_read_alike(demo):
    _, _, base = demo
    probes = base.report.ablations
    assert probes["no_fusion"]["symptom_persists"] is True
    assert ["Ba_0", "Li_5"] in probes["no_fusion"]["same_top_word_pairs"]
    line = next(x for x in base.report.to_text().splitlines() if x.startswith("  no_fusion:"))
    assert line.endswith(", atoms still read alike")


@needs_demo
def test_mean_ablation_at_the_attention_input_is_named_and_fixes_nothing(demo):
    report = intervene(demo, "mean-ablate=gcn.0")
    words = {tuple(w for w, _ in e["words"][:5]) for e in report.top_words}
    assert len(words) == 1  # every atom the same words
    collapse = next(v for v in report.verdicts if v.code == "FEATURE_COLLAPSE")
    assert (collapse.evidence["stage"], collapse.vs_baseline) == ("gcn.0", "new")
    assert collapse.evidence["set_by_intervention"] == ["mean-ablate=gcn.0"]
    assert "OVERSMOOTHING" not in report.codes and "HEALTHY" not in report.codes
    (gone,) = report.resolved
    assert gone.code == "SHARED_QUERY_DOMINATES" and gone.evidence["symptom_persists"] is True
    assert "○ NO LONGER APPLIES SHARED_QUERY_DOMINATES @ fga" in report.to_text()


@needs_demo
def test_patching_hf_with_ba_names_the_patch_and_keeps_the_shared_query_verdict(demo):
    spec = "patch=gcn.0:Hf_4<-Ba_0"
    report = intervene(demo, spec)
    collapse = next(v for v in report.verdicts if v.code == "FEATURE_COLLAPSE")
    assert collapse.evidence["set_by_intervention"] == [spec]
    sqd = next(v for v in report.verdicts if v.code == "SHARED_QUERY_DOMINATES")
    assert (sqd.severity, sqd.vs_baseline) == (Severity.ERROR, "persists")
    assert ["Ba_0", "Li_5"] in sqd.evidence["same_top_word_pairs"]
    assert report.resolved == []


@needs_demo
def test_cli_report_says_the_intervention_first(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli.app, ["report", str(PROBLEM), str(SAMPLE), "--no-fusion", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data)[:2] == ["schema", "intervention"]
    assert data["intervention"] == ["no-fusion"]
    assert "HEALTHY" not in [v["code"] for v in data["verdicts"]]
    text = runner.invoke(cli.app, ["report", str(PROBLEM), str(SAMPLE), "--no-fusion"])
    assert text.stdout.splitlines()[0] == (
        "UNDER INTERVENTION no-fusion — not the model as trained"
    )


def test_tui_verdict_panel_says_the_intervention_first_and_marks_verdicts():
    from types import SimpleNamespace

    from fga_tui.tui.view import VerdictRow
    from fga_tui.tui.widgets.verdicts import verdict_text

    view = SimpleNamespace(
        ablation=Interventions.parse(["no-fusion"]),
        verdicts=[
            VerdictRow("SHARED_QUERY_DOMINATES", "error", "m", {"stage": "fga"}, None, "persists")
        ],
        ablation_notes=[],
        audit_lines=[],
    )
    lines = verdict_text(view).plain.splitlines()
    assert lines[0] == "UNDER INTERVENTION no-fusion — not the model as trained"
    assert lines[1] == "✖ ERROR   SHARED_QUERY_DOMINATES @ fga [persists]"


@needs_demo
def test_diagnose_under_an_intervention_compares_every_verdict_with_the_model_as_trained(demo):
    loaded, prepared, _ = demo
    plain = diagnose(loaded, prepared, run_ablations=False)
    ivs = Interventions.parse(["no-fusion"])
    reused = diagnose(loaded, prepared, ablation=ivs, baseline_diagnosis=plain)
    report = reused.report
    assert report.intervention == ["no-fusion"]
    assert report.to_text().splitlines()[0].startswith("UNDER INTERVENTION no-fusion")
    assert {v.vs_baseline for v in report.verdicts} <= {"persists", "new"}
    # The attribution rules (added after assemble) are compared too.
    marked = {v.code: v.vs_baseline for v in report.verdicts}
    assert "TEXT_IGNORED" in plain.report.codes
    assert marked["TEXT_IGNORED"] == "persists"
    assert [v.vs_baseline for v in plain.report.verdicts] == [None] * len(plain.report.verdicts)
    # Without a diagnosis to reuse, diagnose() makes the plain one itself: same marks.
    fresh = diagnose(loaded, prepared, ablation=ivs, run_ablations=False).report
    assert [(v.code, v.vs_baseline) for v in fresh.verdicts] == [
        (v.code, v.vs_baseline) for v in report.verdicts
    ]


@pytest.mark.parametrize("n_atoms", [48, 49])
def test_big_cells_list_the_first_orbits_and_count_the_rest(n_atoms):
    """Text and markdown reports list orbits and top words in full up to 48 atoms; above, the
    first 48 orbits (one atom each, at most 8 labels inside an orbit) and how many more."""
    import dataclasses

    from fga_tui.diagnostics.render import report_markdown, report_text

    labels = [f"Ba_{i}" for i in range(n_atoms)]
    # one 10-atom orbit, then every other atom alone
    orbits = [list(range(10))] + [[i] for i in range(10, n_atoms)]
    top = [{"atom": lab, "words": [["ba", 0.9]]} for lab in labels]
    report = dataclasses.replace(bare_report([]), orbits=orbits, labels=labels, top_words=top)
    text, md = report_text(report), report_markdown(report)
    member_line = "{Ba_0,Ba_1,Ba_2,Ba_3,Ba_4,Ba_5,Ba_6,Ba_7,+2}"
    assert member_line in text and member_line.replace(",", ", ") in md
    listed = [line for line in text.splitlines() if line.strip().endswith(": ba 0.900")]
    if n_atoms == 48:  # every atom, no count
        assert len(listed) == 48 and "more orbits" not in text and "orbits shown" not in md
    else:  # 49 atoms in 40 orbits: one atom per orbit
        assert len(listed) == 40
        assert [line.split(":")[0].strip() for line in listed[:2]] == ["Ba_0", "Ba_10"]
        assert "one atom of each of the first 40 of 40 orbits shown (49 atoms" in text
        assert "one atom of each of the first 40 of 40 orbits shown (49 atoms" in md


def test_orbit_list_stops_after_48_orbits():
    import dataclasses

    from fga_tui.diagnostics.render import report_text

    labels = [f"Li_{i}" for i in range(50)]
    report = dataclasses.replace(bare_report([]), orbits=[[i] for i in range(50)], labels=labels)
    line = next(x for x in report_text(report).splitlines() if x.startswith("symmetry:"))
    assert line.endswith("{Li_47}  ... 2 more orbits")
