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
    """Set torch's intra-op threads; leave a core free for a UI thread when asked.

    With every core spinning in OpenMP and a UI thread beside it, forwards were measured 5-50x
    slower on 2 cores (shared/reference/performance.md).
    """
    cores = os.cpu_count() or 1
    threads = max(1, cores - 1) if reserve_one_core else cores
    torch.set_num_threads(threads)
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
    state_dict: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    @property
    def needs_text(self) -> bool:
        return self.config.needs_text

    def stage_names(self, ablation: Ablation | None = None) -> list[str]:
        ablation = ablation or Ablation()
        return self.model.stage_names(no_fusion=ablation.no_fusion, fga_from=ablation.fga_from)


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
    return LoadedModel(model, config, info, dev, raw.state_dict)


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
    return LoadedModel(model, config, info, dev, dict(state_dict))


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


def check_ablation(loaded: LoadedModel, ablation: Ablation) -> None:
    """Turn an impossible ablation into a clear user error."""
    if ablation.no_fusion and not loaded.config.fusion_indices:
        raise InputError("--no-fusion", "this checkpoint has no middle fusion to bypass")
    if ablation.fga_from is not None:
        names = [s for s in loaded.config.stage_names() if s != "fga"]
        if ablation.no_fusion:
            names = [s for s in names if not s.startswith("fusion.")]
        if ablation.fga_from not in names:
            raise InputError(
                "--fga-from", f"{ablation.fga_from!r} is not a stage; choose one of {names}"
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
    check_ablation(loaded, ablation)
    tokens = [p.tokens for p in prepared] if loaded.needs_text else None
    return trace_batch(
        loaded.model,
        [p.graph for p in prepared],
        tokens,
        [p.elements for p in prepared],
        ablation=ablation,
        counterfactuals=counterfactuals,
    )
