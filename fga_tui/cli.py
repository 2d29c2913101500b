"""Command line: ``fga-tui CKPT SAMPLE`` opens the TUI; subcommands run headless.

The headless commands (export, report, audit, scan, diff) never import Textual. Every user error
is an ``InputError``: one line on stderr, exit code 2, no traceback, nothing written.

The options several commands share (model, text, stopwords, interventions, sample row, and the
inspector's theme and snapshot folder) are declared once, in ``SHARED``, and reach each command
as one ``RunOptions`` (``fga_tui.options``) built by ``shared_options``; a command names the
groups it takes and cannot declare one of them differently.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from fga_tui import __version__
from fga_tui.diagnostics.severity import Severity
from fga_tui.io.errors import EXIT_BAD_INPUT, EXIT_FINDING, InputError
from fga_tui.io.errors import MAX_ATOMS as DEFAULT_MAX_ATOMS
from fga_tui.options import RunOptions

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
    # Plain click help: option names are never truncated, and it reads at 80 columns.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
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


# ---- arguments ------------------------------------------------------------------------------
Ckpt = Annotated[
    Path, typer.Argument(help="Checkpoint (.pt): fork best_*_model.pt, ignite, or a state_dict.")
]
SamplePath = Annotated[
    Path, typer.Argument(help="Sample: JARVIS-style JSON, JSONL, POSCAR or CIF.")
]


# ---- the shared options, declared once ------------------------------------------------------
@dataclass(frozen=True)
class _Opt:
    """One shared option: its parameter name, typer annotation and default."""

    name: str
    annotation: Any
    default: Any


MODEL = (
    _Opt(
        "device",
        Annotated[
            str | None,
            typer.Option("--device", help="auto | cpu | cuda | cuda:N (default: settings, auto)."),
        ],
        None,
    ),
    _Opt(
        "trust_checkpoint",
        Annotated[
            bool,
            typer.Option(
                "--trust-checkpoint",
                help="Allow full unpickling (runs code from the file). Only for files you trust.",
            ),
        ],
        False,
    ),
    _Opt(
        "fga_heads",
        Annotated[
            int | None,
            typer.Option("--fga-heads", help="Fine-grained heads when the file has no config."),
        ],
        None,
    ),
    _Opt(
        "cm_heads",
        Annotated[
            int | None,
            typer.Option("--cm-heads", help="Cross-modal heads when the file has no config."),
        ],
        None,
    ),
)
TEXT = (
    _Opt(
        "tokens",
        Annotated[
            Path | None,
            typer.Option(
                "--tokens", help="Precomputed token states (.npz: tokens, embeddings, mask)."
            ),
        ],
        None,
    ),
    _Opt(
        "text_model",
        Annotated[
            Path | None,
            typer.Option(
                "--text-model",
                help="Local directory of a BERT-like encoder (MatSciBERT), or 'demo' for the "
                "bundled demo encoder; env FGA_TUI_TEXT_MODEL.",
            ),
        ],
        None,
    ),
    _Opt(
        "vocab_mappings",
        Annotated[
            Path | None,
            typer.Option(
                "--vocab-mappings",
                help="Character map applied before tokenising (the fork's vocab_mappings.txt).",
            ),
        ],
        None,
    ),
)
WORDS = (
    _Opt(
        "stopwords",
        Annotated[
            str | None,
            typer.Option(
                "--stopwords",
                help="Drop stopwords from top words: 'default' or a word-list file.",
            ),
        ],
        None,
    ),
)
INTERVENE = (
    _Opt(
        "intervene",
        Annotated[
            list[str] | None,
            typer.Option(
                "--intervene",
                metavar="SPEC",
                help="Intervention (repeatable): no-fusion | fga-from=STAGE | "
                "mean-ablate=STAGE | patch=STAGE:DST<-SRC | no-text.",
            ),
        ],
        None,
    ),
    _Opt(
        "no_fusion",
        Annotated[bool, typer.Option("--no-fusion", help="Same as --intervene no-fusion.")],
        False,
    ),
    _Opt(
        "fga_from",
        Annotated[
            str | None,
            typer.Option("--fga-from", metavar="STAGE", help="Same as --intervene fga-from=STAGE."),
        ],
        None,
    ),
)
INDEX = (
    _Opt(
        "index",
        Annotated[int, typer.Option("--index", help="Row of a JSONL/list sample file.")],
        0,
    ),
)
MAX_ATOMS = (
    _Opt(
        "max_atoms",
        Annotated[int, typer.Option("--max-atoms", min=1, help="Refuse larger structures.")],
        DEFAULT_MAX_ATOMS,
    ),
)
VIEW = (
    _Opt(
        "snapshot_dir",
        Annotated[
            Path | None,
            typer.Option(
                "--snapshot-dir",
                help="Where `s` writes snapshots (default: settings, ./fga-snapshots).",
            ),
        ],
        None,
    ),
    _Opt(
        "theme",
        Annotated[
            str | None,
            typer.Option(
                "--theme",
                help="Textual theme, e.g. ansi-dark over plain SSH (default: the last one "
                "chosen with t).",
            ),
        ],
        None,
    ),
)
SAMPLE = (*TEXT, *WORDS, *INTERVENE, *INDEX, *MAX_ATOMS)
#: Every shared option, by group (the TUI session takes all of them).
SHARED = (*MODEL, *SAMPLE, *VIEW)


@dataclass(frozen=True)
class ViewOptions:
    """The inspector's own options, resolved against the settings file (flags win)."""

    snapshot_dir: Path
    theme: str | None
    settings_path: Path | None


