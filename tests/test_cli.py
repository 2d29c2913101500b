"""The headless commands: contracts of their outputs and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fga_tui.cli import app
from fga_tui.diagnostics.verdict import CODES

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def report_json(fork_ckpt, nacl_json, nacl_tokens):
    result = invoke(
        "report",
        fork_ckpt,
        nacl_json,
        "--tokens",
        nacl_tokens,
        "--format",
        "json",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_export_writes_the_trace_contract(tmp_path, fork_ckpt, nacl_json, nacl_tokens, expected):
    out = tmp_path / "out"
    result = invoke("export", fork_ckpt, nacl_json, "--tokens", nacl_tokens, "--out", out)
    assert result.exit_code == 0, result.output
    with np.load(out / "trace.npz", allow_pickle=False) as z:
        stages = list(z["stages"])
        assert stages[0] == "embed" and stages[-1] == "fga" and "fusion.2" in stages
        assert list(z["elements"]) == ["Na", "Cl"]
        assert len(z["tokens"]) == 36
        assert abs(float(z["prediction"]) - float(expected["predictions"])) < 1e-5
        for s in stages:
            assert z[f"features.{s}"].shape == (2, 64)
            assert z[f"features.{s}"].dtype == np.float32
            assert z[f"cf.atom_to_text.{s}"].shape == (8, 2, 36)
        assert z["attn.atom_to_text"].shape == (8, 2, 36)
        assert z["attn.text_to_atom"].shape == (8, 36, 2)
        np.testing.assert_allclose(z["attn.atom_to_text"], expected["atom_to_text"][0], atol=1e-5)


def test_export_never_overwrites_without_force(tmp_path, fork_ckpt, nacl_json, nacl_tokens):
    out = tmp_path / "out"
    out.mkdir()
    (out / "trace.npz").write_bytes(b"keep me")
    result = invoke("export", fork_ckpt, nacl_json, "--tokens", nacl_tokens, "--out", out)
    assert result.exit_code == 2
    assert (out / "trace.npz").read_bytes() == b"keep me"
    result = invoke(
        "export", fork_ckpt, nacl_json, "--tokens", nacl_tokens, "--out", out, "--force"
    )
    assert result.exit_code == 0
    assert (out / "trace.npz").read_bytes() != b"keep me"


def test_export_with_ablations(tmp_path, fork_ckpt, nacl_json, nacl_tokens):
    out = tmp_path / "abl"
    result = invoke(
        "export",
        fork_ckpt,
        nacl_json,
        "--tokens",
        nacl_tokens,
        "--out",
        out,
        "--no-fusion",
        "--fga-from",
        "alignn.3",
    )
    assert result.exit_code == 0, result.output
    with np.load(out / "trace.npz") as z:
        assert list(z["stages"]) == ["embed", "alignn.0", "alignn.1", "alignn.2", "alignn.3", "fga"]
        assert str(z["ablation"]) == "no-fusion, fga-from=alignn.3"


def test_report_json_matches_the_contract(report_json):
    r = report_json
    assert r["schema"] == "fga-tui.report/1"
    assert r["sample"]["id"] == "nacl"
    assert r["checkpoint"]["layout"] == "fork-best"
    assert r["checkpoint"]["config"]["hidden_features"] == 64
    assert isinstance(r["checkpoint"]["inferred"], list)
    names = [s["name"] for s in r["stages"]]
    assert names[0] == "embed" and names[-1] == "fga"
    for s in r["stages"]:
        for key in (
            "mean_raw_corr",
            "mean_centered_corr",
            "mad",
            "dirichlet",
            "effective_rank",
            "numerical_rank",
        ):
            assert isinstance(s[key], float)
    assert r["orbits"] == [[0], [1]]
    assert [t["atom"] for t in r["top_words"]] == ["Na_0", "Cl_1"]
    word, weight = r["top_words"][0]["words"][0]
    assert isinstance(word, str) and 0 < weight <= 1
    for v in r["verdicts"]:
        assert v["code"] in CODES
        assert v["severity"] in ("info", "warning", "error")
        assert isinstance(v["message"], str) and isinstance(v["evidence"], dict)
    assert "SHARED_QUERY_DOMINATES" in [v["code"] for v in r["verdicts"]]


def test_report_fail_on_error_exits_1(fork_ckpt, nacl_json, nacl_tokens):
    result = invoke(
        "report",
        fork_ckpt,
        nacl_json,
        "--tokens",
        nacl_tokens,
        "--fail-on",
        "error",
        "--no-ablations",
        "--format",
        "md",
    )
    assert result.exit_code == 1
    assert result.stdout.startswith("# fga-tui report")


def test_audit_json_lists_gradient_free_modules(fork_ckpt, fixtures):
    result = invoke(
        "audit", fork_ckpt, "--baseline", fixtures / "fork_init_state.pt", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    audit = json.loads(result.stdout)
    assert audit["schema"] == "fga-tui.audit/1"
    unchanged = {p for f in audit["findings"] if f["kind"] == "unchanged" for p in f["parameters"]}
    # The fixture README: 22 of 256 parameter tensors never change in training.
    assert len(unchanged) == 22
    kinds = {f["kind"] for f in audit["findings"]}
    assert {"no_gradient", "zero_gradient", "degenerate_softmax"} <= kinds


def test_diff_shows_both_checkpoints(fork_ckpt, fixtures, nacl_json, nacl_tokens):
    result = invoke(
        "diff",
        fork_ckpt,
        fixtures / "fork_init_state.pt",
        nacl_json,
        "--tokens",
        nacl_tokens,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["schema"] == "fga-tui.diff/1"
    assert d["a"]["prediction"] != d["b"]["prediction"]
    assert "ATTENTION_UNTRAINED" in [v["code"] for v in d["b"]["verdicts"]]


def test_scan_writes_per_sample_rows_and_a_summary(tmp_path, fork_ckpt, fixtures):
    row = json.loads((fixtures / "nacl.json").read_text())
    lines = []
    for i in range(5):
        r = json.loads(json.dumps(row))
        a = 2.7 + 0.05 * i
        r["jid"] = f"nacl-{i}"
        r["atoms"]["lattice_mat"] = [[0, a, a], [a, 0, a], [a, a, 0]]
        r["tokens"] = str(fixtures / "nacl.tokens.npz")
        lines.append(json.dumps(r))
    lines.append('{"jid": "broken", "atoms": {"lattice_mat": [[1, 0, 0]]}}')
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "rows.jsonl"
    result = invoke(
        "scan",
        fork_ckpt,
        data,
        "--out",
        out,
        "--format",
        "json",
        "--workers",
        "1",
        "--batch-size",
        "2",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["samples"] == 6 and summary["ok"] == 5 and summary["failed"] == 1
    assert summary["verdicts"]["SHARED_QUERY_DOMINATES"]["samples"] == 5
    assert summary["metrics"]["attention_cross_orbit_jsd"]["n"] == 5
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["position"] for r in rows) == list(range(6))
    bad = [r for r in rows if r["status"] == "error"]
    assert len(bad) == 1 and "data.jsonl:6" in bad[0]["error"]
