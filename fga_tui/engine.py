"""The headless engine: checkpoint + sample in, ``Trace`` out.

This is the one place that wires io, structure, text and model together; the CLI, the TUI's
worker and the notebook API all call it. It never imports Textual.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fga_tui.io.errors import MAX_ATOMS, InputError
from fga_tui.io.types import Sample, TokenStates
from fga_tui.model.config import ModelConfig
from fga_tui.structure.types import CrystalGraph
from fga_tui.trace import Ablation, Trace


def resolve_device(spec: str | None = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError("--device", f"{spec} requested but this torch has no usable CUDA")
        try:
            device = torch.device(spec)
        except RuntimeError as exc:
            raise InputError("--device", f"not a device: {spec!r}") from exc
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                "--device", f"{spec}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return device
    raise InputError("--device", f"not a device: {spec!r} (use auto, cpu, cuda or cuda:N)")


def configure_threads(reserve_one_core: bool = False) -> int:
    """Set torch's intra-op threads (and numpy's BLAS threads when a core is reserved); leave
    a core free for a UI thread when asked.

    With every core spinning in OpenMP and a UI thread beside it, forwards were measured 5-50x
    slower on 2 cores (measured here with torch 2.13 on a 2-core node: 1.3-6 s instead of
    20-700 ms for the same forwards).
    """
    cores = os.cpu_count() or 1
    threads = max(1, cores - 1) if reserve_one_core else cores
    torch.set_num_threads(threads)
    if reserve_one_core:
        # numpy's BLAS (the diagnosis's Gram matrices) has its own pool, one thread a core by
        # default, whose threads spin after each call: on 2 cores they took the UI's core too
        # (the inspector's stall when a 500-atom view arrived: 55-75 ms with it, 42-50 ms
        # limited, on a quiet 2-core node).
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")
    return threads


@dataclass(frozen=True)
class CheckpointInfo:
    """Where the weights came from and how the config was obtained (for reports)."""

    path: str
    layout: str
    config_source: str | None
    inferred: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, config: ModelConfig) -> dict[str, Any]:
        return {
            "path": self.path,
            "layout": self.layout,
            "config_source": self.config_source,
            "config": config.to_dict(),
            "inferred": list(self.inferred),
            "overridden": list(config.overridden),
            "warnings": list(self.warnings),
            "meta": self.meta,
        }


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """An eval-mode model on its device, with its config and provenance."""

    model: Any  # fga_tui.model.alignn_text.ALIGNNText (kept Any to keep this import light)
    config: ModelConfig
    info: CheckpointInfo
    device: torch.device

    @property
    def needs_text(self) -> bool:
        return self.config.needs_text

    def stage_names(self, ablation: Ablation | None = None) -> list[str]:
        """Stage names of a trace under ``ablation`` (an ``Interventions`` set)."""
        return self.model.stage_names(ablation or Ablation())


def _build_model(
    config: ModelConfig, state_dict: dict[str, torch.Tensor], where: str | Path, dev: torch.device
) -> Any:
    """The eval-mode model for ``config`` with ``state_dict`` loaded (verified first)."""
    from fga_tui.model.alignn_text import ALIGNNText
    from fga_tui.model.state import verify_state_dict

    try:
        model = ALIGNNText(config)
    except ValueError as exc:
        raise InputError(where, f"cannot build the model: {exc}") from exc
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    verify_state_dict(expected, state_dict, where)
    # verify_state_dict allowed only absent BatchNorm counters (old files); they stay at 0.
    model.load_state_dict(state_dict, strict=False)
    return model.eval().to(dev)


def load_model(
    path: str | Path,
    *,
    device: str | torch.device = "auto",
    trust: bool = False,
    fga_heads: int | None = None,
    cm_heads: int | None = None,
) -> LoadedModel:
    """Load any supported checkpoint layout safely and build the matching eval-mode model."""
    from fga_tui.io.checkpoint import load_checkpoint
    from fga_tui.model.config_build import config_from_checkpoint

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    raw = load_checkpoint(path, trust=trust)
    config = config_from_checkpoint(raw, fga_heads=fga_heads, cm_heads=cm_heads)
    model = _build_model(config, raw.state_dict, path, dev)
    info = CheckpointInfo(
        path=str(path),
        layout=raw.layout,
        config_source=raw.config_source,
        inferred=tuple(config.inferred),
        warnings=tuple(raw.warnings),
        meta=dict(raw.meta),
    )
    return LoadedModel(model, config, info, dev)


def model_from_state(
    config: ModelConfig,
    state_dict: dict[str, torch.Tensor],
    *,
    device: str | torch.device = "cpu",
    name: str = "<in-memory model>",
) -> LoadedModel:
    """A ``LoadedModel`` from a config and weights already in memory (tests, training loops)."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model = _build_model(config, state_dict, name, dev)
    info = CheckpointInfo(path=name, layout="in-memory", config_source="given", inferred=())
    return LoadedModel(model, config, info, dev)


