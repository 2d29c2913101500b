"""The verdict rules: one function per code, its evidence and thresholds in its docstring.

Each rule reads an ``Evidence`` and the verdicts of the rules before it (``earlier``) and
returns its findings. Rules share no state: a rule that needs another's conclusion computes it
through the same pure helper (``symptom``, ``smoothing_trend``, ``fusion_loss``,
``untrained_attention``...) or reads ``earlier``.

Adding a rule = writing one function ``(ev, earlier) -> list[Verdict]`` whose docstring states
its evidence and thresholds (named module constants), and adding one ``Rule`` line to ``RULES``
(its code, and the severity from which its verdict means "not healthy").

The symptom this tool exists for: atoms the input tells apart (different elements, so
different symmetry orbits) that read the same text words. Identity inside a symmetry orbit, and
similarity of same-element atoms, is never called a collapse (see ``separation``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fga_tui.diagnostics.evidence import Evidence, Probe, Verdict, finding, rounded
from fga_tui.diagnostics.separation import COLLAPSE_SEPARATION
from fga_tui.diagnostics.severity import Severity

#: a fusion stage "drops" separation when it keeps less than a tenth of its input's.
DROP_FACTOR = 0.1
#: a message-passing layer "shrinks" separation when it keeps less than 90 % of its input's.
LAYER_SHRINK = 0.9
#: a smoothing trend needs at least this many shrinking layers in one unbroken decline.
MIN_SHRINKING_LAYERS = 2
#: ... which together keep less than a quarter of the separation ("lose most of it": 4x).
TREND_KEEP = 0.25
#: the shared query part "dominates" when it carries more than half the logit variance.
SHARED_DOMINATES_FRACTION = 0.5
#: two groups of atoms attend "materially" differently when the JSD of their mean attention
#: rows is at least this (bits). Two rows that agree on 95 % of their mass and put the other
#: 5 % on disjoint tokens differ by exactly 0.05 bits; float32 noise is ~1e-12 bits and a
#: shared-query-dominated attention gives ~1e-3 to 1e-2.
DISTINCT_JSD_BITS = 0.05


def _seps(ev: Evidence) -> dict[str, float | None]:
    return {s: rounded(ev.separation.get(s)) for s in ev.feature_stages}


# --- shared pure helpers -----------------------------------------------------------------------


def _has_symptom(same_word_pair_count: int, closest_group_jsd: float | None) -> bool | None:
    if closest_group_jsd is None:
        return None
    return same_word_pair_count > 0 or closest_group_jsd < DISTINCT_JSD_BITS


def probe_symptom(probe: Probe) -> bool | None:
    """Do atoms of different elements still read alike under this probe's intervention?"""
    return _has_symptom(probe.same_word_pair_count, probe.closest_group_jsd)


def symptom(ev: Evidence) -> bool | None:
    """Do atoms of different elements read alike: some pair reads the same top words, or two
    elements' mean attention rows differ by less than ``DISTINCT_JSD_BITS``? None when this
    cannot be asked (no attention, or one element only)."""
    if not ev.has_fga:
        return None
    return _has_symptom(ev.same_word_pair_count, ev.closest_group_jsd)


def _symptom_text(ev: Evidence | Probe) -> str:
    if ev.same_word_pairs:
        shown = ", ".join(f"{a} = {b}" for a, b in ev.same_word_pairs[:3])
        more = ev.same_word_pair_count - min(3, len(ev.same_word_pairs))
        return f"atoms of different elements read the same top words ({shown}" + (
            f", +{more} more)" if more > 0 else ")"
        )
    jsd, names = ev.closest_group_jsd, ev.closest_groups
    pair = f"{names[0]} and {names[1]} atoms" if names else "atoms of two elements"
    return (
        f"{pair} attend almost alike (JSD {jsd:.2g} < {DISTINCT_JSD_BITS:g} bits)"
        if jsd is not None
        else "atoms of different elements attend alike"
    )


