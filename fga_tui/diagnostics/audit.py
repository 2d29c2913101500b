"""Checkpoint audit: which parameters are broken, untrained, or can never learn.

Evidence, not guesses: exact comparison with an init checkpoint when one is given; otherwise a
statistical test against PyTorch's default init (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for
``nn.Linear``, LayerNorm/BatchNorm affine exactly 1 and 0), reported as "looks untrained" with the
statistic. Gradient-free parameters are found by a real backward pass through the loaded model,
not by a list of names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fga_tui.diagnostics.severity import Severity


@dataclass(frozen=True)
class Finding:
    """One audit observation about one or more parameters."""

    # missing_module | nonfinite | all_zero | unchanged | looks_untrained | no_gradient |
    # zero_gradient | degenerate_softmax
    kind: str
    severity: str
    message: str
    parameters: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "parameters": list(self.parameters),
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class AuditResult:
    checkpoint: str
    baseline: str | None
    num_tensors: int
    num_parameters: int
    findings: tuple[Finding, ...]

    def by_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def worst(self) -> Severity:
        return Severity.worst(f.severity for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "fga-tui.audit/1",
            "checkpoint": self.checkpoint,
            "baseline": self.baseline,
            "num_tensors": self.num_tensors,
            "num_parameters": self.num_parameters,
            "findings": [f.to_json() for f in self.findings],
        }

    def summary_lines(self) -> list[str]:
        """One line per finding, for the TUI panel and the text report."""
        return [f"[{f.severity}] {f.message}" for f in self.findings]

    def to_text(self) -> str:
        head = f"audit of {self.checkpoint}"
        if self.baseline:
            head += f" (baseline {self.baseline})"
        lines = [head, f"{self.num_tensors} tensors, {self.num_parameters:,} parameters"]
        if not self.findings:
            lines.append("no findings")
        for f in self.findings:
            lines.append(f"[{f.severity}] {f.kind}: {f.message}")
            shown = list(f.parameters[:8])
            if shown:
                more = f" (+{len(f.parameters) - 8} more)" if len(f.parameters) > 8 else ""
                lines.append("    " + ", ".join(shown) + more)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Statistics


def ks_uniform(values: np.ndarray, bound: float) -> float:
    """Kolmogorov-Smirnov statistic of ``values`` against U(-bound, bound)."""
    x = np.sort((values.ravel().astype(np.float64) / bound + 1.0) / 2.0)
    n = x.size
    if n == 0:
        return 0.0
    cdf = np.clip(x, 0.0, 1.0)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n)))


def looks_default_linear_init(values: np.ndarray, fan_in: int) -> tuple[bool, dict[str, float]]:
    """Is this tensor plausibly still PyTorch's default Linear init?

    All values inside ``1/sqrt(fan_in)`` and a KS statistic below the 1% critical value
    (1.63/sqrt(n)) of a flat histogram. Tensors under 64 values are never judged.
    """
    bound = 1.0 / math.sqrt(fan_in)
    n = values.size
    stats = {"bound": bound, "max_abs": float(np.abs(values).max()) if n else 0.0, "n": n}
    if n < 64:
        return False, stats
    inside = stats["max_abs"] <= bound * (1 + 1e-6)
    ks = ks_uniform(values, bound)
    stats["ks"] = ks
    stats["ks_critical"] = 1.63 / math.sqrt(n)
    stats["std_ratio"] = float(values.std() / (bound / math.sqrt(3.0)))
    return bool(inside and ks < stats["ks_critical"]), stats


def _module_of(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _group(names: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(_module_of(n), []).append(n)
    return groups


# ---------------------------------------------------------------------------------------------
# Checks


def check_values(state: Mapping[str, torch.Tensor], model: torch.nn.Module) -> list[Finding]:
    """Non-finite tensors and all-zero weight matrices."""
    findings = []
    nonfinite = [
        k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if nonfinite:
        findings.append(
            Finding(
                "nonfinite",
                "error",
                f"{len(nonfinite)} tensors contain NaN or Inf",
                tuple(nonfinite),
            )
        )
    zero_w = [
        k
        for k, v in state.items()
        if v.is_floating_point() and v.dim() == 2 and v.numel() > 0 and not v.any()
    ]
    if zero_w:
        findings.append(
            Finding(
                "all_zero",
                "warning",
                f"{len(zero_w)} weight matrices are all zero (their layer outputs only its bias)",
                tuple(zero_w),
            )
        )
    return findings


def check_baseline(
    state: Mapping[str, torch.Tensor], baseline: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> list[Finding]:
    """Trainable parameters bit-identical to the init checkpoint."""
    trainable = {n for n, _ in model.named_parameters()}
    same = [
        k
        for k in sorted(trainable)
        if k in baseline
        and k in state
        and baseline[k].shape == state[k].shape
        and torch.equal(baseline[k].to(state[k].dtype), state[k])
    ]
    if not same:
        return []
    findings = []
    for module, names in _group(same).items():
        sev = "error" if "a2t_" in module or module.endswith("node_output") else "warning"
        findings.append(
            Finding(
                "unchanged",
                sev,
                f"{module}: {len(names)} parameter tensor(s) identical to the baseline "
                "(never updated)",
                tuple(names),
                {"module": module},
            )
        )
    return findings


def check_init_statistics(
    state: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> list[Finding]:
    """Without a baseline: parameters that look like PyTorch's default init."""
    flagged: dict[str, dict[str, Any]] = {}
    modules = dict(model.named_modules())
    for mod_name, module in modules.items():
        prefix = f"{mod_name}." if mod_name else ""
        if isinstance(module, torch.nn.Linear):
            w = state.get(prefix + "weight")
            if w is None or w.dim() != 2:
                continue
            ok, stats = looks_default_linear_init(w.float().cpu().numpy(), w.shape[1])
            if ok:
                flagged[prefix + "weight"] = stats
        elif isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
            w, b = state.get(prefix + "weight"), state.get(prefix + "bias")
            if w is not None and b is not None and bool((w == 1).all()) and not b.any():
                flagged[prefix + "weight"] = {"weight": 1.0, "bias": 0.0}
                flagged[prefix + "bias"] = {"weight": 1.0, "bias": 0.0}
    findings = []
    for module, names in _group(sorted(flagged)).items():
        stats = flagged[names[0]]
        if "ks" in stats:
            msg = (
                f"{module} looks untrained: weights fill U(±1/√fan_in) like PyTorch's default init "
                f"(KS {stats['ks']:.3f} < {stats['ks_critical']:.3f})"
            )
        else:
            msg = f"{module} looks untrained: affine weight exactly 1 and bias exactly 0"
        findings.append(
            Finding(
                "looks_untrained",
                "warning",
                msg,
                tuple(names),
                {"module": module, **{k: v for k, v in stats.items()}},
            )
        )
    return findings