@dataclass(frozen=True, eq=False)
class PreparedSample:
    """A sample with everything the model needs: its crystal graph and (if needed) tokens."""

    sample: Sample
    graph: CrystalGraph
    tokens: TokenStates | None

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(self.sample.structure.elements)


def load_sample(path: str | Path, index: int = 0, *, max_atoms: int = MAX_ATOMS) -> Sample:
    """Read one sample (JSON, JSONL row ``index``, POSCAR, CIF)."""
    from fga_tui.io.sample import load_sample as _load

    return _load(path, index=index, max_atoms=max_atoms)


def prepare_sample(
    loaded: LoadedModel | None,
    sample: Sample,
    *,
    tokens_path: str | Path | None = None,
    text_model: str | Path | None = None,
    vocab_mappings: str | Path | None = None,
    graph: CrystalGraph | None = None,
    tokens: TokenStates | None = None,
) -> PreparedSample:
    """Build the crystal graph and resolve token states (precedence: ``tokens`` given,
    --tokens, the sample's own tokens, --text-model, $FGA_TUI_TEXT_MODEL)."""
    from fga_tui.structure.graph import build_graph
    from fga_tui.text.encoders import resolve_token_states

    needs_text = loaded.needs_text if loaded is not None else False
    if tokens is None:
        tokens = resolve_token_states(
            sample,
            tokens_path=tokens_path,
            text_model=text_model,
            needs_text=needs_text,
            device=str(loaded.device) if loaded is not None else "cpu",
            vocab_mappings=vocab_mappings,
        )
    if loaded is not None and tokens is not None and needs_text:
        width = int(tokens.embeddings.shape[1])
        if width != loaded.config.text_hidden_dim:
            where = tokens.source or sample.source
            raise InputError(
                where,
                f"token embeddings are {width}-wide but the checkpoint's text projection "
                f"expects {loaded.config.text_hidden_dim}",
            )
    if graph is None:
        graph = build_graph(sample.structure, cart_coords=sample.structure.source_cart)
    return PreparedSample(sample, graph, tokens if needs_text else None)


def check_ablation(
    loaded: LoadedModel, ablation: Ablation, prepared: Sequence[PreparedSample] = ()
) -> None:
    """Turn an intervention this model or sample cannot take into a clear user error.

    Errors name the flag the user typed: ``--no-fusion``/``--fga-from`` for the aliases'
    meanings, ``--intervene`` with the spec otherwise.
    """
    config = loaded.config
    if ablation.no_fusion and not (config.multimodal and config.fusion_indices):
        raise InputError("--no-fusion", "this checkpoint has no middle fusion to bypass")
    if ablation.no_text and not config.multimodal:
        raise InputError("--intervene", "no-text: this checkpoint reads no text")
    if ablation.fga_from is not None:
        names = [s for s in config.stage_names() if s != "fga"]
        if ablation.no_fusion:
            names = [s for s in names if not s.startswith("fusion.")]
        if ablation.fga_from not in names:
            raise InputError(
                "--fga-from", f"{ablation.fga_from!r} is not a stage; choose one of {names}"
            )
    stages = loaded.stage_names(ablation)
    for item in ablation:
        if item.kind not in ("mean-ablate", "patch"):
            continue
        if item.stage not in stages:
            raise InputError(
                "--intervene",
                f"{item.spec}: {item.stage!r} is not a stage of this run; choose one of {stages}",
            )
        if item.kind != "patch":
            continue
        for p in prepared:
            elements = p.elements
            for ref in (item.dst, item.src):
                if ref.index >= len(elements):
                    raise InputError(
                        p.sample.source or "--intervene",
                        f"{item.spec}: atom {ref.index} does not exist "
                        f"({len(elements)} atoms, 0-{len(elements) - 1})",
                    )
                if ref.element is not None and elements[ref.index] != ref.element:
                    raise InputError(
                        p.sample.source or "--intervene",
                        f"{item.spec}: atom {ref.index} is {elements[ref.index]}, "
                        f"not {ref.element}",
                    )


def run_trace(
    loaded: LoadedModel,
    prepared: PreparedSample,
    ablation: Ablation | None = None,
    *,
    counterfactuals: bool = True,
) -> Trace:
    """One traced forward for one sample."""
    return run_traces(loaded, [prepared], ablation, counterfactuals=counterfactuals)[0]


def run_traces(
    loaded: LoadedModel,
    prepared: Sequence[PreparedSample],
    ablation: Ablation | None = None,
    *,
    counterfactuals: bool = True,
) -> list[Trace]:
    """One batched traced forward; one ``Trace`` per sample."""
    from fga_tui.model.tracer import trace_batch

    ablation = ablation or Ablation()
    check_ablation(loaded, ablation, prepared)
    tokens = [p.tokens for p in prepared] if loaded.needs_text else None
    return trace_batch(
        loaded.model,
        [p.graph for p in prepared],
        tokens,
        [p.elements for p in prepared],
        ablation=ablation,
        counterfactuals=counterfactuals,
    )


