"""The intervention vocabulary: one set of specs for the CLI, the TUI and the Python API.

An intervention changes one forward pass through the model's named hook points (never its
weights), so a question such as "what if fusion did nothing?" or "what if Hf_4 read like Ba_0?"
is answered by comparing two traces of the same model. Specs (``--intervene SPEC``, repeatable):

* ``no-fusion``: every middle-fusion module passes its input through (``--no-fusion``);
* ``fga-from=STAGE``: the fine-grained attention (or the readout) reads STAGE's node features
  (``--fga-from``), i.e. the GNN is cut after STAGE;
* ``mean-ablate=STAGE``: node features at STAGE replaced by their mean over the structure's
  atoms (the standard mean-ablation baseline of causal mediation analysis: Vig et al. 2020,
  "Causal mediation analysis for interpreting neural NLP", NeurIPS);
* ``patch=STAGE:DST<-SRC``: atom DST's features at STAGE replaced by atom SRC's (activation
  patching, Meng et al. 2022, "Locating and editing factual associations in GPT"); atoms by
  index (``4``) or label (``Hf_4``);
* ``no-text``: every token state the text encoder produced is replaced by zeros (mask kept).
  Why zeros: the text vector and every token key and value then reduce to the layers' biases,
  which are the same for every sample and every token, so the attention context and the
  middle-fusion input no longer depend on the text or on its length: the model runs with the
  text carrying no information. It is also the standard integrated-gradients baseline.

This module is pure Python (no torch): specs are parsed and checked before any work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fga_tui.io.errors import InputError

SPEC_HELP = "no-fusion | fga-from=STAGE | mean-ablate=STAGE | patch=STAGE:DST<-SRC | no-text"
_WHERE = "--intervene"
_STAGE = re.compile(r"^(embed|alignn\.\d+|fusion\.\d+|gcn\.\d+|fga)$")
_ATOM = re.compile(r"^(?:(?P<el>[A-Z][a-z]?)_)?(?P<idx>\d+)$")


@dataclass(frozen=True)
class AtomRef:
    """An atom named by index (``4``) or by label (``Hf_4``: the element is checked too)."""

    index: int
    element: str | None = None

    def __str__(self) -> str:
        return f"{self.element}_{self.index}" if self.element else str(self.index)


@dataclass(frozen=True)
class Intervention:
    """One parsed spec. ``kind`` is the spec's name; ``stage``/``dst``/``src`` where it has them."""

    kind: str
    stage: str | None = None
    dst: AtomRef | None = None
    src: AtomRef | None = None

    @property
    def spec(self) -> str:
        """The canonical spec string (parses back to an equal intervention)."""
        if self.kind == "patch":
            return f"patch={self.stage}:{self.dst}<-{self.src}"
        if self.stage is not None:
            return f"{self.kind}={self.stage}"
        return self.kind

    def __str__(self) -> str:
        return self.spec


def _stage(spec: str, value: str) -> str:
    value = value.strip()
    if not _STAGE.match(value):
        raise InputError(
            _WHERE,
            f"{spec!r}: {value!r} is not a stage name (embed, alignn.K, fusion.K, gcn.K, fga)",
        )
    return value


def _atom(spec: str, value: str) -> AtomRef:
    m = _ATOM.match(value.strip())
    if not m:
        raise InputError(_WHERE, f"{spec!r}: {value.strip()!r} is not an atom (4 or Hf_4)")
    return AtomRef(int(m["idx"]), m["el"])


def parse_intervention(spec: str) -> Intervention:
    """Parse one ``--intervene`` spec; a bad spec is an ``InputError`` naming it."""
    text = spec.strip()
    name, sep, value = text.partition("=")
    name = name.strip().lower().replace("_", "-")
    if name in ("no-fusion", "no-text"):
        if sep:
            raise InputError(_WHERE, f"{spec!r}: {name} takes no value")
        return Intervention(name)
    if name in ("fga-from", "mean-ablate"):
        if not value.strip():
            raise InputError(_WHERE, f"{spec!r}: {name} needs a stage ({name}=STAGE)")
        return Intervention(name, _stage(spec, value))
    if name == "patch":
        stage, colon, atoms = value.partition(":")
        dst, arrow, src = atoms.partition("<-")
        if not colon or not arrow:
            raise InputError(
                _WHERE, f"{spec!r}: write patch=STAGE:DST<-SRC (patch=gcn.0:Hf_4<-Ba_0)"
            )
        return Intervention("patch", _stage(spec, stage), _atom(spec, dst), _atom(spec, src))
    raise InputError(_WHERE, f"{spec!r} is not an intervention ({SPEC_HELP})")


@dataclass(frozen=True, init=False)
class Interventions:
    """An ordered set of interventions for one forward (empty = the model as trained).

    ``Interventions(no_fusion=True, fga_from="alignn.1")`` builds the two classic ablations;
    ``Interventions.parse(["patch=gcn.0:Hf_4<-Ba_0"])`` any spec. Equal sets are equal and hash
    alike (views are cached per set). A spec given twice counts once.
    """

    items: tuple[Intervention, ...]

    def __init__(
        self,
        items: Iterable[Intervention] = (),
        *,
        no_fusion: bool = False,
        fga_from: str | None = None,
    ) -> None:
        out: list[Intervention] = []
        for item in items:
            if item not in out:
                out.append(item)
        if no_fusion and Intervention("no-fusion") not in out:
            out.append(Intervention("no-fusion"))
        if fga_from is not None:
            out = [i for i in out if i.kind != "fga-from"]
            out.append(Intervention("fga-from", fga_from))
        kinds = [i.kind for i in out]
        if kinds.count("fga-from") > 1:
            raise InputError(_WHERE, "fga-from given twice: the attention reads one stage")
        object.__setattr__(self, "items", tuple(out))

    @classmethod
    def parse(
        cls, specs: Sequence[str] = (), *, no_fusion: bool = False, fga_from: str | None = None
    ) -> Interventions:
        """Specs from the command line plus the ``--no-fusion``/``--fga-from`` aliases."""
        return cls([parse_intervention(s) for s in specs], no_fusion=no_fusion, fga_from=fga_from)

    @property
    def active(self) -> bool:
        return bool(self.items)

    @property
    def no_fusion(self) -> bool:
        return any(i.kind == "no-fusion" for i in self.items)

    @property
    def no_text(self) -> bool:
        return any(i.kind == "no-text" for i in self.items)

    @property
    def fga_from(self) -> str | None:
        return next((i.stage for i in self.items if i.kind == "fga-from"), None)

    @property
    def specs(self) -> list[str]:
        return [i.spec for i in self.items]

    def of_kind(self, kind: str) -> list[Intervention]:
        return [i for i in self.items if i.kind == kind]

    def with_(self, item: Intervention) -> Interventions:
        return Interventions([*self.items, item])

    def without(self, kind: str) -> Interventions:
        return Interventions(i for i in self.items if i.kind != kind)

    def describe(self) -> str:
        return ", ".join(self.specs) or "none"

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