def _run_options(values: dict[str, Any]) -> RunOptions:
    """One ``RunOptions`` from the shared options' values; bad values fail here, before work."""
    from fga_tui.interventions import Interventions
    from fga_tui.settings import check_device, load_settings

    device = values.get("device")
    if device is None:
        device = load_settings().device or "auto"
    else:
        check_device("--device", device)
    fga_from = values.get("fga_from")
    opts = RunOptions(
        device=device,
        trust=values.get("trust_checkpoint", False),
        fga_heads=values.get("fga_heads"),
        cm_heads=values.get("cm_heads"),
        tokens=values.get("tokens"),
        text_model=values.get("text_model"),
        vocab_mappings=values.get("vocab_mappings"),
        stopwords=values.get("stopwords"),
        interventions=Interventions.parse(
            values.get("intervene") or (),
            no_fusion=values.get("no_fusion", False),
            fga_from=None if fga_from is None else fga_from.strip(),
        ),
        index=values.get("index", 0),
        max_atoms=values.get("max_atoms", DEFAULT_MAX_ATOMS),
    )
    for what, path in (("token file", opts.tokens), ("vocab mappings file", opts.vocab_mappings)):
        if path is not None and not path.exists():
            raise InputError(path, f"{what} does not exist")
    if opts.text_model is not None:
        from fga_tui.text.encoders import check_text_model

        check_text_model(opts.text_model)
    opts.stopword_set()  # a missing word list fails now, not after the model has loaded
    return opts


def _view_options(values: dict[str, Any]) -> ViewOptions:
    from fga_tui.settings import config_path, load_settings

    path = config_path()
    settings = load_settings(path)
    snapshot_dir = values.get("snapshot_dir") or settings.snapshot_dir or Path("fga-snapshots")
    if snapshot_dir.exists() and not snapshot_dir.is_dir():
        raise InputError(snapshot_dir, "exists and is not a directory")
    theme = values.get("theme")
    if theme is not None:
        _check_theme("--theme", theme)
    elif settings.theme is not None:
        theme = _check_theme(path, settings.theme)
    return ViewOptions(snapshot_dir=snapshot_dir, theme=theme, settings_path=path)


def _check_theme(where: str | Path, theme: str) -> str:
    from fga_tui.tui.themes import theme_names

    names = theme_names()
    if theme not in names:
        raise InputError(where, f"theme {theme!r} is not one of {', '.join(names)}")
    return theme


