"""Command line: ``fga-tui CKPT SAMPLE`` opens the TUI; subcommands run headless.

The headless commands (export, report, audit, scan, diff) never import Textual. Every user error
is an ``InputError``: one line on stderr, exit code 2, no traceback, nothing written.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from fga_tui import __version__
from fga_tui.io.errors import EXIT_BAD_INPUT, EXIT_FINDING, MAX_ATOMS, InputError

# click's UsageError, from wherever this typer takes click (recent typer vendors it).
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


class _Commands(TyperGroup):
    """Typer's command group, with usage errors (a non-integer --index, an unknown option, a
    missing argument) reported like every other bad input: one line and exit code 2."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as exc:
            typer.echo(f"fga-tui: {InputError(None, exc.format_message()).message}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None


app = typer.Typer(
    name="fga-tui",
    cls=_Commands,
    help="Inspect the fine-grained atom-token attention of multimodal ALIGNN crystal models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn InputError into one line on stderr and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"fga-tui: {exc.message}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            typer.echo("fga-tui: interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


# ---- shared options -------------------------------------------------------------------------
Ckpt = Annotated[
    Path, typer.Argument(help="Checkpoint (.pt): fork best_*_model.pt, ignite, or a state_dict.")
]
SamplePath = Annotated[
    Path, typer.Argument(help="Sample: JARVIS-style JSON, JSONL, POSCAR or CIF.")
]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")]
Tokens = Annotated[
    Path | None,
    typer.Option("--tokens", help="Precomputed token states (.npz: tokens, embeddings, mask)."),
]
TextModel = Annotated[
    Path | None,
    typer.Option(
        "--text-model",
        help="Local directory of a BERT-like encoder (MatSciBERT); env FGA_TUI_TEXT_MODEL.",
    ),
]
VocabMap = Annotated[
    Path | None,
    typer.Option(
        "--vocab-mappings",
        help="Character map applied before tokenising (the fork's vocab_mappings.txt).",
    ),
]
Trust = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Allow full unpickling (runs code from the file). Only for files you trust.",
    ),
]
FgaHeads = Annotated[
    int | None, typer.Option("--fga-heads", help="Fine-grained heads when the file has no config.")
]
CmHeads = Annotated[
    int | None, typer.Option("--cm-heads", help="Cross-modal heads when the file has no config.")
]
NoFusion = Annotated[bool, typer.Option("--no-fusion", help="Ablation: bypass middle fusion.")]
FgaFrom = Annotated[
    str | None,
    typer.Option("--fga-from", help="Ablation: feed the attention block from this stage."),
]
Index = Annotated[int, typer.Option("--index", help="Row of a JSONL/list sample file.")]
MaxAtoms = Annotated[int, typer.Option("--max-atoms", min=1, help="Refuse larger structures.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fga-tui {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """fga-tui: is it over-smoothing, an untrained attention block, fusion, or symmetry?"""


def _load(
    ckpt: Path,
    sample: Path,
    *,
    device: str,
    tokens: Path | None,
    text_model: Path | None,
    trust: bool,
    fga_heads: int | None,
    cm_heads: int | None,
    index: int,
    max_atoms: int,
    vocab_mappings: Path | None = None,
):
    from fga_tui import engine

    loaded = engine.load_model(
        ckpt, device=device, trust=trust, fga_heads=fga_heads, cm_heads=cm_heads
    )
    smp = engine.load_sample(sample, index=index, max_atoms=max_atoms)
    prepared = engine.prepare_sample(
        loaded, smp, tokens_path=tokens, text_model=text_model, vocab_mappings=vocab_mappings
    )
    return loaded, prepared


def _note(line: str) -> None:
    """A fallback the user should know about (a GPU out of memory), on stderr."""
    typer.echo(f"fga-tui: {line}", err=True)


def _check_paths(**paths: Path | None) -> None:
    """Each given path must exist (a file, except a sample, which may be a folder)."""
    for name, path in paths.items():
        if path is None:
            continue
        if not path.exists():
            raise InputError(path, "no such file or directory")
        if name != "sample" and path.is_dir():
            raise InputError(path, "is a directory, not a file")


@app.command()
@user_errors
def export(
    ckpt: Ckpt,
    sample: SamplePath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for trace.npz.")],
    device: Device = "auto",
    tokens: Tokens = None,
    text_model: TextModel = None,
    vocab_mappings: VocabMap = None,
    trust_checkpoint: Trust = False,
    fga_heads: FgaHeads = None,
    cm_heads: CmHeads = None,
    no_fusion: NoFusion = False,
    fga_from: FgaFrom = None,
    index: Index = 0,
    max_atoms: MaxAtoms = MAX_ATOMS,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing trace.npz.")
    ] = False,
) -> None:
    """Run one traced forward and write OUT/trace.npz (the trace contract)."""
    from fga_tui import engine
    from fga_tui.trace import Ablation

    target = out / "trace.npz"
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory")
    if target.exists() and not force:
        raise InputError(target, "already exists; pass --force to overwrite")
    loaded, prepared = _load(
        ckpt,
        sample,
        device=device,
        tokens=tokens,
        text_model=text_model,
        trust=trust_checkpoint,
        fga_heads=fga_heads,
        cm_heads=cm_heads,
        index=index,
        max_atoms=max_atoms,
        vocab_mappings=vocab_mappings,
    )
    from fga_tui.oom import retry_on_cpu

    ablation = Ablation(no_fusion=no_fusion, fga_from=fga_from)

    def traced(m: Any) -> Any:
        trace = engine.run_trace(m, prepared, ablation)
        if trace.has_attention:  # attr.atom_to_text, attr.tokens, grounding
            att = engine.run_attribution(m, prepared, ablation, trace=trace)
            trace = engine.with_attribution(trace, att)
        return trace

    trace, _ = retry_on_cpu(traced, loaded, _note)
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        trace.save_npz(target)
    except OSError as exc:
        for folder in created:  # a full disk must not leave an empty --out behind
            try:
                folder.rmdir()
            except OSError:
                break
        raise InputError(out, f"cannot write: {exc.strerror or exc}") from exc
    typer.echo(f"wrote {target} ({len(trace.stages)} stages, prediction {trace.prediction:.6g})")


Format = Annotated[str, typer.Option("--format", "-f", help="text | json | md")]
Baseline = Annotated[
    Path | None,
    typer.Option("--baseline", help="Init checkpoint: parameters equal to it are untrained."),
]
FailOn = Annotated[
    str | None,
    typer.Option(
        "--fail-on", help="Exit 1 when a verdict of this severity (error|warning) or worse."
    ),
]
Stopwords = Annotated[
    str | None,
    typer.Option(
        "--stopwords", help="Drop stopwords from top words: 'default' or a word-list file."
    ),
]


def _check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise InputError(option, f"{value!r} is not one of {', '.join(choices)}")


def _stopwords(spec: str | None) -> set[str] | None:
    if spec is None:
        return None
    from fga_tui.diagnostics.words import load_stopwords

    return set(load_stopwords(None if spec == "default" else spec))


def _fails(severities: list[str], fail_on: str | None) -> bool:
    if fail_on is None:
        return False
    from fga_tui.diagnostics.severity import Severity

    return any(Severity.of(s) >= Severity.of(fail_on) for s in severities)


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
@user_errors
def report(
    ckpt: Ckpt,
    sample: SamplePath,
    format: Format = "text",
    fail_on: FailOn = None,
    baseline: Baseline = None,
    stopwords: Stopwords = None,
    ablations: Annotated[
        bool, typer.Option("--ablations/--no-ablations", help="Run cause-separating ablations.")
    ] = True,
    device: Device = "auto",
    tokens: Tokens = None,
    text_model: TextModel = None,
    vocab_mappings: VocabMap = None,
    trust_checkpoint: Trust = False,
    fga_heads: FgaHeads = None,
    cm_heads: CmHeads = None,
    no_fusion: NoFusion = False,
    fga_from: FgaFrom = None,
    index: Index = 0,
    max_atoms: MaxAtoms = MAX_ATOMS,
) -> None:
    """Diagnose one sample: stage metrics, top words, verdicts (exit 1 with --fail-on)."""
    from fga_tui.diagnostics.audit import load_baseline
    from fga_tui.diagnostics.report import diagnose
    from fga_tui.trace import Ablation

    _check_choice("--format", format, ("text", "json", "md"))
    _check_choice("--fail-on", fail_on, ("error", "warning"))
    words = _stopwords(stopwords)
    loaded, prepared = _load(
        ckpt,
        sample,
        device=device,
        tokens=tokens,
        text_model=text_model,
        trust=trust_checkpoint,
        fga_heads=fga_heads,
        cm_heads=cm_heads,
        index=index,
        max_atoms=max_atoms,
        vocab_mappings=vocab_mappings,
    )
    base = load_baseline(str(baseline), trust=trust_checkpoint) if baseline else None
    from fga_tui.oom import retry_on_cpu

    result, _ = retry_on_cpu(
        lambda m: diagnose(
            m,
            prepared,
            ablation=Ablation(no_fusion=no_fusion, fga_from=fga_from),
            baseline=base,
            baseline_path=None if baseline is None else str(baseline),
            run_ablations=ablations,
            stopwords=words,
        ),
        loaded,
        _note,
    )
    rep = result.report
    if format == "json":
        _emit(json.dumps(rep.to_json(), indent=2))
    elif format == "md":
        _emit(rep.to_markdown())
    else:
        _emit(rep.to_text())
    if _fails([v.severity for v in rep.verdicts], fail_on):
        raise typer.Exit(EXIT_FINDING)


@app.command()
@user_errors
def audit(
    ckpt: Ckpt,
    baseline: Baseline = None,
    format: Format = "text",
    device: Device = "auto",
    trust_checkpoint: Trust = False,
    fga_heads: FgaHeads = None,
    cm_heads: CmHeads = None,
) -> None:
    """Audit a checkpoint: broken, untrained and gradient-free parameters (no sample needed)."""
    from fga_tui import engine
    from fga_tui.diagnostics.audit import audit_model, load_baseline

    _check_choice("--format", format, ("text", "json"))
    loaded = engine.load_model(
        ckpt, device=device, trust=trust_checkpoint, fga_heads=fga_heads, cm_heads=cm_heads
    )
    base = load_baseline(str(baseline), trust=trust_checkpoint) if baseline else None
    result = audit_model(loaded, base, baseline_path=None if baseline is None else str(baseline))
    if format == "json":
        out = result.to_json()
        out["config"] = loaded.info.to_json(loaded.config)
        _emit(json.dumps(out, indent=2))
    else:
        _emit(result.to_text())


@app.command()
@user_errors
def diff(
    ckpt_a: Annotated[Path, typer.Argument(help="Checkpoint A (before).")],
    ckpt_b: Annotated[Path, typer.Argument(help="Checkpoint B (after).")],
    sample: SamplePath,
    format: Format = "text",
    device: Device = "auto",
    tokens: Tokens = None,
    text_model: TextModel = None,
    vocab_mappings: VocabMap = None,
    trust_checkpoint: Trust = False,
    fga_heads: FgaHeads = None,
    cm_heads: CmHeads = None,
    stopwords: Stopwords = None,
    index: Index = 0,
    max_atoms: MaxAtoms = MAX_ATOMS,
) -> None:
    """Two checkpoints' reports on one sample, side by side (before/after a fix)."""
    from fga_tui import engine
    from fga_tui.diagnostics.diff import diff_json, diff_markdown, diff_text
    from fga_tui.diagnostics.report import diagnose

    _check_choice("--format", format, ("text", "json", "md"))
    words = _stopwords(stopwords)
    smp = engine.load_sample(sample, index=index, max_atoms=max_atoms)
    reports = []
    graph = None  # the crystal graph depends on the sample only: build it once
    for ckpt in (ckpt_a, ckpt_b):
        loaded = engine.load_model(
            ckpt, device=device, trust=trust_checkpoint, fga_heads=fga_heads, cm_heads=cm_heads
        )
        prepared = engine.prepare_sample(
            loaded,
            smp,
            tokens_path=tokens,
            text_model=text_model,
            vocab_mappings=vocab_mappings,
            graph=graph,
        )
        graph = prepared.graph
        reports.append(diagnose(loaded, prepared, stopwords=words).report)
    a, b = reports
    if format == "json":
        _emit(json.dumps(diff_json(a, b), indent=2))
    elif format == "md":
        _emit(diff_markdown(a, b))
    else:
        _emit(diff_text(a, b))


@app.command()
@user_errors
def scan(
    ckpt: Ckpt,
    data: Annotated[
        Path,
        typer.Argument(
            help="JSONL file, folder of JSON samples, or description.csv + cif/ folder."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Per-sample results (JSONL). Default: no file."),
    ] = None,
    format: Format = "text",
    fail_on: FailOn = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Samples per forward.")
    ] = 16,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Graph-building processes (0: auto).")
    ] = 0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N rows.")
    ] = None,
    ablations: Annotated[
        bool, typer.Option("--ablations/--no-ablations", help="Also run the no-fusion ablation.")
    ] = False,
    attribution: Annotated[
        bool,
        typer.Option(
            "--attribution", help="Text reliance per sample (no-text, deletions; ~3x slower)."
        ),
    ] = False,
    stopwords: Stopwords = None,
    device: Device = "auto",
    tokens: Tokens = None,
    text_model: TextModel = None,
    vocab_mappings: VocabMap = None,
    trust_checkpoint: Trust = False,
    fga_heads: FgaHeads = None,
    cm_heads: CmHeads = None,
    max_atoms: MaxAtoms = MAX_ATOMS,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --out file.")
    ] = False,
) -> None:
    """Diagnose every sample of a dataset: per-sample JSONL and a summary with a histogram."""
    import io

    from fga_tui import engine
    from fga_tui.scan import scan as run_scan

    _check_choice("--format", format, ("text", "json"))
    _check_choice("--fail-on", fail_on, ("error", "warning"))
    if out is not None and out.exists() and not force:
        raise InputError(out, "already exists; pass --force to overwrite")
    if out is not None:
        # Checked before the scan, which can take hours, rather than when writing its rows.
        if out.is_dir():
            raise InputError(out, "is a directory")
        if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
            raise InputError(out, f"cannot write: {out.parent} is not a writable folder")
    if not data.exists():
        raise InputError(data, "no such file or directory")
    loaded = engine.load_model(
        ckpt, device=device, trust=trust_checkpoint, fga_heads=fga_heads, cm_heads=cm_heads
    )
    buffer = io.StringIO()
    summary = run_scan(
        loaded,
        data,
        out=buffer,
        batch_size=batch_size,
        workers=workers,
        limit=limit,
        tokens_path=tokens,
        text_model=text_model,
        vocab_mappings=vocab_mappings,
        ablations=ablations,
        stopwords=_stopwords(stopwords),
        max_atoms=max_atoms,
        attribution=attribution,
    )
    if out is not None:
        from fga_tui.io.atomic import atomic_write_text

        try:
            atomic_write_text(out, buffer.getvalue())
        except OSError as exc:
            raise InputError(out, f"cannot write: {exc.strerror or exc}") from exc
    if format == "json":
        _emit(json.dumps(summary.to_json(), indent=2))
    else:
        _emit(summary.to_text())
    if fail_on is not None and summary.ok:
        severities = [s for s, n in summary.worst.items() if n]
        if _fails(severities, fail_on):
            raise typer.Exit(EXIT_FINDING)


