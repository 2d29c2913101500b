"""One options object for every command: declared once, parsed before any work, the same in the
TUI session; --intervene and its aliases; settings; audit counts; diff order; --help width."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fga_tui import cli
from fga_tui.cli import app
from fga_tui.interventions import Interventions
from fga_tui.io.errors import InputError
from fga_tui.options import RunOptions

runner = CliRunner()
DEMO = Path(cli.__file__).parent / "data" / "demo"


def invoke(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)


def _params(command: str) -> set[str]:
    """Option names a command declares (from the click command typer builds)."""
    import typer.main

    group = typer.main.get_command(app)
    return {opt for p in group.commands[command].params for opt in getattr(p, "opts", [])}


@pytest.fixture(autouse=True)
def _no_user_settings(tmp_path, monkeypatch):
    """Never read or write the real user's settings file."""
    monkeypatch.setenv("FGA_TUI_CONFIG", str(tmp_path / "settings.toml"))


SAMPLE_OPTIONS = {
    "--device",
    "--trust-checkpoint",
    "--fga-heads",
    "--cm-heads",
    "--tokens",
    "--text-model",
    "--vocab-mappings",
    "--stopwords",
    "--intervene",
    "--no-fusion",
    "--fga-from",
    "--index",
    "--max-atoms",
}


@pytest.mark.parametrize("command", ["report", "diff", "open", "serve"])
def test_every_sample_command_takes_every_shared_option(command):
    assert _params(command) >= SAMPLE_OPTIONS


def test_open_has_vocab_mappings_and_stopwords_like_report():
    assert {"--vocab-mappings", "--stopwords"} <= _params("open")


def test_export_and_scan_take_the_model_text_and_intervention_options():
    for command in ("export", "scan"):
        params = _params(command)
        assert SAMPLE_OPTIONS - {"--index", "--stopwords"} <= params, command
    assert "--index" in _params("export")
    assert "--stopwords" in _params("scan")


def test_audit_takes_the_model_options_and_fail_on():
    params = _params("audit")
    assert {"--device", "--trust-checkpoint", "--fga-heads", "--cm-heads"} <= params
    assert "--fail-on" in params


def test_shared_options_are_declared_once():
    """No command declares a shared option itself: the decorator refuses it."""
    with pytest.raises(TypeError, match="declares shared options again"):

        @cli.shared_options(cli.MODEL)
        def clash(device: str = "cpu", *, opts: RunOptions) -> None:  # pragma: no cover
            pass

    source = inspect.getsource(cli)
    for flag in ("--device", "--tokens", "--vocab-mappings", "--intervene", "--stopwords"):
        assert len(re.findall(r'typer\.Option\(\s*"' + flag + '"', source)) == 1, flag


def test_session_options_carry_every_run_option():
    """The TUI session gets the same RunOptions as report: every field lands in it."""
    from fga_tui.tui.session import SessionOptions

    opts = RunOptions(
        device="cpu",
        trust=True,
        fga_heads=3,
        cm_heads=2,
        tokens=Path("t.npz"),
        text_model=Path("bert"),
        vocab_mappings=Path("vocab.txt"),
        stopwords="default",
        interventions=Interventions.parse(["no-text", "fga-from=gcn.0"]),
        index=4,
        max_atoms=77,
    )
    view = cli.ViewOptions(snapshot_dir=Path("snaps"), theme=None, settings_path=None)
    session = cli.session_options(Path("c.pt"), Path("s.json"), opts, view)
    assert isinstance(session, SessionOptions)
    renamed = {"interventions": "ablation"}
    for f in dataclasses.fields(RunOptions):
        assert getattr(session, renamed.get(f.name, f.name)) == getattr(opts, f.name), f.name
    assert session.snapshot_dir == Path("snaps")


