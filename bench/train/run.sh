#!/usr/bin/env bash
# Training-step benchmark, colzero vs PyLate, CPU, 2 threads (dev-only; prints figures).
# MiniLM-L6 ColBERT, batch 32, one hard negative, q 32 / d 180, dropout on, AdamW.
# Usage (from the repository root): bench/train/run.sh [steps] [shared_dir]
set -euo pipefail
STEPS=${1:-3}
SHARED=$(realpath "${2:-../shared}")
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 COLZERO_SHARED="$SHARED"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cargo build -q --release -p colzero-train --example bench_step
TMP=$(mktemp -d)
cargo run -q --release -p colzero-train --example bench_step -- "$STEPS" > "$TMP/colzero.txt"
cat "$TMP/colzero.txt"
python bench/train/pylate_step.py "$STEPS" "$SHARED" 2>/dev/null > "$TMP/pylate.txt"
cat "$TMP/pylate.txt"
R=$(grep '^RESULT' "$TMP/colzero.txt" | sed -E 's/.*: ([0-9.]+) samples.*/\1/')
P=$(grep '^RESULT' "$TMP/pylate.txt" | sed -E 's/.*: ([0-9.]+) samples.*/\1/')
rm -r "$TMP"
python -c "print(f'colzero {float($R):.2f} samples/s, pylate {float($P):.2f} samples/s, ratio {float($R)/float($P):.2f}x')"
