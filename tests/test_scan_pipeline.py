"""The scan's diagnosis in worker processes: same bits as in the scanning process.

A trace's arrays are owned C-contiguous copies (``fga_tui.model.tracer``): numpy sums a permuted
view in another order than the same values stored in C order, and pickling a trace to a worker
stores its arrays in C order, so views would give a worker's rows other last bits than the rank's.
"""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fga_tui import engine
from fga_tui.cli import app
from fga_tui.scan import runner as scan_runner
from fga_tui.scan.rows import assemble_job
from fga_tui.structure.symmetry import analyse_symmetry
from fga_tui.tui.synthetic import dataset_rows

FIXTURES = Path(__file__).parent / "fixtures"
CKPT = FIXTURES / "fork_ckpt.pt"
TOKENS = FIXTURES / "nacl.tokens.npz"


def perovskite_rows(n: int) -> list[dict]:
    """n rows alternating rock salts and perovskites (3 orbits) of varied sizes and elements."""
    return dataset_rows(n, TOKENS, seed=7, cations=("Na", "K"), anions=("Cl",))


def _arrays(trace) -> list[np.ndarray]:
    out = []
    for f in fields(trace):
        value = getattr(trace, f.name)
        values = value.values() if isinstance(value, dict) else [value]
        out += [v for v in values if isinstance(v, np.ndarray)]
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from fga_tui.diagnostics.audit import audit_model
    from fga_tui.io.sample import load_samples

    loaded = engine.load_model(CKPT, device="cpu")
    folder = tmp_path_factory.mktemp("batch")
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in perovskite_rows(8)))
    prepared = [engine.prepare_sample(loaded, s) for s in load_samples(data)]
    traces = engine.run_traces(loaded, prepared, counterfactuals=False)
    view = SimpleNamespace(config=loaded.config, info=loaded.info)
    return view, prepared, traces, audit_model(loaded, None)


def test_every_array_of_a_batched_trace_is_an_owned_contiguous_copy(batch):
    _, _, traces, _ = batch
    arrays = [a for t in traces for a in _arrays(t)]
    assert len(arrays) >= 8 * 5  # features of every stage, attention, keys, queries, mask
    assert all(a.flags.c_contiguous and a.flags.owndata for a in arrays)


def test_diagnosis_of_a_pickled_trace_has_the_same_bits(batch):
    """What a worker receives (a pickled trace) diagnoses to the same row, bit for bit."""
    view, prepared, traces, audit = batch
    for position, (prep, trace) in enumerate(zip(prepared, traces, strict=True)):
        sym = analyse_symmetry(prep.sample.structure)
        job = (view, position, prep, trace, audit, {}, None, sym)
        here = json.dumps(assemble_job(*job))
        assert json.dumps(assemble_job(*pickle.loads(pickle.dumps(job)))) == here


def test_the_diagnosis_of_a_permuted_view_and_of_its_copy_can_differ_in_the_last_bit():
    """Why the copies: the tracer's queries and keys are views of [B, M, H, d] tensors permuted
    to [B, H, M, d]; numpy's einsum over that layout sums in another order than over the same
    values stored in C order (what a pickled trace holds in a worker)."""
    from fga_tui.diagnostics.attention import logit_decomposition

    rng = np.random.default_rng(0)
    differ = 0
    for _ in range(50):
        q = rng.standard_normal((5, 8, 32)).astype(np.float32).transpose(1, 0, 2)
        k = rng.standard_normal((36, 8, 32)).astype(np.float32).transpose(1, 0, 2)
        view = logit_decomposition(q, k).shared_fraction
        copy = logit_decomposition(np.ascontiguousarray(q), np.ascontiguousarray(k))
        differ += view != copy.shared_fraction
        assert view == pytest.approx(copy.shared_fraction, rel=1e-12)
    assert differ > 0


