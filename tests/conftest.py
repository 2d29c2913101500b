"""Shared fixtures: paths to the research fork's real checkpoint and sample (tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def fork_ckpt() -> Path:
    return FIXTURES / "fork_ckpt.pt"


@pytest.fixture(scope="session")
def nacl_json() -> Path:
    return FIXTURES / "nacl.json"


@pytest.fixture(scope="session")
def nacl_tokens() -> Path:
    return FIXTURES / "nacl.tokens.npz"


@pytest.fixture(scope="session")
def expected() -> dict:
    import numpy as np

    with np.load(FIXTURES / "nacl.expected.npz") as data:
        return {k: data[k] for k in data.files}