@app.command("open")
@user_errors
def open_(
    ckpt: Ckpt,
    sample: SamplePath,
    baseline: Baseline = None,
    device: Device = "auto",
    tokens: Tokens = None,
    text_model: TextModel = None,
    trust_checkpoint: Trust = False,
    fga_heads: FgaHeads = None,
    cm_heads: CmHeads = None,
    no_fusion: NoFusion = False,
    fga_from: FgaFrom = None,
    index: Index = 0,
    max_atoms: MaxAtoms = MAX_ATOMS,
    snapshot_dir: Annotated[
        Path,
        typer.Option("--snapshot-dir", help="Where `s` writes snapshot directories."),
    ] = Path("fga-snapshots"),
    theme: Annotated[
        str | None,
        typer.Option("--theme", help="Textual theme, e.g. ansi-dark over plain SSH terminals."),
    ] = None,
    ablations: Annotated[
        bool, typer.Option("--ablations/--no-ablations", help="Run cause-separating ablations.")
    ] = True,
) -> None:
    """Open the interactive inspector (the default command: `fga-tui CKPT SAMPLE`)."""
    # Obvious mistakes fail here, before the screen switches; problems inside the files are
    # found by the worker and shown in the app.
    _check_paths(ckpt=ckpt, sample=sample, tokens=tokens, baseline=baseline)
    if text_model is not None and not text_model.is_dir():
        raise InputError(text_model, "text model directory does not exist")
    if snapshot_dir.exists() and not snapshot_dir.is_dir():
        raise InputError(snapshot_dir, "exists and is not a directory")
    from fga_tui.trace import Ablation
    from fga_tui.tui.app import FgaApp
    from fga_tui.tui.session import SessionOptions

    options = SessionOptions(
        checkpoint=ckpt,
        sample=sample,
        index=index,
        device=device,
        tokens=tokens,
        text_model=text_model,
        trust=trust_checkpoint,
        fga_heads=fga_heads,
        cm_heads=cm_heads,
        baseline=baseline,
        max_atoms=max_atoms,
        run_ablations=ablations,
        snapshot_dir=snapshot_dir,
        ablation=Ablation(no_fusion=no_fusion, fga_from=fga_from),
    )
    tui = FgaApp(options, theme=theme)
    try:
        tui.run()
    finally:
        tui.session.close()  # the engine's child process: asked to quit, killed if it lingers
    code = tui.return_code or 0  # 128 + signal after SIGTERM/SIGHUP/SIGINT
    from fga_tui.tui.session import running_steps

    if running_steps():
        # Quit mid-trace: an abandoned engine step is still inside torch. Finalising the
        # interpreter would kill it there and abort the process; leave at once instead.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        raise typer.Exit(code)


