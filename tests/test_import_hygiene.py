"""The headless path never imports Textual; the TUI never imports torch before its first frame.

Each check runs in a fresh interpreter (``sys.modules`` of the test process is polluted by
everything else pytest imported).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEADLESS_COMMANDS = ("export", "report", "audit", "scan")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_headless_modules_never_import_textual():
    result = _run(
        """
        import sys
        import fga_tui.cli, fga_tui.engine, fga_tui.snapshot, fga_tui.trace
        import fga_tui.diagnostics.report, fga_tui.diagnostics.audit, fga_tui.diagnostics.words
        import fga_tui.settings, fga_tui.options, fga_tui.diagnostics.remedies
        import fga_tui.diagnostics.diff
        bad = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual.")
                     or m.startswith("fga_tui.tui"))
        assert not bad, bad
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_headless_commands_help_never_imports_textual():
    """``--help`` of every headless command, in one interpreter (torch loads once)."""
    result = _run(
        f"""
        import sys
        from typer.testing import CliRunner
        from fga_tui.cli import app
        names = {{c.name or c.callback.__name__ for c in app.registered_commands}}
        for command in {HEADLESS_COMMANDS!r}:
            assert command in names, f"fga-tui {{command}} is not registered"
            out = CliRunner().invoke(app, [command, "--help"])
            assert out.exit_code == 0, out.output
            assert "textual" not in sys.modules, f"textual imported by {{command}} --help"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_export_command_runs_without_textual(tmp_path):
    """A real headless run (not just --help) on the fixtures."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures"
    result = _run(
        f"""
        import sys
        from typer.testing import CliRunner
        from fga_tui.cli import app
        out = CliRunner().invoke(app, ["export", r"{fixtures / "fork_ckpt.pt"}",
                                       r"{fixtures / "nacl.json"}", "--tokens",
                                       r"{fixtures / "nacl.tokens.npz"}", "--device", "cpu",
                                       "--out", r"{tmp_path}"])
        assert out.exit_code == 0, out.output
        assert "textual" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "trace.npz").exists()


def test_tui_modules_do_not_import_torch_or_the_engine():
    """The first frame paints before torch (and numpy) load: only the worker imports them."""
    result = _run(
        """
        import sys
        import fga_tui.tui.app, fga_tui.tui.session, fga_tui.tui.commands
        import fga_tui.tui.screens.help, fga_tui.tui.screens.error
        import fga_tui.tui.screens.open_sample, fga_tui.tui.screens.stage_picker
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy")
                     or m == "fga_tui.engine" or m.startswith("fga_tui.model"))
        assert not bad, bad[:10]
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
