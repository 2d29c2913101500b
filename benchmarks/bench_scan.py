"""Scan throughput vs a plain batched forward over the same data (issue: target >= 0.8x).

a = ``fga_tui.scan.scan`` per row in its steady state (reading, graphs and symmetry and the
diagnosis in worker processes, batched traced forward, JSONL rows): the time between the rows
leaving the scan after its first two batches, so the checkpoint audit and the workers' start-up,
paid once per scan, stay out (the whole run and the audit are shown on their own rows);
b = plain batched inference of the same rows: read them, build their graphs in-process, batched
forward (no capture, no diagnostics). Ratio a/b <= 1.25 means scan throughput >= 0.8x of plain
inference. The sides run in turn, round after round (medians), so both see the same background
load. The journal row: appending + flushing each finished row, against the scan's time per row
(target <= 2 %). Run: ``python benchmarks/bench_scan.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import format_table, machine

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def make_dataset(folder: Path, n: int, seed: int = 0) -> Path:
    """n JARVIS-style rows: perovskites and rock salts with varied elements and lattices."""
    rng = np.random.default_rng(seed)
    tokens = FIXTURES / "nacl.tokens.npz"
    rows = []
    for i in range(n):
        if i % 2:
            a = float(rng.uniform(3.7, 4.2))
            el = [str(rng.choice(["Sr", "Ba", "Ca"])), str(rng.choice(["Ti", "Zr", "Hf"]))]
            coords = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
            atoms = {
                "lattice_mat": (np.eye(3) * a).tolist(),
                "coords": coords,
                "elements": [*el, "O", "O", "O"],
                "cartesian": False,
            }
        else:
            a = float(rng.uniform(2.6, 3.2))
            el = [str(rng.choice(["Na", "K", "Li"])), str(rng.choice(["Cl", "Br", "F"]))]
            atoms = {
                "lattice_mat": [[0, a, a], [a, 0, a], [a, a, 0]],
                "coords": [[0, 0, 0], [0.5, 0.5, 0.5]],
                "elements": el,
                "cartesian": False,
            }
        rows.append({"jid": f"s{i}", "atoms": atoms, "text": "x", "tokens": str(tokens)})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _plain(loaded, data: Path, batch: int) -> None:
    """Plain batched inference: read the rows, build their graphs, forward in batches."""
    from fga_tui.io.sample import load_samples
    from fga_tui.model.batch import collate_graphs, collate_tokens
    from fga_tui.structure.graph import build_graph

    samples = load_samples(data)
    graphs = [build_graph(s.structure) for s in samples]
    with torch.inference_mode():
        for i in range(0, len(samples), batch):
            g = collate_graphs(graphs[i : i + batch])
            t = collate_tokens([s.tokens for s in samples[i : i + batch]])
            loaded.model(g, t)


def _scan(loaded, data: Path, batch: int, skip: int, pool: bool) -> tuple[float, float, list]:
    """A whole scan: (seconds, steady seconds per row after the first ``skip`` rows, rows)."""
    from fga_tui.scan import runner, scan

    kept: list[dict] = []
    stamps: list[float] = []

    def on_row(row: dict) -> None:
        kept.append(row)
        stamps.append(time.perf_counter())

    saved = runner.MIN_ROWS_PER_WORKER
    runner.MIN_ROWS_PER_WORKER = saved if pool else 1 << 40
    try:
        t0 = time.perf_counter()
        scan(loaded, data, batch_size=batch, workers=0, progress=False, on_row=on_row)
        total = time.perf_counter() - t0
    finally:
        runner.MIN_ROWS_PER_WORKER = saved
    steady = (stamps[-1] - stamps[skip - 1]) / (len(stamps) - skip)
    return total, steady, kept


def run(quick: bool = False) -> list[dict]:
    from bench_forward import fork_config

    from fga_tui import engine
    from fga_tui.diagnostics.audit import audit_model
    from fga_tui.model.alignn_text import ALIGNNText
    from fga_tui.scan.journal import SegmentWriter

    batch = 16
    n, rounds = (4 * batch, 1) if quick else (6 * batch, 2)
    skip = 2 * batch  # the first blocks overlap the audit and the workers' start-up
    # A model of the size users train (hidden 256, MatSciBERT-width tokens), random weights:
    # the fixture's hidden-64 model would make the forward unrealistically cheap.
    torch.manual_seed(0)
    config = fork_config()
    loaded = engine.model_from_state(config, ALIGNNText(config).state_dict())
    plain_s, scan_s, steady_s, rank_s, rank_steady_s = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp), n)
        warm = Path(tmp) / "warm.jsonl"
        warm.write_text("".join(data.read_text().splitlines(keepends=True)[:batch]))
        _plain(loaded, warm, batch)
        _scan(loaded, warm, batch, 1, pool=False)
        # Interleaved rounds: every side sees the same background load (2 shared cores).
        for _ in range(rounds):
            t0 = time.perf_counter()
            _plain(loaded, data, batch)
            plain_s.append(time.perf_counter() - t0)
            total, steady, kept = _scan(loaded, data, batch, skip, pool=True)
            scan_s.append(total)
            steady_s.append(steady)
            total, steady, _ = _scan(loaded, data, batch, skip, pool=False)
            rank_s.append(total)
            rank_steady_s.append(steady)
        t0 = time.perf_counter()
        audit_model(loaded, None)
        audit_s = time.perf_counter() - t0
        # The journal's cost per row: the same rows appended and flushed one by one.
        writer = SegmentWriter(Path(tmp) / "journal.jsonl")
        t1 = time.perf_counter()
        for r in kept:
            writer.write(r)
        writer.close()
        journal_s = (time.perf_counter() - t1) / n
    med = statistics.median
    plain_per = med(plain_s) / n
    steady = med(steady_s)

    def row(name: str, a: float, b: float, target: float | None) -> dict:
        return {"name": name, "a_ms": a * 1e3, "b_ms": b * 1e3, "ratio": a / b, "target": target}

    return [
        row(f"scan steady state vs plain forward (hidden 256, rows {skip + 1}-{n}, per row)",
            steady, plain_per, 1.25),
        row("  same, diagnosis in the rank process (no workers)",
            med(rank_steady_s), plain_per, None),
        row(f"  scan incl. audit + start-up, whole run of {n} rows (information)",
            med(scan_s) / n, plain_per, None),
        row("  of which the checkpoint audit, once per scan (information)",
            audit_s / n, plain_per, None),
        row("journal: append + flush a row vs the scan's time per row", journal_s, steady, 0.02),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(machine())
    print(format_table(run(args.quick)))


if __name__ == "__main__":
    main()
