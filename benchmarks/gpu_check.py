"""Device check for a GPU node: fixture parity on CUDA and absolute forward/scan timings.

Prints one JSON object (and writes it to ``--out``): parity of the fork fixture traced on the
GPU against the fork's own CPU outputs (every stage, attention, prediction; single and batched),
plain vs traced forward times at hidden 256 (CUDA events, median of 20 after warm-up) and scan
throughput vs a plain batched forward on the GPU. Run: ``python benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

FIX = ROOT / "tests" / "fixtures"


def cuda_ms(fn, repeats: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def parity(device: str) -> dict:
    from test_model_parity import EXPECTED_STAGE  # the fixture's stage -> array names

    from fga_tui import engine
    from fga_tui.model.tracer import trace_batch

    expected = dict(np.load(FIX / "nacl.expected.npz"))
    loaded = engine.load_model(FIX / "fork_ckpt.pt", device=device)
    prepared = engine.prepare_sample(
        loaded, engine.load_sample(FIX / "nacl.json"), tokens_path=FIX / "nacl.tokens.npz"
    )
    out = {}
    for name, traces in (
        ("single", [engine.run_trace(loaded, prepared)]),
        (
            "batched x3",
            trace_batch(
                loaded.model, [prepared.graph] * 3, [prepared.tokens] * 3, [prepared.elements] * 3
            ),
        ),
    ):
        t = traces[-1]
        stage_err = max(
            float(
                np.abs(
                    t.features[s] - expected[EXPECTED_STAGE.get(s, "x_" + s.replace(".", "_"))]
                ).max()
            )
            for s in t.stages
        )
        out[name] = {
            "max_stage_err": stage_err,
            "atom_to_text_err": float(np.abs(t.atom_to_text - expected["atom_to_text"][0]).max()),
            "text_to_atom_err": float(np.abs(t.text_to_atom - expected["text_to_atom"][0]).max()),
            "prediction_err": abs(t.prediction - float(expected["predictions"])),
        }
    return out


def forward_times(device: str) -> list[dict]:
    from _common import benchmark_cells
    from bench_forward import fork_config

    from fga_tui.io.types import TokenStates
    from fga_tui.model.alignn_text import ALIGNNText
    from fga_tui.model.batch import collate_graphs, collate_tokens
    from fga_tui.model.tracer import trace_batch
    from fga_tui.structure.graph import build_graph

    torch.manual_seed(0)
    config = fork_config()
    model = ALIGNNText(config).eval().to(device)
    rng = np.random.default_rng(0)
    tokens = TokenStates(
        tuple(f"t{i}" for i in range(40)),
        rng.standard_normal((40, 768)).astype(np.float32),
        np.ones(40, bool),
    )
    rows = []
    for name, structure in benchmark_cells().items():
        graph = build_graph(structure)
        for batch in (1, 32):
            graphs, toks = [graph] * batch, [tokens] * batch
            els = [structure.elements] * batch

            def plain(graphs=graphs, toks=toks):
                with torch.inference_mode():
                    model(collate_graphs(graphs, device), collate_tokens(toks, device))

            def traced(graphs=graphs, toks=toks, els=els):
                trace_batch(model, graphs, toks, els)

            p, t = cuda_ms(plain), cuda_ms(traced)
            rows.append(
                {
                    "cell": name,
                    "batch": batch,
                    "plain_ms": round(p, 3),
                    "traced_ms": round(t, 3),
                    "ratio": round(t / p, 3),
                    "plain_ms_per_structure": round(p / batch, 3),
                }
            )
    return rows


def scan_times(device: str, n: int = 256) -> dict:
    from bench_scan import make_dataset

    from fga_tui import engine
    from fga_tui.io.sample import load_samples
    from fga_tui.model.batch import collate_graphs, collate_tokens
    from fga_tui.scan import scan
    from fga_tui.structure.graph import build_graph

    loaded = engine.load_model(FIX / "fork_ckpt.pt", device=device)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp), n)
        t0 = time.perf_counter()
        samples = load_samples(data)
        graphs = [build_graph(s.structure) for s in samples]
        with torch.inference_mode():
            for i in range(0, n, 32):
                loaded.model(
                    collate_graphs(graphs[i : i + 32], loaded.device),
                    collate_tokens([s.tokens for s in samples[i : i + 32]], loaded.device),
                )
        torch.cuda.synchronize()
        plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = scan(loaded, data, out=io.StringIO(), batch_size=32, workers=8, progress=False)
        scanned = time.perf_counter() - t0
    return {
        "samples": n,
        "plain_s": round(plain, 3),
        "scan_s": round(scanned, 3),
        "throughput_ratio": round(plain / scanned, 3),
        "ok": summary.ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    result["parity"] = parity(args.device)
    result["forward"] = forward_times(args.device)
    result["scan"] = scan_times(args.device)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
