"""Rules that turn evidence into verdicts (codes of shared/DESIGN.md).

Each rule reads numbers already computed (stage metrics, orbit separation, attention summaries,
the audit, ablation traces) and states one finding with its stage, numbers and remedy.
Identity inside a symmetry orbit is never called a collapse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fga_tui.diagnostics.attention import UNIFORM_JSD_BITS
from fga_tui.diagnostics.separation import COLLAPSE_SEPARATION

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
    "HEALTHY",
)
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

#: a stage that shrinks orbit separation to under a tenth of its input "drops" it.
DROP_FACTOR = 0.1
#: the shared query part "dominates" when it carries more than half the logit variance.
SHARED_DOMINATES_FRACTION = 0.5

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


@dataclass(frozen=True)
class Verdict:
    code: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": self.evidence,
        }
        if self.remedy:
            out["remedy"] = self.remedy
        return out


def _v(code: str, severity: str, message: str, **evidence: Any) -> Verdict:
    return Verdict(code, severity, message, evidence, REMEDIES.get(code))


@dataclass(frozen=True)
class Evidence:
    """Everything the rules read; built by ``report.diagnose``."""

    stages: Sequence[str]
    labels: Sequence[str]
    orbits: Sequence[Sequence[int]]
    separation: dict[str, float | None]
    has_fga: bool
    multimodal: bool
    fga_input_stage: str | None
    attention_jsd: float | None  # cross-orbit JSD of the actual attention (None: one orbit)
    same_top_words: bool | None  # do all orbits share the same top words?
    shared_fraction: float | None
    profile: Sequence[Any] = ()  # attention.DivergencePoint per stage
    first_uniform_stage: str | None = None
    within_orbit_max_dev: float | None = None
    fusion_gates: dict[str, float] = field(default_factory=dict)
    no_fusion_separation: float | None = None
    no_fusion_jsd: float | None = None
    fga_from_stage: str | None = None
    fga_from_jsd: float | None = None
    audit: Any = None
    degenerate: Sequence[str] = ()
    num_atoms: int = 0
    # orbits whose atoms have different in-degrees in the crystal graph: upstream's exact-float
    # 12th-shell cut can keep a tie shell for some equivalent atoms and not others.
    broken_orbits: Sequence[tuple[list[int], list[int]]] = ()
    same_word_pairs: Sequence[tuple[str, str]] = ()  # orbit representatives reading alike
    special_only: Sequence[str] = ()  # atoms attending almost only to [CLS]/[SEP]/...


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


def first_collapsed_stage(ev: Evidence) -> str | None:
    """The earliest stage from which cross-orbit separation stays below the collapse level."""
    first = None
    for s in reversed([s for s in ev.stages if s != "fga"]):
        sep = ev.separation.get(s)
        if sep is None or sep >= COLLAPSE_SEPARATION:
            break
        first = s
    return first


def fusion_drops(ev: Evidence) -> list[tuple[str, float, float]]:
    """Fusion stages that shrink separation by DROP_FACTOR or more: (stage, before, after)."""
    out = []
    stages = list(ev.stages)
    for i, s in enumerate(stages):
        if s.startswith("fusion.") and i > 0:
            before, after = ev.separation.get(stages[i - 1]), ev.separation.get(s)
            if before and after is not None and after < DROP_FACTOR * before:
                out.append((s, before, after))
    return out


def decide(ev: Evidence) -> list[Verdict]:
    verdicts: list[Verdict] = []
    multi_orbits = [o for o in ev.orbits if len(o) > 1]
    if multi_orbits:
        names = ["{" + ", ".join(ev.labels[i] for i in o) + "}" for o in multi_orbits]
        single = len(ev.orbits) == 1
        msg = (
            f"All {ev.num_atoms} atoms are symmetry-equivalent: identical features and top words "
            "are expected, so this sample cannot show attention differences."
            if single
            else f"{'; '.join(names)} are symmetry-equivalent: identical features and top words "
            "within each group are expected, not a collapse."
        )
        if ev.broken_orbits:
            parts = [
                ", ".join(ev.labels[i] for i in orbit) + " have " + "/".join(map(str, degrees))
                for orbit, degrees in ev.broken_orbits
            ]
            msg += (
                " But the crystal graph breaks this symmetry (" + "; ".join(parts) + " bonds: "
                "upstream's k-nearest rule cuts a tie shell by exact float comparison), so their "
                f"features differ by up to {ev.within_orbit_max_dev or 0.0:.2g}."
            )
        verdicts.append(
            _v(
                "SYMMETRY_EQUIVALENT",
                "info",
                msg,
                orbits=[list(map(int, o)) for o in ev.orbits],
                within_orbit_max_dev=_r(ev.within_orbit_max_dev),
                graph_breaks_symmetry=[
                    {"atoms": list(orbit), "in_degree": list(degrees)}
                    for orbit, degrees in ev.broken_orbits
                ],
            )
        )

    if ev.multimodal and not ev.has_fga:
        verdicts.append(
            _v(
                "FGA_MISSING",
                "warning",
                "The checkpoint has no fine-grained attention module: there are no per-atom "
                "top words to explain.",
            )
        )
    elif not ev.multimodal:
        verdicts.append(
            _v(
                "FGA_MISSING",
                "info",
                "Text-free ALIGNN checkpoint: no atom-token attention; only feature diagnostics "
                "apply.",
            )
        )

    collapsed = first_collapsed_stage(ev)
    drops = fusion_drops(ev)
    feature_stages = [s for s in ev.stages if s != "fga"]
    seps = {s: ev.separation.get(s) for s in feature_stages}
    final = ev.fga_input_stage or (feature_stages[-1] if feature_stages else None)
    final_sep = seps.get(final) if final else None
    known = [v for v in seps.values() if v is not None]
    peak = max(known) if known else None

    if collapsed is not None:
        verdicts.append(
            _v(
                "FEATURE_COLLAPSE",
                "error",
                f"Atoms of different symmetry orbits have identical features from {collapsed} on "
                f"(orbit separation {seps[collapsed]:.2g} < {COLLAPSE_SEPARATION:g}).",
                stage=collapsed,
                separation={s: _r(v) for s, v in seps.items()},
            )
        )

    fusion_blamed = False
    for stage, before, after in drops:
        restored = ev.no_fusion_separation
        confirmed = (
            restored is not None
            and final_sep is not None
            and restored > max(final_sep / DROP_FACTOR, COLLAPSE_SEPARATION)
        )
        if confirmed or (restored is None and after < COLLAPSE_SEPARATION):
            fusion_blamed = True
            gate = ev.fusion_gates.get(stage)
            verdicts.append(
                _v(
                    "FUSION_HOMOGENIZES",
                    "error",
                    f"Middle fusion at {stage} makes atoms alike (orbit separation {before:.2g} "
                    f"-> {after:.2g}); bypassing it restores "
                    f"{restored if restored is None else f'{restored:.2g}'} at {final}.",
                    stage=stage,
                    separation_before=_r(before),
                    separation_after=_r(after),
                    mean_gate=_r(gate),
                    ablation={
                        "no_fusion": True,
                        "separation_at_fga_input": _r(restored),
                        "attention_cross_orbit_jsd": _r(ev.no_fusion_jsd),
                    },
                )
            )

    if not fusion_blamed and peak and final_sep is not None and final_sep < DROP_FACTOR * peak:
        peak_stage = max((s for s in seps if seps[s] is not None), key=lambda s: seps[s])
        # Where the decline crosses the collapse level (or a tenth of the peak).
        level = max(COLLAPSE_SEPARATION, DROP_FACTOR * peak)
        after_peak = feature_stages[feature_stages.index(peak_stage) :]
        stage = next((s for s in after_peak if (seps[s] or 0.0) < level), final)
        verdicts.append(
            _v(
                "OVERSMOOTHING",
                "error" if final_sep < COLLAPSE_SEPARATION else "warning",
                f"Orbit separation decays through the GNN layers ({peak:.2g} at {peak_stage} -> "
                f"{final_sep:.2g} at {final}); atoms become alike from {stage}.",
                stage=stage,
                peak_stage=peak_stage,
                separation={s: _r(v) for s, v in seps.items()},
                ablation={
                    "fga_from": ev.fga_from_stage,
                    "attention_cross_orbit_jsd": _r(ev.fga_from_jsd),
                },
            )
        )

    attention_same = (
        ev.has_fga
        and ev.attention_jsd is not None
        and (ev.attention_jsd < UNIFORM_JSD_BITS or bool(ev.same_top_words))
    )
    untrained_a2t = _untrained(ev.audit, ("a2t_query", "a2t_key"))
    if ev.has_fga and untrained_a2t:
        verdicts.append(
            _v(
                "ATTENTION_UNTRAINED",
                "error",
                "The atom->text attention projections look untrained "
                f"({', '.join(sorted(untrained_a2t)[:4])}): its weights carry no learned meaning.",
                stage="fga",
                parameters=sorted(untrained_a2t),
            )
        )
    untrained_t2a = _untrained(ev.audit, ("t2a_", "token_output", "layer_norm_token"))
    if ev.has_fga and untrained_t2a:
        verdicts.append(
            _v(
                "ATTENTION_UNTRAINED",
                "warning",
                "The text->atom branch of the fine-grained attention never trained "
                f"({len(untrained_t2a)} tensors): do not interpret text_to_atom weights.",
                stage="fga",
                branch="text_to_atom",
                parameters=sorted(untrained_t2a),
            )
        )

    if (
        attention_same
        and collapsed is None
        and final_sep is not None
        and final_sep >= COLLAPSE_SEPARATION
        and not untrained_a2t
    ):
        frac = ev.shared_fraction
        if frac is not None and frac > SHARED_DOMINATES_FRACTION:
            verdicts.append(
                _v(
                    "SHARED_QUERY_DOMINATES",
                    "error",
                    f"Atoms differ at {final} (separation {final_sep:.2g}) but pick the same top "
                    f"words: the query part shared by all atoms carries {frac:.0%} of the logit "
                    "variance.",
                    stage="fga",
                    shared_fraction=_r(frac),
                    attention_cross_orbit_jsd=_r(ev.attention_jsd),
                    separation_at_fga_input=_r(final_sep),
                )
            )

    if ev.audit is not None:
        nog = sorted(
            {
                f.evidence.get("module", "?")
                for f in ev.audit.findings
                if f.kind in ("no_gradient", "zero_gradient")
            }
        )
        if nog:
            verdicts.append(
                _v(
                    "NO_GRADIENT_PATH",
                    "warning",
                    f"{len(nog)} modules get no (or exactly zero) gradient by construction: "
                    f"{', '.join(nog[:5])}{' ...' if len(nog) > 5 else ''}.",
                    modules=nog,
                )
            )
    for what in ev.degenerate:
        verdicts.append(
            _v(
                "DEGENERATE_SOFTMAX",
                "info",
                f"{what} is a softmax over one element: identically 1.0 by construction.",
                weights=what,
            )
        )

    problems = {"FEATURE_COLLAPSE", "FUSION_HOMOGENIZES", "OVERSMOOTHING", "SHARED_QUERY_DOMINATES"}
    blocking = any(
        v.code in problems or (v.code == "ATTENTION_UNTRAINED" and v.severity == "error")
        for v in verdicts
    )
    if ev.has_fga and not blocking and ev.attention_jsd is not None and not attention_same:
        message = (
            f"Atoms of different orbits attend differently (cross-orbit JSD "
            f"{ev.attention_jsd:.3g} bits) and their features stay distinct "
            f"(separation {final_sep:.2g} at {final})."
        )
        if ev.same_word_pairs:
            shown = ", ".join(f"{a} = {b}" for a, b in ev.same_word_pairs[:3])
            message += f" Still, some orbits read the same top words: {shown}."
        if ev.special_only:
            message += (
                f" {', '.join(ev.special_only[:4])} attend almost only to special tokens "
                "([CLS]/[SEP]), so their top words carry no weight."
            )
        verdicts.append(
            _v(
                "HEALTHY",
                "info",
                message,
                stage="fga",
                attention_cross_orbit_jsd=_r(ev.attention_jsd),
                separation_at_fga_input=_r(final_sep),
                same_top_word_pairs=[list(p) for p in ev.same_word_pairs],
                special_token_atoms=list(ev.special_only),
            )
        )
    elif not ev.has_fga and not blocking and final_sep is not None:
        verdicts.append(
            _v(
                "HEALTHY",
                "info",
                f"Features of different orbits stay distinct (separation {final_sep:.2g} at "
                f"{final}).",
                separation_at_final=_r(final_sep),
            )
        )
    verdicts.sort(key=lambda v: SEVERITY_ORDER[v.severity])
    return verdicts


def _untrained(audit: Any, needles: Sequence[str]) -> set[str]:
    if audit is None:
        return set()
    names = set()
    for f in audit.findings:
        if f.kind in ("unchanged", "looks_untrained"):
            for p in f.parameters:
                if "fine_grained_attention" in p and any(n in p for n in needles):
                    names.add(p)
    return names
