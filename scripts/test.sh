#!/usr/bin/env bash
# The project's test command: the pytest suite, then the tmux smoke test of the real TUI.
set -euo pipefail
cd "$(dirname "$0")/.."
. "${VENV:-.venv}/bin/activate"
python -m pytest -q "$@"
if [ -f scripts/tmux_smoke.sh ]; then
  bash scripts/tmux_smoke.sh
fi
