"""Long sessions and big cells: memory, UI stalls, report cost, 5,000 atoms (not a test).

- memory: the real app (engine in its child process) takes 1,000 seeded random keys (stages,
  atoms, modes, heads, ablations, the picker, help, themes, next/previous); RSS of the UI
  process plus the engine process after them vs at the first view. 6 atoms (the bundled demo)
  and 500 (a rattled supercell, ``fga_tui.tui.synthetic.supercell``). Target <= 1.2x.
- stall: with the first 500-atom view on screen, ``f`` starts a new diagnosis (trace, audit,
  ablations) and the arrow keys step through stages every 40 ms until it lands; the UI loop's
  longest stall (a 5 ms asyncio sleep that wakes late) while it computes, when its view
  arrives, and for 3 s before with nothing computing (the machine's share), and the key →
  repaint p95, with the engine in the UI process (``Session``) and in its child
  (``EngineProcess``). Target <= 50 ms while computing.
- report: ``diagnose`` on the demo cell repeated 7×7×7 (2,058 atoms) vs its traces alone (the
  traced forward and the cause-separating ablation forwards), CPU time; and the full report
  (with attribution) vs the same traces plus the attribution's own model runs (the encoder
  with a zero text, the integrated-gradients and word-deletion passes). Target <= 2x.
- 5,000 atoms: the demo cell 9×9×10 (4,860 atoms, and rattled: no symmetry) opened through
  ``EngineProcess``: the first view (child start, load, trace, diagnosis; the attribution that
  follows the view is not counted) and step → repaint p95 (while the attribution may still
  run in the child). Targets 60 s and 50 ms.

Usage: ``python benchmarks/bench_session.py [--quick] [--only memory,stall,report,big]``;
``run(quick)`` returns rows ``{name, a, b, unit, ratio, target}`` for ``run_all.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fga_tui" / "data" / "demo"
CKPT = ROOT / "tests" / "fixtures" / "fork_ckpt.pt"
SIZE = (160, 48)
#: Keys of the soak, with the keys that close what they open.
KEYS = (
    ["right"] * 6
    + ["left"] * 6
    + ["up"] * 4
    + ["down"] * 4
    + ["home", "end", "c", "H", "v", "w", "left_square_bracket", "right_square_bracket"]
    + ["f", "a", "question_mark", "t", "n", "p", "ctrl+p"]
)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` (MB), from /proc."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _session_rss(app: Any) -> tuple[float, float]:
    """(UI process, engine process) RSS in MB."""
    pid = getattr(app.session, "pid", None)
    return rss_mb(os.getpid()), (rss_mb(pid) if pid else 0.0)


async def _settle(app: Any, pilot: Any, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while (app.view is None or app.busy) and time.monotonic() < end:
        if app.error and app.view is None:
            raise RuntimeError(app.error)
        await pilot.pause(0.05)


async def _soak(
    options: Any, keys: int, seed: int = 11
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """RSS (MB) at the first view, after half the keys and after ``keys`` random keys, of the
    UI and the engine process (a bounded cache fills during the first half; a leak would keep
    growing in the second)."""
    import random

    from textual.screen import ModalScreen

    from fga_tui.tui.app import FgaApp

    app = FgaApp(options)
    rng = random.Random(seed)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _settle(app, pilot)
            await pilot.pause(0.5)
            first = _session_rss(app)
            mid = first
            for pressed in range(keys):
                if pressed == keys // 2:
                    mid = _session_rss(app)
                key = rng.choice(KEYS)
                await pilot.press(key)
                if isinstance(app.screen, ModalScreen) or len(app.screen_stack) > 1:
                    picker = type(app.screen).__name__ == "StagePickerScreen"
                    if picker and rng.random() < 0.5:
                        await pilot.press("down", "enter")
                    else:
                        await pilot.press("escape")
            await _settle(app, pilot)
            await pilot.pause(1.0)
            after = _session_rss(app)
    finally:
        app.session.close()
    return first, mid, after


def memory_rows(quick: bool) -> list[dict[str, Any]]:
    from fga_tui.tui.session import SessionOptions
    from fga_tui.tui.synthetic import supercell

    keys = int(os.environ.get("FGA_BENCH_KEYS", "1000"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sample, tokens = supercell(tmp)
        cases = (
            ("6 atoms (demo)", DEMO / "demo_problem.pt", DEMO / "ba4hfli.json", None),
            ("500 atoms", CKPT, sample, tokens),
        )
        for name, ckpt, smp, tok in cases:
            options = SessionOptions(
                ckpt, smp, tokens=tok, device="cpu", snapshot_dir=Path(tmp) / "snaps"
            )
            first, mid, after = asyncio.run(_soak(options, keys))
            rows.append(
                {
                    "name": f"RSS after {keys} random keys / first view, {name}",
                    "a": sum(after),
                    "b": sum(first),
                    "unit": "MB",
                    "ratio": sum(after) / sum(first),
                    "target": 1.2,
                }
            )
            rows.append(
                {
                    "name": f"  UI process; after {keys // 2} keys {mid[0]:.0f} MB ({name})",
                    "a": after[0],
                    "b": first[0],
                    "unit": "MB",
                    "ratio": after[0] / first[0],
                    "target": None,
                    "abs_target": float("inf"),
                }
            )
    return rows


async def _stall(session: Any, budget_s: float = 120.0) -> dict[str, float]:
    """UI-loop stalls (ms: how late a 5 ms asyncio sleep wakes) while the arrow keys step
    through stages every 40 ms: ``idle`` (3 s with nothing computing: what the machine's load
    alone costs), ``computing`` (after ``f``, until its view arrives), ``arrival`` (the rest:
    painting the new view, then its attribution); and the key → repaint p95 while computing."""
    import bench_tui

    from fga_tui.tui.app import FgaApp

    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(app, pilot)
        curves = app.query_one("#curves")
        while curves._prewarm:
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        stamps = bench_tui.frame_stamps(app)
        lags: list[tuple[float, float]] = []  # (woke at, lag)
        running = [True]

        async def watch() -> None:
            while running[0]:
                t0 = time.perf_counter()
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                lags.append((now, now - t0 - 0.005))

        async def step(latencies: list[float] | None, direction: int) -> int:
            last = len(app.view.stages) - 1
            if not 0 <= app.cursor.stage + direction <= last:
                direction = -direction
            stamps.clear()
            t0 = time.perf_counter()
            app.simulate_key("right" if direction > 0 else "left")
            while not stamps and time.perf_counter() - t0 < 2.0:
                await asyncio.sleep(0.001)
            if stamps and latencies is not None:
                latencies.append((stamps[0] - t0) * 1000)
            await asyncio.sleep(0.04)
            return direction

        watcher = asyncio.create_task(watch())
        direction, t_idle = 1, time.perf_counter()
        while time.perf_counter() - t_idle < 3.0:
            direction = await step(None, direction)
        t_press = time.perf_counter()
        before = app.view
        app.simulate_key("f")
        latencies: list[float] = []
        t_arrival = None
        end = time.monotonic() + budget_s
        await asyncio.sleep(0.05)
        while (app.busy or app.view is before) and time.monotonic() < end:
            if t_arrival is None and app.view is not before:
                t_arrival = time.perf_counter()
            direction = await step(latencies if t_arrival is None else None, direction)
        t_arrival = t_arrival or time.perf_counter()
        running[0] = False
        await watcher
        await app.workers.wait_for_complete()

    def worst(lo: float, hi: float) -> float:
        return max((lag for at, lag in lags if lo <= at <= hi), default=0.0) * 1000

    p95 = (
        sorted(latencies)[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        if latencies
        else float("nan")
    )
    return {
        "idle": worst(t_idle, t_press),
        "computing": worst(t_press, t_arrival - 0.005),
        "arrival": worst(t_arrival - 0.005, float("inf")),
        "p95": p95,
        "keys": len(latencies),
    }


def stall_rows(quick: bool) -> list[dict[str, Any]]:
    from fga_tui.tui.engine_process import EngineProcess
    from fga_tui.tui.messages import ViewReady
    from fga_tui.tui.session import Session, SessionOptions
    from fga_tui.tui.synthetic import supercell

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sample, tokens = supercell(tmp)
        options = SessionOptions(CKPT, sample, tokens=tokens, device="cpu")
        results = {}
        # The child first: its UI process must not have torch (nor the in-process session's
        # heap and threads) in it, as in real use.
        for name, cls in (("in a child process", EngineProcess), ("in the UI process", Session)):
            session = cls(options)
            posted: list = []
            session.compute(
                session.next_generation(), session.initial_request(), posted.append, lambda: False
            )
            if not any(isinstance(m, ViewReady) for m in posted):
                raise RuntimeError(getattr(posted[-1], "message", posted[-1]))
            try:
                results[name] = asyncio.run(_stall(session))
            finally:
                session.close()
        inproc, child = results["in the UI process"], results["in a child process"]
        for key, what in (
            ("computing", "longest UI stall while a 500-atom diagnosis computes"),
            ("arrival", "  longest stall painting its view (+ attribution)"),
            ("idle", "  longest stall with nothing computing (machine load)"),
        ):
            rows.append(
                {
                    "name": f"{what}, child/in-proc",
                    "a": child[key],
                    "b": inproc[key],
                    "unit": "ms",
                    "ratio": child[key] / inproc[key] if inproc[key] else float("nan"),
                    "target": None,
                    "abs_target": 50.0 if key == "computing" else float("inf"),
                }
            )
        rows.append(
            {
                "name": f"step→repaint p95 meanwhile (child {child['keys']}, "
                f"in-proc {inproc['keys']} keys)",
                "a": child["p95"],
                "b": inproc["p95"],
                "unit": "ms",
                "ratio": child["p95"] / inproc["p95"],
                "target": None,
                "abs_target": 50.0,
            }
        )
    return rows


def report_rows(quick: bool) -> list[dict[str, Any]]:
    from fga_tui import engine
    from fga_tui.diagnostics.report import cause_ablations, diagnose
    from fga_tui.structure.symmetry import analyse_symmetry
    from fga_tui.tui.synthetic import demo_supercell

    engine.configure_threads(reserve_one_core=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = demo_supercell(tmp, (7, 7, 7))
        loaded = engine.load_model(DEMO / "demo_problem.pt", device="cpu")
        prepared = engine.prepare_sample(loaded, engine.load_sample(path))
        n = prepared.sample.structure.num_atoms
        orbits = analyse_symmetry(prepared.sample.structure).orbits

        def traces() -> None:
            trace = engine.run_trace(loaded, prepared)
            cause_ablations(loaded, prepared, trace, orbits)

        def passes() -> None:  # the traces and the attribution's model runs
            trace = engine.run_trace(loaded, prepared)
            cause_ablations(loaded, prepared, trace, orbits)
            engine.run_attribution(loaded, prepared, trace=trace)

        def report() -> None:
            diagnose(loaded, prepared, attribution=False).report.to_json()

        def full_report() -> None:
            diagnose(loaded, prepared).report.to_json()

        def cpu(fn: Any) -> float:
            t0 = time.process_time()
            fn()
            return (time.process_time() - t0) * 1000

        full_report()  # warm-up: the audit's probe, imports
        repeats = 1 if quick else 2
        rows = []
        for name, a_fn, b_fn in (
            ("report / its traces (trace + ablation probes)", report, traces),
            ("  with attribution / traces + attribution's model runs", full_report, passes),
        ):
            a = statistics.median(cpu(a_fn) for _ in range(repeats))
            b = statistics.median(cpu(b_fn) for _ in range(repeats))
            rows.append(
                {
                    "name": f"{name}, {n} atoms (CPU time)",
                    "a": a,
                    "b": b,
                    "unit": "ms",
                    "ratio": a / b,
                    "target": 2.0,
                }
            )
    return rows


def big_rows(quick: bool) -> list[dict[str, Any]]:
    import bench_tui

    from fga_tui.tui.engine_process import EngineProcess
    from fga_tui.tui.messages import ViewReady
    from fga_tui.tui.session import SessionOptions
    from fga_tui.tui.synthetic import demo_supercell

    rows = []
    cases = [("symmetric", 0.0)] + ([] if quick else [("rattled", 0.05)])
    with tempfile.TemporaryDirectory() as tmp:
        for name, rattle in cases:
            path = demo_supercell(tmp, (9, 9, 10), rattle)
            session = EngineProcess(SessionOptions(DEMO / "demo_problem.pt", path, device="cpu"))
            try:
                posted: list = []
                shown: list[float] = []

                def post(message: Any, shown: list[float] = shown, posted: list = posted) -> None:
                    if isinstance(message, ViewReady):
                        shown.append(time.perf_counter())
                    posted.append(message)

                t0 = time.perf_counter()
                session.compute(
                    session.next_generation(), session.initial_request(), post, lambda: False
                )
                first = (shown[0] if shown else time.perf_counter()) - t0
                views = [m.view for m in posted if isinstance(m, ViewReady)]
                if not views:
                    raise RuntimeError(getattr(posted[-1], "message", posted[-1]))
                n = views[0].num_atoms
                lat, _, _ = asyncio.run(bench_tui._step_latencies(session, 20 if quick else 60))
            finally:
                session.close()
            rows.append(
                {
                    "name": f"first view of a {n}-atom cell ({name}), wall",
                    "a": first * 1000,
                    "b": None,
                    "unit": "ms",
                    "ratio": None,
                    "target": None,
                    "abs_target": 60000.0,
                }
            )
            rows.append(
                {
                    "name": f"step→repaint p95, {n} atoms ({name})",
                    "a": bench_tui._percentile(lat, 95),
                    "b": None,
                    "unit": "ms",
                    "ratio": None,
                    "target": None,
                    "abs_target": 50.0,
                }
            )
    return rows


SECTIONS = {"memory": memory_rows, "stall": stall_rows, "report": report_rows, "big": big_rows}


def run(quick: bool = False, only: tuple[str, ...] = tuple(SECTIONS)) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in only:
        try:
            rows += SECTIONS[name](quick)
        except Exception as exc:  # one failure must not hide the other rows
            rows.append({"name": f"{name}: not run ({type(exc).__name__}: {exc})"})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """One line per row: a, b, a/b against the ratio target, or a against an absolute one."""
    head = f"{'benchmark':<66} {'a':>9} {'b':>9} {'unit':>4} {'a/b':>6} {'target':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "a" not in r:
            lines.append(r["name"])
            continue
        b = "" if r["b"] is None else f"{r['b']:.1f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        if r.get("target") is not None:
            target, ok = f"<= {r['target']:g}x", r["ratio"] <= r["target"]
        else:
            target, ok = f"<= {r['abs_target']:g}", r["a"] <= r["abs_target"]
        lines.append(
            f"{r['name']:<66} {r['a']:>9.1f} {b:>9} {r['unit']:>4} {ratio:>6} {target:>9} "
            f"{'ok' if ok else 'MISS'}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    print(f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")
    print(format_rows(run(args.quick, only)))


if __name__ == "__main__":
    main()
