#!/usr/bin/env bash
# Creates .venv (if missing) and installs gear_edge editable with the given extras (default: dev).
# The C++ extension is compiled here (scikit-build-core; build cache in build/).
#
#   bash scripts/setup.sh            # runtime + test tools
#   bash scripts/setup.sh dev,llm    # more extras
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${1:-dev}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
.venv/bin/python -m gear_edge.cli info >/dev/null
