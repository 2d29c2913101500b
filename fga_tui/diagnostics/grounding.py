"""Grounding: does an atom read about its own element, or about the others of its cell?

A token *names* an element of the cell when its word (WordPiece ``##`` pieces merged) is the
element's symbol or name in any case (``ba``, ``Barium``), a site label (``ba1``, ``Ba(1)``,
``o2`` from ``O2-``: the ``(``, ``1``, ``)`` tokens after a symbol belong to that mention), or a
formula of the cell's elements (``nacl``, ``hfba4``: it names each of them, its weight split
equally). Symbols that are also common English words once an uncased tokenizer lowercases them
(``in``, ``as``, ``be``, ``at``, ``no``, ``i``, ``he``, ``s``, ...) count only with a site
label, and a formula must not be a stopword (``can`` is not Ca + N). Elements absent from the
cell are ignored.

An atom's grounding is ``own / (own + other)``: the weight it puts on tokens naming its own
element over the weight on tokens naming any element of the cell. The *text share* of an
element is the same ratio for a reader that weighs every token alike (the chance level: a text
that mentions Ba twenty times and Hf twice gives a uniform Hf reader 0.09). NaN where the text
names no element of the cell, or where the atom puts less than ``MIN_ELEMENT_SHARE`` of its
weight on element tokens at all (a ratio of two vanishing numbers says nothing); that share is
reported as ``element_share``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from fga_tui.diagnostics.words import group_wordpieces, load_stopwords
from fga_tui.structure.features import element_symbols

_NAMES_TEXT = (
    "hydrogen helium lithium beryllium boron carbon nitrogen oxygen fluorine neon sodium "
    "magnesium aluminium silicon phosphorus sulfur chlorine argon potassium calcium scandium "
    "titanium vanadium chromium manganese iron cobalt nickel copper zinc gallium germanium "
    "arsenic selenium bromine krypton rubidium strontium yttrium zirconium niobium molybdenum "
    "technetium ruthenium rhodium palladium silver cadmium indium tin antimony tellurium iodine "
    "xenon caesium barium lanthanum cerium praseodymium neodymium promethium samarium europium "
    "gadolinium terbium dysprosium holmium erbium thulium ytterbium lutetium hafnium tantalum "
    "tungsten rhenium osmium iridium platinum gold mercury thallium lead bismuth polonium "
    "astatine radon francium radium actinium thorium protactinium uranium neptunium plutonium "
    "americium curium berkelium californium einsteinium fermium mendelevium nobelium lawrencium"
)
_NAMES = tuple(_NAMES_TEXT.split())
#: Other spellings in use.
_ALIASES = {"aluminum": "Al", "cesium": "Cs", "sulphur": "S"}
#: Lower-cased symbols that are also English words: they name an element only as a site label.
AMBIGUOUS = frozenset({"as", "at", "be", "he", "i", "in", "no", "s", "am", "es", "pm"})

#: Below this share of an atom's weight on element tokens its grounding is undefined (NaN).
MIN_ELEMENT_SHARE = 0.01

_SITE_WORD = re.compile(r"^([a-z]{1,2})(?:\d+|\(\d+\))[+-]?$")
_DIGITS = re.compile(r"^\d+$")


@cache
def _symbol_of() -> dict[str, str]:
    """Lower-case symbol or name -> symbol."""
    table = {sym.lower(): sym for sym in element_symbols()}
    table.update({name: sym for name, sym in zip(_NAMES, element_symbols(), strict=True)})
    table.update(_ALIASES)
    return table


def _parse_formula(word: str, symbols: dict[str, str]) -> list[str] | None:
    """The cell elements a formula word spells (``hfba4`` -> [Hf, Ba]), or None."""
    best: list[list[str] | None] = [None] * (len(word) + 1)
    best[len(word)] = []
    for i in range(len(word) - 1, -1, -1):
        for size in (2, 1):  # two-letter symbols first: "co" is cobalt before carbon + oxygen
            piece = word[i : i + size]
            if len(piece) != size or piece not in symbols:
                continue
            j = i + size
            while j < len(word) and word[j].isdigit():
                j += 1
            if best[j] is not None:
                best[i] = [symbols[piece], *best[j]]
                break
    found = best[0]
    return found if found is not None and len(found) >= 2 else None


def word_elements(word: str, cell: Sequence[str], *, site_label: bool = False) -> tuple[str, ...]:
    """The elements of ``cell`` that one merged word names (see the module docstring).

    ``site_label``: the word is followed by ``( digits )``, so an ambiguous symbol counts.
    """
    lower = word.lower()
    present = set(cell)
    table = _symbol_of()
    sym = table.get(lower)
    if sym is not None and sym in present:
        if lower in AMBIGUOUS and not site_label:
            return ()
        return (sym,)
    site = _SITE_WORD.match(lower)
    if site is not None:
        sym = table.get(site.group(1))
        if sym is not None and sym in present and len(site.group(1)) <= 2:
            return (sym,)
    if lower in _stopwords():
        return ()
    cell_symbols = {s.lower(): s for s in present}
    parsed = _parse_formula(lower, cell_symbols)
    if parsed is None:
        return ()
    return tuple(dict.fromkeys(parsed))


@cache
def _stopwords() -> frozenset[str]:
    return load_stopwords()


def naming_matrix(
    tokens: Sequence[str], mask: Any, elements: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """float64 [L, E] (how much each token names each of the cell's E distinct elements; rows sum
    to 1 or 0) and the elements in order of first appearance in the cell."""
    cell = tuple(dict.fromkeys(str(e) for e in elements))
    column = {el: k for k, el in enumerate(cell)}
    names = np.zeros((len(tokens), len(cell)))
    words = group_wordpieces(tokens, mask)
    k = 0
    while k < len(words):
        text, indices = words[k]
        suffix = _site_suffix(words, k)
        named = word_elements(text, cell, site_label=bool(suffix))
        if named:
            span = list(indices) + [i for _, idx in words[k + 1 : k + 1 + suffix] for i in idx]
            for el in named:
                names[span, column[el]] += 1.0 / len(named)
            if len(named) == 1:
                k += suffix  # the label's "(", "1", ")" belong to this mention
        k += 1
    return names, cell


def _site_suffix(words: Sequence[tuple[str, tuple[int, ...]]], k: int) -> int:
    """How many words after ``k`` form a ``( digits )`` site label (0 when they do not)."""
    texts = [w for w, _ in words[k + 1 : k + 4]]
    if len(texts) == 3 and texts[0] == "(" and _DIGITS.match(texts[1]) and texts[2] == ")":
        return 3
    if len(texts) >= 1 and re.fullmatch(r"\(\d+\)", texts[0]):
        return 1
    return 0


@dataclass(frozen=True)
class Grounding:
    """Per atom grounding [N] (NaN where undefined), the cell's elements and their text share.

    ``named`` lists the cell elements the text names at all; empty means "the text names no
    element of this cell", and then every grounding is NaN.
    """

    per_atom: np.ndarray
    elements: tuple[str, ...]
    atom_elements: tuple[str, ...]
    text_share: dict[str, float]
    named: tuple[str, ...]
    element_share: np.ndarray | None = None  # [N] share of each atom's weight on element words

    def per_element(self) -> dict[str, float]:
        """Mean grounding over each element's atoms (NaN atoms skipped; NaN when none left)."""
        out = {}
        for el in self.elements:
            vals = np.array(
                [g for g, e in zip(self.per_atom, self.atom_elements, strict=True) if e == el]
            )
            vals = vals[np.isfinite(vals)]
            out[el] = float(vals.mean()) if vals.size else float("nan")
        return out

    def mean(self) -> float:
        """Mean over elements (each element once, so four Ba atoms do not outvote one Hf)."""
        vals = np.array([v for v in self.per_element().values() if np.isfinite(v)])
        return float(vals.mean()) if vals.size else float("nan")


