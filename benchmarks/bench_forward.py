"""Engine speed, as ratios measured in one run (single-threaded CPU, median of >= 7 runs).

(a) pure-torch ``ALIGNNText`` vs upstream DGL ``ALIGNN``, same graphs and weights (default
    config, hidden 256), on cubic SrTiO3 cells of 5, 40 and 135 atoms: target <= 1.0.
(b) pure-torch forward vs its matmul bound: the FLOPs of every Linear application
    (2 * rows * in * out, counted with forward hooks) divided by the GEMM rate measured now on
    the dominant shape, line-graph rows x 256 x 256: target <= 2.0.
(c) a traced forward (``trace_batch`` with counterfactual attention: what the engine runs) vs a
    plain forward, both including collation, of a fork-style multimodal model at hidden 256
    with 40 random 768-d token states: target <= 1.3.
(d) the plain forward with its named hook points (identity modules, no hooks attached) vs the
    same forward with each reduced to a bare function call: target <= 1.03.

The two sides of a ratio are timed in turn, so background load hits both alike; the
default clock is process CPU time (see ``_common.CLOCKS``).

Usage: ``python benchmarks/bench_forward.py [--quick] [--clock cpu|wall]``; ``run(quick)``
returns the rows. (a) is left out, with a note, when the dgl extra is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fga_tui.io.types import TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.batch import collate_graphs, collate_tokens
from fga_tui.model.config import FIELD_NAMES, ModelConfig
from fga_tui.model.hooks import HookPoint
from fga_tui.model.tracer import trace_batch
from fga_tui.structure.graph import build_graph
from fga_tui.structure.types import CrystalGraph

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    CLOCKS,
    benchmark_cells,
    format_table,
    interleaved_ms,
    machine,
)

FIXTURE_CONFIG = (
    Path(__file__).resolve().parent.parent / "tests/fixtures/fork_ckpt.expected-config.json"
)
TOKENS = 40
TEXT_WIDTH = 768


def linear_flops(model: nn.Module, call: Any) -> int:
    """FLOPs of every ``nn.Linear`` application during ``call()``: 2 * rows * in * out."""
    total = 0

    def count(module: nn.Linear, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
        nonlocal total
        rows = inputs[0].numel() // module.in_features
        total += 2 * rows * module.in_features * module.out_features

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        call()
    finally:
        for handle in handles:
            handle.remove()
    return total


def gemm_probe(rows: int, width: int) -> tuple[Any, int]:
    """A call of ``F.linear`` on [rows, width] x [width, width] (+ bias) and its FLOPs: the
    shape of the line-graph edge_gate, which dominates the forward."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=gen)
    w = torch.randn(width, width, generator=gen)
    b = torch.randn(width, generator=gen)
    return (lambda: F.linear(x, w, b)), 2 * rows * width * width


def _row(name: str, a_ms: float, b_ms: float, target: float) -> dict[str, Any]:
    return {"name": name, "a_ms": a_ms, "b_ms": b_ms, "ratio": a_ms / b_ms, "target": target}


