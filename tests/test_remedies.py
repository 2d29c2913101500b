"""The numbered remedies are defined once and the README lists the same numbers and names."""

from __future__ import annotations

import re
from pathlib import Path

from fga_tui.diagnostics.remedies import REMEDIES, ref, remedies_text, remedy

README = Path(__file__).parents[1] / "README.md"


def test_remedies_are_numbered_from_one_without_gaps():
    assert [r.number for r in REMEDIES] == list(range(1, len(REMEDIES) + 1))
    assert len({r.name for r in REMEDIES}) == len(REMEDIES)


def test_a_reference_names_the_number_and_the_name():
    assert ref(2) == "remedy 2 (fewer layers before the attention)"
    assert remedy(4).name == "attention-diversity training"


def test_the_readme_lists_every_remedy_with_its_number_and_name():
    text = README.read_text(encoding="utf-8")
    listed = dict(re.findall(r"^(\d+)\. \*\*([^*]+)\*\*:", text, flags=re.M))
    assert listed == {str(r.number): r.name for r in REMEDIES}


def test_help_text_explains_each_remedy_once():
    text = remedies_text()
    for r in REMEDIES:
        assert text.count(f"{r.number}. {r.name}:") == 1
        assert r.check in text


def test_verdict_remedies_refer_to_the_numbered_list():
    from fga_tui.diagnostics.evidence import REMEDIES as BY_CODE

    assert ref(1) in BY_CODE["FUSION_HOMOGENIZES"]
    assert ref(2) in BY_CODE["OVERSMOOTHING"].lower() and ref(3) in BY_CODE["OVERSMOOTHING"]
    assert ref(4) in BY_CODE["SHARED_QUERY_DOMINATES"]
    assert ref(5) in BY_CODE["ATTENTION_UNTRAINED"].lower()
    assert ref(6) in BY_CODE["FGA_MISSING"].lower()
