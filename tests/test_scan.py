"""Dataset scans: the journal (kill, resume, full disk, Ctrl-C), row errors, exit codes,
progress, the dataset summary, the demo encoder as a text model, and torchrun with 2 ranks."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fga_tui.cli import app
from fga_tui.io.errors import MAX_ATOMS
from fga_tui.scan.journal import Journal, SegmentWriter

FIXTURES = Path(__file__).parent / "fixtures"
CKPT = FIXTURES / "fork_ckpt.pt"
TOKENS = FIXTURES / "nacl.tokens.npz"
ENTRY = [sys.executable, "-c", "from fga_tui.cli import main; main()"]
runner = CliRunner()

# Keys that depend on the run (wall time), not on the rows.
TIMING = ("seconds", "samples_per_second", "distributed")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def make_data(folder: Path, n: int, bad: dict[int, str] | None = None) -> Path:
    """n NaCl-like rows with varied lattices (row i+1 replaced by ``bad[i]`` when given)."""
    row = json.loads((FIXTURES / "nacl.json").read_text())
    lines = []
    for i in range(n):
        if bad and i in bad:
            lines.append(bad[i])
            continue
        r = json.loads(json.dumps(row))
        a = 2.6 + 0.03 * i
        r["jid"] = f"nacl-{i}"
        r["atoms"]["lattice_mat"] = [[0, a, a], [a, 0, a], [a, a, 0]]
        r["tokens"] = str(TOKENS)
        lines.append(json.dumps(r))
    data = folder / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data


def scan_args(data: Path, out: Path, *extra: object) -> list[object]:
    return ["scan", CKPT, data, "--out", out, "--device", "cpu", "--workers", "1", "--batch-size",
            "3", *extra]  # fmt: skip


def rows_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[dict], dict]:
    """An uninterrupted scan of 10 rows (row 4 broken): data, rows, summary JSON."""
    folder = tmp_path_factory.mktemp("ref")
    data = make_data(folder, 10, {3: '{"jid": "broken-3", "atoms": {"lattice_mat": [[1, 0, 0]]}}'})
    out = folder / "rows.jsonl"
    result = invoke(*scan_args(data, out, "--format", "json"))
    assert result.exit_code == 0, result.output
    return data, rows_of(out), json.loads(result.stdout)


def test_rows_are_in_input_order_and_the_journal_is_gone(reference, tmp_path):
    data, rows, summary = reference
    assert [r["row"] for r in rows] == list(range(1, 11))
    assert [r["position"] for r in rows] == list(range(10))
    assert summary["samples"] == 10 and summary["ok"] == 9 and summary["failed"] == 1
    assert summary["distributed"] == {"world_size": 1, "rows_per_rank": [10]}
    assert not Journal(data.parent / "rows.jsonl").exists()


def test_a_failed_row_has_its_row_number_and_its_readable_id(reference):
    _, rows, summary = reference
    bad = [r for r in rows if r["status"] == "error"]
    assert len(bad) == 1
    assert bad[0]["row"] == 4 and bad[0]["id"] == "broken-3"
    assert "data.jsonl:4" in bad[0]["error"]
    assert summary["errors"] == [{"row": 4, "id": "broken-3", "error": bad[0]["error"]}]


def test_summary_breaks_down_by_element_and_space_group(reference):
    _, _, summary = reference
    assert summary["by_element"]["Na"]["samples"] == 9
    assert summary["by_element"]["Cl"]["samples"] == 9
    assert summary["by_spacegroup"]["Fm-3m"]["samples"] == 9
    worst = summary["worst_rows"]
    assert 1 <= len(worst) <= 9 and all(w["row"] != 4 for w in worst)
    ranks = {"info": 0, "warning": 1, "error": 2}
    assert [ranks[w["worst"]] for w in worst] == sorted(
        (ranks[w["worst"]] for w in worst), reverse=True
    )


def test_summary_only_rebuilds_the_same_summary_from_the_rows_file(reference, tmp_path):
    data, rows, summary = reference
    out = tmp_path / "rows.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke("scan", CKPT, data, "--out", out, "--summary-only", "--format", "json")
    assert result.exit_code == 0, result.output
    assert without_timing(json.loads(result.stdout)) == without_timing(summary)
    md = invoke("scan", CKPT, data, "--out", out, "--summary-only", "--format", "md")
    assert "| `SHARED_QUERY_DOMINATES` | 9 |" in md.stdout
    assert "## Errors (1)" in md.stdout


def _journal_with(out: Path, rows: list[dict], meta: dict, torn: str = "") -> None:
    journal = Journal(out)
    journal.create(meta)
    writer = journal.writer(0)
    for r in rows:
        writer.write(r)
    writer.close()
    if torn:
        with writer.path.open("a") as fh:
            fh.write(torn)


def test_resume_runs_only_the_missing_rows_and_ignores_a_torn_line(reference, tmp_path):
    data, rows, summary = reference
    out = tmp_path / "rows.jsonl"
    # A first run that finished rows 1, 2 and 5 and was killed in the middle of writing row 6.
    from fga_tui.scan.job import ScanJob

    meta_src = ScanJob(
        CKPT, data, out, lambda d: None, options={"max_atoms": MAX_ATOMS, "batch_size": 3}
    ).meta()
    kept = [rows[0], rows[1], rows[4]]
    _journal_with(out, kept, meta_src, torn=json.dumps(rows[5])[:40])
    result = invoke(*scan_args(data, out, "--resume", "--format", "json"))
    assert result.exit_code == 0, result.output
    resumed = json.loads(result.stdout)
    assert resumed["distributed"]["rows_per_rank"] == [7]  # 10 rows - 3 journalled
    assert rows_of(out) == rows
    assert without_timing(resumed) == without_timing(summary)


def test_resume_refuses_a_journal_of_another_scan(reference, tmp_path):
    data, rows, _ = reference
    out = tmp_path / "rows.jsonl"
    _journal_with(out, rows[:2], {"schema": "fga-tui.scan-journal/1", "data": "/elsewhere"})
    result = invoke(*scan_args(data, out, "--resume"))
    assert result.exit_code == 2
    assert "belongs to a different scan" in result.stderr
    plain = invoke(*scan_args(data, out))
    assert plain.exit_code == 2 and "--resume" in plain.stderr
    assert len(list(Journal(out).segments())) == 1  # untouched


def test_a_full_disk_keeps_the_journal_and_resume_finishes(reference, tmp_path, monkeypatch):
    data, rows, _ = reference
    out = tmp_path / "rows.jsonl"
    real_write = SegmentWriter.write

    def write(self, row):
        if self.written >= 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, row)

    monkeypatch.setattr(SegmentWriter, "write", write)
    result = invoke(*scan_args(data, out))
    assert result.exit_code == 2
    assert "No space left on device" in result.stderr and "--resume" in result.stderr
    assert not out.exists()
    assert Journal(out).done_rows() == {1, 2, 3, 4}
    monkeypatch.setattr(SegmentWriter, "write", real_write)
    result = invoke(*scan_args(data, out, "--resume"))
    assert result.exit_code == 0, result.output
    assert rows_of(out) == rows


def test_a_full_disk_at_the_merge_keeps_every_row(reference, tmp_path, monkeypatch):
    data, rows, _ = reference
    out = tmp_path / "rows.jsonl"

    def finish(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_finish = Journal.finish
    monkeypatch.setattr(Journal, "finish", finish)
    result = invoke(*scan_args(data, out))
    assert result.exit_code == 2 and "nothing runs again" in result.stderr
    assert Journal(out).done_rows() == set(range(1, 11))
    monkeypatch.setattr(Journal, "finish", real_finish)
    result = invoke(*scan_args(data, out, "--resume", "--format", "json"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["distributed"]["rows_per_rank"] == [0]
    assert rows_of(out) == rows


def test_no_successful_row_exits_2_and_fail_on_counts_failed_rows(tmp_path):
    bad = '{"jid": "b", "atoms": {"lattice_mat": [[1, 0, 0]]}}'
    data = make_data(tmp_path, 2, {0: bad, 1: bad})
    result = invoke(*scan_args(data, tmp_path / "rows.jsonl", "--format", "json"))
    assert result.exit_code == 2
    assert json.loads(result.stdout)["failed"] == 2
    assert "no row succeeded" in result.stderr


def test_fail_on_counts_a_failed_row_as_a_finding():
    """Rows whose worst verdict is info: only the failed row can trip --fail-on."""
    import typer

    from fga_tui.cli import _scan_outcome
    from fga_tui.scan.summary import ScanSummary

    ok = {"status": "ok", "worst": "info", "verdicts": [{"code": "HEALTHY", "severity": "info"}]}
    clean = ScanSummary()
    for i in range(3):
        clean.add({**ok, "row": i + 1})
    _scan_outcome(clean, Path("d"), "json", "warning", False)  # no exit: nothing found
    failed = ScanSummary()
    for row in [{**ok, "row": 1}, {"row": 2, "id": "x", "status": "error", "error": "bad"}]:
        failed.add(row)
    with pytest.raises(typer.Exit) as stop:
        _scan_outcome(failed, Path("d"), "json", "error", False)
    assert stop.value.exit_code == 1
    _scan_outcome(failed, Path("d"), "json", None, False)  # without --fail-on: exit 0


def test_text_summary_lists_every_error_up_to_twenty_then_a_count(tmp_path):
    bad = {i: f'{{"jid": "bad-{i}", "atoms": {{}}}}' for i in range(23)}
    data = make_data(tmp_path, 24, bad)
    result = invoke(*scan_args(data, tmp_path / "rows.jsonl", "--no-chart"))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "errors (23):" in text
    assert "row 20 (bad-19)" in text and "row 21 (bad-20)" not in text
    assert "… and 3 more failed rows" in text


def test_progress_goes_to_stderr_from_the_first_row_and_json_stays_clean(tmp_path):
    data = make_data(tmp_path, 3)
    proc = subprocess.run(
        [*ENTRY, "scan", str(CKPT), str(data), "--device", "cpu", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] == 3
    lines = proc.stderr.splitlines()
    assert lines[0] == "scan: 0/3 rows (starting: model, audit, workers)"
    assert lines[1].startswith("scan: 1/3 rows (33%)") and "rows/s, ETA" in lines[1]
    assert lines[-1].startswith("scan: 3/3 rows (100%)") and "done in" in lines[-1]


def _run_until_rows(args: list[str], out: Path, rows: int, sig: int) -> subprocess.CompletedProcess:
    """Start a scan, wait until ``rows`` rows are journalled, send ``sig``."""
    proc = subprocess.Popen(
        [*ENTRY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    journal = Journal(out)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and len(journal.done_rows()) >= rows:
                break
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def long_scan(tmp_path_factory) -> tuple[Path, list[dict]]:
    """30 rows (row 4 broken) and their uninterrupted rows, scanned by a fresh process like the
    killed ones (the last bits of a float may differ between a pytest process and a fresh one,
    never between two runs of the command)."""
    folder = tmp_path_factory.mktemp("long")
    data = make_data(folder, 30, {3: '{"jid": "broken-3", "atoms": {"lattice_mat": [[1, 0, 0]]}}'})
    ref = folder / "ref.jsonl"
    args = [str(a) for a in scan_args(data, ref, "--no-progress")]
    assert subprocess.run([*ENTRY, *args], capture_output=True, timeout=300).returncode == 0
    return data, rows_of(ref)


def _resume(data: Path, out: Path) -> int:
    """``--resume`` in a fresh process; the number of rows it ran."""
    resumed = subprocess.run(
        [*ENTRY, *map(str, scan_args(data, out, "--resume", "--format", "json"))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    return json.loads(resumed.stdout)["distributed"]["rows_per_rank"][0]


def test_kill_9_then_resume_gives_the_uninterrupted_rows(long_scan, tmp_path):
    data, uninterrupted = long_scan
    for kill_after in (1, 12):
        out = tmp_path / f"rows{kill_after}.jsonl"
        args = [str(a) for a in scan_args(data, out, "--no-progress")]
        killed = _run_until_rows(args, out, kill_after, signal.SIGKILL)
        assert killed.returncode == -signal.SIGKILL
        assert not out.exists()
        done = Journal(out).done_rows()
        assert kill_after <= len(done) < 30
        assert _resume(data, out) == 30 - len(done)  # nothing ran twice
        assert rows_of(out) == uninterrupted


def test_ctrl_c_keeps_the_finished_rows_and_exits_130(long_scan, tmp_path):
    data, uninterrupted = long_scan
    out = tmp_path / "rows.jsonl"
    args = [str(a) for a in scan_args(data, out, "--no-progress")]
    stopped = _run_until_rows(args, out, 2, signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    kept = len(Journal(out).done_rows())
    assert 2 <= kept < 30
    assert f"interrupted: {kept} finished rows kept in {out}.journal" in stopped.stderr
    assert _resume(data, out) == 30 - kept
    assert rows_of(out) == uninterrupted


def test_bad_inputs_of_every_kind_are_rows_with_their_numbers(tmp_path):
    """Each sample file of the bad-input corpus becomes one entry of a folder dataset."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bad_inputs.corpus import CASES

    folder = tmp_path / "dataset"
    folder.mkdir()
    shutil.copy(FIXTURES / "nacl.json", folder / "000-good.json")
    copied = []
    for case in CASES:
        if not case.name.startswith("sample_"):
            continue
        where = tmp_path / case.name
        where.mkdir()
        built = case.build(where)
        if "--index" in built.argv or case.name == "sample_empty_json_list":
            continue  # an index error is not a row's; an empty list holds no row at all
        src = Path(built.argv[2])
        if not src.is_file():
            continue
        dst = folder / f"{len(copied) + 1:03d}-{case.name}{''.join(src.suffixes) or ''}"
        if src.name in ("POSCAR", "CONTCAR"):
            dst = folder / f"{len(copied) + 1:03d}-{case.name}.vasp"
        shutil.copy(src, dst)
        copied.append((dst.name, case))
    assert len(copied) >= 15
    out = tmp_path / "rows.jsonl"
    result = invoke(
        "scan", CKPT, folder, "--out", out, "--tokens", TOKENS, "--device", "cpu",
        "--workers", "1", "--format", "json", "--max-atoms", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = rows_of(out)
    names = sorted(p.name for p in folder.iterdir())
    by_row = {r["row"]: r for r in rows}
    failing = [c for n, c in copied if c.exit_code == 2]
    errors = [r for r in rows if r["status"] == "error"]
    assert len(rows) == len(names) and len(errors) == len(failing)
    for r in errors:
        assert r["row"] == r["position"] + 1
        assert names[r["position"]] in r["error"], r  # the row number points at its entry
        assert by_row[r["row"]] is r
    assert by_row[1]["status"] == "ok"


def test_demo_encoder_scans_the_example_dataset_with_the_demo_checkpoint(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
    import make_dataset

    from fga_tui.text.demo_encoder import packaged_dir

    rows = make_dataset.generate(4, seed=3)
    data = make_dataset.write_jsonl([*rows, {**rows[0], "jid": "mute", "text": " "}],
                                    tmp_path / "d.jsonl")  # fmt: skip
    ckpt = packaged_dir() / "demo_problem.pt"
    out = tmp_path / "rows.jsonl"
    result = invoke("scan", ckpt, data, "--text-model", "demo", "--out", out, "--device", "cpu",
                    "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] == 4
    mute = rows_of(out)[4]  # a row with no text: its own row number, id and line in the error
    assert mute["status"] == "error" and mute["row"] == 5 and mute["id"] == "mute"
    assert f"{data}:5" in mute["error"] and "no text" in mute["error"]
    # The same rows through token files written by make_dataset --tokens.
    tokrows = make_dataset.write_tokens(make_dataset.generate(4, seed=3), data, tmp_path / "tok")
    data2 = make_dataset.write_jsonl(tokrows, tmp_path / "d2.jsonl")
    out2 = tmp_path / "rows2.jsonl"
    result = invoke("scan", ckpt, data2, "--out", out2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    a, b = rows_of(out)[:4], rows_of(out2)
    assert [r["prediction"] for r in a] == pytest.approx([r["prediction"] for r in b], abs=1e-5)
    bad = invoke("scan", ckpt, data, "--text-model", tmp_path, "--device", "cpu")
    assert bad.exit_code == 2 and "nor a demo encoder" in bad.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_ranks_equal_one_process(reference, tmp_path):
    """2 gloo ranks against 1 process, both with one torch thread (torchrun's default): the
    rows are bit-identical and the summaries equal but for timings (a different thread count
    changes the last float bits of a GEMM, not the rows' content)."""
    data, _, _ = reference
    script = Path(sys.executable).parent / "fga-tui"
    if not script.exists():
        pytest.skip("the fga-tui console script is not installed next to this python")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    single = tmp_path / "single.jsonl"
    args = [str(a) for a in scan_args(data, single, "--no-progress", "--format", "json")]
    one = subprocess.run([*ENTRY, *args], capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr
    out = tmp_path / "rows.jsonl"
    args = [str(a) for a in scan_args(data, out, "--format", "json")]
    proc = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
            "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
            "--master-port", str(_free_port()), "--no-python", str(script), *args,
        ],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["distributed"] == {"world_size": 2, "rows_per_rank": [6, 4]}  # blocks of 3 rows
    assert without_timing(got) == without_timing(json.loads(one.stdout))
    assert rows_of(out) == rows_of(single)
    assert not Journal(out).exists()


def test_interventions_reach_the_engine_and_a_row_that_cannot_take_one_fails_alone(tmp_path):
    data = make_data(tmp_path, 3)
    out = tmp_path / "nofusion.jsonl"
    result = invoke(*scan_args(data, out, "--intervene", "no-fusion", "--format", "json"))
    assert result.exit_code == 0, result.output
    plain = tmp_path / "plain.jsonl"
    assert invoke(*scan_args(data, plain)).exit_code == 0
    pairs = zip(rows_of(out), rows_of(plain), strict=True)
    assert all(a["prediction"] != b["prediction"] for a, b in pairs)
    # NaCl has atoms 0 and 1: atom 5 exists in no row, so every row fails with its reason.
    bad = invoke(*scan_args(data, tmp_path / "patch.jsonl", "--intervene", "patch=embed:5<-0"))
    assert bad.exit_code == 2
    rows = rows_of(tmp_path / "patch.jsonl")
    assert [r["status"] for r in rows] == ["error"] * 3
    assert all("atom 5 does not exist" in r["error"] for r in rows)


def test_summary_text_has_the_breakdowns_and_the_charts():
    from fga_tui.scan.summary import summarize_rows

    def ok(i: int, worst: str, code: str, els: list[str], sg: str) -> dict:
        metrics = {"attention_cross_orbit_jsd": 0.01 * (i + 1)}
        verdicts = [{"code": code, "severity": worst}]
        return {"row": i + 1, "id": f"s{i}", "status": "ok", "formula": "".join(els),
                "worst": worst, "verdicts": verdicts, "metrics": metrics, "elements": els,
                "spacegroup": sg}  # fmt: skip

    rows = [ok(i, "warning" if i % 3 else "error", "OVERSMOOTHING" if i % 3 else
               "FEATURE_COLLAPSE", ["Na", "Cl"] if i % 2 else ["K", "Br"],
               "Fm-3m" if i % 2 else "Pm-3m") for i in range(12)]  # fmt: skip
    summary = summarize_rows(rows)
    js = summary.to_json()
    assert js["by_element"]["Na"] == {
        "samples": 6,
        "worst_severity": {"warning": 4, "error": 2},
        "verdicts": {"OVERSMOOTHING": 4, "FEATURE_COLLAPSE": 2},
    }
    assert js["by_spacegroup"]["Pm-3m"]["samples"] == 6
    # The errors first, then the warnings; ties by row number; the last warnings drop out.
    assert [w["row"] for w in js["worst_rows"]] == [1, 4, 7, 10, 2, 3, 5, 6, 8, 9]
    text = summary.to_text()
    assert "by element" in text and "by space group" in text and "worst rows:" in text
    assert "samples per verdict" in text and "cross-orbit JSD" in text
    assert "samples per verdict" not in summary.to_text(chart=False)


def test_progress_draws_a_bar_with_rate_and_eta_on_a_terminal():
    import io

    from fga_tui.scan.progress import Progress

    stream = io.StringIO()
    bar = Progress(4, stream, tty=True)
    bar.show()
    bar.step()
    bar.step()
    bar.close()
    drawn = stream.getvalue().split("\r")
    assert "0/4 rows (starting" in drawn[1]
    assert "1/4 rows (25%)" in drawn[2] and "ETA" in drawn[2] and "█" not in drawn[1]
    assert stream.getvalue().endswith("\n")