def _upstream_rows(
    graphs: dict[str, CrystalGraph], repeats: int, warmup: int, clock: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """(a) and (b) for each cell; (a) only where the dgl extra imports."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    torch.manual_seed(0)
    ours = ALIGNNText(ModelConfig()).eval()
    try:
        from fga_tui.model import dgl_backend

        upstream = dgl_backend.upstream_model(ours.state_dict(), {})
    except ImportError as exc:
        upstream = None
        notes.append(f"(a) left out: {exc}")
    for name, graph in graphs.items():
        batch = collate_graphs([graph])

        def pure(batch: Any = batch) -> torch.Tensor:
            with torch.no_grad():
                return ours(batch)

        # The GEMM rate is measured in turn with the forwards, under the same load.
        probe, probe_flops = gemm_probe(graph.num_lg_edges, ours.config.hidden_features)
        if upstream is not None:
            g, lg = dgl_backend.batch_dgl([graph])

            def dgl_forward(g: Any = g, lg: Any = lg) -> torch.Tensor:
                with torch.no_grad():
                    return upstream((g, lg, None))

            diff = float((dgl_forward().reshape(1, -1) - pure()).abs().max())
            if diff > 1e-4:
                notes.append(f"(a) {name}: pure and DGL outputs differ by {diff:.1e}")
            pure_ms, probe_ms, dgl_ms = interleaved_ms(
                [pure, probe, dgl_forward], repeats, warmup, clock
            )
            rows.append(_row(f"(a) pure / DGL, {name}", pure_ms, dgl_ms, 1.0))
        else:
            pure_ms, probe_ms = interleaved_ms([pure, probe], repeats, warmup, clock)
        rate = probe_flops / (probe_ms * 1e-3)
        flops = linear_flops(ours, pure)
        bound_ms = flops / rate * 1e3
        rows.append(_row(f"(b) pure / matmul bound, {name}", pure_ms, bound_ms, 2.0))
        notes.append(
            f"(b) {name}: N={graph.num_nodes} E={graph.num_edges} T={graph.num_lg_edges}, "
            f"{flops / 1e9:.2f} GFLOP in Linear layers at {rate / 1e9:.1f} GFLOP/s"
        )
    return rows, notes


def fork_config() -> ModelConfig:
    """The fixture fork checkpoint's architecture scaled to upstream's hidden width 256."""
    fields = json.loads(FIXTURE_CONFIG.read_text())
    fields = {k: v for k, v in fields.items() if k in FIELD_NAMES}
    fields.update(
        hidden_features=256,
        embedding_features=64,
        fine_grained_hidden_dim=256,
        cross_modal_hidden_dim=256,
        multimodal=True,
    )
    return ModelConfig(**fields)


def _trace_rows(
    graphs: dict[str, CrystalGraph],
    elements: dict[str, tuple[str, ...]],
    repeats: int,
    warmup: int,
    clock: str,
) -> list[dict[str, Any]]:
    """(c): the engine's traced forward vs a plain forward."""
    torch.manual_seed(1)
    model = ALIGNNText(fork_config()).eval()
    rng = np.random.default_rng(1)
    tokens = TokenStates(
        tuple(f"tok{i}" for i in range(TOKENS)),
        rng.standard_normal((TOKENS, TEXT_WIDTH)).astype(np.float32),
        np.ones(TOKENS, dtype=bool),
    )
    rows = []
    for name, graph in graphs.items():

        def plain(graph: CrystalGraph = graph) -> torch.Tensor:
            with torch.inference_mode():
                return model(collate_graphs([graph]), collate_tokens([tokens]))

        def traced(graph: CrystalGraph = graph, name: str = name) -> Any:
            return trace_batch(model, [graph], [tokens], [elements[name]], counterfactuals=True)

        traced_ms, plain_ms = interleaved_ms([traced, plain], repeats, warmup, clock)
        rows.append(_row(f"(c) traced / plain (fork, 40 tokens), {name}", traced_ms, plain_ms, 1.3))

        def bare(plain: Any = plain) -> torch.Tensor:
            """The same forward with every hook point reduced to a plain function call."""
            HookPoint.__call__ = _identity  # type: ignore[method-assign]
            try:
                return plain()
            finally:
                del HookPoint.__call__

        hooked_ms, bare_ms = interleaved_ms([plain, bare], repeats, warmup, clock)
        rows.append(_row(f"(d) hook points / none (fork), {name}", hooked_ms, bare_ms, 1.03))
    return rows


def _identity(_self: Any, x: torch.Tensor) -> torch.Tensor:
    return x


def run(quick: bool = False, clock: str = "cpu") -> list[dict[str, Any]]:
    """All rows {name, a_ms, b_ms, ratio, target}; ``quick`` = 3 timed runs instead of 9."""
    return _run(quick, clock)[0]


def _run(quick: bool, clock: str) -> tuple[list[dict[str, Any]], list[str]]:
    torch.set_num_threads(1)
    repeats, warmup = (3, 1) if quick else (9, 2)
    cells = benchmark_cells()
    graphs = {name: build_graph(s) for name, s in cells.items()}
    elements = {name: tuple(s.elements) for name, s in cells.items()}
    rows, notes = _upstream_rows(graphs, repeats, warmup, clock)
    rows += _trace_rows(graphs, elements, repeats, warmup, clock)
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed runs per number, not 9")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = parser.parse_args(argv)
    rows, notes = _run(args.quick, args.clock)
    sys.stdout.write(f"machine: {machine(args.clock)}\n{format_table(rows)}\n")
    sys.stdout.write("".join(f"  {note}\n" for note in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