@pytest.mark.parametrize("extra", [(), ("--attribution", "--ablations")], ids=["plain", "attr"])
def test_a_scan_with_diagnosis_workers_writes_the_rows_of_one_process(tmp_path, monkeypatch, extra):
    """The same scan with and without worker processes (graphs, symmetry, diagnosis): the same
    bytes, also with the attribution (run in the rank) and the no-fusion ablation traces."""
    n = 8 if extra else 12
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in perovskite_rows(n)))
    runner = CliRunner()

    def scan(out: Path) -> str:
        args = ["scan", CKPT, data, "--out", out, "--device", "cpu", "--workers", "1",
                "--batch-size", "4", "--no-progress", "--format", "json", *extra]  # fmt: skip
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return out.read_text()

    submitted: list[str] = []
    real = scan_runner.ProcessPoolExecutor

    class Spy(real):  # type: ignore[misc, valid-type]
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(fn.__name__)
            return super().submit(fn, *args, **kwargs)

    def pooled_scan() -> str:
        monkeypatch.setattr(scan_runner, "MIN_ROWS_PER_WORKER", 1)
        monkeypatch.setattr(scan_runner, "ProcessPoolExecutor", Spy)
        return scan(tmp_path / "pooled.jsonl")

    before = torch.get_num_threads()
    # One more thread than a rank with one worker takes: each scan lowers it (so both trace
    # with the same threads, the same GEMM bits) and gives it back.
    more = scan_runner.rank_threads(1, 1) + 1
    try:
        torch.set_num_threads(more)
        alone = scan(tmp_path / "alone.jsonl")  # fewer than 32 rows per worker: no pool
        assert torch.get_num_threads() == more
        pooled = pooled_scan()
        assert torch.get_num_threads() == more
    finally:
        torch.set_num_threads(before)
    assert submitted.count("assemble_job") == n and submitted.count("_graph_job") == n
    rows = [json.loads(x) for x in pooled.splitlines()]
    assert [r["status"] for r in rows] == ["ok"] * n
    if extra:
        assert all("text_reliance" in r for r in rows)
    assert pooled == alone


def test_kill_9_with_workers_then_a_resume_without_gives_the_uninterrupted_rows(tmp_path):
    """40 rows with one worker: the first run diagnoses in the worker, the resume (fewer than
    32 rows left) in its own process; kill -9 at two moments, the rows equal an uninterrupted
    run's byte for byte and no row runs twice."""
    from test_scan import ENTRY, _resume, _run_until_rows, make_data, scan_args

    from fga_tui.scan.journal import Journal

    data = make_data(tmp_path, 40, {5: '{"jid": "broken-5", "atoms": {"lattice_mat": [[1]]}}'})
    ref = tmp_path / "ref.jsonl"
    args = [str(a) for a in scan_args(data, ref, "--no-progress")]
    assert subprocess.run([*ENTRY, *args], capture_output=True, timeout=300).returncode == 0
    out = tmp_path / "rows.jsonl"
    args = [str(a) for a in scan_args(data, out, "--no-progress")]
    killed = _run_until_rows(args, out, 9, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    first = len(Journal(out).done_rows())
    assert 9 <= first < 40
    resumed_args = [*args, "--resume"]
    killed = _run_until_rows(resumed_args, out, first + 3, signal.SIGKILL)
    second = len(Journal(out).done_rows())
    assert killed.returncode == -signal.SIGKILL and first + 3 <= second < 40
    assert _resume(data, out) == 40 - second  # nothing ran twice
    assert out.read_bytes() == ref.read_bytes()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_scan_worker_exits_when_its_scan_is_killed():
    """kill -9 of the scanning process: its worker sees the parent gone and exits (it would
    otherwise wait forever on a queue whose both ends it holds)."""
    code = (
        "import os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from multiprocessing import get_context\n"
        "from fga_tui.scan.runner import _worker_init\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=get_context('spawn'),"
        " initializer=_worker_init)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(proc.stdout.readline())
        assert _alive(worker)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_rank_leaves_its_workers_their_cores(monkeypatch):
    monkeypatch.setattr(scan_runner, "_cores", lambda: 16)
    assert scan_runner.rank_threads(1, 8) == 8
    assert scan_runner.rank_threads(1, 0) == 16
    assert scan_runner.rank_threads(4, 0) == 4
    assert scan_runner.rank_threads(2, 7) == 1
    assert scan_runner.rank_threads(2, 12) == 1  # never fewer than one
    monkeypatch.setattr(scan_runner, "_cores", lambda: 2)
    assert scan_runner.rank_threads(1, scan_runner.default_workers(1)) == 1


def test_a_diagnosis_that_fails_in_the_rank_is_that_rows_error(tmp_path, monkeypatch):
    """The scan goes on past a row whose diagnosis raises, as it does for a worker's."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in perovskite_rows(4)))
    real = scan_runner.assemble_job

    def flaky(view, position, *rest):
        if position == 2:
            raise FloatingPointError("overflow in an odd cell")
        return real(view, position, *rest)

    monkeypatch.setattr(scan_runner, "assemble_job", flaky)
    out = tmp_path / "rows.jsonl"
    args = ["scan", CKPT, data, "--out", out, "--device", "cpu", "--no-progress",
            "--format", "json"]  # fmt: skip
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "ok"]
    assert rows[2] == {"row": 3, "position": 2, "id": "s2", "status": "error",
                       "error": "diagnosis failed: overflow in an odd cell"}  # fmt: skip
    assert json.loads(result.stdout)["failed"] == 1
