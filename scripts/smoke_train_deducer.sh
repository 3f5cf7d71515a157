#!/usr/bin/env bash
# Smoke run of the deducer LoRA pipeline (~4-5 min on 2 CPU cores): data engine examples -> a few
# LoRA steps on the shipped SmolLM2-135M GGUF's weights -> llama.cpp adapter GGUF + manifest ->
# loaded by llama-cpp-python and compared with the trained model (--check-export).
# Needs the [llm] and [train] extras. Usage: scripts/smoke_train_deducer.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-results/smoke_train_deducer}
python -m gear_edge.cli train-deducer data "$OUT/data" --scenes 4 --heldout-scenes 1
python -m gear_edge.cli train-deducer train "$OUT/data" "$OUT/run" --steps 4 --batch-size 2 --max-examples 8 \
  --eval-examples 2 --no-few-shot --lr 1e-3 --rank 8 --alpha 16 --save-every 2 --check-export
cat "$OUT/run/deducer-lora.toml"