def _capture(monkeypatch, target: str, attr: str):
    """Replace ``target.attr`` with a recorder that stops the command right there."""
    import importlib

    seen: dict = {}

    def record(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        raise InputError("captured", "stop here")

    monkeypatch.setattr(importlib.import_module(target), attr, record)
    return seen


def test_report_passes_intervene_and_aliases_to_the_diagnosis(monkeypatch):
    seen = _capture(monkeypatch, "fga_tui.diagnostics.report", "diagnose")
    result = invoke(
        "report",
        DEMO / "demo_problem.pt",
        DEMO / "ba4hfli.json",
        "--device",
        "cpu",
        "--intervene",
        "patch=gcn.0:Hf_4<-Ba_0",
        "--intervene",
        "no-text",
        "--no-fusion",
        "--fga-from",
        "alignn.1",
    )
    assert result.exit_code == 2
    assert seen["kwargs"]["ablation"].specs == [
        "patch=gcn.0:Hf_4<-Ba_0",
        "no-text",
        "no-fusion",
        "fga-from=alignn.1",
    ]


def test_export_passes_the_interventions_to_run_trace(monkeypatch, tmp_path):
    seen = _capture(monkeypatch, "fga_tui.engine", "run_trace")
    result = invoke(
        "export",
        DEMO / "demo_problem.pt",
        DEMO / "ba4hfli.json",
        "--out",
        tmp_path / "out",
        "--device",
        "cpu",
        "--intervene",
        "mean-ablate=alignn.0",
    )
    assert result.exit_code == 2
    assert seen["args"][2] == Interventions.parse(["mean-ablate=alignn.0"])
    assert not (tmp_path / "out").exists()


def test_diff_passes_the_interventions_to_both_diagnoses(monkeypatch):
    seen = _capture(monkeypatch, "fga_tui.diagnostics.report", "diagnose")
    result = invoke(
        "diff",
        DEMO / "demo_problem.pt",
        DEMO / "demo_fixed.pt",
        DEMO / "ba4hfli.json",
        "--device",
        "cpu",
        "--intervene",
        "no-fusion",
    )
    assert result.exit_code == 2
    assert seen["kwargs"]["ablation"] == Interventions(no_fusion=True)


def test_scan_passes_the_interventions_to_the_scan(monkeypatch):
    seen = _capture(monkeypatch, "fga_tui.scan.job", "scan_rows")
    result = invoke(
        "scan",
        DEMO / "demo_problem.pt",
        DEMO / "ba4hfli.json",
        "--device",
        "cpu",
        "--intervene",
        "no-text",
    )
    assert result.exit_code == 2
    assert seen["kwargs"]["interventions"] == Interventions.parse(["no-text"])


def test_open_passes_the_interventions_to_the_session(monkeypatch):
    seen: dict = {}

    def fake_run(options, view):
        seen["options"], seen["view"] = options, view

    monkeypatch.setattr(cli, "_run_app", fake_run)
    result = invoke(
        "open",
        DEMO / "demo_problem.pt",
        DEMO / "ba4hfli.json",
        "--intervene",
        "patch=gcn.0:4<-0",
        "--vocab-mappings",
        DEMO / "encoder.json",
        "--stopwords",
        "default",
    )
    assert result.exit_code == 0, result.output
    options = seen["options"]
    assert options.ablation.specs == ["patch=gcn.0:4<-0"]
    assert options.vocab_mappings == DEMO / "encoder.json"
    assert options.stopwords == "default"


@pytest.mark.parametrize(
    "spec, named",
    [
        ("bogus", "'bogus' is not an intervention"),
        ("mean-ablate=gcn", "not a stage name"),
        ("patch=gcn.0:Hf_4", "patch=STAGE:DST<-SRC"),
        ("no-text=1", "takes no value"),
    ],
)
@pytest.mark.parametrize("command", ["report", "export", "diff", "scan", "open", "serve"])
def test_a_bad_spec_is_one_line_and_exit_2_before_any_work(command, spec, named, tmp_path):
    """The checkpoint does not even exist: the spec is checked first."""
    missing = tmp_path / "missing.pt"
    args = {
        "report": ["report", missing, tmp_path / "s.json"],
        "export": ["export", missing, tmp_path / "s.json", "--out", tmp_path / "o"],
        "diff": ["diff", missing, missing, tmp_path / "s.json"],
        "scan": ["scan", missing, tmp_path / "d.jsonl"],
        "open": ["open", missing, tmp_path / "s.json"],
        "serve": ["serve", missing, tmp_path / "s.json"],
    }[command]
    result = invoke(*args, "--intervene", spec)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fga-tui: --intervene: "), result.stderr
    assert named in lines[0]
    assert not (tmp_path / "o").exists()


def test_fga_from_twice_is_refused():
    result = invoke(
        "report", "x.pt", "y.json", "--fga-from", "gcn.0", "--intervene", "fga-from=alignn.1"
    )
    # The alias replaces a spec of the same kind (one attention input), as documented.
    assert "fga-from given twice" not in result.stderr
    result = invoke(
        "report",
        "x.pt",
        "y.json",
        "--intervene",
        "fga-from=gcn.0",
        "--intervene",
        "fga-from=alignn.1",
    )
    assert result.exit_code == 2 and "fga-from given twice" in result.stderr


def test_bad_theme_is_one_line_and_exit_2():
    result = invoke("demo", "--theme", "dracula-bogus")
    assert result.exit_code == 2
    assert (
        result.stderr.strip().splitlines() == [result.stderr.strip()]
        and "theme 'dracula-bogus' is not one of" in result.stderr
    )
    assert "Traceback" not in result.output


def test_bad_device_is_refused_before_loading():
    result = invoke("report", "x.pt", "y.json", "--device", "gpu0")
    assert result.exit_code == 2
    assert "--device: device 'gpu0' is not one of auto, cpu, cuda or cuda:N" in result.stderr


def test_settings_file_gives_defaults_and_flags_override(monkeypatch, tmp_path):
    (tmp_path / "settings.toml").write_text(
        'theme = "ansi-dark"\ndevice = "cpu"\nsnapshot_dir = "' + str(tmp_path / "snaps") + '"\n'
    )
    seen: dict = {}
    monkeypatch.setattr(cli, "_run_app", lambda options, view: seen.update(o=options, v=view))
    ckpt, sample = DEMO / "demo_problem.pt", DEMO / "ba4hfli.json"
    assert invoke("open", ckpt, sample).exit_code == 0
    assert seen["o"].device == "cpu"
    assert seen["v"].theme == "ansi-dark"
    assert seen["o"].snapshot_dir == tmp_path / "snaps"
    assert seen["v"].settings_path == tmp_path / "settings.toml"
    result = invoke("open", ckpt, sample, "--theme", "nord", "--device", "auto")
    assert result.exit_code == 0
    assert seen["v"].theme == "nord" and seen["o"].device == "auto"


@pytest.mark.parametrize(
    "text, named",
    [
        ('theme = "dracula-bogus"\n', "theme 'dracula-bogus' is not one of"),
        ('device = "gpu"\n', "device 'gpu' is not one of"),
        ('colour = "red"\n', "unknown setting 'colour'"),
        ("theme = 3\n", "theme must be a non-empty string"),
        ("theme = \n", "not valid TOML"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path, text, named):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    result = invoke("demo")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fga-tui: {path}: "), result.stderr
    assert named in lines[0]


def test_audit_counts_findings_by_severity_and_kind_and_fails_on_them(fork_ckpt):
    result = invoke("audit", fork_ckpt, "--device", "cpu", "--format", "json")
    assert result.exit_code == 0
    audit = json.loads(result.stdout)
    kinds: dict[str, int] = {}
    for f in audit["findings"]:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    assert audit["counts"]["kind"] == kinds
    assert audit["counts"]["total"] == len(audit["findings"])
    assert sum(audit["counts"]["severity"].values()) == len(audit["findings"])
    worst = "error" if "error" in audit["counts"]["severity"] else "warning"
    text = invoke("audit", fork_ckpt, "--device", "cpu")
    summary = text.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{len(audit['findings'])} findings: ")
    for kind, n in kinds.items():
        assert f"{kind} {n}" in summary
    assert invoke("audit", fork_ckpt, "--device", "cpu", "--fail-on", worst).exit_code == 1
    bad = invoke("audit", fork_ckpt, "--fail-on", "sometimes")
    assert bad.exit_code == 2 and "--fail-on" in bad.stderr


def test_audit_summary_orders_severities_worst_first():
    from types import SimpleNamespace as F

    findings = [
        F(severity="info", kind="a"),
        F(severity="error", kind="b"),
        F(severity="info", kind="a"),
    ]
    assert cli.audit_summary(findings) == "3 findings: 1 error, 2 info · by kind: a 2, b 1"
    assert cli.audit_summary([]) == "0 findings"


def test_diff_lists_stages_in_forward_order_with_aligned_columns():
    result = invoke(
        "diff",
        DEMO / "demo_problem.pt",
        DEMO / "demo_fixed.pt",
        DEMO / "ba4hfli.json",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["stage"])
    stages = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        stages.append(line.split()[0])
    # The fixed model has gcn.1, the problem model does not: it comes before fga.
    assert stages[-3:] == ["gcn.0", "gcn.1", "fga"]
    assert stages.index("fusion.0") == stages.index("alignn.0") + 1
    # Every row of a block has its B column at the same place.
    for header in ("verdict", "atom"):
        i = next(k for k, line in enumerate(lines) if line.split()[:1] == [header])
        block = []
        for line in lines[i:]:
            if not line.strip():
                break
            block.append(line)
        sep = "|" if header == "atom" else None
        if sep:
            assert len({line.index("|") for line in block}) == 1, block
        else:
            cols = {len(line) - len(line[2:].split("  ", 1)[1].lstrip()) for line in block[1:]}
            assert len(cols) == 1, block


def test_stage_order_is_the_forward_order():
    from fga_tui.diagnostics.diff import stage_order

    names = ["fga", "gcn.10", "gcn.2", "fusion.1", "alignn.1", "alignn.0", "embed"]
    ordered = ["embed", "alignn.0", "alignn.1", "fusion.1", "gcn.2", "gcn.10", "fga"]
    assert sorted(names, key=stage_order) == ordered


@pytest.mark.parametrize("command", ["report", "open", "serve", "scan", "audit", "diff", "export"])
def test_help_is_readable_at_80_columns(command):
    env = {"COLUMNS": "80", "PYTHONPATH": str(Path(cli.__file__).parents[1])}
    import os

    out = subprocess.run(
        [sys.executable, "-m", "fga_tui", command, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        assert len(line) <= 80, line
    assert "…" not in out.stdout  # no option name truncated
    for flag in _params(command):
        if flag.startswith("--"):
            assert flag in out.stdout, flag


def test_serve_runs_open_with_the_same_options(tmp_path):
    opts = RunOptions(
        device="cpu",
        tokens=tmp_path / "t.npz",
        stopwords="default",
        interventions=Interventions.parse(["patch=gcn.0:Hf_4<-Ba_0", "no-fusion"]),
        index=2,
    )
    view = cli.ViewOptions(snapshot_dir=tmp_path / "snaps", theme="nord", settings_path=None)
    argv = cli.open_argv(Path("c.pt"), Path("s.json"), opts, view, ablations=False)
    assert argv[:3] == ["open", str(Path("c.pt").resolve()), str(Path("s.json").resolve())]
    joined = " ".join(argv)
    for part in (
        "--device cpu",
        f"--tokens {tmp_path / 't.npz'}",
        "--stopwords default",
        "--intervene patch=gcn.0:Hf_4<-Ba_0 --intervene no-fusion",
        "--index 2",
        "--no-ablations",
        "--theme nord",
    ):
        assert part in joined, part
    # The argv parses back to the same options.
    import typer.main

    command = typer.main.get_command(app).commands["open"]
    ctx = command.make_context("open", argv[1:])
    assert ctx.params["intervene"] == ["patch=gcn.0:Hf_4<-Ba_0", "no-fusion"]
    assert ctx.params["device"] == "cpu" and ctx.params["index"] == 2


def test_serve_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", DEMO / "demo_problem.pt", DEMO / "ba4hfli.json", "--port", port)
    assert result.exit_code == 2
    assert f"127.0.0.1:{port}: cannot listen" in result.stderr
