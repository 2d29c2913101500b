"""``python -m fga_tui`` = the ``fga-tui`` command (what ``fga-tui serve`` runs per browser)."""

from fga_tui.cli import main

if __name__ == "__main__":
    main()
