"""Every benchmark of the project in one table (ratios from one run on one machine).

Run: ``python benchmarks/run_all.py [--quick]``. Rows:
- engine (bench_forward): pure torch vs upstream DGL, vs the matmul bound, traced vs plain;
- crystal graphs (here, via bench_graph's helpers): ours vs upstream's builder (target 5x);
- scan (bench_scan): scan vs a plain batched forward (throughput >= 0.8x);
- attribution (bench_attribution): gradients + integrated gradients vs a traced forward (3x);
    tui_rows = bench_tui.run(args.quick) + bench_limits.absolute(args.quick)
    session_rows = [] if args.skip_session else fresh_process(bench_session.run, args.quick)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def fresh_process(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a new interpreter: the session rows measure a UI process, which must
    not carry this one's torch threads and heap (its stalls were 130 ms with nothing
    computing when run here, 10-15 ms in a process of its own)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def graph_rows(quick: bool) -> list[dict[str, Any]]:
    """Our builder vs upstream's neighbour search + edge data (the part a scan pays per sample)."""
    import bench_graph
    from _common import median_ms
    from alignn import graphs
    from jarvis.core.atoms import Atoms

    from fga_tui.structure.graph import build_graph

    rows = []
    for reps in ((1, 1, 1), (2, 2, 2), (3, 3, 3)):
        s = bench_graph.srtio3(reps)
        atoms = Atoms(lattice_mat=s.lattice, coords=s.frac_coords, elements=list(s.elements))

        def upstream(atoms: Atoms = atoms) -> None:
            edges, _ = graphs.nearest_neighbor_edges(
                atoms=atoms, cutoff=8.0, max_neighbors=12, use_canonize=True
            )
            graphs.build_undirected_edgedata(atoms, edges)

        repeats = 3 if quick else 7
        ours_ms = median_ms(lambda s=s: build_graph(s), repeats)
        up_ms = median_ms(upstream, repeats)
        rows.append(
            {
                "name": f"graph build ours/upstream, {s.num_atoms} atoms",
                "a_ms": ours_ms,
                "b_ms": up_ms,
                "ratio": ours_ms / up_ms,
                "target": 0.2,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-session", action="store_true", help="no bench_session rows")
    args = parser.parse_args()

    import bench_attribution
    import bench_forward
    import bench_limits
    import bench_scan
    import bench_session
    import bench_tui
    from _common import machine

    t0 = time.perf_counter()
    ratio_rows: list[dict[str, Any]] = []
    for name, fn in (
        ("engine", lambda: bench_forward.run(args.quick)),
        ("graphs", lambda: graph_rows(args.quick)),
        ("scan", lambda: bench_scan.run(args.quick)),
        ("attribution", lambda: bench_attribution.run(args.quick)),
        ("limits", lambda: bench_limits.run(args.quick)),
    ):
        try:
            ratio_rows += fn()
        except Exception as exc:  # one missing extra (dgl) must not hide the other rows
            ratio_rows.append(
                {
                    "name": f"{name}: not run ({exc})",
                    "a_ms": 0.0,
                    "b_ms": 0.0,
                    "ratio": float("nan"),
                    "target": float("nan"),
                }
            )
    tui_rows = bench_tui.run(args.quick) + bench_limits.absolute(args.quick)
    session_rows = [] if args.skip_session else fresh_process(bench_session.run, args.quick)

    print(machine())
    head = f"{'benchmark':<58} {'a ms':>9} {'b ms':>9} {'a/b':>6} {'target':>8}"
    print(head)
    print("-" * len(head))
    for r in ratio_rows:
        target = r.get("target")
        if target is None or r["ratio"] != r["ratio"] or target != target:
            ok, shown = "", ""  # information only (no target), or not run
        else:
            ok, shown = ("ok" if r["ratio"] <= target else "MISS"), f"<= {target:g}"
        print(
            f"{r['name']:<58} {r['a_ms']:>9.1f} {r['b_ms']:>9.1f} {r['ratio']:>6.2f} "
            f"{shown:>8} {ok}"
        )
    print()
    print(f"{'TUI (absolute)':<58} {'ms':>9} {'target':>9}")
    for r in tui_rows:
        target = r.get("target_ms")
        ok = "" if target is None else ("ok" if r["value_ms"] <= target else "MISS")
        shown = "" if target is None else f"<= {target:g}"
        print(f"{r['name']:<58} {r['value_ms']:>9.1f} {shown:>9} {ok}")
    if session_rows:
        print()
        print(bench_session.format_rows(session_rows))
    print(f"\n(all benchmarks took {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