@app.command()
@user_errors
def demo(
    fixed: Annotated[
        bool,
        typer.Option("--fixed", help="The checkpoint retrained with the remedy (diversity loss)."),
    ] = False,
    device: Device = "auto",
    snapshot_dir: Annotated[
        Path,
        typer.Option("--snapshot-dir", help="Where `s` writes snapshot directories."),
    ] = Path("fga-snapshots"),
    theme: Annotated[
        str | None,
        typer.Option("--theme", help="Textual theme, e.g. ansi-dark over plain SSH terminals."),
    ] = None,
) -> None:
    """Open the inspector offline on the bundled demo: a Ba4HfLi cell whose atoms all show the
    same top words (--fixed: the same data trained with the attention-diversity remedy)."""
    from importlib import resources

    demo_dir = Path(str(resources.files("fga_tui").joinpath("data/demo")))
    ckpt = demo_dir / ("demo_fixed.pt" if fixed else "demo_problem.pt")
    sample = demo_dir / "ba4hfli.json"
    for path in (ckpt, sample):
        if not path.is_file():
            raise InputError(path, "bundled demo file missing (examples/train_demo.py --install)")
    open_(ckpt, sample, device=device, snapshot_dir=snapshot_dir, theme=theme)


SUBCOMMANDS = frozenset({"export", "report", "audit", "scan", "diff", "demo", "open"})


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``fga-tui CKPT SAMPLE`` means ``fga-tui open CKPT SAMPLE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in SUBCOMMANDS and not args[0].startswith("-"):
        args.insert(0, "open")
    app(args=args, prog_name="fga-tui")
