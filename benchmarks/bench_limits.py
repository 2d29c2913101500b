"""Speeds that tests used to assert with a stopwatch, measured here instead (not a test).

A timed assertion fails on a loaded machine and passes on a fast one whatever the code does, so
the tests check behaviour and these rows report the speed, each as a ratio to a reference
computed in the same run on the same data (or, for the UI, as absolute ms against a target):

- stage metrics at 500 atoms vs one float64 Gram matrix of the same features (the work's
  floor): a per-pair Python loop would show as a ratio in the hundreds;
- validating a 1000-atom structure (the overlap check) vs building its crystal graph;
- refusing a sample one atom over --max-atoms (default 5,000) vs parsing its JSON: the refusal
  must not build anything first;
- the TUI quitting while a trace blocks (the worker is abandoned, not joined);
- ``examples/train_demo.py --quick`` end to end (skipped with ``--quick``).

Usage: ``python benchmarks/bench_limits.py [--quick]``; ``run(quick)`` returns ratio rows and
``absolute(quick)`` absolute rows for ``run_all.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent


def _row(name: str, a_ms: float, b_ms: float, target: float) -> dict[str, Any]:
    return {"name": name, "a_ms": a_ms, "b_ms": b_ms, "ratio": a_ms / b_ms, "target": target}


def stage_metrics_row(repeats: int) -> dict[str, Any]:
    from _common import interleaved_ms

    from fga_tui.diagnostics.similarity import stage_metrics

    rng = np.random.default_rng(5)
    X = (rng.normal(size=(500, 256)) + 3.0).astype(np.float32)
    src, dst = rng.integers(0, 500, 6000), rng.integers(0, 500, 6000)
    orbits = [list(range(i, i + 4)) for i in range(0, 500, 4)]
    X64 = X.astype(np.float64)
    ours, gram = interleaved_ms(
        [lambda: stage_metrics("gcn.0", X, src, dst, orbits), lambda: X64 @ X64.T], repeats
    )
    return _row("stage metrics / one Gram matrix, 500 atoms", ours, gram, 100.0)


def validation_row(repeats: int) -> dict[str, Any]:
    from _common import interleaved_ms

    from fga_tui.io.types import Structure
    from fga_tui.io.validate import validate_structure
    from fga_tui.structure.graph import build_graph

    rng = np.random.default_rng(0)
    side = 10
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3) / side
    coords = grid + rng.uniform(-0.01, 0.01, grid.shape)
    lat = np.array([[20.0, 0, 0], [5.0, 20.0, 0], [3.0, 4.0, 20.0]])
    elements = ["O"] * len(coords)
    structure = Structure(lat, coords % 1.0, tuple(elements))
    check, graph = interleaved_ms(
        [
            lambda: validate_structure(lat, coords, elements, False, path="b", max_atoms=1000),
            lambda: build_graph(structure),
        ],
        repeats,
        warmup=1,
    )
    return _row("validate 1000 atoms / build their graph", check, graph, 1.0)


def refusal_row(repeats: int) -> dict[str, Any]:
    from _common import interleaved_ms
    from typer.testing import CliRunner

    from fga_tui.cli import app
    from fga_tui.io.errors import MAX_ATOMS

    fixtures = ROOT / "tests" / "fixtures"
    row = json.loads((fixtures / "nacl.json").read_text())
    n = 18
    frac = [[i / n, j / n, k / n] for i in range(n) for j in range(n) for k in range(n)][
        : MAX_ATOMS + 1
    ]
    side = 4.0 * n
    row["atoms"] = dict(
        row["atoms"],
        lattice_mat=[[side, 0, 0], [0, side, 0], [0, 0, side]],
        coords=frac,
        elements=["Na"] * (MAX_ATOMS + 1),
    )
    with tempfile.TemporaryDirectory() as tmp:
        huge = Path(tmp) / "huge.json"
        huge.write_text(json.dumps(row))
        argv = ["report", str(fixtures / "fork_ckpt.pt"), str(huge), "--device", "cpu"]
        runner = CliRunner()

        def refuse() -> None:
            result = runner.invoke(app, argv)
            assert result.exit_code == 2, result.output

        refused, parsed = interleaved_ms(
            [refuse, lambda: json.loads(huge.read_text())], repeats, warmup=1, clock="wall"
        )
    return _row(f"refuse a {MAX_ATOMS + 1}-atom sample / parse its JSON", refused, parsed, 100.0)


def run(quick: bool = False) -> list[dict[str, Any]]:
    repeats = 3 if quick else 7
    return [stage_metrics_row(repeats), validation_row(repeats), refusal_row(repeats)]


async def _quit_latency_ms() -> float:
    from fga_tui import engine
    from fga_tui.tui.app import FgaApp
    from fga_tui.tui.session import Session, SessionOptions
    from fga_tui.tui.synthetic import ba4hfli

    release, started = threading.Event(), threading.Event()
    real = engine.run_trace

    def blocked(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(120)
        raise RuntimeError("released")

    with tempfile.TemporaryDirectory() as tmp:
        sample, tokens = ba4hfli(Path(tmp))
        options = SessionOptions(
            ROOT / "tests" / "fixtures" / "fork_ckpt.pt", sample, tokens=tokens, device="cpu"
        )
        engine.run_trace = blocked
        try:
            app = FgaApp(session=Session(options))
            async with app.run_test(size=(100, 30)) as pilot:
                while not started.is_set():
                    await pilot.pause(0.05)
                await pilot.pause(0.1)
                t0 = time.perf_counter()
                app.simulate_key("q")
            return (time.perf_counter() - t0) * 1e3
        finally:
            release.set()
            engine.run_trace = real


def absolute(quick: bool = False) -> list[dict[str, Any]]:
    rows = [
        {
            "name": "quit while a trace blocks",
            "value_ms": asyncio.run(_quit_latency_ms()),
            "target_ms": 1000.0,
        }
    ]
    if not quick:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, str(ROOT / "examples" / "train_demo.py"), "--quick", "--out", tmp],
                check=True,
                capture_output=True,
            )
            rows.append(
                {
                    "name": "train_demo.py --quick",
                    "value_ms": (time.perf_counter() - t0) * 1e3,
                    "target_ms": 30000.0,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from _common import format_table, machine

    print(machine())
    print(format_table(run(args.quick)))
    for r in absolute(args.quick):
        ok = "ok" if r["value_ms"] <= r["target_ms"] else "MISS"
        print(f"{r['name']:<44} {r['value_ms']:>9.1f} ms  <= {r['target_ms']:g} {ok}")


if __name__ == "__main__":
    main()
