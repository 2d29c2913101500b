"""Shared setup of the TUI tests: a primed session on the 6-atom Ba4HfLi-like cell, waiting
for the app to settle, and a synthetic many-atom view (no torch)."""

from __future__ import annotations

import time
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def prime(session) -> None:
    """Compute the initial view synchronously so apps start from the session's cache."""
    from fga_tui.tui.messages import ViewReady

    posted: list = []
    session.compute(
        session.next_generation(), session.initial_request(), posted.append, lambda: False
    )
    assert any(isinstance(m, ViewReady) for m in posted), posted


def ba4hfli_options(folder: Path, device: str = "cpu"):
    """Session options on the fork fixture checkpoint and the 6-atom cell written in ``folder``."""
    from fga_tui.tui.session import SessionOptions
    from fga_tui.tui.synthetic import ba4hfli

    sample, tokens = ba4hfli(folder)
    return SessionOptions(
        FIXTURES / "fork_ckpt.pt",
        sample,
        tokens=tokens,
        device=device,
        snapshot_dir=folder / "snaps",
    )


def ba4hfli_session(folder: Path, device: str = "cpu"):
    """A primed in-process session on the fork fixture checkpoint and the 6-atom cell."""
    from fga_tui.tui.session import Session

    session = Session(ba4hfli_options(folder, device))
    prime(session)
    return session


async def ready(pilot, timeout: float = 60.0, settle: float = 0.0) -> None:
    """Wait until the app shows a view and is not busy (or shows an error)."""
    app = pilot.app
    start = time.monotonic()
    while (app.view is None or app.busy) and time.monotonic() - start < timeout:
        if app.error:
            break
        await pilot.pause(0.05)
    await pilot.pause(settle or None)


def synthetic_view(n: int):
    """A view of ``n`` atoms (Li, Ba, Ba, Ba repeated, no symmetry) with random features and
    attention, built without the model."""
    import numpy as np

    from fga_tui.diagnostics.similarity import stage_metrics
    from fga_tui.trace import Trace
    from fga_tui.tui.view import build_view

    rng = np.random.default_rng(0)
    stages = ("embed", "alignn.0", "gcn.0", "fga")
    elements = tuple(["Li", "Ba", "Ba", "Ba"] * (n // 4))
    feats = {s: rng.standard_normal((n, 16)).astype(np.float32) for s in stages}
    tokens = ("[CLS]", "ba", "li", "cubic", "[SEP]")
    att = rng.dirichlet(np.ones(len(tokens)), size=(2, n)).astype(np.float32)
    trace = Trace(
        stages=stages,
        features=feats,
        elements=elements,
        prediction=0.5,
        tokens=tokens,
        token_mask=np.ones(len(tokens), bool),
        atom_to_text=att,
        counterfactual={s: att for s in stages[:-1]},
    )
    edges = np.arange(n)
    metrics = {s: stage_metrics(s, feats[s], edges, np.roll(edges, 1)) for s in stages}
    return build_view(
        trace,
        metrics=metrics,
        orbits=[[i] for i in range(n)],
        wyckoffs=None,
        spacegroup="P1",
        coordination=None,
        verdicts=[],
        audit_lines=[],
        meta={"sample_path": "big.json", "device": "cpu"},
    )
