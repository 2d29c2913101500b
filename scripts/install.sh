#!/usr/bin/env bash
# Install fga-tui with every extra into ./.venv (fresh machine: Python 3.11 + pip).
# torch is pinned first so pip takes the local CPU wheel instead of a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv "${VENV:-.venv}"
. "${VENV:-.venv}/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[text,dgl,dev]'
