"""Shared fixtures: paths to the research fork's real checkpoint and sample (tests/fixtures)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from unprivileged import shared_tmp

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


@pytest.fixture
def nobody_tmp() -> Iterator[Path]:
    """``shared_tmp`` as a fixture (skipped where the fork/setuid route is impossible)."""
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork to run a child as another user")
    with shared_tmp() as root:
        yield root
