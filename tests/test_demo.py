"""The bundled demo: checkpoints that show the bug and its remedy, the sample, the generator."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fga_tui import cli, engine
from fga_tui.diagnostics.report import diagnose
from fga_tui.text.demo_encoder import DemoTextEncoder, packaged_dir, tokenize

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DEMO = packaged_dir()
PROBLEM, FIXED = DEMO / "demo_problem.pt", DEMO / "demo_fixed.pt"
SAMPLE = DEMO / "ba4hfli.json"
ATOMS = ("Ba_0", "Hf_4", "Li_5")  # one atom of each symmetry orbit

needs_demo = pytest.mark.skipif(
    not (PROBLEM.exists() and FIXED.exists() and SAMPLE.exists()),
    reason="demo files not built (python examples/train_demo.py --install)",
)


def _example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (a script folder, not a package)."""
    key = f"fga_tui_examples_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.fixture(scope="module")
def reports() -> dict:
    torch.set_num_threads(1)
    out = {}
    for name, path in (("problem", PROBLEM), ("fixed", FIXED)):
        loaded = engine.load_model(path, device="cpu")
        prepared = engine.prepare_sample(loaded, engine.load_sample(SAMPLE))
        out[name] = diagnose(loaded, prepared).report
    return out


def _top5(report, atom: str) -> list[str]:
    entry = next(t for t in report.top_words if t["atom"] == atom)
    return [w for w, _ in entry["words"][:5]]


@needs_demo
@pytest.mark.parametrize("path", [PROBLEM, FIXED], ids=["problem", "fixed"])
def test_demo_checkpoints_are_small_plain_dicts_that_the_engine_loads(path: Path) -> None:
    assert path.stat().st_size <= 5 * 1024 * 1024
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no pickled objects
    assert set(raw) == {"model", "config", "epoch", "val_mae"}
    assert raw["config"]["multimodal"] is True
    loaded = engine.load_model(path, device="cpu")
    assert loaded.config.use_fine_grained_attention and loaded.config.text_hidden_dim == 64
    assert loaded.config.inferred == ()


@needs_demo
def test_demo_sample_has_the_ba4hfli_orbits_and_its_own_token_states() -> None:
    from fga_tui.structure.symmetry import analyse_symmetry

    sample = engine.load_sample(SAMPLE)
    assert sample.labels == ["Ba_0", "Ba_1", "Ba_2", "Ba_3", "Hf_4", "Li_5"]
    assert analyse_symmetry(sample.structure).orbits == [[0, 1, 2, 3], [4], [5]]
    assert sample.tokens is not None and sample.tokens.embeddings.shape[1] == 64
    assert sample.tokens.tokens[0] == "[CLS]" and sample.tokens.tokens[-1] == "[SEP]"


@needs_demo
def test_demo_encoder_reproduces_the_packaged_token_states() -> None:
    sample = engine.load_sample(SAMPLE)
    states = DemoTextEncoder.load().encode(sample.text)
    assert states.tokens == sample.tokens.tokens
    np.testing.assert_allclose(states.embeddings, sample.tokens.embeddings, atol=1e-5)


@needs_demo
def test_problem_checkpoint_gives_every_orbit_the_same_top_words(reports) -> None:
    # The bug as users saw it: the same heaviest word and the same five words for every atom
    # (their order can differ by a few thousandths of attention weight).
    top = {atom: _top5(reports["problem"], atom) for atom in ATOMS}
    assert len({words[0] for words in top.values()}) == 1, top
    assert len({frozenset(words) for words in top.values()}) == 1, top


@needs_demo
def test_problem_checkpoint_gets_an_error_verdict_naming_the_cause(reports) -> None:
    errors = [v for v in reports["problem"].verdicts if v.severity == "error"]
    assert "SHARED_QUERY_DOMINATES" in [v.code for v in errors]
    assert "HEALTHY" not in reports["problem"].codes


@needs_demo
def test_fixed_checkpoint_is_healthy_and_no_two_elements_read_the_same_words(reports) -> None:
    fixed = reports["fixed"]
    assert fixed.verdicts[0].code == "HEALTHY"
    assert not [v for v in fixed.verdicts if v.severity == "error"]
    assert fixed.verdicts[0].evidence["closest_group_jsd"] >= 0.5
    top = {atom: _top5(fixed, atom) for atom in ATOMS}
    # Each element's heaviest word differs, and the ranked lists share at most 2 of 5.
    assert len({words[0] for words in top.values()}) == 3, top
    for a, b in (("Ba_0", "Hf_4"), ("Ba_0", "Li_5"), ("Hf_4", "Li_5")):
        assert len(set(top[a]) & set(top[b])) <= 2, top
    jsd = {name: r.attention["cross_orbit_jsd"] for name, r in reports.items()}
    assert jsd["fixed"] > 10 * jsd["problem"]
    assert "HEALTHY" not in reports["problem"].codes


def test_dataset_generator_is_deterministic() -> None:
    make_dataset = _example("make_dataset")
    first = make_dataset.generate(18, seed=3)
    assert first == make_dataset.generate(18, seed=3)
    assert first != make_dataset.generate(18, seed=4)
    spacegroups = {t for row in first for t in tokenize(row["text"]) if "-" in t or "/" in t}
    assert {"fm-3m", "pm-3m", "f-43m", "p-43m", "p4_2/mnm"} <= spacegroups


def test_dataset_rows_load_as_samples_with_the_designed_orbits(tmp_path: Path) -> None:
    from fga_tui.structure.symmetry import analyse_symmetry

    make_dataset = _example("make_dataset")
    rows = make_dataset.generate(9, seed=0)
    path = make_dataset.write_jsonl(rows, tmp_path / "demo.jsonl")
    for i, row in enumerate(rows):
        assert set(row) == {"jid", "atoms", "text", "target"}
        assert set(row["atoms"]) >= {"lattice_mat", "coords", "elements", "cartesian", "abc"}
        sample = engine.load_sample(path, index=i)
        assert sample.target == pytest.approx(row["target"])
    a4bc = json.loads(path.read_text().splitlines()[8])
    assert "P-43m" in a4bc["text"]
    sample = engine.load_sample(path, index=8)
    assert analyse_symmetry(sample.structure).orbits == [[0, 1, 2, 3], [4], [5]]


def test_train_demo_quick_runs_end_to_end(tmp_path: Path) -> None:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_demo.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("demo_problem.pt", "demo_fixed.pt", "ba4hfli.json", "ba4hfli.tokens.npz"):
        assert (tmp_path / name).is_file()
    assert "demo_fixed: cross-orbit JSD" in done.stdout
    assert elapsed < 30, f"--quick took {elapsed:.1f} s"


@needs_demo
@pytest.mark.parametrize(("args", "ckpt"), [([], PROBLEM), (["--fixed"], FIXED)])
def test_demo_command_opens_the_packaged_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], ckpt: Path
) -> None:
    calls = []
    monkeypatch.setattr(cli, "open_", lambda *a, **kw: calls.append((a, kw)))
    result = CliRunner().invoke(cli.app, ["demo", *args, "--snapshot-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    ((positional, options),) = calls
    assert positional == (ckpt, SAMPLE)
    assert options["snapshot_dir"] == tmp_path