def check_gradients(model: torch.nn.Module, run_forward) -> list[Finding]:
    """Backward pass through the loaded model: parameters that get no gradient, or only zeros.

    ``run_forward(model)`` returns the model output for a small probe input; the loss is its sum.
    The model is evaluated in eval mode (dropout off, BN running statistics) on a copy of the
    parameters' grad state, which is restored afterwards.
    """
    params = dict(model.named_parameters())
    saved = {n: p.requires_grad for n, p in params.items()}
    for p in params.values():
        p.grad = None
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            out = run_forward(model)
            out.float().sum().backward()
        none = [n for n, p in params.items() if p.grad is None]
        zero = [n for n, p in params.items() if p.grad is not None and not p.grad.any()]
    finally:
        for n, p in params.items():
            p.grad = None
            p.requires_grad_(saved[n])
    findings = []
    for module, names in _group(none).items():
        findings.append(
            Finding(
                "no_gradient",
                "warning",
                f"{module}: no gradient reaches it (its output never affects the prediction)",
                tuple(names),
                {"module": module},
            )
        )
    for module, names in _group(zero).items():
        findings.append(
            Finding(
                "zero_gradient",
                "warning",
                f"{module}: gradient is exactly zero by construction",
                tuple(names),
                {"module": module},
            )
        )
    return findings


def check_structure(loaded: Any) -> list[Finding]:
    """Modules the config implies versus what the checkpoint holds (nothing trained is missing
    silently: a multimodal model without the fine-grained block has no atom-token attention)."""
    cfg = loaded.config
    findings = []
    if cfg.multimodal and not cfg.use_fine_grained_attention:
        findings.append(
            Finding(
                "missing_module",
                "warning",
                "no fine_grained_attention module: the checkpoint has no atom-token attention",
                (),
                {"module": "fine_grained_attention"},
            )
        )
    if cfg.multimodal and cfg.use_cross_modal_attention:
        findings.append(
            Finding(
                "degenerate_softmax",
                "info",
                "cross_modal_attention attends over one key: its softmax is identically 1.0 "
                "(constant by construction; its query/key weights cannot matter)",
                ("cross_modal_attention",),
                {"axis_length": 1},
            )
        )
    return findings


def probe_input(loaded: Any, prepared: Any | None = None):
    """A small, valid input for the backward pass: the user's sample, else a rock-salt cell."""
    from fga_tui.io.types import Structure, TokenStates
    from fga_tui.model.batch import collate_graphs, collate_tokens
    from fga_tui.structure.graph import build_graph

    if prepared is not None:
        graph, tokens = prepared.graph, prepared.tokens
    else:
        lattice = np.array([[0.0, 2.82, 2.82], [2.82, 0.0, 2.82], [2.82, 2.82, 0.0]])
        structure = Structure(lattice, np.array([[0.0, 0, 0], [0.5, 0.5, 0.5]]), ("Na", "Cl"))
        graph = build_graph(structure)
        rng = np.random.default_rng(0)
        length, width = 8, loaded.config.text_hidden_dim
        tokens = TokenStates(
            tuple(f"t{i}" for i in range(length)),
            rng.standard_normal((length, width)).astype(np.float32),
            np.ones(length, dtype=bool),
        )
    batch = collate_graphs([graph], loaded.device)
    text = collate_tokens([tokens], loaded.device) if loaded.config.multimodal else None
    return batch, text


def audit_model(
    loaded: Any,
    baseline: Mapping[str, torch.Tensor] | None = None,
    *,
    baseline_path: str | None = None,
    prepared: Any | None = None,
) -> AuditResult:
    """Run every check on a loaded model (``fga_tui.engine.LoadedModel``)."""
    model = loaded.model
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    findings = check_structure(loaded)
    findings += check_values(state, model)
    if baseline is not None:
        findings += check_baseline(state, {k: v.cpu() for k, v in baseline.items()}, model)
    else:
        findings += check_init_statistics(state, model)
    batch, text = probe_input(loaded, prepared)
    findings += check_gradients(model, lambda m: m(batch, text))
    findings.sort(key=lambda f: Severity.of(f.severity), reverse=True)
    return AuditResult(
        checkpoint=loaded.info.path,
        baseline=baseline_path,
        num_tensors=len(state),
        num_parameters=sum(p.numel() for p in model.parameters()),
        findings=tuple(findings),
    )


def load_baseline(path: str, *, trust: bool = False) -> dict[str, torch.Tensor]:
    """An init checkpoint (any layout the loader accepts) as a state_dict."""
    from fga_tui.io.checkpoint import load_checkpoint

    return dict(load_checkpoint(path, trust=trust).state_dict)
