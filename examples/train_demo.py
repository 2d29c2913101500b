"""Train the two demo checkpoints: one that shows the bug, one trained with the remedy.

The motivating bug: every atom of a Ba4HfLi cell (Ba_0..Ba_3, Hf_4, Li_5) shows the same top
words. This script reproduces it by *training* (no edited weights) with the project's own model
(``fga_tui.model.alignn_text.ALIGNNText``, the research fork's architecture at a small width) on
the synthetic dataset of ``make_dataset.py``, and trains a second model with the remedy. Same
data, split and seed for both:

* ``demo_problem.pt`` (``PROBLEM``): the fork's recipe, property loss only, with middle fusion
  after every ALIGNN block. The attention stays near-uniform with one token ranking shared by all
  atoms, so every atom's top words are the text's most frequent tokens.
* ``demo_fixed.pt`` (``FIXED``): remedies 1 and 2 (no middle fusion, 2 + 2 layers) and remedy 4:
  ``+ 100 · attention_diversity_loss`` measured on rankable words (no [CLS]/[SEP]) ``+ 1 ·
  shared_query_loss + 10 · element_contrast_loss``. Why three terms: the variance term alone, at
  any weight large enough to move near-uniform attention, runs the softmax into one-hot rows, and
  every atom of a cell whose atoms are all cations (the A4BC family) lands on the same token; the
  scale-free shared-query term turns the queries towards atom-specific rankings and keeps the
  rows soft; but both reward the largest split of a cell and are met once one element reads
  differently (with them alone Ba and Li still read the same words, "( 1 ) ."): the element
  contrast term (cosine between the attention rows of different elements) separates every pair.

It also writes the bundled demo text encoder, the Ba4HfLi demo sample and its precomputed token
states, then checks both checkpoints with the engine and the diagnosis (top words per atom,
cross-orbit JSD, verdicts). Everything is seeded; one torch thread; about 4 minutes on 2 shared
CPU cores.

    python examples/train_demo.py --out /tmp/demo            # train, verify, print timings
    python examples/train_demo.py --install                  # ... and copy into fga_tui/data/demo
    python examples/train_demo.py --quick --out /tmp/q       # a few steps on tiny data (tests)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_dataset

from fga_tui.diagnostics.words import SPECIAL_TOKENS
from fga_tui.io.types import Structure, TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.batch import collate_graphs, collate_tokens
from fga_tui.model.config import ModelConfig
from fga_tui.structure.graph import build_graph
from fga_tui.structure.types import CrystalGraph
from fga_tui.text.demo_encoder import (
    DemoTextEncoder,
    build_vocabulary,
    packaged_dir,
    save_token_states,
)
from fga_tui.training import (
    DiversityMonitor,
    attention_diversity_loss,
    element_contrast_loss,
    forward_with_attention,
    shared_query_loss,
)

PACKAGE_DEMO = packaged_dir()
SAMPLE_NAME = "ba4hfli.json"
TOKENS_NAME = "ba4hfli.tokens.npz"
BA4HFLI_ORBITS = [[0, 1, 2, 3], [4], [5]]
TEXT_WIDTH = 64

#: A small version of the fork's model (hidden 256 -> 64, token width 768 -> 64).
BASE = ModelConfig(
    multimodal=True,
    alignn_layers=4,
    gcn_layers=4,
    hidden_features=64,
    embedding_features=32,
    text_hidden_dim=TEXT_WIDTH,
    projection_dim=64,
    use_fine_grained_attention=True,
    fine_grained_hidden_dim=64,
    fine_grained_num_heads=8,
    use_cross_modal_attention=True,
    cross_modal_hidden_dim=64,
    cross_modal_num_heads=4,
    middle_fusion_hidden_dim=64,
)
#: The fork's recipe with its text injection pushed to the limit: middle fusion after every
#: ALIGNN block, one GCN layer before the attention, property loss only.
PROBLEM = BASE.replace(use_middle_fusion=True, middle_fusion_layers="0,1,2,3", gcn_layers=1)
#: Remedies 1 and 2 (no middle fusion, 2 + 2 layers); remedy 4 is in the recipe below.
FIXED = BASE.replace(alignn_layers=2, gcn_layers=2)


@dataclass(frozen=True)
class Recipe:
    """One checkpoint to train."""

    name: str
    config: ModelConfig
    diversity_weight: float
    epochs: int
    lr: float = 2e-3
    batch_size: int = 32
    content_only: bool = False  # measure diversity on ranked words only ([CLS]/[SEP] excluded)
    per_head: bool = False  # diversity of every head's weights instead of their mean
    shared_query_weight: float = 0.0  # weight of shared_query_loss (query direction, scale-free)
    contrast_weight: float = 0.0  # weight of element_contrast_loss (different elements, words)


@dataclass
class Data:
    """Precomputed inputs: graphs and token states never change during training."""

    rows: list[dict[str, Any]]
    graphs: list[CrystalGraph]
    tokens: list[TokenStates]
    targets: np.ndarray
    train: np.ndarray
    val: np.ndarray
    orbits: list[list[list[int]] | None] = field(default_factory=list)


def structure_of(row: dict[str, Any]) -> Structure:
    atoms = row["atoms"]
    return Structure(
        np.asarray(atoms["lattice_mat"], dtype=float),
        np.asarray(atoms["coords"], dtype=float),
        tuple(atoms["elements"]),
    )


def make_encoder(seed: int, vocab_rows: int) -> DemoTextEncoder:
    """The demo text encoder: vocabulary of a large sample of the templates' output, random
    frozen transformer weights from ``seed``."""
    texts = [r["text"] for r in make_dataset.iter_rows(vocab_rows, seed=10_000 + seed)]
    texts.append(make_dataset.ba4hfli_row()["text"])
    return DemoTextEncoder.create(build_vocabulary(texts), width=TEXT_WIDTH, layers=2, seed=seed)


def make_data(encoder: DemoTextEncoder, n: int, seed: int) -> Data:
    rows = make_dataset.generate(n, seed)
    graphs = [build_graph(structure_of(r)) for r in rows]
    tokens = encoder.encode_batch([r["text"] for r in rows])
    targets = np.array([r["target"] for r in rows], dtype=np.float32)
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, n // 10)
    orbits = [
        BA4HFLI_ORBITS if len(r["atoms"]["elements"]) == 6 and r["text"].find("P-43m") > 0 else None
        for r in rows
    ]
    return Data(rows, graphs, tokens, targets, order[n_val:], order[:n_val], orbits)


def batches(indices: np.ndarray, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    idx = indices if rng is None else rng.permutation(indices)
    return [idx[i : i + size] for i in range(0, len(idx), size)]


def content_mask(text: Any) -> torch.Tensor:
    """The token mask without special tokens: the words a top-words ranking can show."""
    special = torch.zeros_like(text.mask)
    for b, tokens in enumerate(text.tokens):
        for i, token in enumerate(tokens):
            special[b, i] = token in SPECIAL_TOKENS
    return text.mask & ~special


def evaluate(model: ALIGNNText, data: Data, indices: np.ndarray) -> float:
    """Mean absolute error on ``indices`` (eval mode)."""
    model.eval()
    errors = []
    with torch.no_grad():
        for b in batches(indices, 64, None):
            out = model(
                collate_graphs([data.graphs[i] for i in b]),
                collate_tokens([data.tokens[i] for i in b]),
            )
            errors.append(np.abs(out[:, 0].numpy() - data.targets[b]))
    return float(np.concatenate(errors).mean())


def train(recipe: Recipe, data: Data, seed: int, log_every: int = 5) -> dict[str, Any]:
    """Train one model; return it with its validation MAE, monitor history and timing."""
    torch.manual_seed(seed)
    model = ALIGNNText(recipe.config)
    with torch.no_grad():  # start at the mean target: fewer epochs spent learning an offset
        model.fc.bias.fill_(float(data.targets[data.train].mean()))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-5)
    steps_per_epoch = math.ceil(len(data.train) / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.2
    )
    monitor = DiversityMonitor()
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        task_sum = 0.0
        for b in batches(data.train, recipe.batch_size, rng):
            graphs = collate_graphs([data.graphs[i] for i in b])
            text = collate_tokens([data.tokens[i] for i in b])
            target = torch.from_numpy(data.targets[b])
            fw = forward_with_attention(model, graphs, text)
            a2t, node_mask = fw.atom_to_text, fw.node_mask
            task = torch.nn.functional.mse_loss(fw.output[:, 0], target)
            loss = task
            mask = content_mask(text) if recipe.content_only else text.mask
            if recipe.diversity_weight:
                loss = loss + recipe.diversity_weight * attention_diversity_loss(
                    a2t, node_mask, mask, per_head=recipe.per_head
                )
            if recipe.shared_query_weight:
                loss = loss + recipe.shared_query_weight * shared_query_loss(
                    fw.queries, fw.keys, node_mask, mask
                )
            if recipe.contrast_weight:
                loss = loss + recipe.contrast_weight * element_contrast_loss(
                    a2t, node_mask, mask, element_groups([data.graphs[i] for i in b])
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            task_sum += task.item() * len(b)
            last = (a2t, node_mask, text.mask, [data.orbits[i] for i in b])
        a2t, node_mask, token_mask, orbits = last
        stats = monitor.update(
            a2t,
            node_mask,
            token_mask,
            orbits=orbits,
            step=epoch,
            task_mse=task_sum / len(data.train),
        )
        if log_every and (epoch % log_every == 0 or epoch == recipe.epochs - 1):
            mae = evaluate(model, data, data.val)
            print(
                f"  [{recipe.name}] epoch {epoch + 1:3d}/{recipe.epochs}  "
                f"train mse {stats['task_mse']:.4f}  val mae {mae:.4f}  "
                f"atom jsd {stats['jsd'] or 0:.4f} bits "
                f"(A4BC orbits {stats['cross_orbit_jsd'] or 0:.4f})  "
                f"diversity {stats['diversity_loss']:.2e}  "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    seconds = time.perf_counter() - start
    return {
        "model": model.eval(),
        "val_mae": evaluate(model, data, data.val),
        "epoch": recipe.epochs,
        "seconds": seconds,
        "history": monitor.history,
    }


def element_groups(graphs: Sequence[CrystalGraph]) -> torch.Tensor:
    """Atomic numbers [B, M] in the padded layout of ``forward_with_attention`` (-1 = padding)."""
    width = max(g.num_nodes for g in graphs)
    out = torch.full((len(graphs), width), -1, dtype=torch.long)
    for b, g in enumerate(graphs):
        out[b, : g.num_nodes] = torch.as_tensor(np.asarray(g.atomic_numbers), dtype=torch.long)
    return out


def checkpoint_dict(model: ALIGNNText, epoch: int, val_mae: float) -> dict[str, Any]:
    """Plain-dict checkpoint: tensors, a config of ModelConfig fields, and two numbers."""
    config = model.config.to_dict()
    config["multimodal"] = True
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "config": config,
        "epoch": int(epoch),
        "val_mae": float(val_mae),
    }


def write_sample(encoder: DemoTextEncoder, out: Path) -> Path:
    """The Ba4HfLi demo sample with a ``tokens`` field pointing at its token states."""
    row = make_dataset.ba4hfli_row()
    save_token_states(encoder.encode(row["text"]), out / TOKENS_NAME)
    row["tokens"] = TOKENS_NAME
    path = out / SAMPLE_NAME
    path.write_text(json.dumps(row, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def verify(ckpt: Path, sample: Path) -> dict[str, Any]:
    """Diagnose the demo sample under ``ckpt`` with the engine, as ``fga-tui report`` would."""
    from fga_tui import engine
    from fga_tui.diagnostics.report import diagnose

    loaded = engine.load_model(ckpt, device="cpu")
    prepared = engine.prepare_sample(loaded, engine.load_sample(sample))
    report = diagnose(loaded, prepared).report
    return {
        "top_words": {t["atom"]: [w for w, _ in t["words"][:5]] for t in report.top_words},
        "cross_orbit_jsd": (report.attention or {}).get("cross_orbit_jsd"),
        "argmax_agreement": (report.attention or {}).get("argmax_agreement"),
        "shared_fraction": ((report.attention or {}).get("decomposition") or {}).get(
            "shared_fraction"
        ),
        "separation": report.separation,
        "verdicts": [(v.code, v.severity) for v in report.verdicts],
        "messages": [f"{v.code} ({v.severity}): {v.message}" for v in report.verdicts],
    }


def recipes(quick: bool, epochs: int | None) -> list[Recipe]:
    """The two checkpoints; ``quick`` shrinks both to one layer each and one epoch."""
    problem = Recipe("demo_problem", PROBLEM, 0.0, epochs or 30)
    fixed = Recipe(
        "demo_fixed",
        FIXED,
        diversity_weight=100.0,
        shared_query_weight=1.0,
        contrast_weight=10.0,
        epochs=epochs or 30,
        content_only=True,
    )
    if quick:
        tiny = {"alignn_layers": 1, "gcn_layers": 1}
        problem = replace(
            problem, config=PROBLEM.replace(**tiny, middle_fusion_layers="0"), epochs=1
        )
        fixed = replace(fixed, config=FIXED.replace(**tiny), epochs=1)
    return [problem, fixed]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=None, help="dataset rows (default 480)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)"
    )
    parser.add_argument("--quick", action="store_true", help="a few steps on tiny data")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument(
        "--install", action="store_true", help=f"copy the results into {PACKAGE_DEMO}"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    n = args.n or (24 if args.quick else 480)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    encoder = make_encoder(args.seed, 200 if args.quick else 3000)
    encoder.save(out)
    data = make_data(encoder, n, args.seed)
    sample = write_sample(encoder, out)
    print(f"data: {n} rows, vocabulary {len(encoder.vocab)} ({time.perf_counter() - t0:.1f} s)")

    results = {}
    for recipe in recipes(args.quick, args.epochs):
        result = train(recipe, data, args.seed, log_every=0 if args.quick else 5)
        path = out / f"{recipe.name}.pt"
        torch.save(checkpoint_dict(result["model"], result["epoch"], result["val_mae"]), path)
        size = path.stat().st_size
        print(
            f"{recipe.name}: val MAE {result['val_mae']:.4f}, {result['seconds']:.1f} s, "
            f"{size / 1e6:.2f} MB -> {path}"
        )
        results[recipe.name] = path

    if not args.no_verify:
        for name, path in results.items():
            found = verify(path, sample)
            print(f"{name}: cross-orbit JSD {found['cross_orbit_jsd']}")
            for atom in ("Ba_0", "Hf_4", "Li_5"):
                print(f"  {atom}: {found['top_words'][atom]}")
            for line in found["messages"]:
                print(f"  {line}")
    print(f"total {time.perf_counter() - t0:.1f} s")

    if args.install:
        PACKAGE_DEMO.mkdir(parents=True, exist_ok=True)
        names = [SAMPLE_NAME, TOKENS_NAME, "encoder.json", "encoder.npz"]
        names += [p.name for p in results.values()]
        for name in names:
            shutil.copy2(out / name, PACKAGE_DEMO / name)
        print(f"installed {', '.join(names)} into {PACKAGE_DEMO}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
