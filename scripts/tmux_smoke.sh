#!/usr/bin/env bash
# Smoke test of the real terminal app inside tmux (what a user sees over SSH):
# open it on the fixtures, wait for the atom list, step one stage right, check the screen, quit.
# Exits 0 with "skipped: tmux not installed" when tmux is absent (CI installs it with apt-get).
set -euo pipefail

if ! command -v tmux >/dev/null 2>&1; then
    echo "skipped: tmux not installed"
    exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if command -v fga-tui >/dev/null 2>&1; then
    FGA="fga-tui"
else
    FGA="${PYTHON:-python} -c 'from fga_tui.cli import main; main()'"
fi
SESSION="fga-smoke-$$"
TMP=$(mktemp -d)
cleanup() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

FIX="$ROOT/tests/fixtures"
tmux new-session -d -s "$SESSION" -x 100 -y 30 \
    "cd '$ROOT' && TEXTUAL_ANIMATIONS=none $FGA '$FIX/fork_ckpt.pt' '$FIX/nacl.json' \
     --tokens '$FIX/nacl.tokens.npz' --device cpu --snapshot-dir '$TMP/snaps'; \
     echo FGA_EXIT=\$?; sleep 60"

screen() { tmux capture-pane -p -t "$SESSION"; }

wait_for() {  # wait_for PATTERN SECONDS
    local pattern=$1 seconds=$2 i
    for ((i = 0; i < seconds * 5; i++)); do
        if screen | grep -qF -- "$pattern"; then
            return 0
        fi
        sleep 0.2
    done
    echo "FAIL: '$pattern' not on screen after ${seconds}s; screen was:"
    screen
    exit 1
}

wait_for "Na_0" 120          # the atom list is filled: load, trace and diagnosis are done
wait_for "verdicts" 5
wait_for "1/11 embed" 5
tmux send-keys -t "$SESSION" Right
wait_for "2/11 alignn.0" 10  # the scrubber moved
wait_for "Na_0 × Cl_1" 5      # the heat map shows the new stage
tmux send-keys -t "$SESSION" q
wait_for "FGA_EXIT=0" 15     # quit cleanly
echo "ok: fga-tui opened, stepped a stage and quit in tmux"
