#!/usr/bin/env bash
# Sets up .venv and runs the main job. Until the full pipeline lands this is the mask-core
# benchmark (C++ vs pycocotools / numpy+cv2), written to results/bench_masks.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/python benchmarks/bench_masks.py --out results/bench_masks.json "$@"