def _symptom_evidence(ev: Evidence) -> dict[str, Any]:
    return {
        "same_top_word_pairs": [list(p) for p in ev.same_word_pairs],
        "same_top_word_pair_count": ev.same_word_pair_count,
        "closest_groups": None if ev.closest_groups is None else list(ev.closest_groups),
        "closest_group_jsd": rounded(ev.closest_group_jsd),
    }


def first_collapsed_stage(ev: Evidence) -> str | None:
    """The earliest stage from which the separation stays below ``COLLAPSE_SEPARATION``."""
    first = None
    for s in reversed(ev.feature_stages):
        sep = ev.separation.get(s)
        if sep is None or sep >= COLLAPSE_SEPARATION:
            break
        first = s
    return first


def _set_stage(spec: str) -> str | None:
    """The stage whose node features ``spec`` sets (``mean-ablate=S``, ``patch=S:D<-S``)."""
    kind, _, value = spec.partition("=")
    if kind.strip() in ("mean-ablate", "patch") and value:
        return value.partition(":")[0].strip()
    return None


def intervened_stages(ev: Evidence) -> set[str]:
    """Stages whose node features an active intervention sets: what changes there is the
    intervention's doing, not the layer's."""
    return {s for spec in ev.intervention if (s := _set_stage(spec)) is not None}


def _ratio(ev: Evidence, stage: str) -> float | None:
    """separation(stage) / separation(stage before), when the one before is not collapsed
    (relative changes below the collapse level are float noise) and no intervention sets the
    stage (``intervened_stages``)."""
    stages = ev.feature_stages
    i = stages.index(stage)
    if i == 0 or stage in intervened_stages(ev):
        return None
    before, after = ev.separation.get(stages[i - 1]), ev.separation.get(stage)
    if before is None or after is None or before < COLLAPSE_SEPARATION:
        return None
    return after / before


def _is_layer(stage: str) -> bool:
    return stage.startswith(("alignn.", "gcn."))


def _is_fusion(stage: str) -> bool:
    return stage.startswith("fusion.")


@dataclass(frozen=True)
class FusionLoss:
    """What the middle-fusion stages together do to the separation (up to the attention input)."""

    stage: str  # the fusion stage that loses the most
    before: float  # separation entering that stage
    after: float  # separation leaving it
    keep: float  # product over fusion stages of min(ratio, 1): what fusion alone keeps
    ratios: dict[str, float]  # each fusion stage's separation over its input's


def fusion_loss(ev: Evidence) -> FusionLoss | None:
    """The fusion stages' combined loss, or None when no fusion stage loses separation."""
    stages = ev.feature_stages
    final = ev.final_stage
    upto = stages[: stages.index(final) + 1] if final in stages else stages
    ratios = {s: r for s in upto if _is_fusion(s) and (r := _ratio(ev, s)) is not None}
    losing = {s: r for s, r in ratios.items() if r < 1.0}
    if not losing:
        return None
    worst = min(losing, key=lambda s: losing[s])
    keep = 1.0
    for r in losing.values():
        keep *= r
    before = ev.separation[stages[stages.index(worst) - 1]]
    return FusionLoss(worst, float(before), float(ev.separation[worst]), keep, ratios)


@dataclass(frozen=True)
class Trend:
    """An unbroken decline of the separation through message-passing layers."""

    start: str  # the stage before the first shrinking layer (where the decline starts from)
    layers: tuple[str, ...]  # the layers of the decline, in order
    ratios: tuple[float, ...]  # each layer's separation over its input's
    layers_keep: float  # product of ``ratios``: what the layers themselves keep
    end_keep: float  # separation at the attention input over that at ``start``
    stage: str  # where the decline crosses TREND_KEEP of its start (or the collapse level)