def grounding(weights: Any, tokens: Sequence[str], mask: Any, elements: Sequence[str]) -> Grounding:
    """Grounding of every atom from its weights over tokens: [N, L], or [H, N, L] (heads are
    averaged). Weights are attention or non-negative attribution."""
    W = np.asarray(weights, dtype=np.float64)
    if W.ndim == 3:
        W = W.mean(axis=0)
    if W.ndim != 2 or W.shape[1] != len(tokens) or W.shape[0] != len(elements):
        raise ValueError(
            f"weights {np.shape(weights)} do not match {len(elements)} atoms x {len(tokens)} tokens"
        )
    names, cell = naming_matrix(tokens, mask, elements)
    per_el = W @ names  # [N, E]: weight on tokens naming each element
    column = {el: k for k, el in enumerate(cell)}
    own = np.array([per_el[i, column[str(e)]] for i, e in enumerate(elements)])
    total = per_el.sum(axis=1)
    weight = W.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), 0.0)
        defined = (total > 0) & (share >= MIN_ELEMENT_SHARE)
        g = np.where(defined, own / np.where(total > 0, total, 1.0), np.nan)
    mentions = names.sum(axis=0)
    named = tuple(el for el, m in zip(cell, mentions, strict=True) if m > 0)
    if not named:
        g = np.full(len(elements), np.nan)
    all_mentions = float(mentions.sum())
    text_share = {
        el: (float(m) / all_mentions if all_mentions else float("nan"))
        for el, m in zip(cell, mentions, strict=True)
    }
    return Grounding(
        g.astype(np.float32),
        cell,
        tuple(map(str, elements)),
        text_share,
        named,
        share.astype(np.float32),
    )


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def grounding_json(
    by_attention: Grounding | None, by_attribution: Grounding | None, labels: Sequence[str]
) -> dict[str, Any]:
    """The report's ``grounding`` section: per atom, per element and mean, from attention and
    from attribution; ``note`` says when the text names no element of the cell."""
    ref = by_attention or by_attribution
    if ref is None:
        return {"note": "no fine-grained attention: nothing to ground"}
    sources = {"attention": by_attention, "attribution": by_attribution}
    per_el = {k: (g.per_element() if g is not None else {}) for k, g in sources.items()}
    out: dict[str, Any] = {
        "named_elements": list(ref.named),
        "per_atom": [
            {
                "atom": label,
                "element": ref.atom_elements[i],
                **{k: (None if g is None else _num(g.per_atom[i])) for k, g in sources.items()},
                "element_share": None
                if ref.element_share is None
                else _num(float(ref.element_share[i])),
            }
            for i, label in enumerate(labels)
        ],
        "per_element": {
            el: {
                "attention": _num(per_el["attention"].get(el, float("nan"))),
                "attribution": _num(per_el["attribution"].get(el, float("nan"))),
                "text_share": _num(ref.text_share[el]),
            }
            for el in ref.elements
        },
        "mean": {k: (None if g is None else _num(g.mean())) for k, g in sources.items()},
    }
    if not ref.named:
        out["note"] = "the text names no element of this cell"
    return out