def run_trace_fga_from(
    loaded: LoadedModel, prepared: PreparedSample, base: Trace, stage: str
) -> Trace:
    """``run_trace(..., Ablation(fga_from=stage), counterfactuals=False)`` from ``base``, this
    sample's trace without interventions: only the model's head runs again."""
    from fga_tui.model.tracer import trace_fga_from

    ablation = Ablation(fga_from=stage)
    check_ablation(loaded, ablation, [prepared])
    return trace_fga_from(
        loaded.model, prepared.graph, prepared.tokens, prepared.elements, base, stage
    )


def run_attribution(
    loaded: LoadedModel,
    prepared: PreparedSample,
    ablation: Ablation | None = None,
    *,
    steps: int = 32,
    delete_top_k: int = 5,
    trace: Trace | None = None,
) -> Any:
    """Attribution and text reliance of one sample (``fga_tui.diagnostics.attribution``);
    None for a model that reads no text or under ``no-text``.

    Needs a backward pass, so it runs here and not in the no-grad tracer. ``ablation`` applies
    to every run; ``steps`` integration steps (Gauss-Legendre); the ``delete_top_k`` words with
    the largest integrated gradients are deleted one at a time. ``trace``: this sample's trace
    under the same interventions; its encoder output is reused (one encoder run fewer).
    """
    import time

    import numpy as np

    from fga_tui.diagnostics.attribution import Attribution, WordDeletion, ranked_words
    from fga_tui.diagnostics.words import group_wordpieces
    from fga_tui.model.attribution import TextAttributor

    ablation = ablation or Ablation()
    if not loaded.needs_text or prepared.tokens is None or ablation.no_text:
        return None
    check_ablation(loaded, ablation, [prepared])
    t0 = time.perf_counter()
    encoded = None
    if trace is not None and trace.ablation.specs == ablation.specs and trace.stages:
        # The node features the head reads: the stage before ``fga`` (or the last stage).
        last = trace.stages[-2] if trace.stages[-1] == "fga" else trace.stages[-1]
        encoded = torch.from_numpy(np.ascontiguousarray(trace.features[last]))
    attributor = TextAttributor(
        loaded.model, prepared.graph, prepared.tokens, ablation, encoded=encoded
    )
    prediction, no_text = attributor.predictions()
    weighted = attributor.gradient_weighted_attention()
    ig = attributor.integrated_gradients(steps)
    tokens = prepared.tokens
    mask = np.asarray(tokens.mask, dtype=bool)
    words = ranked_words(tokens.tokens, mask, ig.tokens, delete_top_k)
    keep = []
    for _, _, positions in words:
        row = mask.copy()
        row[list(positions)] = False
        keep.append(row)
    specials_only = mask & ~np.isin(
        np.arange(len(mask)), [i for _, idx in group_wordpieces(tokens.tokens, mask) for i in idx]
    )
    # Without a special token to keep, "no words" would leave the attention nothing to read.
    extra = [specials_only] if specials_only.any() else []
    predicted = list(attributor.masked_predictions([*keep, *extra]))
    no_words = predicted.pop() if extra else None
    deleted = predicted
    deletions = tuple(
        WordDeletion(w, float(score), pos, float(p), float(p) - prediction)
        for (w, score, pos), p in zip(words, deleted, strict=True)
    )
    return Attribution(
        atom_to_text=weighted,
        tokens=ig.tokens,
        token_strings=tuple(tokens.tokens),
        token_mask=mask,
        prediction=prediction,
        prediction_no_text=no_text,
        delta=float(np.sum(ig.tokens, dtype=np.float64)) - (prediction - no_text),
        encoder_leg=ig.encoder_leg,
        steps=ig.steps,
        deletions=deletions,
        prediction_no_words=None if no_words is None else float(no_words),
        timings={"attribution_s": time.perf_counter() - t0},
    )


def with_attribution(trace: Trace, attribution: Any) -> Trace:
    """A copy of ``trace`` carrying ``attr.atom_to_text``, ``attr.tokens`` and the attention
    ``grounding`` (the last also without ``attribution``, whenever there is attention)."""
    import dataclasses

    from fga_tui.diagnostics.grounding import grounding

    ground = None
    if trace.atom_to_text is not None:
        ground = grounding(
            trace.atom_to_text, trace.tokens, trace.token_mask, trace.elements
        ).per_atom
    return dataclasses.replace(
        trace,
        attribution=None if attribution is None else attribution.atom_to_text,
        token_attribution=None if attribution is None else attribution.tokens,
        grounding=ground,
    )