def smoothing_trend(ev: Evidence) -> Trend | None:
    """The strongest smoothing decline up to the attention input, or None.

    Runs are maximal sequences of consecutive message-passing layers (``alignn.k``, ``gcn.k``;
    fusion stages between them neither count nor break a run) that each lose separation
    (ratio < 1) and whose input is not already collapsed; a stage an intervention sets
    (``intervened_stages``) breaks a run. A run is a smoothing trend when at
    least ``MIN_SHRINKING_LAYERS`` of its layers keep less than ``LAYER_SHRINK`` each, the
    layers together keep less than ``TREND_KEEP``, and the attention input still keeps less
    than ``TREND_KEEP`` of the separation where the run started (no later recovery).
    """
    final = ev.final_stage
    if final is None or final not in ev.feature_stages:
        return None
    stages = ev.feature_stages[: ev.feature_stages.index(final) + 1]
    runs: list[list[tuple[str, float]]] = [[]]
    for s in stages:
        if not _is_layer(s):
            continue
        r = _ratio(ev, s)
        if r is not None and r < 1.0:
            runs[-1].append((s, r))
        elif runs[-1]:
            runs.append([])
    final_sep = ev.separation.get(final)
    if final_sep is None:
        return None
    best: Trend | None = None
    for run in runs:
        if sum(r < LAYER_SHRINK for _, r in run) < MIN_SHRINKING_LAYERS:
            continue
        keep = 1.0
        for _, r in run:
            keep *= r
        start = stages[stages.index(run[0][0]) - 1]
        start_sep = ev.separation[start]
        end_keep = final_sep / start_sep
        if keep >= TREND_KEEP or end_keep >= TREND_KEEP:
            continue
        level = TREND_KEEP * start_sep
        if final_sep < COLLAPSE_SEPARATION:
            level = COLLAPSE_SEPARATION
        span = stages[stages.index(run[0][0]) :]
        crossing = next((s for s in span if (ev.separation.get(s) or 0.0) < level), run[-1][0])
        trend = Trend(
            start=start,
            layers=tuple(s for s, _ in run),
            ratios=tuple(r for _, r in run),
            layers_keep=keep,
            end_keep=end_keep,
            stage=crossing,
        )
        if best is None or trend.layers_keep < best.layers_keep:
            best = trend
    return best


def _loss(ev: Evidence, which: Callable[[str], bool]) -> float:
    """Fraction of separation removed, up to the attention input, by the stages ``which``
    selects (only losses count: 1 - prod(min(ratio, 1)))."""
    final = ev.final_stage
    stages = ev.feature_stages
    stages = stages[: stages.index(final) + 1] if final in stages else stages
    keep = 1.0
    for s in stages:
        r = _ratio(ev, s) if which(s) else None
        if r is not None:
            keep *= min(r, 1.0)
    return 1.0 - keep


def untrained_attention(audit: Any, needles: Sequence[str]) -> set[str]:
    """Fine-grained-attention parameters the audit found unchanged or init-like whose names
    contain one of ``needles``."""
    if audit is None:
        return set()
    names = set()
    for f in audit.findings:
        if f.kind in ("unchanged", "looks_untrained"):
            for p in f.parameters:
                if "fine_grained_attention" in p and any(n in p for n in needles):
                    names.add(p)
    return names


A2T_PARTS = ("a2t_query", "a2t_key")
T2A_PARTS = ("t2a_", "token_output", "layer_norm_token")


# --- rules -------------------------------------------------------------------------------------