def shared_options(*groups: tuple[_Opt, ...]) -> Callable[[F], F]:
    """Add the shared options of ``groups`` to a command; it receives them as ``opts``
    (a ``RunOptions``) and, when it has a ``view`` parameter and takes ``VIEW``, ``view``."""
    declared = [opt for group in groups for opt in group]

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in ("opts", "view")]
        names = {p.name for p in own}
        clash = names & {o.name for o in declared}
        if clash:
            raise TypeError(f"{func.__name__} declares shared options again: {sorted(clash)}")
        extra = [
            inspect.Parameter(
                o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation
            )
            for o in declared
        ]
        wants_view = "view" in signature.parameters

        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {o.name: kwargs.pop(o.name, o.default) for o in declared}
            kwargs["opts"] = _run_options(values)
            if wants_view:
                kwargs["view"] = _view_options(values)
            return func(*args, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {
            **{k: v for k, v in func.__annotations__.items() if k not in ("opts", "view")},
            **{o.name: o.annotation for o in declared},
        }
        return wrapper  # type: ignore[return-value]

    return decorate


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


def _load(ckpt: Path, sample: Path, opts: RunOptions):
    from fga_tui import engine

    loaded = engine.load_model(ckpt, **opts.load_kwargs())
    smp = engine.load_sample(sample, index=opts.index, max_atoms=opts.max_atoms)
    prepared = engine.prepare_sample(loaded, smp, **opts.text_kwargs())
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
@shared_options(MODEL, TEXT, INTERVENE, INDEX, MAX_ATOMS)
def export(
    ckpt: Ckpt,
    sample: SamplePath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for trace.npz.")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing trace.npz.")
    ] = False,
    *,
    opts: RunOptions,
) -> None:
    """Run one traced forward and write OUT/trace.npz (the trace contract)."""
    from fga_tui import engine

    target = out / "trace.npz"
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory")
    if target.exists() and not force:
        raise InputError(target, "already exists; pass --force to overwrite")
    from fga_tui.oom import retry_on_cpu

    loaded, prepared = _load(ckpt, sample, opts)

    def traced(m: Any) -> Any:
        trace = engine.run_trace(m, prepared, opts.interventions)
        if trace.has_attention:  # attr.atom_to_text, attr.tokens, grounding
            att = engine.run_attribution(m, prepared, opts.interventions, trace=trace)
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
Ablations = Annotated[
    bool, typer.Option("--ablations/--no-ablations", help="Run cause-separating ablations.")
]


def _check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise InputError(option, f"{value!r} is not one of {', '.join(choices)}")


