#!/usr/bin/env bash
# Sets up .venv and runs the main job: the default profile on a bundled photo (results/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/gear-edge demo "$@"
