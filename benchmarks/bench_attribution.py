"""Attribution cost, as ratios measured in one run: ``engine.run_attribution`` (gradient-weighted
attention, 32-step integrated gradients, no-text and no-words predictions, 5 word deletions) vs
``engine.run_trace`` (a traced forward with counterfactual attention), on the fork fixture model
(middle fusion, fine-grained attention, 768-d token states) and the 135-atom SrTiO3 cell with
the fixture's NaCl token states. Target: <= 3.0 on CPU.

Two rows: attribution on its own (it runs the graph encoder with and without the text), and
attribution given the sample's trace, as ``report``, ``export``, ``scan`` and the TUI call it
(the trace's encoder output is reused: one encoder run fewer).

Usage: ``python benchmarks/bench_attribution.py [--quick] [--clock cpu|wall]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import CLOCKS, format_table, interleaved_ms, machine, srtio3

from fga_tui import engine
from fga_tui.io.tokens import load_tokens
from fga_tui.io.types import Sample

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TARGET = 3.0


def run(quick: bool = False, clock: str = "cpu") -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    repeats, warmup = (3, 1) if quick else (7, 2)
    loaded = engine.load_model(FIXTURES / "fork_ckpt.pt", device="cpu")
    structure = srtio3(3)
    sample = Sample(id="srtio3-135", structure=structure, text=None)
    tokens = load_tokens(FIXTURES / "nacl.tokens.npz")
    prepared = engine.prepare_sample(loaded, sample, tokens=tokens)
    trace = engine.run_trace(loaded, prepared)
    trace_ms, alone_ms, reused_ms = interleaved_ms(
        [
            lambda: engine.run_trace(loaded, prepared),
            lambda: engine.run_attribution(loaded, prepared),
            lambda: engine.run_attribution(loaded, prepared, trace=trace),
        ],
        repeats,
        warmup,
        clock,
    )
    n = structure.num_atoms
    return [
        {
            "name": f"attribution / traced forward ({n} atoms)",
            "a_ms": alone_ms,
            "b_ms": trace_ms,
            "ratio": alone_ms / trace_ms,
            "target": TARGET,
        },
        {
            "name": f"attribution given the trace / trace ({n} at.)",
            "a_ms": reused_ms,
            "b_ms": trace_ms,
            "ratio": reused_ms / trace_ms,
            "target": TARGET,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed runs per number, not 7")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = parser.parse_args(argv)
    rows = run(args.quick, args.clock)
    sys.stdout.write(f"machine: {machine(args.clock)}\n{format_table(rows)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