def _fails(severities: list[str], fail_on: str | None) -> bool:
    if fail_on is None:
        return False
    return any(Severity.of(s) >= Severity.of(fail_on) for s in severities)


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
@user_errors
@shared_options(MODEL, SAMPLE)
def report(
    ckpt: Ckpt,
    sample: SamplePath,
    format: Format = "text",
    fail_on: FailOn = None,
    baseline: Baseline = None,
    ablations: Ablations = True,
    *,
    opts: RunOptions,
) -> None:
    """Diagnose one sample: stage metrics, top words, verdicts (exit 1 with --fail-on)."""
    from fga_tui.diagnostics.audit import load_baseline
    from fga_tui.diagnostics.report import diagnose

    _check_choice("--format", format, ("text", "json", "md"))
    _check_choice("--fail-on", fail_on, ("error", "warning"))
    _check_paths(baseline=baseline)
    loaded, prepared = _load(ckpt, sample, opts)
    base = load_baseline(str(baseline), trust=opts.trust) if baseline else None
    from fga_tui.oom import retry_on_cpu

    result, _ = retry_on_cpu(
        lambda m: diagnose(
            m,
            prepared,
            ablation=opts.interventions,
            baseline=base,
            baseline_path=None if baseline is None else str(baseline),
            run_ablations=ablations,
            stopwords=opts.stopword_set(),
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


def audit_counts(findings: list[Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(count per severity, worst first; count per kind, most first) of audit findings."""
    by_severity: dict[str, int] = {}
    for s in Severity.descending():
        n = sum(1 for f in findings if Severity.of(f.severity) == s)
        if n:
            by_severity[s.value] = n
    by_kind: dict[str, int] = {}
    for f in findings:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    return by_severity, dict(sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0])))


def audit_summary(findings: list[Any]) -> str:
    """One line: ``22 findings: 2 error, 20 info · by kind: untrained 12, …``."""
    if not findings:
        return "0 findings"
    by_severity, by_kind = audit_counts(findings)
    severities = ", ".join(f"{n} {s}" for s, n in by_severity.items())
    kinds = ", ".join(f"{k} {n}" for k, n in by_kind.items())
    return f"{len(findings)} findings: {severities} · by kind: {kinds}"


@app.command()
@user_errors
@shared_options(MODEL)
def audit(
    ckpt: Ckpt,
    baseline: Baseline = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text | json")] = "text",
    fail_on: FailOn = None,
    *,
    opts: RunOptions,
) -> None:
    """Audit a checkpoint: broken, untrained and gradient-free parameters (no sample needed)."""
    from fga_tui import engine
    from fga_tui.diagnostics.audit import audit_model, load_baseline

    _check_choice("--format", format, ("text", "json"))
    _check_choice("--fail-on", fail_on, ("error", "warning"))
    _check_paths(baseline=baseline)
    loaded = engine.load_model(ckpt, **opts.load_kwargs())
    base = load_baseline(str(baseline), trust=opts.trust) if baseline else None
    result = audit_model(loaded, base, baseline_path=None if baseline is None else str(baseline))
    findings = list(result.findings)
    if format == "json":
        out = result.to_json()
        out["config"] = loaded.info.to_json(loaded.config)
        by_severity, by_kind = audit_counts(findings)
        out["counts"] = {"total": len(findings), "severity": by_severity, "kind": by_kind}
        _emit(json.dumps(out, indent=2))
    else:
        _emit(f"{result.to_text()}\n{audit_summary(findings)}")
    if _fails([f.severity for f in findings], fail_on):
        raise typer.Exit(EXIT_FINDING)


@app.command()
@user_errors
@shared_options(MODEL, SAMPLE)
def diff(
    ckpt_a: Annotated[Path, typer.Argument(help="Checkpoint A (before).")],
    ckpt_b: Annotated[Path, typer.Argument(help="Checkpoint B (after).")],
    sample: SamplePath,
    format: Format = "text",
    *,
    opts: RunOptions,
) -> None:
    """Two checkpoints' reports on one sample, side by side (before/after a fix)."""
    from fga_tui import engine
    from fga_tui.diagnostics.diff import diff_json, diff_markdown, diff_text
    from fga_tui.diagnostics.report import diagnose

    _check_choice("--format", format, ("text", "json", "md"))
    words = opts.stopword_set()
    smp = engine.load_sample(sample, index=opts.index, max_atoms=opts.max_atoms)
    reports = []
    graph = None  # the crystal graph depends on the sample only: build it once
    for ckpt in (ckpt_a, ckpt_b):
        loaded = engine.load_model(ckpt, **opts.load_kwargs())
        prepared = engine.prepare_sample(loaded, smp, graph=graph, **opts.text_kwargs())
        graph = prepared.graph
        reports.append(
            diagnose(loaded, prepared, ablation=opts.interventions, stopwords=words).report
        )
    a, b = reports
    if format == "json":
        _emit(json.dumps(diff_json(a, b), indent=2))
    elif format == "md":
        _emit(diff_markdown(a, b))
    else:
        _emit(diff_text(a, b))


@app.command()
@user_errors
@shared_options(MODEL, TEXT, WORDS, INTERVENE, MAX_ATOMS)
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
        typer.Option(
            "--out",
            "-o",
            help="Per-sample rows (JSONL, input order), journalled as they finish next to it.",
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text | json | md")] = "text",
    fail_on: FailOn = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue a killed scan from the journal of --out."),
    ] = False,
    summary_only: Annotated[
        bool,
        typer.Option(
            "--summary-only", help="Only summarise the rows file --out (or its journal); no model."
        ),
    ] = False,
    chart: Annotated[
        bool, typer.Option("--chart/--no-chart", help="Terminal charts in the text summary.")
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress on stderr.")
    ] = True,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Samples per forward.")
    ] = 16,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Graph and diagnosis processes (0: auto).")
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
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --out file (or its journal).")
    ] = False,
    *,
    opts: RunOptions,
) -> None:
    """Diagnose every sample of a dataset: per-sample JSONL rows and a dataset summary.

    Exit 1 with --fail-on when a row has a verdict of that severity or worse, or a row failed;
    exit 2 when no row succeeded. Under torchrun each rank scans a shard (see README)."""
    from fga_tui.scan import job as scan_job

    _check_choice("--format", format, ("text", "json", "md"))
    _check_choice("--fail-on", fail_on, ("error", "warning"))
    if summary_only:
        if out is None:
            raise InputError("--summary-only", "needs --out (the rows file to summarise)")
        summary = scan_job.summary_of(out)
        _scan_outcome(summary, data, format, fail_on, chart)
        return
    if resume and force:
        raise InputError("--resume", "and --force contradict each other")

    def load(dev: str) -> Any:
        from fga_tui import engine

        return engine.load_model(ckpt, **{**opts.load_kwargs(), "device": dev})

    job = scan_job.ScanJob(
        ckpt=ckpt,
        data=data,
        out=out,
        load_model=load,
        device=opts.device,
        resume=resume,
        force=force,
        progress=progress,
        options={
            "batch_size": batch_size,
            "workers": workers,
            "limit": limit,
            "tokens_path": opts.tokens,
            "text_model": opts.text_model,
            "vocab_mappings": opts.vocab_mappings,
            "ablations": ablations,
            "interventions": opts.interventions,
            "stopwords": opts.stopword_set(),
            "max_atoms": opts.max_atoms,
            "attribution": attribution,
        },
    )
    try:
        summary = scan_job.run(job)
    except scan_job.ScanInterrupted as exc:
        typer.echo(f"fga-tui: {exc.message}", err=True)
        raise typer.Exit(130) from None
    except scan_job.RanksFailed:
        raise typer.Exit(EXIT_BAD_INPUT) from None  # the failing rank said why
    if summary is None:
        return  # a torchrun rank other than 0: rank 0 prints the summary
    _scan_outcome(summary, data, format, fail_on, chart)


def _scan_outcome(summary: Any, data: Path, format: str, fail_on: str | None, chart: bool) -> None:
    """Print the summary; exit 2 when no row succeeded, 1 when --fail-on finds something (a
    failed row counts as a finding)."""
    if format == "json":
        _emit(json.dumps(summary.to_json(), indent=2))
    elif format == "md":
        _emit(summary.to_markdown())
    else:
        _emit(summary.to_text(chart=chart))
    if summary.total and not summary.ok:
        first = summary.errors[0]["error"] if summary.errors else "?"
        raise InputError(data, f"no row succeeded ({summary.failed} failed; first: {first})")
    if fail_on is not None:
        severities = [s for s, n in summary.worst.items() if n]
        if summary.failed or _fails(severities, fail_on):
            raise typer.Exit(EXIT_FINDING)


@app.command()
@user_errors
@shared_options(MODEL, TEXT, MAX_ATOMS, VIEW)
def browse(
    ckpt: Ckpt,
    data: Annotated[
        Path,
        typer.Argument(help="The dataset (as for scan): its rows open in the inspector."),
    ],
    rows: Annotated[
        Path | None,
        typer.Option(
            "--rows", help="Rows of a finished scan of DATA (scan --out). Default: scan now."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Samples per forward (scan without --rows).")
    ] = 16,
    *,
    opts: RunOptions,
    view: ViewOptions,
) -> None:
    """The dataset screen: a scan's rows worst first, filter by verdict (f), Enter opens a row in
    the inspector, Escape comes back."""
    from dataclasses import replace

    from fga_tui.tui.dataset import ranked

    _check_paths(ckpt=ckpt, sample=data)
    if rows is not None:
        from fga_tui.scan.journal import read_rows

        _check_paths(rows=rows)
        table = ranked(read_rows(rows))
    else:
        from fga_tui import engine
        from fga_tui.scan import scan as run_scan

        loaded = engine.load_model(ckpt, **opts.load_kwargs())
        found: list[dict[str, Any]] = []
        run_scan(
            loaded,
            data,
            on_row=found.append,
            batch_size=batch_size,
            tokens_path=opts.tokens,
            text_model=opts.text_model,
            vocab_mappings=opts.vocab_mappings,
            max_atoms=opts.max_atoms,
        )
        table = ranked(found)
        del loaded, found
    if not table:
        raise InputError(rows or data, "has no rows to browse")
    from fga_tui.tui.browse import BrowseApp

    # The worst row is traced while the list is read.
    options = replace(session_options(ckpt, data, opts, view), index=table[0].position)
    BrowseApp(
        options, theme=view.theme, settings_path=view.settings_path, rows=table, data=data
    ).run()
    from fga_tui.tui.session import running_steps

    if running_steps():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def session_options(
    ckpt: Path,
    sample: Path,
    opts: RunOptions,
    view: ViewOptions,
    *,
    baseline: Path | None = None,
    ablations: bool = True,
) -> Any:
    """The TUI session's options: the very ``RunOptions`` every headless command gets."""
    from fga_tui.tui.session import SessionOptions

    return SessionOptions(
        checkpoint=ckpt,
        sample=sample,
        index=opts.index,
        device=opts.device,
        tokens=opts.tokens,
        text_model=opts.text_model,
        vocab_mappings=opts.vocab_mappings,
        stopwords=opts.stopwords,
        trust=opts.trust,
        fga_heads=opts.fga_heads,
        cm_heads=opts.cm_heads,
        baseline=baseline,
        max_atoms=opts.max_atoms,
        run_ablations=ablations,
        snapshot_dir=view.snapshot_dir,
        ablation=opts.interventions,
    )


def _run_app(options: Any, view: ViewOptions) -> None:
    """Run the inspector in this terminal until it quits."""
    from fga_tui.tui.app import FgaApp

    tui = FgaApp(options, theme=view.theme, settings_path=view.settings_path)
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


def _check_open(ckpt: Path, sample: Path, baseline: Path | None) -> None:
    # Obvious mistakes fail here, before the screen switches; problems inside the files are
    # found by the worker and shown in the app.
    _check_paths(ckpt=ckpt, sample=sample, baseline=baseline)


@app.command("open")
@user_errors
@shared_options(MODEL, SAMPLE, VIEW)
def open_(
    ckpt: Ckpt,
    sample: SamplePath,
    baseline: Baseline = None,
    ablations: Ablations = True,
    *,
    opts: RunOptions,
    view: ViewOptions,
) -> None:
    """Open the interactive inspector (the default command: `fga-tui CKPT SAMPLE`)."""
    _check_open(ckpt, sample, baseline)
    _run_app(
        session_options(ckpt, sample, opts, view, baseline=baseline, ablations=ablations), view
    )


Host = Annotated[
    str,
    typer.Option("--host", help="Address to listen on; only this machine by default."),
]
Port = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]
PublicUrl = Annotated[
    str | None,
    typer.Option(
        "--public-url", help="URL the browser uses, when it differs (a proxy, another host)."
    ),
]


def open_argv(
    ckpt: Path,
    sample: Path,
    opts: RunOptions,
    view: ViewOptions,
    *,
    baseline: Path | None = None,
    ablations: bool = True,
) -> list[str]:
    """The ``fga-tui open`` arguments that reproduce these options (absolute paths), run by
    textual-serve once per browser session."""

    def absolute(path: Path) -> str:
        return str(path.expanduser().resolve())

    argv = ["open", absolute(ckpt), absolute(sample), "--device", opts.device]
    argv += ["--index", str(opts.index), "--max-atoms", str(opts.max_atoms)]
    for flag, path in (
        ("--tokens", opts.tokens),
        ("--text-model", opts.text_model),
        ("--vocab-mappings", opts.vocab_mappings),
        ("--baseline", baseline),
    ):
        if path is not None:
            argv += [flag, absolute(path)]
    if opts.stopwords is not None:
        words = opts.stopwords
        argv += ["--stopwords", words if words == "default" else absolute(Path(words))]
    if opts.trust:
        argv.append("--trust-checkpoint")
    for flag, heads in (("--fga-heads", opts.fga_heads), ("--cm-heads", opts.cm_heads)):
        if heads is not None:
            argv += [flag, str(heads)]
    for spec in opts.interventions.specs:
        argv += ["--intervene", spec]
    if not ablations:
        argv.append("--no-ablations")
    argv += ["--snapshot-dir", absolute(view.snapshot_dir)]
    if view.theme is not None:
        argv += ["--theme", view.theme]
    return argv


def _serve(argv: list[str], host: str, port: int, public_url: str | None, title: str) -> None:
    """Serve ``fga-tui <argv>`` to browsers through textual-serve until Ctrl+C."""
    import shlex
    import socket

    try:
        from textual_serve.server import Server
    except ImportError as exc:
        raise InputError("serve", "needs textual-serve: pip install textual-serve") from exc
    try:  # a taken port is a one-line error, not a traceback from inside aiohttp
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise InputError(f"{host}:{port}", f"cannot listen: {exc.strerror or exc}") from exc
    command = shlex.join([sys.executable, "-m", "fga_tui", *argv])
    local = host in ("127.0.0.1", "localhost", "::1")
    url = public_url or f"http://{'localhost' if local else host}:{port}"
    scope = (
        "only this machine can connect"
        if local
        else "other machines can connect: anyone who can reach this port sees your data"
    )
    typer.echo(f"fga-tui: serving the inspector on {url} ({host}; {scope})", err=True)
    if local:
        typer.echo(
            f"fga-tui: from a laptop: ssh -L {port}:localhost:{port} THIS_HOST, then open "
            f"http://localhost:{port}",
            err=True,
        )
    server = Server(command, host=host, port=port, title=title, public_url=url)
    server.serve()


@app.command()
@user_errors
@shared_options(MODEL, SAMPLE, VIEW)
def serve(
    ckpt: Ckpt,
    sample: SamplePath,
    baseline: Baseline = None,
    ablations: Ablations = True,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    public_url: PublicUrl = None,
    *,
    opts: RunOptions,
    view: ViewOptions,
) -> None:
    """The inspector in a web browser (textual-serve): same options as open; localhost only
    unless --host says otherwise (reach it with ssh -L PORT:localhost:PORT)."""
    _check_open(ckpt, sample, baseline)
    argv = open_argv(ckpt, sample, opts, view, baseline=baseline, ablations=ablations)
    _serve(argv, host, port, public_url, title=f"fga-tui {sample.name}")


@app.command()
@user_errors
@shared_options(MODEL, WORDS, INTERVENE, VIEW)
def demo(
    fixed: Annotated[
        bool,
        typer.Option(
            "--fixed",
            help="The checkpoint retrained with remedies 1, 2 and 4 (no fusion, fewer layers, "
            "attention-diversity training).",
        ),
    ] = False,
    serve_: Annotated[
        bool, typer.Option("--serve", help="Serve it to a web browser instead (see serve).")
    ] = False,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    public_url: PublicUrl = None,
    *,
    opts: RunOptions,
    view: ViewOptions,
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
    if serve_:
        argv = open_argv(ckpt, sample, opts, view)
        _serve(argv, host, port, public_url, title="fga-tui demo")
        return
    _run_app(session_options(ckpt, sample, opts, view), view)


SUBCOMMANDS = frozenset(
    {"export", "report", "audit", "scan", "diff", "demo", "open", "serve", "browse"}
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``fga-tui CKPT SAMPLE`` means ``fga-tui open CKPT SAMPLE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in SUBCOMMANDS and not args[0].startswith("-"):
        args.insert(0, "open")
    app(args=args, prog_name="fga-tui")
