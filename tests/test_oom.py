"""CUDA out-of-memory, injected on the CPU: free, fall back (CPU or smaller batches), say so.

The model's forward (``engine.run_trace(s)``) or the diagnosis is patched to raise
``torch.cuda.OutOfMemoryError`` a given number of times; the loaded model pretends to live on
``cuda:0`` (moving it "to the CPU" is then a no-op for the weights but changes its device).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from fga_tui import engine
from fga_tui.oom import is_oom, retry_on_cpu, run_traces_split
from fga_tui.tui.messages import Progress, RequestFailed, ViewReady
from fga_tui.tui.session import Session, SessionOptions
from fga_tui.tui.synthetic import ba4hfli


def _oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _on_fake_gpu(loaded):
    return dataclasses.replace(loaded, device=torch.device("cuda:0"))


@pytest.fixture(scope="module")
def loaded(fork_ckpt):
    return engine.load_model(fork_ckpt, device="cpu")


@pytest.fixture(scope="module")
def prepared(loaded, nacl_json, nacl_tokens):
    sample = engine.load_sample(nacl_json)
    return engine.prepare_sample(loaded, sample, tokens_path=nacl_tokens)


def test_is_oom_knows_the_torch_error_and_the_old_runtime_error():
    assert is_oom(_oom())
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not is_oom(RuntimeError("shape mismatch"))
    assert not is_oom(ValueError("out of range"))


def test_retry_on_cpu_runs_again_on_the_cpu_and_says_so(loaded):
    gpu = _on_fake_gpu(loaded)
    seen, notes = [], []

    def work(m):
        seen.append(str(m.device))
        if len(seen) == 1:
            raise _oom()
        return "answer"

    value, used = retry_on_cpu(work, gpu, notes.append)
    assert value == "answer" and seen == ["cuda:0", "cpu"] and str(used.device) == "cpu"
    assert notes == ["cuda:0 out of memory: retrying on the CPU"]


def test_retry_on_cpu_does_not_hide_other_errors_or_cpu_oom(loaded):
    with pytest.raises(ValueError):
        retry_on_cpu(lambda m: (_ for _ in ()).throw(ValueError("bug")), _on_fake_gpu(loaded))
    with pytest.raises(torch.cuda.OutOfMemoryError):  # already on the CPU: nothing to fall to
        retry_on_cpu(lambda m: (_ for _ in ()).throw(_oom()), loaded)


def test_scan_batches_are_split_in_halves_until_they_fit(loaded, prepared, monkeypatch):
    real = engine.run_traces
    sizes: list[int] = []

    def limited(m, batch, ablation=None, *, counterfactuals=True):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise _oom()
        return real(m, batch, ablation, counterfactuals=counterfactuals)

    monkeypatch.setattr(engine, "run_traces", limited)
    notes: list[str] = []
    traces = run_traces_split(
        _on_fake_gpu(loaded), [prepared] * 5, counterfactuals=False, notify=notes.append
    )
    assert len(traces) == 5
    assert sizes == [5, 3, 2, 1, 2]  # 5 -> 3 + 2 -> (2 + 1) + 2
    assert notes == [
        "cuda:0 out of memory on a batch of 5: retrying in batches of 3",
        "cuda:0 out of memory on a batch of 3: retrying in batches of 2",
    ]
    assert traces[0].prediction == pytest.approx(traces[4].prediction)


def test_a_single_sample_that_does_not_fit_runs_on_the_cpu(loaded, prepared, monkeypatch):
    real = engine.run_traces
    devices: list[str] = []

    def gpu_full(m, batch, ablation=None, *, counterfactuals=True):
        devices.append(str(m.device))
        if str(m.device) != "cpu":
            raise _oom()
        return real(m, batch, ablation, counterfactuals=counterfactuals)

    monkeypatch.setattr(engine, "run_traces", gpu_full)
    notes: list[str] = []
    traces = run_traces_split(_on_fake_gpu(loaded), [prepared], notify=notes.append)
    assert len(traces) == 1 and devices == ["cuda:0", "cpu"]
    assert notes == ["cuda:0 out of memory on a single sample: running on the CPU from here on"]


@pytest.mark.parametrize("where", ["trace", "diagnose"])
def test_the_inspector_retries_on_the_cpu_and_says_so_in_the_status_bar(
    loaded, monkeypatch, tmp_path, where
):
    from fga_tui.diagnostics import report

    sample, tokens = ba4hfli(tmp_path)
    session = Session(SessionOptions(loaded.info.path, sample, tokens=tokens, device="cpu"))
    session.loaded = _on_fake_gpu(loaded)
    target, name = (engine, "run_trace") if where == "trace" else (report, "diagnose")
    real = getattr(target, name)
    calls: list[str] = []

    def once(m, *args, **kwargs):
        calls.append(str(m.device))
        if len(calls) == 1:
            raise _oom()
        return real(m, *args, **kwargs)

    monkeypatch.setattr(target, name, once)
    posted: list = []
    session.compute(
        session.next_generation(), session.initial_request(), posted.append, lambda: False
    )
    assert not [m for m in posted if isinstance(m, RequestFailed)], posted
    views = [m for m in posted if isinstance(m, ViewReady)]
    assert len(views) == 1
    assert calls[0] == "cuda:0" and set(calls[1:]) == {"cpu"}  # ablation traces: cpu too
    said = [m.what for m in posted if isinstance(m, Progress)]
    assert "cuda:0 out of memory: retrying on the CPU" in said
    view = views[0].view
    assert view.device == "cpu (GPU out of memory)"
    assert str(session.loaded.device) == "cpu"  # later requests stay on the CPU


def test_report_retries_on_the_cpu_and_says_so_on_stderr(
    fork_ckpt, nacl_json, nacl_tokens, monkeypatch
):
    from fga_tui.cli import app
    from fga_tui.diagnostics import report

    real_load, real_diagnose = engine.load_model, report.diagnose
    monkeypatch.setattr(engine, "load_model", lambda *a, **k: _on_fake_gpu(real_load(*a, **k)))
    calls: list[str] = []

    def once(m, *args, **kwargs):
        calls.append(str(m.device))
        if len(calls) == 1:
            raise _oom()
        return real_diagnose(m, *args, **kwargs)

    monkeypatch.setattr(report, "diagnose", once)
    args = ["report", fork_ckpt, nacl_json, "--tokens", nacl_tokens, "--format", "json"]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--device", "cpu"]])
    assert result.exit_code == 0, result.output
    assert calls == ["cuda:0", "cpu"]
    assert "fga-tui: cuda:0 out of memory: retrying on the CPU" in result.stderr
    assert json.loads(result.stdout)["schema"] == "fga-tui.report/1"


def test_reserving_a_core_limits_torch_and_numpy_blas_threads(monkeypatch):
    """Beside the UI the engine leaves a core free: torch's threads and numpy's BLAS pool."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from fga_tui import engine

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before_torch, before_blas = torch.get_num_threads(), blas_threads()
    monkeypatch.setattr(engine.os, "cpu_count", lambda: 3)
    try:
        threadpool_limits(limits=3, user_api="blas")
        assert engine.configure_threads(reserve_one_core=False) == 3
        assert torch.get_num_threads() == 3
        assert engine.configure_threads(reserve_one_core=True) == 2
        assert torch.get_num_threads() == 2
        assert blas_threads() and set(blas_threads()) == {2}
    finally:
        torch.set_num_threads(before_torch)
        threadpool_limits(limits=max(before_blas, default=1), user_api="blas")
