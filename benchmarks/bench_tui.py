"""TUI responsiveness: step-to-repaint latency and time to first paint (not a test).

- step-to-repaint: from a ``→``/``←`` key press to the moment the updated screen has been handed
  to the driver (``App._display``), headless, p50 and p95 over many steps bouncing across all
  stages, for the 6-atom Ba4HfLi cell and a 500-atom supercell (real traces of the fixture
  checkpoint). It includes Textual's frame clock (updates are flushed at most every
  1/TEXTUAL_FPS s, 60 fps by default), i.e. what a user waits for. Targets: p95 <= 16 ms at
  6 atoms, <= 50 ms at 500. The UI thread's CPU time per step is printed too: on a loaded
  machine wall latency includes waiting for a core, CPU time does not. Panes keep the pictures
  of stages already seen, so the first visit of a stage is reported on its own (max).
- first paint: a fresh interpreter imports the app and runs it headless; from just before the
  import to the first refresh (the engine is never imported). Target <= 0.5 s (median).

Usage: ``python benchmarks/bench_tui.py [--quick] [--device auto]``; ``run(quick)`` returns rows
``{name, value_ms, target_ms}`` for a one-table runner.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "tests" / "fixtures" / "fork_ckpt.pt"
SIZE = (160, 48)

FIRST_PAINT = """
import time
t0 = time.perf_counter()
import asyncio
from pathlib import Path
from fga_tui.tui.app import FgaApp
from fga_tui.tui.session import Session, SessionOptions

class Idle(Session):
    def compute(self, generation, request, post, cancelled):
        pass  # never answers: only the first frame is measured

async def main():
    app = FgaApp(session=Idle(SessionOptions(Path("x.pt"), Path("x.json"))))
    async with app.run_test(size=(80, 24)) as pilot:
        while app.first_paint_s is None:
            await asyncio.sleep(0.001)
        print((app._t0 - t0) + app.first_paint_s)
        assert "torch" not in __import__("sys").modules

asyncio.run(main())
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def first_paint_ms(repeats: int) -> list[float]:
    """Cold first paint, one fresh interpreter per repeat."""
    out = []
    for _ in range(repeats):
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(FIRST_PAINT)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        out.append(float(result.stdout.strip().splitlines()[-1]) * 1000)
    return out


def _session(sample: Path, tokens: Path, full: bool, device: str = "cpu") -> Any:
    from fga_tui.tui.messages import ViewReady
    from fga_tui.tui.session import Session, SessionOptions

    session = Session(
        SessionOptions(CKPT, sample, tokens=tokens, device=device, audit=full, run_ablations=full)
    )
    posted: list = []
    session.compute(
        session.next_generation(), session.initial_request(), posted.append, lambda: False
    )
    if not any(isinstance(m, ViewReady) for m in posted):  # attribution may follow the view
        raise RuntimeError(getattr(posted[-1], "message", posted[-1]))
    return session


def frame_stamps(app: Any) -> list[float]:
    """A list that receives the time of every frame the app writes from now on."""
    stamps: list[float] = []
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        original(screen, renderable)
        stamps.append(time.perf_counter())

    app._display = display  # type: ignore[method-assign]
    return stamps


async def _step_latencies(session: Any, steps: int) -> tuple[list[float], list[float], float]:
    """Wall latencies (ms) of every step and of first visits only (empty picture caches), and
    the UI thread's CPU time per step (ms, load-independent)."""
    from fga_tui.tui.app import FgaApp

    app = FgaApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        while app.view is None or app.busy:
            await asyncio.sleep(0.01)
        curves = app.query_one("#curves")
        while curves._prewarm:  # let the curve pre-rendering finish
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        stamps = frame_stamps(app)
        last = len(app.view.stages) - 1
        direction = 1
        latencies: list[float] = []
        first_visits: list[float] = []
        seen: set[int] = {app.cursor.stage}
        cpu0 = time.thread_time()
        for _ in range(steps):
            if not 0 <= app.cursor.stage + direction <= last:
                direction = -direction
            stamps.clear()
            start = time.perf_counter()
            await pilot.press("right" if direction > 0 else "left")
            while not stamps and time.perf_counter() - start < 1.0:
                await asyncio.sleep(0)
            if stamps:
                latencies.append((stamps[0] - start) * 1000)
                if app.cursor.stage not in seen:
                    first_visits.append(latencies[-1])
            seen.add(app.cursor.stage)
            await asyncio.sleep(0.02)  # a keypress every ~40 ms, like holding an arrow key
        cpu = (time.thread_time() - cpu0) / steps * 1000
    return latencies, first_visits, cpu


def run(quick: bool = False, device: str = "cpu") -> list[dict[str, Any]]:
    """Rows {name, value_ms, target_ms}; ``device`` runs the engine there (``auto``: a GPU when
    there is one; the latencies measured are the UI thread's either way)."""
    from fga_tui.tui.synthetic import ba4hfli, supercell

    steps = 40 if quick else 200
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("6 atoms", ba4hfli(tmp), 16.0, True), ("500 atoms", supercell(tmp), 50.0, False)]
        for name, (sample, tokens), target, full in cases:
            session = _session(sample, tokens, full, device)
            lat, first, cpu = asyncio.run(_step_latencies(session, steps))
            rows.append(
                {
                    "name": f"step→repaint p50, {name}",
                    "value_ms": statistics.median(lat),
                    "target_ms": None,
                }
            )
            rows.append(
                {
                    "name": f"step→repaint p95, {name}",
                    "value_ms": _percentile(lat, 95),
                    "target_ms": target,
                }
            )
            rows.append(
                {
                    "name": f"step→repaint max, first visit of a stage, {name}",
                    "value_ms": max(first),
                    "target_ms": None,
                }
            )
            rows.append(
                {"name": f"UI-thread CPU per step, {name}", "value_ms": cpu, "target_ms": None}
            )
    paints = first_paint_ms(3 if quick else 7)
    rows.append(
        {
            "name": "first paint (import + first frame), median",
            "value_ms": statistics.median(paints),
            "target_ms": 500.0,
        }
    )
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = f"{'benchmark':<52} {'ms':>8} {'target':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        target = r["target_ms"]
        mark = "" if target is None else ("ok" if r["value_ms"] <= target else "MISS")
        shown = "" if target is None else f"<= {target:.0f}"
        lines.append(f"{r['name']:<52} {r['value_ms']:>8.1f} {shown:>9} {mark}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--device", default="cpu", help="engine device: cpu, auto, cuda")
    args = parser.parse_args()
    print(format_rows(run(args.quick, args.device)))


if __name__ == "__main__":
    main()
