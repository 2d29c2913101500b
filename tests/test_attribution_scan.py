"""Scan rows carry grounding (and, with --attribution, text reliance); the summary aggregates
them per element and over the dataset. Also: export writes the attribution keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fga_tui.cli import app
from fga_tui.diagnostics.attribution_rows import AttributionAggregate

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _row(per_element: dict, named: list, rel: float | None = None) -> dict:
    vals = [v for v in per_element.values() if v is not None]
    row = {
        "grounding": {
            "mean": float(np.mean(vals)) if vals else None,
            "per_element": per_element,
            "named": named,
        }
    }
    if rel is not None:
        row["text_reliance"] = {"relative_change": rel, "words_share": 0.01}
    return row


def test_aggregate_per_element_and_over_samples() -> None:
    agg = AttributionAggregate()
    agg.add(_row({"Na": 0.8, "Cl": 0.2}, ["Na", "Cl"], rel=0.5))
    agg.add(_row({"Na": 0.6, "Cl": None}, ["Na"], rel=0.3))
    agg.add(_row({"Si": None}, []))
    agg.add({"status": "ok"})  # a row without the fields
    out = agg.to_json()
    assert out["grounding"]["per_element"]["Na"]["mean"] == pytest.approx(0.7)
    assert out["grounding"]["per_element"]["Cl"]["n"] == 1
    assert "Si" not in out["grounding"]["per_element"]
    assert out["grounding"]["text_names_no_element"] == 1
    assert out["grounding"]["samples"]["n"] == 2
    assert out["text_reliance"]["relative_change"]["median"] == pytest.approx(0.4)
    assert out["text_reliance"]["per_element"]["Na"]["n"] == 2
    assert out["text_reliance"]["per_element"]["Cl"]["max"] == pytest.approx(0.5)
    assert any(line.strip().startswith("Cl") for line in agg.to_text_lines())
    assert AttributionAggregate().to_json() is None


def test_scan_with_attribution_aggregates_grounding_and_reliance(tmp_path, fork_ckpt, fixtures):
    row = json.loads((fixtures / "nacl.json").read_text())
    lines = []
    for i in range(3):
        r = json.loads(json.dumps(row))
        a = 2.7 + 0.05 * i
        r["jid"] = f"nacl-{i}"
        r["atoms"]["lattice_mat"] = [[0, a, a], [a, 0, a], [a, a, 0]]
        r["tokens"] = str(fixtures / "nacl.tokens.npz")
        lines.append(json.dumps(r))
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "rows.jsonl"
    result = invoke(
        "scan", fork_ckpt, data, "--out", out, "--format", "json", "--attribution",
        "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["grounding"]["named"] == ["Na", "Cl"] for r in rows)
    assert all(r["text_reliance"]["completeness_gap"] <= 0.05 for r in rows)
    agg = summary["attribution"]
    assert set(agg["grounding"]["per_element"]) == {"Na", "Cl"}
    assert agg["grounding"]["per_element"]["Na"]["n"] == 3
    assert agg["text_reliance"]["relative_change"]["n"] == 3
    assert agg["text_reliance"]["per_element"]["Cl"]["n"] == 3
    # without --attribution rows still carry grounding (attention only), no text reliance
    plain = invoke("scan", fork_ckpt, data, "--format", "json", "--workers", "1")
    summary = json.loads(plain.stdout)
    assert summary["attribution"]["text_reliance"]["relative_change"] is None
    assert summary["attribution"]["grounding"]["samples"]["n"] == 3


def test_export_writes_attribution_and_grounding(tmp_path, fork_ckpt, nacl_json, nacl_tokens):
    result = invoke("export", fork_ckpt, nacl_json, "--tokens", nacl_tokens, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "trace.npz") as data:
        assert data["attr.atom_to_text"].shape == (2, 36)
        assert data["attr.tokens"].shape == (36,)
        assert data["grounding"].shape == (2,) and np.isfinite(data["grounding"]).all()
        assert data["attn.atom_to_text"].shape[1:] == (2, 36)  # existing keys unchanged


def test_diff_shows_text_reliance_and_grounding(fork_ckpt, nacl_json, nacl_tokens) -> None:
    args = ("diff", fork_ckpt, fork_ckpt, nacl_json, "--tokens", nacl_tokens)
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    changes = json.loads(result.stdout)["changes"]
    a, b = changes["prediction_no_text"]
    assert a == b and a == pytest.approx(0.760103, abs=1e-5)  # the fork fixture without text
    assert changes["grounding_mean"][0] == pytest.approx(0.501, abs=1e-3)
    text = invoke(*args).stdout
    assert "without the text  A 0.760103   B 0.760103" in text
