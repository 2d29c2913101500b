"""What the verdict rules read and what they say: ``Evidence`` in, ``Verdict`` out.

``Evidence`` holds numbers already computed (separation profile, attention summaries, the audit,
``Probe`` results of cause-separating interventions); ``Verdict`` is one finding with its
severity, the stage and numbers it rests on, and the remedy its code points to. The codes are
the public vocabulary of the ``report`` JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fga_tui.diagnostics.severity import Severity

#: The public verdict codes (``report`` JSON contract); TEXT_IGNORED and UNGROUNDED are emitted
#: by the attribution rules.
CODES = (
    "SYMMETRY_EQUIVALENT",
    "FEATURE_COLLAPSE",
    "FUSION_HOMOGENIZES",
    "OVERSMOOTHING",
    "SHARED_QUERY_DOMINATES",
    "ATTENTION_UNTRAINED",
    "NO_GRADIENT_PATH",
    "DEGENERATE_SOFTMAX",
    "FGA_MISSING",
    "TEXT_IGNORED",
    "UNGROUNDED",
    "HEALTHY",
)

REMEDIES = {
    "FUSION_HOMOGENIZES": "Disable or weaken middle fusion (remedy 1: compare with --no-fusion).",
    "OVERSMOOTHING": (
        "Use fewer GNN layers before the attention (remedy 2: compare with --fga-from), or "
        "stronger residuals/normalisation (remedy 3)."
    ),
    "FEATURE_COLLAPSE": "Find the stage where separation drops; see the cause verdict.",
    "SHARED_QUERY_DOMINATES": (
        "Retrain with an attention-diversity term (remedy 4: fga_tui.training) so queries use "
        "atom-specific directions."
    ),
    "ATTENTION_UNTRAINED": "Train the attention block (check it is in the optimiser and the loss).",
    "NO_GRADIENT_PATH": "Do not interpret these weights; connect their output to the loss.",
    "DEGENERATE_SOFTMAX": "Constant by construction; ignore these weights.",
    "FGA_MISSING": "Train with use_fine_grained_attention=True to get atom-token attention.",
}

#: ``Verdict.vs_baseline`` values: compared with the same sample without interventions.
PERSISTS, RESOLVED, NEW = "persists", "resolved", "new"


@dataclass(frozen=True)
class Verdict:
    """One finding. ``severity`` is a ``Severity`` (a plain word is converted);
    ``vs_baseline`` is set only under an intervention (``compare_with_baseline``)."""

    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str | None = None
    vs_baseline: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity.of(self.severity))

    @property
    def stage(self) -> str | None:
        return self.evidence.get("stage")

    def to_json(self) -> dict[str, Any]:
        out = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "evidence": self.evidence,
        }
        if self.remedy:
            out["remedy"] = self.remedy
        if self.vs_baseline is not None:
            out["vs_baseline"] = self.vs_baseline
        return out


def finding(code: str, severity: Severity, message: str, **evidence: Any) -> Verdict:
    """A verdict with the remedy its code points to."""
    return Verdict(code, severity, message, evidence, REMEDIES.get(code))


@dataclass(frozen=True)
class Probe:
    """What one cause-separating intervention showed on the same sample.

    ``spec`` as on the command line (``no-fusion``, ``fga-from=alignn.0``); the numbers are
    those of the intervened trace, measured on the same input groups as the evidence.
    """

    spec: str
    separation_at_fga_input: float | None = None
    attention_jsd: float | None = None
    closest_group_jsd: float | None = None
    closest_groups: tuple[str, str] | None = None
    same_word_pairs: tuple[tuple[str, str], ...] = ()
    same_word_pair_count: int = 0
    prediction: float | None = None

    @property
    def kind(self) -> str:
        return self.spec.partition("=")[0]

    @property
    def stage(self) -> str | None:
        return self.spec.partition("=")[2] or None


@dataclass(frozen=True)
class Evidence:
    """Everything the rules read; built by ``report.assemble`` (or by hand in tests).

    ``separation`` is ``separation.separation`` per stage (over element groups, the same pairs
    at every stage). ``same_word_pairs`` are orbit representatives of different elements that
    read the same top words (at most a few shown; ``same_word_pair_count`` counts all);
    ``closest_groups``/``closest_group_jsd``: the two elements whose mean attention rows differ
    least, and their JSD in bits. ``attention_jsd`` is the mean cross-orbit JSD (display).
    """

    stages: Sequence[str]
    labels: Sequence[str]
    orbits: Sequence[Sequence[int]]
    separation: Mapping[str, float | None]
    has_fga: bool
    multimodal: bool
    fga_input_stage: str | None
    attention_jsd: float | None = None
    shared_fraction: float | None = None
    group_names: Sequence[str] = ()
    same_word_pairs: Sequence[tuple[str, str]] = ()
    same_word_pair_count: int = 0
    # how many of those pairs have distinct features at the attention input (None: unknown)
    same_word_distinct_count: int | None = None
    closest_groups: tuple[str, str] | None = None
    closest_group_jsd: float | None = None
    first_uniform_stage: str | None = None
    within_orbit_max_dev: float | None = None
    fusion_gates: Mapping[str, float] = field(default_factory=dict)
    probes: Sequence[Probe] = ()
    audit: Any = None
    degenerate: Sequence[str] = ()
    num_atoms: int = 0
    # orbits whose atoms have different in-degrees in the crystal graph: upstream's exact-float
    # 12th-shell cut can keep a tie shell for some equivalent atoms and not others.
    broken_orbits: Sequence[tuple[list[int], list[int]]] = ()
    special_only: Sequence[str] = ()  # atoms attending almost only to [CLS]/[SEP]/...
    # every atom's head-averaged attention row is uniform over the valid tokens (flat logits)
    uniform_attention: bool = False
    intervention: Sequence[str] = ()  # active specs: the evidence is of an intervened model

    def probe(self, kind: str) -> Probe | None:
        """The probe of this kind (``no-fusion``, ``fga-from``...), if one was run."""
        return next((p for p in self.probes if p.kind == kind), None)

    @property
    def feature_stages(self) -> list[str]:
        return [s for s in self.stages if s != "fga"]

    @property
    def final_stage(self) -> str | None:
        """The stage the attention reads (or the last feature stage without attention)."""
        stages = self.feature_stages
        return self.fga_input_stage or (stages[-1] if stages else None)

    @property
    def final_separation(self) -> float | None:
        final = self.final_stage
        return None if final is None else self.separation.get(final)


def rounded(x: float | None, digits: int = 4) -> float | None:
    """``x`` to ``digits`` significant digits, for evidence; None for None, NaN and inf (the
    report JSON is strict)."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")
