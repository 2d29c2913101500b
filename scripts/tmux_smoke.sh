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

# 80x24, the smallest terminal it promises: the fixed demo, every legend whole.
tmux kill-session -t "$SESSION" 2>/dev/null || true
tmux new-session -d -s "$SESSION" -x 80 -y 24 \
    "cd '$TMP' && FGA_TUI_CONFIG='$TMP/settings.toml' TEXTUAL_ANIMATIONS=none $FGA demo --fixed \
     --device cpu --snapshot-dir '$TMP/snaps'; echo FGA_EXIT=\$?; sleep 60"
wait_for "Ba_0" 120
wait_for "verdicts" 5
wait_for "HEALTHY" 10  # the remedy worked: the answer is on the first screen
sleep 1
SCREEN=$(screen)
fail() {
    echo "FAIL at 80x24: $1; screen was:"
    echo "$SCREEN"
    exit 1
}
# The heat-map legend: all seven glyphs, or the pointer to the help screen, never half of it.
if echo "$SCREEN" | grep -qF "█≥.95"; then
    for item in "▓≥.8" "▒≥.5" "░≥.15" "·≈0" "-<-.15" "=<-.5"; do
        echo "$SCREEN" | grep -qF -- "$item" || fail "heat-map legend cut: no '$item'"
    done
else
    echo "$SCREEN" | grep -qF "glyph legend: ? help" || fail "no heat-map legend at all"
fi
# The curve legend names all three curves on one line.
LEGEND=$(echo "$SCREEN" | grep -F "• x-orbit" || true)
[ -n "$LEGEND" ] || fail "no curve legend"
for item in "+ MAD" "x eff"; do
    echo "$LEGEND" | grep -qF -- "$item" || fail "curve legend cut: no '$item'"
done
# Help has the full glyph legend and the numbered remedies.
tmux send-keys -t "$SESSION" "?"
wait_for "fga-tui keys" 10
tmux send-keys -t "$SESSION" End  # the help scrolls with the keyboard
wait_for "6. enable fine-grained attention" 10
for _ in 1 2 3 4; do
    screen | grep -qF "heat-map glyphs: █≥.95" && break
    tmux send-keys -t "$SESSION" PageUp
    sleep 0.5
done
wait_for "heat-map glyphs: █≥.95" 5
wait_for "=<-.5" 5
tmux send-keys -t "$SESSION" q  # closes the help (Esc then q would read as Alt+q in tmux)
wait_for "▶Ba_0   Ba" 10
tmux send-keys -t "$SESSION" q
wait_for "FGA_EXIT=0" 15
echo "ok: at 80x24 the legends are whole"