def symmetry_equivalent(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """SYMMETRY_EQUIVALENT (info): some atoms are symmetry-equivalent (orbits with more than one
    atom), so identical features and words inside an orbit are expected, not a collapse; or the
    input tells no two atoms apart (one element), so the sample cannot show attention
    differences. Evidence: the orbits, the largest within-orbit feature deviation, and orbits
    whose atoms have different in-degrees in the crystal graph (upstream's exact-float cut of a
    tied 12th-neighbour shell breaks the symmetry)."""
    multi = [o for o in ev.orbits if len(o) > 1]
    one_group = len(ev.group_names) == 1 and ev.num_atoms > 1
    if not multi and not one_group:
        return []
    if len(ev.orbits) == 1:
        msg = (
            f"All {ev.num_atoms} atoms are symmetry-equivalent: identical features and top words "
            "are expected, so this sample cannot show attention differences."
        )
    elif multi:
        names = ["{" + ", ".join(ev.labels[i] for i in o) + "}" for o in multi]
        msg = (
            f"{'; '.join(names)} are symmetry-equivalent: identical features and top words "
            "within each group are expected, not a collapse."
        )
    else:
        msg = ""
    if one_group and len(ev.orbits) > 1:
        msg += (
            f"{' ' if msg else ''}All atoms are {ev.group_names[0]}: the input does not tell "
            "them apart, so this sample cannot show whether different atoms read different words."
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
    return [
        finding(
            "SYMMETRY_EQUIVALENT",
            Severity.INFO,
            msg,
            orbits=[list(map(int, o)) for o in ev.orbits],
            input_groups=list(ev.group_names),
            within_orbit_max_dev=rounded(ev.within_orbit_max_dev),
            graph_breaks_symmetry=[
                {"atoms": list(orbit), "in_degree": list(degrees)}
                for orbit, degrees in ev.broken_orbits
            ],
        )
    ]


def fga_missing(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """FGA_MISSING: a multimodal checkpoint without the fine-grained attention module
    (warning: there are no per-atom words to explain), or a text-free checkpoint (info)."""
    if ev.multimodal and not ev.has_fga:
        return [
            finding(
                "FGA_MISSING",
                Severity.WARNING,
                "The checkpoint has no fine-grained attention module: there are no per-atom "
                "top words to explain.",
            )
        ]
    if not ev.multimodal:
        return [
            finding(
                "FGA_MISSING",
                Severity.INFO,
                "Text-free ALIGNN checkpoint: no atom-token attention; only feature diagnostics "
                "apply.",
            )
        ]
    return []


def feature_collapse(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """FEATURE_COLLAPSE (error): from some stage on, through the last feature stage, two atoms
    of different elements have features closer than ``COLLAPSE_SEPARATION`` of the feature
    scale (``separation``). ``stage``: the first stage of that final collapsed stretch;
    ``set_by_intervention``: the active specs that set that stage's features (a mean-ablation
    or patch makes atoms identical on purpose)."""
    collapsed = first_collapsed_stage(ev)
    if collapsed is None:
        return []
    msg = (
        f"Atoms of different elements (so of different symmetry orbits) have identical "
        f"features from {collapsed} on (separation {ev.separation[collapsed]:.2g} < "
        f"{COLLAPSE_SEPARATION:g})."
    )
    set_by = [spec for spec in ev.intervention if _set_stage(spec) == collapsed]
    if set_by:
        msg += f" The intervention {', '.join(set_by)} sets these features."
    return [
        finding(
            "FEATURE_COLLAPSE",
            Severity.ERROR,
            msg,
            stage=collapsed,
            set_by_intervention=set_by,
            separation=_seps(ev),
        )
    ]


def fusion_homogenizes(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """FUSION_HOMOGENIZES: the middle-fusion stages together keep less than ``DROP_FACTOR`` of
    the separation (``fusion_loss``: product of their losses, one stage or several), and either
    the ``no-fusion`` probe restores the separation at the attention input to above
    max(final / ``DROP_FACTOR``, ``COLLAPSE_SEPARATION``), or (no probe run) the worst fusion
    stage's output is collapsed (< ``COLLAPSE_SEPARATION``).

    Severity error. When the no-fusion probe shows that atoms of different elements still read
    alike without fusion, fusion is not the cause of that symptom: the message says so, and the
    verdict is a warning unless fusion's output is collapsed (then it stays an error: identical
    features are a defect whatever else is wrong). ``stage``: the fusion stage that loses most.
    """
    loss = fusion_loss(ev)
    if loss is None or loss.keep >= DROP_FACTOR:
        return []
    probe = ev.probe("no-fusion")
    final, final_sep = ev.final_stage, ev.final_separation
    restored = None if probe is None else probe.separation_at_fga_input
    persists = None if probe is None else probe_symptom(probe)
    collapsed = loss.after < COLLAPSE_SEPARATION
    confirmed = (
        restored is not None
        and final_sep is not None
        and restored > max(final_sep / DROP_FACTOR, COLLAPSE_SEPARATION)
    )
    if not (confirmed or (probe is None and collapsed)):
        return []
    several = sum(r < 1.0 for r in loss.ratios.values()) > 1
    msg = (
        f"Middle fusion makes atoms alike: at {loss.stage} separation {loss.before:.2g} -> "
        f"{loss.after:.2g}"
        + (f", {_pct(loss.keep)} kept over all fusion stages" if several else "")
        + (
            f"; bypassing it restores {restored:.2g} at {final}."
            if restored is not None
            else " (no bypass probe ran)."
        )
    )
    if persists:
        msg += (
            f" But fusion is not {'the only' if collapsed else 'the'} cause of the shared "
            f"words: with no-fusion, {_symptom_text(probe)}."
        )
    return [
        finding(
            "FUSION_HOMOGENIZES",
            Severity.WARNING if persists and not collapsed else Severity.ERROR,
            msg,
            stage=loss.stage,
            separation_before=rounded(loss.before),
            separation_after=rounded(loss.after),
            fusion_keep=rounded(loss.keep),
            fusion_ratios={s: rounded(r) for s, r in loss.ratios.items()},
            mean_gate=rounded(ev.fusion_gates.get(loss.stage)),
            ablation={
                "no_fusion": True,
                "separation_at_fga_input": rounded(restored),
                "attention_cross_orbit_jsd": rounded(
                    None if probe is None else probe.attention_jsd
                ),
                "symptom_persists": persists,
            },
        )
    ]


def oversmoothing(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """OVERSMOOTHING: message-passing layers consistently shrink the separation and together
    lose most of it (``smoothing_trend``: at least ``MIN_SHRINKING_LAYERS`` layers keeping
    < ``LAYER_SHRINK`` each, in an unbroken decline keeping < ``TREND_KEEP``, not recovered by
    the attention input). Warning; error when the attention input is collapsed
    (< ``COLLAPSE_SEPARATION``). ``stage``: where the decline crosses ``TREND_KEEP`` of its
    start (the collapse level for an error); ``decline_from``: its first shrinking layer.
    The ``fga-from`` probe, when run, is cited: reading an earlier stage tells whether the
    attention would separate the atoms before the decline."""
    trend = smoothing_trend(ev)
    if trend is None:
        return []
    final, final_sep = ev.final_stage, ev.final_separation
    collapsed = final_sep is not None and final_sep < COLLAPSE_SEPARATION
    probe = ev.probe("fga-from")
    msg = (
        f"Separation shrinks at every layer from {trend.layers[0]} to {trend.layers[-1]} "
        f"({ev.separation[trend.start]:.2g} at {trend.start} -> {final_sep:.2g} at {final}, "
        f"{_pct(trend.end_keep)} kept); atoms become alike from {trend.stage}"
        + (" and are identical at the attention input." if collapsed else ".")
    )
    if probe is not None and probe_symptom(probe) is not None:
        msg += (
            f" Read from {probe.stage}, "
            + (_symptom_text(probe) if probe_symptom(probe) else "the atoms read different words")
            + "."
        )
    return [
        finding(
            "OVERSMOOTHING",
            Severity.ERROR if collapsed else Severity.WARNING,
            msg,
            stage=trend.stage,
            decline_from=trend.layers[0],
            peak_stage=trend.start,
            layers_keep=rounded(trend.layers_keep),
            kept_at_fga_input=rounded(trend.end_keep),
            layer_ratios={s: rounded(r) for s, r in zip(trend.layers, trend.ratios, strict=True)},
            separation=_seps(ev),
            ablation={
                "fga_from": None if probe is None else probe.stage,
                "attention_cross_orbit_jsd": rounded(
                    None if probe is None else probe.attention_jsd
                ),
                "symptom_persists": None if probe is None else probe_symptom(probe),
            },
        )
    ]


def attention_untrained(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """ATTENTION_UNTRAINED: the audit found fine-grained-attention projections unchanged from
    their init (or init-like): the atom->text query/key (error: its weights carry no learned
    meaning), or the text->atom branch (warning: do not interpret text_to_atom)."""
    if not ev.has_fga:
        return []
    out = []
    a2t = untrained_attention(ev.audit, A2T_PARTS)
    if a2t:
        out.append(
            finding(
                "ATTENTION_UNTRAINED",
                Severity.ERROR,
                "The atom->text attention projections look untrained "
                f"({', '.join(sorted(a2t)[:4])}): its weights carry no learned meaning.",
                stage="fga",
                branch="atom_to_text",
                parameters=sorted(a2t),
            )
        )
    t2a = untrained_attention(ev.audit, T2A_PARTS)
    if t2a:
        out.append(
            finding(
                "ATTENTION_UNTRAINED",
                Severity.WARNING,
                "The text->atom branch of the fine-grained attention never trained "
                f"({len(t2a)} tensors): do not interpret text_to_atom weights.",
                stage="fga",
                branch="text_to_atom",
                parameters=sorted(t2a),
            )
        )
    return out


def _alike_but_distinct(ev: Evidence) -> bool:
    """Do atoms that read alike have distinct features at the attention input? Per pair when
    the same-word pairs were measured (a patch can make one pair identical and leave others
    distinct), else: every two elements differ (separation >= ``COLLAPSE_SEPARATION``)."""
    if ev.same_word_pair_count and ev.same_word_distinct_count is not None:
        return ev.same_word_distinct_count > 0
    final_sep = ev.final_separation
    return final_sep is not None and final_sep >= COLLAPSE_SEPARATION


def shared_query_dominates(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """SHARED_QUERY_DOMINATES (error): atoms of different elements read alike (``symptom``)
    although their features at the attention input are distinct (``_alike_but_distinct``:
    distance >= ``COLLAPSE_SEPARATION`` of the feature scale) and the atom->text projections
    are trained, and the query part shared by all atoms carries more than
    ``SHARED_DOMINATES_FRACTION`` of the logit variance (``attention.logit_decomposition``).
    ``stage``: fga."""
    final_sep, frac = ev.final_separation, ev.shared_fraction
    if (
        not symptom(ev)
        or not _alike_but_distinct(ev)
        or untrained_attention(ev.audit, A2T_PARTS)
        or frac is None
        or frac <= SHARED_DOMINATES_FRACTION
    ):
        return []
    return [
        finding(
            "SHARED_QUERY_DOMINATES",
            Severity.ERROR,
            f"Atoms differ at {ev.final_stage} "
            + (
                f"(separation {final_sep:.2g})"
                if final_sep is not None and final_sep >= COLLAPSE_SEPARATION
                else f"({ev.same_word_distinct_count} of the pairs below have distinct features)"
            )
            + f" but {_symptom_text(ev)}: the query part shared by all atoms carries "
            f"{frac:.0%} of the logit variance.",
            stage="fga",
            shared_fraction=rounded(frac),
            attention_cross_orbit_jsd=rounded(ev.attention_jsd),
            separation_at_fga_input=rounded(final_sep),
            **_symptom_evidence(ev),
        )
    ]


def no_gradient_path(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """NO_GRADIENT_PATH (warning): the audit's backward pass found modules that get no (or
    exactly zero) gradient by construction."""
    if ev.audit is None:
        return []
    modules = sorted(
        {
            f.evidence.get("module", "?")
            for f in ev.audit.findings
            if f.kind in ("no_gradient", "zero_gradient")
        }
    )
    if not modules:
        return []
    return [
        finding(
            "NO_GRADIENT_PATH",
            Severity.WARNING,
            f"{len(modules)} module{'s get' if len(modules) > 1 else ' gets'} no (or exactly "
            "zero) gradient by construction: "
            f"{', '.join(modules[:5])}{' ...' if len(modules) > 5 else ''}.",
            modules=modules,
        )
    ]


def _no_text_uniform(ev: Evidence) -> bool:
    """Under ``no-text`` every token key is the same, so uniform attention is by construction."""
    return ev.has_fga and ev.uniform_attention and "no-text" in ev.intervention


def degenerate_softmax(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """DEGENERATE_SOFTMAX (info): attention weights constant by construction: a softmax over
    one element, identically 1.0 (the fork's global attention; text_to_atom on 1 atom), or the
    atom->text attention under the ``no-text`` intervention, uniform because every token state
    is the same (``uniform_attention``): every atom then reads every word alike."""
    out = [
        finding(
            "DEGENERATE_SOFTMAX",
            Severity.INFO,
            f"{what} is a softmax over one element: identically 1.0 by construction.",
            weights=what,
        )
        for what in ev.degenerate
    ]
    if _no_text_uniform(ev):
        out.append(
            finding(
                "DEGENERATE_SOFTMAX",
                Severity.INFO,
                "Under no-text every token looks the same to the attention, so atom->text "
                "attention is uniform by construction: identical words for every atom are "
                "expected here, not a finding.",
                stage="fga",
                weights="atom_to_text (no-text)",
            )
        )
    return out


def _blocking(earlier: Iterable[Verdict]) -> list[Verdict]:
    return [
        v for v in earlier if (at := BLOCKS_HEALTHY.get(v.code)) is not None and v.severity >= at
    ]


#: the code a symptom without a firing rule is filed under, per contributor.
_CONTRIBUTORS = {
    "shared_query": "SHARED_QUERY_DOMINATES",
    "smoothing": "OVERSMOOTHING",
    "fusion": "FUSION_HOMOGENIZES",
}
#: the probe that rules a contributor out when the symptom persists under it.
_PROBE_OF = {"fusion": "no-fusion", "smoothing": "fga-from"}


def _symptom_without_cause(ev: Evidence) -> Verdict:
    """The symptom stands but no cause passed its threshold: file it, as a warning, under the
    largest contributor. Contributions are fractions in [0, 1]: the shared query part's share of
    the logit variance, and the share of the separation (up to the attention input) removed by
    message-passing layers and by fusion stages. A contributor whose probe shows the symptom
    persisting without it (no-fusion; fga-from before the layers) is excluded. Ties, and no
    contribution at all, go to SHARED_QUERY_DOMINATES: the attention is where atoms that still
    differ end up reading alike."""
    contributions: dict[str, float | None] = {
        "shared_query": ev.shared_fraction,
        "smoothing": _loss(ev, _is_layer),
        "fusion": _loss(ev, _is_fusion),
    }
    excluded = []
    for key, kind in _PROBE_OF.items():
        probe = ev.probe(kind)
        if probe is not None and probe_symptom(probe):
            excluded.append(key)
    candidates = {k: v or 0.0 for k, v in contributions.items() if k not in excluded}
    key = max(candidates, key=lambda k: candidates[k])  # ties: the first, shared_query
    code = _CONTRIBUTORS[key]
    shown = []
    for k, label in (
        ("shared_query", "shared query part {} of the logit variance"),
        ("smoothing", "layers remove {} of the separation"),
        ("fusion", "fusion removes {}"),
    ):
        value = contributions[k]
        text = label.format("—" if value is None else _pct(value))
        if k in excluded and value:
            text += f" (but with {ev.probe(_PROBE_OF[k]).spec} atoms still read alike)"
        shown.append(text)
    text = _symptom_text(ev)
    return finding(
        code,
        Severity.WARNING,
        f"{text[0].upper()}{text[1:]}, but no cause reaches its threshold ("
        + "; ".join(shown)
        + f"). Filed under {code}, the largest contributor"
        + (
            "."
            if candidates[key] > 0.0
            else ": with no other lead, the attention is where distinct atoms come to read alike."
        ),
        stage="fga" if key == "shared_query" else ev.final_stage,
        below_threshold=True,
        contributions={k: rounded(v) for k, v in contributions.items()},
        excluded_by_probe=excluded,
        attention_cross_orbit_jsd=rounded(ev.attention_jsd),
        separation_at_fga_input=rounded(ev.final_separation),
        **_symptom_evidence(ev),
    )


def _pct(x: float) -> str:
    return f"{100.0 * x:.2g} %"


def healthy(ev: Evidence, earlier: tuple[Verdict, ...] = ()) -> list[Verdict]:
    """HEALTHY (info), or the symptom when it stands without a cause.

    With attention: HEALTHY only when no earlier verdict blocks it (``BLOCKS_HEALTHY``), no two
    atoms of different elements read the same top words, and every two elements' mean attention
    rows differ by at least ``DISTINCT_JSD_BITS``. When atoms do read alike and no cause fired,
    the symptom is still reported (``_symptom_without_cause``): never silence, never HEALTHY.
    Nothing when the question cannot be asked (one element, or one orbit), or when the
    attention is uniform by construction under ``no-text`` (DEGENERATE_SOFTMAX says so).
    Without attention: HEALTHY when nothing blocks and the features of different elements stay
    distinct at the last stage."""
    if _blocking(earlier):
        return []
    final, final_sep = ev.final_stage, ev.final_separation
    if not ev.has_fga:
        if final_sep is None:
            return []
        return [
            finding(
                "HEALTHY",
                Severity.INFO,
                f"Features of different elements stay distinct (separation {final_sep:.2g} at "
                f"{final}).",
                separation_at_final=rounded(final_sep),
            )
        ]
    has = symptom(ev)
    if has is None or _no_text_uniform(ev):
        return []
    if has:
        return [_symptom_without_cause(ev)]
    closest = " vs ".join(ev.closest_groups or ("two elements",))
    message = (
        f"Atoms of different elements read different words and attend differently (closest: "
        f"{closest}, JSD {ev.closest_group_jsd:.3g} >= {DISTINCT_JSD_BITS:g} bits; cross-orbit "
        f"mean {ev.attention_jsd or 0.0:.3g})"
        + (
            f"; their features stay distinct (separation {final_sep:.2g} at {final})."
            if final_sep is not None
            else "."
        )
    )
    if ev.special_only:
        message += (
            f" {', '.join(ev.special_only[:4])} attend almost only to special tokens "
            "([CLS]/[SEP]), so their top words carry no weight."
        )
    return [
        finding(
            "HEALTHY",
            Severity.INFO,
            message,
            stage="fga",
            attention_cross_orbit_jsd=rounded(ev.attention_jsd),
            closest_groups=list(ev.closest_groups or ()),
            closest_group_jsd=rounded(ev.closest_group_jsd),
            separation_at_fga_input=rounded(final_sep),
            special_token_atoms=list(ev.special_only),
        )
    ]


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One verdict rule. ``blocks_healthy``: a verdict of this code at this severity or worse
    means the sample is not healthy (None: it never does, e.g. facts about the checkpoint)."""

    code: str
    check: Callable[[Evidence, tuple[Verdict, ...]], list[Verdict]]
    blocks_healthy: Severity | None = None


#: In order: HEALTHY last, since it reads every earlier verdict.
RULES: tuple[Rule, ...] = (
    Rule("SYMMETRY_EQUIVALENT", symmetry_equivalent),
    Rule("FGA_MISSING", fga_missing),
    Rule("FEATURE_COLLAPSE", feature_collapse, Severity.ERROR),
    Rule("FUSION_HOMOGENIZES", fusion_homogenizes, Severity.WARNING),
    Rule("OVERSMOOTHING", oversmoothing, Severity.WARNING),
    Rule("ATTENTION_UNTRAINED", attention_untrained, Severity.ERROR),
    Rule("SHARED_QUERY_DOMINATES", shared_query_dominates, Severity.WARNING),
    Rule("NO_GRADIENT_PATH", no_gradient_path),
    Rule("DEGENERATE_SOFTMAX", degenerate_softmax),
    Rule("HEALTHY", healthy),
)
BLOCKS_HEALTHY: dict[str, Severity] = {
    r.code: r.blocks_healthy for r in RULES if r.blocks_healthy is not None
}
