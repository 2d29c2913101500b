"""Shared benchmark helpers: the benchmark cells, timing and the result table.

Benchmarks report ratios measured in one run on one machine (absolute times vary 2x between
machines and runs; ratios much less). Nothing here asserts a time.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from fga_tui.io.types import Structure

SRTIO3_FRAC = np.array(
    [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], dtype=float
)
SRTIO3_ELEMENTS = ("Sr", "Ti", "O", "O", "O")
SRTIO3_A = 3.905


def srtio3(n: int) -> Structure:
    """Cubic SrTiO3 as an n x n x n supercell (5, 40, 135 atoms for n = 1, 2, 3): the cells
    every engine and graph ratio in this folder is measured on."""
    shifts = np.array([(i, j, k) for i in range(n) for j in range(n) for k in range(n)], float)
    frac = ((SRTIO3_FRAC[None, :, :] + shifts[:, None, :]) / n).reshape(-1, 3)
    return Structure(np.eye(3) * SRTIO3_A * n, frac, SRTIO3_ELEMENTS * n**3)


def benchmark_cells() -> dict[str, Structure]:
    return {f"{s.num_atoms} atoms": s for s in (srtio3(1), srtio3(2), srtio3(3))}


CLOCKS: dict[str, Callable[[], float]] = {
    "cpu": time.process_time,
    "wall": time.perf_counter,
}
"""``cpu`` (process CPU time, all threads) stays close to the uncontended wall time of a
single-threaded run even when other processes share the cores; ``wall`` is what a user waits."""


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 2, clock: str = "cpu") -> float:
    """Median time of ``fn()`` in ms after ``warmup`` untimed calls."""
    return interleaved_ms([fn], repeats, warmup, clock)[0]


def interleaved_ms(
    fns: Sequence[Callable[[], Any]], repeats: int, warmup: int = 2, clock: str = "cpu"
) -> list[float]:
    """Median times (ms) of each ``fn()``, called in turn, round after round, so that all see
    the same background load; ratios between them are then fair even on a busy machine."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, times, strict=True):
            t0 = now()
            fn()
            acc.append(now() - t0)
    return [statistics.median(t) * 1e3 for t in times]


def machine(clock: str = "cpu") -> str:
    """One line: CPU, cores, torch threads, versions, clock and the current load average."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{platform.machine()} ({os.cpu_count()} cores), {torch.get_num_threads()} torch "
        f"thread(s), torch {torch.__version__}, python {platform.python_version()}, "
        f"clock {clock}, load average {load}"
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    """One row per comparison: a and b in ms, ratio a/b, the target ratio and whether met."""
    head = f"{'benchmark':<44} {'a ms':>9} {'b ms':>9} {'ratio':>6} {'target':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        target = r.get("target")
        ok = "" if target is None else "ok" if r["ratio"] <= target else "MISS"
        shown = "-" if target is None else "<= " + format(target, "g")
        lines.append(
            f"{r['name']:<44} {r['a_ms']:>9.1f} {r['b_ms']:>9.1f} {r['ratio']:>6.2f} "
            f"{shown:>7} {ok}"
        )
    return "\n".join(lines)
