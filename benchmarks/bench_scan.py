"""Scan throughput vs a plain batched forward over the same data (issue: target >= 0.8x).

a = ``fga_tui.scan.scan`` per row in its steady state (reading, graphs and symmetry and the
diagnosis in worker processes, batched traced forward, JSONL rows), timed as the difference of
two whole scans, of n1 and of n rows (the checkpoint audit and the workers' start-up are paid once
per scan; the whole run is shown on its own row); b = the same samples' graphs built in-process
plus a plain batched forward (no capture, no diagnostics). Ratio a/b <= 1.25 means scan
throughput >= 0.8x of the plain forward. The journal row: appending + flushing each finished
row, against the scan's time per row (target <= 2 %).
Also times our crystal-graph builder against a plain per-structure loop, to show where a scan's
time goes. Run: ``python benchmarks/bench_scan.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
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


def run(quick: bool = False) -> list[dict]:
    from bench_forward import fork_config

    from fga_tui import engine
    from fga_tui.io.sample import load_samples
    from fga_tui.model.alignn_text import ALIGNNText
    from fga_tui.model.batch import collate_graphs, collate_tokens
    from fga_tui.scan import scan
    from fga_tui.scan.journal import SegmentWriter
    from fga_tui.structure.graph import build_graph

    batch = 16
    n1, n = (2 * batch, 4 * batch) if quick else (4 * batch, 12 * batch)
    # A model of the size users train (hidden 256, MatSciBERT-width tokens), random weights:
    # the fixture's hidden-64 model would make the forward unrealistically cheap.
    torch.manual_seed(0)
    config = fork_config()
    loaded = engine.model_from_state(config, ALIGNNText(config).state_dict())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp), n)
        small = Path(tmp) / "small.jsonl"
        small.write_text("".join(data.read_text().splitlines(keepends=True)[:n1]))
        # b: graphs in-process + plain batched forward.
        t0 = time.perf_counter()
        samples = load_samples(data)
        graphs = [build_graph(s.structure) for s in samples]
        graph_s = time.perf_counter() - t0
        with torch.inference_mode():
            for i in range(0, n, batch):
                g = collate_graphs(graphs[i : i + batch])
                t = collate_tokens([s.tokens for s in samples[i : i + batch]])
                loaded.model(g, t)
        plain_s = time.perf_counter() - t0
        # a: whole scans of n1 and n rows; the difference is the marginal cost of n - n1 rows,
        # a long scan's rate (the audit and the workers' start-up are paid once per scan).
        kept: list[dict] = []
        times = []
        for path in (small, data):
            kept.clear()
            t0 = time.perf_counter()
            scan(loaded, path, batch_size=batch, workers=0, progress=False, on_row=kept.append)
            times.append(time.perf_counter() - t0)
        scan_s = times[1]
        steady_s = (times[1] - times[0]) / (n - n1)
        # The journal's cost per row: the same rows appended and flushed one by one.
        writer = SegmentWriter(Path(tmp) / "journal.jsonl")
        t1 = time.perf_counter()
        for r in kept:
            writer.write(r)
        writer.close()
        journal_s = (time.perf_counter() - t1) / n
    plain_per = plain_s / n
    rows.append(
        {
            "name": f"scan steady state vs plain forward (hidden 256, rows {n1}->{n}, per row)",
            "a_ms": steady_s * 1e3,
            "b_ms": plain_per * 1e3,
            "ratio": steady_s / plain_per,
            "target": 1.25,
        }
    )
    rows.append(
        {
            "name": "  scan incl. audit + start-up, whole run (information)",
            "a_ms": scan_s / n * 1e3,
            "b_ms": plain_per * 1e3,
            "ratio": scan_s / plain_s,
            "target": None,
        }
    )
    rows.append(
        {
            "name": "  of which graph building (plain side)",
            "a_ms": graph_s / n * 1e3,
            "b_ms": plain_per * 1e3,
            "ratio": graph_s / plain_s,
            "target": 1.0,
        }
    )
    rows.append(
        {
            "name": "journal: append + flush a row vs the scan's time per row",
            "a_ms": journal_s * 1e3,
            "b_ms": steady_s * 1e3,
            "ratio": journal_s / steady_s,
            "target": 0.02,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(machine())
    print(format_table(run(args.quick)))


if __name__ == "__main__":
    main()
